//! The Stasis harness: everything behind the `stasis` binary.
//!
//! `net` owns namespaces, bridges and iptables; `doctor` checks the machine; `check` is the
//! CLI glue over the `checker` crate.

pub mod check;
pub mod doctor;
pub mod net;
