//! Network namespaces, the bridge between them, and per-namespace iptables.
//!
//! Every object this module creates is named with the `stasis-` prefix and lives only
//! inside namespaces it made: node addresses come from one private /24 per run
//! (`10.211.<n>.0/24`, claimed with a lock file so parallel runs never collide), the /24
//! exists only on the bridge and in the namespaces, and iptables rules are only ever added
//! inside node namespaces. Interface names fit Linux's 15 characters:
//! `stasis-<id>b` for the bridge and `stasis-<id>v<k>` for the host end of node k's veth
//! (`<id>` is a kind letter plus the subnet's third octet, at most 4 characters).
//!
//! Commands are run as argv vectors (never through a shell) and logged at debug level.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::sched::{CloneFlags, setns};

use crate::runstate::{
    REGISTRY_WAIT, RegistryLock, RunState, StateData, open_lock_file, state_dir,
};

/// Prefix of every namespace, bridge and veth the project creates.
pub const PREFIX: &str = "stasis-";

/// Runs a command given as argv; on failure returns an error with its stderr.
pub fn run(argv: &[&str]) -> Result<String> {
    tracing::debug!(cmd = argv.join(" "), "exec");
    let (prog, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {prog} (is it installed?)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("`{}` failed: {}", argv.join(" "), err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a network namespace (`ip netns exec NS argv...`).
pub fn run_in(ns: &str, argv: &[&str]) -> Result<String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full)
}

/// A claimed private /24: `10.211.<third>.0/24`. The claim lasts while this value lives.
#[derive(Debug)]
pub struct Subnet {
    pub third: u8,
    _lock: Flock<File>,
}

impl Subnet {
    /// Claims the first free /24 in `10.211.0.0/16` (third octets 1..=254).
    pub fn claim() -> Result<Subnet> {
        let dir = state_dir().join("subnets");
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {} (are you root?)", dir.display()))?;
        for third in 1..=254u8 {
            let path = dir.join(format!("10.211.{third}.lock"));
            let file = open_lock_file(&path)?;
            if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                return Ok(Subnet { third, _lock: lock });
            }
        }
        bail!(
            "all 254 subnets of 10.211.0.0/16 are claimed; run `stasis clean` or wait for other runs"
        )
    }

    /// Address of host `k` in this subnet (`k` in 1..=254). `.1` is the bridge.
    pub fn addr(&self, k: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 211, self.third, k)
    }

    pub fn bridge_addr(&self) -> Ipv4Addr {
        self.addr(1)
    }

    pub fn cidr(&self) -> String {
        format!("10.211.{}.0/24", self.third)
    }
}

/// Path of a named namespace's handle.
pub fn netns_path(ns: &str) -> PathBuf {
    Path::new("/run/netns").join(ns)
}

/// Runs `f` on a fresh thread that has entered namespace `ns`. Other threads are untouched.
pub fn with_netns<T: Send, F: FnOnce() -> T + Send>(ns: &str, f: F) -> Result<T> {
    let path = netns_path(ns);
    let handle = File::open(&path)
        .with_context(|| format!("namespace {ns} not found ({})", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            setns(handle.as_fd(), CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter namespace {ns}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("thread inside namespace {ns} panicked"))?
    })
}

/// A set of namespaces joined by one bridge. Everything is removed on drop, veths before
/// namespaces (`ip netns del` alone is asynchronous), and registered in the leftover
/// registry ([`crate::cleanup`]) before it is created.
#[derive(Debug)]
pub struct Topology {
    pub id: String,
    pub subnet: Subnet,
    pub bridge: String,
    /// Namespace, host-side veth and address per host, in order.
    pub hosts: Vec<Host>,
    state: Mutex<Option<RunState>>,
    torn_down: bool,
}

#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    pub netns: String,
    pub veth: String,
    pub addr: Ipv4Addr,
}

