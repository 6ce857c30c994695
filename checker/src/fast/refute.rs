//! Refutations: polynomial necessary conditions for a register history. When one fails the
//! history has no linearization, whatever the operations left open by crashes do; the
//! check then needs no search, however many such operations there are.
//!
//! Soundness. In any linearization the register holds, at every point, either its
//! initial value (if nothing that sets a value was linearized yet) or the value set by
//! the last linearized operation that sets one ([`RegView::writes`]). An operation with a
//! known outcome ("required") is in every linearization, at a point inside its interval;
//! an operation with an unknown outcome may be absent, and is never required here.
//!
//! 1. *No writer.* A required operation observes `v` ([`RegView::observes`]); `v` is not
//!    the initial value and no operation at all (any outcome) sets `v`. The register can
//!    never hold `v`, so that operation can never be linearized.
//! 2. *Overwritten unique value.* A required operation `r` observes `v`, and `v` has one
//!    source: either `v` is the initial value and nothing sets it, or `v` is not the initial
//!    value and exactly one operation `w` sets it, `w` with a known return time. A required
//!    operation `x` that sets a value (necessarily not `v`, as `w` is the only one that
//!    does) returned before `r` was invoked and, in the second case, was invoked after `w`
//!    returned. Then `x` precedes `r` and follows the only source of `v` in every
//!    linearization, so when `r` takes effect the last value set is not `v`, and no later
//!    operation can set `v` again: `r` can never be linearized.
//!
//! Time order is strict: operations whose times are equal are concurrent (the search
//! orders a call before a return at the same instant).

use super::RegOp;
#[cfg(doc)]
use super::RegView;

/// Why a partition is refuted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1: nothing writes the observed value.
    NoWriter { value: u32 },
    /// Rule 2: the only source of the value (`writer`, `None` for the initial value) was
    /// followed by `by`, which set another value, before the observer was invoked.
    Overwritten {
        value: u32,
        writer: Option<usize>,
        by: usize,
    },
}

/// A refutation: the operation that can never be linearized (index into the ops), and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refutation {
    pub blocked: usize,
    pub reason: Reason,
}

