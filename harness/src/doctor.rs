//! `stasis doctor`: checks that this machine can run real fault-injection tests.
//!
//! Each check is real, not a guess from the package list: the namespace check builds two
//! `stasis-` namespaces joined by a bridge and opens a TCP connection between them (which
//! also proves the host's FORWARD chain lets bridged traffic through); the iptables check
//! adds a rule inside one namespace and watches the connection fail and recover; the
//! libfaketime check preloads the library into `date` and reads the faked year back.

use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::firewall::{self, Action, Change, Rule};
use crate::net;

/// Arguments of `stasis doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Skip the checks that create namespaces and iptables rules (print only what can be
    /// seen without changing anything).
    #[arg(long)]
    pub no_network: bool,
    /// Check the remote hosts of this hosts file instead of this machine: SSH, root or
    /// sudo, iptables (our own chains, created and removed), the tools the remote
    /// lifecycle uses, stasis-node runnable there, libfaketime, leftovers, clock offsets.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Missing => "MISSING",
        })
    }
}

/// One line of the report.
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found, or what is wrong.
    pub detail: String,
    /// How to fix it (for a missing item).
    pub fix: Option<String>,
    /// Whether the default `stasis test` needs it.
    pub required: bool,
}

impl Check {
    fn from(name: &'static str, required: bool, r: Result<String>, fix: &str) -> Check {
        match r {
            Ok(detail) => Check {
                name,
                status: Status::Ok,
                detail,
                fix: None,
                required,
            },
            Err(e) => Check {
                name,
                status: Status::Missing,
                detail: format!("{e:#}"),
                fix: Some(fix.to_owned()),
                required,
            },
        }
    }
}

/// Runs every check. `network` enables the ones that create namespaces.
pub fn checks(network: bool) -> Vec<Check> {
    let setup = "run scripts/setup.sh as root";
    let mut out = vec![Check::from(
        "root",
        true,
        check_root(),
        "run as root (sudo stasis ...): namespaces and iptables need CAP_NET_ADMIN",
    )];
    let root = out[0].status == Status::Ok;
    out.push(Check::from(
        "ip (iproute2)",
        true,
        version_of(&["ip", "-V"]),
        "apt-get install iproute2",
    ));
    out.push(Check::from(
        "iptables",
        true,
        version_of(&["iptables", "--version"]),
        &format!("apt-get install iptables, or {setup}"),
    ));
    if network && root {
        let (netns, ipt, nfq) = check_namespaces();
        out.push(Check::from(
            "netns + bridge",
            true,
            netns,
            "check that `ip netns add` works and the host FORWARD chain accepts bridged \
             traffic (iptables -S FORWARD; with net.bridge.bridge-nf-call-iptables=1 a DROP \
             policy blocks node-to-node traffic)",
        ));
        out.push(Check::from(
            "iptables in a netns",
            true,
            ipt,
            &format!("apt-get install iptables, or {setup}"),
        ));
        out.push(Check::from(
            "NFQUEUE in a netns",
            false,
            nfq,
            "the net nemesis and --net-latency need the kernel's nfnetlink_queue and the \
             iptables NFQUEUE target (modprobe nfnetlink_queue; in a container, allow \
             CAP_NET_ADMIN)",
        ));
    } else {
        let why = if root {
            "skipped (--no-network)"
        } else {
            "cannot check without root"
        };
        for name in [
            "netns + bridge",
            "iptables in a netns",
            "NFQUEUE in a netns",
        ] {
            out.push(Check {
                name,
                status: Status::Missing,
                detail: why.into(),
                fix: Some("run `stasis doctor` as root without --no-network".into()),
                required: true,
            });
        }
    }
    out.push(Check::from(
        "/dev/fuse",
        false,
        check_fuse(),
        "modprobe fuse (the disk nemesis mounts a FUSE filesystem; in a container, pass --device /dev/fuse)",
    ));
    out.push(Check::from(
        "libfaketime",
        true,
        check_faketime(),
        &format!("apt-get install faketime libfaketime, or {setup}"),
    ));
    out.push(Check::from(
        "etcd",
        false,
        version_of(&["etcd", "--version"]),
        &format!("apt-get install etcd-server (needed for --sut etcd), or {setup}"),
    ));
    out.push(Check::from(
        "zookeeper",
        false,
        version_of(&[
            "java",
            "-cp",
            "/usr/share/java/zookeeper.jar",
            "org.apache.zookeeper.version.VersionInfoMain",
        ]),
        &format!(
            "apt-get install zookeeper default-jre-headless (needed for --sut zookeeper), or {setup}"
        ),
    ));
    out.push(Check::from(
        "redis-cli",
        false,
        version_of(&["redis-cli", "--version"]),
        &format!("apt-get install redis-tools (used by tests and benchmarks), or {setup}"),
    ));
    out.push(Check::from(
        "loopback ports",
        true,
        check_ports(),
        "free a loopback port: something holds the whole ephemeral range",
    ));
    out.push(Check::from(
        "leftovers",
        false,
        check_leftovers(),
        "a killed run left these behind; remove links with `ip link del NAME`, then namespaces with `ip netns del NAME`",
    ));
    out
}

