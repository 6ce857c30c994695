//! `double-vote` (three nodes, built for Raft without pre-vote): make one node Y grant
//! its vote in a term to two candidates, A and L, across a restart, before either
//! candidate's entries reach it. Steps: cut all three apart (iptables REJECT, so
//! connections fail with a reset and reconnect at once when allowed) and restart the
//! leader L; wait until all three are candidates of the same new term (each voted for
//! itself); restart Y (the term is durable) and pause it; reconnect A and Y and wait
//! until A's vote request sits in Y's socket (`/proc/<pid>/net/tcp`); pause A, resume Y
//! and wait until Y's answer sits in A's socket; restart Y again, reconnect it with L;
//! once L leads (or gave up waiting), resume A. A node that persists its vote refuses A
//! (it voted for itself) and then L: no leader in that term. One that forgets it grants
//! A and then L, and A and L lead the same term side by side, both replicating through
//! Y, while A and L stay cut apart until stop. Each step checks the state it needs
//! (STATUS terms and roles, socket queues) and the fault records where it stopped when
//! the race went the other way.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::super::Active;
use super::super::partition;
use super::steps::{
    Nodes, Opening, bytes_arrive, open, poll_status, restart, set_pair, shown, term_role,
    wait_until,
};
use crate::cluster::Cluster;
use crate::firewall;

pub(super) fn double_vote(
    cluster: &mut Cluster<'_>,
    election_ms: u64,
    rng: &mut ChaCha8Rng,
    active: &mut Active,
) -> Result<Value> {
    let Opening {
        n,
        nodes:
            Nodes {
                infos,
                names,
                netns,
                addrs,
                peers,
            },
        mut rec,
        leader: l,
        term,
        others,
    } = match open(cluster, "double-vote", 3, rng)? {
        Ok(o) => o,
        Err(missed) => return Ok(missed),
    };
    let ms = Duration::from_millis;
    let e = ms(election_ms);
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
