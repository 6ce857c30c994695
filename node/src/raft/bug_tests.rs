//! The seeded Raft bugs (`--bug`), each on the deterministic network of `raft/sim.rs`: a
//! scenario the bug breaks, run once with the bug (a concrete safety failure must show:
//! two leaders in one term, a stale read, an acknowledged write lost or overwritten, a new
//! leader missing a committed entry) and once without it (the same scenario stays safe).
//!
//! The simulator checks election safety, state-machine safety, leader completeness and
//! read freshness after every step and panics on a violation; [`violation`] runs a
//! scenario and returns that panic's message.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::sim::*;
use super::*;

/// Runs `scenario`; the message of the safety check (or scenario assertion) that failed.
fn violation(scenario: impl FnOnce()) -> Option<String> {
    catch_unwind(AssertUnwindSafe(scenario)).err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn assert_caught(msg: Option<String>, expected: &[&str]) {
    let msg = msg.expect("the seeded bug must cause a safety violation");
    assert!(
        expected.iter().any(|e| msg.contains(e)),
        "unexpected failure (wanted one of {expected:?}): {msg}"
    );
}

fn with(f: impl Fn(&mut Bugs)) -> Bugs {
    let mut b = Bugs::default();
    f(&mut b);
    b
}

fn others(sim: &Sim, l: NodeId) -> Vec<NodeId> {
    sim.nodes.keys().copied().filter(|&i| i != l).collect()
}

/// Elects a leader, then cuts it off just after its check-quorum round has seen the
/// followers (so it keeps believing it leads for almost two election timeouts) and runs
/// until the other side elected a successor that committed a write. Returns (old, new).
fn successor_while_old_leader_lingers(sim: &mut Sim, skew_old: i64) -> (NodeId, NodeId) {
    let l = sim.elect();
    for _ in 0..3 {
        sim.propose(l);
    }
    sim.run(3);
    for _ in 0..40 {
        if sim.raft(l).election_elapsed == 3 {
            break;
        }
        sim.run(1);
    }
    assert_eq!(sim.raft(l).election_elapsed, 3);
    sim.partition(&[l]);
    // The clock nemesis: the old leader's wall clock jumps (libfaketime moves only it).
    sim.wall_skew.insert(l, skew_old);
    let mut new = None;
    for _ in 0..40 {
        sim.run(1);
        if let Some(n) = others(sim, l).into_iter().find(|&n| {
            let r = sim.raft(n);
            r.role == Role::Leader && r.log.term(r.log.commit) == Some(r.term)
        }) {
            new = Some(n);
            break;
        }
    }
    let new = new.expect("the majority side elects a new leader");
    assert_eq!(
        sim.raft(l).role,
        Role::Leader,
        "scenario: the old leader has not noticed yet"
    );
    let floor = sim.max_acked_index;
    sim.propose(new).expect("new leader takes writes");
    sim.deliver_all();
    assert!(
        sim.max_acked_index > floor,
        "the new leader acknowledged a write"
    );
    assert!(sim.raft(l).log.commit < sim.max_acked_index);
    (l, new)
}

/// `stale-read`: the cut-off leader answers a read from its own state while a successor
/// already acknowledged a newer write.
fn stale_read_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3], &[1, 2, 3], 43, |c| c.bugs = bugs.clone());
    let (old, _) = successor_while_old_leader_lingers(&mut sim, 0);
    assert!(sim.read(old), "the old leader still takes reads");
    sim.deliver_all();
    sim.run(40);
    assert_ne!(sim.raft(old).role, Role::Leader);
    sim.heal();
    sim.run(50);
    sim.assert_converged();
}

#[test]
fn stale_read_serves_an_isolated_leaders_old_state() {
    assert_caught(
        violation(|| {
            stale_read_scenario(with(|b| b.stale_read = true));
        }),
        &["stale read"],
    );
    assert_eq!(violation(|| stale_read_scenario(Bugs::default())), None);
}

/// `lease-wallclock`: the old leader's wall clock jumps back 10 s while it is cut off; its
/// wall-clock lease still looks valid although the followers' election timeout (measured
/// on their own clocks) has long expired.
fn lease_scenario(bugs: Bugs, skew: i64) {
    let mut sim = Sim::with_config(&[1, 2, 3], &[1, 2, 3], 43, |c| {
        c.read_mode = ReadMode::Lease;
        c.bugs = bugs.clone();
    });
    let (old, _) = successor_while_old_leader_lingers(&mut sim, skew);
    assert!(sim.read(old));
    sim.deliver_all();
    sim.run(40);
    sim.heal();
    sim.run(50);
    sim.assert_converged();
}

