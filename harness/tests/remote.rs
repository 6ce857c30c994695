//! `stasis test --hosts`: nodes on "remote" hosts reached only through SSH. Each host is a
//! `stasis-` network namespace running its own sshd (Debian's openssh-server) on its own
//! address, with a key pair and host key generated for the test; the controller reaches
//! the nodes only through `ssh` (no setns for them). Needs root (CI runs as root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, assert_clean_pass, stasis_test};
use harness::net::{self, Topology};

const SSHD: &str = "/usr/sbin/sshd";

/// Three namespaces with an sshd each; everything is removed on drop (sshd by PID, node
/// processes left by a failed run by their pid files, then the namespaces).
struct Hosts {
    sshd: Vec<Child>,
    topo: Topology,
    tmp: tempfile::TempDir,
    hosts_file: PathBuf,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "stasis-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(st.success(), "ssh-keygen failed");
}

impl Hosts {
    fn start(n: usize) -> Hosts {
        Hosts::start_as(n, None)
    }

    /// `n` hosts; `login`: the user the controller logs in as and whether it runs every
    /// command through sudo (the hosts file's `user` and `sudo`), root without sudo if
    /// `None`.
    fn start_as(n: usize, login: Option<(&str, bool)>) -> Hosts {
        common::require_root();
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} missing: apt-get install openssh-server (scripts/setup.sh)"
        );
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let names: Vec<String> = (1..=n).map(|k| format!("h{k}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let topo = Topology::create('s', &refs).expect("namespaces");
        let tmp = tempfile::Builder::new()
            .prefix("stasis-remote-")
            .tempdir()
            .unwrap();
        let d = tmp.path().to_owned();
        let d = d.as_path();
        keygen(&d.join("id"));
        keygen(&d.join("hostkey"));
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        // The sessions' HOME: an empty directory, so the login shell does not run this
        // machine's root dotfiles (a slow ~/.bashrc would slow every command).
        std::fs::create_dir(d.join("home")).unwrap();
        // sshd reads authorized_keys as the user logging in: a non-root login needs to
        // reach it (the private key `id` stays 0600).
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(d.to_owned(), 0o755), (d.join("authorized_keys"), 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut hosts = Hosts {
            sshd: Vec::new(),
            topo,
            hosts_file: d.join("hosts.toml"),
            tmp,
        };
        let mut toml = format!(
            "host_key_checking = \"accept-new\"\nknown_hosts = \"{}\"\n",
            d.join("known_hosts").display()
        );
        for h in hosts.topo.hosts.clone() {
            let conf = d.join(format!("sshd-{}.conf", h.name));
            std::fs::write(
                &conf,
                format!(
                    "ListenAddress {addr}:22\nHostKey {dir}/hostkey\nPidFile none\n\
                     AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     StrictModes no\nMaxSessions 100\nMaxStartups 100\n\
                     SetEnv HOME={dir}/home\n",
                    addr = h.addr,
                    dir = d.display()
                ),
            )
            .unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", &h.netns, SSHD, "-D", "-e", "-f"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join(format!("sshd-{}.log", h.name))).unwrap())
                .spawn()
                .expect("sshd");
            hosts.sshd.push(child);
            toml.push_str(&format!(
                "\n[[host]]\naddress = \"{}\"\nkey = \"{}\"\ndir = \"{}\"\n",
                h.addr,
                d.join("id").display(),
                hosts.host_dir(&h.name).display()
            ));
            if let Some((user, sudo)) = login {
                toml.push_str(&format!("user = \"{user}\"\nsudo = {sudo}\n"));
            }
        }
        std::fs::write(&hosts.hosts_file, toml).unwrap();
        // sshd listens within moments; wait for every port to accept.
        let deadline = Instant::now() + Duration::from_secs(10);
        for h in &hosts.topo.hosts {
            let to = std::net::SocketAddr::from((h.addr, 22));
            while std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_err() {
                assert!(Instant::now() < deadline, "sshd on {to} never listened");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        hosts
    }

    /// The `dir` of host `name` (each host its own, as on separate machines).
    fn host_dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(format!("dir-{name}"))
    }

    /// `stasis test --hosts HOSTS-FILE ARGS...`.
    fn test(&self, args: &[&str]) -> Run {
        let hosts_file = self.hosts_file.to_str().unwrap();
        let mut all = vec!["--hosts", hosts_file];
        all.extend_from_slice(args);
        stasis_test(&all)
    }

    fn stasis(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_stasis"))
            .args(args)
            .arg("--hosts")
            .arg(&self.hosts_file)
            .output()
            .unwrap()
    }

    /// The `stasis-` FUSE mounts under the host directories, as each host sees them: its
    /// sshd runs in a mount namespace of its own (`ip netns exec` makes one), like a
    /// separate machine, so a host's mounts are in its sshd's /proc/PID/mounts.
    fn disk_mounts(&self) -> Vec<String> {
        let dir = format!("{}/dir-", self.tmp.path().display());
        let mut out = Vec::new();
        for (k, sshd) in self.sshd.iter().enumerate() {
            let mounts = std::fs::read_to_string(format!("/proc/{}/mounts", sshd.id()))
                .unwrap_or_else(|e| panic!("the mounts of host {}'s sshd: {e}", k + 1));
            for l in mounts.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() > 2
                    && f[0].starts_with("stasis-")
                    && f[2].starts_with("fuse")
                    && f[1].starts_with(&dir)
                {
                    out.push(format!("host {}: {} on {}", k + 1, f[0], f[1]));
                }
            }
        }
        out
    }

    /// What Stasis left on the hosts: run directories, disk-fault mounts, our chains,
    /// processes whose argv names a host directory.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for h in &self.topo.hosts {
            let dir = self.host_dir(&h.name);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    left.push(e.path().display().to_string());
                }
            }
            let rules = net::run_in(&h.netns, &["iptables", "-w", "-S"]).unwrap();
            if rules.contains("stasis") {
                left.push(format!("{}: {rules}", h.netns));
            }
        }
        let dir = self.tmp.path().to_string_lossy().into_owned();
        left.extend(
            self.disk_mounts()
                .into_iter()
                .map(|m| format!("disk-fault mount {m}")),
        );
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
                && String::from_utf8_lossy(&cmd).contains(&format!("{dir}/dir-"))
                && !is_zombie(pid)
            {
                left.push(format!("process {pid}: {}", String::from_utf8_lossy(&cmd)));
            }
        }
        left
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // (A disk-fault mount a failed run left lives in its host's mount namespace, which
        // goes away with the host's last process: the agents killed here, then sshd.)
        // Node processes a failed run left: by the pid files in the host directories.
        for h in &self.topo.hosts {
            let pattern = self.host_dir(&h.name);
            for pf in walk_pid_files(&pattern) {
                if let Some(pid) = std::fs::read_to_string(&pf)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                {
                    let pg = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGCONT);
                    let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        // Then every process in the hosts' namespaces: sshd and the sessions it forked
        // ("sshd: root@notty", one per connection), which outlive a killed sshd and, with
        // their namespace gone, would wait on their sockets forever. All of them are ours:
        // nothing else runs in a namespace this test made.
        for c in &mut self.sshd {
            let _ = c.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<u32> = self
                .topo
                .hosts
                .iter()
                .flat_map(|h| processes_in(&h.netns))
                .collect();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in &mut self.sshd {
            let _ = c.wait();
        }
        let _ = self.topo.teardown();
    }
}

/// A process that has exited and waits to be reaped (state Z in /proc/PID/stat).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_default()
        .rsplit(") ")
        .next()
        .is_some_and(|s| s.starts_with('Z'))
}

