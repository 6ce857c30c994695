//! Times the JSONL reader alone (read, validate, pair), for profiling it without the
//! harness: `cargo run --release -p checker --example parse_jsonl -- FILE [THREADS]`
//! (THREADS: 0 = one per core, the default; 1 = parse on the calling thread).

use std::path::Path;
use std::time::Instant;

/// The allocator of the `stasis` binary, so the reader is measured as `stasis check` runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: parse_jsonl FILE [THREADS]");
        std::process::exit(3);
    };
    let threads = match args.get(2).map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(t)) => t,
        Some(Err(_)) => {
            eprintln!("parse_jsonl: THREADS must be a number");
            std::process::exit(3);
        }
    };
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    match checker::history::read_jsonl_operations_with(Path::new(file), threads) {
        Ok((ops, warnings)) => {
            let s = t.elapsed().as_secs_f64();
            println!(
                "{} operations, {} warnings, {:.1} ms, {:.0} MB/s",
                ops.len(),
                warnings.len(),
                s * 1e3,
                bytes as f64 / 1e6 / s
            );
        }
        Err(e) => {
            eprintln!("parse_jsonl: {e}");
            std::process::exit(3);
        }
    }
}
