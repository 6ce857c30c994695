//! The acceptor: the durable promise and the accepted `(slot, ballot, value)` triples.
//!
//! An acceptor ignores the past: it refuses prepares and accepts of a ballot lower than
//! the one it promised (this is what fences stale leaders), and it reports what it accepted
//! to every new prepare so the new proposer can adopt it. The core persists (and fsyncs)
//! every change made here before sending the reply that depends on it.
//!
//! Chosen values learned from the leader are kept apart from accepted ones: they are
//! knowledge, not votes, and are never written as if this acceptor had voted for them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Value;
use super::ballot::Ballot;

/// A vote: this acceptor accepted `value` in `ballot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub ballot: Ballot,
    pub value: Value,
}

/// What an acceptor tells a new proposer about one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// Known chosen: the only value the slot can ever have.
    Chosen(Value),
    /// Accepted in this ballot (maybe chosen, maybe not).
    Accepted(Accepted),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotState {
    pub accepted: Option<Accepted>,
    pub chosen: Option<Value>,
}

/// Acceptor state over the slots after the snapshot (`base`).
#[derive(Clone, Debug, Default)]
pub struct Acceptor {
    pub promised: Ballot,
    pub slots: BTreeMap<u64, SlotState>,
    /// Slots up to here are compacted into the snapshot (all chosen).
    pub base: u64,
}

impl Acceptor {
    /// Phase 1b. `Ok(true)` if the promise went up (must be persisted before replying),
    /// `Err(promised)` if `b` is stale.
    pub fn prepare(&mut self, b: Ballot) -> Result<bool, Ballot> {
        if b < self.promised {
            return Err(self.promised);
        }
        let raised = b > self.promised;
        self.promised = b;
        Ok(raised)
    }

    /// Phase 2b. `Ok(Some(accepted))` is a new vote to persist before acknowledging,
    /// `Ok(None)` a slot already compacted (chosen, nothing to store), `Err(promised)` a
    /// stale ballot (fencing). Accepting also raises the promise to `b`.
    pub fn accept(
        &mut self,
        b: Ballot,
        slot: u64,
        value: Value,
        fencing: bool,
    ) -> Result<Option<Accepted>, Ballot> {
        // Seeded-bug hook `no-fencing`: `fencing == false` skips this check.
        if fencing && b < self.promised {
            return Err(self.promised);
        }
        self.promised = self.promised.max(b);
        if slot <= self.base {
            return Ok(None);
        }
        let st = self.slots.entry(slot).or_default();
        if st.chosen.as_ref().is_some_and(|c| *c != value) {
            // Only possible if Paxos itself were broken; keep the chosen value.
            tracing::error!(slot, "accept of a value different from the chosen one");
        }
        let a = Accepted { ballot: b, value };
        st.accepted = Some(a.clone());
        Ok(Some(a))
    }

    /// Everything this acceptor knows at slots `>= from` (for a promise).
    pub fn report(&self, from: u64) -> Vec<(u64, Report)> {
        self.slots
            .range(from.max(self.base + 1)..)
            .filter_map(|(&s, st)| match (&st.chosen, &st.accepted) {
                (Some(v), _) => Some((s, Report::Chosen(v.clone()))),
                (None, Some(a)) => Some((s, Report::Accepted(a.clone()))),
                (None, None) => None,
            })
            .collect()
    }

    pub fn accepted_ballot(&self, slot: u64) -> Option<Ballot> {
        self.slots
            .get(&slot)
            .and_then(|s| s.accepted.as_ref())
            .map(|a| a.ballot)
    }

    pub fn chosen(&self, slot: u64) -> Option<&Value> {
        self.slots.get(&slot).and_then(|s| s.chosen.as_ref())
    }

    /// Records that `value` is chosen at `slot` (in memory only).
    pub fn learn(&mut self, slot: u64, value: Value) {
        if slot > self.base {
            self.slots.entry(slot).or_default().chosen = Some(value);
        }
    }

    /// Marks `slot` chosen if this acceptor voted for it in `b` (one value per ballot and
    /// slot, so the vote is the leader's value).
    pub fn learn_if_voted(&mut self, slot: u64, b: Ballot) -> bool {
        match self.slots.get_mut(&slot) {
            Some(st) if st.chosen.is_some() => true,
            Some(st) => match &st.accepted {
                Some(a) if a.ballot == b => {
                    st.chosen = Some(a.value.clone());
                    true
                }
                _ => false,
            },
            None => false,
        }
    }

    /// Drops slots up to `index` (compacted into a snapshot).
    pub fn compact(&mut self, index: u64) {
        self.base = self.base.max(index);
        self.slots = self.slots.split_off(&(index + 1));
    }

    /// The votes after the base, for rewriting the log after compaction.
    pub fn votes(&self) -> Vec<(u64, Accepted)> {
        self.slots
            .iter()
            .filter_map(|(&s, st)| st.accepted.clone().map(|a| (s, a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(x: u8) -> Value {
        Value::Command {
            origin: Ballot::new(1, 1),
            data: vec![x],
        }
    }

    #[test]
    fn stale_ballots_are_fenced() {
        let mut a = Acceptor::default();
        assert_eq!(a.prepare(Ballot::new(2, 1)), Ok(true));
        assert_eq!(a.prepare(Ballot::new(2, 1)), Ok(false));
        assert_eq!(a.prepare(Ballot::new(1, 9)), Err(Ballot::new(2, 1)));
        assert_eq!(
            a.accept(Ballot::new(1, 9), 1, cmd(1), true),
            Err(Ballot::new(2, 1))
        );
        assert!(
            a.accept(Ballot::new(2, 1), 1, cmd(1), true)
                .unwrap()
                .is_some()
        );
        // A higher accept raises the promise.
        assert!(
            a.accept(Ballot::new(3, 2), 2, cmd(2), true)
                .unwrap()
                .is_some()
        );
        assert_eq!(a.promised, Ballot::new(3, 2));
        assert_eq!(a.prepare(Ballot::new(2, 9)), Err(Ballot::new(3, 2)));
        assert_eq!(a.report(2).len(), 1);
        assert!(a.learn_if_voted(2, Ballot::new(3, 2)));
        assert!(!a.learn_if_voted(1, Ballot::new(3, 2)));
        assert_eq!(a.report(1)[1], (2, Report::Chosen(cmd(2))));
        a.compact(1);
        assert_eq!(a.accept(Ballot::new(3, 2), 1, cmd(1), true), Ok(None));
        assert_eq!(a.votes().len(), 1);
    }
}
