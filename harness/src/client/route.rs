//! Which node an operation is sent to next: one policy for the RESP client of real runs
//! and the simulator's clients.
//!
//! A client starts at some node and follows `NOTLEADER <id> <addr>` redirects. When a node
//! knows no leader, or refuses the connection, it moves on to the next node of its *own*
//! round (the nodes after the one it started at), not to the node after the one a
//! redirect led it to: hints can be stale. A node removed from the configuration keeps
//! naming the leader it last heard from, and that leader, removed too, knows none; going
//! on from the redirect's target sent such a client back to the stale node, which
//! redirected it again, so it bounced between the two while the real leader went unasked
//! (`stasis sim --protocol multipaxos --faults all,persist,stall,reconfig --sim-time 4s
//! --seed 25439`: no operation completed for 12.5 s after the heal). Redirect chains are
//! bounded too: after one hop per node the client moves on.

/// The route of one operation over `nodes` nodes.
#[derive(Clone, Debug)]
pub struct Route {
    nodes: usize,
    /// The node the request goes to now.
    at: usize,
    /// The client's own round: the node it reached without a redirect last.
    cursor: usize,
    /// Redirects followed since the round last moved.
    hops: usize,
}

impl Route {
    /// A route starting at node `start` (taken modulo `nodes`).
    pub fn new(nodes: usize, start: usize) -> Route {
        let nodes = nodes.max(1);
        let start = start % nodes;
        Route {
            nodes,
            at: start,
            cursor: start,
            hops: 0,
        }
    }

    /// The node to send to now.
    pub fn at(&self) -> usize {
        self.at
    }

    /// The node answered `NOTLEADER`, naming node `to` as the leader (`None`: it named
    /// none, or one the client does not know). Returns true when the client follows the
    /// hint at once; false when it moved on to the next node of its round instead (no
    /// leader known, a hint back to the same node, or one hop per node already followed),
    /// where the caller backs off a little: an election may be in progress.
    pub fn redirected(&mut self, to: Option<usize>) -> bool {
        match to {
            Some(t) if t % self.nodes != self.at && self.hops < self.nodes => {
                self.at = t % self.nodes;
                self.hops += 1;
                true
            }
            _ => {
                self.next();
                false
            }
        }
    }

    /// Moves on to the next node of the client's round (a refused connection, or no
    /// leader known).
    pub fn next(&mut self) {
        self.cursor = (self.cursor + 1) % self.nodes;
        self.at = self.cursor;
        self.hops = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client asks n7 (index 6), which names n6 (5), which knows no leader: the next
    /// node asked is n1 (0), the next of the client's own round, not n7 again.
    #[test]
    fn a_stale_hint_does_not_trap_the_client_between_two_nodes() {
        let mut r = Route::new(7, 6);
        assert!(r.redirected(Some(5)));
        assert_eq!(r.at(), 5);
        assert!(!r.redirected(None));
        assert_eq!(r.at(), 0);
        assert!(!r.redirected(None));
        assert_eq!(r.at(), 1);
    }

    #[test]
    fn redirect_chains_are_bounded_by_one_hop_per_node() {
        let mut r = Route::new(3, 0);
        // Two nodes that name each other forever.
        let mut asked = Vec::new();
        for _ in 0..6 {
            let to = if r.at() == 1 { 2 } else { 1 };
            r.redirected(Some(to));
            asked.push(r.at());
        }
        assert_eq!(
            asked,
            vec![1, 2, 1, 1, 2, 1],
            "three hops, then the round moves on"
        );
    }

    #[test]
    fn a_hint_to_the_node_itself_or_a_refusal_moves_the_round() {
        let mut r = Route::new(3, 2);
        assert!(!r.redirected(Some(2)));
        assert_eq!(r.at(), 0);
        r.next();
        assert_eq!(r.at(), 1);
        assert!(r.redirected(Some(5)), "taken modulo the number of nodes");
        assert_eq!(r.at(), 2);
    }
}
