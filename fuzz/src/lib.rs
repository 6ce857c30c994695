//! Stasis' fuzzing: one target per parser ([`targets`]), an in-process coverage-guided
//! engine on stable Rust ([`engine`], [`cov`]), and a guard against absurd allocations
//! ([`alloc_guard`]). `stasis-fuzz` (src/main.rs) runs it; scripts/fuzz.sh builds it with
//! coverage and runs every target; tests/fuzz_short.rs is the short pass in the test suite.

pub mod alloc_guard;
pub mod cov;
pub mod engine;
pub mod hash;
pub mod targets;

#[global_allocator]
static GUARD: alloc_guard::Guard = alloc_guard::Guard;

/// `../shared/testdata` beside the repository, if present.
pub fn shared_testdata() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata");
    p.is_dir().then_some(p)
}

/// The committed seed corpus, `fuzz/seeds/<target>/`.
pub fn seeds_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}