/// The live processes in network namespace `netns`: those whose /proc/PID/ns/net is the
/// namespace `ip netns` pinned at /run/netns/NAME.
fn processes_in(netns: &str) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = std::fs::metadata(net::netns_path(netns)) else {
        return Vec::new();
    };
    let want = format!("net:[{}]", ns.ino());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
                && !is_zombie(*pid)
        })
        .collect()
}

fn walk_pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(runs) = std::fs::read_dir(dir) else {
        return out;
    };
    for run in runs.flatten() {
        let Ok(nodes) = std::fs::read_dir(run.path()) else {
            continue;
        };
        for node in nodes.flatten() {
            let pf = node.path().join("pid");
            if pf.is_file() {
                out.push(pf);
            }
        }
    }
    out
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A session sshd forks per connection outlives a killed sshd; with its namespace deleted
/// it would wait on its socket forever, reparented to init (CI found 18 such "sshd:
/// root@notty" processes after a full run). Dropping the hosts kills every process in them.
#[test]
fn dropping_the_hosts_leaves_no_process_in_their_namespaces() {
    let hosts = Hosts::start(1);
    let h = hosts.topo.hosts[0].clone();
    let d = hosts.tmp.path();
    let mut client = Command::new("ssh")
        .arg("-i")
        .arg(d.join("id"))
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-l", "root"])
        .arg(h.addr.to_string())
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh (apt-get install openssh-client)");
    // Logged in once the session's `sleep` runs (beside sshd and its session process).
    let deadline = Instant::now() + Duration::from_secs(20);
    let inside = loop {
        let pids = processes_in(&h.netns);
        if pids.iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
        }) {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "the ssh session never started: {pids:?} in {}",
            h.netns
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(hosts);
    let _ = client.kill();
    let _ = client.wait();
    let alive: Vec<String> = inside
        .iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(**pid))
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            )
        })
        .collect();
    assert!(
        alive.is_empty(),
        "processes of a dropped host still run: {alive:?}"
    );
}

/// A 12 s run of `sut` on `hosts` with kill, pause and partition faults every 2 s (seed 7
/// draws a partition, a kill and pauses), linearizable with both families seen; its
/// report printed for `--nocapture`.
fn kill_pause_partition_on(hosts: &Hosts, sut: &str) -> Run {
    let run = hosts.test(&[
        "--sut",
        sut,
        "--nemesis",
        "kill,pause,partition",
        "--time-limit",
        "12s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "7",
    ]);
    println!("{sut}:\n{}", run.text);
    assert_clean_pass(&run, &["kill", "partition"], 50);
    run
}

/// A login user with passwordless sudo (a `stasis-` user and its /etc/sudoers.d file),
/// removed on drop.
struct SudoUser;

const SUDO_USER: &str = "stasis-sudo";
const SUDOERS: &str = "/etc/sudoers.d/stasis-sudo";

impl SudoUser {
    fn create() -> SudoUser {
        assert!(
            Path::new("/usr/bin/sudo").is_file(),
            "/usr/bin/sudo missing: apt-get install sudo (scripts/setup.sh)"
        );
        // A user a killed test left behind.
        let _ = Command::new("userdel")
            .arg(SUDO_USER)
            .stderr(Stdio::null())
            .status();
        for argv in [
            &[
                "useradd",
                "-M",
                "-d",
                "/nonexistent",
                "-s",
                "/bin/sh",
                SUDO_USER,
            ][..],
            // No password, but not locked: sshd (UsePAM no) refuses a locked account's keys.
            &["usermod", "-p", "*", SUDO_USER][..],
        ] {
            let st = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
            assert!(st.success(), "{argv:?} failed");
        }
        std::fs::write(SUDOERS, format!("{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(SUDOERS, std::fs::Permissions::from_mode(0o440)).unwrap();
        SudoUser
    }
}

impl Drop for SudoUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(SUDOERS);
        let _ = Command::new("userdel").arg(SUDO_USER).status();
    }
}

