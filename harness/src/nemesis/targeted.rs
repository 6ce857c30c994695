//! Targeted faults: combinations the ordinary scheduler never produces (it never overlaps
//! faults), built to expose specific consensus bugs quickly. `stasis selftest` schedules
//! them; they are applied, verified, recorded (`start-targeted` / `stop-targeted`, the
//! value saying what was done) and healed like every other fault.
//!
//! - `isolate-leader-clock`: cut the current leader off from every other node *and* move
//!   its wall clock (a lease timed by the wall clock then outlives the partition).
//! - `double-vote` (three nodes, built for Raft without pre-vote): make one node Y grant
//!   its vote in a term to two candidates, A and L, across a restart, before either
//!   candidate's entries reach it. Steps: cut all three apart (iptables REJECT, so
//!   connections fail with a reset and reconnect at once when allowed) and restart the
//!   leader L; wait until all three are candidates of the same new term (each voted for
//!   itself); restart Y (the term is durable) and pause it; reconnect A and Y and wait
//!   until A's vote request sits in Y's socket (`/proc/<pid>/net/tcp`); pause A, resume Y
//!   and wait until Y's answer sits in A's socket; restart Y again, reconnect it with L;
//!   once L leads (or gave up waiting), resume A. A node that persists its vote refuses A
//!   (it voted for itself) and then L: no leader in that term. One that forgets it grants
//!   A and then L, and A and L lead the same term side by side, both replicating through
//!   Y, while A and L stay cut apart until stop. Each step checks the state it needs
//!   (STATUS terms and roles, socket queues) and the fault records where it stopped when
//!   the race went the other way.
//!
//! - `figure8` (five nodes, built for Raft with `--max-msg-entries 1 --max-inflight-msgs
//!   1`): the Raft paper's Figure 8. Cut the leader L and a follower F off from the other
//!   three, so a new client write at index i reaches F only. Of the three, N (the longest
//!   log) leads the next term with V's vote, V and W being cut apart so nobody else can;
//!   N's entries must not reach V, so V and N run in turns ([`lockstep`]: whenever bytes
//!   from N wait in V's socket, N is paused and V resumed) and once V voted, a one-way
//!   TCP-reset rule against N goes in before N runs again. N is paused as soon as it
//!   leads. Then V is reconnected to L and F, and the same turns run until V stores
//!   index i: L or F leads a newer term with V's vote and, one entry per message, sends
//!   V the old entries; right after V stores i, and before the leader reads V's
//!   acknowledgement, L and F are cut off from V (one way: V's answers still arrive).
//!   Index i is now on a majority (L, F, V) but the leader's own first entry is only on
//!   L and F. Finally L and F are cut off from the rest, N is restarted and N, V, W
//!   elect a leader whose entry at i is N's, which replaces V's. A correct leader never
//!   commits i (not of its term); one that counts replicas commits it, and the write,
//!   pending at L since before the cut, is answered `+OK` and then read gone.
//! - `isolate-then-cut-pair`: isolate the leader until another node leads, then reconnect
//!   the old leader to everyone except the new leader: an old leader that nobody fences
//!   off (acceptors that accept a lower ballot) goes on leading next to the new one.
//! - `split-replace`: pause the two spares, ask the leader to replace two voters other
//!   than itself with them in one `RECONFIG` (the leader adds them as learners under the
//!   old configuration, then waits for them to catch up), cut the two leaving voters off
//!   from everyone, and resume the spares. With joint consensus the change cannot commit
//!   (C_old,new needs a majority of the old voters); a direct switch lets the leader and
//!   the spares decide while the two cut-off voters, a majority of the old
//!   configuration, elect a leader of their own. At stop the network heals and the
//!   voters are changed back.
//!
//! The `start-targeted` event is recorded when the fault's setup is complete (for
//! `double-vote` and `figure8`, after its last step); the value carries the times of its
//! steps.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::partition::{self, Shape};
use super::{Active, find_leader, require_faketime, verify_clock};
use crate::client::resp::NodeStatus;
use crate::cluster::Cluster;
use crate::firewall::{self, Action, Change, Rule};

/// One targeted fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "combo", rename_all = "kebab-case")]
pub enum Combo {
    /// Isolate the leader and move its wall clock by `offset_ms`.
    IsolateLeaderClock { offset_ms: i64 },
    /// Make one node vote twice in a term across restarts (see the module docs);
    /// `election_ms` is the nodes' minimum election timeout.
    DoubleVote { election_ms: u64 },
    /// The Raft paper's Figure 8 on five nodes (see the module docs); `election_ms` is
    /// the nodes' minimum election timeout.
    Figure8 { election_ms: u64 },
    /// Isolate the leader until another node leads (at most `wait_ms`), then let the old
    /// leader reach everyone except the new leader.
    IsolateThenCutPair { wait_ms: u64 },
    /// Replace two voters other than the leader with two spares in one change, cutting
    /// the two leaving voters off once the spares are learners; the voters are changed
    /// back (after the heal) at stop. Without `pause_spares` the cut comes first and the
    /// request right after it (enough for a leader that needs no catch-up stage).
    SplitReplace {
        #[serde(default)]
        pause_spares: bool,
    },
}

