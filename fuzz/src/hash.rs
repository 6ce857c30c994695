//! The hash that names saved inputs (corpus entries, crashes, oversized allocations).

/// FNV-1a, for file names and signatures.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
