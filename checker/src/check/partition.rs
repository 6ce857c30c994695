//! One partition: compiling its operations for the model, pruning, screening with the
//! fast rules, and the search (in both candidate orders at once when a core is free).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::explain::{explain, fast_sentence};
use super::pool::PartOutcome;
use super::{CheckOptions, OpView, PartitionResult, Verdict, droppable};
use crate::history::{Operation, Outcome};
use crate::model::{Interner, Model, ModelKind, SearchOp};
use crate::search::{GaveUp, Limits, MemoBuf, SearchOutcome, search_in, search_noting};

/// Compiles a partition: the search ops and, for each, the index of its `Operation`.
#[allow(clippy::type_complexity)]
pub(crate) fn compile<M: Model>(
    model: &M,
    kind: ModelKind,
    ops: &[Operation],
    members: &[u32],
) -> Result<(Vec<SearchOp<M::Input>>, Vec<u32>, Interner), String> {
    let mut cx = Interner::new();
    let mut sops = Vec::with_capacity(members.len());
    let mut origin = Vec::with_capacity(members.len());
    for &i in members {
        let op = &ops[i as usize];
        if droppable(kind, op) {
            continue;
        }
        let compiled = model.compile(op, &mut cx).map_err(|e| {
            format!(
                "operation at index {} (process {}, {}): {e}",
                op.invoke_index, op.process, op.f
            )
        })?;
        if let Some(input) = compiled {
            sops.push(SearchOp {
                call: op.call,
                ret: match op.outcome {
                    Outcome::Unknown => None,
                    _ => Some(op.ret.unwrap_or(op.call)),
                },
                input,
            });
            origin.push(i);
        }
    }
    Ok((sops, origin, cx))
}

/// Sound per-model pruning of unknown operations (see each model's `prune_unknown`):
/// the operations to search, and for each its index in `sops`.
fn prune<M: Model>(model: &M, sops: &[SearchOp<M::Input>]) -> (Vec<SearchOp<M::Input>>, Vec<u32>) {
    let inputs: Vec<M::Input> = sops.iter().map(|o| o.input.clone()).collect();
    let unknown: Vec<bool> = sops.iter().map(|o| o.ret.is_none()).collect();
    let drop = model.prune_unknown(&inputs, &unknown);
    let keep: Vec<u32> = (0..sops.len() as u32)
        .filter(|&i| !drop[i as usize])
        .collect();
    (
        keep.iter().map(|&i| sops[i as usize].clone()).collect(),
        keep,
    )
}

pub(super) fn view<M: Model>(
    model: &M,
    op: &Operation,
    input: Option<&M::Input>,
    cx: &Interner,
) -> OpView {
    OpView {
        process: op.process,
        f: op.f.to_string(),
        description: match input {
            Some(i) => model.show_input(i, cx),
            None => format!("{} {}", op.f, crate::model::show_value(&op.input)),
        },
        outcome: match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "info",
        },
        call: op.call,
        ret: op.ret,
        invoke_index: op.invoke_index,
        complete_index: op.complete_index,
    }
}

/// A partition compiled for the search.
pub(super) struct Prepared<M: Model> {
    /// The partition's own model instance (see [`Model::for_partition`]).
    local: Option<M>,
    sops: Vec<SearchOp<M::Input>>,
    origin: Vec<u32>,
    cx: Interner,
    init: M::State,
    /// `sops` after [`prune`], and for each its index in `sops`.
    pub(super) pruned: Vec<SearchOp<M::Input>>,
    kept: Vec<u32>,
    /// When the model's screen ([`Model::refutes`]) proved the partition not
    /// linearizable: how many operations were invoked before the refutation's time (the
    /// search never gets past it, so fewer usually means a shorter search).
    pub(super) refuted: Option<usize>,
    /// Time spent compiling and screening.
    prepare_ms: f64,
}

