//! The progress property of `stasis sim`: once the last fault of a schedule has healed
//! (every fault stopped, every membership change finished), the cluster must elect a
//! leader and complete client operations, an acknowledged write and an acknowledged
//! read, both invoked after the heal, within a bound stated in election timeouts; and
//! every voter must converge: apply at least what the most advanced replica had applied
//! when those operations completed, within the same bound. A schedule that misses it is a
//! finding beside the linearizability verdict (a linearizability check cannot see a
//! cluster that stops answering, nor a replica that never catches up while a majority
//! goes on without it: a lost snapshot transfer, a follower's log never repaired), as a
//! message storm is. Nothing here knows a protocol: the bound comes from the nodes' own
//! timing flags.

/// The bound, in election timeouts (`--election-ticks` x `--tick-ms`, the lower end of
/// the randomized range), on top of one client operation timeout. Chosen from the slowest
/// recovery of correct cores measured (docs/BENCHMARKS.md, "Progress after the last
/// fault").
pub const TIMEOUTS: u64 = 20;

/// Tracks one schedule's progress after its heal.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The longest election timeout of any node (ns).
    pub election_ns: u64,
    /// The bound in election timeouts.
    pub timeouts: u64,
    /// Heal to deadline (ns): `timeouts` election timeouts plus one operation timeout.
    pub bound_ns: u64,
    healed_at: Option<u64>,
    wrote: Option<u64>,
    read: Option<u64>,
    /// The index every voter must apply: the highest any replica had applied when the
    /// write and the read completed.
    target: Option<u64>,
    /// When every voter had applied it.
    converged: Option<u64>,
}

impl Progress {
    pub fn new(election_ns: u64, timeouts: u64, op_timeout_ns: u64) -> Progress {
        Progress {
            election_ns,
            timeouts,
            bound_ns: election_ns.saturating_mul(timeouts) + op_timeout_ns,
            healed_at: None,
            wrote: None,
            read: None,
            target: None,
            converged: None,
        }
    }

    /// The last fault healed at `now` (the first call counts).
    pub fn healed(&mut self, now: u64) {
        self.healed_at.get_or_insert(now);
    }

    pub fn healed_at(&self) -> Option<u64> {
        self.healed_at
    }

    /// When the property must hold by, once healed.
    pub fn deadline(&self) -> Option<u64> {
        self.healed_at.map(|h| h.saturating_add(self.bound_ns))
    }

    /// A client operation invoked at `invoked` completed at `now`, acknowledged (`ok`) or
    /// not. Only acknowledged ones invoked after the heal and completed by the deadline
    /// count.
    pub fn completed(&mut self, invoked: u64, now: u64, read: bool, ok: bool) {
        let (Some(h), Some(d)) = (self.healed_at, self.deadline()) else {
            return;
        };
        if !ok || invoked < h || now > d {
            return;
        }
        if read {
            self.read.get_or_insert(now);
        } else {
            self.wrote.get_or_insert(now);
        }
    }

    /// Whether the cluster made progress (an acknowledged write and read after the heal).
    pub fn done(&self) -> bool {
        self.wrote.is_some() && self.read.is_some()
    }

    /// Once progress held: the index every voter must reach, fixed by the first call
    /// (the highest index any replica has applied, `applied`). Returns it.
    pub fn converge_to(&mut self, applied: u64) -> Option<u64> {
        if self.done() {
            Some(*self.target.get_or_insert(applied))
        } else {
            None
        }
    }

    /// The index every voter must reach, once [`Progress::converge_to`] fixed it.
    pub fn target(&self) -> Option<u64> {
        self.target
    }

    /// Every voter had applied the target at `now` (the first call counts).
    pub fn converged(&mut self, now: u64) {
        if self.target.is_some() {
            self.converged.get_or_insert(now);
        }
    }

    /// Whether the whole property holds: progress, then every voter caught up.
    pub fn settled(&self) -> bool {
        self.done() && self.converged.is_some()
    }

    /// Time from the heal until the property held (ns).
    pub fn recovery_ns(&self) -> Option<u64> {
        let h = self.healed_at?;
        Some(self.wrote?.max(self.read?) - h)
    }

