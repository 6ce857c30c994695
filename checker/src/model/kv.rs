//! `kv`: a map of independent cas-registers, one per key (the default for Stasis
//! histories). Checked partitioned by key (the default), each key is a plain
//! [`CasRegister`](super::cas_register::CasRegister); this file is the whole-map model used
//! with `--partition none`, where the state is every key's value.

use serde_json::Value;

use super::cas_register::{CasRegister, RegOp, show_reg, step_reg};
use super::{Interner, Model, show_keyed};
use crate::history::Operation;

#[derive(Clone, Debug, Default)]
pub struct Kv {
    /// Initial value of every key, or an object giving some keys their own initial value.
    pub initial: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvOp {
    pub slot: u32,
    pub op: RegOp,
}

impl Kv {
    pub(crate) fn register(&self) -> CasRegister {
        CasRegister {
            initial: match &self.initial {
                Value::Object(_) => Value::Null,
                v => v.clone(),
            },
            no_cas: false,
            nil_reads_observe_nothing: false,
        }
    }
}

impl Model for Kv {
    type State = Vec<u32>;
    type Input = KvOp;

    fn init(&self, cx: &mut Interner) -> Vec<u32> {
        let keys: Vec<String> = cx.keys().to_vec();
        keys.iter()
            .map(|k| match &self.initial {
                Value::Object(m) => m.get(k).map_or(0, |v| cx.intern(v)),
                v => cx.intern(v),
            })
            .collect()
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<KvOp>, String> {
        let Some(key) = op.key.as_deref() else {
            return Err(format!(
                "the kv model needs a \"key\" on every operation; {} has none",
                op.f
            ));
        };
        let slot = cx.key_slot(key);
        Ok(self
            .register()
            .compile_reg(op, cx)?
            .map(|op| KvOp { slot, op }))
    }

    fn step(&self, state: &Vec<u32>, input: &KvOp) -> Option<Vec<u32>> {
        let cur = state[input.slot as usize];
        let next = step_reg(cur, input.op)?;
        if next == cur {
            return Some(state.clone());
        }
        let mut s = state.clone();
        s[input.slot as usize] = next;
        Some(s)
    }

    fn prune_unknown(&self, inputs: &[KvOp], unknown: &[bool]) -> Vec<bool> {
        let ops: Vec<(u32, RegOp)> = inputs.iter().map(|o| (o.slot, o.op)).collect();
        super::cas_register::prune_reg(&ops, unknown)
    }

    fn is_read_only(&self, input: &KvOp) -> bool {
        matches!(input.op, RegOp::Read(_))
    }

    fn state_bytes(&self, s: &Vec<u32>) -> usize {
        s.capacity() * 4
    }

    fn show_state(&self, state: &Vec<u32>, cx: &Interner) -> String {
        show_keyed(state, cx)
    }

    fn show_input(&self, input: &KvOp, cx: &Interner) -> String {
        let s = show_reg(input.op, cx);
        let (verb, rest) = s.split_once(' ').unwrap_or((&s, ""));
        format!("{verb} {} {rest}", cx.keys()[input.slot as usize])
    }

    fn state_noun(&self) -> &'static str {
        "the map"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use crate::model::cas_register::tests::opn;
    use serde_json::json;

    fn keyed(f: &str, key: &str, i: Value, o: Value) -> Operation {
        let mut op = opn(f, i, o, Outcome::Ok);
        op.key = Some(key.into());
        op
    }

    #[test]
    fn keys_are_independent() {
        let m = Kv { initial: json!(0) };
        let mut cx = Interner::new();
        let wa = m
            .compile(&keyed("write", "a", json!(1), json!(1)), &mut cx)
            .unwrap()
            .unwrap();
        let rb = m
            .compile(&keyed("read", "b", Value::Null, json!(0)), &mut cx)
            .unwrap()
            .unwrap();
        let ra1 = m
            .compile(&keyed("read", "a", Value::Null, json!(1)), &mut cx)
            .unwrap()
            .unwrap();
        let s0 = m.init(&mut cx);
        assert_eq!(m.show_state(&s0, &cx), "{a=0, b=0}");
        assert_eq!(m.step(&s0, &ra1), None);
        let s1 = m.step(&s0, &wa).unwrap();
        assert!(m.step(&s1, &ra1).is_some());
        assert!(m.step(&s1, &rb).is_some());
        assert_eq!(m.show_input(&ra1, &cx), "read a 1");
    }

    #[test]
    fn needs_a_key() {
        let m = Kv::default();
        let mut cx = Interner::new();
        let e = m
            .compile(&opn("read", Value::Null, json!(1), Outcome::Ok), &mut cx)
            .unwrap_err();
        assert!(e.contains("needs a \"key\""), "{e}");
    }

    #[test]
    fn per_key_initial_values() {
        let m = Kv {
            initial: json!({"b": 5}),
        };
        let mut cx = Interner::new();
        m.compile(&keyed("write", "a", json!(1), json!(1)), &mut cx)
            .unwrap();
        m.compile(&keyed("write", "b", json!(1), json!(1)), &mut cx)
            .unwrap();
        let s = m.init(&mut cx);
        assert_eq!(m.show_state(&s, &cx), "{a=nil, b=5}");
    }
}
