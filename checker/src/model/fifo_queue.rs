//! `fifo-queue`: `enqueue v` and `dequeue` returning the oldest element (`nil` when empty).
//! A dequeue whose result is unknown either removed the head or did nothing.

use std::collections::VecDeque;

use super::unordered_queue::{QueueOp, compile_queue, show_items, show_queue_op};
use super::{Interner, Model};
use crate::history::Operation;

#[derive(Clone, Debug, Default)]
pub struct FifoQueue;

impl Model for FifoQueue {
    type State = VecDeque<u32>;
    type Input = QueueOp;

    fn init(&self, _cx: &mut Interner) -> VecDeque<u32> {
        VecDeque::new()
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<QueueOp>, String> {
        compile_queue("fifo-queue", op, cx)
    }

    fn step(&self, s: &VecDeque<u32>, input: &QueueOp) -> Option<VecDeque<u32>> {
        match *input {
            QueueOp::Enqueue(v) => {
                let mut n = s.clone();
                n.push_back(v);
                Some(n)
            }
            QueueOp::Dequeue(0) => s.is_empty().then(VecDeque::new),
            QueueOp::Dequeue(v) => {
                if s.front() != Some(&v) {
                    return None;
                }
                let mut n = s.clone();
                n.pop_front();
                Some(n)
            }
            // Deterministic here: only the head can go.
            QueueOp::DequeueAny => {
                let mut n = s.clone();
                n.pop_front()?;
                Some(n)
            }
        }
    }

    fn state_bytes(&self, s: &VecDeque<u32>) -> usize {
        s.capacity() * 4
    }

    fn show_state(&self, s: &VecDeque<u32>, cx: &Interner) -> String {
        let v: Vec<u32> = s.iter().copied().collect();
        show_items(&v, cx)
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
    use crate::history::Outcome;
    use crate::model::cas_register::tests::opn;
    use serde_json::{Value, json};

    #[test]
    fn first_in_first_out() {
        let m = FifoQueue;
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
        let d1 = m
            .compile(&opn("dequeue", Value::Null, json!(1), Outcome::Ok), &mut cx)
            .unwrap()
            .unwrap();
        let s = m.init(&mut cx);
        let s = m.step(&m.step(&s, &e1).unwrap(), &e2).unwrap();
        assert_eq!(m.step(&s, &d2), None);
        let s = m.step(&s, &d1).unwrap();
        assert_eq!(m.show_state(&s, &cx), "[2]");
        assert!(m.step(&s, &d2).unwrap().is_empty());
    }
}
