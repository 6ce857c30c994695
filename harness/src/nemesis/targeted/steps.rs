//! The steps the targeted scenarios share: the nodes they work on ([`Nodes`]), the record
//! of their steps ([`Record`]), STATUS polling, firewall rules between node pairs, TCP
//! socket queues, lockstep scheduling of two nodes, restarts and clock moves.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::super::{find_leader, require_faketime, verify_clock};
use crate::client::resp::NodeStatus;
use crate::cluster::Cluster;
use crate::firewall::{self, Action, Change, Rule};

/// The leader, or (during an election) a node drawn from `rng`.
pub(super) fn leader_or_any(cluster: &Cluster<'_>, rng: &mut ChaCha8Rng) -> usize {
    use rand::RngExt;
    find_leader(cluster).unwrap_or_else(|| rng.random_range(0..cluster.len()))
}

pub(super) fn set_clock(cluster: &Cluster<'_>, i: usize, offset_ms: i64) -> Result<String> {
    require_faketime(cluster)?;
    cluster.set_clock(i, offset_ms as f64 / 1000.0, 1.0)?;
    verify_clock(cluster, i, offset_ms)
}

/// A node's term and role from its STATUS.
pub(super) fn term_role(cluster: &Cluster<'_>, i: usize) -> Option<(u64, String)> {
    let s = status_of(cluster, i)?;
    Some((s.term, s.role))
}

/// Polls node `i`'s STATUS every 5 ms until `done(term, role)` holds or `deadline` passes;
/// returns the last answer (`None` if it never answered).
pub(super) fn poll_status(
    cluster: &Cluster<'_>,
    i: usize,
    deadline: Instant,
    done: impl Fn(u64, &str) -> bool,
) -> Option<(u64, String)> {
    let mut last = None;
    wait_until(deadline, || {
        let Some((t, r)) = term_role(cluster, i) else {
            return false;
        };
        let finished = done(t, &r);
        last = Some((t, r));
        finished
    });
    last
}

/// One INPUT rule in `at`'s namespace against packets from node `from` (only those to
/// `at`'s port `dport` when given): added (`cut`) or deleted; DROP, or with `reject` a
/// TCP-reset REJECT (see [`firewall::Action::Reset`]).
pub(super) fn rule<'a>(
    netns: &'a [String],
    addrs: &[std::net::Ipv4Addr],
    (at, from, dport): (usize, usize, Option<u16>),
    cut: bool,
    reject: bool,
) -> Change<'a> {
    let action = if reject { Action::Reset } else { Action::Drop };
    let mut r = Rule::from(addrs[from], action);
    if let Some(p) = dport {
        r = r.port(p);
    }
    if cut {
        Change::Add(&netns[at], r)
    } else {
        Change::Delete(&netns[at], r)
    }
}

/// Adds (`cut`) or removes the rules (DROP, or with `reject` a TCP-reset REJECT) between
/// nodes `x` and `y`, both ways at once.
pub(super) fn set_pair(
    netns: &[String],
    addrs: &[std::net::Ipv4Addr],
    x: usize,
    y: usize,
    cut: bool,
    reject: bool,
) -> Result<()> {
    firewall::apply_parallel(&[
        rule(netns, addrs, (x, y, None), cut, reject),
        rule(netns, addrs, (y, x, None), cut, reject),
    ])
}

pub(super) fn shown(s: &Option<(u64, String)>) -> String {
    match s {
        Some((t, r)) => format!("{r} in term {t}"),
        None => "no answer".to_owned(),
    }
}

/// Whether bytes from `from_ip` wait unread in an established TCP connection to local port
/// `port` of the process `pid` (its network namespace's `/proc/<pid>/net/tcp`).
pub(super) fn bytes_waiting(pid: u32, port: u16, from_ip: std::net::Ipv4Addr) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // Addresses are little-endian hex words: 0100000A:1B58 is 10.0.0.1:7000.
    let want_ip = format!("{:08X}", u32::from_le_bytes(from_ip.octets()));
    let want_port = format!("{port:04X}");
    text.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[3] != "01" {
            return false;
        }
        let (Some((_, lport)), Some((rip, _))) = (f[1].split_once(':'), f[2].split_once(':'))
        else {
            return false;
        };
        let rx = f[4]
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
            .unwrap_or(0);
        lport == want_port && rip == want_ip && rx > 0
    })
}

