//! The pure scheduling model of the packet delayer: what happens to one packet on one
//! directed link (drop it, or deliver it at a time, maybe twice), and the pending set of
//! held packets ordered by release time. No sockets, no clocks: times are nanoseconds
//! given by the caller, randomness comes from a seeded generator.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What one directed link does to its packets. All zero is a clean link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// Mean added one-way delay, microseconds.
    pub delay_us: u64,
    /// Each packet's delay is drawn uniformly from `delay ± jitter` (never below 0).
    pub jitter_us: u64,
    /// Probability that a packet is dropped.
    pub loss: f64,
    /// Probability that a packet is delivered twice (the copy follows after
    /// [`DUP_GAP_NS`]).
    pub duplicate: f64,
    /// Probability that a packet is held back by `reorder_hold_us` past later ones.
    pub reorder: f64,
    pub reorder_hold_us: u64,
    /// Bandwidth cap, bits per second (0 = none). Packets queue behind each other; a
    /// packet that would wait longer than [`MAX_BACKLOG_NS`] is dropped (tail drop).
    pub rate_bps: u64,
}

/// Gap between a packet and its duplicate.
pub const DUP_GAP_NS: u64 = 200_000;
/// The longest a packet may queue behind a bandwidth cap before it is dropped.
pub const MAX_BACKLOG_NS: u64 = 1_000_000_000;

impl LinkSpec {
    pub fn is_clean(&self) -> bool {
        *self == LinkSpec::default()
    }

    /// This link with `other` on top: delays and jitters add, probabilities combine as
    /// independent events, the tighter bandwidth cap wins.
    pub fn with(&self, other: &LinkSpec) -> LinkSpec {
        let either = |a: f64, b: f64| 1.0 - (1.0 - a) * (1.0 - b);
        let rate = match (self.rate_bps, other.rate_bps) {
            (0, r) | (r, 0) => r,
            (a, b) => a.min(b),
        };
        LinkSpec {
            delay_us: self.delay_us + other.delay_us,
            jitter_us: self.jitter_us + other.jitter_us,
            loss: either(self.loss, other.loss),
            duplicate: either(self.duplicate, other.duplicate),
            reorder: either(self.reorder, other.reorder),
            reorder_hold_us: self.reorder_hold_us.max(other.reorder_hold_us),
            rate_bps: rate,
        }
    }

    /// Checks the numbers are usable (probabilities in [0, 1], jitter not above delay).
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} probability {p} is not between 0 and 1"));
            }
        }
        if self.jitter_us > self.delay_us {
            return Err(format!(
                "jitter {} ms exceeds the delay {} ms",
                self.jitter_us as f64 / 1000.0,
                self.delay_us as f64 / 1000.0
            ));
        }
        Ok(())
    }
}

/// What becomes of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Drop,
    /// Accept at `at` (ns); with `dup_at`, deliver a copy at that time too.
    Deliver {
        at: u64,
        dup_at: Option<u64>,
    },
}

#[derive(Clone, Debug, Default)]
struct Link {
    spec: LinkSpec,
    /// When the capped link is free again (ns).
    free_at: u64,
}

/// Per-destination link state of one namespace's outgoing traffic.
pub struct Sched {
    rng: ChaCha8Rng,
    links: BTreeMap<Ipv4Addr, Link>,
}

impl Sched {
    pub fn new(seed: u64) -> Sched {
        Sched {
            rng: ChaCha8Rng::seed_from_u64(seed),
            links: BTreeMap::new(),
        }
    }

    /// Sets the links (destination -> spec); destinations not named become clean. Queue
    /// state of a capped link survives a change of its spec.
    pub fn set_specs(&mut self, specs: &BTreeMap<Ipv4Addr, LinkSpec>) {
        self.links.retain(|d, _| specs.contains_key(d));
        for (d, s) in specs {
            self.links.entry(*d).or_default().spec = *s;
        }
    }

