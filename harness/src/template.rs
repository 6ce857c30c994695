//! Templates of the system specs: `{name}` placeholders, their rendering and checking
//! (shared by [`crate::sut`] and [`crate::auxiliary`]).

/// The placeholders of a node's (or auxiliary process's) program, args, env and files.
pub const NODE_PLACEHOLDERS: [&str; 11] = [
    "id",
    "k",
    "addr",
    "client_port",
    "peer_port",
    "data_dir",
    "peers",
    "stasis_node",
    "first_addr",
    "first_client_port",
    "cluster",
];

/// Replaces `{name}` by its value.
pub fn render(t: &str, vars: &[(&str, String)]) -> String {
    let mut out = t.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Returns the first placeholder not in `known`.
pub fn check_placeholders(t: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else {
            return Err(after.to_owned());
        };
        let name = &after[..j];
        if !known.contains(&name) {
            return Err(name.to_owned());
        }
        rest = &after[j + 1..];
    }
    Ok(())
}