#[test]
fn lease_wallclock_serves_stale_reads_after_a_clock_jump() {
    let bug = with(|b| b.lease_wallclock = true);
    assert_caught(
        violation(|| lease_scenario(bug.clone(), -10_000)),
        &["stale read"],
    );
    // Correct leases run on the monotonic tick clock with a margin: the jump is harmless.
    assert_eq!(violation(|| lease_scenario(Bugs::default(), -10_000)), None);
    // The bug needs the clock to move: with wall clocks in step its lease still ends
    // before any follower can vote for someone else.
    assert_eq!(violation(|| lease_scenario(bug, 0)), None);
}

/// `lease-from-ack`: the cut-off leader gets a late copy of a follower's last heartbeat
/// acknowledgement (held up in the network) after the other side elected a successor that
/// acknowledged a write. Timed from its arrival, the lease looks fresh and the old leader
/// answers a read from its old state; timed from the heartbeat's sending, it has expired.
fn lease_from_ack_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3], &[1, 2, 3], 43, |c| {
        c.read_mode = ReadMode::Lease;
        c.bugs = bugs.clone();
    });
    let (old, _) = successor_while_old_leader_lingers(&mut sim, 0);
    let f = others(&sim, old)[0];
    let (term, ctx) = {
        let r = sim.raft(old);
        (r.term, r.progress[&f].acked_ctx)
    };
    sim.step_node(
        f,
        old,
        Message {
            term,
            body: Body::HeartbeatResp { ctx },
        },
    );
    assert_eq!(sim.raft(old).role, Role::Leader);
    assert!(sim.read(old), "the old leader still takes reads");
    sim.deliver_all();
    sim.run(40);
    sim.heal();
    sim.run(50);
    sim.assert_converged();
}

#[test]
fn lease_from_ack_serves_stale_reads_after_a_late_acknowledgement() {
    assert_caught(
        violation(|| lease_from_ack_scenario(with(|b| b.lease_from_ack = true))),
        &["stale read"],
    );
    assert_eq!(violation(|| lease_from_ack_scenario(Bugs::default())), None);
}

/// `commit-minority`: in a 3-node cluster the cut-off leader commits and acknowledges a
/// write on its own vote; the majority elects a leader without it and overwrites it.
fn commit_minority_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3], &[1, 2, 3], 47, |c| c.bugs = bugs.clone());
    let l = sim.elect();
    sim.propose(l);
    sim.run(3);
    sim.partition(&[l]);
    let w = sim.propose(l).expect("leader takes the write");
    sim.run(60);
    let new = sim.leader().expect("the majority elects");
    assert_ne!(new, l);
    sim.propose(new);
    sim.run(5);
    sim.heal();
    sim.run(60);
    sim.assert_converged();
    assert!(
        !sim.acked.contains_key(&w),
        "a minority write was acknowledged"
    );
}

#[test]
fn commit_minority_acknowledges_a_write_that_is_then_lost() {
    assert_caught(
        violation(|| commit_minority_scenario(with(|b| b.commit_minority = true))),
        &[
            "lacks applied entry",
            "state machine safety",
            "acknowledged write",
            "minority write",
        ],
    );
    assert_eq!(
        violation(|| commit_minority_scenario(Bugs::default())),
        None
    );
}

/// Delivers the first queued message matching `pred` now, ahead of the others (the
/// network may reorder messages on different links).
fn deliver_first(sim: &mut Sim, pred: impl Fn(NodeId, NodeId, &Message) -> bool) {
    let at = sim
        .queue
        .iter()
        .position(|(f, t, m)| pred(*f, *t, m))
        .expect("the message is queued");
    let (from, to, m) = sim.queue.remove(at).expect("queued");
    sim.step_node(from, to, m);
}