/// Hosts reached as a user that is not root: with `sudo = true` every command runs through
/// `sudo -n` and a faulted raft run passes and cleans up as it does as root; without it,
/// `doctor --hosts` refuses the hosts with the uid and what to do.
#[test]
fn a_sudo_user_runs_faults_on_ssh_hosts() {
    let _user = SudoUser::create();
    {
        let plain = Hosts::start_as(1, Some((SUDO_USER, false)));
        let doctor = plain.stasis(&["doctor"]);
        let t = text(&doctor);
        assert_eq!(doctor.status.code(), Some(1), "doctor --hosts:\n{t}");
        assert!(
            t.contains("iptables and signals need root") && t.contains("set sudo = true"),
            "{t}"
        );
    }
    let hosts = Hosts::start_as(3, Some((SUDO_USER, true)));
    let doctor = hosts.stasis(&["doctor"]);
    let t = text(&doctor);
    assert_eq!(doctor.status.code(), Some(0), "doctor --hosts:\n{t}");
    assert!(t.contains("root through sudo -n"), "{t}");
    let run = kill_pause_partition_on(&hosts, "raft");
    // The nodes ran as root (through sudo), their logs came back.
    for n in ["n1", "n2", "n3"] {
        let log = std::fs::read_to_string(run.dir.join(n).join("node.log")).unwrap_or_default();
        assert!(!log.is_empty(), "{n}/node.log was not fetched");
    }
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

#[test]
fn raft_on_ssh_hosts_with_kill_pause_and_partition() {
    let hosts = Hosts::start(3);
    let doctor = hosts.stasis(&["doctor"]);
    let t = text(&doctor);
    println!("{t}");
    assert_eq!(doctor.status.code(), Some(0), "doctor --hosts:\n{t}");
    for want in [
        "ssh round trip",
        "root",
        "iptables",
        "stasis-node",
        "leftovers",
        // The hosts' libfaketime, preloaded into `date` there.
        "fakes the clock of date",
        // The packet delayer's agent, uploaded and started there.
        "bound NFQUEUE",
        // The disk-fault filesystem's agent, mounting and unmounting there.
        "stasis diskfault-agent) mounted, switched a fault and unmounted",
    ] {
        assert!(t.contains(want), "doctor says nothing about {want}:\n{t}");
    }
    let run = kill_pause_partition_on(&hosts, "raft");
    // The node directories came back from the hosts: log, data and pid file.
    for n in ["n1", "n2", "n3"] {
        let log = std::fs::read_to_string(run.dir.join(n).join("node.log")).unwrap_or_default();
        assert!(
            !log.is_empty(),
            "{n}/node.log was not fetched:\n{}",
            run.text
        );
        assert!(run.dir.join(n).join("pid").is_file(), "{n}/pid not fetched");
        let data = std::fs::read_dir(run.dir.join(n).join("data"))
            .unwrap()
            .count();
        assert!(data > 0, "{n}/data is empty");
    }
    // The nodes ran on the hosts' addresses, not in namespaces of the run.
    let test: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("test.json")).unwrap()).unwrap();
    let placed = test["topology"]["hosts"].as_array().unwrap();
    for (k, h) in hosts.topo.hosts.iter().enumerate() {
        assert_eq!(placed[k]["address"], h.addr.to_string(), "{placed:?}");
    }
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

/// An 8 s run of `sut` on the hosts of `hosts_file` with clock faults every second (seed
/// 7), required to pass cleanly with clock faults in it.
fn clock_run(hosts_file: &str, sut: &str) -> Run {
    let run: Run = stasis_test(&[
        "--hosts",
        hosts_file,
        "--sut",
        sut,
        "--nemesis",
        "clock",
        "--time-limit",
        "8s",
        "--nemesis-interval",
        "1s",
        "--seed",
        "7",
    ]);
    println!("{sut} clock:\n{}", run.text);
    assert_clean_pass(&run, &["clock"], 50);
    run
}

/// Clock faults on ssh hosts: each node runs under its host's libfaketime, the control
/// file is written on the host over ssh, and every bump or strobe is verified by the
/// node's own reading of its wall clock (STATUS), as locally.
#[test]
fn clock_faults_on_ssh_hosts() {
    let hosts = Hosts::start(3);
    let hosts_file = hosts.hosts_file.to_str().unwrap().to_owned();
    let run = clock_run(&hosts_file, "raft");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    let clock: Vec<&serde_json::Value> = results["faults"]
        .as_array()
        .expect("faults in results.json")
        .iter()
        .filter(|f| f["family"] == "clock")
        .collect();
    assert!(!clock.is_empty(), "no clock fault:\n{}", run.text);
    for f in &clock {
        let ev = f["evidence"].to_string();
        // Moved, then reset, each read back from the node itself.
        assert!(
            ev.contains("clock reads") && ev.contains("reset: "),
            "clock fault without the node's own readings: {ev}"
        );
    }
    // The control files lived in the node directories on the hosts (fetched back),
    // reset to real time at the end.
    for n in ["n1", "n2", "n3"] {
        let rc = std::fs::read_to_string(run.dir.join(n).join("faketime.rc"))
            .unwrap_or_else(|e| panic!("{n}/faketime.rc not fetched: {e}"));
        assert_eq!(rc, "+0.000 x1\n", "{n}");
    }
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}

/// Multi-Paxos and etcd (the host's own `etcd`, as an operator installs it) on the same
/// ssh hosts, then Multi-Paxos with clock faults and with disk faults and kills. Not in the
/// default suite (about two minutes): `cargo test -p harness --test remote -- --ignored
/// multipaxos`.
#[test]
#[ignore]
fn multipaxos_and_etcd_on_ssh_hosts() {
    let hosts = Hosts::start(3);
    let hosts_file = hosts.hosts_file.to_str().unwrap().to_owned();
    for sut in ["multipaxos", "etcd"] {
        kill_pause_partition_on(&hosts, sut);
        let left = hosts.leftovers();
        assert!(left.is_empty(), "{sut} left on the hosts: {left:?}");
    }
    // Multi-Paxos's clock under the hosts' libfaketime (etcd's cannot move: Go).
    clock_run(&hosts_file, "multipaxos");
    let left = hosts.leftovers();
    assert!(left.is_empty(), "multipaxos left on the hosts: {left:?}");
    // Multi-Paxos under the disk nemesis with kills (etcd's power-loss finding has a
    // test of its own: etcd_power_loss_finding_on_ssh_hosts).
    disk_run(&hosts, "multipaxos", "disk,kill", &["disk", "kill"]);
}

