//! Integration tests with real `stasis-node` processes on 127.0.0.1.
//!
//! Every test owns its processes through a [`Cluster`] whose `Drop` kills (SIGKILL) and
//! reaps every child it started, also when the test fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::resp::{self, Value};

const BIN: &str = env!("CARGO_BIN_EXE_stasis-node");

/// Node flags selecting each protocol (Raft is the default).
const RAFT: &[&str] = &[];
const MULTIPAXOS: &[&str] = &["--protocol", "multipaxos"];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Sends one command and reads one reply (None on any I/O problem or timeout).
fn call(port: u16, args: &[&str]) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(8))).ok()?;
    let mut out = Vec::new();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp::encode_command(&args, &mut out);
    s.write_all(&out).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((v, _))) = resp::parse_reply(&buf) {
            return Some(v);
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status(port: u16) -> Option<serde_json::Value> {
    match call(port, &["STATUS"])? {
        Value::Bulk(Some(b)) => serde_json::from_slice(&b).ok(),
        _ => None,
    }
}

struct NodeProc {
    child: Option<Child>,
    client: u16,
    peer: u16,
    args: Vec<String>,
    log: PathBuf,
}

struct Cluster {
    dir: tempfile::TempDir,
    nodes: BTreeMap<u64, NodeProc>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Cluster {
    /// Starts `n` voters (plus `extra` empty nodes started with --join).
    fn start(n: u64, extra: u64, flags: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..n + extra).map(|_| (free_port(), free_port())).collect();
        let peers: Vec<String> = (1..=n)
            .map(|i| format!("n{i}=127.0.0.1:{}", ports[i as usize - 1].1))
            .collect();
        let peers = peers.join(",");
        let mut c = Cluster {
            dir,
            nodes: BTreeMap::new(),
        };
        for i in 1..=n + extra {
            let (client, peer) = ports[i as usize - 1];
            let mut args = vec![
                "--id".to_string(),
                format!("n{i}"),
                "--listen".into(),
                format!("127.0.0.1:{client}"),
                "--peer-listen".into(),
                format!("127.0.0.1:{peer}"),
                "--data-dir".into(),
                c.dir.path().join(format!("n{i}")).display().to_string(),
            ];
            if i <= n {
                args.push("--peers".into());
                args.push(peers.clone());
            } else {
                args.push("--join".into());
            }
            args.extend(flags.iter().map(|s| s.to_string()));
            let log = c.dir.path().join(format!("n{i}.log"));
            c.nodes.insert(
                i,
                NodeProc {
                    child: None,
                    client,
                    peer,
                    args,
                    log,
                },
            );
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, id: u64) {
        let n = self.nodes.get_mut(&id).unwrap();
        assert!(n.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(&n.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start stasis-node");
        n.child = Some(child);
    }

    fn kill9(&mut self, id: u64) {
        if let Some(mut c) = self.nodes.get_mut(&id).unwrap().child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn port(&self, id: u64) -> u16 {
        self.nodes[&id].client
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[&id].log).unwrap_or_default()
    }

    fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.child.is_some())
            .map(|(&i, _)| i)
            .collect()
    }

    /// Waits until a running node reports itself leader (and has applied its term's no-op).
    fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for id in self.running() {
                if let Some(s) = status(self.port(id))
                    && s["role"] == "leader"
                    && s["applied_index"].as_u64() >= s["commit_index"].as_u64()
                {
                    return id;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let tails: Vec<String> = self
            .nodes
            .keys()
            .map(|&id| {
                let log = self.log(id);
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(25);
                format!("--- n{id} ---\n{}", lines[from..].join("\n"))
            })
            .collect();
        panic!(
            "no leader within 20s; last log lines:\n{}",
            tails.join("\n")
        );
    }

    /// Sends a command to the leader, following redirects. Returns the final reply.
    fn request(&self, args: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut port = self.port(self.leader());
        loop {
            let reply = call(port, args);
            match &reply {
                Some(Value::Error(e)) if e.starts_with("NOTLEADER") => {
                    let mut parts = e.split_whitespace().skip(1);
                    let (_id, addr) = (parts.next(), parts.next());
                    port = match addr.and_then(|a| a.rsplit(':').next()?.parse().ok()) {
                        Some(p) => p,
                        None => {
                            std::thread::sleep(Duration::from_millis(100));
                            self.port(self.leader())
                        }
                    };
                }
                Some(v) => return v.clone(),
                None => {
                    std::thread::sleep(Duration::from_millis(100));
                    port = self.port(self.leader());
                }
            }
            assert!(Instant::now() < deadline, "no answer for {args:?}");
        }
    }

    /// Writes `count` fresh keys; returns those acknowledged with +OK.
    fn write_keys(&self, prefix: &str, count: usize) -> Vec<(String, String)> {
        let mut acked = Vec::new();
        for i in 0..count {
            let (k, v) = (format!("{prefix}{i}"), format!("v-{prefix}-{i}"));
            if self.request(&["SET", &k, &v]) == Value::ok() {
                acked.push((k, v));
            }
        }
        acked
    }

    fn check_keys(&self, acked: &[(String, String)]) {
        for (k, v) in acked {
            assert_eq!(
                self.request(&["GET", k]),
                Value::Bulk(Some(v.clone().into_bytes())),
                "acknowledged write {k}={v} lost"
            );
        }
    }
}

#[test]
fn raft_writes_survive_kill9_of_the_leader_and_of_all_nodes() {
    writes_survive_kill9(RAFT);
}

#[test]
fn multipaxos_writes_survive_kill9_of_the_leader_and_of_all_nodes() {
    writes_survive_kill9(MULTIPAXOS);
}

fn writes_survive_kill9(protocol: &[&str]) {
    let mut c = Cluster::start(3, 0, protocol);
    let mut acked = c.write_keys("a", 40);
    assert_eq!(acked.len(), 40);
    let l = c.leader();
    c.kill9(l);
    acked.extend(c.write_keys("b", 40));
    let l2 = c.leader();
    assert_ne!(l, l2);
    c.check_keys(&acked);
    c.spawn(l);
    acked.extend(c.write_keys("c", 20));
    for id in 1..=3 {
        c.kill9(id);
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    c.leader();
    c.check_keys(&acked);
    assert!(
        acked.len() >= 90,
        "most writes should succeed: {}",
        acked.len()
    );
}

#[test]
fn raft_restarted_node_catches_up_by_snapshot() {
    catches_up_by_snapshot(RAFT);
}

#[test]
fn multipaxos_restarted_node_catches_up_by_snapshot() {
    catches_up_by_snapshot(MULTIPAXOS);
}

fn catches_up_by_snapshot(protocol: &[&str]) {
    let mut c = Cluster::start(3, 0, &[protocol, &["--snapshot-every", "50"]].concat());
    let l = c.leader();
    let f = (1..=3).find(|&i| i != l).unwrap();
    c.kill9(f);
    let acked = c.write_keys("s", 200);
    c.spawn(f);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lc = status(c.port(c.leader())).unwrap()["commit_index"]
            .as_u64()
            .unwrap();
        let fa = status(c.port(f))
            .and_then(|s| s["applied_index"].as_u64())
            .unwrap_or(0);
        if fa >= lc {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "follower did not catch up ({fa} < {lc})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.log(f).contains("installing snapshot"),
        "the follower should have caught up by snapshot"
    );
    // The follower's state is real: make it the survivor that serves the data.
    let other = (1..=3).find(|&i| i != l && i != f).unwrap();
    c.kill9(l);
    let l2 = c.leader();
    assert!(l2 == f || l2 == other);
    c.check_keys(&acked);
}

#[test]
fn follower_redirects_and_status_reports_the_cluster() {
    let c = Cluster::start(3, 0, &["--read-mode", "lease"]);
    let l = c.leader();
    let f = (1..=3).find(|&i| i != l).unwrap();
    let lp = c.port(l);
    let expect = format!("NOTLEADER n{l} 127.0.0.1:{lp}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match call(c.port(f), &["SET", "k", "v"]) {
            Some(Value::Error(e)) if e == expect => break,
            other => {
                assert!(Instant::now() < deadline, "unexpected redirect {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert!(
        matches!(call(c.port(f), &["GET", "k"]), Some(Value::Error(e)) if e.starts_with("NOTLEADER"))
    );
    let s = status(lp).unwrap();
    assert_eq!(s["id"], format!("n{l}"));
    assert_eq!(s["protocol"], "raft");
    assert_eq!(s["role"], "leader");
    assert_eq!(s["leader"], format!("n{l}"));
    assert_eq!(s["leader_addr"], format!("127.0.0.1:{lp}"));
    assert_eq!(s["voters"], serde_json::json!(["n1", "n2", "n3"]));
    assert_eq!(s["learners"], serde_json::json!([]));
    assert_eq!(s["joint"], false);
    assert_eq!(
        s["bugs"],
        serde_json::json!([]),
        "no seeded bug unless asked"
    );
    assert!(s["term"].as_u64().unwrap() >= 1);
    let wall = s["wall_clock_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(wall.abs_diff(now) < 60_000);
    // Lease reads on the leader see the latest write.
    assert_eq!(c.request(&["SET", "k", "v2"]), Value::ok());
    assert_eq!(
        call(lp, &["GET", "k"]),
        Some(Value::Bulk(Some(b"v2".to_vec())))
    );
    assert_eq!(call(lp, &["PING"]), Some(Value::Simple("PONG".into())));
    assert!(
        matches!(call(lp, &["SET", "k"]), Some(Value::Error(e)) if e.starts_with("ERR wrong number"))
    );
}

#[test]
fn raft_redis_cli_can_set_get_and_cas() {
    redis_cli(RAFT);
}

#[test]
fn multipaxos_redis_cli_can_set_get_and_cas() {
    redis_cli(MULTIPAXOS);
}

fn redis_cli(protocol: &[&str]) {
    let c = Cluster::start(3, 0, protocol);
    let port = c.port(c.leader()).to_string();
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("redis-cli is required: apt-get install -y redis-tools");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "x", "1"]), "OK");
    assert_eq!(cli(&["GET", "x"]), "1");
    assert_eq!(cli(&["CAS", "x", "1", "2"]), "1");
    assert_eq!(cli(&["CAS", "x", "1", "3"]), "0");
    assert_eq!(cli(&["CAS", "missing", "1", "3"]), "0");
    assert_eq!(cli(&["GET", "x"]), "2");
    assert_eq!(cli(&["GET", "missing"]), "");
    assert_eq!(cli(&["PING"]), "PONG");
    assert!(cli(&["STATUS"]).contains("\"role\":\"leader\""));
}

#[test]
fn membership_change_adds_learners_then_removes_old_voters() {
    let mut c = Cluster::start(3, 2, &["--snapshot-every", "30"]);
    let acked = c.write_keys("m", 50);
    let spec = |ids: &[u64]| -> String {
        ids.iter()
            .map(|i| format!("n{i}=127.0.0.1:{}", c.nodes[i].peer))
            .collect::<Vec<_>>()
            .join(",")
    };
    let all = spec(&[1, 2, 3, 4, 5]);
    assert_eq!(c.request(&["RECONFIG", &all]), Value::ok());
    let s = status(c.port(c.leader())).unwrap();
    assert_eq!(
        s["voters"],
        serde_json::json!(["n1", "n2", "n3", "n4", "n5"])
    );
    assert_eq!(s["joint"], false);
    let l = c.leader();
    // Remove the leader and another old voter.
    let keep: Vec<u64> = [1, 2, 3, 4, 5]
        .into_iter()
        .filter(|&i| i != l && i != (l % 3) + 1)
        .collect();
    assert_eq!(c.request(&["RECONFIG", &spec(&keep)]), Value::ok());
    for id in [l, (l % 3) + 1] {
        c.kill9(id);
    }
    let l2 = c.leader();
    assert!(keep.contains(&l2));
    let s = status(c.port(l2)).unwrap();
    let voters: Vec<String> = keep.iter().map(|i| format!("n{i}")).collect();
    assert_eq!(s["voters"], serde_json::json!(voters));
    c.check_keys(&acked);
    assert!(matches!(
        c.request(&["RECONFIG", "n1=nowhere"]),
        Value::Error(e) if e.starts_with("ERR")
    ));
}

#[test]
fn raft_sigterm_stops_a_node_cleanly() {
    sigterm_stops(RAFT);
}

#[test]
fn multipaxos_sigterm_stops_a_node_cleanly() {
    sigterm_stops(MULTIPAXOS);
}

fn sigterm_stops(protocol: &[&str]) {
    let mut c = Cluster::start(1, 0, protocol);
    c.leader();
    let mut child = c.nodes.get_mut(&1).unwrap().child.take().unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_flags_and_unusable_data_dir_fail_with_one_line() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(
            err.lines().count(),
            1,
            "one-line error expected, got: {err}"
        );
        err
    };
    let common = [
        "--id",
        "n1",
        "--listen",
        "127.0.0.1:1",
        "--peer-listen",
        "127.0.0.1:2",
        "--peers",
        "n1=127.0.0.1:2",
    ];
    let mut a = common.to_vec();
    a.extend(["--data-dir", "/tmp/x", "--tick-ms", "fast"]);
    assert!(run(&a).contains("tick-ms"));
    let mut a = common.to_vec();
    a.extend(["--data-dir", "/proc/stasis-cannot-exist/data"]);
    assert!(run(&a).contains("data dir"));
    let mut a = common.to_vec();
    a.extend(["--data-dir", "/tmp/x", "--protocol", "paxos"]);
    assert!(run(&a).contains("--protocol"));
    // Quorum systems whose phase-1 and phase-2 quorums may not intersect are refused.
    let three = [
        "--id",
        "n1",
        "--listen",
        "127.0.0.1:1",
        "--peer-listen",
        "127.0.0.1:2",
        "--peers",
        "n1=127.0.0.1:2,n2=127.0.0.1:3,n3=127.0.0.1:4",
        "--data-dir",
        "/tmp/x",
        "--protocol",
        "multipaxos",
    ];
    for (q, want) in [
        ("flexible:1,2", "--quorum flexible:1,2"),
        ("grid:2x2", "--quorum grid:2x2"),
        ("even", "--quorum even"),
        ("triangle", "--quorum"),
    ] {
        let mut a = three.to_vec();
        a.extend(["--quorum", q]);
        let e = run(&a);
        assert!(e.contains(want), "{q}: {e}");
    }
    let mut a = common.to_vec();
    a.extend(["--data-dir", "/tmp/x", "--quorum", "grid:1x1"]);
    assert!(run(&a).contains("multipaxos only"));
    // Seeded bugs: unknown names and bugs of the other protocol exit 2 with one line.
    for (bug, want) in [
        ("no-such-bug", "unknown"),
        ("no-fencing", "multipaxos only"),
    ] {
        let mut a = common.to_vec();
        a.extend(["--data-dir", "/tmp/x", "--bug", bug]);
        let out = Command::new(BIN).args(&a).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--bug {bug}");
        assert!(run(&a).contains(want), "--bug {bug}");
    }
    // A client port that is already taken.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let peer = format!("127.0.0.1:{}", free_port());
    let peers = format!("n1={peer}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let a = [
        "--id",
        "n1",
        "--listen",
        &busy_addr,
        "--peer-listen",
        &peer,
        "--peers",
        &peers,
        "--data-dir",
        &data,
    ];
    assert!(run(&a).contains("port in use"));
}

#[test]
fn seeded_bugs_are_reported_by_status_and_warned_about() {
    let c = Cluster::start(1, 0, &["--bug", "stale-read", "--bug", "unsafe-reconfig"]);
    let l = c.leader();
    let s = status(c.port(l)).unwrap();
    assert_eq!(
        s["bugs"],
        serde_json::json!(["stale-read", "unsafe-reconfig"])
    );
    assert!(
        c.log(1).contains("SEEDED BUGS ON"),
        "no startup warning: {}",
        c.log(1)
    );
}

fn signal(c: &Cluster, id: u64, sig: &str) {
    let pid = c.nodes[&id].child.as_ref().expect("running").id();
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// A leader paused past its lease (SIGSTOP) must not serve a stale lease read when it
/// resumes: it first brings its clock up to date, sees the lease expired and (having lost
/// contact) steps down or answers with the fresh value.
#[test]
fn paused_leader_serves_no_stale_lease_reads() {
    let c = Cluster::start(3, 0, &["--read-mode", "lease"]);
    for round in 0..3 {
        let key = format!("p{round}");
        assert_eq!(c.request(&["SET", &key, "old"]), Value::ok());
        let l = c.leader();
        assert_eq!(
            call(c.port(l), &["GET", &key]),
            Some(Value::Bulk(Some(b"old".to_vec())))
        );
        signal(&c, l, "-STOP");
        // Wait for another leader, and write through it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let l2 = loop {
            let other = (1..=3)
                .filter(|&i| i != l)
                .find(|&i| status(c.port(i)).is_some_and(|s| s["role"] == "leader"));
            if let Some(o) = other {
                break o;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader while n{l} is paused"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while call(c.port(l2), &["SET", &key, "new"]) != Some(Value::ok()) {
            assert!(Instant::now() < deadline, "write on the new leader failed");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Queue a read on the paused leader, then let it run.
        let port = c.port(l);
        let reader = std::thread::spawn(move || call(port, &["GET", &key]));
        std::thread::sleep(Duration::from_millis(100));
        signal(&c, l, "-CONT");
        match reader.join().unwrap() {
            Some(Value::Bulk(Some(v))) => assert_eq!(v, b"new", "stale read from a paused leader"),
            Some(Value::Error(_)) | None => {}
            other => panic!("unexpected reply {other:?}"),
        }
    }
}

/// A write pending at a leader that loses leadership stays pending (as in etcd's server):
/// when its entry commits in a later term, the client gets +OK, not an UNKNOWN from the
/// moment the leader stepped down.
#[test]
fn raft_write_pending_across_a_lost_and_regained_leadership_is_answered() {
    let c = Cluster::start(
        3,
        0,
        &["--election-ticks", "30", "--request-timeout-ms", "30000"],
    );
    assert_eq!(c.request(&["SET", "w", "before"]), Value::ok());
    let l = c.leader();
    let term = status(c.port(l)).unwrap()["term"].as_u64().unwrap();
    let followers: Vec<u64> = (1..=3).filter(|&i| i != l).collect();
    for &f in &followers {
        signal(&c, f, "-STOP");
    }
    let port = c.port(l);
    let writer = std::thread::spawn(move || call(port, &["SET", "w", "after"]));
    // Without acknowledgements the leader steps down (check quorum, one election timeout).
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(c.port(l)).is_some_and(|s| s["role"] == "leader") {
        assert!(Instant::now() < deadline, "n{l} never stepped down");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = status(c.port(l)).unwrap();
    assert!(s["last_index"].as_u64() > s["commit_index"].as_u64(), "{s}");
    // One follower comes back. Whoever wins the next term (the old leader, or the
    // follower if the entry already waited in its socket), the entry commits.
    signal(&c, followers[0], "-CONT");
    let reply = writer.join().unwrap();
    assert_eq!(reply, Some(Value::ok()), "pending write not answered +OK");
    let s = status(c.port(l)).unwrap();
    assert!(s["term"].as_u64().unwrap() > term, "{s}");
    assert_eq!(
        c.request(&["GET", "w"]),
        Value::Bulk(Some(b"after".to_vec()))
    );
    signal(&c, followers[1], "-CONT");
}

/// Finding 6 of the node review: nodes whose quorum system or timing differ must not form
/// one cluster silently (disjoint flexible quorums, leases measured against a different
/// election timeout). The peer handshake refuses them, and says why in the log.
#[test]
fn a_peer_started_with_different_cluster_settings_is_refused() {
    let mut c = Cluster::start(3, 0, MULTIPAXOS);
    c.leader();
    c.kill9(3);
    c.nodes
        .get_mut(&3)
        .unwrap()
        .args
        .extend(["--quorum".to_string(), "flexible:3,1".to_string()]);
    c.spawn(3);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refused =
        |c: &Cluster| (1..=3).any(|i| c.log(i).contains("runs with different cluster settings"));
    while !refused(&c) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: String = (1..=3).map(|i| c.log(i)).collect();
    assert!(refused(&c), "no refusal logged:\n{logs}");
    assert!(logs.contains("quorum=flexible:3,1"), "{logs}");
    // n3 takes no part: the other two still serve writes, and n3 learns none of them.
    let acked = c.write_keys("after", 5);
    assert_eq!(acked.len(), 5);
    let st = status(c.port(3)).expect("n3 answers STATUS");
    assert_ne!(st["role"], "leader", "{st}");
}

/// Issue 16, finding 6 (cluster identity): a node of another cluster whose settings agree
/// (two clusters on reused addresses and ports) is refused at the handshake, and a data
/// directory first used by one cluster is not opened by a node of another.
#[test]
fn a_node_of_another_cluster_is_refused_as_peer_and_cannot_take_the_data_dir() {
    let mut c = Cluster::start(3, 0, RAFT);
    c.leader();
    c.kill9(3);
    c.nodes
        .get_mut(&3)
        .unwrap()
        .args
        .extend(["--cluster".to_string(), "other".to_string()]);
    // Its data directory belongs to the default cluster: the node refuses to start.
    c.spawn(3);
    let exit = c
        .nodes
        .get_mut(&3)
        .unwrap()
        .child
        .take()
        .unwrap()
        .wait()
        .unwrap();
    assert!(!exit.success());
    let log = c.log(3);
    assert!(
        log.contains("belongs to cluster \"stasis\"") && log.contains("--cluster \"other\""),
        "{log}"
    );
    // With a fresh directory it starts, but the others refuse it as a peer (and it them).
    let fresh = c.dir.path().join("n3-other").display().to_string();
    let args = &mut c.nodes.get_mut(&3).unwrap().args;
    let at = args.iter().position(|a| a == "--data-dir").unwrap() + 1;
    args[at] = fresh;
    c.spawn(3);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refused = |c: &Cluster| {
        (1..=3).any(|i| {
            c.log(i)
                .contains("belongs to cluster \"other\", this node to \"stasis\"")
        })
    };
    while !refused(&c) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: String = (1..=3).map(|i| c.log(i)).collect();
    assert!(refused(&c), "no refusal logged:\n{logs}");
    let acked = c.write_keys("after", 5);
    assert_eq!(acked.len(), 5);
    let st = status(c.port(3)).expect("n3 answers STATUS");
    assert_ne!(st["role"], "leader", "{st}");
    assert_eq!(st["commit_index"].as_u64().unwrap_or(0), 0, "{st}");
}
