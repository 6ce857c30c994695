//! Deterministic simulation tests of the Raft core.

use super::sim::*;
use super::*;

fn commands(sim: &mut Sim, leader: NodeId, n: usize) -> Vec<Vec<u8>> {
    (0..n).filter_map(|_| sim.propose(leader)).collect()
}

#[test]
fn three_nodes_elect_one_leader_and_replicate() {
    let mut sim = Sim::new(3, 1);
    let l = sim.elect();
    let written = commands(&mut sim, l, 20);
    assert_eq!(written.len(), 20);
    sim.run(5);
    sim.assert_converged();
    assert_eq!(sim.acked.len(), 20);
    for id in 1..=3 {
        assert_eq!(sim.nodes[&id].sm, written, "n{id}");
    }
}

#[test]
fn single_node_cluster_commits_alone() {
    let mut sim = Sim::new(1, 2);
    let l = sim.elect();
    commands(&mut sim, l, 5);
    assert_eq!(sim.acked.len(), 5);
    assert!(sim.read(l));
    assert_eq!(sim.confirmed_reads, 1);
}

#[test]
fn partitioned_follower_does_not_depose_leader_on_rejoin() {
    let mut sim = Sim::new(3, 3);
    let l = sim.elect();
    let term = sim.raft(l).term();
    let f = (1..=3).find(|&i| i != l).unwrap();
    sim.partition(&[f]);
    sim.run(300); // many election timeouts: pre-vote keeps its term unchanged
    assert_eq!(
        sim.raft(f).term(),
        term,
        "isolated node must not bump its term"
    );
    commands(&mut sim, l, 3);
    sim.heal();
    sim.run(100);
    assert_eq!(sim.leader(), Some(l));
    assert_eq!(sim.raft(l).term(), term);
    sim.assert_converged();
}

#[test]
fn vote_requests_are_ignored_while_a_leader_is_alive() {
    let mut sim = Sim::new(3, 4);
    let l = sim.elect();
    let term = sim.raft(l).term();
    let f = (1..=3).find(|&i| i != l).unwrap();
    let o = (1..=3).find(|&i| i != l && i != f).unwrap();
    // Force a real (non-pre) campaign by a follower; only vote traffic flows.
    sim.filter = Some(Box::new(|_, _, m| {
        !matches!(m.body, Body::Vote { .. } | Body::VoteResp { .. })
    }));
    sim.force_campaign(f);
    sim.deliver_all();
    assert_eq!(
        sim.raft(o).term(),
        term,
        "a follower that hears from its leader ignores the request"
    );
    assert_eq!(sim.raft(o).vote, sim.raft(o).vote.filter(|&v| v != f));
    assert_eq!(sim.raft(l).term(), term);
    assert_eq!(sim.raft(l).role, Role::Leader);
    assert_eq!(sim.raft(f).role, Role::Candidate);
    sim.filter = None;
    sim.run(100);
    sim.elect();
    sim.assert_converged();
}

#[test]
fn leader_without_quorum_steps_down_and_majority_elects() {
    let mut sim = Sim::new(5, 5);
    let l = sim.elect();
    let other = (1..=5).find(|&i| i != l).unwrap();
    sim.partition(&[l, other]);
    sim.run(40);
    assert_ne!(
        sim.raft(l).role,
        Role::Leader,
        "old leader must step down (check quorum)"
    );
    let new = sim.leader().expect("majority side elects");
    assert!(new != l && new != other);
    // The minority side cannot commit anything.
    assert!(sim.raft_mut(l).propose(b"x".to_vec()).is_err());
    let written = commands(&mut sim, new, 5);
    sim.heal();
    sim.run(60);
    sim.assert_converged();
    for w in written {
        assert!(sim.nodes[&l].sm.contains(&w));
    }
}

#[test]
fn divergent_log_is_repaired() {
    let mut sim = Sim::new(3, 6);
    let l = sim.elect();
    commands(&mut sim, l, 3);
    sim.run(3);
    // Leader keeps accepting writes it cannot commit.
    sim.partition(&[l]);
    let lost = commands(&mut sim, l, 10);
    sim.run(40);
    let new = sim.leader().expect("other side elects");
    assert_ne!(new, l);
    let kept = commands(&mut sim, new, 4);
    sim.run(5);
    sim.heal();
    sim.run(60);
    sim.assert_converged();
    let sm = &sim.nodes[&l].sm;
    for w in &kept {
        assert!(sm.contains(w));
    }
    for w in &lost {
        assert!(
            !sm.contains(w),
            "uncommitted write of a deposed leader reappeared"
        );
        assert!(!sim.acked.contains_key(w));
    }
}

