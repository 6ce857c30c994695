//! The Stasis harness: everything behind the `stasis` binary.
//!
//! `net` owns namespaces, bridges and iptables; `doctor` checks the machine; `check` is the
//! CLI glue over the `checker` crate.

pub mod analyze;
pub mod auxiliary;
pub mod campaign;
pub mod check;
pub mod cleanup;
pub mod client;
pub mod cluster;
pub mod diskfs;
pub mod doctor;
pub mod generator;
pub mod junit;
pub mod lost_writes;
pub mod nemesis;
pub mod net;
pub mod netfault;
pub mod plot;
pub mod recorder;
pub mod replay;
pub mod report_html;
pub mod run;
pub mod selftest;
pub mod serve;
pub mod settings;
pub mod signals;
pub mod sim;
pub mod store;
pub mod sut;
pub mod units;
