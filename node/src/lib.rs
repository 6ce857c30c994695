//! stasis-node: replicated key-value servers for Stasis to test.
//!
//! Module map (each owns one concept):
//!
//! * `core`: the contract every consensus core implements ([`core::ConsensusCore`]) and
//!   the order in which a `Ready` batch is handled (persist, send, apply, read).
//! * `raft`, `paxos`: the two sans-IO cores (Raft with pre-vote, check-quorum, leases,
//!   snapshots and joint consensus; Multi-Paxos with flexible quorums, `quorum`). They
//!   never touch sockets, clocks or files; each has its own storage adapter.
//! * `storage`: the byte layer both cores persist through: the [`storage::file::Fs`]
//!   trait (real disk, or `SimFs` that loses unfsynced data on a simulated power loss),
//!   the segmented WAL and snapshots.
//! * `kv`: the replicated state machine; `resp`: the RESP2 client protocol codec;
//!   `status`: the typed STATUS reply both the node and the harness use.
//! * `host`: request handling around a core (pending writes answered on apply, read
//!   confirmation, redirects), shared by the runtime and the simulator.
//! * `boot`: building a core over its storage from a validated `config`.
//! * `runtime` (cargo feature `runtime`, on by default; the `stasis-node` binary needs
//!   it): tokio, the monotonic clock, TCP between peers and the RESP server, driving a
//!   core through `host`. The harness uses the crate without it: the cores, storage,
//!   `host`, `boot`, the RESP codec and `status` are plain code with no runtime.
//!
//! A request flows: RESP connection (`runtime::client`) -> `host` -> core proposal ->
//! `Ready` (persist through `storage`, messages through `runtime::transport`) -> commit
//! -> `kv` apply -> `host` answers the client. `stasis sim` (harness) drives the same
//! `boot`, `host`, cores and storage over a simulated network and file system.

pub mod boot;
pub mod config;
pub mod core;
pub mod host;
pub mod kv;
pub mod paxos;
pub mod quorum;
pub mod raft;
pub mod resp;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(test)]
mod sim;
pub mod status;
pub mod storage;
