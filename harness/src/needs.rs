//! What a system needs installed (spec: `[[needs]]`): each program or file with the Debian
//! package that provides it and, optionally, a version check. Checked before a run starts
//! (`stasis test` on local namespaces); the first one missing or wrong is a one-line error
//! naming the package.
//!
//! The programs that `[start]` and `[[aux]]` run are checked too: a program no `[[needs]]`
//! entry names must at least be there (the message then cannot name a package and says to
//! add the entry).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// One needed program or file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Need {
    /// A program looked up on PATH (a bare name), or a path to a file.
    pub path: String,
    /// The Debian package that provides it, named when it is missing or wrong.
    pub package: String,
    /// Arguments that make the program print its version and exit (checked when given).
    #[serde(default)]
    pub version_args: Vec<String>,
    /// Text the version output (stdout and stderr) must contain.
    #[serde(default)]
    pub version_expect: Option<String>,
}

impl Need {
    /// Checks what the TOML types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.trim().is_empty() || self.package.trim().is_empty() {
            return Err(format!(
                "needs: path and package must not be empty (path {:?}, package {:?})",
                self.path, self.package
            ));
        }
        if self.version_expect.is_some() && self.version_args.is_empty() {
            return Err(format!(
                "needs {}: version_expect needs version_args (how to make it print its version)",
                self.path
            ));
        }
        Ok(())
    }

    /// Whether it is there and, with `version_args`, runs and prints `version_expect`.
    /// `system` prefixes the one-line error.
    pub fn check(&self, system: &str) -> Result<()> {
        let install = format!("apt-get install {} (or run scripts/setup.sh)", self.package);
        let Some(found) = locate(&self.path) else {
            bail!("{system}: {} is missing: {install}", self.path);
        };
        if self.version_args.is_empty() {
            return Ok(());
        }
        let shown = format!("`{} {}`", found.display(), self.version_args.join(" "));
        let text = match Command::new(&found).args(&self.version_args).output() {
            Ok(o) if o.status.success() => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(o) => bail!("{system}: {shown} failed ({}): {install}", o.status),
            Err(e) => bail!("{system}: {shown} cannot run ({e}): {install}"),
        };
        if let Some(want) = &self.version_expect
            && !text.contains(want.as_str())
        {
            let first = text.lines().next().unwrap_or("").trim();
            bail!("{system}: {shown} printed {first:?}, not {want:?}: {install}");
        }
        Ok(())
    }
}

/// Checks every need of `system`, then that each program it starts (`(program, where it
/// is named)`) is there: the first failure is the error. A program starting with a
/// placeholder (`{stasis_node}`) is not checked here.
pub fn check_all(system: &str, needs: &[Need], programs: &[(&str, String)]) -> Result<()> {
    for n in needs {
        n.check(system)?;
    }
    for (program, named_in) in programs {
        if program.contains('{') || needs.iter().any(|n| n.path == *program) {
            continue;
        }
        if locate(program).is_none() {
            bail!(
                "{system}: {program} ({named_in}) is missing: install it, or add a [[needs]] entry naming its Debian package"
            );
        }
    }
    Ok(())
}

/// Where `path` is: a path (it contains `/`) that is a file, or the first executable of
/// that name on PATH.
fn locate(path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if path.contains('/') {
        let p = Path::new(path);
        return p.is_file().then(|| p.to_path_buf());
    }
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(path))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(path: &str, package: &str, args: &[&str], expect: Option<&str>) -> Need {
        Need {
            path: path.into(),
            package: package.into(),
            version_args: args.iter().map(|a| a.to_string()).collect(),
            version_expect: expect.map(str::to_owned),
        }
    }

    #[test]
    fn missing_and_wrong_programs_name_the_package_in_one_line() {
        let e = need("/nonexistent/bin/mine", "mine-pkg", &[], None)
            .check("mine")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "mine: /nonexistent/bin/mine is missing: apt-get install mine-pkg (or run scripts/setup.sh)"
        );
        let e = need("stasis-no-such-program", "redis-server", &[], None)
            .check("redis")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("is missing: apt-get install redis-server (or run scripts/setup.sh)"),
            "{e}"
        );
        // `sh` runs and prints something that is not a Redis version.
        let e = need("sh", "redis-server", &["-c", "echo dash 0.5"], Some("v=7."))
            .check("redis")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("redis: `"), "{e}");
        assert!(
            e.ends_with(
                "printed \"dash 0.5\", not \"v=7.\": apt-get install redis-server (or run scripts/setup.sh)"
            ),
            "{e}"
        );
        let e = need("false", "redis-sentinel", &["x"], None)
            .check("redis")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("failed") && e.contains("apt-get install redis-sentinel"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        need("sh", "dash", &["-c", "echo v=7.0"], Some("v=7."))
            .check("x")
            .unwrap();
        // An absolute file need not be executable (a jar).
        let f = tempfile::NamedTempFile::new().unwrap();
        need(f.path().to_str().unwrap(), "p", &[], None)
            .check("x")
            .unwrap();
    }

    #[test]
    fn started_programs_without_a_need_must_be_there() {
        let needs = [need("/nonexistent/redis-server", "redis-server", &[], None)];
        // A need fails first, naming its package.
        let e = check_all("r", &needs, &[]).unwrap_err().to_string();
        assert!(e.contains("apt-get install redis-server"), "{e}");
        let e = check_all(
            "mine",
            &[],
            &[("/nonexistent/mine", "start.program".into())],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "mine: /nonexistent/mine (start.program) is missing: install it, or add a [[needs]] entry naming its Debian package"
        );
        check_all(
            "mine",
            &[need("sh", "dash", &[], None)],
            &[
                ("sh", "start.program".into()),
                ("{stasis_node}", "start.program".into()),
            ],
        )
        .unwrap();
    }

    #[test]
    fn validation_refuses_empty_fields_and_an_expectation_without_arguments() {
        need("sh", "dash", &["--version"], Some("x"))
            .validate()
            .unwrap();
        assert!(
            need("", "dash", &[], None)
                .validate()
                .unwrap_err()
                .contains("must not be empty")
        );
        assert!(need("sh", " ", &[], None).validate().is_err());
        assert!(
            need("sh", "dash", &[], Some("x"))
                .validate()
                .unwrap_err()
                .contains("version_expect needs version_args")
        );
    }
}
