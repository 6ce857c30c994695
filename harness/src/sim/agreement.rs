//! State-machine safety across the simulated replicas: every node applies the same entry
//! (command and term, [`node::host::Applied::Entry`]) at every log index, and holds the
//! same state at every index it snapshots or restores a snapshot at (Raft's State Machine
//! Safety; for Multi-Paxos, one value chosen per slot). It is checked on what the nodes'
//! hosts apply ([`node::host::Applied`]), not on what clients saw, so a replica that
//! applied a different entry is a finding even when no read ever returned it: a committed
//! entry later overwritten (the Raft paper's Figure 8), a snapshot that carries a different
//! state, a log cut past the commit index. The history's checker sees such damage only if a
//! client happens to read the key in the window where it shows.

use std::collections::HashMap;

use node::core::{NodeId, fmt_id};
use node::host::Applied;

/// What each index was first seen to hold, and by whom.
#[derive(Default)]
pub struct Agreement {
    entries: HashMap<u64, (u64, NodeId)>,
    states: HashMap<u64, (u64, NodeId)>,
}

impl Agreement {
    /// Records what node `id` applied; the first disagreement with another replica (or with
    /// itself, in an earlier incarnation) is returned as a one-line finding.
    pub fn observe(&mut self, id: NodeId, steps: &[Applied]) -> Option<String> {
        let mut found = None;
        for step in steps {
            let (map, index, digest, what) = match *step {
                Applied::Entry { index, digest } => (&mut self.entries, index, digest, "entry"),
                Applied::State { index, digest } => {
                    (&mut self.states, index, digest, "snapshot state")
                }
            };
            let (first, by) = *map.entry(index).or_insert((digest, id));
            if first != digest && found.is_none() {
                found = Some(format!(
                    "replicas diverged: {} applied a different {what} at index {index} than {} (digest {digest:016x} against {first:016x})",
                    fmt_id(id),
                    fmt_id(by),
                ));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_steps_on_every_replica_agree_and_one_different_entry_or_state_is_named() {
        let e = |index, digest| Applied::Entry { index, digest };
        let s = |index, digest| Applied::State { index, digest };
        let mut a = Agreement::default();
        assert_eq!(a.observe(1, &[e(1, 10), e(2, 20), s(2, 7)]), None);
        // Another replica, and the first again after a restart (it re-applies).
        assert_eq!(a.observe(2, &[e(1, 10), e(2, 20)]), None);
        assert_eq!(a.observe(1, &[s(2, 7), e(3, 30)]), None);
        // An entry and a state are compared only with their own kind at an index.
        assert_eq!(a.observe(3, &[s(3, 99)]), None);
        let found = a.observe(3, &[e(3, 31)]).expect("a different entry at 3");
        assert!(
            found.contains("n3 applied a different entry at index 3 than n1"),
            "{found}"
        );
        let found = a
            .observe(2, &[e(4, 40), s(2, 8)])
            .expect("a different state");
        assert!(
            found.contains("n2 applied a different snapshot state at index 2 than n1"),
            "{found}"
        );
        assert!(!found.contains('\n'));
    }
}
