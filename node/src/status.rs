//! The STATUS reply: one typed record, written by the node (as JSON in a RESP bulk string)
//! and read by the harness (leader discovery, membership views, the targeted scenarios,
//! clock checks), so both sides agree on every field's name and type.

use serde::{Deserialize, Serialize};

/// What `STATUS` reports about one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id (`n1`, ...).
    pub id: String,
    /// `raft` or `multipaxos`.
    pub protocol: String,
    /// `leader`, `follower`, `candidate`, ... (the core's role).
    pub role: String,
    /// Raft term or Paxos ballot round.
    pub term: u64,
    /// The leader this node knows of, if any.
    pub leader: Option<String>,
    /// The known leader's client address (`ip:port`), for redirects.
    pub leader_addr: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The voters of the current configuration (both halves while joint).
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    /// Whether a joint configuration is in force.
    pub joint: bool,
    /// Index and term of the last log entry (`None` for an empty log).
    pub last_index: Option<u64>,
    pub last_term: Option<u64>,
    /// Whom this node voted for in its current term.
    pub vote: Option<String>,
    /// The node's wall clock, ms since the epoch (moved by libfaketime under clock faults).
    pub wall_clock_ms: u64,
    /// The seeded bugs switched on.
    pub bugs: Vec<String>,
}

impl NodeStatus {
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }

    /// Parses a STATUS reply's JSON.
    pub fn parse(bytes: &[u8]) -> Result<NodeStatus, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("STATUS is not a node status: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_a_reply_as_the_node_writes_it() {
        let s = NodeStatus {
            id: "n1".into(),
            protocol: "raft".into(),
            role: "leader".into(),
            term: 3,
            leader: Some("n1".into()),
            voters: vec!["n1".into(), "n2".into()],
            last_index: Some(7),
            wall_clock_ms: 1_700_000_000_000,
            ..NodeStatus::default()
        };
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(NodeStatus::parse(&json).unwrap(), s);
        assert!(s.is_leader());
        let err = NodeStatus::parse(b"{\"role\":1}").unwrap_err();
        assert!(err.starts_with("STATUS is not a node status"), "{err}");
    }
}
