//! `register`: one register with read and write only (no cas). It is the cas-register model
//! with cas rejected at compile time, so both share one step function.

use serde_json::Value;

use super::cas_register::CasRegister;

/// The plain register model.
pub fn register(initial: Value) -> CasRegister {
    CasRegister {
        initial,
        no_cas: true,
        nil_reads_observe_nothing: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use crate::model::cas_register::tests::opn;
    use crate::model::{Interner, Model};
    use serde_json::json;

    #[test]
    fn read_write() {
        let m = register(Value::Null);
        let mut cx = Interner::new();
        let s0 = m.init(&mut cx);
        let w = m
            .compile(&opn("write", json!(2), json!(2), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let r = m
            .compile(&opn("read", Value::Null, json!(2), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        assert_eq!(m.step(&s0, &r), None);
        let s1 = m.step(&s0, &w).unwrap();
        assert_eq!(m.step(&s1, &r), Some(s1));
        let e = m
            .compile(
                &opn("cas", json!([1, 2]), json!([1, 2]), Outcome::Ok),
                &mut cx,
            )
            .unwrap_err();
        assert!(e.contains("register model"), "{e}");
    }
}