impl Combo {
    pub fn name(&self) -> &'static str {
        match self {
            Combo::IsolateLeaderClock { .. } => "isolate-leader-clock",
            Combo::DoubleVote { .. } => "double-vote",
            Combo::Figure8 { .. } => "figure8",
            Combo::SplitReplace { .. } => "split-replace",
            Combo::IsolateThenCutPair { .. } => "isolate-then-cut-pair",
        }
    }

    /// Whether the nodes must run under libfaketime for this fault.
    pub fn needs_clock(&self) -> bool {
        matches!(self, Combo::IsolateLeaderClock { .. })
    }
}

/// The leader, or (during an election) a node drawn from `rng`.
fn leader_or_any(cluster: &Cluster<'_>, rng: &mut ChaCha8Rng) -> usize {
    use rand::RngExt;
    find_leader(cluster).unwrap_or_else(|| rng.random_range(0..cluster.len()))
}

fn set_clock(cluster: &Cluster<'_>, i: usize, offset_ms: i64) -> Result<String> {
    require_faketime(cluster)?;
    crate::faketime::write_control(
        &cluster.info(i).faketime_file(),
        offset_ms as f64 / 1000.0,
        1.0,
    )?;
    verify_clock(cluster, i, offset_ms)
}

/// Applies `combo`; fills `active` (nodes, grudge, evidence) and returns the event value.
pub fn start(
    cluster: &mut Cluster<'_>,
    combo: &Combo,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    match combo {
        Combo::IsolateLeaderClock { offset_ms } => {
            let l = leader_or_any(cluster, rng);
            active.nodes = vec![l];
            active.evidence.push(set_clock(cluster, l, *offset_ms)?);
            let g = partition::grudge(Shape::IsolateLeader, cluster.len(), Some(l), rng)?;
            let infos = cluster.infos();
            let netns: Vec<String> = infos.iter().map(|i| i.netns.clone()).collect();
            let addrs: Vec<_> = infos.iter().map(|i| i.addr).collect();
            partition::apply(&g, &netns, &addrs)?;
            let peers: Vec<_> = infos.iter().map(|i| i.peer_addr()).collect();
            let want = partition::expected_unreachable(&g, infos.len());
            firewall::verify_reachability(&netns, &peers, &want)
                .context("isolating the leader did not take effect")?;
            active.evidence.push(format!(
                "{} isolated: {} ordered pairs unreachable, as intended",
                infos[l].name,
                want.len()
            ));
            let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
            let v = json!({
                "combo": combo.name(),
                "leader": infos[l].name,
                "offset_ms": offset_ms,
                "grudge": partition::describe(&g, &names),
            });
            active.grudge = Some(g);
            Ok(v)
        }
        Combo::DoubleVote { election_ms } => double_vote(cluster, *election_ms, rng, active),
        Combo::Figure8 { election_ms } => figure8(cluster, *election_ms, rng, active),
        Combo::SplitReplace { pause_spares } => split_replace(cluster, *pause_spares, rng, active),
        Combo::IsolateThenCutPair { wait_ms } => {
            isolate_then_cut_pair(cluster, *wait_ms, rng, active)
        }
    }
}

