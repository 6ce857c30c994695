//! Targeted faults: combinations the ordinary scheduler never produces (it never overlaps
//! faults), built to expose specific consensus bugs quickly. `stasis selftest` schedules
//! them; they are applied, verified, recorded (`start-targeted` / `stop-targeted`, the
//! value saying what was done) and healed like every other fault.
//!
//! - `isolate-leader-clock`: cut the current leader off from every other node *and* move
//!   its wall clock (a lease timed by the wall clock then outlives the partition).
//! - `vote-restart`: SIGKILL the leader to force an election, then watch the other nodes'
//!   terms; a node whose term rises (it has just voted or campaigned in the new term) is
//!   killed with SIGKILL and restarted at once, so it comes back mid-election. The old
//!   leader is restarted at stop. A node that does not persist its vote can then vote
//!   twice in one term.
//!
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
//! `vote-restart`, after its watch window); the value carries the times of its steps.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::partition::{self, Shape};
use super::{Active, find_leader, require_faketime, verify_clock, verify_reachability};
use crate::cluster::Cluster;

/// One targeted fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "combo", rename_all = "kebab-case")]
pub enum Combo {
    /// Isolate the leader and move its wall clock by `offset_ms`.
    IsolateLeaderClock { offset_ms: i64 },
    /// Kill the leader; for `watch_ms`, kill -9 and restart every node whose term rises.
    VoteRestart { watch_ms: u64 },
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
            Combo::VoteRestart { .. } => "vote-restart",
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
    super::clock::write_control(
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
            verify_reachability(&netns, &peers, &want)
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
        Combo::VoteRestart { watch_ms } => vote_restart(cluster, *watch_ms, rng, active),
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
    let infos = cluster.infos();
    let netns: Vec<String> = infos.iter().map(|i| i.netns.clone()).collect();
    let addrs: Vec<_> = infos.iter().map(|i| i.addr).collect();
    let peers: Vec<_> = infos.iter().map(|i| i.peer_addr()).collect();
    let g = partition::grudge(Shape::IsolateLeader, n, Some(l), rng)?;
    partition::apply(&g, &netns, &addrs)?;
    let want = partition::expected_unreachable(&g, n);
    verify_reachability(&netns, &peers, &want)
        .context("isolating the leader did not take effect")?;
    active.nodes = vec![l];
    active.evidence.push(format!("{} isolated", infos[l].name));
    // Wait for the others to elect someone.
    let deadline = began + Duration::from_millis(wait_ms);
    let mut new_leader = None;
    while new_leader.is_none() && Instant::now() < deadline && !crate::signals::interrupted() {
        new_leader = (0..n)
            .filter(|&i| i != l)
            .find(|&i| term_role(cluster, i).is_some_and(|(_, role)| role == "leader"));
        if new_leader.is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
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
    let results: Vec<Result<String>> = std::thread::scope(|sc| {
        let mut hs = Vec::new();
        for &i in &others {
            let ns = &netns[i];
            hs.push(sc.spawn(move || crate::net::run_in(ns, &["iptables", "-w", "-F", "INPUT"])));
        }
        let (ns, srcs) = (&netns[l], &others);
        let addrs = &addrs;
        hs.push(sc.spawn(move || {
            for &y in srcs {
                let src = addrs[y].to_string();
                crate::net::run_in(
                    ns,
                    &["iptables", "-w", "-D", "INPUT", "-s", &src, "-j", "DROP"],
                )?;
            }
            Ok(String::new())
        }));
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("iptables thread panicked")))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let mut pair = partition::Grudge::new();
    pair.insert(l, [m].into());
    pair.insert(m, [l].into());
    let want = partition::expected_unreachable(&pair, n);
    verify_reachability(&netns, &peers, &want)
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
            let l: Vec<String> = st
                .get("learners")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
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
    verify_reachability(&netns, &peers, &want).context("the split did not take effect")?;
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
    let s = crate::client::resp::status(cluster.info(i).client_addr(), Duration::from_millis(200))
        .ok()?;
    let term = s.get("term").and_then(Value::as_u64)?;
    let role = s
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Some((term, role))
}

fn vote_restart(
    cluster: &mut Cluster<'_>,
    watch_ms: u64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let began = Instant::now();
    let l = leader_or_any(cluster, rng);
    active.nodes = vec![l];
    // The highest term seen so far; each new term gets one restart.
    let mut done_term = (0..cluster.len())
        .filter_map(|i| term_role(cluster, i).map(|(t, _)| t))
        .max()
        .unwrap_or(0);
    if let Some(pid) = cluster.kill(l)? {
        active
            .evidence
            .push(format!("{} pid {pid} killed", cluster.info(l).name));
    }
    let mut steps = vec![json!({"at_ms": 0, "killed": cluster.info(l).name})];
    let deadline = began + Duration::from_millis(watch_ms);
    while Instant::now() < deadline && !crate::signals::interrupted() {
        // A follower in a term newer than any restart so far has just heard a vote
        // request of that term (and probably granted it): restart it at once, so it comes
        // back while the election of that term is still going on.
        let mut order: Vec<usize> = (0..cluster.len()).filter(|&i| i != l).collect();
        order.shuffle(rng);
        for i in order {
            if !cluster.is_running(i) {
                continue;
            }
            let Some((t, role)) = term_role(cluster, i) else {
                continue;
            };
            if t <= done_term || role != "follower" {
                continue;
            }
            done_term = t;
            let old = cluster.kill(i)?;
            let pid = cluster.start(i)?;
            if old == Some(pid) {
                bail!("{} restarted with its old pid {pid}", cluster.info(i).name);
            }
            active.evidence.push(format!(
                "{} restarted in term {t} (pid {} -> {pid})",
                cluster.info(i).name,
                old.map_or("-".to_owned(), |p| p.to_string())
            ));
            steps.push(json!({
                "at_ms": began.elapsed().as_millis() as u64,
                "restarted": cluster.info(i).name,
                "term": t,
            }));
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(json!({"combo": "vote-restart", "leader": cluster.info(l).name, "steps": steps}))
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
        Combo::VoteRestart { .. } => {
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
        super::clock::write_control(&cluster.info(i).faketime_file(), 0.0, 1.0)?;
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
        assert!(!Combo::VoteRestart { watch_ms: 1 }.needs_clock());
    }
}
