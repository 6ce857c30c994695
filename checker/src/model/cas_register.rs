//! `cas-register`: one register with read, write and compare-and-set. Initial value `nil`
//! unless configured. Also the per-key model of `kv` when it is partitioned by key.

use serde_json::Value;

use super::{Interner, Model, argument, expect_pair, observed, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct CasRegister {
    /// The initial value (`null` = nil).
    pub initial: Value,
    /// Accept only read and write (the plain `register` model).
    pub no_cas: bool,
    /// Knossos' convention for Jepsen histories: a read that returned nil observed
    /// nothing (it is dropped). Off for Stasis histories, where nil means "absent".
    pub nil_reads_observe_nothing: bool,
}

/// A compiled register operation. Values are interned ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// A read that returned the value.
    Read(u32),
    Write(u32),
    /// Compare-and-set that succeeded (or whose outcome is unknown).
    Cas(u32, u32),
}

impl CasRegister {
    pub(crate) fn compile_reg(
        &self,
        op: &Operation,
        cx: &mut Interner,
    ) -> Result<Option<RegOp>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        let name = if self.no_cas {
            "register"
        } else {
            "cas-register"
        };
        let known = if self.no_cas {
            "read, write"
        } else {
            "read, write, cas"
        };
        match op.f.as_str() {
            "read" | "get" => Ok(observed(op)
                .filter(|v| !(self.nil_reads_observe_nothing && v.is_null()))
                .map(|v| RegOp::Read(cx.intern(v)))),
            "write" | "put" => Ok(Some(RegOp::Write(cx.intern(argument(op))))),
            "cas" if !self.no_cas => {
                let (a, b) = expect_pair(argument(op), "the value of a cas")?;
                Ok(Some(RegOp::Cas(cx.intern(&a), cx.intern(&b))))
            }
            f => Err(unknown_f(name, f, known)),
        }
    }
}

/// Unknown writes (and unknown cas) whose new value nothing observes can be dropped.
///
/// Let O be the values observed: those ok reads returned and those cas operations expect.
/// Take a valid linearization that includes such an operation X, which leaves the register
/// at u, with u not in O. The next operation after X on the register cannot be a read (it
/// would return u) nor a cas (it would expect u), so it is a write, which is accepted in
/// any state, or there is none. Removing X therefore leaves a valid linearization with the
/// same real-time order, and X may "never" happen as its outcome is unknown. `slot` picks
/// the register (one per key in the kv model).
pub(crate) fn prune_reg(ops: &[(u32, RegOp)], unknown: &[bool]) -> Vec<bool> {
    let observed: rustc_hash::FxHashSet<(u32, u32)> = ops
        .iter()
        .zip(unknown)
        .filter_map(|(&(slot, op), &u)| match op {
            RegOp::Read(v) if !u => Some((slot, v)),
            RegOp::Cas(a, _) => Some((slot, a)),
            _ => None,
        })
        .collect();
    ops.iter()
        .zip(unknown)
        .map(|(&(slot, op), &u)| {
            u && match op {
                RegOp::Write(v) | RegOp::Cas(_, v) => !observed.contains(&(slot, v)),
                RegOp::Read(_) => false,
            }
        })
        .collect()
}

pub(crate) fn step_reg(state: u32, op: RegOp) -> Option<u32> {
    match op {
        RegOp::Read(v) => (v == state).then_some(state),
        RegOp::Write(v) => Some(v),
        RegOp::Cas(a, b) => (a == state).then_some(b),
    }
}

pub(crate) fn show_reg(op: RegOp, cx: &Interner) -> String {
    match op {
        RegOp::Read(v) => format!("read {}", cx.show(v)),
        RegOp::Write(v) => format!("write {}", cx.show(v)),
        RegOp::Cas(a, b) => format!("cas {}->{}", cx.show(a), cx.show(b)),
    }
}

impl Model for CasRegister {
    type State = u32;
    type Input = RegOp;

