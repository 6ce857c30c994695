//! `porcupine-kv`: Porcupine's kv test model. Each key holds a string, `""` at first;
//! `get` returns it, `put` replaces it, `append` concatenates. Partitioned by key each
//! partition has one key; with `--partition none` the state is every key's string.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use super::{Interner, Model, argument, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct PorcupineKv;

/// A string with its hash computed once, so that hashing and comparing states (which
/// grow with every append) costs O(keys), not O(length).
#[derive(Clone, Debug)]
pub struct HStr {
    hash: u64,
    s: Arc<str>,
}

impl HStr {
    fn new(s: &str) -> HStr {
        let mut h = rustc_hash::FxHasher::default();
        s.hash(&mut h);
        HStr {
            hash: h.finish(),
            s: Arc::from(s),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.s
    }
}

impl PartialEq for HStr {
    fn eq(&self, o: &HStr) -> bool {
        self.hash == o.hash && (Arc::ptr_eq(&self.s, &o.s) || self.s == o.s)
    }
}

impl Eq for HStr {}

impl Hash for HStr {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvStrOp {
    Get(HStr),
    Put(HStr),
    Append(Arc<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvStrInput {
    pub slot: u32,
    pub op: KvStrOp,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Model for PorcupineKv {
    type State = Vec<HStr>;
    type Input = KvStrInput;

    fn init(&self, cx: &mut Interner) -> Vec<HStr> {
        vec![HStr::new(""); cx.keys().len()]
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<KvStrInput>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        let slot = cx.key_slot(op.key.as_deref().unwrap_or(""));
        let kop = match op.f.as_str() {
            "get" | "read" => match op.outcome {
                Outcome::Ok => KvStrOp::Get(HStr::new(&text(&op.output))),
                _ => return Ok(None),
            },
            "put" | "write" => KvStrOp::Put(HStr::new(&text(argument(op)))),
            "append" => KvStrOp::Append(Arc::from(text(argument(op)))),
            f => return Err(unknown_f("porcupine-kv", f, "get, put, append")),
        };
        Ok(Some(KvStrInput { slot, op: kop }))
    }

    fn step(&self, s: &Vec<HStr>, input: &KvStrInput) -> Option<Vec<HStr>> {
        let i = input.slot as usize;
        match &input.op {
            KvStrOp::Get(v) => (s[i] == *v).then(|| s.clone()),
            KvStrOp::Put(v) => {
                let mut n = s.clone();
                n[i] = v.clone();
                Some(n)
            }
            KvStrOp::Append(v) => {
                let mut n = s.clone();
                let mut joined = String::with_capacity(s[i].s.len() + v.len());
                joined.push_str(&s[i].s);
                joined.push_str(v);
                n[i] = HStr::new(&joined);
                Some(n)
            }
        }
    }

    fn is_read_only(&self, input: &KvStrInput) -> bool {
        matches!(input.op, KvStrOp::Get(_))
    }

    fn state_bytes(&self, s: &Vec<HStr>) -> usize {
        // Strings are shared between states; count each state's own slots and, as an upper
        // bound, the strings (appends make new ones).
        s.capacity() * std::mem::size_of::<HStr>() + s.iter().map(|x| x.s.len() + 16).sum::<usize>()
    }

    fn show_state(&self, s: &Vec<HStr>, cx: &Interner) -> String {
        if s.len() == 1 {
            return format!("{:?}", s[0].as_str());
        }
        let parts: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}={:?}", cx.keys()[i], v.as_str()))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn show_input(&self, input: &KvStrInput, cx: &Interner) -> String {
        let key = &cx.keys()[input.slot as usize];
        match &input.op {
            KvStrOp::Get(v) => format!("get {key} {:?}", v.as_str()),
            KvStrOp::Put(v) => format!("put {key} {:?}", v.as_str()),
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