/// The default test (`--nemesis all`: kill, pause, partition, clock, membership and net;
/// membership adds two spare nodes) on five ssh hosts, three voters and two spares: the
/// faults, their heals and the membership changes all go through ssh; linearizable,
/// nothing left. Raft here; multipaxos and etcd in the nightly's
/// `multipaxos_and_etcd_with_every_nemesis_on_five_ssh_hosts`.
#[test]
fn every_nemesis_on_five_ssh_hosts() {
    every_nemesis_on_five_hosts(&["raft"]);
}

/// [`every_nemesis_on_five_ssh_hosts`] for multipaxos and etcd (ignored by default, about
/// 70 s; run by `scripts/nightly.sh`). etcd's spec has no clock or membership faults.
#[test]
#[ignore]
fn multipaxos_and_etcd_with_every_nemesis_on_five_ssh_hosts() {
    every_nemesis_on_five_hosts(&["multipaxos", "etcd"]);
}

fn every_nemesis_on_five_hosts(suts: &[&str]) {
    let hosts = Hosts::start(5);
    for &sut in suts {
        let run = hosts.test(&[
            "--sut",
            sut,
            "--time-limit",
            "20s",
            "--nemesis-interval",
            "2s",
            // Seed 7 draws a partition, a kill and a network delay for all three, then
            // a clock fault and a membership replace for raft and multipaxos.
            "--seed",
            "7",
        ]);
        println!("{sut}:\n{}", run.text);
        let families: &[&str] = if sut == "etcd" {
            &["kill", "partition", "net"]
        } else {
            &["kill", "partition", "net", "clock", "membership"]
        };
        assert_clean_pass(&run, families, 50);
        let left = hosts.leftovers();
        assert!(left.is_empty(), "{sut} left on the hosts: {left:?}");
    }
}

/// Benchmark (prints a table, asserts no timing): what ssh control costs a fault, from the
/// nemesis deciding it to the fault applied and verified (`apply_ms` of results.json) and
/// back to healed (`heal_ms`), local namespaces against the same faults on ssh hosts (same
/// seed, same plan). `cargo test -p harness --test remote -- --ignored fault_latency
/// --nocapture`; numbers in docs/BENCHMARKS.md ("Remote hosts").
#[test]
#[ignore]
fn fault_latency_local_vs_ssh() {
    // The kill, pause and partition plan, then a clock plan (bumps and strobes: the
    // control file written on the host, the offset read back from the node).
    latency_table(&[
        (
            &["kill,pause,partition", "40s"],
            "7",
            &["kill", "partition"],
        ),
        (&["clock", "20s"], "7", &["clock"]),
    ]);
}

/// The same benchmark for network timing faults: the delayer a thread of the controller
/// in each namespace (local) against `stasis netfault-agent` on each host, set over its
/// ssh session and verified by probes run on the hosts (ssh). `cargo test -p harness
/// --test remote -- --ignored net_fault_latency --nocapture`.
#[test]
#[ignore]
fn net_fault_latency_local_vs_ssh() {
    latency_table(&[(&["net", "40s"], "7", &["net"])]);
}