/// Prints the report and returns the exit code: 0 if everything required is there.
pub fn run(args: &DoctorArgs) -> u8 {
    let checks = match &args.hosts {
        Some(path) => match remote_checks(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("stasis doctor: {e:#}");
                return 3;
            }
        },
        None => checks(!args.no_network),
    };
    let mut stdout = std::io::stdout().lock();
    for c in &checks {
        let tag = match (c.status, c.required) {
            (Status::Ok, _) => "OK".to_owned(),
            (Status::Missing, true) => "MISSING".to_owned(),
            (Status::Missing, false) => "MISSING (optional)".to_owned(),
        };
        let mut line = format!("{tag:<19} {:<20} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            line.push_str(&format!(" -- fix: {fix}"));
        }
        let _ = writeln!(stdout, "{line}");
    }
    let missing = checks
        .iter()
        .filter(|c| c.required && c.status == Status::Missing)
        .count();
    if missing == 0 {
        let _ = writeln!(
            stdout,
            "ready: everything the default `stasis test` needs is here"
        );
        0
    } else {
        let _ = writeln!(
            stdout,
            "not ready: {missing} required item(s) missing (see the fixes above)"
        );
        1
    }
}

fn check_root() -> Result<String> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        Ok("running as uid 0".into())
    } else {
        bail!("running as uid {uid}")
    }
}

/// First line of a tool's version output.
fn version_of(argv: &[&str]) -> Result<String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{} not found", argv[0]))?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let text = String::from_utf8_lossy(&text);
    let first = text.lines().next().unwrap_or("").trim();
    if !out.status.success() {
        bail!("{} failed: {first}", argv[0]);
    }
    Ok(first.to_owned())
}

/// Builds two namespaces on a bridge; returns (netns result, iptables-in-netns result).
fn check_namespaces() -> (Result<String>, Result<String>, Result<String>) {
    let not_reached = || Err(anyhow::anyhow!("not reached"));
    let mut topo = match net::Topology::create('d', &["a", "b"]) {
        Ok(t) => t,
        Err(e) => {
            let why = || Err(anyhow::anyhow!("could not build a test topology"));
            return (Err(e), why(), why());
        }
    };
    let result = probe_namespaces(&topo);
    let nfq = match &result {
        Ok(_) => probe_nfqueue(&topo),
        Err(_) => not_reached(),
    };
    let teardown = topo.teardown();
    match (result, teardown) {
        (Ok((a, b)), Ok(())) => (Ok(a), Ok(b), nfq),
        (Ok(_), Err(e)) => (Err(e), Err(anyhow::anyhow!("teardown failed")), nfq),
        (Err((a, b)), _) => (a, b, not_reached()),
    }
}

