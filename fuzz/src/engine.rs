//! The fuzzing loop: mutate a corpus input, run the target in-process, keep inputs that
//! reach new coverage (or a new outcome signature), record panics as crashes.
//!
//! Why this and not cargo-afl or cargo-fuzz: libFuzzer needs a nightly toolchain, which
//! cannot be installed here; cargo-afl needs its own AFL++ build (`cargo afl config
//! --build`, a compiler-plugin build that must match cargo-afl's version, while Debian ships
//! afl++ 4.04c) on every CI machine, and runs each target as a separate forkserver binary.
//! This engine needs nothing beyond stable Rust: coverage comes from LLVM's own counters
//! ([`crate::cov`]), targets run in one process at 10^4-10^5 executions per second, and the
//! same code runs as a plain `cargo test` (outcome signatures instead of coverage) in CI.
//! Structured inputs (the storage corruption programs) are drawn with `arbitrary`.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::alloc_guard;
use crate::cov::Coverage;
use crate::hash::fnv;

/// One fuzz target: a parser entry point and what helps mutate its inputs.
pub struct Target {
    pub name: &'static str,
    /// What it exercises (one line, for `stasis-fuzz list`).
    pub about: &'static str,
    /// Runs one input; returns a signature of the outcome (error kind, shape of the
    /// result). Panics are crashes; a violated invariant is a panic too.
    pub run: fn(&[u8]) -> u64,
    /// Tokens of the input language, spliced in by the mutator.
    pub dict: &'static [&'static str],
    /// Inputs are cut to this length.
    pub max_len: usize,
    /// Seeds from ../shared/testdata: (subdirectory, file-name suffix).
    pub shared_seeds: &'static [(&'static str, &'static str)],
}

/// Budget of one fuzzing session.
#[derive(Clone, Debug)]
pub struct Budget {
    pub time: Duration,
    pub execs: Option<u64>,
}

/// A distinct crash: the panic location, message and the input (saved if an artifact
/// directory was given).
#[derive(Clone, Debug)]
pub struct Crash {
    pub location: String,
    pub message: String,
    pub input: Vec<u8>,
    pub saved: Option<PathBuf>,
}

/// What a session did.
#[derive(Debug, Default)]
pub struct Report {
    pub execs: u64,
    pub elapsed: Duration,
    pub corpus_inputs: usize,
    pub corpus_bytes: usize,
    /// Inputs added to the corpus in this session.
    pub added: usize,
    /// Coverage regions hit (0 without instrumentation) and instrumented in total.
    pub regions: usize,
    pub total_regions: usize,
    pub signatures: usize,
    pub crashes: Vec<Crash>,
    /// The slowest execution and its length.
    pub slowest: Duration,
}

impl Report {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static PANIC: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once) a panic hook that records the panic's location and message for the
/// fuzzer instead of printing it; panics outside a fuzzed execution still print.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !alloc_guard::in_execution() {
                return default(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "unknown".into());
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "non-string panic".into()
            };
            PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
        }));
    });
}

/// Runs `input` once; `Err((location, message))` if it panicked.
pub fn execute(target: &Target, input: &[u8]) -> Result<u64, (String, String)> {
    install_panic_hook();
    let result = alloc_guard::during(input, || {
        panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)))
    });
    result.map_err(|_| {
        PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| ("unknown".into(), "panic".into()))
    })
}

/// Reads every regular file of `dir` (missing: none), sorted by name.
pub fn read_dir_inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

/// Where a session keeps what it finds.
#[derive(Clone, Debug, Default)]
pub struct Dirs {
    /// New corpus inputs are written here (none: kept in memory only).
    pub corpus_out: Option<PathBuf>,
    /// Crashing inputs are written here.
    pub artifacts: Option<PathBuf>,
}

/// A fuzzing session over one target.
pub struct Fuzzer<'t> {
    target: &'t Target,
    rng: ChaCha8Rng,
    corpus: Vec<Vec<u8>>,
    coverage: Coverage,
    signatures: HashSet<u64>,
    /// Coverage counters are present.
    guided: bool,
    dirs: Dirs,
}

