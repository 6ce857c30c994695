//! Cluster membership and joint-consensus quorums.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::NodeId;

/// A configuration. When `outgoing` is non-empty the cluster is in the joint configuration
/// C_old,new (`outgoing` = C_old, `voters` = C_new) and every decision needs a majority of
/// both. Learners receive the log but never vote or count towards a quorum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub outgoing: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// Peer addresses of all members.
    pub addrs: BTreeMap<NodeId, String>,
}

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

fn majority_result(set: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if set.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut missing) = (0, 0);
    for id in set {
        match votes.get(id) {
            Some(true) => yes += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let q = set.len() / 2 + 1;
    if yes >= q {
        VoteResult::Won
    } else if yes + missing >= q {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// The largest value that a majority of `set` has reached (u64::MAX for an empty set, so
/// that an empty half of a joint configuration never limits the result).
/// With `early` (the seeded bug `commit-minority`) one node fewer than a majority is
/// enough (a set of one still needs its only member).
fn majority_value(set: &BTreeSet<NodeId>, value: &impl Fn(NodeId) -> u64, early: bool) -> u64 {
    if set.is_empty() {
        return u64::MAX;
    }
    let mut vals: Vec<u64> = set.iter().map(|&id| value(id)).collect();
    vals.sort_unstable_by(|a, b| b.cmp(a));
    let k = set.len() / 2;
    vals[if early { k.saturating_sub(1) } else { k }]
}

impl Membership {
    /// A plain configuration of `voters` with their peer addresses.
    pub fn new(voters: BTreeMap<NodeId, String>) -> Membership {
        Membership {
            voters: voters.keys().copied().collect(),
            outgoing: BTreeSet::new(),
            learners: BTreeSet::new(),
            addrs: voters,
        }
    }

    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// All voters of both halves.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.outgoing).copied().collect()
    }

    /// Voters and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut m = self.all_voters();
        m.extend(self.learners.iter().copied());
        m
    }

    /// Whether this configuration can make decisions at all.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty() && self.outgoing.is_empty()
    }

    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        if self.is_empty() {
            return VoteResult::Lost;
        }
        let a = majority_result(&self.voters, votes);
        let b = majority_result(&self.outgoing, votes);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether the nodes for which `ok` holds form a quorum (a majority of each half).
    pub fn has_quorum(&self, ok: impl Fn(NodeId) -> bool) -> bool {
        let votes: BTreeMap<NodeId, bool> = self
            .all_voters()
            .into_iter()
            .map(|id| (id, ok(id)))
            .collect();
        self.vote_result(&votes) == VoteResult::Won
    }

    /// The largest value reached by a quorum (e.g. the committed index from match indexes).
    /// Returns 0 for a configuration without voters.
    pub fn quorum_value(&self, value: impl Fn(NodeId) -> u64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        majority_value(&self.voters, &value, false).min(majority_value(
            &self.outgoing,
            &value,
            false,
        ))
    }

    /// Seeded bug `commit-minority`: [`Membership::quorum_value`] counted one
    /// acknowledgement early (the largest value reached by a majority minus one node).
    pub fn quorum_value_one_early(&self, value: impl Fn(NodeId) -> u64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        majority_value(&self.voters, &value, true).min(majority_value(&self.outgoing, &value, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn simple_majorities() {
        let m = Membership {
            voters: set(&[1, 2, 3]),
            ..Default::default()
        };
        let votes: BTreeMap<_, _> = [(1, true)].into_iter().collect();
        assert_eq!(m.vote_result(&votes), VoteResult::Pending);
        let votes: BTreeMap<_, _> = [(1, true), (2, true)].into_iter().collect();
        assert_eq!(m.vote_result(&votes), VoteResult::Won);
        let votes: BTreeMap<_, _> = [(1, true), (2, false), (3, false)].into_iter().collect();
        assert_eq!(m.vote_result(&votes), VoteResult::Lost);
        assert_eq!(m.quorum_value(|id| [0, 5, 7, 9][id as usize]), 7);
        // One acknowledgement early: the largest value alone counts.
        assert_eq!(m.quorum_value_one_early(|id| [0, 5, 7, 9][id as usize]), 9);
    }

    #[test]
    fn joint_needs_both_majorities() {
        let m = Membership {
            voters: set(&[3, 4, 5]),
            outgoing: set(&[1, 2, 3]),
            ..Default::default()
        };
        assert!(!m.has_quorum(|id| id <= 3)); // old majority only (1,2,3), new has only 3
        assert!(!m.has_quorum(|id| id >= 3)); // new majority only
        assert!(m.has_quorum(|id| id == 2 || id == 3 || id == 4));
        // match: n1=10 n2=10 n3=1 n4=1 n5=1 -> old majority has 10, new only 1.
        assert_eq!(m.quorum_value(|id| if id <= 2 { 10 } else { 1 }), 1);
        assert_eq!(m.quorum_value(|id| if id == 5 { 1 } else { 10 }), 10);
    }

    #[test]
    fn empty_configuration_never_decides() {
        let m = Membership::default();
        assert!(!m.has_quorum(|_| true));
        assert_eq!(m.quorum_value(|_| 9), 0);
    }
}