    /// Decides the fate of a packet of `len` bytes to `dst` that arrived at `now`.
    pub fn fate(&mut self, now: u64, dst: Ipv4Addr, len: usize) -> Fate {
        let Some(link) = self.links.get_mut(&dst) else {
            return Fate::Deliver {
                at: now,
                dup_at: None,
            };
        };
        let s = link.spec;
        if s.loss > 0.0 && self.rng.random_bool(s.loss) {
            return Fate::Drop;
        }
        let mut delay = s.delay_us as i64 * 1000;
        if s.jitter_us > 0 {
            let j = s.jitter_us as i64 * 1000;
            delay += self.rng.random_range(-j..=j);
        }
        if s.reorder > 0.0 && self.rng.random_bool(s.reorder) {
            delay += s.reorder_hold_us as i64 * 1000;
        }
        let mut at = now + delay.max(0) as u64;
        if let Some(tx) = (len as u64 * 8 * 1_000_000_000).checked_div(s.rate_bps) {
            let start = at.max(link.free_at);
            if start - at > MAX_BACKLOG_NS {
                return Fate::Drop;
            }
            link.free_at = start + tx;
            at = start + tx;
        }
        let dup_at =
            (s.duplicate > 0.0 && self.rng.random_bool(s.duplicate)).then_some(at + DUP_GAP_NS);
        Fate::Deliver { at, dup_at }
    }
}

/// Held items ordered by release time (ties in arrival order).
pub struct Pending<T> {
    heap: BinaryHeap<Reverse<(u64, u64, Slot<T>)>>,
    seq: u64,
}

