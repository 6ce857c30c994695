//! `set`: a grow-only set with `add v` and `read` returning every element (as Knossos'
//! set model). The state is the sorted list of element ids.

use serde_json::Value;

use super::{Interner, Model, argument, observed, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct Set;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    Add(u32),
    /// A read that returned exactly these elements (sorted ids).
    Read(Vec<u32>),
}

impl Model for Set {
    type State = Vec<u32>;
    type Input = SetOp;

    fn init(&self, _cx: &mut Interner) -> Vec<u32> {
        Vec::new()
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<SetOp>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        match op.f.as_str() {
            "add" => Ok(Some(SetOp::Add(cx.intern(argument(op))))),
            "read" => {
                let Some(v) = observed(op) else {
                    return Ok(None);
                };
                let items = match v {
                    Value::Array(a) => a,
                    Value::Null => return Ok(Some(SetOp::Read(Vec::new()))),
                    other => return Err(format!("a set read must return a list, got {other}")),
                };
                let mut ids: Vec<u32> = items.iter().map(|x| cx.intern(x)).collect();
                ids.sort_unstable();
                ids.dedup();
                Ok(Some(SetOp::Read(ids)))
            }
            f => Err(unknown_f("set", f, "add, read")),
        }
    }

    fn step(&self, s: &Vec<u32>, input: &SetOp) -> Option<Vec<u32>> {
        match input {
            SetOp::Add(v) => match s.binary_search(v) {
                Ok(_) => Some(s.clone()),
                Err(i) => {
                    let mut n = s.clone();
                    n.insert(i, *v);
                    Some(n)
                }
            },
            SetOp::Read(items) => (items == s).then(|| s.clone()),
        }
    }

    fn is_read_only(&self, input: &SetOp) -> bool {
        matches!(input, SetOp::Read(_))
    }

    fn state_bytes(&self, s: &Vec<u32>) -> usize {
        s.capacity() * 4
    }

    fn show_state(&self, s: &Vec<u32>, cx: &Interner) -> String {
        let parts: Vec<String> = s.iter().map(|v| cx.show(*v)).collect();
        format!("#{{{}}}", parts.join(" "))
    }

    fn show_input(&self, input: &SetOp, cx: &Interner) -> String {
        match input {
            SetOp::Add(v) => format!("add {}", cx.show(*v)),
            SetOp::Read(items) => format!("read {}", self.show_state(items, cx)),
        }
    }

    fn state_noun(&self) -> &'static str {
        "the set"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::json;

    #[test]
    fn add_and_read() {
        let m = Set;
        let mut cx = Interner::new();
        let a1 = m
            .compile(&opn("add", json!(1), json!(1), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let a2 = m
            .compile(&opn("add", json!(2), json!(2), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let r = m
            .compile(
                &opn("read", Value::Null, json!([2, 1]), Outcome::Ok),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let s0 = m.init(&mut cx);
        let s1 = m.step(&s0, &a1).unwrap();
        assert_eq!(m.step(&s1, &r), None);
        let s2 = m.step(&s1, &a2).unwrap();
        assert!(m.step(&s2, &r).is_some());
        assert_eq!(m.show_state(&s2, &cx), "#{1 2}");
        assert!(
            m.compile(&opn("read", Value::Null, json!(3), Outcome::Ok), &mut cx)
                .is_err()
        );
    }
}
