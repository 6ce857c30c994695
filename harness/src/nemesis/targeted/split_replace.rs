//! `split-replace`: pause the two spares, ask the leader to replace two voters other
//! than itself with them in one `RECONFIG` (the leader adds them as learners under the
//! old configuration, then waits for them to catch up), cut the two leaving voters off
//! from everyone, and resume the spares. With joint consensus the change cannot commit
//! (C_old,new needs a majority of the old voters); a direct switch lets the leader and
//! the spares decide while the two cut-off voters, a majority of the old
//! configuration, elect a leader of their own. At stop the network heals and the
//! voters are changed back.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::super::Active;
use super::super::partition;
use crate::cluster::Cluster;
use crate::firewall;

pub(super) fn split_replace(
    cluster: &mut Cluster<'_>,
    pause_spares: bool,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let m = cluster
        .membership
        .clone()
        .context("split-replace needs the system spec's [membership] section (and --spares 2)")?;
    let view = super::super::membership::leader_view(cluster)
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
