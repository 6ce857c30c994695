//! `porcupine-etcd`: Porcupine's etcd register test model. A register that starts empty
//! (nil) with read, write and cas; unlike `cas-register`, a failed cas is an observation
//! ("the value was not `old`"), not an operation that never happened, and results may be
//! unknown (`info`, or a read that timed out), which Porcupine accepts in any state.

use super::{Interner, Model, argument, expect_pair, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct PorcupineEtcd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdOp {
    Read(u32),
    Write(u32),
    /// A cas that succeeded, or whose result is unknown.
    Cas(u32, u32),
    /// A cas that failed: the value was not `old`.
    CasFailed(u32, u32),
}

impl Model for PorcupineEtcd {
    type State = u32;
    type Input = EtcdOp;

    fn init(&self, _cx: &mut Interner) -> u32 {
        super::NIL
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<EtcdOp>, String> {
        match (op.f.as_str(), op.outcome) {
            ("read", Outcome::Ok) => Ok(Some(EtcdOp::Read(cx.intern(&op.output)))),
            // A read with an unknown or failed result observes nothing.
            ("read", _) => Ok(None),
            ("write", Outcome::Fail) => Ok(None),
            ("write", _) => Ok(Some(EtcdOp::Write(cx.intern(argument(op))))),
            ("cas", outcome) => {
                let (a, b) = expect_pair(argument(op), "the value of a cas")?;
                let (a, b) = (cx.intern(&a), cx.intern(&b));
                Ok(Some(if outcome == Outcome::Fail {
                    EtcdOp::CasFailed(a, b)
                } else {
                    EtcdOp::Cas(a, b)
                }))
            }
            (f, _) => Err(unknown_f("porcupine-etcd", f, "read, write, cas")),
        }
    }

    fn step(&self, s: &u32, input: &EtcdOp) -> Option<u32> {
        match *input {
            EtcdOp::Read(v) => (v == *s).then_some(*s),
            EtcdOp::Write(v) => Some(v),
            EtcdOp::Cas(a, b) => (a == *s).then_some(b),
            EtcdOp::CasFailed(a, _) => (a != *s).then_some(*s),
        }
    }

    fn is_read_only(&self, input: &EtcdOp) -> bool {
        matches!(input, EtcdOp::Read(_) | EtcdOp::CasFailed(..))
    }

    fn register_view(&self, input: &EtcdOp) -> Option<super::RegView> {
        use super::RegView as V;
        Some(match *input {
            EtcdOp::Read(v) => V::Read(v),
            EtcdOp::Write(v) => V::Write(v),
            EtcdOp::Cas(a, b) => V::Cas(a, b),
            EtcdOp::CasFailed(a, _) => V::NotEq(a),
        })
    }

    fn register_value(&self, state: &u32) -> Option<u32> {
        Some(*state)
    }

    fn show_state(&self, s: &u32, cx: &Interner) -> String {
        cx.show(*s)
    }

    fn show_input(&self, input: &EtcdOp, cx: &Interner) -> String {
        match *input {
            EtcdOp::Read(v) => format!("read {}", cx.show(v)),
            EtcdOp::Write(v) => format!("write {}", cx.show(v)),
            EtcdOp::Cas(a, b) => format!("cas {}->{}", cx.show(a), cx.show(b)),
            EtcdOp::CasFailed(a, b) => format!("cas {}->{} (failed)", cx.show(a), cx.show(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::{Value, json};

    #[test]
    fn failed_cas_is_an_observation() {
        let m = PorcupineEtcd;
        let mut cx = Interner::new();
        let w = m
            .compile(&opn("write", json!(1), json!(1), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let cf = m
            .compile(
                &opn("cas", json!([1, 2]), json!([1, 2]), Outcome::Fail),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let s0 = m.init(&mut cx);
        assert_eq!(m.step(&s0, &cf), Some(s0));
        let s1 = m.step(&s0, &w).unwrap();
        assert_eq!(m.step(&s1, &cf), None);
        let r = opn("read", Value::Null, Value::Null, Outcome::Unknown);
        assert_eq!(m.compile(&r, &mut cx).unwrap(), None);
        assert_eq!(m.show_input(&cf, &cx), "cas 1->2 (failed)");
    }
}