impl<'t> Fuzzer<'t> {
    /// A session starting from `seeds` (an empty input is always added).
    pub fn new(target: &'t Target, seeds: Vec<Vec<u8>>, seed: u64, dirs: Dirs) -> Self {
        let mut corpus: Vec<Vec<u8>> = seeds
            .into_iter()
            .map(|mut s| {
                s.truncate(target.max_len);
                s
            })
            .collect();
        corpus.push(Vec::new());
        corpus.sort();
        corpus.dedup();
        Fuzzer {
            target,
            rng: ChaCha8Rng::seed_from_u64(seed),
            corpus,
            coverage: Coverage::default(),
            signatures: HashSet::new(),
            guided: Coverage::available(),
            dirs,
        }
    }

    /// Runs the seeds, then mutated inputs until the budget is spent.
    pub fn run(&mut self, budget: &Budget) -> Report {
        let start = Instant::now();
        let mut report = Report::default();
        let mut crash_sites = HashSet::new();
        let seeds = std::mem::take(&mut self.corpus);
        let mut queue: Vec<Vec<u8>> = seeds;
        let mut from_seeds = queue.len();
        queue.reverse();
        loop {
            let input = if let Some(s) = queue.pop() {
                s
            } else {
                from_seeds = 0;
                if self.corpus.is_empty() {
                    self.corpus.push(Vec::new());
                }
                self.mutate()
            };
            let t0 = Instant::now();
            Coverage::reset();
            let outcome = execute(self.target, &input);
            let took = t0.elapsed();
            report.slowest = report.slowest.max(took);
            report.execs += 1;
            let new_cov = self.coverage.absorb();
            match outcome {
                Ok(sig) => {
                    // With coverage, coverage alone decides (signatures would keep every
                    // input whose error message differs); without, signatures do.
                    let new_sig = self.signatures.insert(sig) && !self.guided;
                    // Seeds always enter the corpus; later inputs only with something new.
                    if from_seeds > 0 || new_cov > 0 || new_sig {
                        if from_seeds == 0 {
                            report.added += 1;
                            self.save_corpus(&input);
                        }
                        self.corpus.push(input);
                    }
                }
                Err((location, message)) => {
                    if crash_sites.insert(location.clone()) {
                        let saved = self.save_crash(&input);
                        report.crashes.push(Crash {
                            location,
                            message,
                            input,
                            saved,
                        });
                    }
                }
            }
            from_seeds = from_seeds.saturating_sub(1);
            let spent = start.elapsed();
            if queue.is_empty()
                && (spent >= budget.time || budget.execs.is_some_and(|n| report.execs >= n))
            {
                break;
            }
        }
        report.elapsed = start.elapsed();
        report.corpus_inputs = self.corpus.len();
        report.corpus_bytes = self.corpus.iter().map(Vec::len).sum();
        report.regions = self.coverage.regions();
        report.total_regions = Coverage::total_regions();
        report.signatures = self.signatures.len();
        report
    }

