//! The worker pool of a check: one set of threads compiles and screens every partition,
//! plans the order of the searches (refuted partitions first), searches them, and merges
//! the per-partition results into the verdict. Budgets: the deadline, and the process
//! memory cap shared out between the workers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::Instant;

use super::partition::{Prepared, check_partition, prepare};
use super::{
    CheckError, CheckOptions, CheckResult, Explanation, PartitionResult, Partitions, Verdict,
};
use crate::history::Operation;
use crate::model::Model;
use crate::search::{Limits, MemoBuf};

pub(super) enum PartOutcome {
    Done(PartitionResult),
    Failed(PartitionResult, Box<Explanation>),
    BadInput(String),
}

const NOT_SEARCHED: &str = "not searched: another key was already not linearizable";

pub(super) fn run<M: Model + Send>(
    model: &M,
    ops: &[Operation],
    p: &Partitions,
    opts: &CheckOptions,
) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .min(p.members.len())
    .max(1);
    let mut order: Vec<usize> = (0..p.members.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(p.members[i].len()));
    let cancel = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, PartOutcome)>> = Mutex::new(Vec::new());
    // The memory budget caps the whole process: what it holds already (the history,
    // the operations) and a reserve for compiling and explaining partitions come off it,
    // and each worker's search gets an equal share of the rest.
    let held = resident_bytes().unwrap_or(0);
    let limits = Limits {
        deadline,
        max_memo_bytes: opts.max_memo_bytes.saturating_sub(held + RESERVE) / threads,
        cancel: Some(&cancel),
        unknown_first: false,
    };
    // A single partition on a machine with a spare core: race both candidate orders.
    let race = p.members.len() == 1
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && opts.threads != 1;
    // Partitions compiled ahead of the search (for models that screen them).
    let screens = model.screens();
    let prepared: Vec<Mutex<Option<Prepared<M>>>> = if screens {
        (0..p.members.len()).map(|_| Mutex::new(None)).collect()
    } else {
        Vec::new()
    };
    // Partitions to search, in stages: a stage starts once the one before has ended.
    // Without a screen, one stage in size order; with one, decided once every partition
    // is compiled and screened (below).
    let stages: OnceLock<Vec<Vec<usize>>> = OnceLock::new();
    if !screens {
        stages.get_or_init(|| vec![order.clone()]);
    }
    // One counter per phase: compiling (with a screen), then each stage.
    let next: [AtomicUsize; 3] = Default::default();
    let barrier = Barrier::new(threads);
    let prepare_one = |part: usize| match prepare(
        model,
        opts.model,
        ops,
        &p.members[part],
        p.keys[part].as_deref(),
    ) {
        Ok(prep) => *prepared[part].lock().expect("no worker panics") = Some(prep),
        Err(m) => results
            .lock()
            .expect("no worker panics")
            .push((part, PartOutcome::BadInput(m))),
    };
    // Compile and screen every partition first. A refuted partition is sure to fail,
    // so refuted ones are searched first (those with the fewest operations before the
    // refutation first), alone, and when the check stops at the first violation the
    // others are not searched at all (rather than each core searching whatever comes
    // next until a failure cancels it). Should a screen be wrong, the second stage still
    // searches the others: a screen can change the cost, not the verdict.
    let plan = || {
        let refuted = |part: usize| {
            prepared[part]
                .lock()
                .expect("no worker panics")
                .as_ref()
                .and_then(|prep| prep.refuted)
        };
        let (mut first, rest): (Vec<usize>, Vec<usize>) = order
            .iter()
            .copied()
            .filter(|&part| prepared[part].lock().expect("no worker panics").is_some())
            .partition(|&part| refuted(part).is_some());
        first.sort_by_key(|&part| refuted(part));
        if opts.stop_early && !results.lock().expect("no worker panics").is_empty() {
            // Bad input: the check reports it and nothing else.
            Vec::new()
        } else if opts.stop_early {
            vec![first, rest]
        } else {
            vec![first.into_iter().chain(rest).collect()]
        }
    };
    let search_one = |part: usize, memo: &mut MemoBuf<M::State>| {
        let key = p.keys[part].clone();
        let prep = prepared
            .get(part)
            .and_then(|slot| slot.lock().expect("no worker panics").take());
        let out = if opts.stop_early && cancel.load(Ordering::Relaxed) {
            // The verdict is already known: no search (nor compiling) for this one.
            PartOutcome::Done(PartitionResult {
                key,
                ops: prep.map_or(0, |prep| prep.pruned.len()),
                verdict: Verdict::Unknown,
                gave_up: Some(NOT_SEARCHED.into()),
                elapsed_ms: 0.0,
                steps: 0,
                memo_entries: 0,
                search_bytes: 0,
                deepest: 0,
                method: crate::fast::Method::Search,
                cuts: Default::default(),
            })
        } else {
            let start = Instant::now();
            let prep = prep.map(Ok).unwrap_or_else(|| {
                prepare(model, opts.model, ops, &p.members[part], key.as_deref())
            });
            match prep {
                Ok(prep) => check_partition(model, ops, prep, key, limits, opts, memo, start, race),
                Err(m) => PartOutcome::BadInput(m),
            }
        };
        if opts.stop_early && matches!(out, PartOutcome::Failed(..) | PartOutcome::BadInput(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
        results.lock().expect("no worker panics").push((part, out));
    };
    // Every worker runs the phases in turn, taking items as it frees up; a barrier ends
    // each phase (one pool of threads for the whole check: spawning threads again per
    // phase costs a scheduling delay each time on a busy machine).
    let work = || {
        let mut memo = MemoBuf::default();
        if screens {
            loop {
                let i = next[0].fetch_add(1, Ordering::Relaxed);
                let Some(&part) = order.get(i) else { break };
                prepare_one(part);
            }
            if barrier.wait().is_leader() {
                stages.get_or_init(plan);
            }
            barrier.wait();
        }
        let stages = stages.get().expect("the plan is made before any search");
        for (k, stage) in stages.iter().enumerate() {
            loop {
                let i = next[1 + k].fetch_add(1, Ordering::Relaxed);
                let Some(&part) = stage.get(i) else { break };
                search_one(part, &mut memo);
            }
            if k + 1 < stages.len() {
                barrier.wait();
            }
        }
        memo.release();
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let mut results = results.into_inner().expect("no worker panics");
    results.sort_by_key(|(part, _)| *part);
    let mut partitions = Vec::with_capacity(results.len());
    let mut explanation: Option<(u64, Explanation)> = None;
    let mut bad_input = None;
    for (_, out) in results {
        match out {
            PartOutcome::Done(r) => partitions.push(r),
            PartOutcome::Failed(r, e) => {
                // Report the violation that starts earliest in the history.
                let first = e.partition_ops.first().map_or(0, |o| o.invoke_index);
                if explanation.as_ref().is_none_or(|(f, _)| first < *f) {
                    explanation = Some((first, *e));
                }
                partitions.push(r);
            }
            PartOutcome::BadInput(m) => {
                bad_input.get_or_insert(m);
            }
        }
    }
    if let Some(m) = bad_input {
        // Keys and values from the history are quoted in it: keep the error one line.
        return Err(CheckError(m.replace('\n', "\\n").replace('\r', "\\r")));
    }
    let verdict = if explanation.is_some() {
        Verdict::NotLinearizable
    } else if partitions.iter().any(|r| r.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Ok(CheckResult {
        verdict,
        model: opts.model.id(),
        partitions,
        explanation: explanation.map(|(_, e)| e),
        ops: ops.len(),
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// Memory of the process kept out of the searches' budget (compiling, explaining, the
/// result), bytes.
const RESERVE: usize = 24 << 20;

/// The process's resident memory (Linux `/proc/self/statm`), bytes; `None` elsewhere.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use crate::{CheckOptions, ModelKind, check_history};

    /// Found by fuzzing (stasis-fuzz target `porcupine-kv-edn`): a key with a newline,
    /// quoted in a bad-input error, split the one-line error.
    #[test]
    fn bad_input_errors_are_one_line() {
        let ops = crate::format::edn::read_history(
            "{:process 0, :type :invoke, :f :append, :key \"a\\nb\", :value \"x\"}\n\
             {:process 0, :type :ok, :f :append, :key \"a\\nb\", :value \"x\"}",
        )
        .unwrap();
        let mut opts = CheckOptions::new(ModelKind::CasRegister);
        opts.by_key = Some(true);
        let e = check_history(&ops, &opts).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e:?}");
        assert!(e.contains("no operation"), "{e}");
    }
}
