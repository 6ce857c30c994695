//! Ballots: the logical time of Paxos. `(round, node)` pairs, totally ordered by round and
//! then node id, so two proposers never use the same ballot.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::NodeId;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

impl Ballot {
    /// The ballot below every real one (nothing promised yet).
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }

    /// The smallest ballot of `node` above both `self` and `seen`.
    pub fn next_for(self, seen: Ballot, node: NodeId) -> Ballot {
        Ballot::new(self.round.max(seen.round) + 1, node)
    }

    /// One number per ballot for the runtime's `term` fields (matching a proposal to the
    /// entry applied at its slot). Node ids below 2^20 keep it injective.
    pub fn as_u64(self) -> u64 {
        self.round
            .saturating_mul(1 << 20)
            .saturating_add(self.node & 0xF_FFFF)
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.n{}", self.round, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_round_then_node() {
        let a = Ballot::new(1, 3);
        let b = Ballot::new(2, 1);
        let c = Ballot::new(2, 2);
        assert!(Ballot::ZERO < a && a < b && b < c);
        assert_eq!(a.next_for(c, 1), Ballot::new(3, 1));
        assert!(a.as_u64() < b.as_u64() && b.as_u64() < c.as_u64());
        assert_eq!(c.to_string(), "2.n2");
    }
}
