//! `mutex`: a lock with `acquire` and `release`, as Knossos' mutex model: acquiring a held
//! lock or releasing a free one is impossible.

use super::{Interner, Model, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOp {
    Acquire,
    Release,
}

impl Model for Mutex {
    type State = bool;
    type Input = LockOp;

    fn init(&self, _cx: &mut Interner) -> bool {
        false
    }

    fn compile(&self, op: &Operation, _cx: &mut Interner) -> Result<Option<LockOp>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        match op.f.as_str() {
            "acquire" | "lock" => Ok(Some(LockOp::Acquire)),
            "release" | "unlock" => Ok(Some(LockOp::Release)),
            f => Err(unknown_f("mutex", f, "acquire, release")),
        }
    }

    fn step(&self, held: &bool, input: &LockOp) -> Option<bool> {
        match input {
            LockOp::Acquire => (!held).then_some(true),
            LockOp::Release => held.then_some(false),
        }
    }

    fn show_state(&self, held: &bool, _cx: &Interner) -> String {
        if *held { "held" } else { "free" }.into()
    }

    fn show_input(&self, input: &LockOp, _cx: &Interner) -> String {
        match input {
            LockOp::Acquire => "acquire",
            LockOp::Release => "release",
        }
        .into()
    }

    fn state_noun(&self) -> &'static str {
        "the lock"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::Value;

    #[test]
    fn lock_discipline() {
        let m = Mutex;
        let mut cx = Interner::new();
        let a = m
            .compile(
                &opn("acquire", Value::Null, Value::Null, Outcome::Ok),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let r = m
            .compile(
                &opn("release", Value::Null, Value::Null, Outcome::Ok),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let s = m.init(&mut cx);
        assert_eq!(m.step(&s, &r), None);
        let s = m.step(&s, &a).unwrap();
        assert_eq!(m.step(&s, &a), None);
        assert_eq!(m.show_state(&s, &cx), "held");
        assert_eq!(m.step(&s, &r), Some(false));
        let f = opn("acquire", Value::Null, Value::Null, Outcome::Fail);
        assert_eq!(m.compile(&f, &mut cx).unwrap(), None);
        assert!(
            m.compile(&opn("read", Value::Null, Value::Null, Outcome::Ok), &mut cx)
                .is_err()
        );
    }
}
