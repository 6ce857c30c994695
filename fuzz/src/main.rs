//! `stasis-fuzz`: runs the parser fuzz targets. See scripts/fuzz.sh.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use stasis_fuzz::cov::Coverage;
use stasis_fuzz::engine::{self, Budget, Dirs, Fuzzer};
use stasis_fuzz::targets::{self, TARGETS};

#[derive(Parser)]
#[command(about = "Fuzz Stasis' parsers (coverage-guided when built by scripts/fuzz.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the targets.
    List,
    /// Fuzz one target (or all, one after another).
    Run {
        /// Target name (see `list`), or `all`.
        target: String,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Stop a target after this many executions (whichever comes first).
        #[arg(long)]
        execs: Option<u64>,
        /// Random seed of the mutator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Working corpus root: `<DIR>/<target>/` is read at start and receives new inputs.
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Where crashing inputs are written.
        #[arg(long)]
        artifacts: Option<PathBuf>,
        /// Also write the result rows as JSON lines to this file (appended).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run inputs through a target once each (reproduce a crash).
    Replay { target: String, files: Vec<PathBuf> },
}

fn target_or_exit(name: &str) -> Result<&'static engine::Target, ExitCode> {
    targets::by_name(name).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "stasis-fuzz: unknown target {name:?}; the targets are: {}",
            names.join(", ")
        );
        ExitCode::from(3)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::List => {
            for t in TARGETS {
                println!("{:<20} {}", t.name, t.about);
            }
            ExitCode::SUCCESS
        }
        Cmd::Replay { target, files } => {
            let t = match target_or_exit(&target) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let mut failed = false;
            for f in files {
                let input = match std::fs::read(&f) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("stasis-fuzz: cannot read {}: {e}", f.display());
                        return ExitCode::from(3);
                    }
                };
                match engine::execute(t, &input) {
                    Ok(sig) => println!("{}: ok (outcome {sig:016x})", f.display()),
                    Err((loc, msg)) => {
                        failed = true;
                        println!("{}: PANIC at {loc}: {msg}", f.display());
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::Run {
            target,
            seconds,
            execs,
            seed,
            corpus,
            artifacts,
            json,
        } => {
            let chosen: Vec<&engine::Target> = if target == "all" {
                TARGETS.iter().collect()
            } else {
                match target_or_exit(&target) {
                    Ok(t) => vec![t],
                    Err(c) => return c,
                }
            };
            if let Some(dir) = &artifacts {
                // Oversized allocations abort; their inputs go beside the crashes.
                let _ = std::fs::create_dir_all(dir);
                // SAFETY: single-threaded at this point (no target has run yet).
                unsafe { std::env::set_var("STASIS_FUZZ_OOM_DIR", dir) };
            }
            println!(
                "coverage feedback: {}",
                if Coverage::available() {
                    format!("on ({} instrumented regions)", Coverage::total_regions())
                } else {
                    "off (outcome signatures only; scripts/fuzz.sh builds with coverage)"
                        .to_string()
                }
            );
            println!(
                "{:<20} {:>11} {:>9} {:>8} {:>9} {:>7} {:>8} {:>9} {:>7}",
                "target",
                "execs",
                "execs/s",
                "corpus",
                "bytes",
                "added",
                "regions",
                "slowest",
                "crashes"
            );
            let shared = stasis_fuzz::shared_testdata();
            let mut crashed = false;
            for t in chosen {
                let mut seeds = engine::seeds(t, &stasis_fuzz::seeds_root(), shared.as_deref());
                let corpus_dir = corpus.as_ref().map(|c| c.join(t.name));
                if let Some(dir) = &corpus_dir {
                    seeds.extend(engine::read_dir_inputs(dir).into_iter().map(|(_, b)| b));
                }
                let dirs = Dirs {
                    corpus_out: corpus_dir,
                    artifacts: artifacts.clone(),
                };
                let mut fuzzer = Fuzzer::new(t, seeds, seed, dirs);
                let report = fuzzer.run(&Budget {
                    time: Duration::from_secs(seconds),
                    execs,
                });
                println!(
                    "{:<20} {:>11} {:>9.0} {:>8} {:>9} {:>7} {:>8} {:>7}ms {:>7}",
                    t.name,
                    report.execs,
                    report.execs_per_sec(),
                    report.corpus_inputs,
                    report.corpus_bytes,
                    report.added,
                    report.regions,
                    report.slowest.as_millis(),
                    report.crashes.len()
                );
                for c in &report.crashes {
                    crashed = true;
                    println!(
                        "  CRASH at {}: {} (input {})",
                        c.location,
                        c.message.replace('\n', " "),
                        c.saved
                            .as_ref()
                            .map_or("not saved; pass --artifacts".into(), |p| p
                                .display()
                                .to_string())
                    );
                }
                if let Some(path) = &json {
                    let row = serde_json::json!({
                        "target": t.name,
                        "execs": report.execs,
                        "seconds": report.elapsed.as_secs_f64(),
                        "corpus_inputs": report.corpus_inputs,
                        "corpus_bytes": report.corpus_bytes,
                        "added": report.added,
                        "regions": report.regions,
                        "total_regions": report.total_regions,
                        "crashes": report.crashes.len(),
                        "coverage": Coverage::available(),
                    });
                    use std::io::Write;
                    let ok = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| writeln!(f, "{row}"));
                    if let Err(e) = ok {
                        eprintln!("stasis-fuzz: cannot write {}: {e}", path.display());
                        return ExitCode::from(3);
                    }
                }
            }
            if crashed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
