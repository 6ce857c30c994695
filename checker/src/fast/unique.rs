//! Read/write registers whose written values are unique: Gibbons and Korach's zones
//! ("Testing shared memories", SIAM J. Comput. 1997). When every value is written at
//! most once, each read's write is known, and linearizability is decided in
//! O(n log n) however many writes crashed.
//!
//! Preconditions ([`decide`] answers `None` otherwise): only reads and writes; no value is
//! written twice (counting writes of every outcome) and none writes the initial value.
//!
//! Crashed writes (unknown outcome). One whose value no read returns is dropped: in a
//! linearization that includes it, the next operation is a write or nothing (a read would
//! return its value), so removing it leaves a linearization, and it may never happen. One
//! whose value is read gets, as its return time, the earliest return of those reads: every
//! linearization puts it before all its reads (it is the value's only source), so before
//! that return, and a linearization of the narrowed history is one of the original.
//!
//! Clusters and zones. The cluster of value `v` is its write and the reads returning it
//! (the initial value's write is a virtual one before everything). Let `F` be the earliest
//! return and `L` the latest invocation in the cluster. In every linearization the whole
//! cluster is contiguous with respect to writes (no other write between `v`'s write and
//! its last read), and it covers `[F, L]` when `F < L` (a *forward* zone: the write is at or
//! before `F`, some read at or after `L`); when `L <= F` it may sit at any single instant of
//! `[L, F]` (a *backward* zone). The history is linearizable iff (a) no read returns before
//! its write is invoked, (b) no two forward zones overlap, and (c) no backward zone lies
//! inside a forward zone (Gibbons–Korach, Theorem 4.2); comparisons are strict because
//! operations at equal times are concurrent.

use super::{RegOp, RegView};

/// A decision, when the preconditions hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Linearizable,
    /// `blocked` (a read) can never be linearized: (a) its value's write was invoked after
    /// it returned (`with: None`) or nothing writes it, or (b)/(c) the cluster of its
    /// value must span a time in which the cluster of value `with` must take place.
    Violation {
        blocked: usize,
        with: Option<u32>,
    },
}

/// Time with a virtual "before everything" (the initial value's write).
type T = i128;

struct Cluster {
    write: Option<usize>,
    /// Earliest return, and latest invocation with the op attaining it.
    f: T,
    l: T,
    l_op: Option<usize>,
}