/// The packet delayer end to end: 50 ms added to one namespace's packets towards the
/// other through NFQUEUE must show in TCP connect times, and the rules go again.
fn probe_nfqueue(topo: &net::Topology) -> Result<String> {
    use crate::netfault::{LinkSpec, probe, queue};
    let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
    let rtt = || -> Result<f64> {
        probe::tcp_rtt(&a.netns, &b.netns, b.addr, 5, Duration::from_secs(2))?
            .context("no TCP connection between the namespaces")
    };
    let base = rtt()?;
    let mut delayer = queue::Delayer::start(Some(&a.netns), &[b.addr], 1)?;
    let added = LinkSpec {
        delay_us: 50_000,
        ..LinkSpec::default()
    };
    delayer.set([(b.addr, added)].into());
    let slowed = rtt();
    delayer.stop()?;
    let slowed = slowed?;
    if slowed < base + 35.0 {
        bail!(
            "packets sent to NFQUEUE were not held: TCP connect {base:.1} ms without and {slowed:.1} ms with 50 ms added"
        );
    }
    if queue::has_chain(Some(&a.netns))? {
        bail!(
            "the delayer's chain is still in {} after it stopped",
            a.netns
        );
    }
    Ok(format!(
        "the delayer holds packets inside {}: TCP connect {base:.1} ms -> {slowed:.1} ms with 50 ms added",
        a.netns
    ))
}

type Pair = (Result<String>, Result<String>);

fn probe_namespaces(topo: &net::Topology) -> std::result::Result<(String, String), Pair> {
    let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
    let listener = net::with_netns(&b.netns, || TcpListener::bind((b.addr, 0)))
        .and_then(|r| r.context("cannot listen inside the namespace"));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => return Err((Err(e), Err(anyhow::anyhow!("not reached")))),
    };
    let target = match listener.local_addr() {
        Ok(t) => t,
        Err(e) => return Err((Err(e.into()), Err(anyhow::anyhow!("not reached")))),
    };
    if let Err(e) = connect_from(&a.netns, target) {
        let e = e.context(format!(
            "TCP {} -> {target} across bridge {} failed",
            a.addr, topo.bridge
        ));
        return Err((Err(e), Err(anyhow::anyhow!("not reached"))));
    }
    let netns_ok = format!(
        "namespaces {} and {} talk over bridge {} ({})",
        a.netns,
        b.netns,
        topo.bridge,
        topo.subnet.cidr()
    );
    match probe_iptables(&a.netns, target) {
        Ok(s) => Ok((netns_ok, s)),
        Err(e) => Err((Ok(netns_ok), Err(e))),
    }
}

fn probe_iptables(ns: &str, target: SocketAddr) -> Result<String> {
    let SocketAddr::V4(v4) = target else {
        bail!("{target} is not an IPv4 address");
    };
    let reject = Rule::to(*v4.ip(), Action::Reset);
    firewall::apply(&[Change::Add(ns, reject)])?;
    let blocked = connect_from(ns, target);
    firewall::apply(&[Change::Delete(ns, reject)])?;
    if blocked.is_ok() {
        bail!("a REJECT rule inside {ns} did not stop a connection to {target}");
    }
    connect_from(ns, target).context("the connection did not come back after removing the rule")?;
    // Random packet loss (used by the lossy-link nemesis) needs the statistic match.
    let lossy = Rule::from(*v4.ip(), Action::DropRandom(0.5));
    firewall::apply(&[Change::Add(ns, lossy)])
        .context("the statistic match (random loss) is unavailable")?;
    firewall::apply(&[Change::Delete(ns, lossy)])?;
    Ok(format!(
        "REJECT and statistic rules work inside {ns}; the host's own rules were not touched"
    ))
}

fn connect_from(ns: &str, target: SocketAddr) -> Result<()> {
    net::with_netns(ns, || {
        TcpStream::connect_timeout(&target, Duration::from_secs(2))
    })?
    .map(|_| ())
    .with_context(|| format!("connect to {target}"))
}

