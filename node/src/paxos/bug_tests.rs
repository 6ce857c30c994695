//! The seeded Multi-Paxos bugs (`--bug`), each on the deterministic network of
//! [`crate::sim`]: a scenario the bug breaks, run once with the bug (two different values
//! chosen and applied at one slot, an acknowledged write replaced) and once without it (the
//! same scenario stays safe). The network checks that every node applies the same value
//! at every slot and panics otherwise; [`violation`] returns that panic's message.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::tests::{MemStore, PNet, applied_data, cfg, elect, propose, voters};
use super::*;
use crate::sim::{Driver, Net};

fn violation(scenario: impl FnOnce()) -> Option<String> {
    catch_unwind(AssertUnwindSafe(scenario)).err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn assert_caught(msg: Option<String>, expected: &str) {
    let msg = msg.expect("the seeded bug must cause a safety violation");
    assert!(msg.contains(expected), "unexpected failure: {msg}");
}

fn with(f: impl Fn(&mut Bugs)) -> Bugs {
    let mut b = Bugs::default();
    f(&mut b);
    b
}

/// `ids` nodes running with `bugs`; those in `boot` start with the voter set `boot`.
fn net_bugs(ids: &[NodeId], boot: &[NodeId], spec: QuorumSpec, seed: u64, bugs: Bugs) -> PNet {
    let bootv = voters(boot);
    let boot_ids: BTreeSet<NodeId> = boot.iter().copied().collect();
    Net::new(
        ids,
        seed,
        Box::new(move |id, store: &MemStore| {
            let b = boot_ids.contains(&id).then(|| bootv.clone());
            let mut c = cfg(id, spec, seed);
            c.bugs = bugs.clone();
            Paxos::new(c, b, store.recovered())
        }),
    )
}

/// Lets `id` run phase 1 a few times; whether it leads (no panic when it cannot).
fn try_elect(net: &mut PNet, id: NodeId) -> bool {
    for _ in 0..5 {
        for n in net.nodes.values_mut() {
            n.core.last_heard = None;
        }
        net.core_mut(id).campaign();
        net.process(id);
        net.deliver_all();
        if net.core(id).role == Role::Leader {
            return true;
        }
    }
    false
}

/// Tells everyone the chosen prefix without ticking (heartbeats from the leader).
fn spread_commit(net: &mut PNet, leader: NodeId) {
    net.core_mut(leader).broadcast_heartbeat();
    net.process(leader);
    net.deliver_all();
}

fn holds(net: &PNet, id: NodeId, data: &[u8]) -> bool {
    applied_data(net, id).iter().any(|d| d == data)
}

/// `no-fencing`: n1 leads in ballot b1 and is cut off; its accept of "stale" at slot s is
/// delayed in the network. n2 leads in b2 > b1 with n3's promise and chooses its
/// StartWorking at s. The delayed accept then reaches n3: a fenced acceptor refuses it
/// (and the Nack deposes n1); an unfenced one accepts, and n1 learns "stale" chosen at s
/// by {n1, n3}: two values chosen at one slot.
fn no_fencing_scenario(bugs: Bugs) {
    let mut net = net_bugs(&[1, 2, 3], &[1, 2, 3], QuorumSpec::Majority, 61, bugs);
    elect(&mut net, 1);
    propose(&mut net, 1, b"a");
    net.deliver_all();
    spread_commit(&mut net, 1);
    net.partition(&[1]);
    let s = propose(&mut net, 1, b"stale");
    let at = net
        .queue
        .iter()
        .position(|(f, t, m)| *f == 1 && *t == 3 && matches!(m, Message::Accept { .. }))
        .expect("n1 sent its accept to n3");
    let delayed = net.queue.remove(at).expect("queued");
    net.deliver_all();
    assert!(try_elect(&mut net, 2), "n2 leads with n3");
    assert_eq!(net.core(2).start_working_slot(), s);
    assert!(
        net.core(2).commit() >= s,
        "n2 chose its StartWorking at {s}"
    );
    assert!(net.core(3).promised() > net.core(1).ballot());
    // n1 and n2 still cannot talk; n3 gets the delayed accept.
    net.heal();
    net.cut.insert((1, 2));
    net.cut.insert((2, 1));
    net.queue.push_front(delayed);
    net.deliver_all();
    assert!(
        !holds(&net, 1, b"stale"),
        "a stale ballot's value was chosen"
    );
    net.heal();
    net.run(40);
}

#[test]
fn no_fencing_lets_a_deposed_leader_choose_over_a_newer_ballot() {
    assert_caught(
        violation(|| no_fencing_scenario(with(|b| b.no_fencing = true))),
        "others applied",
    );
    assert_eq!(violation(|| no_fencing_scenario(Bugs::default())), None);
}

/// `no-fencing`, heartbeats: n2 leads in b2 (n3 promised it) and chooses "new"; the old
/// leader n1, still believing it leads in b1, confirms a read with the heartbeat round n3
/// acknowledges. Returns the index n1 read at, if it confirmed the read.
fn no_fencing_read_scenario(bugs: Bugs) -> (Option<u64>, u64, bool) {
    let mut net = net_bugs(&[1, 2, 3], &[1, 2, 3], QuorumSpec::Majority, 63, bugs);
    elect(&mut net, 1);
    propose(&mut net, 1, b"a");
    net.deliver_all();
    spread_commit(&mut net, 1);
    net.partition(&[1]);
    assert!(try_elect(&mut net, 2), "n2 leads with n3");
    let w = propose(&mut net, 2, b"new");
    net.deliver_all();
    assert!(
        net.core(2).commit() >= w,
        "the write is chosen (acknowledged)"
    );
    net.heal();
    net.cut.insert((1, 2));
    net.cut.insert((2, 1));
    assert_eq!(net.core(1).role, Role::Leader, "n1 has not noticed yet");
    net.core_mut(1).read(7).expect("n1 takes the read");
    net.process(1);
    net.deliver_all();
    let read = net.nodes[&1]
        .reads
        .iter()
        .find(|(id, _)| *id == 7)
        .map(|&(_, index)| index);
    (read, w, net.nodes[&1].failed_reads.contains(&7))
}

#[test]
fn no_fencing_lets_a_deposed_leader_confirm_a_stale_read() {
    let (read, w, _) = no_fencing_read_scenario(with(|b| b.no_fencing = true));
    let index = read.expect("the stale leader confirmed the read");
    assert!(
        index < w,
        "stale read: read index {index} misses the write at {w}"
    );
    let (read, _, failed) = no_fencing_read_scenario(Bugs::default());
    assert_eq!(read, None, "a fenced acceptor refuses the stale heartbeat");
    assert!(failed, "the Nack deposed n1 and its read failed");
}

/// `ignore-accepted`: "x" is chosen at slot s by {n1, n2} (n1 applies it and acknowledges
/// the write) but the commit index never reaches n2 or n3 before n1 crashes. n2's phase 1
/// reports its vote for "x"; a correct leader adopts it, a buggy one proposes a no-op there.
fn ignore_accepted_scenario(bugs: Bugs) {
    let mut net = net_bugs(&[1, 2, 3], &[1, 2, 3], QuorumSpec::Majority, 71, bugs);
    elect(&mut net, 1);
    propose(&mut net, 1, b"a");
    net.deliver_all();
    spread_commit(&mut net, 1);
    // Only the accept to n2 leaves n1 (heartbeats with the commit index are lost).
    net.filter = Some(Box::new(|from, to, m| {
        from == 1 && !(to == 2 && matches!(m, Message::Accept { .. }))
    }));
    let s = propose(&mut net, 1, b"x");
    net.deliver_all();
    assert!(
        net.core(1).commit() >= s && holds(&net, 1, b"x"),
        "x chosen"
    );
    assert!(net.core(2).commit() < s, "n2 does not know");
    net.crash(1);
    net.filter = None;
    assert!(try_elect(&mut net, 2));
    net.run(10);
    assert!(holds(&net, 2, b"x") && holds(&net, 3, b"x"));
    net.restart(1);
    net.run(20);
}

#[test]
fn ignore_accepted_replaces_a_chosen_value_with_a_noop() {
    assert_caught(
        violation(|| ignore_accepted_scenario(with(|b| b.ignore_accepted = true))),
        "others applied",
    );
    assert_eq!(
        violation(|| ignore_accepted_scenario(Bugs::default())),
        None
    );
}

/// `disjoint-quorums`: `flexible:2,1` on three nodes (phase 1 needs 2, phase 2 needs 1;
/// 2 + 1 is not > 3). A cut-off leader chooses "lone" by itself while the other two pass
/// phase 1 without it and choose their own value at the same slot. Without the bug the
/// validator refuses the system (and a configuration that does not fit needs everyone).
fn disjoint_scenario(bugs: Bugs) {
    let spec = QuorumSpec::Flexible { q1: 2, q2: 1 };
    let mut net = net_bugs(&[1, 2, 3], &[1, 2, 3], spec, 73, bugs);
    assert!(try_elect(&mut net, 1));
    propose(&mut net, 1, b"a");
    net.deliver_all();
    spread_commit(&mut net, 1);
    net.partition(&[1]);
    propose(&mut net, 1, b"lone");
    net.deliver_all();
    if try_elect(&mut net, 2) {
        propose(&mut net, 2, b"other");
        net.deliver_all();
    }
    net.heal();
    net.run(40);
    assert!(
        !holds(&net, 1, b"lone") || holds(&net, 2, b"lone"),
        "a write chosen by n1 alone is missing on n2"
    );
}

#[test]
fn disjoint_quorums_let_both_sides_of_a_partition_choose() {
    let spec = QuorumSpec::Flexible { q1: 2, q2: 1 };
    let members: BTreeSet<NodeId> = [1, 2, 3].into();
    let bug = with(|b| b.disjoint_quorums = true);
    assert!(QuorumSystem::new(spec, &members).is_err());
    assert!(QuorumSystem::validate(spec, &members, &bug).is_ok());
    assert_caught(violation(|| disjoint_scenario(bug)), "others applied");
    assert_eq!(violation(|| disjoint_scenario(Bugs::default())), None);
}

/// `unsafe-reconfig`: voters {n1,n2,n3} become {n1..n5} (n4, n5 join) while n2 and n3 are
/// cut off. Switched directly, C_new and the writes after it are chosen by {n1,n4,n5};
/// n2 and n3, still in {n1,n2,n3}, pass phase 1 on their own and choose other values at
/// the same slots. Through C_old,new nothing is chosen without n2 or n3.
fn unsafe_reconfig_scenario(bugs: Bugs) {
    let mut net = net_bugs(&[1, 2, 3, 4, 5], &[1, 2, 3], QuorumSpec::Majority, 67, bugs);
    elect(&mut net, 1);
    propose(&mut net, 1, b"a");
    net.deliver_all();
    spread_commit(&mut net, 1);
    net.partition(&[2, 3]);
    let target: BTreeMap<NodeId, String> = voters(&[1, 2, 3, 4, 5]);
    net.core_mut(1).reconfigure(1, target).expect("accepted");
    net.process(1);
    net.deliver_all();
    propose(&mut net, 1, b"new-majority");
    net.deliver_all();
    assert!(try_elect(&mut net, 2), "n2 leads with n3");
    propose(&mut net, 2, b"old-majority");
    net.deliver_all();
    net.heal();
    net.run(60);
}

#[test]
fn unsafe_reconfig_lets_old_and_new_majorities_choose_apart() {
    assert_caught(
        violation(|| unsafe_reconfig_scenario(with(|b| b.unsafe_reconfig = true))),
        "others applied",
    );
    assert_eq!(
        violation(|| unsafe_reconfig_scenario(Bugs::default())),
        None
    );
}