/// Compiles, prunes and (for models that screen) screens one partition; `Err` is a
/// one-line message about an operation the model cannot read.
pub(super) fn prepare<M: Model>(
    model: &M,
    kind: ModelKind,
    ops: &[Operation],
    members: &[u32],
    key: Option<&str>,
) -> Result<Prepared<M>, String> {
    let start = Instant::now();
    let local = model.for_partition();
    let m = local.as_ref().unwrap_or(model);
    let (sops, origin, mut cx) = compile(m, kind, ops, members).map_err(|e| {
        let k = key.map(|k| format!("key {k}: ")).unwrap_or_default();
        format!("{k}{e}")
    })?;
    let init = m.init(&mut cx);
    let (pruned, kept) = prune(m, &sops);
    let refuted = if m.screens() {
        m.refutes(&pruned)
            .map(|t| pruned.iter().filter(|o| o.call <= t).count())
    } else {
        None
    };
    Ok(Prepared {
        local,
        sops,
        origin,
        cx,
        init,
        pruned,
        kept,
        refuted,
        prepare_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// Searches a partition with crashed ops twice at once, in both candidate orders
/// ([`Limits::unknown_first`]), each with half the memory; the first decision stops the
/// other. Both searches are complete, so either decision is the verdict; neither
/// deciding gives the first one's reason. Only used for a check of a single partition,
/// so no other partition's failure needs to cancel it.
fn race_orders<M: Model>(
    model: &M,
    init: &M::State,
    ops: &[SearchOp<M::Input>],
    limits: Limits<'_>,
    memo: &mut MemoBuf<M::State>,
) -> (SearchOutcome, crate::search::SearchStats) {
    let decided = |o: &SearchOutcome| !matches!(o, SearchOutcome::Unknown(_));
    let done = AtomicBool::new(false);
    let half = Limits {
        max_memo_bytes: limits.max_memo_bytes / 2,
        cancel: Some(&done),
        ..limits
    };
    let init2 = init.clone();
    std::thread::scope(|sc| {
        let other = sc.spawn(|| {
            let mut buf = MemoBuf::default();
            let lim = Limits {
                unknown_first: true,
                ..half
            };
            let (o, s, _) = search_in(model, init2, ops, lim, None, &mut buf);
            if decided(&o) {
                done.store(true, Ordering::Relaxed);
            }
            drop(buf);
            (o, s)
        });
        let (o, s, _) = search_in(model, init.clone(), ops, half, None, memo);
        if decided(&o) {
            done.store(true, Ordering::Relaxed);
        }
        let theirs = other.join().expect("no search panics");
        if decided(&o) || !decided(&theirs.0) {
            (o, s)
        } else {
            theirs
        }
    })
}

/// When a rule of [`crate::fast`] found a violation: the time and memory the search may
/// spend to explain it (longest prefix, possible states) before the rule's sentence does.
const EXPLAIN_BUDGET: Duration = Duration::from_millis(250);
const EXPLAIN_MEMORY: usize = 128 << 20;

#[allow(clippy::too_many_arguments)]
pub(super) fn check_partition<M: Model>(
    model: &M,
    ops: &[Operation],
    prep: Prepared<M>,
    key: Option<String>,
    limits: Limits<'_>,
    opts: &CheckOptions,
    memo: &mut MemoBuf<M::State>,
    start: Instant,
    race: bool,
) -> PartOutcome {
    let Prepared {
        local,
        sops,
        origin,
        cx,
        init,
        pruned,
        kept,
        prepare_ms,
        refuted,
    } = prep;
    let model = local.as_ref().unwrap_or(model);
    let elapsed = || prepare_ms + start.elapsed().as_secs_f64() * 1e3;
    // The rules of `crate::fast` first. A linearizable decision ends here. A violation
    // is certain, but the explanation (longest prefix, possible states) comes from the
    // search when it gets there quickly: it runs on a small budget, and if that runs out
    // the rule's own sentence explains.
    let fast = crate::fast::decide(model, &init, &pruned);
    let method = fast.map_or(crate::fast::Method::Search, |d| d.method);
    if let Some(d) = fast
        && d.violation.is_none()
    {
        return PartOutcome::Done(PartitionResult {
            key,
            ops: pruned.len(),
            verdict: Verdict::Linearizable,
            gave_up: None,
            elapsed_ms: elapsed(),
            steps: 0,
            memo_entries: 0,
            search_bytes: 0,
            deepest: 0,
            method,
            cuts: Default::default(),
        });
    }
    let rule_violation = fast.and_then(|d| d.violation);
    let limits = match rule_violation {
        None => limits,
        Some(_) => {
            let soon = Instant::now() + EXPLAIN_BUDGET;
            Limits {
                deadline: Some(limits.deadline.map_or(soon, |d| d.min(soon))),
                max_memo_bytes: limits.max_memo_bytes.min(EXPLAIN_MEMORY),
                cancel: None,
                unknown_first: false,
            }
        }
    };
    // A refuted partition is sure to fail: note what the search meets so that the
    // explanation may not need a second pass (see `search_noting`). The noted states are
    // those of the second pass only when both search the same operations.
    let noting = (refuted.is_some() || rule_violation.is_some()) && pruned.len() == sops.len();
    let (outcome, stats, met) = if noting {
        let (o, s, met) = search_noting(model, init.clone(), &pruned, limits, memo);
        (o, s, Some(met))
    } else if race && pruned.iter().any(|o| o.ret.is_none()) {
        let (o, s) = race_orders(model, &init, &pruned, limits, memo);
        (o, s, None)
    } else {
        let (o, s, _) = search_in(model, init.clone(), &pruned, limits, None, memo);
        (o, s, None)
    };
    let mut result = PartitionResult {
        key: key.clone(),
        ops: pruned.len(),
        verdict: Verdict::Linearizable,
        gave_up: None,
        elapsed_ms: 0.0,
        steps: stats.steps,
        memo_entries: stats.memo_entries,
        search_bytes: stats.bytes,
        deepest: stats.deepest,
        method,
        cuts: stats.cuts,
    };
    if let (Some((blocked, why)), SearchOutcome::Unknown(_) | SearchOutcome::Linearizable) =
        (rule_violation, &outcome)
    {
        // The rules are proven sound and tested against the search; a search that
        // finds a linearization here would be a bug in one of them.
        debug_assert!(
            !matches!(outcome, SearchOutcome::Linearizable),
            "a rule refuted a linearizable partition"
        );
        result.verdict = Verdict::NotLinearizable;
        let failure = crate::search::Failure {
            prefix: Vec::new(),
            blocked: kept[blocked],
        };
        let mut e = explain(
            model,
            ops,
            &sops,
            &origin,
            &cx,
            init,
            &failure,
            &[],
            key,
            opts,
        );
        let at = |i: usize| kept[i] as usize;
        e.sentence = fast_sentence(model, ops, &sops, &origin, &cx, opts, at(blocked), why, at);
        result.elapsed_ms = elapsed();
        return PartOutcome::Failed(result, Box::new(e));
    }
    let failure = match outcome {
        SearchOutcome::Linearizable => None,
        SearchOutcome::Unknown(g) => {
            result.verdict = Verdict::Unknown;
            let mib = |b: u64| b as f64 / f64::from(1 << 20);
            let progress = format!(
                "after {} steps, with at most {} of {} operations with known outcomes \
                 linearized at once; the search held {:.0} MiB",
                stats.steps,
                stats.deepest,
                pruned.iter().filter(|o| o.ret.is_some()).count(),
                mib(stats.bytes)
            );
            result.gave_up = Some(match g {
                GaveUp::Timeout => format!("time budget (--timeout) ran out {progress}"),
                GaveUp::Memory => format!(
                    "memory budget (--max-memory) ran out: this search's share was {:.0} MiB; \
                     {progress}",
                    mib(limits.max_memo_bytes as u64)
                ),
                GaveUp::Cancelled => "stopped: another key was already not linearizable".into(),
            });
            None
        }
        // Back to indices of the unpruned operations, which explanations show.
        SearchOutcome::NotLinearizable(f) => Some(crate::search::Failure {
            prefix: f
                .prefix
                .iter()
                .map(|&(i, a)| (kept[i as usize], a))
                .collect(),
            blocked: kept[f.blocked as usize],
        }),
    };
    let Some(failure) = failure else {
        result.elapsed_ms = elapsed();
        return PartOutcome::Done(result);
    };
    result.verdict = Verdict::NotLinearizable;
    // Which states could the blocked operation have met? What the search noted, if it
    // never linearized that operation; otherwise a second pass, without pruning, that
    // watches it.
    let noted = met.and_then(|mut m| {
        let b = failure.blocked as usize;
        (!m.lifted[b]).then(|| std::mem::take(&mut m.states[b]))
    });
    let watched = match noted {
        Some(w) => w,
        None => {
            search_in(
                model,
                init.clone(),
                &sops,
                Limits {
                    cancel: None,
                    ..limits
                },
                Some(failure.blocked),
                memo,
            )
            .2
        }
    };
    let e = explain(
        model, ops, &sops, &origin, &cx, init, &failure, &watched, key, opts,
    );
    result.elapsed_ms = elapsed();
    PartOutcome::Failed(result, Box::new(e))
}
