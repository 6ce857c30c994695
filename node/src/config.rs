//! Command-line flags of `stasis-node` and their validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::core::{Bugs, CheckQuorum, NodeId, ReadMode, parse_id};

/// Limits on client connections (flags `--max-clients`, `--client-stall-ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_clients: usize,
    /// Time a request may take to arrive whole, from its first byte.
    pub stall: Duration,
}

/// A replicated key-value server for Stasis to test (RESP2 protocol).
#[derive(Parser, Debug, Clone)]
#[command(name = "stasis-node", version)]
pub struct Cli {
    /// This node's id: n<k>, k >= 1.
    #[arg(long)]
    pub id: String,
    /// Consensus protocol: raft or multipaxos.
    #[arg(long, default_value = "raft")]
    pub protocol: String,
    /// Multi-Paxos quorum system: majority, flexible:Q1,Q2 (Q1 + Q2 > N), grid:RxC (phase 1
    /// a full row, phase 2 a full column) or even (Major(D) ∪ Major(D∖{d}) for an even N).
    /// Configurations whose phase-1 and phase-2 quorums may not intersect are refused.
    #[arg(long, default_value = "majority")]
    pub quorum: String,
    /// Client (RESP) listen address, ip:port.
    #[arg(long)]
    pub listen: String,
    /// Peer-to-peer listen address, ip:port.
    #[arg(long)]
    pub peer_listen: String,
    /// All initial voters including this node: n1=ip:port,n2=ip:port,... (peer addresses).
    #[arg(long, default_value = "")]
    pub peers: String,
    /// Directory for the log and snapshots (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The cluster's name (like etcd's --initial-cluster-token): peers that present another
    /// name in the handshake are refused, and a data directory first used by another
    /// cluster is not opened. Give every cluster sharing a network or a disk its own.
    #[arg(long, default_value = "stasis")]
    pub cluster: String,
    /// read-index (default: leader confirms each read batch with a heartbeat quorum) or
    /// lease (leader lease on the monotonic clock; assumes bounded clock drift).
    #[arg(long, default_value = "read-index")]
    pub read_mode: String,
    /// Start empty and wait to be added by a RECONFIG on the leader.
    #[arg(long)]
    pub join: bool,
    /// Length of one logical clock tick in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Minimum election timeout in ticks (the actual one is random in [e, 2e)).
    #[arg(long, default_value_t = 30)]
    pub election_ticks: u64,
    /// Heartbeat interval in ticks.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_ticks: u64,
    /// Lease reads: safety margin in ticks against clock drift (default: a third of the
    /// election timeout).
    #[arg(long)]
    pub lease_margin_ticks: Option<u64>,
    /// Check quorum: a leader that has heard no quorum for this many ticks steps down
    /// (default: the election timeout; 0 = never, only a higher term/ballot deposes it).
    /// Must be at least --election-ticks. Only liveness depends on it.
    #[arg(long)]
    pub check_quorum_ticks: Option<u64>,
    /// Raft pre-vote (thesis §9.6; etcd's --pre-vote): on (default), a node whose election
    /// timer fires first asks whether it could win before it raises its term; off, it
    /// campaigns at once in a new term (etcd's behaviour before 3.5). raft only.
    #[arg(long, default_value = "on")]
    pub pre_vote: String,
    /// Most log entries in one replication message (Raft AppendEntries, Multi-Paxos
    /// phase-2 batch); like etcd's --max-size-per-msg, but counted in entries.
    #[arg(long, default_value_t = 512)]
    pub max_msg_entries: usize,
    /// Replication messages in flight to one follower before the leader waits for an
    /// acknowledgement (etcd's MaxInflightMsgs). Raft only.
    #[arg(long, default_value_t = 64)]
    pub max_inflight_msgs: usize,
    /// Snapshot and compact the log every N applied entries (0 = never).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Answer -TIMEOUT when a request is not done within this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Most client connections at once; one more is told `-ERR max number of clients
    /// reached` and closed (keep it below the open-files limit, `ulimit -n`).
    #[arg(long, default_value_t = 4096)]
    pub max_clients: usize,
    /// A client request must arrive whole within this many milliseconds of its first
    /// byte; a connection that stalls in the middle of one (slowloris) gets an error and
    /// is closed. Idle connections between requests are kept.
    #[arg(long, default_value_t = 30_000)]
    pub client_stall_ms: u64,
    /// Switch on a seeded consensus bug (repeatable or comma-separated; for testing the
    /// tester, see docs/NODE.md "Seeded bugs"). raft: stale-read, forget-vote,
    /// commit-minority, figure8, lease-wallclock, lease-from-ack, unsafe-reconfig; multipaxos:
    /// ignore-accepted, no-fencing, disjoint-quorums, unsafe-reconfig.
    #[arg(long = "bug", value_name = "NAME", value_delimiter = ',')]
    pub bug: Vec<String>,
}

/// Validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: NodeId,
    pub protocol: &'static str,
    /// Multi-Paxos quorum system (`majority` for Raft, which accepts no other).
    pub quorum: crate::quorum::QuorumSpec,
    pub client_listen: SocketAddr,
    pub peer_listen: SocketAddr,
    pub peers: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    /// The cluster's name (`--cluster`).
    pub cluster: String,
    pub read_mode: ReadMode,
    pub join: bool,
    pub tick: Duration,
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    pub lease_margin_ticks: u64,
    pub check_quorum: CheckQuorum,
    /// Raft pre-vote before each election (always true for Multi-Paxos, which ignores it).
    pub pre_vote: bool,
    /// Most entries per replication message.
    pub max_msg_entries: usize,
    /// Raft: replication messages in flight per follower.
    pub max_inflight_msgs: usize,
    pub snapshot_every: u64,
    pub request_timeout: Duration,
    /// Client connection limits (hostile clients).
    pub client_limits: ConnLimits,
    /// Seeded bugs switched on (none by default).
    pub bugs: Bugs,
}

impl NodeConfig {
    /// The settings that every node of one cluster must share, as one canonical string
    /// exchanged in the peer handshake: the protocol and quorum system (nodes started with
    /// `flexible:4,2` and `flexible:2,4` would have disjoint quorums) and the timing that
    /// lease safety relies on (a leader's lease is measured in its ticks against the
    /// followers' election timeout).
    pub fn agreement(&self) -> String {
        format!(
            "protocol={} quorum={} tick-ms={} election-ticks={}",
            self.protocol,
            self.quorum,
            self.tick.as_millis(),
            self.election_ticks
        )
    }
}

fn addr(flag: &str, s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{flag} {s:?} is not an ip:port address (e.g. 127.0.0.1:7001)"))
}

/// Parses `n1=ip:port,n2=ip:port`.
pub fn parse_peers(s: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, a) = part
            .split_once('=')
            .ok_or_else(|| format!("--peers entry {part:?} must look like n1=127.0.0.1:8001"))?;
        let id = parse_id(id).map_err(|e| format!("--peers: {e}"))?;
        addr("--peers address", a)?;
        if out.insert(id, a.to_string()).is_some() {
            return Err(format!("--peers lists n{id} twice"));
        }
    }
    Ok(out)
}