/// Raft paper Figure 8: a leader must not commit an entry of an earlier term by counting
/// replicas; it may be overwritten later.
#[test]
fn figure_8_old_term_entry_is_not_committed_by_counting() {
    let mut sim = Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5], 8, |c| {
        c.max_msg_entries = 1
    });
    // n1 becomes leader of some term t1.
    sim.forget_leaders(&[1, 2, 3, 4, 5]);
    sim.force_campaign(1);
    sim.deliver_all();
    assert_eq!(sim.leader(), Some(1));
    sim.run(3);
    let t1 = sim.raft(1).term();
    let base = sim.raft(1).log.last_index();
    // (a) n1 replicates X only to n2.
    sim.partition(&[1, 2]);
    let x = sim.propose(1).unwrap();
    sim.deliver_all();
    assert_eq!(sim.raft(2).log.last_index(), base + 1);
    // (b) n1 crashes; n5 wins with n3, n4 and appends its own entry, then crashes.
    sim.crash(1);
    sim.heal();
    sim.partition(&[2]);
    sim.forget_leaders(&[3, 4, 5]);
    sim.force_campaign(5);
    // Deliver only the vote traffic.
    sim.filter = Some(Box::new(|_, _, m| {
        matches!(m.body, Body::Append { .. } | Body::Heartbeat { .. })
    }));
    sim.deliver_all();
    assert_eq!(sim.leader(), Some(5));
    let t2 = sim.raft(5).term();
    assert!(t2 > t1);
    sim.crash(5);
    // (c) n1 restarts and wins with n2, n3, n4; entries of its new term never leave it.
    sim.heal();
    sim.restart(1);
    sim.forget_leaders(&[1, 2, 3, 4]);
    sim.raft_mut(1).term = t2; // as if it had seen term t2 (keeps the scenario short)
    sim.force_campaign(1);
    let t3 = sim.raft(1).term();
    // n2 gets everything. n3 lacks X: the leader's first probe reaches it (and is rejected,
    // so the leader backs up and sends X alone); later term-t3 entries never reach n3 or n4.
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
    // X (term t1) is now on n1, n2, n3 (a majority) ...
    let on = [1, 2, 3, 4]
        .iter()
        .filter(|&&i| sim.raft(i).log.match_term(base + 1, t1))
        .count();
    assert!(on >= 3, "X should be on a majority, is on {on}");
    // ... but it must not be committed.
    assert!(
        sim.raft(1).log.commit <= base,
        "an entry of an old term was committed by counting"
    );
    // (d) n1 and n2 crash; n5 returns, wins with n3 and n4, and its term-t2 entry replaces
    // X. Had X been committed (and applied by n1), the simulator's state-machine-safety
    // check would fail here.
    sim.crash(1);
    sim.crash(2);
    sim.filter = None;
    sim.restart(5);
    sim.forget_leaders(&[3, 4, 5]);
    let l = sim.elect();
    assert_eq!(l, 5, "only n5 can win (n3, n4 lack nothing it has)");
    sim.run(20);
    assert_eq!(sim.applied.get(&(base + 1)).map(|a| a.0), Some(t2));
    sim.restart(1);
    sim.restart(2);
    sim.run(100);
    sim.assert_converged();
    assert!(
        !sim.nodes[&1].sm.contains(&x),
        "X was overwritten everywhere"
    );
}

#[test]
fn figure_8_without_tricks_random_crashes_keep_safety() {
    for seed in 0..6 {
        let mut sim = Sim::new(5, 100 + seed);
        for round in 0..15 {
            let l = sim.elect();
            commands(&mut sim, l, 3);
            sim.run(2);
            let victim = if round % 2 == 0 { l } else { (l % 5) + 1 };
            sim.crash(victim);
            sim.run(30);
            sim.restart(victim);
        }
        sim.run(100);
        sim.assert_converged();
    }
}

