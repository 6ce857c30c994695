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

/// Returns the first placeholder not in `known`, escaped (`\n`, `\u{1b}`) so that a
/// message quoting it stays one line.
pub fn check_placeholders(t: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else {
            return Err(after.escape_debug().to_string());
        };
        let name = &after[..j];
        if !known.contains(&name) {
            return Err(name.escape_debug().to_string());
        }
        rest = &after[j + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `scripts/fuzz.sh` (target sut-spec, seed 7, 2026-12-07): a placeholder
    /// with a newline in it made the spec error two lines.
    #[test]
    fn an_unknown_placeholder_is_named_on_one_line() {
        assert_eq!(check_placeholders("{id} {k}", &NODE_PLACEHOLDERS), Ok(()));
        assert_eq!(
            check_placeholders("x {stasis\nnode} y", &NODE_PLACEHOLDERS),
            Err("stasis\\nnode".to_owned())
        );
        assert_eq!(
            check_placeholders("{id} {open\u{1b}", &NODE_PLACEHOLDERS),
            Err("open\\u{1b}".to_owned())
        );
        assert_eq!(
            check_placeholders("{bogus}", &["id"]),
            Err("bogus".to_owned())
        );
    }
}