impl Cli {
    pub fn validate(self) -> Result<NodeConfig, String> {
        let id = parse_id(&self.id).map_err(|e| format!("--id: {e}"))?;
        let protocol = match self.protocol.as_str() {
            "raft" => "raft",
            "multipaxos" => "multipaxos",
            other => {
                return Err(format!(
                    "--protocol {other:?} is unknown; use raft or multipaxos"
                ));
            }
        };
        let bugs = Bugs::parse(protocol, &self.bug)?;
        // The quorum module's messages already name the flag.
        let quorum = crate::quorum::QuorumSpec::parse(&self.quorum)?;
        if protocol == "raft" && self.quorum != "majority" {
            return Err(
                "--quorum applies to --protocol multipaxos only (Raft uses majorities)".into(),
            );
        }
        if protocol == "multipaxos" && self.read_mode == "lease" {
            return Err("--read-mode lease applies to raft only; Multi-Paxos confirms every read with a phase-2 quorum".into());
        }
        if self.cluster.is_empty()
            || self.cluster.len() > 128
            || !self
                .cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(format!(
                "--cluster {:?} is not a valid name; use 1 to 128 letters, digits, '-', '_', '.' or ':'",
                self.cluster
            ));
        }
        let client_listen = addr("--listen", &self.listen)?;
        let peer_listen = addr("--peer-listen", &self.peer_listen)?;
        let peers = parse_peers(&self.peers)?;
        if !self.join {
            if protocol == "multipaxos" {
                // Refuse quorum systems whose phase-1 and phase-2 quorums may not intersect.
                // (The seeded bug `disjoint-quorums` lets a non-intersecting one through.)
                crate::quorum::QuorumSystem::validate(
                    quorum,
                    &peers.keys().copied().collect(),
                    &bugs,
                )?;
            }
            if peers.is_empty() {
                return Err("--peers is required (all initial voters, e.g. n1=127.0.0.1:8001,n2=...); use --join for a node that waits to be added".into());
            }
            if !peers.contains_key(&id) {
                return Err(format!(
                    "--peers must include this node ({}) unless --join is given",
                    self.id
                ));
            }
        }
        let read_mode = match self.read_mode.as_str() {
            "read-index" | "readindex" => ReadMode::ReadIndex,
            "lease" => ReadMode::Lease,
            other => {
                return Err(format!(
                    "--read-mode {other:?} is unknown; use read-index or lease"
                ));
            }
        };
        if bugs.lease_wallclock && read_mode != ReadMode::Lease {
            return Err("--bug lease-wallclock changes lease reads: add --read-mode lease".into());
        }
        if bugs.lease_from_ack && read_mode != ReadMode::Lease {
            return Err("--bug lease-from-ack changes lease reads: add --read-mode lease".into());
        }
        if self.tick_ms == 0 || self.tick_ms > 10_000 {
            return Err("--tick-ms must be between 1 and 10000".into());
        }
        if self.election_ticks < 2 {
            return Err("--election-ticks must be at least 2".into());
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err("--heartbeat-ticks must be at least 1 and below --election-ticks".into());
        }
        let lease_margin_ticks = self
            .lease_margin_ticks
            .unwrap_or((self.election_ticks / 3).max(1));
        if lease_margin_ticks >= self.election_ticks {
            return Err("--lease-margin-ticks must be below --election-ticks".into());
        }
        if lease_margin_ticks == 0 && read_mode == ReadMode::Lease {
            // Finding 4 of the node review: ticks of different nodes are not aligned, so
            // even with perfect clocks a lease and a follower's election timer can overlap
            // by up to one tick.
            return Err("--lease-margin-ticks 0 is unsafe with --read-mode lease: tick quantization alone needs a margin of at least 1".into());
        }
        let check_quorum = match self.check_quorum_ticks {
            None => CheckQuorum::ElectionTimeout,
            Some(0) => CheckQuorum::Off,
            Some(n) if n < self.election_ticks => {
                return Err(format!(
                    "--check-quorum-ticks {n} is below --election-ticks {}: a leader would step down while its followers still follow it; use at least the election timeout, or 0 to never step down",
                    self.election_ticks
                ));
            }
            Some(n) if n > 1_000_000 => {
                return Err(format!(
                    "--check-quorum-ticks {n} is too large (at most 1000000); use 0 to never step down"
                ));
            }
            Some(n) => CheckQuorum::Ticks(n),
        };
        let pre_vote = match self.pre_vote.as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(format!("--pre-vote {other:?} is unknown; use on or off"));
            }
        };
        if protocol == "multipaxos" && !pre_vote {
            return Err("--pre-vote applies to --protocol raft only".into());
        }
        if self.request_timeout_ms == 0 {
            return Err("--request-timeout-ms must be positive".into());
        }
        if self.max_clients == 0 || self.client_stall_ms == 0 {
            return Err("--max-clients and --client-stall-ms must be positive".into());
        }
        if !(1..=1_000_000).contains(&self.max_msg_entries) {
            return Err(format!(
                "--max-msg-entries {} is out of range; use 1 to 1000000",
                self.max_msg_entries
            ));
        }
        if !(1..=4096).contains(&self.max_inflight_msgs) {
            return Err(format!(
                "--max-inflight-msgs {} is out of range; use 1 to 4096",
                self.max_inflight_msgs
            ));
        }
        if protocol == "multipaxos" && self.max_inflight_msgs != 64 {
            return Err("--max-inflight-msgs applies to --protocol raft only".into());
        }
        Ok(NodeConfig {
            id,
            protocol,
            quorum,
            client_listen,
            peer_listen,
            peers,
            data_dir: self.data_dir,
            cluster: self.cluster,
            read_mode,
            join: self.join,
            tick: Duration::from_millis(self.tick_ms),
            election_ticks: self.election_ticks,
            heartbeat_ticks: self.heartbeat_ticks,
            lease_margin_ticks,
            check_quorum,
            pre_vote,
            max_msg_entries: self.max_msg_entries,
            max_inflight_msgs: self.max_inflight_msgs,
            snapshot_every: self.snapshot_every,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            client_limits: ConnLimits {
                max_clients: self.max_clients,
                stall: Duration::from_millis(self.client_stall_ms),
            },
            bugs,
        })
    }
}

