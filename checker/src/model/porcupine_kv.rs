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

/// Base of the polynomial string hash: `h(s + t) = h(s) * BASE^len(t) + h(t)` (mod 2^64),
/// so an append hashes only what it adds.
const BASE: u64 = 0x100_0000_01B3;

fn poly(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1)
    })
}

/// A string with its hash computed once (and incrementally on appends), so that hashing
/// and comparing states (which grow with every append) costs O(keys), not O(length).
#[derive(Clone, Debug)]
pub struct HStr {
    hash: u64,
    s: Arc<[u8]>,
}

impl HStr {
    fn new(s: &str) -> HStr {
        HStr {
            hash: poly(0, s.as_bytes()),
            s: Arc::from(s.as_bytes()),
        }
    }

    /// `self + suffix`.
    fn append(&self, suffix: &Suffix) -> HStr {
        let mut joined = Vec::with_capacity(self.s.len() + suffix.s.len());
        joined.extend_from_slice(&self.s);
        joined.extend_from_slice(&suffix.s);
        let s: Arc<[u8]> = Arc::from(joined);
        HStr {
            hash: self.hash.wrapping_mul(suffix.pow).wrapping_add(suffix.hash),
            s,
        }
    }

    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.s)
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

/// What an append adds, with its hash and `BASE^len`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suffix {
    s: Arc<[u8]>,
    hash: u64,
    pow: u64,
}

impl Suffix {
    fn new(s: &str) -> Suffix {
        Suffix {
            s: Arc::from(s.as_bytes()),
            hash: poly(0, s.as_bytes()),
            pow: s.bytes().fold(1u64, |p, _| p.wrapping_mul(BASE)),
        }
    }
}

/// Every key's string: inline for one key (a per-key partition), so that a step that
/// keeps or replaces the string allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvState {
    One(HStr),
    Many(Box<[HStr]>),
}

impl KvState {
    fn slots(&self) -> &[HStr] {
        match self {
            KvState::One(h) => std::slice::from_ref(h),
            KvState::Many(v) => v,
        }
    }

    fn with(&self, i: usize, v: HStr) -> KvState {
        match self {
            KvState::One(_) => KvState::One(v),
            KvState::Many(old) => {
                let mut n = old.clone();
                n[i] = v;
                KvState::Many(n)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvStrOp {
    Get(HStr),
    Put(HStr),
    Append(Suffix),
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
    type State = KvState;
    type Input = KvStrInput;

    fn init(&self, cx: &mut Interner) -> KvState {
        let empty = HStr::new("");
        match cx.keys().len() {
            1 => KvState::One(empty),
            n => KvState::Many(vec![empty; n].into()),
        }
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
            "append" => KvStrOp::Append(Suffix::new(&text(argument(op)))),
            f => return Err(unknown_f("porcupine-kv", f, "get, put, append")),
        };
        Ok(Some(KvStrInput { slot, op: kop }))
    }

    fn step(&self, s: &KvState, input: &KvStrInput) -> Option<KvState> {
        let i = input.slot as usize;
        let cur = &s.slots()[i];
        match &input.op {
            KvStrOp::Get(v) => (cur == v).then(|| s.clone()),
            KvStrOp::Put(v) => Some(s.with(i, v.clone())),
            KvStrOp::Append(v) => Some(s.with(i, cur.append(v))),
        }
    }

    fn is_read_only(&self, input: &KvStrInput) -> bool {
        matches!(input.op, KvStrOp::Get(_))
    }

    fn state_bytes(&self, s: &KvState) -> usize {
        // Strings are shared between states; count each state's own slots and, as an upper
        // bound, the strings (appends make new ones).
        let own = match s {
            KvState::One(_) => 0,
            KvState::Many(v) => v.len() * std::mem::size_of::<HStr>(),
        };
        own + s.slots().iter().map(|x| x.s.len() + 16).sum::<usize>()
    }

    fn show_state(&self, s: &KvState, cx: &Interner) -> String {
        let s = s.slots();
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
            KvStrOp::Append(v) => format!("append {key} {:?}", String::from_utf8_lossy(&v.s)),
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
    fn incremental_hash_matches_direct_hash() {
        let ab = HStr::new("ab").append(&Suffix::new("cd"));
        let direct = HStr::new("abcd");
        assert_eq!(ab.hash, direct.hash);
        assert_eq!(ab, direct);
        assert_ne!(HStr::new("ab").append(&Suffix::new("")), direct);
        assert_eq!(HStr::new("").append(&Suffix::new("ab")), HStr::new("ab"));
        assert_ne!(HStr::new("a").hash, HStr::new("").hash);
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