#[test]
fn read_index_confirms_leadership_and_fails_on_step_down() {
    let mut sim = Sim::new(3, 9);
    let l = sim.elect();
    commands(&mut sim, l, 3);
    assert!(sim.read(l));
    sim.deliver_all();
    assert_eq!(sim.confirmed_reads, 1);
    // An isolated leader cannot confirm a read.
    sim.partition(&[l]);
    assert!(sim.read(l));
    sim.deliver_all();
    assert_eq!(sim.confirmed_reads, 1);
    sim.run(40);
    assert!(
        sim.nodes[&l].reads.is_empty(),
        "pending read must fail after stepping down"
    );
    assert_eq!(sim.confirmed_reads, 1);
}

#[test]
fn lease_reads_are_served_locally_only_within_the_lease() {
    let mut sim = Sim::with_config(&[1, 2, 3], &[1, 2, 3], 10, |c| {
        c.read_mode = ReadMode::Lease
    });
    let l = sim.elect();
    sim.run(5);
    commands(&mut sim, l, 2);
    sim.partition(&[l]);
    // Inside the lease: answered without any message exchange.
    assert!(sim.read(l));
    assert_eq!(sim.confirmed_reads, 1);
    // After the lease runs out the read needs a quorum, which it cannot get.
    for _ in 0..(sim.cfg.election_ticks) {
        sim.tick_all();
    }
    if sim.raft(l).role == Role::Leader {
        assert!(sim.read(l));
        sim.deliver_all();
        assert_eq!(sim.confirmed_reads, 1);
    }
}

#[test]
fn lagging_follower_catches_up_by_snapshot() {
    let mut sim = Sim::new(3, 11);
    sim.snapshot_every = 10;
    let l = sim.elect();
    let f = (1..=3).find(|&i| i != l).unwrap();
    sim.crash(f);
    commands(&mut sim, l, 60);
    sim.run(5);
    assert!(sim.raft(l).log.base_index > 10, "leader compacted its log");
    sim.restart(f);
    sim.run(50);
    sim.assert_converged();
    assert!(
        sim.raft(f).log.base_index > 0,
        "follower installed a snapshot"
    );
    // Restart from the snapshot.
    sim.crash(f);
    sim.restart(f);
    sim.run(30);
    sim.assert_converged();
}

fn done(sim: &Sim, id: u64) -> bool {
    sim.events
        .iter()
        .any(|(_, e)| *e == Event::ReconfigDone(id))
}

#[test]
fn joint_consensus_adds_and_removes_nodes_including_the_leader() {
    let mut sim = Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3], 12, |_| {});
    let l = sim.elect();
    commands(&mut sim, l, 5);
    let mut target: Vec<NodeId> = vec![4, 5];
    target.extend((1..=3).filter(|&i| i != l));
    let voters: BTreeMap<NodeId, String> = target.iter().map(|&i| (i, addr(i))).collect();
    sim.raft_mut(l).reconfigure(7, voters).unwrap();
    sim.process(l);
    assert_eq!(
        sim.raft_mut(l)
            .reconfigure(8, BTreeMap::from([(1, addr(1))])),
        Err(ReconfigError::Busy)
    );
    for _ in 0..200 {
        sim.run(1);
        if done(&sim, 7) {
            break;
        }
    }
    assert!(done(&sim, 7), "reconfiguration finished");
    sim.run(100);
    let new = sim.elect();
    assert_ne!(new, l, "the removed leader stepped down");
    let m = sim.raft(new).membership().clone();
    assert_eq!(m.voters, target.iter().copied().collect());
    assert!(!m.is_joint());
    commands(&mut sim, new, 5);
    sim.run(20);
    for id in &target {
        assert_eq!(sim.nodes[id].sm, sim.nodes[&new].sm);
    }
}

#[test]
fn joint_consensus_survives_leader_crash_in_joint_state() {
    for seed in 0..8 {
        let mut sim = Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3], 20 + seed, |_| {});
        let l = sim.elect();
        let voters: BTreeMap<NodeId, String> = [3, 4, 5].iter().map(|&i| (i, addr(i))).collect();
        sim.raft_mut(l).reconfigure(1, voters).unwrap();
        sim.process(l);
        // Run until the leader has appended the joint configuration, then crash it.
        for _ in 0..200 {
            sim.run(1);
            if sim.raft(l).membership().is_joint() || done(&sim, 1) {
                break;
            }
        }
        sim.crash(l);
        sim.run(200);
        let new = sim.elect();
        sim.run(50);
        let m = sim.raft(new).membership().clone();
        assert!(
            !m.is_joint(),
            "seed {seed}: joint configuration must be left"
        );
        // Either the change was lost before joint (old set) or it completed (new set).
        let old: BTreeSet<NodeId> = [1, 2, 3].into();
        let newset: BTreeSet<NodeId> = [3, 4, 5].into();
        assert!(m.voters == old || m.voters == newset, "seed {seed}: {m:?}");
        commands(&mut sim, new, 3);
        sim.restart(l);
        sim.run(100);
        sim.assert_converged();
    }
}

