//! Polynomial decisions for single-register partitions, tried before the general search
//! ([`crate::search`]), whose cost grows with the operations left open by crashes.
//!
//! A model that is a register (`register`, `cas-register`, `kv` by key, `porcupine-etcd`)
//! shows each compiled input as a [`RegView`] ([`crate::model::Model::register_view`]);
//! the rules here see nothing else. Each rule decides only when its preconditions hold and
//! says nothing otherwise; the search then decides as before.
//!
//! * [`refute`]: necessary conditions whose failure proves a violation (a read of a value
//!   nothing writes; a read of a uniquely written value after a later write).
//! * [`unique`]: Gibbons and Korach's decision for read/write registers whose written
//!   values are unique, with crashed writes.

pub mod refute;
pub mod unique;

pub use crate::model::RegView;

/// One operation for the rules: call time, return time (`None`: unknown outcome, open
/// forever and optional), and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegOp {
    pub call: u64,
    pub ret: Option<u64>,
    pub op: RegView,
}

/// Which procedure decided a partition, for `--json` (`method` of each partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The general search (`search`).
    Search,
    /// A refutation rule (`fast::refute`).
    RegisterRefutation,
    /// Gibbons–Korach zones for unique written values (`fast::unique`).
    UniqueValues,
}

/// Why a rule found a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Refuted(refute::Reason),
    /// [`unique::Decision::Violation`]: the other value whose zone conflicts, if any.
    Zones(Option<u32>),
}

/// What a rule decided about a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decided {
    pub method: Method,
    /// `None`: linearizable. Else the operation (index into the ops) that can never be
    /// linearized, and why.
    pub violation: Option<(usize, Why)>,
}

/// Tries the rules on a partition's compiled operations: refutations first (they apply
/// with cas and repeated values), then the unique-values decision. `None`: the model is
/// not a register, or no rule applies; the general search decides.
pub fn decide<M: crate::model::Model>(
    model: &M,
    init: &M::State,
    ops: &[crate::model::SearchOp<M::Input>],
) -> Option<Decided> {
    let init = model.register_value(init)?;
    let views: Vec<RegOp> = ops
        .iter()
        .map(|o| {
            model.register_view(&o.input).map(|op| RegOp {
                call: o.call,
                ret: o.ret,
                op,
            })
        })
        .collect::<Option<_>>()?;
    if let Some(r) = refute::refute(&views, init) {
        return Some(Decided {
            method: Method::RegisterRefutation,
            violation: Some((r.blocked, Why::Refuted(r.reason))),
        });
    }
    let d = unique::decide(&views, init)?;
    Some(Decided {
        method: Method::UniqueValues,
        violation: match d {
            unique::Decision::Linearizable => None,
            unique::Decision::Violation { blocked, with } => Some((blocked, Why::Zones(with))),
        },
    })
}