fn check_faketime() -> Result<String> {
    let lib = crate::faketime::local_library().context("libfaketime.so.1 not found")?;
    let out = Command::new("date")
        .arg("+%Y")
        .env("LD_PRELOAD", &lib)
        .env("FAKETIME", "@2001-02-03 04:05:06")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdin(Stdio::null())
        .output()
        .context("cannot run date")?;
    let year = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if year != "2001" {
        bail!(
            "{} is there but did not fake the clock (date said {year:?})",
            lib.display()
        );
    }
    Ok(format!("{} fakes the wall clock", lib.display()))
}

fn check_fuse() -> Result<String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .context("cannot open /dev/fuse")?;
    let stale = crate::diskfs::leftovers();
    if !stale.is_empty() {
        bail!(
            "/dev/fuse opens, but disk mounts of dead runs are left: {} (run `stasis clean`)",
            stale
                .iter()
                .map(|m| m.mountpoint.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok("/dev/fuse opens (disk nemesis)".into())
}

fn check_ports() -> Result<String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind 127.0.0.1:0")?;
    let serve = TcpListener::bind((Ipv4Addr::LOCALHOST, 8080)).is_ok();
    Ok(format!(
        "127.0.0.1 ephemeral ports bind (got {}); 127.0.0.1:8080 for `stasis serve` is {}",
        l.local_addr()?.port(),
        if serve {
            "free"
        } else {
            "in use (pass --listen)"
        }
    ))
}

fn check_leftovers() -> Result<String> {
    let ns = net::stasis_namespaces();
    let links = net::stasis_links();
    if ns.is_empty() && links.is_empty() {
        return Ok("no stasis- namespaces or links left behind".into());
    }
    bail!(
        "left behind: namespaces [{}], links [{}]",
        ns.join(" "),
        links.join(" ")
    )
}

/// The checks of every host in a hosts file (`stasis doctor --hosts`), hosts in parallel.
pub fn remote_checks(path: &Path) -> Result<Vec<Check>> {
    let remote = crate::remote::Remote::open(path)?;
    let node_bin = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("stasis-node"))
        .filter(|p| p.is_file());
    let per_host: Vec<Vec<Check>> =
        remote.each(|k, h| Ok(host_checks(k, h, node_bin.as_deref())))?;
    Ok(per_host.into_iter().flatten().collect())
}

