//! Phase 1 on the proposer side: merging promises into the values a new leader must
//! propose, and the StartWorking rule that keeps ghosts buried.
//!
//! Adoption: for every slot after the leader's chosen prefix, a reported chosen value wins;
//! otherwise the accepted value with the highest ballot; slots nobody reported below the
//! highest reported slot are holes, filled with no-ops. The leader then proposes all of
//! them in its own ballot and appends `StartWorking(ballot)` right after the highest
//! reported slot.
//!
//! Ghosts: `StartWorking(e)` at slot `t` proves that ballot `e`'s phase-1 quorum reported
//! nothing at any slot `>= t`, so no value accepted in a ballot below `e` at a slot `>= t`
//! can have been chosen (that quorum meets every phase-2 quorum). A merged slot `s` whose
//! best report is an accepted value of a ballot below the largest StartWorking epoch at
//! some slot `<= s` (or in the chosen prefix) is therefore dead and becomes a no-op instead
//! of re-appearing. A chosen value can never be discarded this way: its highest accepted
//! ballot is at least its choosing ballot, which no such epoch exceeds.

use std::collections::BTreeMap;

use super::acceptor::{Accepted, Report};
use super::ballot::Ballot;
use super::{ConfigValue, Value};

/// Promises merged so far.
#[derive(Clone, Debug, Default)]
pub struct Merge {
    best: BTreeMap<u64, Report>,
    /// Every StartWorking epoch reported at a slot (chosen or merely accepted).
    epochs: BTreeMap<u64, Ballot>,
}

/// What the new leader proposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopted {
    /// `(slot, value, known chosen)` for every slot from the first unchosen one up to the
    /// highest reported slot, without gaps.
    pub values: Vec<(u64, Value, bool)>,
    /// The highest slot any promise reported (or the chosen prefix): StartWorking goes next.
    pub max_seen: u64,
    /// Slots whose accepted value was discarded as a ghost.
    pub buried: Vec<u64>,
}

fn rank(r: &Report) -> Option<Ballot> {
    match r {
        Report::Chosen(_) => None,
        Report::Accepted(a) => Some(a.ballot),
    }
}

impl Merge {
    /// Adds one acceptor's reports.
    pub fn add(&mut self, reports: Vec<(u64, Report)>) {
        for (slot, r) in reports {
            let v = match &r {
                Report::Chosen(v) | Report::Accepted(Accepted { value: v, .. }) => v,
            };
            if let Value::StartWorking(e) = v {
                let cur = self.epochs.entry(slot).or_default();
                *cur = (*cur).max(*e);
            }
            match self.best.get(&slot) {
                Some(Report::Chosen(_)) => {}
                Some(old) if !matches!(r, Report::Chosen(_)) && rank(old) >= rank(&r) => {}
                _ => {
                    self.best.insert(slot, r);
                }
            }
        }
    }

