//! stasis-node: replicated key-value servers for Stasis to test.
//!
//! Protocol cores (`raft`, later `paxos`) are pure state machines; `runtime` drives them
//! with tokio, TCP and the `storage` layer; `resp` is the client protocol and `kv` the
//! replicated state machine. Everything outside the cores is protocol-neutral.

pub mod boot;
pub mod config;
pub mod core;
pub mod host;
pub mod kv;
pub mod paxos;
pub mod quorum;
pub mod raft;
pub mod resp;
pub mod runtime;
#[cfg(test)]
mod sim;
pub mod storage;