/// `forget-vote`, as real faults produce it: n1 and n2 campaign in the same term and do
/// not hear each other (a bridge partition through n3). n3 votes for n1, who wins; n3 is
/// killed before n2's request and n1's first append reach it, so both are lost with it.
/// n3 restarts from its storage (the term is durable; the vote is not, under the bug).
/// n2, still a candidate, resends its request to the voter that never answered; a node
/// that forgot its vote grants it and n2 also becomes leader of that term.
fn forget_vote_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3], &[1, 2, 3], 53, |c| c.bugs = bugs.clone());
    sim.forget_leaders(&[1, 2, 3]);
    sim.cut.insert((1, 2));
    sim.cut.insert((2, 1));
    sim.force_campaign(1);
    sim.force_campaign(2);
    let term = sim.raft(1).term();
    assert_eq!(sim.raft(2).term(), term);
    let is_vote = |f: NodeId, t: NodeId, m: &Message, from: NodeId, to: NodeId| {
        f == from && t == to && matches!(m.body, Body::Vote { .. } | Body::VoteResp { .. })
    };
    deliver_first(&mut sim, |f, t, m| is_vote(f, t, m, 1, 3));
    assert_eq!(sim.raft(3).vote, Some(1));
    deliver_first(&mut sim, |f, t, m| is_vote(f, t, m, 3, 1));
    assert_eq!(sim.raft(1).role, Role::Leader, "n1 won with n3's vote");
    assert!(sim.queue.iter().any(|(f, t, _)| (*f, *t) == (2, 3)));
    sim.crash(3);
    assert!(
        !sim.queue.iter().any(|(_, t, _)| *t == 3),
        "the frames in flight to n3 died with it"
    );
    sim.restart(3);
    assert_eq!(sim.raft(3).term(), term, "the term is durable either way");
    assert_eq!(sim.raft(3).log.last_index(), sim.raft(2).log.last_index());
    // n2's retry timer fires before n1's next heartbeat (their clocks are independent).
    let hb = sim.cfg.heartbeat_ticks;
    for _ in 0..hb {
        sim.tick_node(2);
    }
    assert_eq!(sim.raft(2).role, Role::Candidate);
    assert!(
        sim.queue
            .iter()
            .any(|(f, t, m)| is_vote(*f, *t, m, 2, 3) && m.term == term),
        "n2 resent its vote request to n3"
    );
    sim.deliver_all();
    assert_ne!(sim.raft(2).role, Role::Leader);
    sim.heal();
    sim.run(50);
    sim.assert_converged();
}

#[test]
fn forget_vote_lets_a_restarted_node_vote_twice_in_one_term() {
    assert_caught(
        violation(|| forget_vote_scenario(with(|b| b.forget_vote = true))),
        &["two leaders in term"],
    );
    assert_eq!(violation(|| forget_vote_scenario(Bugs::default())), None);
}

/// `figure8`: the Raft paper's Figure 8 on five nodes (the same steps as the core test
/// `figure_8_old_term_entry_is_not_committed_by_counting`). With the bug the term-t1
/// entry X is committed and applied once it sits on a majority; a later leader that never
/// had X (n5, elected by n3 and n4) then lacks a committed entry and replaces it.
fn figure8_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5], 8, |c| {
        c.max_msg_entries = 1;
        c.bugs = bugs.clone();
    });
    sim.forget_leaders(&[1, 2, 3, 4, 5]);
    sim.force_campaign(1);
    sim.deliver_all();
    assert_eq!(sim.leader(), Some(1));
    sim.run(3);
    let t1 = sim.raft(1).term();
    let base = sim.raft(1).log.last_index();
    // (a) n1 replicates X only to n2.
    sim.partition(&[1, 2]);
    let x = sim.propose(1).expect("leader");
    sim.deliver_all();
    // (b) n1 crashes; n5 wins with n3, n4 and appends its own entry, then crashes.
    sim.crash(1);
    sim.heal();
    sim.partition(&[2]);
    sim.forget_leaders(&[3, 4, 5]);
    sim.force_campaign(5);
    sim.filter = Some(Box::new(|_, _, m| {
        matches!(m.body, Body::Append { .. } | Body::Heartbeat { .. })
    }));
    sim.deliver_all();
    assert_eq!(sim.leader(), Some(5));
    let t2 = sim.raft(5).term();
    sim.crash(5);
    // (c) n1 restarts and wins with n2, n3, n4; it brings X to n3 (a majority: n1, n2, n3)
    // but its own term's entries reach only n2.
    sim.heal();
    sim.restart(1);
    sim.forget_leaders(&[1, 2, 3, 4]);
    sim.raft_mut(1).term = t2;
    sim.force_campaign(1);
    let t3 = sim.raft(1).term();
    let first_probe = std::cell::Cell::new(true);
    sim.filter = Some(Box::new(move |_, to, m| match &m.body {
        Body::Append { entries, .. } if entries.iter().any(|e| e.term == t3) => {
            to != 2 && !(to == 3 && first_probe.replace(false))
        }
        Body::Heartbeat { .. } => true,
        _ => false,
    }));
    sim.deliver_all();
    assert_eq!(sim.leader(), Some(1));
    assert!(sim.raft(3).log.match_term(base + 1, t1), "X reached n3");
    // (d) n1 and n2 crash; n5 returns and wins with n3 and n4.
    sim.crash(1);
    sim.crash(2);
    sim.filter = None;
    sim.restart(5);
    sim.forget_leaders(&[3, 4, 5]);
    let l = sim.elect();
    assert_eq!(l, 5);
    sim.run(20);
    sim.restart(1);
    sim.restart(2);
    sim.run(100);
    sim.assert_converged();
    assert!(!sim.acked.contains_key(&x));
}

