//! The explanation of a violation: the longest linearizable prefix, the operation that
//! could not be linearized and the states it could have taken effect in.

use super::partition::view;
use super::{CheckOptions, Explanation, PrefixStep};
use crate::history::{Operation, Outcome};
use crate::model::{Interner, Model, SearchOp, join_or};

#[allow(clippy::too_many_arguments)]
pub(super) fn explain<M: Model>(
    model: &M,
    ops: &[Operation],
    sops: &[SearchOp<M::Input>],
    origin: &[u32],
    cx: &Interner,
    init: M::State,
    failure: &crate::search::Failure,
    watched: &[M::State],
    key: Option<String>,
    opts: &CheckOptions,
) -> Explanation {
    let orig = |i: u32| &ops[origin[i as usize] as usize];
    let mut state = init.clone();
    let mut prefix = Vec::with_capacity(failure.prefix.len());
    for &(i, alt) in &failure.prefix {
        if let Some(s) = model.step_alt(&state, &sops[i as usize].input, alt) {
            state = s;
        }
        prefix.push(PrefixStep {
            op: view(model, orig(i), Some(&sops[i as usize].input), cx),
            state_after: model.show_state(&state, cx),
        });
    }
    let b = failure.blocked;
    let bop = orig(b);
    let blocked = view(model, bop, Some(&sops[b as usize].input), cx);
    let previous_ok = members_before(ops, origin, bop.call)
        .map(|i| view(model, orig(i), Some(&sops[i as usize].input), cx));
    let possible: Vec<String> = watched.iter().map(|s| model.show_state(s, cx)).collect();
    let part_key = key
        .as_deref()
        .filter(|_| opts.by_key.unwrap_or(opts.model.default_by_key()));
    let what = model.describe(&sops[b as usize].input, cx, part_key);
    let when = match bop.ret {
        Some(r) if bop.outcome != Outcome::Unknown => {
            format!("at {}", opts.time_unit.show(r))
        }
        _ => format!(
            "(invoked at {}, never returned)",
            opts.time_unit.show(bop.call)
        ),
    };
    // States in which the operation's observation is possible, and the others.
    let input = &sops[b as usize].input;
    let (fits, rejects): (Vec<&M::State>, Vec<&M::State>) =
        watched.iter().partition(|s| model.step(s, input).is_some());
    let show =
        |v: &[&M::State]| -> Vec<String> { v.iter().map(|s| model.show_state(s, cx)).collect() };
    let sentence = if watched.is_empty() {
        format!(
            "{what} {when} (process {}), but no order of the operations consistent with real \
             time reaches it before it returned",
            bop.process
        )
    } else if fits.is_empty() {
        format!(
            "{what} {when} (process {}), but in every order of the operations consistent \
             with real time, {} could only be {} when it took effect",
            bop.process,
            model.state_noun(),
            join_or(&show(&rejects))
        )
    } else {
        format!(
            "{what} {when} (process {}); it fits only when {} is {}, and no order of the \
             operations consistent with real time that puts it there can be completed{}",
            bop.process,
            model.state_noun(),
            join_or(&show(&fits)),
            if rejects.is_empty() {
                String::new()
            } else {
                format!(
                    " (otherwise {} could only be {})",
                    model.state_noun(),
                    join_or(&show(&rejects))
                )
            }
        )
    };
    let partition_ops = (0..sops.len() as u32)
        .map(|i| view(model, orig(i), Some(&sops[i as usize].input), cx))
        .collect();
    Explanation {
        key,
        model: opts.model.id(),
        time_unit: opts.time_unit,
        initial_state: model.show_state(&init, cx),
        blocked,
        prefix,
        previous_ok,
        possible_states: possible,
        sentence,
        partition_ops,
    }
}

/// The sentence of a violation a rule of [`crate::fast`] found. `b`: the blocked op (index
/// into `sops`); `at` maps the rule's indices (into the pruned ops) to `sops`.
#[allow(clippy::too_many_arguments)]
pub(super) fn fast_sentence<M: Model>(
    model: &M,
    ops: &[Operation],
    sops: &[SearchOp<M::Input>],
    origin: &[u32],
    cx: &Interner,
    opts: &CheckOptions,
    b: usize,
    why: crate::fast::Why,
    at: impl Fn(usize) -> usize,
) -> String {
    use crate::fast::Why;
    use crate::fast::refute::Reason;
    let t = |x: u64| opts.time_unit.show(x);
    let who = |i: usize| {
        let op = &ops[origin[i] as usize];
        let span = match (op.outcome, op.ret) {
            (Outcome::Unknown, _) | (_, None) => {
                format!("invoked at {}, never returned", t(op.call))
            }
            (_, Some(r)) => format!("{} to {}", t(op.call), t(r)),
        };
        format!(
            "{} (process {}, {span})",
            model.describe(&sops[i].input, cx, None),
            op.process
        )
    };
    let value = |v: u32| cx.show(v);
    let what = who(b);
    match why {
        Why::Refuted(Reason::NoWriter { value: v }) => format!(
            "{what} observed {}, a value no operation writes and not the initial value",
            value(v)
        ),
        Why::Refuted(Reason::Overwritten {
            value: v,
            writer,
            by,
        }) => {
            let source = match writer {
                Some(w) => format!("its only write, {},", who(at(w))),
                None => "the initial value, which nothing writes again,".into(),
            };
            format!(
                "{what} observed {}, but {source} was followed by {}, which set another \
                 value, before it was invoked",
                value(v),
                who(at(by))
            )
        }
        Why::Zones(with) => format!(
            "{what}: every value is written once, and the write and reads of its value must \
             span a time in which {} must be the value (Gibbons-Korach zones)",
            with.map_or_else(|| "another value".into(), value)
        ),
    }
}

/// The compiled op whose `ok` completion is the last one before `t`.
fn members_before(ops: &[Operation], origin: &[u32], t: u64) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    for (i, &o) in origin.iter().enumerate() {
        let op = &ops[o as usize];
        if op.outcome != Outcome::Ok {
            continue;
        }
        if let Some(r) = op.ret
            && r < t
            && best.is_none_or(|(br, _)| r >= br)
        {
            best = Some((r, i as u32));
        }
    }
    best.map(|(_, i)| i)
}