fn isolate_then_cut_pair(
    cluster: &mut Cluster<'_>,
    wait_ms: u64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let began = Instant::now();
    let l = leader_or_any(cluster, rng);
    let n = cluster.len();
    let Target {
        names,
        netns,
        addrs,
        peers,
        ..
    } = Target::of(cluster);
    let g = partition::grudge(Shape::IsolateLeader, n, Some(l), rng)?;
    partition::apply(&g, &netns, &addrs)?;
    let want = partition::expected_unreachable(&g, n);
    firewall::verify_reachability(&netns, &peers, &want)
        .context("isolating the leader did not take effect")?;
    active.nodes = vec![l];
    active.evidence.push(format!("{} isolated", names[l]));
    // Wait for the others to elect someone.
    let deadline = began + Duration::from_millis(wait_ms);
    let mut new_leader = None;
    wait_until(deadline, || {
        new_leader = (0..n)
            .filter(|&i| i != l)
            .find(|&i| term_role(cluster, i).is_some_and(|(_, role)| role == "leader"));
        new_leader.is_some()
    });
    let Some(m) = new_leader else {
        active.grudge = Some(g.clone());
        return Ok(json!({
            "combo": "isolate-then-cut-pair",
            "leader": names[l],
            "new_leader": null,
            "grudge": partition::describe(&g, &names),
        }));
    };
    let elected_ms = began.elapsed().as_millis() as u64;
    // Narrow the cut to the two leaders without ever reconnecting them: drop the other
    // nodes' rules, and the old leader's rules against everyone but the new leader.
    // All at once (the old leader's check-quorum is running).
    let others: Vec<usize> = (0..n).filter(|&i| i != l && i != m).collect();
    let mut jobs: Vec<Change<'_>> = others
        .iter()
        .map(|&i| Change::FlushInput(&netns[i]))
        .collect();
    jobs.extend(
        others
            .iter()
            .map(|&y| rule(&netns, &addrs, (l, y, None), false, false)),
    );
    firewall::apply_parallel(&jobs)?;
    let mut pair = partition::Grudge::new();
    pair.insert(l, [m].into());
    pair.insert(m, [l].into());
    let want = partition::expected_unreachable(&pair, n);
    firewall::verify_reachability(&netns, &peers, &want)
        .context("narrowing the cut to the two leaders did not take effect")?;
    active.evidence.push(format!(
        "{} leads after {elected_ms} ms; only {} <-> {} cut now",
        names[m], names[l], names[m]
    ));
    let v = json!({
        "combo": "isolate-then-cut-pair",
        "leader": names[l],
        "new_leader": names[m],
        "elected_ms": elected_ms,
        "grudge": partition::describe(&pair, &names),
    });
    active.grudge = Some(pair);
    Ok(v)
}

