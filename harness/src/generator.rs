//! The workload: a seeded mix of read, write and cas over K keys.
//!
//! Each worker draws from its own ChaCha8 stream (seed, worker), so the sequence of
//! operation kinds and keys is a function of the seed. Written values come from one
//! counter, so every value is unique (per key and overall) and the checker can tell
//! writes apart; cas guesses its expected value from the latest value seen for that key,
//! so a good share of cas operations succeed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::client::ClientOp;

/// Operation mix in percent; the rest are reads.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mix {
    pub write: u32,
    pub cas: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { write: 30, cas: 20 }
    }
}

/// State shared by all workers of one run.
pub struct Workload {
    pub keys: usize,
    pub mix: Mix,
    next_value: AtomicI64,
    last_seen: Mutex<HashMap<usize, i64>>,
}

impl Workload {
    pub fn new(keys: usize, mix: Mix) -> Workload {
        Workload {
            keys: keys.max(1),
            mix,
            next_value: AtomicI64::new(1),
            last_seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn key_name(k: usize) -> String {
        format!("k{k}")
    }

    /// A per-worker random stream derived from the run seed.
    pub fn rng(seed: u64, worker: usize) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Draws the next operation.
    pub fn next(&self, rng: &mut ChaCha8Rng) -> ClientOp {
        let k = rng.random_range(0..self.keys);
        let key = Self::key_name(k);
        let roll = rng.random_range(0..100u32);
        if roll < self.mix.write {
            ClientOp::Write {
                key,
                value: self.fresh(),
            }
        } else if roll < self.mix.write + self.mix.cas {
            let old = self
                .last_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&k)
                .copied()
                .unwrap_or(0);
            ClientOp::Cas {
                key,
                old,
                new: self.fresh(),
            }
        } else {
            ClientOp::Read { key }
        }
    }

    fn fresh(&self) -> i64 {
        self.next_value.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers a value known to have been current for `key` (after an ok op).
    pub fn observe(&self, key: &str, value: i64) {
        if let Some(k) = key.strip_prefix('k').and_then(|k| k.parse().ok()) {
            self.last_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(k, value);
        }
    }
}

/// Paces one worker to its share of a target rate (ops/s over all workers). Rate 0 means
/// as fast as possible. Gaps are jittered ±50% so workers do not march in lock step.
pub fn pause_between(rate: f64, workers: usize, rng: &mut ChaCha8Rng) -> Option<Duration> {
    if rate <= 0.0 {
        return None;
    }
    let mean = workers as f64 / rate;
    let jitter: f64 = rng.random_range(0.5..1.5);
    Some(Duration::from_secs_f64(mean * jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_kinds_and_keys() {
        let shape = |seed| {
            let w = Workload::new(5, Mix::default());
            let mut rng = Workload::rng(seed, 3);
            (0..200)
                .map(|_| {
                    let op = w.next(&mut rng);
                    (op.f(), op.key().to_owned())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(7), shape(7));
        assert_ne!(shape(7), shape(8));
    }

    #[test]
    fn mix_and_unique_values() {
        let w = Workload::new(3, Mix { write: 30, cas: 20 });
        let mut rng = Workload::rng(1, 0);
        let mut counts = HashMap::new();
        let mut values = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let op = w.next(&mut rng);
            *counts.entry(op.f()).or_insert(0) += 1;
            match op {
                ClientOp::Write { value, .. } => assert!(values.insert(value)),
                ClientOp::Cas { new, .. } => assert!(values.insert(new)),
                ClientOp::Read { key } => assert!(["k0", "k1", "k2"].contains(&key.as_str())),
            }
        }
        for (f, pct) in [("read", 50i32), ("write", 30), ("cas", 20)] {
            let got = counts[f] / 100;
            assert!((got - pct).abs() <= 3, "{f}: {got}% (want {pct}%)");
        }
    }

    #[test]
    fn cas_uses_the_latest_observed_value() {
        let w = Workload::new(1, Mix { write: 0, cas: 100 });
        let mut rng = Workload::rng(1, 0);
        w.observe("k0", 42);
        match w.next(&mut rng) {
            ClientOp::Cas { old, .. } => assert_eq!(old, 42),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pacing() {
        let mut rng = Workload::rng(1, 0);
        assert_eq!(pause_between(0.0, 4, &mut rng), None);
        let total: f64 = (0..1000)
            .map(|_| pause_between(100.0, 4, &mut rng).unwrap().as_secs_f64())
            .sum();
        // 4 workers sharing 100 ops/s: 40 ms apart on average.
        assert!((total / 1000.0 - 0.04).abs() < 0.004, "{}", total / 1000.0);
    }
}