fn host_checks(k: usize, h: &crate::remote::ssh::Ssh, node_bin: Option<&Path>) -> Vec<Check> {
    use crate::remote;
    let who = format!("host {} ({})", k + 1, h.target());
    let tag = |r: Result<String>| {
        r.map(|d| format!("{who}: {d}"))
            .map_err(|e| anyhow::anyhow!("{who}: {e:#}"))
    };
    let ssh = h.run(&["true"]).map(|_| "reachable over ssh".to_owned());
    let reachable = ssh.is_ok();
    let mut out = Vec::new();
    // Each check: its name, whether the host is unusable without it, its outcome, the fix.
    let mut add = |name, required, r: Result<String>, fix: &str| {
        out.push(Check::from(name, required, tag(r), fix));
    };
    add(
        "ssh",
        true,
        ssh,
        "check address, user, port and key in the hosts file, and that `ssh -p PORT -i KEY USER@ADDRESS true` works without a password",
    );
    if !reachable {
        return out;
    }
    // Every fault step is one remote command: its cost is the login shell's startup plus
    // a round trip on the shared connection.
    let rtt = (|| -> Result<String> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            h.run(&["true"])?;
            best = best.min(t.elapsed());
        }
        let ms = best.as_secs_f64() * 1000.0;
        if ms < 200.0 {
            Ok(format!("one remote command takes {ms:.1} ms"))
        } else {
            bail!(
                "one remote command takes {ms:.0} ms (a slow login shell? every fault step pays it)"
            )
        }
    })();
    add(
        "ssh round trip",
        false,
        rtt,
        "make the login shell's startup files fast for non-interactive ssh commands (bash runs ~/.bashrc for them)",
    );
    let root = h.run(&["id", "-u"]).and_then(|u| {
        if u.trim() == "0" {
            Ok(if h.spec.sudo {
                "root through sudo -n"
            } else {
                "root"
            }
            .to_owned())
        } else {
            bail!(
                "commands run as uid {} (iptables and signals need root)",
                u.trim()
            )
        }
    });
    add(
        "root",
        true,
        root,
        "log in as root, or set sudo = true with passwordless sudo for the user",
    );
    let tools = h
        .script_ok(
            "looking for tools",
            r#"m=""; for t in bash timeout setsid tar sed cut kill iptables; do command -v "$t" >/dev/null 2>&1 || m="$m $t"; done
if [ -n "$m" ]; then echo "missing:$m" >&2; exit 1; fi"#,
            &[],
        )
        .map(|_| "bash, timeout, setsid, tar, sed, cut, kill, iptables".to_owned());
    add(
        "tools",
        true,
        tools,
        "apt-get install bash coreutils util-linux tar sed iptables (on the host)",
    );
    let left = remote::leftovers(h).and_then(|l| {
        if l.is_empty() {
            Ok("none".to_owned())
        } else {
            bail!("{}", l.join(", "))
        }
    });
    add("leftovers", true, left, "stasis clean --hosts HOSTS.toml");
    // A chain of the doctor's own: a live run's chains are never touched.
    let ipt = h
        .script_ok(
            "creating and removing an iptables chain",
            r#"iptables -w -N stasis-doctor && iptables -w -A stasis-doctor -s 192.0.2.1 -j DROP && iptables -w -F stasis-doctor && iptables -w -X stasis-doctor"#,
            &[],
        )
        .map(|_| "chain stasis-doctor created, given a rule, and removed".to_owned());
    add(
        "iptables",
        true,
        ipt,
        "apt-get install iptables on the host; the kernel needs netfilter",
    );
    let node = match node_bin {
        None => Err(anyhow::anyhow!(
            "no local stasis-node next to this stasis to try"
        )),
        Some(bin) => {
            let dir = remote::run_dir(&h.spec, "doctor");
            let ran = remote::make_dir(h, &dir)
                .and_then(|_| h.upload(bin, &format!("{dir}/stasis-node")))
                .and_then(|_| h.run(&[&format!("{dir}/stasis-node"), "--version"]));
            let removed = remote::remove_run(h, &dir);
            ran.and_then(|v| removed.map(|_| format!("uploaded stasis-node runs: {}", v.trim())))
        }
    };
    add(
        "stasis-node",
        true,
        node,
        "build it (cargo build -p node); the host must run x86_64 Linux binaries of this libc",
    );
    // The packet delayer as a run starts it: this stasis uploaded, its agent started over
    // ssh (binding NFQUEUE, its chain queueing traffic to a TEST-NET address that no
    // node uses), then stopped; its chain must be gone.
    let nfq = (|| -> Result<String> {
        // A run's (or a killed run's) delayer chain is never touched: the agent would
        // replace it.
        if remote::chains_present(h)?
            .iter()
            .any(|c| c == remote::CHAIN_NET)
        {
            bail!(
                "not tried: chain {} is on the host (a live run, or leftovers)",
                remote::CHAIN_NET
            );
        }
        let me = std::env::current_exe()?;
        let dir = remote::run_dir(&h.spec, "doctor-net");
        let log = std::env::temp_dir().join(format!(
            "stasis-doctor-agent-{}-{k}.log",
            std::process::id()
        ));
        let ran = remote::make_dir(h, &dir)
            .and_then(|_| h.upload(&me, &format!("{dir}/stasis")))
            .and_then(|_| {
                let mut a = crate::netfault::agent::Agent::start(
                    h,
                    &format!("{dir}/netfault"),
                    &format!("{dir}/stasis"),
                    &[std::net::Ipv4Addr::new(192, 0, 2, 1)],
                    1,
                    &log,
                )?;
                a.stop()
            })
            .and_then(|_| {
                if remote::chains_present(h)?
                    .iter()
                    .any(|c| c == remote::CHAIN_NET)
                {
                    bail!("the agent left its chain {}", remote::CHAIN_NET);
                }
                Ok(())
            });
        let removed = remote::remove_run(h, &dir);
        let _ = std::fs::remove_file(&log);
        ran.and(removed)?;
        Ok(
            "the packet delayer (stasis netfault-agent) bound NFQUEUE, added and removed its chain"
                .into(),
        )
    })();
    add(
        "NFQUEUE",
        false,
        nfq,
        "the net nemesis and --net-latency need the host kernel's nfnetlink_queue and the iptables NFQUEUE target (modprobe nfnetlink_queue xt_NFQUEUE there)",
    );
    // The disk-fault filesystem as a run mounts it: /dev/fuse there, this stasis uploaded,
    // its agent started over ssh mounting a directory of the doctor's own, a fault
    // switched and read back, then stopped; the mount must be gone.
    let fuse = (|| -> Result<String> {
        let dev = h.script_ok(
            "looking for /dev/fuse and fusermount",
            r#"[ -c /dev/fuse ] || { echo "no /dev/fuse" >&2; exit 1; }
for t in fusermount3 fusermount; do command -v "$t" >/dev/null 2>&1 && { echo "$t"; exit 0; }; done
echo none"#,
            &[],
        )?;
        let fusermount = match dev.trim() {
            "none" => "no fusermount (not needed as root: the mount is made directly)".to_owned(),
            t => format!("{t} present"),
        };
        let me = std::env::current_exe()?;
        let dir = remote::run_dir(&h.spec, "doctor-disk");
        let log = std::env::temp_dir().join(format!(
            "stasis-doctor-disk-agent-{}-{k}.log",
            std::process::id()
        ));
        let ran = remote::make_dir(h, &dir)
            .and_then(|_| h.upload(&me, &format!("{dir}/stasis")))
            .and_then(|_| {
                let disk = crate::diskfs::Disk::Remote(crate::diskfs::agent::DiskAgent::start(
                    h,
                    &format!("{dir}/n-disk-agent"),
                    &format!("{dir}/stasis"),
                    &format!("{dir}/n"),
                    "doctor",
                    &log,
                )?);
                let mounted = remote::mounts_under(h, &dir);
                let switched = disk.slow(1).and_then(|_| disk.slow(0));
                let stopped = disk.unmount();
                let mounted = mounted?;
                switched?;
                stopped?;
                if mounted.is_empty() {
                    bail!("the agent answered but no stasis- mount was seen under {dir}");
                }
                let left = remote::mounts_under(h, &dir)?;
                if !left.is_empty() {
                    bail!("the agent left its mount {}", left.join(", "));
                }
                Ok(())
            });
        let removed = remote::remove_run(h, &dir);
        let _ = std::fs::remove_file(&log);
        ran.and(removed)?;
        Ok(format!(
            "/dev/fuse present, {fusermount}; the disk-fault filesystem (stasis diskfault-agent) mounted, switched a fault and unmounted"
        ))
    })();
    add(
        "FUSE",
        false,
        fuse,
        "the disk nemesis needs /dev/fuse on the host (modprobe fuse there; apt-get install fuse3 for fusermount)",
    );
    let faketime =
        crate::faketime::remote_library(h).map(|p| format!("{p} fakes the clock of date"));
    add(
        "faketime",
        false,
        faketime,
        "apt-get install libfaketime on the host (needed by the clock nemesis)",
    );
    let clock = remote::clock_offset_ms(h).and_then(|ms| {
        if ms.abs() < 500.0 {
            Ok(format!("clock offset {ms:+.0} ms from this machine"))
        } else {
            bail!("clock offset {ms:+.0} ms from this machine")
        }
    });
    add(
        "clock",
        false,
        clock,
        "run NTP (chrony) on the hosts and on this machine",
    );
    out
}