/// Runs each plan (nemesis, time limit; seed; families that must occur) locally and on
/// three ssh hosts and prints apply and heal times per family.
fn latency_table(plans: &[(&[&str], &str, &[&str])]) {
    let hosts = Hosts::start(3);
    let hosts_file = hosts.hosts_file.to_str().unwrap().to_owned();
    let mut rows: Vec<(String, String, Vec<f64>, Vec<f64>)> = Vec::new();
    for &(plan, seed, families) in plans {
        let plan = [
            "--sut",
            "raft",
            "--nemesis",
            plan[0],
            "--time-limit",
            plan[1],
            "--nemesis-interval",
            "2s",
            "--seed",
            seed,
        ];
        for (place, extra) in [("local", vec![]), ("ssh", vec!["--hosts", &hosts_file])] {
            let args: Vec<&str> = extra.iter().copied().chain(plan).collect();
            let run: Run = stasis_test(&args);
            assert_clean_pass(&run, families, 50);
            let results: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap())
                    .unwrap();
            let faults = results["faults"]
                .as_array()
                .expect("faults in results.json");
            let mut by_family: std::collections::BTreeMap<String, (Vec<f64>, Vec<f64>)> =
                Default::default();
            for f in faults {
                let e = by_family
                    .entry(f["family"].as_str().unwrap_or("?").to_owned())
                    .or_default();
                e.0.push(f["apply_ms"].as_f64().unwrap());
                e.1.push(f["heal_ms"].as_f64().unwrap());
            }
            assert!(!by_family.is_empty(), "{place}: no faults");
            for (family, (apply, heal)) in by_family {
                rows.push((place.to_owned(), family, apply, heal));
            }
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("| where | family | faults | apply ms (median / max) | heal ms (median / max) |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (place, family, apply, heal) in &rows {
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!(
            "| {place} | {family} | {} | {:.1} / {:.1} | {:.1} / {:.1} |",
            apply.len(),
            median(apply),
            max(apply),
            median(heal),
            max(heal)
        );
    }
    // Every fault's times, in schedule order (the same plan in both places).
    for (place, family, apply, heal) in &rows {
        let ms = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("{place} {family}: apply {} | heal {}", ms(apply), ms(heal));
    }
}

/// Starts `stasis test --hosts` on `hosts` in the background (a store in the hosts'
/// scratch directory) and waits for `marker` in its history; returns the controller and
/// the run directory.
fn start_on_hosts(hosts: &Hosts, args: &[&str], marker: &str) -> (Child, PathBuf) {
    let store = hosts.tmp.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let hosts_file = hosts.hosts_file.to_str().unwrap();
    let mut argv = vec!["--hosts", hosts_file];
    argv.extend_from_slice(args);
    common::start_background(&store, &argv, marker)
}

/// Sends `signal` to the controller.
fn signal_controller(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// After a SIGKILLed controller: something was left on the hosts (else the test proves
/// nothing), and `stasis clean --hosts` exits 0. Returns clean's output.
fn clean_after_kill(hosts: &Hosts) -> String {
    assert!(
        !hosts.leftovers().is_empty(),
        "a killed controller left nothing behind: the test would prove nothing"
    );
    let clean = hosts.stasis(&["clean"]);
    let t = text(&clean);
    assert_eq!(clean.status.code(), Some(0), "{t}");
    t
}

/// Nothing of a run is left on the hosts, and the killed run's history still checks
/// linearizable.
fn assert_cleaned_and_history_checks(hosts: &Hosts, dir: &Path) {
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts after clean: {left:?}");
    let check = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .arg("check")
        .arg(dir.join("history.jsonl"))
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "the killed run's history:\n{}",
        text(&check)
    );
}

#[test]
fn clean_hosts_removes_what_a_dead_controller_left() {
    let hosts = Hosts::start(2);
    // What a controller killed outright leaves: a node process from a run directory
    // (started the way a run starts it, over ssh), and our chains.
    let h1 = &hosts.topo.hosts[0];
    let run_dir = hosts.host_dir("h1").join("stasis-dead");
    let node_dir = run_dir.join("n1");
    std::fs::create_dir_all(&node_dir).unwrap();
    let key = hosts.tmp.path().join("id");
    let kh = hosts.tmp.path().join("known_hosts");
    // And a packet delayer agent killed outright: its chain, and a process in
    // `netfault/` that leads no process group (as under sudo).
    let agent_dir = run_dir.join("netfault");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let script = format!(
        "cd {} || exit 1; setsid sh -c 'echo $$ > pid; exec sleep 300' </dev/null >/dev/null 2>&1 & \
         iptables -w -N stasis-in && iptables -w -I INPUT 1 -j stasis-in && \
         iptables -w -N stasis-net && iptables -w -I OUTPUT 1 -j stasis-net && \
         cd {} && (sh -c 'echo $$ > pid; exec sleep 300' </dev/null >/dev/null 2>&1 &)",
        node_dir.display(),
        agent_dir.display()
    );
    let st = Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .arg("-i")
        .arg(&key)
        .arg(format!("root@{}", h1.addr))
        .arg(script)
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node_dir.join("pid").is_file() || !agent_dir.join("pid").is_file() {
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let pid: u32 = std::fs::read_to_string(node_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let agent: u32 = std::fs::read_to_string(agent_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{agent}")).exists());
    let doctor = hosts.stasis(&["doctor"]);
    assert_eq!(
        doctor.status.code(),
        Some(1),
        "leftovers must fail doctor:\n{}",
        text(&doctor)
    );
    assert!(text(&doctor).contains("stasis-dead"), "{}", text(&doctor));
    let clean = hosts.stasis(&["clean"]);
    let t = text(&clean);
    assert_eq!(clean.status.code(), Some(0), "{t}");
    assert!(
        t.contains("removed 2 processes, 1 run directories, 2 iptables chains"),
        "{t}"
    );
    for pid in [pid, agent] {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty()
                || state
                    .rsplit(") ")
                    .next()
                    .is_some_and(|s| s.starts_with('Z')),
            "the leftover process {pid} still runs: {state}"
        );
    }
    assert!(hosts.leftovers().is_empty(), "{:?}", hosts.leftovers());
}

/// A controller SIGKILLed in the middle of a partition on the hosts (no signal handler
/// runs): `stasis clean --hosts` removes its nodes, chains and run directories from every
/// host, and the killed run's history (its last line possibly torn) still checks.
#[test]
fn a_controller_killed_mid_partition_is_cleaned_from_the_hosts() {
    let hosts = Hosts::start(3);
    let (mut child, dir) = start_on_hosts(
        &hosts,
        &[
            "--sut",
            "raft",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "60s",
            "--seed",
            "3",
        ],
        "start-partition",
    );
    // The partition's rules are in place on the hosts when the controller dies.
    std::thread::sleep(Duration::from_millis(300));
    let chains: Vec<String> = hosts
        .topo
        .hosts
        .iter()
        .map(|h| net::run_in(&h.netns, &["iptables", "-w", "-S"]).unwrap())
        .collect();
    signal_controller(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    assert!(
        chains.iter().any(|r| r.contains("stasis")),
        "no stasis chain on any host mid-partition: {chains:?}"
    );
    clean_after_kill(&hosts);
    assert_cleaned_and_history_checks(&hosts, &dir);
}

#[test]
fn bad_hosts_files_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("hosts.toml");
    // `.invalid` never resolves (RFC 6761).
    std::fs::write(&f, "[[host]]\naddress = \"db1.stasis.invalid\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--nemesis", "kill", "--hosts"])
        .arg(&f)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert_eq!(t.trim().lines().count(), 1, "{t}");
    assert!(t.contains("does not resolve"), "{t}");
    // The disk nemesis is no longer refused on hosts: the hosts file is what is wrong.
    let out = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args(["test", "--nemesis", "disk", "--hosts"])
        .arg(&f)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert_eq!(t.trim().lines().count(), 1, "{t}");
    assert!(t.contains("does not resolve"), "{t}");
}

/// Whether a host still has the packet delayer's chain or agent process.
fn delayer_left(hosts: &Hosts) -> Vec<String> {
    let mut left = Vec::new();
    for h in &hosts.topo.hosts {
        let rules = net::run_in(&h.netns, &["iptables", "-w", "-S"]).unwrap();
        if rules.contains("stasis-net") {
            left.push(format!("{}: chain stasis-net", h.netns));
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("netfault-agent") && cmd.contains(&*hosts.tmp.path().to_string_lossy()) {
            left.push(format!("agent process {pid}: {cmd}"));
        }
    }
    left
}

/// The net nemesis on ssh hosts: each host runs the packet delayer as `stasis
/// netfault-agent` over its ssh connection; every fault is verified by probes run on the
/// hosts (a UDP echo through the delayed link, TCP connects), the history is
/// linearizable, and nothing is left on any host. Raft, Multi-Paxos and etcd on the same
/// hosts.
#[test]
fn net_faults_on_ssh_hosts() {
    let hosts = Hosts::start(3);
    for sut in ["raft", "multipaxos", "etcd"] {
        net_run(&hosts, sut);
    }
}

fn net_run(hosts: &Hosts, sut: &str) {
    let hosts_file = hosts.hosts_file.to_str().unwrap().to_owned();
    let run: Run = stasis_test(&[
        "--hosts",
        &hosts_file,
        "--sut",
        sut,
        "--nemesis",
        "net",
        "--net-latency",
        "5ms±2ms",
        "--time-limit",
        "16s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "7",
    ]);
    println!("{sut}:\n{}", run.text);
    assert_clean_pass(&run, &["net"], 50);
    // The baseline was measured on the hosts before the workload.
    assert!(
        run.text
            .contains("baseline latency 5ms±2ms on every link: n1->n2"),
        "{}",
        run.text
    );
    assert!(run.text.contains("packet delayer:"), "{}", run.text);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    let faults = results["faults"].as_array().expect("faults");
    let net: Vec<&serde_json::Value> = faults.iter().filter(|f| f["family"] == "net").collect();
    assert!(net.len() >= 2, "too few net faults: {faults:?}");
    let evidence = serde_json::Value::Array(net.iter().map(|f| (*f).clone()).collect()).to_string();
    // Each fault verified by a probe of a faulted link, and its heal by another.
    assert!(evidence.contains("healed:"), "{evidence}");
    assert!(evidence.contains("->"), "{evidence}");
    // The delayers on the hosts really queued the nodes' traffic.
    let harness: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("harness.json")).unwrap()).unwrap();
    assert!(
        harness["net_delayer"]["queued"].as_u64().unwrap() > 500,
        "{harness}"
    );
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
    let left = delayer_left(hosts);
    assert!(left.is_empty(), "delayer left on the hosts: {left:?}");
}

/// A controller SIGKILLed while a network fault is on: the agents' sessions end with it,
/// so each agent removes its chain and exits by itself; `stasis clean --hosts` removes
/// the rest (nodes, run directories), and nothing is left.
#[test]
fn a_controller_killed_mid_net_fault_leaves_nothing_after_clean() {
    let hosts = Hosts::start(3);
    let (mut child, dir) = start_on_hosts(
        &hosts,
        &[
            "--sut",
            "raft",
            "--nemesis",
            "net",
            "--net-faults",
            "delay",
            "--nemesis-interval",
            "4s",
            "--time-limit",
            "60s",
            "--seed",
            "3",
        ],
        "start-net",
    );
    // The agents and their chains are on the hosts when the controller dies.
    let before = delayer_left(&hosts);
    assert!(
        before
            .iter()
            .filter(|l| l.contains("chain stasis-net"))
            .count()
            == 3
            && before.iter().any(|l| l.contains("agent process")),
        "no delayer on the hosts mid-fault: {before:?}"
    );
    signal_controller(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    // The agents notice their sessions closing and clean up after themselves.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = delayer_left(&hosts);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agents outlived the controller by 15 s: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    clean_after_kill(&hosts);
    assert!(delayer_left(&hosts).is_empty());
    assert_cleaned_and_history_checks(&hosts, &dir);
}

/// Ctrl-C (SIGINT to the controller) while a network fault is on: the run stops the
/// agents in order (each removes its chain), stops the nodes and removes its directories;
/// nothing is left on any host without `stasis clean`.
#[test]
fn an_interrupted_net_run_leaves_nothing_on_the_hosts() {
    let hosts = Hosts::start(3);
    let (mut child, _dir) = start_on_hosts(
        &hosts,
        &[
            "--sut",
            "raft",
            "--nemesis",
            "net",
            "--net-faults",
            "delay",
            "--nemesis-interval",
            "4s",
            "--time-limit",
            "60s",
            "--seed",
            "5",
        ],
        "start-net",
    );
    assert!(
        !delayer_left(&hosts).is_empty(),
        "no delayer on the hosts mid-fault"
    );
    signal_controller(&child, nix::sys::signal::Signal::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "an interrupted run exits 3");
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts after Ctrl-C: {left:?}");
    let left = delayer_left(&hosts);
    assert!(left.is_empty(), "delayer left after Ctrl-C: {left:?}");
}

/// The disk-fault agents still running on the hosts (by their argv).
fn disk_agents(hosts: &Hosts) -> Vec<String> {
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        // The controller's ssh clients name the agent too; only the agent counts.
        if cmd.split(|b| *b == 0).next() == Some(b"ssh") {
            continue;
        }
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("diskfault-agent") && cmd.contains(&*hosts.tmp.path().to_string_lossy()) {
            left.push(format!("agent process {pid}: {cmd}"));
        }
    }
    left
}

/// A raft run on the hosts with `nemesis`: passes cleanly with disk faults whose evidence
/// (what a power loss dropped, the ENOSPC failures and delayed fsyncs counted) came from
/// the FUSE filesystem the agent on each host mounted over the node's data directory;
/// the backing state is fetched back, and nothing is left on any host.
fn disk_run(hosts: &Hosts, sut: &str, nemesis: &str, families: &[&str]) -> Run {
    let hosts_file = hosts.hosts_file.to_str().unwrap().to_owned();
    let run: Run = stasis_test(&[
        "--hosts",
        &hosts_file,
        "--sut",
        sut,
        "--nemesis",
        nemesis,
        "--time-limit",
        "20s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "3",
    ]);
    println!("{sut} {nemesis}:\n{}", run.text);
    assert_clean_pass(&run, families, 50);
    let disk = faults_of(&run, "disk");
    assert!(disk.len() >= 2, "too few disk faults:\n{}", run.text);
    let evidence = serde_json::Value::Array(disk).to_string();
    // Every fault's evidence is the host's filesystem answering: a loss counts what it
    // dropped, a full disk its ENOSPC failures, a slow one its delayed fsyncs, a
    // corruption names its file.
    assert!(
        [
            "unsynced ops",
            "ENOSPC",
            "fsyncs delayed",
            "bytes at",
            "no data file"
        ]
        .iter()
        .any(|w| evidence.contains(w)),
        "disk faults without the host filesystem's evidence: {evidence}"
    );
    for n in ["n1", "n2", "n3"] {
        // The backing state lived on the host and came back with the node directory.
        assert!(
            run.dir.join(n).join("disk/root").is_dir(),
            "{n}/disk/root not fetched from its host"
        );
        assert!(
            run.dir.join(format!("{n}-disk-agent.log")).is_file(),
            "no messages file of {n}'s disk agent"
        );
    }
    assert_nothing_left_with_disk(hosts);
    run
}

/// The faults of `family` in the run's results.json.
fn faults_of(run: &Run, family: &str) -> Vec<serde_json::Value> {
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    results["faults"]
        .as_array()
        .expect("faults in results.json")
        .iter()
        .filter(|f| f["family"] == family)
        .cloned()
        .collect()
}

/// Nothing of a disk run left on the hosts: no run directory, chain or process, and no
/// disk-fault agent.
fn assert_nothing_left_with_disk(hosts: &Hosts) {
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
    let agents = disk_agents(hosts);
    assert!(
        agents.is_empty(),
        "disk agents left on the hosts: {agents:?}"
    );
}

/// The disk nemesis on ssh hosts, alone and with kills: `stasis diskfault-agent` on each
/// host mounts the filesystem over the node's data directory there and applies each fault
/// sent over its ssh session; the histories check, nothing is left.
#[test]
fn disk_faults_on_ssh_hosts() {
    let hosts = Hosts::start(3);
    let run = disk_run(&hosts, "raft", "disk", &["disk"]);
    let h = checker::history::read_jsonl(&run.dir.join("history.jsonl")).unwrap();
    let starts: Vec<String> = h
        .ops
        .iter()
        .filter(|o| o.process == checker::history::Process::Nemesis && o.f == "start-disk")
        .map(|o| serde_json::to_string(&o.value).unwrap())
        .collect();
    // Seed 3 draws a power loss in 20 s: the host's filesystem reports what it dropped.
    assert!(
        starts
            .iter()
            .any(|s| s.contains("lose-unfsynced") && s.contains("bytes_dropped")),
        "{starts:?}"
    );
    // A corruption found the node's data files in the host filesystem's backing store:
    // the node's writes went through the agent's mount.
    assert!(
        starts.iter().any(|s| s.contains(r#""corrupted":{"file":"#)),
        "{starts:?}"
    );
    disk_run(&hosts, "raft", "disk,kill", &["disk", "kill"]);
}

/// A power loss on a host drops what the node had not fsynced: Multi-Paxos nodes with the
/// seeded bug `ack-before-fsync` (they fsync their log once a second, so unsynced records
/// are there to lose) under `lose-unfsynced`. The filesystem the agent mounted on the host
/// reports the operations it dropped; whatever the verdict, the run ends as a run (exit 0
/// or 1, never a harness error) and nothing is left on the hosts.
#[test]
fn a_power_loss_on_a_host_drops_what_the_node_did_not_fsync() {
    let hosts = Hosts::start(3);
    let run = hosts.test(&[
        "--sut",
        "multipaxos",
        "--node-arg",
        "--bug",
        "--node-arg",
        "ack-before-fsync",
        "--nemesis",
        "lose-unfsynced",
        "--time-limit",
        "12s",
        "--nemesis-interval",
        "2s",
        "--seed",
        "7",
    ]);
    println!("{}", run.text);
    let code = run.out.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}:\n{}", run.text);
    let disk: Vec<String> = faults_of(&run, "disk")
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(disk.len() >= 2, "too few power losses:\n{}", run.text);
    let dropped: u64 = disk
        .iter()
        .flat_map(|f| f.split("\"ops_dropped\":").skip(1))
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().unwrap()
        })
        .sum();
    assert!(dropped > 0, "no power loss dropped anything: {disk:?}");
    assert_nothing_left_with_disk(&hosts);
}

