//! The short fuzz pass of the test suite: every target replays its seeds (the committed
//! corpus in fuzz/seeds and the matching ../shared/testdata files), then runs a fixed
//! number of mutated inputs from a fixed seed (reproducible: a failure here reproduces
//! with the same build). The long, coverage-guided runs are scripts/fuzz.sh (nightly).

use std::time::Duration;

use stasis_fuzz::engine::{self, Budget, Dirs, Fuzzer};
use stasis_fuzz::targets;

/// Mutated executions per target (a few seconds each at opt-level 1).
const EXECS: u64 = 4_000;

fn short_pass(name: &str) {
    let t = targets::by_name(name).expect("target exists");
    let shared = stasis_fuzz::shared_testdata();
    if !t.shared_seeds.is_empty() {
        assert!(
            shared.is_some(),
            "../shared/testdata is missing: the {name} target's seeds come from it (shared/ must sit beside the repository)"
        );
    }
    let seeds = engine::seeds(t, &stasis_fuzz::seeds_root(), shared.as_deref());
    let n_seeds = seeds.len();
    let mut fuzzer = Fuzzer::new(
        t,
        seeds,
        0x5eed ^ stasis_fuzz::hash::fnv(name.as_bytes()),
        Dirs::default(),
    );
    let report = fuzzer.run(&Budget {
        time: Duration::from_secs(20),
        execs: Some(n_seeds as u64 + EXECS),
    });
    let crashes: Vec<String> = report
        .crashes
        .iter()
        .map(|c| {
            format!(
                "{}: {} (input {:?})",
                c.location,
                c.message,
                String::from_utf8_lossy(&c.input[..c.input.len().min(300)])
            )
        })
        .collect();
    assert!(crashes.is_empty(), "{name}: {}", crashes.join("\n"));
    assert!(
        report.execs > n_seeds as u64,
        "{name}: ran no mutated input"
    );
}

macro_rules! short {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { short_pass($name); })*

        #[test]
        fn every_target_has_a_short_pass() {
            let mut covered = vec![$($name),*];
            covered.sort();
            let mut all: Vec<&str> = targets::TARGETS.iter().map(|t| t.name).collect();
            all.sort();
            assert_eq!(covered, all);
        }
    };
}

short! {
    jsonl => "jsonl",
    jepsen_edn => "jepsen-edn",
    porcupine_etcd_log => "porcupine-etcd-log",
    porcupine_kv_edn => "porcupine-kv-edn",
    sut_spec => "sut-spec",
    campaign => "campaign",
    resp => "resp",
    wal => "wal",
    snapshot => "snapshot",
}
