//! etcd (Debian's etcd-server) under Stasis, described by a TOML spec like any user's
//! system. Needs root and the `etcd` binary (scripts/setup.sh installs etcd-server).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use harness::client::etcd::EtcdClient;
use harness::client::etcd_grpc::{self, EtcdGrpcClient};
use harness::client::resp::Endpoint;
use harness::client::{Client, ClientOp, Completion};
use serde_json::{Value, json};

fn require_etcd() {
    let ok = Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "etcd is not installed: run scripts/setup.sh (Debian package etcd-server)"
    );
}

#[test]
fn etcd_survives_kill_pause_partition() {
    require_etcd();
    let r = stasis_test(&[
        "--sut",
        "etcd",
        "--nemesis",
        "kill,pause,partition",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["kill", "pause", "partition"], 300);
}

/// etcd's serializable reads are served from a member's local state. Isolate one member
/// while clients keep reading from it and others write through the majority: Stasis must
/// report stale reads, and the explanation must point at a read.
#[test]
fn etcd_serializable_reads_are_caught_as_stale() {
    require_etcd();
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("etcd-serializable.toml");
    let text = harness::sut::BUILTIN
        .iter()
        .find(|(n, _)| *n == "etcd")
        .unwrap()
        .1
        .replace("serializable_reads = false", "serializable_reads = true")
        .replace("name = \"etcd\"", "name = \"etcd-serializable\"");
    std::fs::write(&spec, text).unwrap();
    let r = stasis_test(&[
        "--sut",
        spec.to_str().unwrap(),
        "--nemesis",
        "partition",
        "--shapes",
        "isolate-one",
        "--time-limit",
        "25s",
        "--nemesis-interval",
        "8s",
    ]);
    assert_eq!(
        r.out.status.code(),
        Some(1),
        "expected a violation:\n{}",
        r.text
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "not-linearizable");
    let blocked = &results["check"]["explanation"]["blocked"];
    assert_eq!(
        blocked["f"], "read",
        "the violation should be a stale read: {blocked}"
    );
    let summary = std::fs::read_to_string(r.dir.join("summary.txt")).unwrap();
    assert!(summary.contains("violation: read"), "{summary}");
    let html = std::fs::read_to_string(r.dir.join("timeline.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(r.dir.join("explanation.txt").is_file());
    assert_nothing_left(&r.dir, r.pid);
}

/// The built-in etcd spec with `api = "grpc"`, written to a file in `dir`.
fn grpc_spec(dir: &Path) -> std::path::PathBuf {
    let spec = dir.join("etcd-grpc.toml");
    let text = harness::sut::BUILTIN
        .iter()
        .find(|(n, _)| *n == "etcd")
        .unwrap()
        .1
        .replace("api = \"gateway\"", "api = \"grpc\"")
        .replace("name = \"etcd\"", "name = \"etcd-grpc\"");
    assert!(text.contains("api = \"grpc\""));
    std::fs::write(&spec, text).unwrap();
    spec
}

/// A short real run over etcd's native gRPC API, with kills and partitions: the leader
/// probe, the clients and the final reads all speak gRPC, and the history is linearizable.
#[test]
fn etcd_over_grpc_survives_kill_and_partition() {
    require_etcd();
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = grpc_spec(spec_dir.path());
    let r = stasis_test(&[
        "--sut",
        spec.to_str().unwrap(),
        "--nemesis",
        "kill,partition",
        "--time-limit",
        "15s",
        "--nemesis-interval",
        "3s",
    ]);
    assert_clean_pass(&r, &["kill", "partition"], 200);
    let test: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["sut"]["etcd"]["api"], "grpc");
}

/// One etcd member on loopback (no namespace, no root), killed when dropped.
struct Member {
    child: Option<Child>,
    addr: SocketAddr,
    args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Member {
    fn start(dir: &Path) -> Member {
        let (client, peer) = (free_port(), free_port());
        let c = format!("http://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let args: Vec<String> = [
            "--name",
            "stasis-m1",
            "--data-dir",
            dir.join("data").to_str().unwrap(),
            "--listen-client-urls",
            &c,
            "--advertise-client-urls",
            &c,
            "--listen-peer-urls",
            &p,
            "--initial-advertise-peer-urls",
            &p,
            "--initial-cluster",
            &format!("stasis-m1={p}"),
            "--initial-cluster-token",
            "stasis-grpc-test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut m = Member {
            child: None,
            addr: format!("127.0.0.1:{client}").parse().unwrap(),
            args,
        };
        m.restart(dir);
        m
    }

    /// Starts the member (again, on the same data and ports) and waits until it leads.
    fn restart(&mut self, dir: &Path) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("etcd.log"))
            .unwrap();
        self.child = Some(
            Command::new("etcd")
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let until = Instant::now() + Duration::from_secs(30);
        while etcd_grpc::is_leader(self.addr, Duration::from_millis(500)) != Ok(true) {
            assert!(
                Instant::now() < until,
                "etcd did not start: {}",
                std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write(key: &str, value: i64) -> ClientOp {
    ClientOp::Write {
        key: key.into(),
        value,
    }
}

fn cas(key: &str, old: i64, new: i64) -> ClientOp {
    ClientOp::Cas {
        key: key.into(),
        old,
        new,
    }
}

fn read(key: &str) -> ClientOp {
    ClientOp::Read { key: key.into() }
}

/// Compare-and-set against a real etcd, through gRPC and through the gateway: the same
/// outcome for the same operation (a cas on a missing key or on a changed value fails and
/// changes nothing, a matching one applies), and each client reads the other's writes.
/// Then the member is killed: a gRPC write on the dead connection is a definite `fail`
/// (nothing was sent), and once the member is back the same client connects again.
#[test]
fn grpc_cas_matches_the_gateway_against_a_real_etcd() {
    require_etcd();
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(dir.path());
    let nodes = vec![Endpoint {
        name: "n1".into(),
        addr: m.addr,
    }];
    let mut grpc = EtcdGrpcClient::new(nodes.clone(), 0, false);
    let mut gateway = EtcdClient::new(nodes, 0, false);
    let soon = || Instant::now() + Duration::from_secs(5);
    let fail = |c: &Completion| matches!(c, Completion::Fail(_));
    for (i, c) in [&mut grpc as &mut dyn Client, &mut gateway]
        .into_iter()
        .enumerate()
    {
        let k = format!("k{i}");
        assert!(
            fail(&c.invoke(&cas(&k, 0, 1), soon())),
            "cas on a missing key"
        );
        assert_eq!(c.invoke(&read(&k), soon()), Completion::Ok(Value::Null));
        assert_eq!(c.invoke(&write(&k, 5), soon()), Completion::Ok(json!(5)));
        assert!(
            fail(&c.invoke(&cas(&k, 4, 6), soon())),
            "cas on a changed value"
        );
        assert_eq!(c.invoke(&read(&k), soon()), Completion::Ok(json!(5)));
        assert_eq!(
            c.invoke(&cas(&k, 5, 7), soon()),
            Completion::Ok(json!([5, 7]))
        );
        assert!(
            fail(&c.invoke(&cas(&k, 5, 8), soon())),
            "the same cas twice"
        );
        assert_eq!(c.invoke(&read(&k), soon()), Completion::Ok(json!(7)));
        assert_eq!(c.node().as_deref(), Some("n1"));
    }
    // Each reads what the other wrote.
    assert_eq!(grpc.invoke(&read("k1"), soon()), Completion::Ok(json!(7)));
    assert_eq!(
        gateway.invoke(&read("k0"), soon()),
        Completion::Ok(json!(7))
    );
    assert_eq!(
        gateway.invoke(&cas("k0", 7, 9), soon()),
        Completion::Ok(json!([7, 9]))
    );
    assert!(fail(&grpc.invoke(&cas("k0", 7, 10), soon())));
    assert_eq!(grpc.invoke(&read("k0"), soon()), Completion::Ok(json!(9)));

    m.kill();
    std::thread::sleep(Duration::from_millis(300));
    let short = Instant::now() + Duration::from_millis(500);
    let r = grpc.invoke(&write("k0", 11), short);
    assert!(fail(&r), "a write to a killed member must be fail: {r:?}");
    m.restart(dir.path());
    assert_eq!(grpc.invoke(&read("k0"), soon()), Completion::Ok(json!(9)));
    assert_eq!(
        grpc.invoke(&cas("k0", 9, 12), soon()),
        Completion::Ok(json!([9, 12]))
    );
}

#[test]
fn clock_nemesis_is_refused_for_etcd() {
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--sut", "etcd", "--nemesis", "clock,kill"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot move etcd's clock"), "{err}");
    assert!(err.contains("faketime = false"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn user_spec_from_a_file_and_malformed_specs() {
    let dir = tempfile::tempdir().unwrap();
    // A malformed spec: a typo in a key, reported with file and line, exit 3.
    let bad = dir.path().join("mine.toml");
    std::fs::write(
        &bad,
        "name = \"mine\"\nclient = \"resp\"\n[ports]\nclient = 1\npeer = 2\n[start]\nprogram = \"x\"\npeer_fromat = \"{id}\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--sut", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:8: ", bad.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("peer_fromat"), "{err}");
    // A good user spec (the raft one, renamed) loads from the file and runs.
    let good = dir.path().join("myraft.toml");
    let text = harness::sut::BUILTIN[0]
        .1
        .replace("name = \"raft\"", "name = \"myraft\"");
    std::fs::write(&good, text).unwrap();
    let r = stasis_test(&[
        "--sut",
        good.to_str().unwrap(),
        "--nemesis",
        "none",
        "--time-limit",
        "5s",
    ]);
    assert_clean_pass(&r, &[], 100);
    assert!(
        r.dir.to_string_lossy().contains("/myraft-none/"),
        "{}",
        r.dir.display()
    );
}