/// etcd 3.4 under the disk nemesis on ssh hosts finds what it finds locally
/// (docs/FINDINGS.md, "Power loss: the data directory is never fsynced after `member/` is
/// created"): seed 5 loses every member's unsynced state, they come back as a fresh
/// cluster, and acknowledged writes are gone.
#[test]
fn etcd_power_loss_finding_on_ssh_hosts() {
    let hosts = Hosts::start(3);
    let run = hosts.test(&[
        "--sut",
        "etcd",
        "--nemesis",
        "disk",
        "--time-limit",
        "30s",
        "--nemesis-interval",
        "3s",
        "--seed",
        "5",
    ]);
    println!("{}", run.text);
    assert_eq!(run.out.status.code(), Some(1), "{}", run.text);
    assert!(
        run.text.contains("verdict: not-linearizable")
            && run.text.contains("lost acknowledged writes"),
        "{}",
        run.text
    );
    // The host filesystems reverted the never-synced directory entries of every member.
    let loss = faults_of(&run, "disk")
        .into_iter()
        .find(|f| f.to_string().contains("lose-unfsynced"))
        .unwrap_or_else(|| panic!("no power loss drawn:\n{}", run.text))
        .to_string();
    for n in ["n1", "n2", "n3"] {
        assert!(
            loss.contains(&format!("\"{n}\":{{\"bytes_dropped\":"))
                && !loss.contains("\"entries_reverted\":0"),
            "{loss}"
        );
    }
    assert_nothing_left_with_disk(&hosts);
}