/// Gibbons–Korach; `None` when the preconditions do not hold.
pub fn decide(ops: &[RegOp], init: u32) -> Option<Decision> {
    let mut clusters: rustc_hash::FxHashMap<u32, Cluster> = Default::default();
    clusters.insert(
        init,
        Cluster {
            write: None,
            f: -1,
            l: -1,
            l_op: None,
        },
    );
    for (i, o) in ops.iter().enumerate() {
        match o.op {
            RegView::Write(v) => {
                if v == init || clusters.get(&v).is_some_and(|c| c.write.is_some()) {
                    return None;
                }
                let c = clusters.entry(v).or_insert(Cluster {
                    write: None,
                    f: T::MAX,
                    l: -1,
                    l_op: None,
                });
                c.write = Some(i);
            }
            RegView::Read(_) => {}
            RegView::Cas(..) | RegView::NotEq(_) => return None,
        }
    }
    let mut reads_of: rustc_hash::FxHashMap<u32, (T, T, usize, usize)> = Default::default();
    for (i, o) in ops.iter().enumerate() {
        let (RegView::Read(v), Some(r)) = (o.op, o.ret) else {
            continue;
        };
        let Some(c) = clusters.get(&v) else {
            // Nothing writes it (and it is not the initial value).
            return Some(Decision::Violation {
                blocked: i,
                with: None,
            });
        };
        if let Some(w) = c.write
            && r < ops[w].call
        {
            return Some(Decision::Violation {
                blocked: i,
                with: None,
            });
        }
        let e = reads_of
            .entry(v)
            .or_insert((T::MAX, -1, usize::MAX, usize::MAX));
        if T::from(r) < e.0 {
            e.0 = T::from(r);
            e.2 = i;
        }
        if T::from(o.call) > e.1 {
            e.1 = T::from(o.call);
            e.3 = i;
        }
    }
    let mut forward: Vec<(T, T, u32, usize)> = Vec::new();
    let mut backward: Vec<(T, T)> = Vec::new();
    for (&v, c) in &mut clusters {
        let reads = reads_of.get(&v);
        if let Some(w) = c.write {
            let o = &ops[w];
            let ret = match (o.ret, reads) {
                (Some(r), _) => T::from(r),
                (None, Some(rd)) => rd.0,
                // A crashed write nobody reads: dropped.
                (None, None) => continue,
            };
            c.f = ret;
            c.l = T::from(o.call);
            c.l_op = Some(w);
        }
        if let Some(&(f, l, _, l_op)) = reads {
            c.f = c.f.min(f);
            if l > c.l {
                c.l = l;
                c.l_op = Some(l_op);
            }
        }
        if c.f < c.l {
            let l_op = c.l_op.expect("a zone's latest invocation is an operation");
            forward.push((c.f, c.l, v, l_op));
        } else if c.write.is_some() {
            backward.push((c.l, c.f));
        }
    }
    forward.sort_unstable();
    // (b): sorted by start, a forward zone overlaps an earlier one iff it starts before
    // the latest end so far.
    let mut reach: Option<(T, u32)> = None;
    for &(f, l, v, l_op) in &forward {
        if let Some((end, u)) = reach
            && f < end
        {
            return Some(Decision::Violation {
                blocked: l_op,
                with: Some(u),
            });
        }
        if reach.is_none_or(|(end, _)| l > end) {
            reach = Some((l, v));
        }
    }
    // (c): forward zones are now disjoint and sorted; the one starting last before a
    // backward zone starts is the only one that can contain it.
    for &(bl, bf) in &backward {
        let k = forward.partition_point(|z| z.0 < bl);
        if k > 0 {
            let (_, l, _, l_op) = forward[k - 1];
            if bf < l {
                let with = clusters
                    .iter()
                    .find(|(_, c)| c.write.is_some() && c.l == bl && c.f == bf)
                    .map(|(&v, _)| v);
                return Some(Decision::Violation {
                    blocked: l_op,
                    with,
                });
            }
        }
    }
    Some(Decision::Linearizable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SearchOp;
    use crate::model::porcupine_etcd::{EtcdOp, PorcupineEtcd};
    use crate::search::{Limits, SearchOutcome, search};
    use rand::{RngExt, SeedableRng};

    const NIL: u32 = 0;

    fn op(call: u64, ret: Option<u64>, op: RegView) -> RegOp {
        RegOp { call, ret, op }
    }

    #[test]
    fn zones() {
        use RegView::*;
        // w1 [0,2], w2 [3,5], r1 [6,7]: cluster 1 spans [2,6] forward, w2 inside.
        let ops = [
            op(0, Some(2), Write(1)),
            op(3, Some(5), Write(2)),
            op(6, Some(7), Read(1)),
        ];
        assert!(matches!(
            decide(&ops, NIL),
            Some(Decision::Violation { blocked: 2, .. })
        ));
        // With w2 concurrent with the read, fine.
        let mut ok = ops;
        ok[1].ret = Some(6);
        assert_eq!(decide(&ok, NIL), Some(Decision::Linearizable));
        // A crashed write read later, a crashed write nobody reads, a cas: no decision.
        let ops = [
            op(0, None, Write(1)),
            op(1, None, Write(2)),
            op(5, Some(6), Read(1)),
        ];
        assert_eq!(decide(&ops, NIL), Some(Decision::Linearizable));
        assert_eq!(decide(&[op(0, Some(1), Cas(0, 1))], NIL), None);
        assert_eq!(
            decide(&[op(0, Some(1), Write(1)), op(2, None, Write(1))], NIL),
            None
        );
    }

    /// Differential test against the general search on random unique-value histories.
    #[test]
    fn agrees_with_the_search() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2525);
        let (mut decided, mut violations) = (0, 0);
        for case in 0..20_000 {
            let n = rng.random_range(1..=9);
            let mut next_value = 1;
            let ops: Vec<RegOp> = (0..n)
                .map(|_| {
                    let call = rng.random_range(0..30u64);
                    if rng.random_bool(0.45) {
                        let ret = (!rng.random_bool(0.3)).then(|| call + rng.random_range(0..12));
                        next_value += 1;
                        op(call, ret, RegView::Write(next_value - 1))
                    } else {
                        let v = rng.random_range(0..next_value + 1);
                        op(call, Some(call + rng.random_range(0..12)), RegView::Read(v))
                    }
                })
                .collect();
            let sops: Vec<SearchOp<EtcdOp>> = ops
                .iter()
                .map(|o| SearchOp {
                    call: o.call,
                    ret: o.ret,
                    input: match o.op {
                        RegView::Read(v) => EtcdOp::Read(v),
                        RegView::Write(v) => EtcdOp::Write(v),
                        _ => unreachable!("only reads and writes are generated"),
                    },
                })
                .collect();
            let out = search(&PorcupineEtcd, NIL, &sops, Limits::default(), None).0;
            let d = decide(&ops, NIL).expect("preconditions hold");
            decided += 1;
            match (d, out) {
                (Decision::Linearizable, SearchOutcome::Linearizable) => {}
                (Decision::Violation { blocked, .. }, SearchOutcome::NotLinearizable(_)) => {
                    violations += 1;
                    assert!(matches!(ops[blocked].op, RegView::Read(_)), "case {case}");
                }
                (d, o) => panic!("case {case}: zones say {d:?}, search {o:?}: {ops:?}"),
            }
        }
        assert!(violations > decided / 10, "{violations} of {decided}");
    }
}
