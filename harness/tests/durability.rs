//! Acknowledged-write durability of our nodes (issue 23): kill -9 cycles of random nodes
//! (one, the leader, a minority or all of them) under a write-heavy load, then a final
//! read of every key; the checker must find the history linearizable, which no history
//! with a lost acknowledged write is, and `lost_writes` (results.json) must be empty.
//! Runs of 12 s are repeated until the kills add up to `STASIS_DURABILITY_KILLS` per
//! protocol (default 15 here in CI; the nightly script asks for 120). Needs root and the
//! node binary, like tests/runs.rs.

mod common;

use checker::history::{OpType, Process, read_jsonl};
use common::*;
use serde_json::Value;

/// Per protocol: kill cycles, nodes killed, acknowledged writes and cas, final reads.
fn durability(sut: &str) {
    let want: usize = std::env::var("STASIS_DURABILITY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let (mut cycles, mut killed, mut acked, mut runs) = (0, 0, 0, 0);
    while cycles < want {
        let r = stasis_test(&[
            "--sut",
            sut,
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "300ms",
            "--time-limit",
            "12s",
            "--write-pct",
            "50",
            "--cas-pct",
            "30",
        ]);
        runs += 1;
        let t = &r.text;
        assert_eq!(r.out.status.code(), Some(0), "{sut} run {runs}:\n{t}");
        let results: Value =
            serde_json::from_slice(&std::fs::read(r.dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(results["verdict"], "linearizable", "{sut} run {runs}: {t}");
        let lost = &results["lost_writes"];
        assert_eq!(
            lost["lost"].as_array().map(Vec::len),
            Some(0),
            "{sut} run {runs}: lost acknowledged writes: {lost}"
        );
        let history = read_jsonl(&r.dir.join("history.jsonl")).unwrap().ops;
        let kills: Vec<_> = history
            .iter()
            .filter(|o| o.process == Process::Nemesis && o.f == "start-kill")
            .collect();
        cycles += kills.len();
        killed += kills
            .iter()
            .map(|o| o.value.as_array().map_or(0, Vec::len))
            .sum::<usize>();
        acked += history
            .iter()
            .filter(|o| o.kind == OpType::Ok && (o.f == "write" || o.f == "cas"))
            .count();
        // Every key was read at the end, after the last kill healed.
        let last_heal = history
            .iter()
            .filter(|o| o.f == "stop-kill")
            .map(|o| o.time)
            .max()
            .unwrap_or(0);
        let finals = history
            .iter()
            .filter(|o| o.kind == OpType::Ok && o.f == "read" && o.time > last_heal)
            .filter_map(|o| o.key.clone())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(
            finals.len(),
            8,
            "{sut} run {runs}: keys read after the last heal"
        );
        assert_nothing_left(&r.dir, r.pid);
    }
    eprintln!(
        "durability {sut}: {runs} runs, {cycles} kill cycles ({killed} nodes killed), \
         {acked} acknowledged writes and cas, 0 lost"
    );
}

#[test]
fn raft_keeps_every_acknowledged_write() {
    durability("raft");
}

#[test]
fn multipaxos_keeps_every_acknowledged_write() {
    durability("multipaxos");
}