/// Wrapper that makes the payload irrelevant to ordering.
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Pending<T> {
    pub fn push(&mut self, at: u64, item: T) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, Slot(item))));
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Release time of the earliest item.
    pub fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns the earliest item if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<T> {
        if self.next_at()? <= now {
            self.heap.pop().map(|Reverse((_, _, Slot(t)))| t)
        } else {
            None
        }
    }

    /// Removes everything, earliest first.
    pub fn drain_all(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(Reverse((_, _, Slot(t)))) = self.heap.pop() {
            out.push(t);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    fn sched(spec: LinkSpec) -> Sched {
        let mut s = Sched::new(7);
        s.set_specs(&[(A, spec)].into_iter().collect());
        s
    }

    #[test]
    fn unknown_destinations_pass_at_once() {
        let mut s = sched(LinkSpec {
            loss: 1.0,
            ..Default::default()
        });
        assert_eq!(
            s.fate(5, B, 100),
            Fate::Deliver {
                at: 5,
                dup_at: None
            }
        );
        assert_eq!(s.fate(5, A, 100), Fate::Drop);
    }

    #[test]
    fn delay_with_jitter_stays_in_range_and_centres_on_the_mean() {
        let mut s = sched(LinkSpec {
            delay_us: 50_000,
            jitter_us: 40_000,
            ..Default::default()
        });
        let mut sum = 0u64;
        let (mut lo, mut hi) = (u64::MAX, 0);
        for _ in 0..10_000 {
            let Fate::Deliver { at, dup_at: None } = s.fate(1_000, A, 100) else {
                panic!("a delayed link dropped or duplicated");
            };
            let d = at - 1_000;
            lo = lo.min(d);
            hi = hi.max(d);
            sum += d;
        }
        assert!(lo >= 10_000_000 && hi <= 90_000_000, "{lo} {hi}");
        assert!(lo < 12_000_000 && hi > 88_000_000, "jitter spans the range");
        let mean = sum / 10_000;
        assert!((49_000_000..51_000_000).contains(&mean), "{mean}");
    }

    #[test]
    fn loss_duplicate_and_reorder_happen_at_their_rates() {
        let mut s = sched(LinkSpec {
            loss: 0.2,
            duplicate: 0.3,
            reorder: 0.1,
            reorder_hold_us: 30_000,
            ..Default::default()
        });
        let (mut dropped, mut dups, mut held) = (0, 0, 0);
        let n = 20_000;
        for _ in 0..n {
            match s.fate(0, A, 100) {
                Fate::Drop => dropped += 1,
                Fate::Deliver { at, dup_at } => {
                    if let Some(d) = dup_at {
                        assert_eq!(d, at + DUP_GAP_NS);
                        dups += 1;
                    }
                    if at == 30_000_000 {
                        held += 1;
                    } else {
                        assert_eq!(at, 0);
                    }
                }
            }
        }
        let rate = |k: i32, of: i32| k as f64 / of as f64;
        assert!((rate(dropped, n) - 0.2).abs() < 0.02, "{dropped}");
        let delivered = n - dropped;
        assert!((rate(dups, delivered) - 0.3).abs() < 0.02, "{dups}");
        assert!((rate(held, delivered) - 0.1).abs() < 0.02, "{held}");
    }

    #[test]
    fn a_rate_cap_spaces_packets_and_tail_drops_past_the_backlog() {
        // 1 Mbit/s: a 1250-byte packet takes 10 ms.
        let mut s = sched(LinkSpec {
            rate_bps: 1_000_000,
            ..Default::default()
        });
        let ats: Vec<u64> = (0..5)
            .map(|_| match s.fate(0, A, 1250) {
                Fate::Deliver { at, .. } => at,
                Fate::Drop => panic!("dropped inside the backlog"),
            })
            .collect();
        assert_eq!(
            ats,
            vec![10_000_000, 20_000_000, 30_000_000, 40_000_000, 50_000_000]
        );
        // Fill past one second of backlog: later packets are dropped.
        let mut dropped = 0;
        for _ in 0..200 {
            if s.fate(0, A, 1250) == Fate::Drop {
                dropped += 1;
            }
        }
        assert!(dropped > 90, "{dropped}");
        // Once the queue has drained the link takes packets again.
        assert!(matches!(
            s.fate(5_000_000_000, A, 1250),
            Fate::Deliver { .. }
        ));
    }

    #[test]
    fn same_seed_same_fates() {
        let spec = LinkSpec {
            delay_us: 20_000,
            jitter_us: 10_000,
            loss: 0.1,
            ..Default::default()
        };
        let mut a = sched(spec);
        let mut b = sched(spec);
        for t in 0..1000 {
            assert_eq!(a.fate(t, A, 60), b.fate(t, A, 60));
        }
    }

    #[test]
    fn specs_combine_and_validate() {
        let base = LinkSpec {
            delay_us: 20_000,
            jitter_us: 10_000,
            loss: 0.5,
            rate_bps: 2_000_000,
            ..Default::default()
        };
        let fault = LinkSpec {
            delay_us: 50_000,
            jitter_us: 40_000,
            loss: 0.5,
            rate_bps: 1_000_000,
            ..Default::default()
        };
        let c = base.with(&fault);
        assert_eq!((c.delay_us, c.jitter_us), (70_000, 50_000));
        assert!((c.loss - 0.75).abs() < 1e-9);
        assert_eq!(c.rate_bps, 1_000_000);
        assert_eq!(LinkSpec::default().with(&fault), fault);
        assert!(c.validate().is_ok());
        let bad = LinkSpec {
            loss: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("loss"));
        let bad = LinkSpec {
            delay_us: 1,
            jitter_us: 2,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("jitter"));
        assert!(LinkSpec::default().is_clean() && !c.is_clean());
    }

    #[test]
    fn pending_releases_in_time_order() {
        let mut p = Pending::default();
        p.push(30, "c");
        p.push(10, "a");
        p.push(20, "b");
        p.push(10, "a2");
        assert_eq!(p.len(), 4);
        assert_eq!(p.next_at(), Some(10));
        assert_eq!(p.pop_due(5), None);
        assert_eq!(p.pop_due(15), Some("a"));
        assert_eq!(p.pop_due(15), Some("a2"));
        assert_eq!(p.pop_due(15), None);
        assert_eq!(p.drain_all(), vec!["b", "c"]);
        assert!(p.is_empty());
    }
}
