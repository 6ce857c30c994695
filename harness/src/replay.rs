//! `stasis replay RUN_DIR`: a new run with a stored run's options, seed and nemesis
//! schedule.
//!
//! What repeats: the workload (the seed drives every worker's operation stream) and the
//! fault schedule (taken verbatim from the old test.json, not redrawn). What does not:
//! process timing — thread scheduling, elections, network and disk latency differ from
//! run to run, so the new history, and possibly the verdict, can differ.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::run::{self, Overrides, TestJson};
use crate::store;

/// Options of `stasis replay`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReplayArgs {
    /// The run directory to replay (or a `latest` link, or a store whose `latest` to use).
    pub run_dir: PathBuf,
    /// Store for the new run.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The stasis-node binary (default: next to this `stasis` binary; the stored run's
    /// own binary path is not reused).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

pub const TIMING_NOTE: &str = "process timing is not reproduced (only the nemesis schedule and the workload are): \
thread scheduling, elections and network latency differ, so the history and even the verdict may differ";

/// Whether test.json written by `theirs` can be replayed by this build (`ours`): same
/// major version, and for 0.x the same minor version.
pub fn compatible(theirs: &str, ours: &str) -> bool {
    let parts = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parts(theirs), parts(ours)) {
        (Some((a, b)), Some((c, d))) => a == c && (a != 0 || b == d),
        _ => false,
    }
}

/// Reads a run's test.json for replay; errors are one line.
pub fn load_test_json(dir: &Path) -> Result<TestJson> {
    let path = dir.join("test.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not valid JSON ({e})", path.display()))?;
    let ours = env!("CARGO_PKG_VERSION");
    let theirs = value
        .get("stasis_version")
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    if !compatible(theirs, ours) {
        bail!(
            "{}: written by stasis {theirs}, which this stasis {ours} cannot replay; use a stasis {theirs} build",
            path.display()
        );
    }
    serde_json::from_value(value).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot replay: {e} (the file is damaged or from an incompatible stasis)",
            path.display()
        )
    })
}

/// Marks a run's test.json as a replay of `of`.
fn mark_replay(new_dir: &Path, of: &Path) -> Result<()> {
    let path = new_dir.join("test.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("replay_of".into(), Value::String(of.display().to_string()));
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `stasis replay`: returns the exit code (that of the new run; 3 on errors).
pub fn run(args: &ReplayArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stasis replay: {e:#}");
            3
        }
    }
}

fn run_inner(a: &ReplayArgs) -> Result<u8> {
    let old = store::resolve_run(&a.run_dir)?;
    let stored = load_test_json(&old)?;
    let mut args = stored.args.clone();
    args.seed = Some(stored.seed);
    args.store = a.store.clone();
    args.node_bin = a.node_bin.clone();
    println!(
        "stasis replay: replaying {} (seed {}, {} scheduled faults, {} {} nodes, {} s workload)",
        old.display(),
        stored.seed,
        stored.schedule.len(),
        args.nodes,
        args.sut,
        args.time_limit.as_secs_f64()
    );
    println!("stasis replay: note: {TIMING_NOTE}");
    let overrides = Overrides {
        schedule: Some(stored.schedule.clone()),
        settings: Some(stored.settings.clone()),
    };
    // The same test name as the original (its run directory's parent).
    let name = old
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| args.name.clone())
        .unwrap_or_else(|| stored.sut.name.clone());
    args.name = Some(name.clone());
    let base = args.store.join(&name);
    let before = std::fs::read_link(base.join("latest")).ok();
    let result = run::execute(&args, &overrides);
    let new_dir = match &result {
        Ok(o) => Some(o.run_dir.clone()),
        Err(_) => {
            let after = std::fs::read_link(base.join("latest")).ok();
            (after.is_some() && after != before).then(|| base.join(after.unwrap_or_default()))
        }
    };
    if let Some(d) = &new_dir
        && d.join("test.json").is_file()
    {
        mark_replay(d, &old)?;
    }
    let outcome = result?;
    println!(
        "stasis replay: new run {} replays {} (same seed, options and nemesis schedule; process timing not reproduced)",
        outcome.run_dir.display(),
        old.display()
    );
    Ok(outcome.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_compatibility() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(compatible("1.2.0", "1.5.1"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(!compatible("(none)", "0.1.0"));
        assert!(!compatible("", "0.1.0"));
    }

    #[test]
    fn bad_test_json_is_a_one_line_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("test.json"), r#"{"stasis_version": "9.0.0"}"#).unwrap();
        let e = format!("{:#}", load_test_json(d.path()).err().unwrap());
        assert!(e.contains("written by stasis 9.0.0"), "{e}");
        assert!(!e.contains('\n'));
        std::fs::write(d.path().join("test.json"), r#"{"stasis_version": "0.1.0"}"#).unwrap();
        let e = format!("{:#}", load_test_json(d.path()).err().unwrap());
        assert!(e.contains("cannot replay: missing field"), "{e}");
        assert!(!e.contains('\n'));
        std::fs::write(d.path().join("test.json"), "{not json").unwrap();
        let e = format!("{:#}", load_test_json(d.path()).err().unwrap());
        assert!(e.contains("not valid JSON"), "{e}");
    }
}