impl Topology {
    /// Creates a bridge with address `.1` and one namespace per name, each with a veth into
    /// the bridge and address `.2`, `.3`, ... The topology id is `kind` (one lowercase
    /// letter) followed by the claimed subnet's third octet, so it is unique among live
    /// topologies. On any failure, whatever was created is removed again.
    pub fn create(kind: char, names: &[&str]) -> Result<Topology> {
        if !kind.is_ascii_lowercase() {
            bail!("topology kind {kind:?} must be one lowercase ASCII letter");
        }
        if names.len() > 250 {
            bail!("at most 250 hosts per topology");
        }
        for n in names {
            if n.is_empty() || n.len() > 16 || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bail!("host name {n:?} must be 1 to 16 ASCII letters or digits");
            }
        }
        // Not while a cleanup sweeps the registry (see crate::runstate).
        let registry = RegistryLock::acquire("starting a topology", REGISTRY_WAIT)?;
        let subnet = Subnet::claim()?;
        let id = format!("{kind}{}", subnet.third);
        let state = RunState::create(&id)?;
        drop(registry);
        let mut topo = Topology {
            bridge: format!("{PREFIX}{id}b"),
            id,
            subnet,
            hosts: Vec::new(),
            state: Mutex::new(Some(state)),
            torn_down: false,
        };
        // Drop removes whatever was created if a step fails.
        topo.build(names)?;
        Ok(topo)
    }

    /// A topology of remote hosts (`--hosts`, see [`crate::remote`]): no bridge, links or
    /// namespaces here; each host's `netns` is its node's remote place (`ssh:<node>`),
    /// which the firewall and the probes send over SSH. The subnet claim and registry
    /// entry only keep the id unique among live runs.
    pub fn remote(places: &[(String, String, Ipv4Addr)]) -> Result<Topology> {
        let subnet = Subnet::claim()?;
        let id = format!("h{}", subnet.third);
        let state = RunState::create(&id)?;
        let hosts = places
            .iter()
            .map(|(name, place, addr)| Host {
                name: name.clone(),
                netns: place.clone(),
                veth: String::new(),
                addr: *addr,
            })
            .collect();
        Ok(Topology {
            bridge: String::new(),
            id,
            subnet,
            hosts,
            state: Mutex::new(Some(state)),
            torn_down: false,
        })
    }

    /// Applies `f` to the registry entry and saves it.
    fn register(&self, f: impl FnOnce(&mut StateData)) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = guard
            .as_mut()
            .ok_or_else(|| anyhow!("topology already torn down"))?;
        f(&mut state.data);
        state.save()
    }

    /// Records a node process group leader, so a later `stasis clean` can kill it.
    pub fn register_process(&self, pid: u32) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(s) => s.add_process(pid),
            None => Ok(()),
        }
    }

    pub fn unregister_process(&self, pid: u32) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(s) => s.remove_process(pid),
            None => Ok(()),
        }
    }

    /// Records the run directory in the registry (shown by `stasis clean`).
    pub fn set_run_dir(&self, dir: &Path) -> Result<()> {
        self.register(|d| d.run_dir = Some(dir.to_owned()))
    }

    /// Checks that every namespace reaches every other one across the bridge, and that
    /// this (host) namespace reaches them all: a throwaway listener in each namespace,
    /// probed with TCP connects. Bridged traffic crosses the host's FORWARD chain when
    /// `net.bridge.bridge-nf-call-iptables=1`, so a DROP policy there shows up here
    /// instead of as a cluster that never elects a leader.
    pub fn check_connectivity(&self) -> Result<()> {
        let listeners: Vec<TcpListener> = self
            .hosts
            .iter()
            .map(|h| {
                with_netns(&h.netns, || TcpListener::bind((h.addr, 0)))?
                    .with_context(|| format!("cannot listen in {}", h.netns))
            })
            .collect::<Result<_>>()?;
        let targets: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<std::io::Result<_>>()?;
        for t in &targets {
            TcpStream::connect_timeout(t, Duration::from_secs(2)).with_context(|| {
                format!("this host cannot reach {t} over bridge {}", self.bridge)
            })?;
        }
        let netns: Vec<String> = self.hosts.iter().map(|h| h.netns.clone()).collect();
        let cut = unreachable_pairs(&netns, &targets, Duration::from_secs(2))?;
        if let Some((a, b)) = cut.first() {
            bail!(
                "{} cannot reach {} across bridge {}: the host's FORWARD chain probably drops \
                 bridged traffic (net.bridge.bridge-nf-call-iptables=1 with a DROP policy); \
                 run `stasis doctor`",
                self.hosts[*a].netns,
                self.hosts[*b].netns,
                self.bridge
            );
        }
        Ok(())
    }

    /// Finds a host by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    fn build(&mut self, names: &[&str]) -> Result<()> {
        let br = self.bridge.clone();
        self.register(|d| d.links.push(br.clone()))?;
        run(&["ip", "link", "add", &br, "type", "bridge"])?;
        let cidr = format!("{}/24", self.subnet.bridge_addr());
        run(&["ip", "addr", "add", &cidr, "dev", &br])?;
        run(&["ip", "link", "set", &br, "up"])?;
        for (k, name) in names.iter().enumerate() {
            let k = k + 1;
            let host = Host {
                name: (*name).to_owned(),
                netns: format!("{PREFIX}{}-{name}", self.id),
                veth: format!("{PREFIX}{}v{k}", self.id),
                addr: self.subnet.addr(k as u8 + 1),
            };
            let peer = format!("{PREFIX}{}p{k}", self.id);
            self.register(|d| {
                d.namespaces.push(host.netns.clone());
                d.links.push(host.veth.clone());
            })?;
            self.hosts.push(host.clone());
            run(&["ip", "netns", "add", &host.netns])?;
            run(&[
                "ip", "link", "add", &host.veth, "type", "veth", "peer", "name", &peer,
            ])?;
            run(&["ip", "link", "set", &peer, "netns", &host.netns])?;
            run(&["ip", "link", "set", &host.veth, "master", &br])?;
            run(&["ip", "link", "set", &host.veth, "up"])?;
            let ns = host.netns.as_str();
            run_in(ns, &["ip", "link", "set", &peer, "name", "eth0"])?;
            let addr = format!("{}/24", host.addr);
            run_in(ns, &["ip", "addr", "add", &addr, "dev", "eth0"])?;
            run_in(ns, &["ip", "link", "set", "eth0", "up"])?;
            run_in(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Removes veths, namespaces and the bridge. Errors are collected, not short-circuited,
    /// so one stuck object does not leave the others behind.
    pub fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut errors = Vec::new();
        let mut attempt = |present: bool, argv: &[&str]| {
            if present && let Err(e) = run(argv) {
                errors.push(e.to_string());
            }
        };
        for h in &self.hosts {
            attempt(link_exists(&h.veth), &["ip", "link", "del", &h.veth]);
        }
        for h in &self.hosts {
            attempt(
                netns_path(&h.netns).exists(),
                &["ip", "netns", "del", &h.netns],
            );
        }
        attempt(
            link_exists(&self.bridge),
            &["ip", "link", "del", &self.bridge],
        );
        if errors.is_empty() {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(state) = state {
                state.release();
            }
            Ok(())
        } else {
            bail!("teardown left objects behind: {}", errors.join("; "))
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!("{e}");
        }
    }
}

