//! `isolate-then-cut-pair`: isolate the leader until another node leads, then reconnect
//! the old leader to everyone except the new leader: an old leader that nobody fences
//! off (acceptors that accept a lower ballot) goes on leading next to the new one.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::super::Active;
use super::super::partition::{self, Shape};
use super::steps::{Nodes, leader_or_any, rule, term_role, wait_until};
use crate::cluster::Cluster;
use crate::firewall::{self, Change};

pub(super) fn isolate_then_cut_pair(
    cluster: &mut Cluster<'_>,
    wait_ms: u64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let began = Instant::now();
    let l = leader_or_any(cluster, rng);
    let n = cluster.len();
    let Nodes {
        names,
        netns,
        addrs,
        peers,
        ..
    } = Nodes::of(cluster);
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