    /// Configuration values in the merged view after slot `after` (they must be satisfied
    /// too).
    pub fn configs(&self, after: u64) -> Vec<&ConfigValue> {
        self.best
            .range(after + 1..)
            .map(|(_, r)| r)
            .filter_map(|r| match r {
                Report::Chosen(Value::Config(c))
                | Report::Accepted(Accepted {
                    value: Value::Config(c),
                    ..
                }) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// The values to propose after the chosen prefix `..=commit`. `prefix_epoch` is the
    /// largest StartWorking epoch inside the chosen prefix. `ignore_accepted` is the hook
    /// of the seeded bug of the same name (a proposer that does not adopt).
    pub fn finish(self, commit: u64, prefix_epoch: Ballot, ignore_accepted: bool) -> Adopted {
        let max_seen = self
            .best
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(commit);
        let mut values = Vec::new();
        let mut buried = Vec::new();
        let mut barrier = prefix_epoch;
        for (&slot, &e) in self.epochs.range(..=commit) {
            let _ = slot;
            barrier = barrier.max(e);
        }
        for slot in commit + 1..=max_seen {
            if let Some(&e) = self.epochs.get(&slot) {
                barrier = barrier.max(e);
            }
            let (value, chosen) = match self.best.get(&slot) {
                Some(Report::Chosen(v)) => (v.clone(), true),
                Some(Report::Accepted(_)) if ignore_accepted => (Value::Noop, false),
                Some(Report::Accepted(a)) if a.ballot < barrier => {
                    buried.push(slot);
                    (Value::Noop, false)
                }
                Some(Report::Accepted(a)) => (a.value.clone(), false),
                None => (Value::Noop, false),
            };
            values.push((slot, value, chosen));
        }
        Adopted {
            values,
            max_seen,
            buried,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::paxos::acceptor::Acceptor;
    use crate::quorum::{QuorumSpec, QuorumSystem};

    fn p(x: u8) -> Value {
        Value::Command {
            origin: Ballot::new(x as u64, 9),
            data: vec![x],
        }
    }

    fn vote(a: &mut Acceptor, b: Ballot, slot: u64, v: Value) {
        a.prepare(b).unwrap();
        a.accept(b, slot, v, true).unwrap();
    }

    /// The seed's example: five acceptors; P1 (t1) accepted by A1, A2; P2 (t2) by A3, A4
    /// (not chosen); P3 (t3) by A2, A3, A4 (chosen). Every later ballot, whichever majority
    /// answers its phase 1, must propose P3.
    #[test]
    fn seed_five_acceptors_any_later_ballot_chooses_p3() {
        let mut acc: Vec<Acceptor> = (0..5).map(|_| Acceptor::default()).collect();
        let (t1, t2, t3) = (Ballot::new(1, 1), Ballot::new(2, 2), Ballot::new(3, 3));
        vote(&mut acc[0], t1, 1, p(1));
        vote(&mut acc[1], t1, 1, p(1));
        vote(&mut acc[2], t2, 1, p(2));
        vote(&mut acc[3], t2, 1, p(2));
        for a in &mut acc[1..4] {
            vote(a, t3, 1, p(3));
        }
        let members: BTreeSet<u64> = (1..=5).collect();
        let q = QuorumSystem::new(QuorumSpec::Majority, &members).unwrap();
        let mut checked = 0;
        for set in q.subsets().into_iter().filter(|s| q.is_phase1_quorum(s)) {
            let mut m = Merge::default();
            for &id in &set {
                let a = &mut acc[id as usize - 1].clone();
                a.prepare(Ballot::new(4, 5)).unwrap();
                m.add(a.report(1));
            }
            let adopted = m.finish(0, Ballot::ZERO, false);
            assert_eq!(adopted.values, vec![(1, p(3), false)], "quorum {set:?}");
            checked += 1;
        }
        assert_eq!(checked, 16);
        // A3 crashing mid-way does not matter: any majority of the other four still sees P3.
        // With the `ignore-accepted` hook on, the proposer would drop P3.
        let mut m = Merge::default();
        m.add(acc[1].report(1));
        assert_eq!(m.finish(0, Ballot::ZERO, true).values[0].1, Value::Noop);
    }

    #[test]
    fn holes_become_noops_and_chosen_wins() {
        let mut m = Merge::default();
        let b1 = Ballot::new(1, 1);
        m.add(vec![
            (
                3,
                Report::Accepted(Accepted {
                    ballot: b1,
                    value: p(3),
                }),
            ),
            (5, Report::Chosen(p(5))),
        ]);
        m.add(vec![(
            5,
            Report::Accepted(Accepted {
                ballot: Ballot::new(7, 7),
                value: p(5),
            }),
        )]);
        let a = m.finish(2, Ballot::ZERO, false);
        assert_eq!(a.max_seen, 5);
        assert_eq!(
            a.values,
            vec![(3, p(3), false), (4, Value::Noop, false), (5, p(5), true)]
        );
    }

    #[test]
    fn accepted_values_below_a_start_working_epoch_are_buried() {
        let (b1, b2) = (Ballot::new(1, 1), Ballot::new(2, 2));
        let acc = |b, v| {
            Report::Accepted(Accepted {
                ballot: b,
                value: v,
            })
        };
        let mut m = Merge::default();
        // A: round-1 leftovers at 6..=10; C: round-2 StartWorking at 6 and a value at 20.
        m.add((6..=10).map(|s| (s, acc(b1, p(s as u8)))).collect());
        m.add(vec![
            (6, acc(b2, Value::StartWorking(b2))),
            (20, acc(b2, p(20))),
        ]);
        let a = m.finish(5, Ballot::ZERO, false);
        assert_eq!(a.buried, vec![7, 8, 9, 10]);
        assert_eq!(a.values[0], (6, Value::StartWorking(b2), false));
        assert!(a.values[1..14].iter().all(|(_, v, _)| *v == Value::Noop));
        assert_eq!(a.values[14], (20, p(20), false));
        // The same epoch inside the chosen prefix buries them too.
        let mut m = Merge::default();
        m.add((7..=10).map(|s| (s, acc(b1, p(s as u8)))).collect());
        assert_eq!(m.finish(6, b2, false).buried, vec![7, 8, 9, 10]);
    }
}
