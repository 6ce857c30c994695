//! Run directories: `store/<test-name>/<UTC timestamp>/`, with `store/latest` (and
//! `store/<test-name>/latest`) pointing at the newest run.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// A freshly created run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
    pub test_name: String,
    pub timestamp: String,
}

impl RunDir {
    /// Creates `<store>/<test_name>/<timestamp>/` and repoints the `latest` links.
    pub fn create(store: &Path, test_name: &str) -> Result<RunDir> {
        if test_name.is_empty()
            || !test_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            || test_name.starts_with('.')
        {
            bail!("test name {test_name:?} must be letters, digits, '-', '_' or '.'");
        }
        let base = store.join(test_name);
        fs::create_dir_all(&base)
            .with_context(|| format!("cannot create run store {}", base.display()))?;
        // Two runs in the same millisecond get distinct directories.
        let mut timestamp = utc_timestamp(SystemTime::now());
        let mut n = 1;
        let path = loop {
            let p = base.join(&timestamp);
            match fs::create_dir(&p) {
                Ok(()) => break p,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                    n += 1;
                    timestamp = format!("{}-{n}", utc_timestamp(SystemTime::now()));
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", p.display())),
            }
        };
        repoint(
            &store.join("latest"),
            &Path::new(test_name).join(&timestamp),
        )?;
        repoint(&base.join("latest"), Path::new(&timestamp))?;
        Ok(RunDir {
            path,
            test_name: test_name.to_owned(),
            timestamp,
        })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// Atomically points the symlink `link` at `target` (a relative path).
fn repoint(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("cannot create link {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("cannot update {}", link.display()))
}

/// Resolves a run directory argument: a run dir itself, or a `latest` link, or the store
/// (its `latest`).
pub fn resolve_run(arg: &Path) -> Result<PathBuf> {
    let candidates = [arg.to_path_buf(), arg.join("latest")];
    for c in candidates {
        if c.join("test.json").is_file() {
            return c
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", c.display()));
        }
    }
    bail!(
        "{}: not a run directory (no test.json); pass store/<test>/<timestamp> or store/latest",
        arg.display()
    )
}

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC.
pub fn utc_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_427_100_123);
        assert_eq!(utc_timestamp(t), "20261123T094500.123Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000.000Z");
        // Leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(t), "20000229T000000.000Z");
    }

    #[test]
    fn run_dirs_and_latest_links() {
        let store = tempfile::tempdir().unwrap();
        let a = RunDir::create(store.path(), "raft-kill").unwrap();
        fs::write(a.file("test.json"), "{}").unwrap();
        let b = RunDir::create(store.path(), "raft-kill").unwrap();
        fs::write(b.file("test.json"), "{}").unwrap();
        assert_ne!(a.path, b.path);
        let latest = resolve_run(&store.path().join("latest")).unwrap();
        assert_eq!(latest, b.path.canonicalize().unwrap());
        assert_eq!(resolve_run(store.path()).unwrap(), latest);
        assert_eq!(
            resolve_run(&store.path().join("raft-kill")).unwrap(),
            latest
        );
        assert_eq!(
            resolve_run(&a.path).unwrap(),
            a.path.canonicalize().unwrap()
        );
        let e = resolve_run(&store.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("not a run directory"), "{e}");
    }

    #[test]
    fn bad_test_names_are_refused() {
        let store = tempfile::tempdir().unwrap();
        for name in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(RunDir::create(store.path(), name).is_err(), "{name:?}");
        }
    }
}
