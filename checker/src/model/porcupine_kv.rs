//! `porcupine-kv`: Porcupine's kv test model. Each key holds a string, `""` at first;
//! `get` returns it, `put` replaces it, `append` concatenates. Partitioned by key each
//! partition has one key; with `--partition none` the state is every key's string.

use std::sync::Arc;

use serde_json::Value;

use super::{Interner, Model, argument, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct PorcupineKv;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvStrOp {
    Get(Arc<str>),
    Put(Arc<str>),
    Append(Arc<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvStrInput {
    pub slot: u32,
    pub op: KvStrOp,
}

fn text(v: &Value) -> Arc<str> {
    match v {
        Value::Null => Arc::from(""),
        Value::String(s) => Arc::from(s.as_str()),
        other => Arc::from(other.to_string()),
    }
}

impl Model for PorcupineKv {
    type State = Vec<Arc<str>>;
    type Input = KvStrInput;

    fn init(&self, cx: &mut Interner) -> Vec<Arc<str>> {
        vec![Arc::from(""); cx.keys().len()]
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<KvStrInput>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        let slot = cx.key_slot(op.key.as_deref().unwrap_or(""));
        let kop = match op.f.as_str() {
            "get" | "read" => match op.outcome {
                Outcome::Ok => KvStrOp::Get(text(&op.output)),
                _ => return Ok(None),
            },
            "put" | "write" => KvStrOp::Put(text(argument(op))),
            "append" => KvStrOp::Append(text(argument(op))),
            f => return Err(unknown_f("porcupine-kv", f, "get, put, append")),
        };
        Ok(Some(KvStrInput { slot, op: kop }))
    }

    fn step(&self, s: &Vec<Arc<str>>, input: &KvStrInput) -> Option<Vec<Arc<str>>> {
        let i = input.slot as usize;
        match &input.op {
            KvStrOp::Get(v) => (*s[i] == **v).then(|| s.clone()),
            KvStrOp::Put(v) => {
                let mut n = s.clone();
                n[i] = v.clone();
                Some(n)
            }
            KvStrOp::Append(v) => {
                let mut n = s.clone();
                let mut joined = String::with_capacity(s[i].len() + v.len());
                joined.push_str(&s[i]);
                joined.push_str(v);
                n[i] = Arc::from(joined);
                Some(n)
            }
        }
    }

    fn is_read_only(&self, input: &KvStrInput) -> bool {
        matches!(input.op, KvStrOp::Get(_))
    }

    fn show_state(&self, s: &Vec<Arc<str>>, cx: &Interner) -> String {
        if s.len() == 1 {
            return format!("{:?}", &*s[0]);
        }
        let parts: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}={:?}", cx.keys()[i], &**v))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn show_input(&self, input: &KvStrInput, cx: &Interner) -> String {
        let key = &cx.keys()[input.slot as usize];
        match &input.op {
            KvStrOp::Get(v) => format!("get {key} {:?}", &**v),
            KvStrOp::Put(v) => format!("put {key} {:?}", &**v),
            KvStrOp::Append(v) => format!("append {key} {:?}", &**v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::json;

    fn keyed(f: &str, i: Value, o: Value) -> Operation {
        let mut op = opn(f, i, o, Outcome::Ok);
        op.key = Some("k".into());
        op
    }

    #[test]
    fn append_concatenates() {
        let m = PorcupineKv;
        let mut cx = Interner::new();
        let a = m
            .compile(&keyed("append", json!("x"), Value::Null), &mut cx)
            .unwrap()
            .unwrap();
        let g = m
            .compile(&keyed("get", Value::Null, json!("xx")), &mut cx)
            .unwrap()
            .unwrap();
        let g0 = m
            .compile(&keyed("get", Value::Null, json!("")), &mut cx)
            .unwrap()
            .unwrap();
        let s = m.init(&mut cx);
        assert!(m.step(&s, &g0).is_some());
        let s = m.step(&s, &a).unwrap();
        assert_eq!(m.step(&s, &g), None);
        let s = m.step(&s, &a).unwrap();
        assert!(m.step(&s, &g).is_some());
        assert_eq!(m.show_state(&s, &cx), "\"xx\"");
        assert!(
            m.compile(&keyed("cas", json!(1), json!(1)), &mut cx)
                .is_err()
        );
    }
}
