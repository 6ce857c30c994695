//! Auxiliary processes: programs a system needs beside its nodes that are not nodes
//! themselves, such as Redis Sentinels (spec: `[[aux]]`).
//!
//! Each group runs `count` processes named `<name>1`, `<name>2`, ... Each lives in its own
//! `stasis-` namespace on the run's bridge, exactly like a node: kill, pause and partition
//! faults draw from nodes and auxiliary processes alike (a partition can cut a Sentinel
//! off as it cuts a node), the heal restarts them, and teardown stops them. They are not
//! voters, clients do not send operations to them (a client may ask them things, as the
//! redis-sentinel client asks Sentinels for the primary), and `{peers}` does not list
//! them. Their `program`, `args`, `env` and `files` take the node placeholders, with
//! `{client_port}` and `{peer_port}` both the group's `port`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::template::{NODE_PLACEHOLDERS, check_placeholders};

/// One group of auxiliary processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aux {
    /// Lowercase letters; the processes are `<name>1` ... `<name><count>`.
    pub name: String,
    pub count: u8,
    /// The port the processes listen on (probed to verify partitions).
    pub port: u16,
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files rendered into the process's data directory before its first start.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The program's Debian package, named when the program is missing or unusable.
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub version_args: Vec<String>,
    #[serde(default)]
    pub version_expect: Option<String>,
}

impl Aux {
    /// The processes' host names.
    pub fn hosts(&self) -> Vec<String> {
        (1..=self.count)
            .map(|k| format!("{}{k}", self.name))
            .collect()
    }

    /// Checks what the TOML types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 12
            || !self.name.bytes().all(|b| b.is_ascii_lowercase())
            || self.name == "n"
        {
            return Err(format!(
                "aux name {:?} must be 1 to 12 lowercase letters, not \"n\" (the nodes' prefix)",
                self.name
            ));
        }
        if !(1..=9).contains(&self.count) {
            return Err(format!("aux {}: count must be 1 to 9", self.name));
        }
        if self.port == 0 {
            return Err(format!("aux {}: port must not be 0", self.name));
        }
        if self.program.trim().is_empty() {
            return Err(format!("aux {}: program must not be empty", self.name));
        }
        let templates = std::iter::once(&self.program)
            .chain(&self.args)
            .chain(self.env.values())
            .chain(self.files.values());
        for t in templates {
            check_placeholders(t, &NODE_PLACEHOLDERS).map_err(|p| {
                format!(
                    "aux {}: unknown placeholder {{{p}}} (known: {})",
                    self.name,
                    NODE_PLACEHOLDERS.join(", ")
                )
            })?;
        }
        Ok(())
    }
}

/// A file name for `files`: one plain path component.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file name {name:?} must be a plain name inside the data directory"
        ))
    }
}

/// Checks `program` is installed (on PATH or at its path) and, with `version_args`, that
/// it runs and prints `expect`. One-line errors that name the Debian package.
pub fn check_program(
    program: &str,
    package: Option<&str>,
    version_args: &[String],
    expect: Option<&str>,
) -> Result<()> {
    let install = match package {
        Some(p) => format!("install the Debian package {p} (scripts/setup.sh)"),
        None => "install it or fix start.program in the spec".to_owned(),
    };
    let Some(path) = find_program(program) else {
        bail!("{program} not found: {install}");
    };
    if version_args.is_empty() {
        return Ok(());
    }
    let out = Command::new(&path).args(version_args).output();
    let shown = format!("`{} {}`", path.display(), version_args.join(" "));
    let text = match out {
        Ok(o) if o.status.success() => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(o) => bail!("{shown} failed ({}): {install}", o.status),
        Err(e) => bail!("{shown} cannot run ({e}): {install}"),
    };
    if let Some(want) = expect
        && !text.contains(want)
    {
        let first = text.lines().next().unwrap_or("").trim();
        bail!("{shown} printed {first:?}, not {want:?}: {install}");
    }
    Ok(())
}

/// `program` itself when it names a path, else the first executable of that name on PATH.
fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = Path::new(program);
        return executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aux() -> Aux {
        Aux {
            name: "sentinel".into(),
            count: 3,
            port: 26379,
            program: "redis-sentinel".into(),
            args: vec!["{data_dir}/sentinel.conf".into()],
            env: BTreeMap::new(),
            files: BTreeMap::new(),
            package: Some("redis-sentinel".into()),
            version_args: Vec::new(),
            version_expect: None,
        }
    }

    #[test]
    fn groups_name_their_hosts_and_reject_bad_fields() {
        assert_eq!(aux().hosts(), vec!["sentinel1", "sentinel2", "sentinel3"]);
        aux().validate().unwrap();
        let mut a = aux();
        a.name = "n".into();
        assert!(a.validate().unwrap_err().contains("not \"n\""));
        let mut a = aux();
        a.count = 0;
        assert!(a.validate().unwrap_err().contains("count"));
        let mut a = aux();
        a.args.push("{primary}".into());
        assert!(
            a.validate()
                .unwrap_err()
                .contains("unknown placeholder {primary}")
        );
        assert!(check_file_name("../x").is_err() && check_file_name("a.conf").is_ok());
    }

    #[test]
    fn missing_and_wrong_programs_name_the_package() {
        let e = check_program("stasis-no-such-program", Some("redis-server"), &[], None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "stasis-no-such-program not found: install the Debian package redis-server (scripts/setup.sh)"
        );
        // `true` runs but prints nothing like a Redis version.
        let e = check_program(
            "true",
            Some("redis-server"),
            &["--version".into()],
            Some("v=7."),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not \"v=7.\": install the Debian package redis-server"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = check_program("false", Some("redis-sentinel"), &["x".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed") && e.contains("redis-sentinel"), "{e}");
        check_program(
            "sh",
            None,
            &["-c".into(), "echo v=7.0".into()],
            Some("v=7."),
        )
        .unwrap();
    }
}