#[test]
fn joint_configuration_needs_both_majorities() {
    let mut sim = Sim::with_config(&[1, 2, 3, 4, 5, 6], &[1, 2, 3], 30, |_| {});
    let l = sim.elect();
    let others: Vec<NodeId> = (1..=3).filter(|&i| i != l).collect();
    let voters: BTreeMap<NodeId, String> = [4, 5, 6].iter().map(|&i| (i, addr(i))).collect();
    sim.raft_mut(l).reconfigure(1, voters).unwrap();
    sim.process(l);
    'outer: for _ in 0..200 {
        sim.tick_all();
        while sim.deliver_one() {
            if sim.raft(l).membership().is_joint() {
                break 'outer;
            }
        }
    }
    assert!(sim.raft(l).membership().is_joint());
    // Cut the new half away: the old majority alone cannot commit.
    sim.partition(&[4, 5, 6]);
    let commit = sim.raft(l).log.commit;
    sim.propose(l);
    sim.run(5);
    let _ = others;
    assert!(sim.raft(l).log.commit <= commit + 1);
    let last = sim.raft(l).log.last_index();
    assert!(
        sim.raft(l).log.commit < last,
        "joint entries must wait for the new majority"
    );
    sim.heal();
    sim.run(200);
    assert!(done(&sim, 1));
}

#[test]
fn catch_up_is_cancelled_when_the_learner_never_answers() {
    let mut sim = Sim::with_config(&[1, 2, 3, 4], &[1, 2, 3], 31, |_| {});
    let l = sim.elect();
    sim.crash(4);
    let voters: BTreeMap<NodeId, String> = [1, 2, 3, 4].iter().map(|&i| (i, addr(i))).collect();
    sim.raft_mut(l).reconfigure(5, voters).unwrap();
    sim.run(50);
    assert!(!done(&sim, 5));
    assert!(sim.raft(l).membership().learners.contains(&4));
    sim.raft_mut(l).cancel_reconfigure(5);
    sim.process(l);
    assert!(sim.events.contains(&(
        l,
        Event::ReconfigAborted {
            id: 5,
            definite: true
        }
    )));
    let voters: BTreeMap<NodeId, String> = [1, 2, 3].iter().map(|&i| (i, addr(i))).collect();
    sim.raft_mut(l).reconfigure(6, voters).unwrap();
    sim.run(50);
    assert!(done(&sim, 6));
}