/// The refutation whose blocked operation returns earliest, if any rule applies.
/// O(n log n).
pub fn refute(ops: &[RegOp], init: u32) -> Option<Refutation> {
    // Writers of each value: count and (for a single one) which.
    let mut writers: rustc_hash::FxHashMap<u32, (u32, usize)> = Default::default();
    for (i, o) in ops.iter().enumerate() {
        if let Some(v) = o.op.writes() {
            let e = writers.entry(v).or_insert((0, i));
            e.0 += 1;
        }
    }
    // Required setters sorted by call, with the suffix minimum of their return times
    // (and which op attains it).
    let mut setters: Vec<(u64, u64, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match (o.ret, o.op.writes()) {
            (Some(r), Some(_)) => Some((o.call, r, i)),
            _ => None,
        })
        .collect();
    setters.sort_unstable();
    let mut suffix_min: Vec<(u64, usize)> = vec![(u64::MAX, usize::MAX); setters.len() + 1];
    for k in (0..setters.len()).rev() {
        let (_, r, i) = setters[k];
        suffix_min[k] = if r < suffix_min[k + 1].0 {
            (r, i)
        } else {
            suffix_min[k + 1]
        };
    }
    // The required setter invoked strictly after `t` (all of them for `None`) that
    // returns first.
    let first_after = |t: Option<u64>| -> (u64, usize) {
        let k = match t {
            None => 0,
            Some(t) => setters.partition_point(|&(c, _, _)| c <= t),
        };
        suffix_min[k]
    };
    let mut best: Option<(u64, Refutation)> = None;
    for (i, o) in ops.iter().enumerate() {
        let (Some(ret), Some(v)) = (o.ret, o.op.observes()) else {
            continue;
        };
        let found = match writers.get(&v) {
            None if v != init => Some(Reason::NoWriter { value: v }),
            None => {
                let (r, x) = first_after(None);
                (r < o.call).then_some(Reason::Overwritten {
                    value: v,
                    writer: None,
                    by: x,
                })
            }
            Some(&(1, w)) if v != init && w != i => match ops[w].ret {
                Some(wr) => {
                    let (r, x) = first_after(Some(wr));
                    (r < o.call).then_some(Reason::Overwritten {
                        value: v,
                        writer: Some(w),
                        by: x,
                    })
                }
                None => None,
            },
            _ => None,
        };
        if let Some(reason) = found
            && best.as_ref().is_none_or(|(t, _)| ret < *t)
        {
            best = Some((ret, Refutation { blocked: i, reason }));
        }
    }
    best.map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::RegView;
    use crate::model::SearchOp;
    use crate::model::porcupine_etcd::{EtcdOp, PorcupineEtcd};
    use crate::search::{Limits, SearchOutcome, search};
    use rand::{RngExt, SeedableRng};

    const NIL: u32 = 0;

    /// Whether `o` is a required operation that observes something.
    fn required_observer(o: &RegOp) -> bool {
        o.ret.is_some() && matches!(o.op, RegView::Read(_) | RegView::Cas(..))
    }

    fn op(call: u64, ret: Option<u64>, op: RegView) -> RegOp {
        RegOp { call, ret, op }
    }

    fn to_search(ops: &[RegOp]) -> Vec<SearchOp<EtcdOp>> {
        ops.iter()
            .map(|o| SearchOp {
                call: o.call,
                ret: o.ret,
                input: match o.op {
                    RegView::Read(v) => EtcdOp::Read(v),
                    RegView::Write(v) => EtcdOp::Write(v),
                    RegView::Cas(a, b) => EtcdOp::Cas(a, b),
                    RegView::NotEq(a) => EtcdOp::CasFailed(a, a),
                },
            })
            .collect()
    }

    #[test]
    fn phantom_and_stale_reads() {
        use RegView::*;
        // A read of 9, which nothing writes.
        let ops = [op(0, Some(5), Write(1)), op(6, Some(7), Read(9))];
        assert_eq!(
            refute(&ops, NIL),
            Some(Refutation {
                blocked: 1,
                reason: Reason::NoWriter { value: 9 }
            })
        );
        // write 1; then write 2; then a read of 1: stale.
        let ops = [
            op(0, Some(5), Write(1)),
            op(6, Some(8), Write(2)),
            op(9, Some(10), Read(1)),
        ];
        assert_eq!(
            refute(&ops, NIL),
            Some(Refutation {
                blocked: 2,
                reason: Reason::Overwritten {
                    value: 1,
                    writer: Some(0),
                    by: 1
                }
            })
        );
        // The same with write 2 concurrent with the read (equal times are concurrent),
        // or a second source of 1 (a crashed write), is not refuted.
        let mut conc = ops;
        conc[1].ret = Some(9);
        assert_eq!(refute(&conc, NIL), None);
        let mut two = ops.to_vec();
        two.push(op(7, None, Write(1)));
        assert_eq!(refute(&two, NIL), None);
        // A read of the initial value after a write: stale; a crashed setter never counts.
        let ops = [op(0, Some(5), Cas(0, 3)), op(6, Some(7), Read(NIL))];
        assert!(matches!(
            refute(&ops, NIL),
            Some(Refutation {
                blocked: 1,
                reason: Reason::Overwritten { writer: None, .. }
            })
        ));
        let ops = [op(0, None, Write(3)), op(6, Some(7), Read(NIL))];
        assert_eq!(refute(&ops, NIL), None);
    }

    /// Every refutation of a random history is confirmed by the general search, and the
    /// blocked operation is a required observer.
    #[test]
    fn refutations_agree_with_the_search() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
        let (mut refuted, mut failing) = (0, 0);
        for case in 0..20_000 {
            let n = rng.random_range(1..=8);
            let vals = rng.random_range(1..=4u32);
            let ops: Vec<RegOp> = (0..n)
                .map(|_| {
                    let call = rng.random_range(0..30u64);
                    let ret = (!rng.random_bool(0.2)).then(|| call + rng.random_range(0..15));
                    let v = rng.random_range(0..vals);
                    let view = match rng.random_range(0..4) {
                        0 => RegView::Read(v),
                        1 => RegView::Write(v),
                        2 => RegView::Cas(v, rng.random_range(0..vals)),
                        _ => RegView::NotEq(v),
                    };
                    op(call, ret, view)
                })
                .collect();
            let out = search(
                &PorcupineEtcd,
                NIL,
                &to_search(&ops),
                Limits::default(),
                None,
            )
            .0;
            let fails = matches!(out, SearchOutcome::NotLinearizable(_));
            failing += usize::from(fails);
            if let Some(r) = refute(&ops, NIL) {
                refuted += 1;
                assert!(
                    fails,
                    "case {case}: refuted {r:?} but linearizable: {ops:?}"
                );
                assert!(required_observer(&ops[r.blocked]), "case {case}");
            }
        }
        // The rules must actually fire on a good share of the failing histories.
        assert!(
            refuted * 4 > failing,
            "{refuted} refuted of {failing} failing"
        );
    }
}
