//! `isolate-leader-clock`: cut the current leader off from every other node *and* move
//! its wall clock (a lease timed by the wall clock then outlives the partition).

use anyhow::{Context, Result};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::super::Active;
use super::super::partition::{self, Shape};
use super::steps::{leader_or_any, set_clock};
use crate::cluster::Cluster;
use crate::firewall;

pub(super) fn isolate_leader_clock(
    cluster: &mut Cluster<'_>,
    offset_ms: &i64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let combo = "isolate-leader-clock";
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
        "combo": combo,
        "leader": infos[l].name,
        "offset_ms": offset_ms,
        "grudge": partition::describe(&g, &names),
    });
    active.grudge = Some(g);
    Ok(v)
}