/// Random network faults (drops, duplicates, reordering, partitions) and crashes with
/// invariant checks after every step, then convergence after healing. With `membership`,
/// the cluster starts with voters n1..n3 (n4, n5 empty) and random reconfigurations run
/// in between.
fn chaos(seed: u64, membership: bool) -> usize {
    let mut sim = if membership {
        Sim::with_config(&[1, 2, 3, 4, 5], &[1, 2, 3], 5000 + seed, |_| {})
    } else {
        Sim::new(5, 1000 + seed)
    };
    sim.reorder = true;
    sim.drop_prob = 0.05;
    sim.dup_prob = 0.05;
    sim.snapshot_every = if seed.is_multiple_of(2) { 25 } else { 0 };
    if seed.is_multiple_of(3) {
        sim.cfg.read_mode = ReadMode::Lease;
    }
    // Every fourth seed runs without pre-vote (`--pre-vote off`), restarts included.
    if seed % 4 == 1 {
        sim.cfg.pre_vote = false;
        for id in sim.ids() {
            sim.raft_mut(id).cfg.pre_vote = false;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut reconfig_id = 0;
    for _ in 0..600 {
        match rng.random_range(0..100) {
            0..40 => {
                if let Some(l) = sim.leader() {
                    sim.propose(l);
                }
            }
            40..50 => {
                // Any node: stale leaders must not confirm reads.
                let v = rng.random_range(1..=5);
                if sim.nodes[&v].up {
                    sim.read(v);
                }
            }
            50..53 => {
                let k = rng.random_range(1..=2);
                let group: Vec<NodeId> = (0..k).map(|_| rng.random_range(1..=5)).collect();
                sim.partition(&group);
            }
            53..58 => sim.heal(),
            58..60 => {
                let v = rng.random_range(1..=5);
                if sim.nodes[&v].up {
                    sim.crash(v);
                } else {
                    sim.restart(v);
                }
            }
            60..65 => {
                let v = rng.random_range(1..=5);
                if sim.nodes[&v].up {
                    sim.propose(v);
                }
            }
            65..67 if membership => {
                if let Some(l) = sim.leader() {
                    let voters: BTreeMap<NodeId, String> = (1..=5)
                        .filter(|_| rng.random_bool(0.6))
                        .map(|i| (i, addr(i)))
                        .collect();
                    reconfig_id += 1;
                    let _ = sim.raft_mut(l).reconfigure(reconfig_id, voters);
                    sim.process(l);
                }
            }
            67 if membership => {
                if let Some(l) = sim.leader() {
                    sim.raft_mut(l).cancel_reconfigure(reconfig_id);
                    sim.process(l);
                }
            }
            _ => {}
        }
        sim.tick_all();
        for _ in 0..rng.random_range(0..40) {
            if !sim.deliver_one() {
                break;
            }
        }
    }
    sim.heal();
    sim.drop_prob = 0.0;
    sim.dup_prob = 0.0;
    for id in 1..=5 {
        if !sim.nodes[&id].up {
            sim.restart(id);
        }
    }
    let l = sim.elect();
    sim.propose(l);
    sim.run(300);
    sim.assert_converged();
    assert!(
        !sim.acked.is_empty(),
        "seed {seed}: some writes were acknowledged"
    );
    sim.events
        .iter()
        .filter(|(_, e)| matches!(e, Event::ReconfigDone(_)))
        .count()
}

fn seeds() -> u64 {
    // STASIS_SIM_SEEDS=N runs N seeds (default 40) for longer soak runs.
    std::env::var("STASIS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

#[test]
fn randomized_faults_preserve_safety() {
    for seed in 0..seeds() {
        chaos(seed, false);
    }
}

#[test]
fn randomized_membership_changes_preserve_safety() {
    let mut done = 0;
    for seed in 0..seeds() {
        done += chaos(seed, true);
    }
    assert!(done > 5, "too few reconfigurations completed ({done})");
}

/// Seeds that once found liveness bugs: a learner that kept believing in a dead leader
/// (and so refused votes forever), and a deposed leader whose uncommitted C_new excluded it
/// while the others, still joint, needed its vote but had shorter logs.
#[test]
fn membership_chaos_regressions() {
    for seed in [7937, 12407] {
        chaos(seed, true);
    }
}

/// A voter of an `n`-node cluster, past its start-up grace period.
fn lone_voter(id: NodeId, n: u64) -> Raft {
    let ids: Vec<NodeId> = (1..=n).collect();
    let mut r = Raft::new(
        RaftConfig::new(id),
        Some(membership_of(&ids)),
        Recovered::default(),
    );
    r.ticks = 1000;
    r
}

/// The (pre-)vote requests `r` sent since the last call: (to, term, body).
fn vote_requests(r: &mut Raft) -> Vec<(NodeId, u64, Body)> {
    std::mem::take(&mut r.msgs)
        .into_iter()
        .filter(|(_, m)| matches!(m.body, Body::Vote { .. } | Body::PreVote { .. }))
        .map(|(to, m)| (to, m.term, m.body))
        .collect()
}

fn targets(reqs: &[(NodeId, u64, Body)]) -> Vec<NodeId> {
    reqs.iter().map(|(to, _, _)| *to).collect()
}

fn ticks(r: &mut Raft, n: u64) {
    for _ in 0..n {
        r.tick();
    }
}

#[test]
fn candidate_resends_vote_requests_only_to_voters_that_have_not_answered() {
    let mut r = lone_voter(1, 5);
    let hb = r.cfg.heartbeat_ticks;
    r.campaign(false);
    assert_eq!(r.role, Role::Candidate);
    let term = r.term;
    let first = vote_requests(&mut r);
    assert_eq!(targets(&first), vec![2, 3, 4, 5]);
    let request = first[0].2.clone();
    assert!(first.iter().all(|(_, t, b)| *t == term && *b == request));
    let resp = |granted| Message {
        term,
        body: Body::VoteResp { granted },
    };
    r.step(2, resp(true));
    r.step(3, resp(false));
    assert_eq!(r.role, Role::Candidate, "2 of 5 votes: still pending");
    ticks(&mut r, hb - 1);
    assert!(
        vote_requests(&mut r).is_empty(),
        "no retry before an interval"
    );
    for _ in 0..2 {
        ticks(&mut r, 1);
        let again = vote_requests(&mut r);
        assert_eq!(
            targets(&again),
            vec![4, 5],
            "granted and rejected voters are skipped"
        );
        assert!(again.iter().all(|(_, t, b)| *t == term && *b == request));
        ticks(&mut r, hb - 1);
        assert!(vote_requests(&mut r).is_empty());
    }
    assert!(
        r.randomized_timeout > 3 * hb,
        "the election is still running"
    );
    r.step(4, resp(true));
    assert_eq!(r.role, Role::Leader);
    vote_requests(&mut r);
    ticks(&mut r, 4 * hb);
    assert!(
        vote_requests(&mut r).is_empty(),
        "a leader requests no votes"
    );
}

#[test]
fn vote_retries_stop_when_the_election_ends() {
    let hb = RaftConfig::new(1).heartbeat_ticks;
    // Lost: a majority rejected.
    let mut r = lone_voter(1, 5);
    r.campaign(false);
    let term = r.term;
    for from in [2, 3, 4] {
        r.step(
            from,
            Message {
                term,
                body: Body::VoteResp { granted: false },
            },
        );
    }
    assert_eq!(r.role, Role::Follower);
    vote_requests(&mut r);
    ticks(&mut r, 4 * hb);
    assert!(
        vote_requests(&mut r).is_empty(),
        "a lost election is not retried"
    );
    // Another node won the term: its first heartbeat makes the candidate a follower.
    let mut r = lone_voter(1, 3);
    r.campaign(false);
    let term = r.term;
    r.step(
        2,
        Message {
            term,
            body: Body::Heartbeat { commit: 0, ctx: 0 },
        },
    );
    assert_eq!(r.role, Role::Follower);
    assert_eq!(r.leader, Some(2));
    vote_requests(&mut r);
    ticks(&mut r, 4 * hb);
    assert!(vote_requests(&mut r).is_empty());
    // A higher term ends it too.
    let mut r = lone_voter(1, 3);
    r.campaign(false);
    r.step(
        3,
        Message {
            term: r.term + 1,
            body: Body::VoteResp { granted: false },
        },
    );
    assert_eq!(r.role, Role::Follower);
    vote_requests(&mut r);
    ticks(&mut r, 4 * hb);
    assert!(vote_requests(&mut r).is_empty());
}

#[test]
fn pre_candidate_resends_pre_votes_to_voters_that_have_not_answered() {
    let mut r = lone_voter(1, 5);
    let hb = r.cfg.heartbeat_ticks;
    r.campaign(true);
    assert_eq!(r.role, Role::PreCandidate);
    let term = r.term;
    let first = vote_requests(&mut r);
    assert_eq!(targets(&first), vec![2, 3, 4, 5]);
    assert!(
        first
            .iter()
            .all(|(_, t, b)| *t == term + 1 && matches!(b, Body::PreVote { .. }))
    );
    r.step(
        2,
        Message {
            term: term + 1,
            body: Body::PreVoteResp { granted: true },
        },
    );
    r.step(
        3,
        Message {
            term,
            body: Body::PreVoteResp { granted: false },
        },
    );
    ticks(&mut r, hb);
    let again = vote_requests(&mut r);
    assert_eq!(targets(&again), vec![4, 5]);
    assert_eq!(again[0].2, first[0].2);
    assert!(again.iter().all(|(_, t, _)| *t == term + 1));
    assert_eq!(r.term, term, "pre-vote retries do not bump the term");
    // The third grant starts the real election: every voter is asked anew.
    r.step(
        4,
        Message {
            term: term + 1,
            body: Body::PreVoteResp { granted: true },
        },
    );
    assert_eq!(r.role, Role::Candidate);
    assert_eq!(r.term, term + 1);
    let votes = vote_requests(&mut r);
    assert_eq!(targets(&votes), vec![2, 3, 4, 5]);
    assert!(votes.iter().all(|(_, _, b)| matches!(b, Body::Vote { .. })));
    ticks(&mut r, hb);
    assert_eq!(targets(&vote_requests(&mut r)), vec![2, 3, 4, 5]);
}

#[test]
fn without_pre_vote_an_expired_timer_starts_a_real_election() {
    for pre_vote in [true, false] {
        let mut r = lone_voter(1, 3);
        r.cfg.pre_vote = pre_vote;
        let term = r.term;
        for _ in 0..2 * r.cfg.election_ticks {
            if r.role != Role::Follower {
                break;
            }
            r.tick();
        }
        let reqs = vote_requests(&mut r);
        assert_eq!(targets(&reqs), vec![2, 3]);
        if pre_vote {
            assert_eq!(r.role, Role::PreCandidate);
            assert_eq!(r.term, term, "a pre-candidate keeps its term");
            assert!(
                reqs.iter()
                    .all(|(_, t, b)| *t == term + 1 && matches!(b, Body::PreVote { .. }))
            );
        } else {
            assert_eq!(r.role, Role::Candidate);
            assert_eq!(r.term, term + 1);
            assert_eq!(r.vote, Some(1));
            assert!(
                reqs.iter()
                    .all(|(_, t, b)| *t == term + 1 && matches!(b, Body::Vote { .. }))
            );
        }
    }
}

/// Elects a leader with `check` and isolates it right after a check-quorum round (no peer
/// counted as recently active); returns the ticks it stays leader (capped at `limit`).
fn ticks_until_step_down(check: CheckQuorum, limit: u64) -> u64 {
    let ids = [1, 2, 3];
    let mut sim = Sim::with_config(&ids, &ids, 21, |c| c.check_quorum = check);
    let l = sim.elect();
    sim.partition(&[l]);
    let r = sim.raft_mut(l);
    r.quorum_elapsed = 0;
    for p in r.progress.values_mut() {
        p.recent_active = false;
    }
    for t in 1..=limit {
        r.tick();
        if r.role != Role::Leader {
            return t;
        }
    }
    limit
}

#[test]
fn check_quorum_ticks_set_when_an_isolated_leader_steps_down() {
    // Default: one election timeout (the sim's election_ticks is 10).
    assert_eq!(
        ticks_until_step_down(CheckQuorum::ElectionTimeout, 1000),
        10
    );
    assert_eq!(ticks_until_step_down(CheckQuorum::Ticks(10), 1000), 10);
    assert_eq!(ticks_until_step_down(CheckQuorum::Ticks(37), 1000), 37);
    assert_eq!(ticks_until_step_down(CheckQuorum::Off, 1000), 1000);
}

#[test]
fn leader_with_quorum_contact_keeps_leading_with_long_check_quorum() {
    let ids = [1, 2, 3];
    let mut sim = Sim::with_config(&ids, &ids, 22, |c| c.check_quorum = CheckQuorum::Ticks(40));
    let l = sim.elect();
    let term = sim.raft(l).term();
    sim.run(400);
    assert_eq!(sim.leader(), Some(l));
    assert_eq!(sim.raft(l).term(), term);
}

/// Finding 5 of the node review: a follower that heard its leader refuses votes for a full
/// election timeout (what lease reads rely on), even after an unrelated higher-term reply
/// made it forget who the leader is.
#[test]
fn a_higher_term_reply_does_not_end_a_followers_lease_protection() {
    let mut r = lone_voter(1, 3);
    r.step(
        2,
        Message {
            term: 1,
            body: Body::Heartbeat { commit: 0, ctx: 1 },
        },
    );
    assert_eq!(r.leader, Some(2));
    ticks(&mut r, 1);
    r.step(
        3,
        Message {
            term: 2,
            body: Body::AppendResp {
                reject: true,
                index: 0,
                hint_index: 0,
                hint_term: 0,
            },
        },
    );
    assert_eq!(r.leader, None, "the reply moved it to term 2");
    r.msgs.clear();
    r.step(
        3,
        Message {
            term: 3,
            body: Body::Vote {
                last_index: 100,
                last_term: 3,
            },
        },
    );
    assert_ne!(r.vote, Some(3), "voted within the leader's lease");
    assert!(
        !r.msgs
            .iter()
            .any(|(_, m)| m.body == Body::VoteResp { granted: true }),
        "{:?}",
        r.msgs
    );
    // After a full election timeout without the leader it votes again.
    let timeout = r.cfg.election_ticks;
    ticks(&mut r, timeout);
    r.msgs.clear();
    r.step(
        3,
        Message {
            term: 4,
            body: Body::Vote {
                last_index: 100,
                last_term: 3,
            },
        },
    );
    assert_eq!(r.vote, Some(3));
}
