//! `unordered-queue`: `enqueue v` and `dequeue` returning any element present (a multiset),
//! as Knossos' unordered-queue. A dequeue that returned `nil` saw an empty queue. A dequeue
//! whose result is unknown may have removed any element: it has one alternative per value.

use super::{Interner, Model, argument, unknown_f};
use crate::history::{Operation, Outcome};

#[derive(Clone, Debug, Default)]
pub struct UnorderedQueue;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOp {
    Enqueue(u32),
    /// Dequeued this value (`NIL`: the queue was empty).
    Dequeue(u32),
    /// A dequeue with an unknown result.
    DequeueAny,
}

/// Compiles a queue operation (shared with `fifo-queue`).
pub(crate) fn compile_queue(
    model: &str,
    op: &Operation,
    cx: &mut Interner,
) -> Result<Option<QueueOp>, String> {
    if op.outcome == Outcome::Fail {
        return Ok(None);
    }
    match op.f.as_str() {
        "enqueue" => Ok(Some(QueueOp::Enqueue(cx.intern(argument(op))))),
        "dequeue" => Ok(Some(match op.outcome {
            Outcome::Ok => QueueOp::Dequeue(cx.intern(&op.output)),
            _ => QueueOp::DequeueAny,
        })),
        f => Err(unknown_f(model, f, "enqueue, dequeue")),
    }
}

pub(crate) fn show_queue_op(op: &QueueOp, cx: &Interner) -> String {
    match op {
        QueueOp::Enqueue(v) => format!("enqueue {}", cx.show(*v)),
        QueueOp::Dequeue(v) => format!("dequeue {}", cx.show(*v)),
        QueueOp::DequeueAny => "dequeue (result unknown)".into(),
    }
}

pub(crate) fn show_items(items: &[u32], cx: &Interner) -> String {
    let parts: Vec<String> = items.iter().map(|v| cx.show(*v)).collect();
    format!("[{}]", parts.join(" "))
}

impl Model for UnorderedQueue {
    /// Sorted multiset of element ids.
    type State = Vec<u32>;
    type Input = QueueOp;

    fn init(&self, _cx: &mut Interner) -> Vec<u32> {
        Vec::new()
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<QueueOp>, String> {
        compile_queue("unordered-queue", op, cx)
    }

    fn step(&self, s: &Vec<u32>, input: &QueueOp) -> Option<Vec<u32>> {
        self.step_alt(s, input, 0)
    }

    fn alternatives(&self, input: &QueueOp) -> u32 {
        match input {
            // Bounded by the state's size at step time; extra alternatives just fail.
            QueueOp::DequeueAny => u32::MAX,
            _ => 1,
        }
    }

    fn step_alt(&self, s: &Vec<u32>, input: &QueueOp, alt: u32) -> Option<Vec<u32>> {
        match *input {
            QueueOp::Enqueue(v) => {
                let mut n = s.clone();
                let i = n.partition_point(|x| *x <= v);
                n.insert(i, v);
                Some(n)
            }
            QueueOp::Dequeue(0) => s.is_empty().then(Vec::new),
            QueueOp::Dequeue(v) => {
                let i = s.binary_search(&v).ok()?;
                let mut n = s.clone();
                n.remove(i);
                Some(n)
            }
            QueueOp::DequeueAny => {
                // Alternative k removes the k-th distinct element.
                let mut distinct = s
                    .iter()
                    .enumerate()
                    .filter(|(i, x)| *i == 0 || s[i - 1] != **x);
                let (i, _) = distinct.nth(alt as usize)?;
                let mut n = s.clone();
                n.remove(i);
                Some(n)
            }
        }
    }

    fn state_bytes(&self, s: &Vec<u32>) -> usize {
        s.capacity() * 4
    }

    fn show_state(&self, s: &Vec<u32>, cx: &Interner) -> String {
        show_items(s, cx)
    }

    fn show_input(&self, input: &QueueOp, cx: &Interner) -> String {
        show_queue_op(input, cx)
    }

    fn state_noun(&self) -> &'static str {
        "the queue"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::{Value, json};

    #[test]
    fn any_order() {
        let m = UnorderedQueue;
        let mut cx = Interner::new();
        let e1 = m
            .compile(&opn("enqueue", json!(1), json!(1), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let e2 = m
            .compile(&opn("enqueue", json!(2), json!(2), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let d2 = m
            .compile(&opn("dequeue", Value::Null, json!(2), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let dn = m
            .compile(
                &opn("dequeue", Value::Null, Value::Null, Outcome::Ok),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        let s = m.init(&mut cx);
        assert!(m.step(&s, &dn).is_some());
        assert_eq!(m.step(&s, &d2), None);
        let s = m.step(&m.step(&s, &e1).unwrap(), &e2).unwrap();
        assert_eq!(m.step(&s, &dn), None);
        let s = m.step(&s, &d2).unwrap();
        assert_eq!(m.show_state(&s, &cx), "[1]");
        let any = m
            .compile(
                &opn("dequeue", Value::Null, Value::Null, Outcome::Unknown),
                &mut cx,
            )
            .unwrap()
            .unwrap();
        assert_eq!(m.step_alt(&s, &any, 0), Some(vec![]));
        assert_eq!(m.step_alt(&s, &any, 1), None);
    }
}