#[test]
fn figure8_commits_an_old_term_entry_that_a_later_leader_overwrites() {
    assert_caught(
        violation(|| figure8_scenario(with(|b| b.figure8 = true))),
        &["lacks applied entry", "state machine safety"],
    );
    assert_eq!(violation(|| figure8_scenario(Bugs::default())), None);
}

/// `unsafe-reconfig`: voters {n1,n2,n3} become {n1..n5} (two added at once) while n2 and n3
/// are cut off just as the leader switches. Directly switched, n1 commits with {n1,n4,n5}
/// (a majority of five) while n2 and n3, still in {n1,n2,n3}, elect a leader of their own
/// that lacks those entries. With joint consensus C_old,new also needs n2 or n3.
fn unsafe_reconfig_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3], 59, |c| {
        c.bugs = bugs.clone();
    });
    sim.forget_leaders(&[1, 2, 3]);
    sim.force_campaign(1);
    sim.run(3);
    assert_eq!(sim.leader(), Some(1));
    sim.propose(1);
    sim.run(3);
    let target: BTreeMap<NodeId, String> = (1..=5).map(|i| (i, addr(i))).collect();
    sim.raft_mut(1).reconfigure(1, target).expect("accepted");
    sim.process(1);
    // Run until the leader switches its voters (C_new or C_old,new), then cut n2, n3 off
    // before that entry reaches them.
    'outer: for _ in 0..200 {
        sim.tick_all();
        loop {
            if sim.raft(1).membership().voters.len() == 5 {
                break 'outer;
            }
            if !sim.deliver_one() {
                break;
            }
        }
    }
    assert_eq!(sim.raft(1).membership().voters.len(), 5);
    sim.partition(&[2, 3]);
    for _ in 0..5 {
        sim.propose(1);
        sim.run(2);
    }
    sim.run(60);
    for _ in 0..3 {
        if let Some(l) = sim.leader() {
            sim.propose(l);
        }
        sim.run(5);
    }
    sim.heal();
    sim.run(100);
    sim.elect();
    sim.run(50);
    sim.assert_converged();
}

#[test]
fn unsafe_reconfig_lets_old_and_new_majorities_decide_apart() {
    assert_caught(
        violation(|| unsafe_reconfig_scenario(with(|b| b.unsafe_reconfig = true))),
        &[
            "lacks applied entry",
            "state machine safety",
            "two leaders in term",
        ],
    );
    assert_eq!(
        violation(|| unsafe_reconfig_scenario(Bugs::default())),
        None
    );
}

/// `unsafe-reconfig` without any network fault: voters {n1,n2,n3} are replaced by
/// {n1,n4,n5}. Switched directly, the leader stops replicating to n2 and n3 at once, so
/// they never learn C_new; once their election timeout passes they are a majority of the
/// C_old they still believe in and elect a leader of their own (split brain). Through
/// C_old,new, n2 and n3 receive the joint and the new configuration before they are left
/// out, and know they were removed.
fn replace_majority_scenario(bugs: Bugs) {
    let mut sim = Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3], 61, |c| {
        c.bugs = bugs.clone();
    });
    sim.forget_leaders(&[1, 2, 3]);
    sim.force_campaign(1);
    sim.run(3);
    assert_eq!(sim.leader(), Some(1));
    sim.propose(1);
    sim.run(3);
    let target: BTreeMap<NodeId, String> = [1, 4, 5].iter().map(|&i| (i, addr(i))).collect();
    sim.raft_mut(1).reconfigure(1, target).expect("accepted");
    sim.process(1);
    for _ in 0..20 {
        sim.propose(1);
        sim.run(10);
    }
    sim.run(100);
    let l = sim.elect();
    sim.propose(l);
    sim.run(50);
    sim.assert_converged();
}

#[test]
fn unsafe_reconfig_replacing_a_majority_splits_the_cluster_without_faults() {
    assert_caught(
        violation(|| replace_majority_scenario(with(|b| b.unsafe_reconfig = true))),
        &[
            "lacks applied entry",
            "state machine safety",
            "two leaders in term",
        ],
    );
    assert_eq!(
        violation(|| replace_majority_scenario(Bugs::default())),
        None
    );
}