    fn init(&self, cx: &mut Interner) -> u32 {
        cx.intern(&self.initial)
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<RegOp>, String> {
        self.compile_reg(op, cx)
    }

    fn step(&self, state: &u32, input: &RegOp) -> Option<u32> {
        step_reg(*state, *input)
    }

    fn prune_unknown(&self, inputs: &[RegOp], unknown: &[bool]) -> Vec<bool> {
        let ops: Vec<(u32, RegOp)> = inputs.iter().map(|&op| (0, op)).collect();
        prune_reg(&ops, unknown)
    }

    fn register_view(&self, input: &RegOp) -> Option<super::RegView> {
        use super::RegView as V;
        Some(match *input {
            RegOp::Read(v) => V::Read(v),
            RegOp::Write(v) => V::Write(v),
            RegOp::Cas(a, b) => V::Cas(a, b),
        })
    }

    fn register_value(&self, state: &u32) -> Option<u32> {
        Some(*state)
    }

    fn describe(&self, input: &RegOp, cx: &Interner, key: Option<&str>) -> String {
        let k = key.map(|k| format!(" {k}")).unwrap_or_default();
        match *input {
            RegOp::Read(v) => format!("read{k} returned {}", cx.show(v)),
            RegOp::Write(v) => format!("write{k} {}", cx.show(v)),
            RegOp::Cas(a, b) => format!("cas{k} {}->{}", cx.show(a), cx.show(b)),
        }
    }

    fn is_read_only(&self, input: &RegOp) -> bool {
        matches!(input, RegOp::Read(_))
    }

    fn show_state(&self, state: &u32, cx: &Interner) -> String {
        cx.show(*state)
    }

    fn show_input(&self, input: &RegOp, cx: &Interner) -> String {
        show_reg(*input, cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn opn(f: &str, input: Value, output: Value, outcome: Outcome) -> Operation {
        Operation {
            process: 0,
            f: f.into(),
            key: None,
            input,
            output,
            outcome,
            call: 0,
            ret: Some(1),
            invoke_index: 0,
            complete_index: Some(1),
            error: None,
        }
    }

    #[test]
    fn steps() {
        let m = CasRegister::default();
        let mut cx = Interner::new();
        let s0 = m.init(&mut cx);
        let w = m
            .compile(&opn("write", json!(3), json!(3), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let s1 = m.step(&s0, &w).unwrap();
        let r3 = m
            .compile(&opn("read", Value::Null, json!(3), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        assert_eq!(m.step(&s1, &r3), Some(s1));
        assert_eq!(m.step(&s0, &r3), None);
        let cas = m
            .compile(
                &opn("cas", json!([3, 4]), json!([3, 4]), Outcome::Ok),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let s2 = m.step(&s1, &cas).unwrap();
        assert_eq!(m.show_state(&s2, &cx), "4");
        assert_eq!(m.step(&s2, &cas), None);
        assert_eq!(m.show_input(&cas, &cx), "cas 3->4");
    }

    #[test]
    fn drops_failures_and_unknown_reads() {
        let m = CasRegister::default();
        let mut cx = Interner::new();
        let f = opn("write", json!(1), json!(1), Outcome::Fail);
        assert_eq!(m.compile(&f, &mut cx).unwrap(), None);
        let r = opn("read", Value::Null, Value::Null, Outcome::Unknown);
        assert_eq!(m.compile(&r, &mut cx).unwrap(), None);
        let w = opn("write", json!(1), Value::Null, Outcome::Unknown);
        assert!(m.compile(&w, &mut cx).unwrap().is_some());
    }

    #[test]
    fn rejects_bad_operations() {
        let m = CasRegister::default();
        let mut cx = Interner::new();
        let e = m
            .compile(&opn("incr", json!(1), json!(1), Outcome::Ok), &mut cx)
            .unwrap_err();
        assert!(e.contains("no operation \"incr\""), "{e}");
        let e = m
            .compile(&opn("cas", json!(1), json!(1), Outcome::Ok), &mut cx)
            .unwrap_err();
        assert!(e.contains("pair"), "{e}");
        let plain = CasRegister {
            no_cas: true,
            ..Default::default()
        };
        assert!(
            plain
                .compile(
                    &opn("cas", json!([1, 2]), json!([1, 2]), Outcome::Ok),
                    &mut cx
                )
                .is_err()
        );
    }

    #[test]
    fn knossos_nil_reads() {
        let m = CasRegister {
            nil_reads_observe_nothing: true,
            ..Default::default()
        };
        let mut cx = Interner::new();
        let r = opn("read", Value::Null, Value::Null, Outcome::Ok);
        assert_eq!(m.compile(&r, &mut cx).unwrap(), None);
        let strict = CasRegister::default();
        assert_eq!(strict.compile(&r, &mut cx).unwrap(), Some(RegOp::Read(0)));
    }

    #[test]
    fn initial_value() {
        let m = CasRegister {
            initial: json!(0),
            ..Default::default()
        };
        let mut cx = Interner::new();
        let s = m.init(&mut cx);
        assert_eq!(cx.show(s), "0");
    }
}