/// Whether a TCP connection from namespace `from_ns` to `to` gets an answer within
/// `timeout` (an accept or a refusal both count as reachable; silence does not).
pub fn reachable(from_ns: &str, to: SocketAddr, timeout: Duration) -> Result<bool> {
    with_netns(from_ns, || match TcpStream::connect_timeout(&to, timeout) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    })
}

/// Probes every ordered pair (from, to) in parallel; returns the set of unreachable pairs.
pub fn unreachable_pairs(
    netns: &[String],
    targets: &[SocketAddr],
    timeout: Duration,
) -> Result<BTreeSet<(usize, usize)>> {
    let n = netns.len();
    if netns.iter().any(|ns| crate::remote::lookup(ns).is_some()) {
        return remote_unreachable_pairs(netns, targets, timeout);
    }
    let results: Vec<Result<((usize, usize), bool)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
            .map(|(a, b)| {
                let ns = &netns[a];
                let to = targets[b];
                s.spawn(move || reachable(ns, to, timeout).map(|r| ((a, b), r)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("probe thread panicked")))
            .collect()
    });
    let mut out = BTreeSet::new();
    for r in results {
        let (pair, ok) = r?;
        if !ok {
            out.insert(pair);
        }
    }
    Ok(out)
}

/// [`unreachable_pairs`] between remote hosts: one SSH command per source host runs its
/// probes at once on that host, all hosts in parallel.
fn remote_unreachable_pairs(
    places: &[String],
    targets: &[SocketAddr],
    timeout: Duration,
) -> Result<BTreeSet<(usize, usize)>> {
    let n = places.len();
    let results: Vec<Result<Vec<bool>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|a| {
                s.spawn(move || {
                    let h = crate::remote::lookup(&places[a])
                        .ok_or_else(|| anyhow!("{} is not a remote host", places[a]))?;
                    let to: Vec<SocketAddr> =
                        (0..n).filter(|&b| b != a).map(|b| targets[b]).collect();
                    crate::remote::probe(&h, &to, timeout)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("probe thread panicked")))
            .collect()
    });
    let mut out = BTreeSet::new();
    for (a, r) in results.into_iter().enumerate() {
        let others = (0..n).filter(|&b| b != a);
        for (b, up) in others.zip(r?) {
            if !up {
                out.insert((a, b));
            }
        }
    }
    Ok(out)
}

