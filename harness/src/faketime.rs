//! Wall-clock faults through libfaketime.
//!
//! Each node runs with `LD_PRELOAD=libfaketime`, `FAKETIME_TIMESTAMP_FILE=<its control
//! file>`, `FAKETIME_NO_CACHE=1` and `FAKETIME_DONT_FAKE_MONOTONIC=1` (faking the
//! monotonic clock hangs tokio, and a correct node must not use the wall clock for safety
//! anyway). Writing `+<seconds> x<rate>` to the control file moves the running process's
//! wall clock at once. A rate is always written explicitly: a plain `+0` does not reset a
//! rate set earlier.
//!
//! The same holds for a node on a remote host (`--hosts`): the library is the host's own
//! (found with [`LIBRARY_PATHS`] there), the environment is [`env`], and the control file
//! is written on the host over SSH ([`Control::Remote`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::remote::ssh::Ssh;

/// Where libfaketime is looked for, locally and on remote hosts (Debian's multiarch
/// directories first).
pub const LIBRARY_PATHS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The local libfaketime: the first of [`LIBRARY_PATHS`] present.
pub fn local_library() -> Option<PathBuf> {
    LIBRARY_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

/// The host's libfaketime: the first of [`LIBRARY_PATHS`] present there,
/// proven to work by preloading it into `date` with a fixed fake time and reading the
/// year back. Returns its path on the host.
pub fn remote_library(h: &Ssh) -> Result<String> {
    const SCRIPT: &str = r#"for f in "$@"; do
  [ -e "$f" ] || continue
  y=$(LD_PRELOAD="$f" FAKETIME="@2001-02-03 04:05:06" FAKETIME_DONT_FAKE_MONOTONIC=1 date +%Y 2>&1)
  if [ "$y" = 2001 ]; then echo "$f"; exit 0; fi
  echo "$f is there but did not fake the clock (date said $y)" >&2; exit 1
done
echo "libfaketime.so.1 not found in $*" >&2; exit 1"#;
    Ok(
        h.script_ok("looking for libfaketime", SCRIPT, &LIBRARY_PATHS)?
            .trim()
            .to_owned(),
    )
}

/// The environment a node runs with under libfaketime `library`, its clock moved through
/// `control_file` (paths as the node's host sees them).
pub fn env(library: &str, control_file: &str) -> Vec<(String, String)> {
    [
        ("LD_PRELOAD", library),
        ("FAKETIME_TIMESTAMP_FILE", control_file),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("FAKETIME_NO_CACHE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// One node's control file: on this machine, or on the remote host the node runs on.
#[derive(Clone, Debug)]
pub enum Control {
    Local(PathBuf),
    Remote { host: Arc<Ssh>, path: String },
}

impl Control {
    /// Moves the node's wall clock by `offset_secs`, running at `rate`.
    pub fn write(&self, offset_secs: f64, rate: f64) -> Result<()> {
        match self {
            Control::Local(path) => write_control(path, offset_secs, rate),
            Control::Remote { host, path } => {
                crate::remote::write_file(host, path, &control_line(offset_secs, rate))
                    .context("writing the faketime control file")
            }
        }
    }
}

/// Writes the control file atomically (tmp + rename), so a node never reads half a line.
pub fn write_control(path: &Path, offset_secs: f64, rate: f64) -> Result<()> {
    let tmp = path.with_extension("rc.tmp");
    fs::write(&tmp, control_line(offset_secs, rate))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The control line for an offset in seconds and a rate (1.0 = real speed).
pub fn control_line(offset_secs: f64, rate: f64) -> String {
    format!("{offset_secs:+.3} x{rate}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_always_carry_a_rate() {
        assert_eq!(control_line(0.0, 1.0), "+0.000 x1\n");
        assert_eq!(control_line(-12.5, 1.0), "-12.500 x1\n");
        assert_eq!(control_line(3.0, 2.5), "+3.000 x2.5\n");
    }

    #[test]
    fn the_environment_names_library_and_control_file() {
        let e = env("/lib/ft.so", "/d/n1/faketime.rc");
        assert!(e.contains(&("LD_PRELOAD".into(), "/lib/ft.so".into())));
        assert!(e.contains(&("FAKETIME_TIMESTAMP_FILE".into(), "/d/n1/faketime.rc".into())));
        // The monotonic clock is never faked (it hangs tokio).
        assert!(e.contains(&("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into())));
    }

    #[test]
    fn local_control_files_are_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        let c = Control::Local(d.path().join("faketime.rc"));
        c.write(-30.0, 1.0).unwrap();
        c.write(0.0, 1.0).unwrap();
        let text = fs::read_to_string(d.path().join("faketime.rc")).unwrap();
        assert_eq!(text, "+0.000 x1\n");
        assert!(!d.path().join("faketime.rc.tmp").exists());
    }
}