/// Waits up to `within` for bytes from `from_ip` to wait in `pid`'s socket on `port`.
pub(super) fn bytes_arrive(
    pid: u32,
    port: u16,
    from_ip: std::net::Ipv4Addr,
    within: Duration,
) -> bool {
    wait_until(Instant::now() + within, || {
        bytes_waiting(pid, port, from_ip)
    })
}

/// Waits until `cond` holds or `deadline` passes.
pub(super) fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline || crate::signals::interrupted() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The nodes a multi-step targeted fault works on, as parallel vectors.
pub(super) struct Nodes {
    pub(super) infos: Vec<crate::nodes::NodeInfo>,
    pub(super) names: Vec<String>,
    pub(super) netns: Vec<String>,
    pub(super) addrs: Vec<std::net::Ipv4Addr>,
    pub(super) peers: Vec<std::net::SocketAddr>,
}

impl Nodes {
    pub(super) fn of(cluster: &Cluster<'_>) -> Nodes {
        let infos = cluster.infos();
        Nodes {
            names: infos.iter().map(|i| i.name.clone()).collect(),
            netns: infos.iter().map(|i| i.netns.clone()).collect(),
            addrs: infos.iter().map(|i| i.addr).collect(),
            peers: infos.iter().map(|i| i.peer_addr()).collect(),
            infos,
        }
    }
}

/// The steps a multi-step targeted fault took, with their times, for its event value.
pub(super) struct Record {
    pub(super) combo: &'static str,
    pub(super) began: Instant,
    pub(super) steps: Vec<Value>,
}

impl Record {
    pub(super) fn new(combo: &'static str) -> Record {
        Record {
            combo,
            began: Instant::now(),
            steps: Vec::new(),
        }
    }

    pub(super) fn step(&mut self, what: String) {
        let at_ms = self.began.elapsed().as_millis() as u64;
        self.steps.push(json!({"at_ms": at_ms, "step": what}));
    }

    /// The event value of a fault that stopped early: which precondition failed.
    pub(super) fn missed(&self, why: String) -> Value {
        json!({"combo": self.combo, "outcome": format!("missed: {why}"), "steps": self.steps})
    }
}

/// How a multi-step fault on exactly `want` nodes begins: its nodes, its record (timed
/// from now), the leader that settled (the previous fault may have left an election
/// going on) with its term, and the other nodes in a random order.
pub(super) struct Opening {
    pub(super) n: usize,
    pub(super) nodes: Nodes,
    pub(super) rec: Record,
    pub(super) leader: usize,
    pub(super) term: u64,
    pub(super) others: Vec<usize>,
}

/// Opens the fault `combo`: an error if the cluster does not have exactly `want` nodes;
/// `Ok(Err(value))`, the fault's event value, if no node leads within 4 s.
pub(super) fn open(
    cluster: &Cluster<'_>,
    combo: &'static str,
    want: usize,
    rng: &mut ChaCha8Rng,
) -> Result<std::result::Result<Opening, Value>> {
    let n = cluster.len();
    if n != want {
        bail!("the {combo} fault needs exactly {want} nodes, not {n}");
    }
    let nodes = Nodes::of(cluster);
    let rec = Record::new(combo);
    let Some((leader, term)) = settled_leader(cluster, rec.began + Duration::from_secs(4)) else {
        return Ok(Err(
            rec.missed("no node leads (or it did not answer STATUS)".into())
        ));
    };
    let mut others: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
    others.shuffle(rng);
    Ok(Ok(Opening {
        n,
        nodes,
        rec,
        leader,
        term,
        others,
    }))
}

/// Waits until some node leads; returns it and its term.
pub(super) fn settled_leader(cluster: &Cluster<'_>, deadline: Instant) -> Option<(usize, u64)> {
    let mut leader = None;
    wait_until(deadline, || {
        leader = find_leader(cluster);
        leader.is_some()
    });
    let l = leader?;
    Some((l, term_role(cluster, l)?.0))
}