    fn save_corpus(&self, input: &[u8]) {
        if let Some(dir) = &self.dirs.corpus_out {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join(format!("{:016x}", fnv(input))), input);
        }
    }

    fn save_crash(&self, input: &[u8]) -> Option<PathBuf> {
        let dir = self.dirs.artifacts.as_ref()?;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join(format!("crash-{}-{:016x}", self.target.name, fnv(input)));
        std::fs::write(&path, input).ok()?;
        Some(path)
    }

    /// A new input: a corpus entry with a stack of 1-16 mutations.
    fn mutate(&mut self) -> Vec<u8> {
        let i = self.rng.random_range(0..self.corpus.len());
        let mut data = self.corpus[i].clone();
        let ops = 1 << self.rng.random_range(0..5);
        for _ in 0..ops {
            self.mutate_once(&mut data);
        }
        data.truncate(self.target.max_len);
        data
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>) {
        const BYTES: &[u8] = b"\0\x01\x7f\x80\xff\n\r\t \"'{}[]():;,#\\-0";
        const NUMBERS: &[&str] = &[
            "-1",
            "0",
            "1",
            "-0",
            "255",
            "65536",
            "2147483648",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "-9223372036854775809",
            "1e308",
            "1e-400",
            "NaN",
            "99999999999999999999999999",
        ];
        const WORDS: &[u64] = &[0, 1, 0x7fff_ffff, 0x8000_0000, 0x8000_0008, 0xffff_ffff];
        let rng = &mut self.rng;
        let len = data.len();
        let pos = |rng: &mut ChaCha8Rng, extra: usize| rng.random_range(0..len + extra);
        match rng.random_range(0..14u8) {
            0 if len > 0 => {
                let p = pos(rng, 0);
                data[p] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let p = pos(rng, 0);
                data[p] = rng.random();
            }
            2 if len > 0 => {
                let p = pos(rng, 0);
                data[p] = BYTES[rng.random_range(0..BYTES.len())];
            }
            3 => {
                let p = pos(rng, 1);
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(p..p, bytes);
            }
            4 if len > 0 => {
                let p = pos(rng, 0);
                let n = rng.random_range(1..=(len - p).min(64));
                data.drain(p..p + n);
            }
            5 if len > 0 => {
                let p = pos(rng, 0);
                let n = rng.random_range(1..=(len - p).min(256));
                let chunk = data[p..p + n].to_vec();
                let q = rng.random_range(0..=len);
                data.splice(q..q, chunk);
            }
            6 | 7 if !self.target.dict.is_empty() => {
                let tok = self.target.dict[rng.random_range(0..self.target.dict.len())];
                let p = pos(rng, 1);
                if rng.random_bool(0.5) || p == len {
                    data.splice(p..p, tok.bytes());
                } else {
                    let end = (p + tok.len()).min(len);
                    data.splice(p..end, tok.bytes());
                }
            }
            8 => {
                let other = &self.corpus[rng.random_range(0..self.corpus.len())];
                let cut_a = pos(rng, 1);
                let cut_b = rng.random_range(0..=other.len());
                data.truncate(cut_a);
                data.extend_from_slice(&other[cut_b..]);
            }
            9 => {
                let n = NUMBERS[rng.random_range(0..NUMBERS.len())];
                let p = pos(rng, 1);
                // Replace a run of digits at p, if any, else insert.
                let end = data[p..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |i| p + i);
                data.splice(p..end, n.bytes());
            }
            10 if len > 0 => {
                let p = pos(rng, 0);
                let d: i8 = rng.random_range(-35..=35);
                data[p] = data[p].wrapping_add_signed(d);
            }
            11 if len > 0 => data.truncate(pos(rng, 0)),
            12 if len >= 4 => {
                let p = rng.random_range(0..=len - 4);
                let w = WORDS[rng.random_range(0..WORDS.len())] as u32;
                data[p..p + 4].copy_from_slice(&w.to_le_bytes());
            }
            _ => {
                // Repeat a chunk many times (long lines, deep nesting, big counts).
                if len > 0 {
                    let p = pos(rng, 0);
                    let n = rng.random_range(1..=(len - p).min(16));
                    let chunk = data[p..p + n].to_vec();
                    let times = rng.random_range(2..=256);
                    let rep: Vec<u8> = chunk.repeat(times);
                    data.splice(p..p, rep);
                } else {
                    data.extend(rng.random::<[u8; 8]>());
                }
            }
        }
    }
}

/// Seeds of `target`: its committed corpus (`fuzz/seeds/<name>`), then the matching files
/// of `shared` (../shared/testdata), each cut to `max_len`.
pub fn seeds(target: &Target, seeds_root: &Path, shared: Option<&Path>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = read_dir_inputs(&seeds_root.join(target.name))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    if let Some(shared) = shared {
        for (sub, suffix) in target.shared_seeds {
            let mut files = Vec::new();
            collect_files(&shared.join(sub), &mut files);
            files.sort();
            for f in files {
                if f.to_string_lossy().ends_with(suffix)
                    && let Ok(b) = std::fs::read(&f)
                {
                    out.push(b);
                }
            }
        }
    }
    for s in &mut out {
        s.truncate(target.max_len);
    }
    out
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Turns a message into a signature: only its letters and spaces outside quotes
/// (`"..."`, `'...'`, `` `...` ``), at most 48 of them, so "line 3: unknown field `x`" and
/// "line 7: unknown field `y`" are the same outcome.
pub fn signature(kind: &str, message: &str) -> u64 {
    let mut norm = String::with_capacity(kind.len() + 48);
    norm.push_str(kind);
    let mut quote: Option<char> = None;
    let mut kept = 0;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None if c.is_ascii_alphabetic() || c == ' ' => {
                norm.push(c);
                kept += 1;
                if kept == 48 {
                    break;
                }
            }
            None => {}
        }
    }
    fnv(norm.as_bytes())
}

/// Used by targets: the signature of a count, by powers of two.
pub fn size_class(n: usize) -> u64 {
    u64::from(usize::BITS - n.leading_zeros())
}