/// Whether a network interface with this name exists in the current namespace.
pub fn link_exists(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    Path::new("/sys/class/net").join(name).exists()
}

/// Sorted names in `dir` that start with the `stasis-` prefix (empty if `dir` is missing).
fn stasis_entries(dir: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    out.sort();
    out
}

/// Names of `stasis-` namespaces that currently exist.
pub fn stasis_namespaces() -> Vec<String> {
    stasis_entries("/run/netns")
}

/// Names of `stasis-` links (bridges, veths) in the host namespace.
pub fn stasis_links() -> Vec<String> {
    stasis_entries("/sys/class/net")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_arguments_are_validated_before_touching_anything() {
        let e = Topology::create('R', &["n1"]).unwrap_err();
        assert!(e.to_string().contains("lowercase"), "{e}");
        let e = Topology::create('r', &["n-1"]).unwrap_err();
        assert!(e.to_string().contains("host name"), "{e}");
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        // Longest id (kind + "254") and a three-digit host number.
        let veth = format!("{PREFIX}r254v250");
        let peer = format!("{PREFIX}r254p250");
        let br = format!("{PREFIX}abcdb");
        for n in [veth, peer, br] {
            assert!(n.len() <= 15, "{n} is {} characters", n.len());
        }
    }

    #[test]
    fn subnet_claims_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: tests in this module that touch STASIS_STATE_DIR run in this one test.
        unsafe { std::env::set_var("STASIS_STATE_DIR", dir.path()) };
        let a = Subnet::claim().unwrap();
        let b = Subnet::claim().unwrap();
        assert_ne!(a.third, b.third);
        let third = a.third;
        drop(a);
        let c = Subnet::claim().unwrap();
        assert_eq!(c.third, third, "a released subnet is reused");
        assert_eq!(c.addr(2), Ipv4Addr::new(10, 211, third, 2));
        assert_eq!(c.cidr(), format!("10.211.{third}.0/24"));
    }
}