/// A controller SIGKILLed while a disk fault is on: the agents' sessions end with it, so
/// each agent unmounts and exits; `stasis clean --hosts` removes the rest (nodes, agents
/// that did not exit, mounts, run directories), and no `stasis-` mount or agent process
/// is left on any host.
#[test]
fn a_controller_killed_mid_disk_fault_leaves_nothing_after_clean() {
    let hosts = Hosts::start(3);
    let (mut child, dir) = start_on_hosts(
        &hosts,
        &[
            "--sut",
            "raft",
            "--nemesis",
            "disk-full,slow-disk",
            "--nemesis-interval",
            "4s",
            "--time-limit",
            "60s",
            "--seed",
            "3",
        ],
        "start-disk",
    );
    // The agents and their mounts are on the hosts when the controller dies.
    let mounts = hosts.disk_mounts();
    let agents = disk_agents(&hosts);
    assert_eq!(
        mounts.len(),
        3,
        "not one mount per host mid-fault: {mounts:?}"
    );
    assert_eq!(
        agents.len(),
        3,
        "not one agent per host mid-fault: {agents:?}"
    );
    signal_controller(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    let t = clean_after_kill(&hosts);
    println!("{t}");
    assert!(t.contains("disk mounts"), "{t}");
    // The agents may still be dying from the kill; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !disk_agents(&hosts).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let agents = disk_agents(&hosts);
    assert!(agents.is_empty(), "agents left after clean: {agents:?}");
    let mounts = hosts.disk_mounts();
    assert!(mounts.is_empty(), "mounts left after clean: {mounts:?}");
    assert_cleaned_and_history_checks(&hosts, &dir);
}

/// Benchmark (prints a table, asserts no timing): disk faults applied by the local
/// filesystem thread against `stasis diskfault-agent` over ssh (decision to verified:
/// `apply_ms`). `cargo test -p harness --test remote -- --ignored disk_fault_latency
/// --nocapture`; numbers in docs/BENCHMARKS.md ("Remote hosts").
#[test]
#[ignore]
fn disk_fault_latency_local_vs_ssh() {
    latency_table(&[(&["disk-full,slow-disk", "30s"], "7", &["disk"])]);
}

/// `stasis diskfault-agent` on a host unmounts and exits on SIGTERM and on SIGINT (not
/// only when its session ends), and its session then reports it gone; a switch set over
/// the session reads back first. One killed outright leaves its mount, which `stasis
/// clean --hosts` detaches.
#[test]
fn the_disk_agent_unmounts_on_signals_and_clean_detaches_a_killed_ones_mount() {
    use harness::diskfs::{Disk, agent::DiskAgent};
    let hosts = Hosts::start(1);
    let remote = harness::remote::Remote::connect(&hosts.hosts_file).unwrap();
    let h = &remote.hosts[0];
    let run = hosts.host_dir("h1").join("stasis-signals");
    let node_dir = run.join("n1");
    let agent_dir = run.join("n1-disk-agent");
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let disk = Disk::Remote(
            DiskAgent::start(
                h,
                agent_dir.to_str().unwrap(),
                env!("CARGO_BIN_EXE_stasis"),
                node_dir.to_str().unwrap(),
                "n1",
                &hosts.tmp.path().join(format!("agent-{sig}.log")),
            )
            .unwrap(),
        );
        assert_eq!(disk.slow(7).unwrap(), 0, "{sig}");
        let mounts = hosts.disk_mounts();
        assert_eq!(mounts.len(), 1, "{sig}: {mounts:?}");
        assert!(mounts[0].contains("stasis-"), "{mounts:?}");
        let pid: i32 = std::fs::read_to_string(agent_dir.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !disk_agents(&hosts).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{sig}: the agent still runs after 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mounts = hosts.disk_mounts();
        assert!(mounts.is_empty(), "{sig}: mount left: {mounts:?}");
        let e = disk.slow(0).unwrap_err().to_string();
        assert!(e.contains("gone") || e.contains("ended"), "{sig}: {e}");
        // The agent exited cleanly (0) after unmounting.
        disk.unmount().unwrap();
    }
    // An agent killed outright leaves its mount (the connection aborted) and its pid
    // file: `stasis clean --hosts` detaches the mount and removes the directory.
    let disk = Disk::Remote(
        DiskAgent::start(
            h,
            agent_dir.to_str().unwrap(),
            env!("CARGO_BIN_EXE_stasis"),
            node_dir.to_str().unwrap(),
            "n1",
            &hosts.tmp.path().join("agent-kill.log"),
        )
        .unwrap(),
    );
    let pid: i32 = std::fs::read_to_string(agent_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !disk_agents(&hosts).is_empty() {
        assert!(Instant::now() < deadline, "SIGKILL: the agent still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        disk.unmount().is_err(),
        "a killed agent cannot exit cleanly"
    );
    assert_eq!(hosts.disk_mounts().len(), 1, "a killed agent left no mount");
    drop(remote);
    let clean = hosts.stasis(&["clean"]);
    let t = text(&clean);
    assert_eq!(clean.status.code(), Some(0), "{t}");
    assert!(
        t.contains("1 run directories, 0 iptables chains, 1 disk mounts"),
        "{t}"
    );
    let mounts = hosts.disk_mounts();
    assert!(mounts.is_empty(), "mount left after clean: {mounts:?}");
    let left = hosts.leftovers();
    assert!(left.is_empty(), "left on the hosts: {left:?}");
}