/// Restarts node `i` (SIGKILL, then a fresh process on the same data); its new pid.
pub(super) fn restart(cluster: &mut Cluster<'_>, i: usize) -> Result<u32> {
    let old = cluster.kill(i)?;
    let pid = cluster.start(i)?;
    if old == Some(pid) {
        bail!("{} restarted with its old pid {pid}", cluster.info(i).name);
    }
    Ok(pid)
}

/// Node `i`'s STATUS (`None` if it does not answer within 200 ms).
pub(super) fn status_of(cluster: &Cluster<'_>, i: usize) -> Option<NodeStatus> {
    crate::client::resp::status(cluster.info(i).client_addr(), Duration::from_millis(200)).ok()
}

/// Runs node `v` and the `senders` in turns, never at the same time, so that each of
/// `v`'s answers reaches a sender that is stopped: the senders run until bytes from one
/// of them wait in `v`'s socket; then they are paused and `v` runs until it has read
/// them. Stops when `v`'s STATUS satisfies `done` and returns it, with `v` running and the
/// senders paused (their next messages, sent once resumed, are still unsent), so the
/// caller can cut them off from `v` first. `None` at `deadline`, with everyone running.
/// Expects `v` paused and the senders running.
pub(super) fn lockstep(
    cluster: &mut Cluster<'_>,
    senders: &[usize],
    v: usize,
    deadline: Instant,
    turns: &mut u32,
    done: impl Fn(&NodeStatus) -> bool,
) -> Result<Option<NodeStatus>> {
    let ms = Duration::from_millis;
    let pid = cluster.pid(v).context("the voter is not running")?;
    let port = cluster.info(v).peer_port;
    let from: Vec<std::net::Ipv4Addr> = senders.iter().map(|&s| cluster.info(s).addr).collect();
    let waiting = || from.iter().any(|&ip| bytes_waiting(pid, port, ip));
    loop {
        if !wait_until(deadline, waiting) {
            cluster.resume(v)?;
            return Ok(None);
        }
        // Let a burst (a connection's greeting and the message after it) arrive whole.
        std::thread::sleep(ms(30));
        for &s in senders {
            cluster.pause(s)?;
        }
        cluster.resume(v)?;
        *turns += 1;
        wait_until(Instant::now() + ms(500), || !waiting());
        // Reading is not handling: give it time to persist and answer.
        std::thread::sleep(ms(30));
        if let Some(st) = status_of(cluster, v)
            && done(&st)
        {
            return Ok(Some(st));
        }
        cluster.pause(v)?;
        for &s in senders {
            cluster.resume(s)?;
        }
    }
}

/// The iptables rules a fault keeps in place: (namespace owner, source node, only to the
/// owner's peer port). All are TCP-reset REJECTs.
pub(super) type Rules = std::collections::BTreeSet<(usize, usize, Option<u16>)>;

/// Moves from the rules in place to `want`: new rules first, then the removals, so no
/// link that both keep cut is ever open in between.
pub(super) fn set_rules(
    netns: &[String],
    addrs: &[std::net::Ipv4Addr],
    have: &mut Rules,
    want: Rules,
) -> Result<()> {
    firewall::apply_parallel(
        &want
            .difference(have)
            .map(|&r| rule(netns, addrs, r, true, true))
            .collect::<Vec<_>>(),
    )?;
    firewall::apply_parallel(
        &have
            .difference(&want)
            .map(|&r| rule(netns, addrs, r, false, true))
            .collect::<Vec<_>>(),
    )?;
    *have = want;
    Ok(())
}

/// Both directions between every node of `xs` and every node of `ys`.
pub(super) fn cut_between(xs: &[usize], ys: &[usize]) -> Rules {
    let mut r = Rules::new();
    for &x in xs {
        for &y in ys {
            r.insert((x, y, None));
            r.insert((y, x, None));
        }
    }
    r
}

/// Checks that every rule in `rules` refuses connections (a refusal between listening
/// nodes can only come from a rule).
pub(super) fn verify_rules(
    netns: &[String],
    peers: &[std::net::SocketAddr],
    names: &[String],
    rules: &Rules,
) -> Result<()> {
    for &(at, from, _) in rules {
        if !firewall::refused(&netns[from], peers[at])? {
            bail!(
                "the cut from {} to {} did not take effect",
                names[from],
                names[at]
            );
        }
    }
    Ok(())
}