/// Parses and validates the command line. `Err((message, exit code))`: help/version text
/// with code 0, or a one-line error with code 2.
pub fn from_args<I, T>(args: I) -> Result<NodeConfig, (String, i32)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.validate().map_err(|e| (format!("stasis-node: {e}"), 2)),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Err((e.to_string(), 0)),
                _ => {
                    let text = e.to_string();
                    let first = text
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("invalid arguments")
                        .trim_start_matches("error: ");
                    Err((format!("stasis-node: {first} (see --help)"), 2))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<&'static str> {
        vec![
            "stasis-node",
            "--id",
            "n1",
            "--listen",
            "127.0.0.1:7001",
            "--peer-listen",
            "127.0.0.1:8001",
            "--peers",
            "n1=127.0.0.1:8001,n2=127.0.0.1:8002,n3=127.0.0.1:8003",
            "--data-dir",
            "/tmp/x",
        ]
    }

    /// The base flags with `extra` appended; a flag in `extra` replaces the base one.
    fn err(extra: &[&'static str]) -> String {
        let mut a = base();
        if let Some(i) = a.iter().position(|f| f.starts_with("--") && f == &extra[0]) {
            a.drain(i..i + 2);
        }
        a.extend_from_slice(extra);
        let (msg, code) = from_args(a).unwrap_err();
        assert_eq!(code, 2);
        assert_eq!(msg.lines().count(), 1, "{msg}");
        msg
    }

    #[test]
    fn valid_flags_parse() {
        let c = from_args(base()).unwrap();
        assert_eq!(c.id, 1);
        assert_eq!(c.peers.len(), 3);
        assert_eq!(c.read_mode, ReadMode::ReadIndex);
        assert_eq!(c.tick, Duration::from_millis(10));
        let mut a = base();
        a.extend_from_slice(&["--read-mode", "lease", "--election-ticks", "20"]);
        let c = from_args(a).unwrap();
        assert_eq!(c.read_mode, ReadMode::Lease);
        assert_eq!(c.lease_margin_ticks, 6);
    }

    #[test]
    fn bad_flags_give_one_line_errors() {
        assert!(err(&["--protocol", "paxos"]).contains("--protocol"));
        assert!(err(&["--read-mode", "stale"]).contains("--read-mode"));
        assert!(err(&["--tick-ms", "abc"]).contains("tick-ms"));
        assert!(err(&["--bogus"]).contains("--bogus"));
        assert!(err(&["--heartbeat-ticks", "40"]).contains("--heartbeat-ticks"));
        assert!(
            err(&["--read-mode", "lease", "--lease-margin-ticks", "0"])
                .contains("--lease-margin-ticks 0")
        );
        assert!(err(&["--id", "x1"]).contains("--id"));
        assert!(err(&["--listen", "nowhere"]).contains("--listen"));
        assert!(err(&["--peers", "n2=127.0.0.1:1"]).contains("must include this node"));
        assert!(err(&["--peers", "n1=127.0.0.1:1,n1=127.0.0.1:2"]).contains("twice"));
    }

    #[test]
    fn bug_flags_are_repeatable_comma_separated_and_checked_per_protocol() {
        let c = from_args(base()).unwrap();
        assert!(!c.bugs.any(), "no bug unless asked");
        let mut a = base();
        a.extend_from_slice(&["--bug", "stale-read,commit-minority", "--bug", "figure8"]);
        let c = from_args(a).unwrap();
        assert_eq!(
            c.bugs.names(),
            vec!["stale-read", "commit-minority", "figure8"]
        );
        let mut a = base();
        a.extend_from_slice(&["--protocol", "multipaxos", "--bug", "no-fencing"]);
        assert!(from_args(a).unwrap().bugs.no_fencing);
        assert!(err(&["--bug", "nonsense"]).contains("unknown"));
        assert!(err(&["--bug", "no-fencing"]).contains("multipaxos only"));
        assert!(err(&["--bug", "stale-read,ignore-accepted"]).contains("ignore-accepted"));
        assert!(err(&["--bug", "lease-wallclock"]).contains("--read-mode lease"));
        let mut a = base();
        a.extend_from_slice(&["--bug", "lease-wallclock", "--read-mode", "lease"]);
        assert!(from_args(a).unwrap().bugs.lease_wallclock);
        assert!(err(&["--bug", "lease-from-ack"]).contains("--read-mode lease"));
        let mut a = base();
        a.extend_from_slice(&["--bug", "lease-from-ack", "--read-mode", "lease"]);
        assert!(from_args(a).unwrap().bugs.lease_from_ack);
        // A quorum system whose quorums may not intersect is refused, unless the seeded
        // bug `disjoint-quorums` lets it through.
        let mut a = base();
        a.extend_from_slice(&["--protocol", "multipaxos", "--quorum", "flexible:2,1"]);
        let (msg, code) = from_args(a.clone()).unwrap_err();
        assert!(code == 2 && msg.contains("must exceed"), "{msg}");
        a.extend_from_slice(&["--bug", "disjoint-quorums"]);
        let c = from_args(a).unwrap();
        assert!(c.bugs.disjoint_quorums);
        assert_eq!(
            c.quorum,
            crate::quorum::QuorumSpec::Flexible { q1: 2, q2: 1 }
        );
        let mut a = base();
        a.extend_from_slice(&["--protocol", "multipaxos", "--bug", "figure8"]);
        let (msg, code) = from_args(a).unwrap_err();
        assert!(code == 2 && msg.contains("raft only") && msg.lines().count() == 1);
    }

    #[test]
    fn check_quorum_ticks_default_off_and_bounds() {
        assert_eq!(
            from_args(base()).unwrap().check_quorum,
            CheckQuorum::ElectionTimeout
        );
        for (protocol, read_mode) in [
            ("raft", "read-index"),
            ("raft", "lease"),
            ("multipaxos", "read-index"),
        ] {
            let mut a = base();
            a.extend_from_slice(&[
                "--protocol",
                protocol,
                "--read-mode",
                read_mode,
                "--check-quorum-ticks",
                "300",
            ]);
            assert_eq!(from_args(a).unwrap().check_quorum, CheckQuorum::Ticks(300));
            let mut a = base();
            a.extend_from_slice(&[
                "--protocol",
                protocol,
                "--read-mode",
                read_mode,
                "--check-quorum-ticks",
                "0",
            ]);
            assert_eq!(from_args(a).unwrap().check_quorum, CheckQuorum::Off);
        }
        let mut a = base();
        a.extend_from_slice(&["--check-quorum-ticks", "30"]);
        assert_eq!(from_args(a).unwrap().check_quorum, CheckQuorum::Ticks(30));
        assert!(err(&["--check-quorum-ticks", "29"]).contains("below --election-ticks 30"));
        assert!(err(&["--check-quorum-ticks", "1000001"]).contains("too large"));
        assert!(err(&["--check-quorum-ticks=-1"]).contains("check-quorum-ticks"));
        assert!(err(&["--check-quorum-ticks", "x"]).contains("check-quorum-ticks"));
    }

    #[test]
    fn flow_control_flags_default_and_are_bounded() {
        assert_eq!(from_args(base()).unwrap().max_msg_entries, 512);
        let mut a = base();
        a.extend_from_slice(&["--max-msg-entries", "1"]);
        assert_eq!(from_args(a).unwrap().max_msg_entries, 1);
        assert!(err(&["--max-msg-entries", "0"]).contains("out of range; use 1 to 1000000"));
        assert!(err(&["--max-msg-entries", "1000001"]).contains("out of range"));
        assert_eq!(from_args(base()).unwrap().max_inflight_msgs, 64);
        assert!(err(&["--max-inflight-msgs", "0"]).contains("use 1 to 4096"));
        let mut a = base();
        a.extend_from_slice(&["--protocol", "multipaxos", "--max-inflight-msgs", "1"]);
        assert!(from_args(a).unwrap_err().0.contains("raft only"));
    }

    #[test]
    fn pre_vote_on_by_default_off_for_raft_only() {
        assert!(from_args(base()).unwrap().pre_vote);
        let mut a = base();
        a.extend_from_slice(&["--pre-vote", "off"]);
        assert!(!from_args(a).unwrap().pre_vote);
        assert!(err(&["--pre-vote", "maybe"]).contains("use on or off"));
        let mut a = base();
        a.extend_from_slice(&["--protocol", "multipaxos", "--pre-vote", "off"]);
        let (msg, code) = from_args(a).unwrap_err();
        assert!(code == 2 && msg.contains("raft only"), "{msg}");
    }

    #[test]
    fn join_needs_no_peers() {
        let a = vec![
            "stasis-node",
            "--id",
            "n4",
            "--listen",
            "127.0.0.1:7004",
            "--peer-listen",
            "127.0.0.1:8004",
            "--data-dir",
            "/tmp/y",
            "--join",
        ];
        let c = from_args(a).unwrap();
        assert!(c.join && c.peers.is_empty());
    }
}
