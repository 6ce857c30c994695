//! `stasis doctor` end to end. These tests need root (CI runs as root): they create
//! `stasis-` namespaces through the doctor and check that nothing is left behind.

use std::path::Path;
use std::process::{Command, Output};

fn stasis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stasis"))
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (namespaces, iptables): run them as root, as CI does"
    );
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(20..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
}

/// Runs the command, returning its pid (the owner of the doctor's topology) and output.
fn run(mut cmd: Command) -> (u32, Output) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// Namespaces and links left by the doctor run (process `pid`) that printed `out`: its
/// topology id (e.g. `d7`) is in the netns line.
fn leftovers_of(out: &str, pid: u32) -> Vec<String> {
    let Some(start) = out.find("stasis-d") else {
        return Vec::new();
    };
    let digits: String = out[start + 8..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    assert!(!digits.is_empty(), "no topology id in:\n{out}");
    harness::cleanup::leftovers(&format!("d{digits}"), pid)
}

#[test]
fn doctor_builds_a_namespace_pair_and_cleans_up() {
    require_root();
    let mut cmd = stasis();
    cmd.arg("doctor");
    let (pid, child) = run(cmd);
    let out = text(&child);
    for name in [
        "root",
        "netns + bridge",
        "iptables in a netns",
        "NFQUEUE in a netns",
        "libfaketime",
    ] {
        assert!(line(&out, name).starts_with("OK"), "{name}:\n{out}");
    }
    assert!(
        line(&out, "netns + bridge").contains("talk over bridge stasis-d"),
        "{out}"
    );
    assert!(
        line(&out, "NFQUEUE in a netns").contains("with 50 ms added"),
        "{out}"
    );
    assert_eq!(child.status.code(), Some(0), "{out}");
    assert!(out.contains("ready:"), "{out}");
    // The doctor's namespaces, veths and bridge are gone.
    let left = leftovers_of(&out, pid);
    assert!(left.is_empty(), "doctor left {left:?}");
}

#[test]
fn doctor_without_root_says_so_and_fails() {
    require_root();
    // setpriv (util-linux) drops to nobody for the child only.
    assert!(
        Path::new("/usr/bin/setpriv").exists(),
        "setpriv (util-linux) must be installed: run scripts/setup.sh"
    );
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_stasis"))
        .args(["doctor"])
        .env("STASIS_STATE_DIR", std::env::temp_dir());
    let (pid, o) = run(cmd);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let root = line(&out, "root");
    assert!(root.starts_with("MISSING"), "{out}");
    assert!(root.contains("fix: run as root"), "{out}");
    assert!(out.contains("not ready:"), "{out}");
    assert!(leftovers_of(&out, pid).is_empty());
}

#[test]
fn doctor_reports_missing_iptables_with_the_fix() {
    require_root();
    // A PATH with ip and date but no iptables.
    let dir = tempfile::tempdir().unwrap();
    for tool in ["ip", "date"] {
        let real = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not installed"));
        std::os::unix::fs::symlink(real, dir.path().join(tool)).unwrap();
    }
    let mut cmd = stasis();
    cmd.arg("doctor").env("PATH", dir.path());
    let (pid, o) = run(cmd);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let ipt = line(&out, "iptables in a netns");
    assert!(ipt.starts_with("MISSING"), "{out}");
    assert!(ipt.contains("apt-get install iptables"), "{out}");
    assert!(line(&out, "iptables ").starts_with("MISSING"), "{out}");
    assert!(
        line(&out, "etcd").starts_with("MISSING (optional)"),
        "{out}"
    );
    // Even on this failure path the topology was removed.
    let left = leftovers_of(&out, pid);
    assert!(left.is_empty(), "doctor left {left:?}");
}

#[test]
fn help_reads_like_a_real_tool() {
    let o = stasis().arg("--help").output().unwrap();
    let out = text(&o);
    assert!(o.status.success());
    for s in ["doctor", "check", "Exit codes", "linearizable"] {
        assert!(out.contains(s), "--help lacks {s}:\n{out}");
    }
    let o = stasis().args(["doctor", "--help"]).output().unwrap();
    let out = text(&o);
    assert!(out.contains("--no-network"), "{out}");
    assert!(out.contains("host's own iptables"), "{out}");
    // Usage errors are "bad input": exit 3, never 2 (which means "unknown").
    let o = stasis().arg("frobnicate").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("unrecognized subcommand"));
}
