//! The Stasis harness: everything behind the `stasis` binary.
//!
//! How `stasis test` flows through the modules (`run` drives it):
//!
//! 1. `sut` reads the system's spec (TOML: the `program` that starts a node and each of
//!    its `auxiliary` processes, what it `needs` installed, how to talk to it, find its
//!    leader, change its membership; `template` renders its placeholders); `settings`
//!    draws the node settings of the run.
//! 2. `net` builds the `stasis-` namespaces, bridge and firewall rules, registering each
//!    in `runstate` so `cleanup` can remove a dead run's leftovers; `nodes` says where
//!    and how each node runs and `cluster` starts, kills, pauses and restarts them (with
//!    `faketime` for clock faults, `diskfs` for disk faults, `netfault` for packet delay,
//!    loss, duplication and reordering).
//! 3. `generator` draws the workload, `client` speaks each system's wire protocol, and
//!    `recorder` writes every invoke and completion to `history.jsonl`.
//! 4. `nemesis` schedules and applies the faults (kill, pause, partition, clock, net,
//!    membership, disk, and the targeted plans of the selftest), each recorded as a
//!    start/stop pair in the history.
//! 5. `analyze` checks the history with the `checker` crate, computes the fault windows
//!    and problems of `record`, and writes `results.json`, `summary.txt`, the `plot`s and
//!    `report_html`, with the `lost_writes` found in the history; `store` owns the run
//!    directories.
//!
//! Around it: `campaign` (matrices of runs: spec, cell, record, junit), `selftest` (seeded
//! bugs until caught), `sim` (deterministic simulation of the same node code in one
//! process), `replay`, `check` (`stasis check FILE`), `doctor` (what the machine can do),
//! `serve` (the web UI), `signals` (Ctrl-C), `units` (durations and sizes on the command
//! line). `scripts/module-cycles.py` keeps the modules free of cycles.

pub mod analyze;
pub mod auxiliary;
pub mod campaign;
pub mod check;
pub mod cleanup;
pub mod client;
pub mod cluster;
pub mod diskfs;
pub mod doctor;
pub mod faketime;
pub mod firewall;
pub mod generator;
pub mod lost_writes;
pub mod needs;
pub mod nemesis;
pub mod net;
pub mod netfault;
pub mod nodes;
pub mod plot;
pub mod program;
pub mod record;
pub mod recorder;
pub mod remote;
pub mod replay;
pub mod report_html;
pub mod run;
pub mod runstate;
pub mod selftest;
pub mod serve;
pub mod settings;
pub mod signals;
pub mod sim;
pub mod store;
pub mod sut;
pub mod template;
pub mod units;
