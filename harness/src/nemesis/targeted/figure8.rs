//! `figure8` (five nodes, built for Raft with `--max-msg-entries 1 --max-inflight-msgs
//! 1`): the Raft paper's Figure 8. Cut the leader L and a follower F off from the other
//! three, so a new client write at index i reaches F only. Of the three, N (the longest
//! log) leads the next term with V's vote, V and W being cut apart so nobody else can;
//! N's entries must not reach V, so V and N run in turns ([`lockstep`]: whenever bytes
//! from N wait in V's socket, N is paused and V resumed) and once V voted, a one-way
//! TCP-reset rule against N goes in before N runs again. N is paused as soon as it
//! leads. Then V is reconnected to L and F, and the same turns run until V stores
//! index i: L or F leads a newer term with V's vote and, one entry per message, sends
//! V the old entries; right after V stores i, and before the leader reads V's
//! acknowledgement, L and F are cut off from V (one way: V's answers still arrive).
//! Index i is now on a majority (L, F, V) but the leader's own first entry is only on
//! L and F. Finally L and F are cut off from the rest, N is restarted and N, V, W
//! elect a leader whose entry at i is N's, which replaces V's. A correct leader never
//! commits i (not of its term); one that counts replicas commits it, and the write,
//! pending at L since before the cut, is answered `+OK` and then read gone.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::super::Active;
use super::super::partition;
use super::steps::{
    Nodes, Opening, Rules, cut_between, lockstep, open, restart, set_rules, status_of,
    verify_rules, wait_until,
};
use crate::cluster::Cluster;
use crate::firewall;

/// The Raft paper's Figure 8 on five nodes; see the module docs.
pub(super) fn figure8(
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
    } = match open(cluster, "figure8", 5, rng)? {
        Ok(o) => o,
        Err(missed) => return Ok(missed),
    };
    let ms = Duration::from_millis;
    let e = ms(election_ms);
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