    /// The finding when the property did not hold (`leader`: who leads now, as STATUS
    /// would say; `lagging`: the voters short of the target and what they applied), or
    /// `None` if it held or cannot be judged yet at `now`.
    pub fn finding(&self, now: u64, leader: &str, lagging: &str) -> Option<String> {
        if self.settled() {
            return None;
        }
        let secs = |ns: u64| ns as f64 / 1e9;
        let timeouts = format!(
            "{:.3} s: {} election timeouts of {:.0} ms and one operation timeout",
            secs(self.bound_ns),
            self.timeouts,
            secs(self.election_ns) * 1000.0
        );
        let Some(h) = self.healed_at else {
            return Some(format!(
                "no progress: the faults had not healed by {:.3} s simulated; {leader}",
                secs(now)
            ));
        };
        let d = h + self.bound_ns;
        if now < d {
            return None;
        }
        if let Some(target) = self.target.filter(|_| self.done()) {
            return Some(format!(
                "no convergence: {lagging} had not applied index {target} (applied by a replica when the cluster made progress after the last fault healed at {:.3} s) within {timeouts}; at {:.3} s {leader}",
                secs(h),
                secs(now)
            ));
        }
        let mut missing = Vec::new();
        if self.wrote.is_none() {
            missing.push("write");
        }
        if self.read.is_none() {
            missing.push("read");
        }
        Some(format!(
            "no progress: no acknowledged {} invoked after the last fault healed at {:.3} s and completed within {timeouts}; at {:.3} s {leader}",
            missing.join(" or "),
            secs(h),
            secs(now)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_write_and_a_read_after_the_heal_within_the_bound_is_progress() {
        let mut p = Progress::new(300 * MS, 20, 500 * MS);
        assert_eq!(p.bound_ns, 6_500 * MS);
        // Before the heal nothing counts.
        p.completed(0, 100 * MS, false, true);
        p.completed(0, 100 * MS, true, true);
        assert!(!p.done());
        p.healed(1_000 * MS);
        p.healed(2_000 * MS);
        assert_eq!(p.healed_at(), Some(1_000 * MS));
        // Invoked before the heal, failed, or late: not progress.
        p.completed(900 * MS, 1_100 * MS, false, true);
        p.completed(1_100 * MS, 1_200 * MS, true, false);
        p.completed(1_100 * MS, 7_600 * MS, true, true);
        assert!(!p.done());
        assert_eq!(
            p.finding(5_000 * MS, "n1 leads", ""),
            None,
            "not judged yet"
        );
        let f = p.finding(7_500 * MS, "no node says it leads", "").unwrap();
        assert!(
            f.starts_with("no progress: no acknowledged write or read invoked after")
                && f.contains("20 election timeouts of 300 ms")
                && f.contains("no node says it leads")
                && !f.contains('\n'),
            "{f}"
        );
        p.completed(1_100 * MS, 1_300 * MS, false, true);
        let f = p.finding(7_500 * MS, "n1 leads", "").unwrap();
        assert!(f.contains("no acknowledged read invoked"), "{f}");
        p.converged(1_300 * MS);
        assert_eq!(p.converge_to(50), None, "no target before progress");
        assert_eq!(p.target(), None);
        p.completed(1_200 * MS, 1_400 * MS, true, true);
        assert!(p.done());
        assert!(
            !p.settled(),
            "progress, but the replicas not yet seen converged"
        );
        assert_eq!(p.recovery_ns(), Some(400 * MS));
        // The target is the first one given; a replica still short of it is the finding.
        assert_eq!(p.converge_to(60), Some(60));
        assert_eq!(p.converge_to(90), Some(60));
        assert_eq!(p.target(), Some(60), "reading the target does not move it");
        assert_eq!(p.finding(5_000 * MS, "n1 leads", "n3 (at 12)"), None);
        let f = p
            .finding(7_500 * MS, "n1 leads", "n3 (at 12)")
            .expect("a lagging replica past the bound");
        assert!(
            f.starts_with("no convergence: n3 (at 12) had not applied index 60")
                && f.contains("healed at 1.000 s")
                && !f.contains('\n'),
            "{f}"
        );
        p.converged(1_500 * MS);
        assert!(p.settled());
        assert_eq!(p.finding(9_000 * MS, "n1 leads", ""), None);
    }

    #[test]
    fn faults_that_never_heal_are_a_finding_too() {
        let p = Progress::new(300 * MS, 20, 500 * MS);
        let f = p.finding(80_000 * MS, "n2 leads", "").unwrap();
        assert!(f.contains("had not healed by 80.000 s"), "{f}");
    }
}
