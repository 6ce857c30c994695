//! `multi-register`: named registers read and written by transactions
//! (`:f :txn`, value `[[:read :x 1] [:write :y 2]]`), as Knossos' multi-register model.
//! A transaction is atomic: its reads see the state left by its earlier micro-operations.

use serde_json::Value;

use super::{Interner, Model, show_keyed, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct MultiRegister {
    /// Initial values: an object `{"x": 0, ...}`; registers not named start at nil.
    pub initial: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Micro {
    Read { slot: u32, value: u32 },
    Write { slot: u32, value: u32 },
}

impl Model for MultiRegister {
    type State = Vec<u32>;
    type Input = Vec<Micro>;

    fn init(&self, cx: &mut Interner) -> Vec<u32> {
        let keys: Vec<String> = cx.keys().to_vec();
        keys.iter()
            .map(|k| match &self.initial {
                Value::Object(m) => m.get(k).map_or(0, |v| cx.intern(v)),
                v => cx.intern(v),
            })
            .collect()
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<Vec<Micro>>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        if op.f != "txn" {
            return Err(unknown_f("multi-register", &op.f, "txn"));
        }
        // Completed transactions carry the values read; unknown ones only their writes.
        let known = op.outcome == Outcome::Ok;
        let v = if known { &op.output } else { &op.input };
        let Value::Array(micros) = v else {
            return Err(format!(
                "a txn value must be a list of [f, register, value], got {v}"
            ));
        };
        let mut out = Vec::with_capacity(micros.len());
        for m in micros {
            let parts = match m {
                Value::Array(p) if p.len() == 3 => p,
                other => {
                    return Err(format!(
                        "a txn micro-operation must be [f, register, value], got {other}"
                    ));
                }
            };
            let reg = match &parts[1] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let slot = cx.key_slot(&reg);
            let value = cx.intern(&parts[2]);
            match parts[0].as_str() {
                Some("read" | "r") if known => out.push(Micro::Read { slot, value }),
                Some("read" | "r") => {}
                Some("write" | "w") => out.push(Micro::Write { slot, value }),
                _ => {
                    return Err(format!(
                        "a txn micro-operation is read or write, got {}",
                        parts[0]
                    ));
                }
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(out))
    }

    fn step(&self, state: &Vec<u32>, input: &Vec<Micro>) -> Option<Vec<u32>> {
        let mut s = state.clone();
        for m in input {
            match *m {
                Micro::Read { slot, value } => {
                    // The state is sized when all operations are compiled.
                    if s[slot as usize] != value {
                        return None;
                    }
                }
                Micro::Write { slot, value } => s[slot as usize] = value,
            }
        }
        Some(s)
    }

    fn is_read_only(&self, input: &Vec<Micro>) -> bool {
        input.iter().all(|m| matches!(m, Micro::Read { .. }))
    }

    fn state_bytes(&self, s: &Vec<u32>) -> usize {
        s.capacity() * 4
    }

    fn show_state(&self, state: &Vec<u32>, cx: &Interner) -> String {
        show_keyed(state, cx)
    }

    fn show_input(&self, input: &Vec<Micro>, cx: &Interner) -> String {
        let parts: Vec<String> = input
            .iter()
            .map(|m| match *m {
                Micro::Read { slot, value } => {
                    format!("read {} {}", cx.keys()[slot as usize], cx.show(value))
                }
                Micro::Write { slot, value } => {
                    format!("write {} {}", cx.keys()[slot as usize], cx.show(value))
                }
            })
            .collect();
        format!("txn [{}]", parts.join(", "))
    }

    fn state_noun(&self) -> &'static str {
        "the registers"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::json;

    #[test]
    fn txn_reads_see_own_writes() {
        let m = MultiRegister {
            initial: json!({"x": 0, "y": 0}),
        };
        let mut cx = Interner::new();
        let t1 = m
            .compile(
                &opn(
                    "txn",
                    json!([["write", "x", 1], ["read", "x", null]]),
                    json!([["write", "x", 1], ["read", "x", 1]]),
                    Outcome::Ok,
                ),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let r = m
            .compile(
                &opn(
                    "txn",
                    json!([["read", "y", null]]),
                    json!([["read", "y", 0]]),
                    Outcome::Ok,
                ),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let s0 = m.init(&mut cx);
        assert_eq!(m.show_state(&s0, &cx), "{x=0, y=0}");
        let s1 = m.step(&s0, &t1).unwrap();
        assert_eq!(m.show_state(&s1, &cx), "{x=1, y=0}");
        assert!(m.step(&s1, &r).is_some());
        assert_eq!(m.show_input(&r, &cx), "txn [read y 0]");
    }

    #[test]
    fn unknown_txn_keeps_only_writes() {
        let m = MultiRegister::default();
        let mut cx = Interner::new();
        let t = opn(
            "txn",
            json!([["read", "x", null]]),
            Value::Null,
            Outcome::Unknown,
        );
        assert_eq!(m.compile(&t, &mut cx).unwrap(), None);
        let bad = opn("txn", json!(3), json!(3), Outcome::Ok);
        assert!(m.compile(&bad, &mut cx).is_err());
        let bad = opn(
            "txn",
            json!([["incr", "x", 1]]),
            json!([["incr", "x", 1]]),
            Outcome::Ok,
        );
        assert!(m.compile(&bad, &mut cx).is_err());
    }
}
