//! `stasis check` without the harness, for benchmarks of the checker alone:
//! `cargo run --release -p checker --example check -- FILE [MODEL] [by-key|none]`.
//! Prints `verdict ops check_ms`; exit codes as `stasis check`. With `CHECK_STATS=N` set,
//! also prints the N slowest partitions (key, ops, verdict, ms, steps, memo entries) to stderr;
//! `CHECK_THREADS=N` sets the number of worker threads (default: one per core).
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: check FILE [MODEL] [by-key|none]");
        std::process::exit(3);
    };
    let (ops, format, _) = match checker::format::load_operations(std::path::Path::new(&path), None)
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    };
    let model = args
        .next()
        .and_then(|m| checker::ModelKind::from_id(&m))
        .unwrap_or(format.default_model());
    let mut opts = checker::CheckOptions::for_format(model, format);
    opts.by_key = args.next().map(|p| p == "by-key");
    if let Some(n) = std::env::var("CHECK_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        opts.threads = n;
    }
    match checker::check_operations(&ops, &opts) {
        Ok(r) => {
            println!("{} {} {:.1}", r.verdict.id(), r.ops, r.elapsed_ms);
            if let Some(n) = std::env::var("CHECK_STATS")
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
            {
                let mut parts = r.partitions.clone();
                parts.sort_by(|a, b| b.elapsed_ms.total_cmp(&a.elapsed_ms));
                for p in parts.iter().take(n) {
                    eprintln!(
                        "{:?} ops={} {} {:.2} ms steps={} memo={}",
                        p.key,
                        p.ops,
                        p.verdict.id(),
                        p.elapsed_ms,
                        p.steps,
                        p.memo_entries
                    );
                }
            }
            std::process::exit(i32::from(r.verdict.exit_code()));
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    }
}