fn split_replace(
    cluster: &mut Cluster<'_>,
    pause_spares: bool,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let m = cluster
        .membership
        .clone()
        .context("split-replace needs the system spec's [membership] section (and --spares 2)")?;
    let view = super::membership::leader_view(cluster)
        .map_err(|e| anyhow::anyhow!("split-replace: no leader to ask: {e}"))?;
    let l = view.leader;
    let mut leaving: Vec<usize> = view.voters.iter().copied().filter(|&v| v != l).collect();
    let mut joining: Vec<usize> = (0..cluster.len())
        .filter(|i| !view.voters.contains(i))
        .collect();
    if leaving.len() < 2 || joining.len() < 2 {
        bail!(
            "split-replace needs two voters besides the leader and two spares (voters {:?}, {} nodes)",
            view.voters,
            cluster.len()
        );
    }
    leaving.shuffle(rng);
    leaving.truncate(2);
    leaving.sort_unstable();
    joining.shuffle(rng);
    joining.truncate(2);
    let mut target: Vec<usize> = view
        .voters
        .iter()
        .copied()
        .filter(|v| !leaving.contains(v))
        .chain(joining.iter().copied())
        .collect();
    target.sort_unstable();
    // The cut: the leaving voters on one side, everybody else on the other.
    let mut g = partition::Grudge::new();
    for i in 0..cluster.len() {
        let cut_off = leaving.contains(&i);
        let drop: std::collections::BTreeSet<usize> = (0..cluster.len())
            .filter(|j| leaving.contains(j) != cut_off)
            .collect();
        g.insert(i, drop);
    }
    let infos = cluster.infos();
    let names = |v: &[usize]| -> Vec<String> { v.iter().map(|&i| infos[i].name.clone()).collect() };
    // Pause the spares, so the leader's change waits in its catch-up stage (the learners
    // are added under the old configuration, which still works) until they resume.
    let netns: Vec<String> = infos.iter().map(|i| i.netns.clone()).collect();
    let addrs: Vec<_> = infos.iter().map(|i| i.addr).collect();
    if pause_spares {
        for &i in &joining {
            cluster.pause(i)?;
        }
    } else {
        partition::apply(&g, &netns, &addrs)?;
    }
    active.nodes = joining.clone();
    let voters: Vec<_> = target.iter().map(|&i| infos[i].clone()).collect();
    let argv = m.render(&voters);
    let addr = infos[l].client_addr();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        let reply = match crate::client::resp::request(addr, &args, Duration::from_secs(8)) {
            Ok(r) => format!("{r:?}"),
            Err((_, e)) => e,
        };
        let _ = tx.send(reply);
    });
    // Wait until the leader shows the spares as learners.
    let until = Instant::now() + Duration::from_secs(if pause_spares { 3 } else { 0 });
    let want_learners: Vec<String> = names(&joining);
    let mut learners_seen = false;
    while Instant::now() < until && !crate::signals::interrupted() {
        if let Ok(st) = crate::client::resp::status(addr, Duration::from_millis(300)) {
            let l = st.learners;
            if want_learners.iter().all(|w| l.contains(w)) {
                learners_seen = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if pause_spares {
        partition::apply(&g, &netns, &addrs)?;
    }
    let peers: Vec<_> = infos.iter().map(|i| i.peer_addr()).collect();
    let want = partition::expected_unreachable(&g, infos.len());
    // Paused spares cannot answer the probes; check the cut before resuming them.
    if pause_spares {
        for &i in &joining {
            cluster.resume(i)?;
        }
    }
    firewall::verify_reachability(&netns, &peers, &want)
        .context("the split did not take effect")?;
    active.evidence.push(format!(
        "{} cut off: {} ordered pairs unreachable, as intended (spares {} learners first: {learners_seen})",
        names(&leaving).join(","),
        want.len(),
        names(&joining).join(",")
    ));
    let reply = rx
        .recv_timeout(Duration::from_secs(3))
        .unwrap_or_else(|_| "no reply within 3 s of the cut".to_owned());
    active.evidence.push(format!(
        "asked {} for voters {target:?}: {reply}",
        infos[l].name
    ));
    active.nodes = leaving.clone();
    active.voters_before = Some(view.voters.clone());
    let v = json!({
        "combo": "split-replace",
        "leader": infos[l].name,
        "cut": names(&leaving),
        "from": names(&view.voters),
        "to": names(&target),
        "reply": reply,
        "learners_first": learners_seen,
        "grudge": partition::describe(&g, &infos.iter().map(|i| i.name.clone()).collect::<Vec<_>>()),
    });
    active.grudge = Some(g);
    Ok(v)
}

/// A node's term and role from its STATUS.
fn term_role(cluster: &Cluster<'_>, i: usize) -> Option<(u64, String)> {
    let s = status_of(cluster, i)?;
    Some((s.term, s.role))
}

/// Polls node `i`'s STATUS every 5 ms until `done(term, role)` holds or `deadline` passes;
/// returns the last answer (`None` if it never answered).
fn poll_status(
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
fn rule<'a>(
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
fn set_pair(
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

fn shown(s: &Option<(u64, String)>) -> String {
    match s {
        Some((t, r)) => format!("{r} in term {t}"),
        None => "no answer".to_owned(),
    }
}

/// Whether bytes from `from_ip` wait unread in an established TCP connection to local port
/// `port` of the process `pid` (its network namespace's `/proc/<pid>/net/tcp`).
fn bytes_waiting(pid: u32, port: u16, from_ip: std::net::Ipv4Addr) -> bool {
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
fn bytes_arrive(pid: u32, port: u16, from_ip: std::net::Ipv4Addr, within: Duration) -> bool {
    wait_until(Instant::now() + within, || {
        bytes_waiting(pid, port, from_ip)
    })
}

/// Waits until `cond` holds or `deadline` passes.
fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
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
struct Target {
    infos: Vec<crate::nodes::NodeInfo>,
    names: Vec<String>,
    netns: Vec<String>,
    addrs: Vec<std::net::Ipv4Addr>,
    peers: Vec<std::net::SocketAddr>,
}

impl Target {
    fn of(cluster: &Cluster<'_>) -> Target {
        let infos = cluster.infos();
        Target {
            names: infos.iter().map(|i| i.name.clone()).collect(),
            netns: infos.iter().map(|i| i.netns.clone()).collect(),
            addrs: infos.iter().map(|i| i.addr).collect(),
            peers: infos.iter().map(|i| i.peer_addr()).collect(),
            infos,
        }
    }
}

/// The steps a multi-step targeted fault took, with their times, for its event value.
struct Record {
    combo: &'static str,
    began: Instant,
    steps: Vec<Value>,
}

impl Record {
    fn new(combo: &'static str) -> Record {
        Record {
            combo,
            began: Instant::now(),
            steps: Vec::new(),
        }
    }

    fn step(&mut self, what: String) {
        let at_ms = self.began.elapsed().as_millis() as u64;
        self.steps.push(json!({"at_ms": at_ms, "step": what}));
    }

    /// The event value of a fault that stopped early: which precondition failed.
    fn missed(&self, why: String) -> Value {
        json!({"combo": self.combo, "outcome": format!("missed: {why}"), "steps": self.steps})
    }
}

/// The cluster's size, which must be `want` for the fault `combo`.
fn exactly(cluster: &Cluster<'_>, combo: &str, want: usize) -> Result<usize> {
    let n = cluster.len();
    if n != want {
        bail!("the {combo} fault needs exactly {want} nodes, not {n}");
    }
    Ok(n)
}

/// Waits until some node leads; returns it and its term.
fn settled_leader(cluster: &Cluster<'_>, deadline: Instant) -> Option<(usize, u64)> {
    let mut leader = None;
    wait_until(deadline, || {
        leader = super::find_leader(cluster);
        leader.is_some()
    });
    let l = leader?;
    Some((l, term_role(cluster, l)?.0))
}

/// Restarts node `i` (SIGKILL, then a fresh process on the same data); its new pid.
fn restart(cluster: &mut Cluster<'_>, i: usize) -> Result<u32> {
    let old = cluster.kill(i)?;
    let pid = cluster.start(i)?;
    if old == Some(pid) {
        bail!("{} restarted with its old pid {pid}", cluster.info(i).name);
    }
    Ok(pid)
}

fn double_vote(
    cluster: &mut Cluster<'_>,
    election_ms: u64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let n = exactly(cluster, "double-vote", 3)?;
    let Target {
        infos,
        names,
        netns,
        addrs,
        peers,
    } = Target::of(cluster);
    let mut rec = Record::new("double-vote");
    let began = rec.began;
    let ms = Duration::from_millis;
    let e = ms(election_ms);
    // The previous fault may have left an election going on.
    let Some((l, term)) = settled_leader(cluster, began + ms(4000)) else {
        return Ok(rec.missed("no node leads (or it did not answer STATUS)".into()));
    };
    let mut others: Vec<usize> = (0..n).filter(|&i| i != l).collect();
    others.shuffle(rng);
    let (a, y) = (others[0], others[1]);
    let next = term + 1;
    active.nodes = vec![l, a, y];

    // 1. Cut all three apart (TCP resets, so reconnecting later is immediate) and restart
    //    L: every node campaigns in `next` alone, voting for itself.
    for (p, q) in [(l, a), (l, y), (a, y)] {
        set_pair(&netns, &addrs, p, q, true, true)?;
    }
    let cut_at = Instant::now();
    active.grudge = Some(
        (0..n)
            .map(|i| (i, (0..n).filter(|&j| j != i).collect()))
            .collect(),
    );
    let pid = restart(cluster, l)?;
    rec.step(format!(
        "all three cut apart; {} (leader of term {term}) restarted as pid {pid}",
        names[l]
    ));
    if !wait_until(Instant::now() + ms(2000), || {
        term_role(cluster, l).is_some()
    }) {
        bail!("{} did not answer STATUS after its restart", names[l]);
    }
    // A refusal between two listening nodes can only come from the rules.
    for p in 0..n {
        for q in (0..n).filter(|&q| q != p) {
            if !firewall::refused(&netns[p], peers[q])? {
                bail!(
                    "the cut from {} to {} did not take effect",
                    names[p],
                    names[q]
                );
            }
        }
    }
    active
        .evidence
        .push("all three nodes cut apart (every connection reset)".to_owned());

    // 2. Wait until all three are candidates in `next`.
    let deadline = cut_at + 2 * e + ms(500);
    let mut seen = vec![None; n];
    let all = wait_until(deadline, || {
        for i in [a, y, l] {
            seen[i] = term_role(cluster, i);
        }
        seen.iter()
            .all(|s| matches!(s, Some((t, r)) if *t == next && r == "candidate"))
            || seen.iter().any(|s| matches!(s, Some((t, _)) if *t > next))
    });
    if !all
        || seen
            .iter()
            .any(|s| !matches!(s, Some((t, _)) if *t == next))
    {
        let got: Vec<String> = (0..n)
            .map(|i| format!("{} {}", names[i], shown(&seen[i])))
            .collect();
        return Ok(rec.missed(format!(
            "not all candidates in term {next}: {}",
            got.join(", ")
        )));
    }
    rec.step(format!("all three are candidates in term {next}"));

    // 3. Restart Y: the term is durable; a node that forgets its vote may vote again.
    //    Pause it once it listens, then let A's vote request reach it and wait there.
    let pid_y = restart(cluster, y)?;
    if !wait_until(Instant::now() + ms(1000), || {
        term_role(cluster, y).is_some()
    }) {
        bail!("{} did not answer STATUS after its restart", names[y]);
    }
    cluster.pause(y)?;
    set_pair(&netns, &addrs, a, y, false, true)?;
    rec.step(format!(
        "{} restarted as pid {pid_y} and paused; {} <-> {} reconnected",
        names[y], names[a], names[y]
    ));
    if !bytes_arrive(pid_y, infos[y].peer_port, addrs[a], ms(1200)) {
        cluster.resume(y)?;
        return Ok(rec.missed(format!(
            "{}'s vote request never reached {}",
            names[a], names[y]
        )));
    }
    // The first bytes may be only the connection's handshake frame: give A one more
    // retry interval (its vote requests are resent every heartbeat) before pausing it.
    std::thread::sleep(ms(150));
    // 4. Pause A, resume Y: Y answers, and the answer waits in A's socket.
    cluster.pause(a)?;
    cluster.resume(y)?;
    let pid_a = cluster.pid(a).context("A is not running")?;
    if !bytes_arrive(pid_a, infos[a].peer_port, addrs[y], ms(500)) {
        cluster.resume(a)?;
        return Ok(rec.missed(format!("{} did not answer {}", names[y], names[a])));
    }
    std::thread::sleep(ms(30));
    rec.step(format!(
        "{} paused with {}'s answer to its vote request waiting",
        names[a], names[y]
    ));

    // 5. Restart Y again and reconnect it with L, which asks it for its vote too.
    let pid_y = restart(cluster, y)?;
    set_pair(&netns, &addrs, l, y, false, true)?;
    rec.step(format!(
        "{} restarted as pid {pid_y}; {} <-> {} reconnected",
        names[y], names[l], names[y]
    ));
    let seen_l = poll_status(cluster, l, Instant::now() + ms(1500), |t, r| {
        r == "leader" || t > next
    });
    rec.step(format!("{} is {}", names[l], shown(&seen_l)));

    // 6. Resume A: it reads Y's first answer. A and L stay cut apart.
    cluster.resume(a)?;
    let seen_a = poll_status(cluster, a, Instant::now() + ms(500), |t, r| {
        r == "leader" || t > next
    });
    rec.step(format!("{} resumed: {}", names[a], shown(&seen_a)));
    let mut g = partition::Grudge::new();
    g.insert(l, [a].into());
    g.insert(a, [l].into());
    active.grudge = Some(g.clone());
    let leads =
        |s: &Option<(u64, String)>| matches!(s, Some((t, r)) if *t == next && r == "leader");
    let outcome = if leads(&seen_l) && leads(&seen_a) {
        format!("two leaders in term {next}: {} and {}", names[a], names[l])
    } else {
        format!(
            "{} {}, {} {}",
            names[l],
            shown(&seen_l),
            names[a],
            shown(&seen_a)
        )
    };
    for (p, q) in [(a, l), (l, a)] {
        if !firewall::refused(&netns[p], peers[q])? {
            bail!("the cut from {} to {} did not hold", names[p], names[q]);
        }
    }
    active.evidence.push(outcome.clone());
    Ok(json!({
        "combo": "double-vote",
        "leader": names[l],
        "voter": names[y],
        "candidates": [names[a], names[l]],
        "term": next,
        "outcome": outcome,
        "steps": rec.steps,
        "grudge": partition::describe(&g, &names),
    }))
}

/// Node `i`'s STATUS (`None` if it does not answer within 200 ms).
fn status_of(cluster: &Cluster<'_>, i: usize) -> Option<NodeStatus> {
    crate::client::resp::status(cluster.info(i).client_addr(), Duration::from_millis(200)).ok()
}

/// Runs node `v` and the `senders` in turns, never at the same time, so that each of
/// `v`'s answers reaches a sender that is stopped: the senders run until bytes from one
/// of them wait in `v`'s socket; then they are paused and `v` runs until it has read
/// them. Stops when `v`'s STATUS satisfies `done` and returns it, with `v` running and the
/// senders paused (their next messages, sent once resumed, are still unsent), so the
/// caller can cut them off from `v` first. `None` at `deadline`, with everyone running.
/// Expects `v` paused and the senders running.
fn lockstep(
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
type Rules = std::collections::BTreeSet<(usize, usize, Option<u16>)>;

/// Moves from the rules in place to `want`: new rules first, then the removals, so no
/// link that both keep cut is ever open in between.
fn set_rules(
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
fn cut_between(xs: &[usize], ys: &[usize]) -> Rules {
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
fn verify_rules(
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

/// The Raft paper's Figure 8 on five nodes; see the module docs.
fn figure8(
    cluster: &mut Cluster<'_>,
    election_ms: u64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let n = exactly(cluster, "figure8", 5)?;
    let Target {
        infos,
        names,
        netns,
        addrs,
        peers,
    } = Target::of(cluster);
    let mut rec = Record::new("figure8");
    let began = rec.began;
    let ms = Duration::from_millis;
    let e = ms(election_ms);
    // The previous fault may have left an election going on.
    let Some((l, term)) = settled_leader(cluster, began + ms(4000)) else {
        return Ok(rec.missed("no node leads (or it did not answer STATUS)".into()));
    };
    let mut others: Vec<usize> = (0..n).filter(|&i| i != l).collect();
    others.shuffle(rng);
    let f = others[0];
    let rest = others[1..].to_vec();
    active.nodes = (0..n).collect();
    let mut rules = Rules::new();

    // 1. Cut the leader L and one follower F off from the other three. New client writes
    //    reach F only. Of the three, N (the longest log) will lead the next term with
    //    V's vote (V and W are cut apart, so only N can collect three votes).
    set_rules(&netns, &addrs, &mut rules, cut_between(&[l, f], &rest))?;
    active.grudge = Some(
        (0..n)
            .map(|i| {
                let cut: Vec<usize> = if [l, f].contains(&i) {
                    rest.clone()
                } else {
                    vec![l, f]
                };
                (i, cut.into_iter().collect())
            })
            .collect(),
    );
    let last =
        |cluster: &Cluster<'_>, i: usize| status_of(cluster, i).map(|s| s.last_index.unwrap_or(0));
    let mut lasts = Vec::new();
    for &i in &rest {
        let Some(li) = last(cluster, i) else {
            return Ok(rec.missed(format!("{} did not answer STATUS", names[i])));
        };
        lasts.push((li, i));
    }
    // Longest log first; ties keep the shuffled order.
    lasts.sort_by_key(|&(li, _)| std::cmp::Reverse(li));
    let (nn, v, w) = (lasts[0].1, lasts[1].1, lasts[2].1);
    let i_n = lasts[0].0 + 1;
    cluster.pause(v)?;
    let mut want = rules.clone();
    want.extend(cut_between(&[v], &[w]));
    set_rules(&netns, &addrs, &mut rules, want)?;
    verify_rules(&netns, &peers, &names, &rules)?;
    rec.step(format!(
        "{} (leader of term {term}) and {} cut off from {}, {}, {}; {} paused; {} <-> {} cut",
        names[l], names[f], names[nn], names[v], names[w], names[v], names[v], names[w]
    ));
    active.evidence.push(format!(
        "{} and {} cut off from the other three (every connection reset)",
        names[l], names[f]
    ));

    // 2. Wait until L and F store an entry at index i_n that N, V and W lack.
    let stored = wait_until(Instant::now() + e, || {
        [l, f]
            .iter()
            .all(|&i| last(cluster, i).is_some_and(|li| li >= i_n))
    });
    if !stored {
        cluster.resume(v)?;
        return Ok(rec.missed(format!(
            "no new entry at index {i_n} on {} and {}",
            names[l], names[f]
        )));
    }
    rec.step(format!(
        "{} and {} store index {i_n} of term {term}",
        names[l], names[f]
    ));

    // 3. N campaigns; V grants its vote, and N's entries never reach V.
    let mut turns = 0;
    let voted = lockstep(
        cluster,
        &[nn],
        v,
        Instant::now() + 3 * e + ms(1000),
        &mut turns,
        |s| s.term > term && s.vote.as_deref() == Some(names[nn].as_str()),
    )?;
    let Some(voted) = voted else {
        return Ok(rec.missed(format!(
            "{} never voted for {} ({turns} turns)",
            names[v], names[nn]
        )));
    };
    let t1 = voted.term;
    let mut want = rules.clone();
    want.insert((v, nn, Some(infos[v].peer_port)));
    set_rules(&netns, &addrs, &mut rules, want)?;
    if !firewall::refused(&netns[nn], peers[v])? {
        bail!(
            "the one-way cut from {} to {} did not take effect",
            names[nn],
            names[v]
        );
    }
    cluster.resume(nn)?;
    let led = wait_until(Instant::now() + ms(1000), || {
        status_of(cluster, nn).is_some_and(|s| s.is_leader() && s.term == t1)
    });
    if !led {
        return Ok(rec.missed(format!(
            "{} did not lead term {t1} with {}'s vote",
            names[nn], names[v]
        )));
    }
    // Stop N at once: client writes it accepted as leader would reach the later leader
    // and could hide the lost entry (same key, concurrent with it). It is restarted in
    // step 5, which drops the requests waiting in its sockets.
    cluster.pause(nn)?;
    rec.step(format!(
            "{} leads term {t1} with {}'s vote ({turns} turns) and is paused; its entries cannot reach {}",
            names[nn], names[v], names[v]
        ),
    );

    // 4. Isolate N. L or F campaigns; V votes for it, and the new leader sends V the old
    //    entries one message at a time (--max-msg-entries 1). Once V stores index i_n,
    //    cut the leader off from V before the next message (its own term's first entry).
    cluster.pause(v)?;
    let mut want = rules.clone();
    want.extend(cut_between(&[nn], &[v, w]));
    want.retain(|&(at, from, _)| {
        !((at == v && [l, f].contains(&from)) || (from == v && [l, f].contains(&at)))
    });
    set_rules(&netns, &addrs, &mut rules, want)?;
    let mut turns = 0;
    let got = lockstep(
        cluster,
        &[l, f],
        v,
        Instant::now() + 5 * e + ms(2000),
        &mut turns,
        |s| s.last_index.unwrap_or(0) >= i_n,
    )?;
    let Some(got) = got else {
        return Ok(rec.missed(format!(
            "{} never stored index {i_n} ({turns} turns)",
            names[v]
        )));
    };
    let t2 = got.term;
    if got.last_term.unwrap_or(0) >= t2 {
        for s in [l, f] {
            cluster.resume(s)?;
        }
        return Ok(rec.missed(format!(
            "{} got an entry of term {t2} with index {i_n} ({turns} turns)",
            names[v]
        )));
    }
    let mut want = rules.clone();
    for s in [l, f] {
        want.insert((v, s, Some(infos[v].peer_port)));
    }
    set_rules(&netns, &addrs, &mut rules, want)?;
    for s in [l, f] {
        if !firewall::refused(&netns[s], peers[v])? {
            bail!(
                "the one-way cut from {} to {} did not take effect",
                names[s],
                names[v]
            );
        }
        cluster.resume(s)?;
    }
    rec.step(format!(
        "{} stores index {i_n} (term {t2}, {turns} turns); {} and {} can no longer send to it",
        names[v], names[l], names[f]
    ));
    // Raft commits index i_n here only through an entry of term t2, which V lacks: a
    // correct leader leaves it uncommitted; one that counts replicas commits it.
    let mut committed = None;
    wait_until(Instant::now() + e, || {
        committed = [l, f].into_iter().find(|&i| {
            status_of(cluster, i).is_some_and(|s| s.is_leader() && s.commit_index >= i_n)
        });
        committed.is_some()
    });

    // 5. Let N, V and W elect a leader again (N or W: their entry at i_n is newer than
    //    V's), with L and F cut off from them.
    let want = cut_between(&[l, f], &[nn, v, w]);
    set_rules(&netns, &addrs, &mut rules, want)?;
    verify_rules(&netns, &peers, &names, &rules)?;
    let pid = restart(cluster, nn)?;
    rec.step(format!(
        "{} restarted as pid {pid}; {}, {} and {} reconnected",
        names[nn], names[nn], names[v], names[w]
    ));
    let mut g = partition::Grudge::new();
    for &(at, from, _) in &rules {
        g.entry(at).or_default().insert(from);
    }
    let outcome = match committed {
        Some(c) => format!(
            "{} committed index {i_n} (term {term}) in term {t2} by replica count; {}, {} and {} may now replace it",
            names[c], names[nn], names[v], names[w]
        ),
        None => format!("index {i_n} (term {term}) stayed uncommitted in term {t2}"),
    };
    rec.step(outcome.clone());
    active.evidence.push(outcome.clone());
    let v_json = json!({
        "combo": "figure8",
        "leader": names[l],
        "roles": {"f": names[f], "n": names[nn], "v": names[v], "w": names[w]},
        "index": i_n,
        "terms": [term, t1, t2],
        "outcome": outcome,
        "steps": rec.steps,
        "grudge": partition::describe(&g, &names),
    });
    active.grudge = Some(g);
    Ok(v_json)
}

/// Undoes `combo` and verifies the heal.
pub fn stop(cluster: &mut Cluster<'_>, combo: &Combo, active: &mut Active) -> Result<()> {
    match combo {
        Combo::IsolateLeaderClock { .. } => {
            super::heal_network(cluster)?;
            reset_clocks(cluster, active)?;
        }
        Combo::IsolateThenCutPair { .. } => super::heal_network(cluster)?,
        Combo::SplitReplace { .. } => {
            super::heal_network(cluster)?;
            if let Some(m) = cluster.membership.clone() {
                let (_, evidence) =
                    super::membership::stop(cluster, &m, active.voters_before.as_deref());
                active.evidence.push(evidence);
            }
        }
        Combo::DoubleVote { .. } | Combo::Figure8 { .. } => {
            super::heal_network(cluster)?;
            for i in 0..cluster.len() {
                if cluster.is_paused(i) {
                    cluster.resume(i)?;
                }
            }
            for i in 0..cluster.len() {
                if !cluster.is_running(i) {
                    let pid = cluster.start(i)?;
                    active
                        .evidence
                        .push(format!("{} restarted as pid {pid}", cluster.info(i).name));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            for i in 0..cluster.len() {
                if !cluster.is_running(i) {
                    bail!(
                        "{} exited right after its restart; see {}",
                        cluster.info(i).name,
                        cluster.info(i).log_path().display()
                    );
                }
            }
        }
    }
    Ok(())
}

fn reset_clocks(cluster: &Cluster<'_>, active: &mut Active) -> Result<()> {
    for &i in &active.nodes {
        crate::faketime::write_control(&cluster.info(i).faketime_file(), 0.0, 1.0)?;
    }
    for &i in &active.nodes {
        let seen = verify_clock(cluster, i, 0)?;
        active.evidence.push(format!("reset: {seen}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_round_trip_inside_a_fault() {
        let f = super::super::Fault::Targeted {
            combo: Combo::IsolateLeaderClock { offset_ms: -30_000 },
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"targeted","combo":{"combo":"isolate-leader-clock","offset_ms":-30000}}"#
        );
        let back: super::super::Fault = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        assert_eq!(f.event("start"), "start-targeted");
        assert!(Combo::IsolateLeaderClock { offset_ms: 1 }.needs_clock());
        assert!(!Combo::DoubleVote { election_ms: 1 }.needs_clock());
    }
}
