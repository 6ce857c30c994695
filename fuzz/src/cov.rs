//! Coverage feedback on stable Rust: LLVM's source-based coverage counters.
//!
//! Built with `-C instrument-coverage --cfg stasis_fuzz_cov` (scripts/fuzz.sh does this for
//! the project's own crates only), every code region of checker, node, harness and this
//! crate has a u64 counter in the ELF section `__llvm_prf_cnts`, which the linker brackets
//! with `__start___llvm_prf_cnts` / `__stop___llvm_prf_cnts`. The engine zeroes them before
//! an execution and reads them after it: a (region, hit-count bucket) pair never seen before
//! is new coverage, as in AFL. Without the cfg (the plain `cargo test` build) there are no
//! counters and [`Coverage::available`] is false; the engine then keys on the targets'
//! outcome signatures alone.

/// The set of (region, bucket) features seen so far.
#[derive(Default)]
pub struct Coverage {
    seen: Vec<u8>,
}

#[cfg(stasis_fuzz_cov)]
unsafe extern "C" {
    static mut __start___llvm_prf_cnts: u64;
    static mut __stop___llvm_prf_cnts: u64;
}

/// The process's coverage counters (empty when not instrumented).
#[cfg(stasis_fuzz_cov)]
fn counters() -> &'static mut [u64] {
    // SAFETY: the linker defines both symbols around the counter section, which is
    // writable, 8-byte aligned and lives for the whole process. The fuzzer runs one target
    // execution at a time in this mode (scripts/fuzz.sh runs one target per process).
    unsafe {
        let start = &raw mut __start___llvm_prf_cnts;
        let stop = &raw mut __stop___llvm_prf_cnts;
        std::slice::from_raw_parts_mut(start, stop.offset_from(start) as usize)
    }
}

#[cfg(not(stasis_fuzz_cov))]
fn counters() -> &'static mut [u64] {
    &mut []
}

/// AFL's hit-count classes: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
fn bucket(hits: u64) -> u8 {
    match hits {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4..=7 => 8,
        8..=15 => 16,
        16..=31 => 32,
        32..=127 => 64,
        _ => 128,
    }
}

impl Coverage {
    /// Whether this build has coverage counters.
    pub fn available() -> bool {
        !counters().is_empty()
    }

    /// Zeroes the counters before an execution.
    pub fn reset() {
        counters().fill(0);
    }

    /// Folds the counters of the execution that just ran into the seen set; returns how
    /// many new features it had.
    pub fn absorb(&mut self) -> usize {
        let counters = counters();
        if self.seen.len() < counters.len() {
            self.seen.resize(counters.len(), 0);
        }
        let mut new = 0;
        for (seen, &hits) in self.seen.iter_mut().zip(counters.iter()) {
            if hits != 0 {
                let b = bucket(hits);
                if *seen & b == 0 {
                    *seen |= b;
                    new += 1;
                }
            }
        }
        new
    }

    /// Regions covered at least once so far.
    pub fn regions(&self) -> usize {
        self.seen.iter().filter(|&&s| s != 0).count()
    }

    /// Instrumented regions in the process.
    pub fn total_regions() -> usize {
        counters().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_distinct_bits() {
        let all: Vec<u8> = [1, 2, 3, 5, 9, 17, 33, 200].map(bucket).to_vec();
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.count_ones(), 1);
            assert!(all[i + 1..].iter().all(|b| b != a));
        }
    }
}
