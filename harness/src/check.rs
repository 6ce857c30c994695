//! `stasis check`: re-check a saved history file.
//!
//! Exit codes: 0 linearizable, 1 not linearizable, 2 unknown (time or memory budget ran
//! out), 3 bad input (one line on stderr: `file:line: what is wrong`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use checker::format::{self, ExportFormat, Format};
use checker::{CheckOptions, ModelKind, Verdict};

/// Arguments of `stasis check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// History file to check (Stasis JSONL, Jepsen EDN, Porcupine etcd or kv log).
    pub file: PathBuf,
    /// Model: register, cas-register, kv, multi-register, mutex, set, unordered-queue,
    /// fifo-queue, porcupine-etcd, porcupine-kv [default: by format; kv for JSONL].
    #[arg(long)]
    pub model: Option<String>,
    /// Format: jsonl, jepsen-edn, porcupine-etcd-log, porcupine-kv-edn [default: detected].
    #[arg(long)]
    pub format: Option<String>,
    /// The model's initial state as JSON (e.g. 0, or {"x":0,"y":0}) [default: nil/empty].
    #[arg(long)]
    pub initial: Option<String>,
    /// by-key: check each key independently; none: one partition [default: by model].
    #[arg(long)]
    pub partition: Option<String>,
    /// Time budget; when it runs out the verdict is unknown (exit 2).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Memory budget of the whole process, e.g. 2G or 500M. What the process holds when
    /// the check starts (the parsed history) and a 24 MiB reserve come off it; the rest is
    /// shared by the searches (memo, stacks, model caches), which stop rather than grow
    /// past it: the verdict is unknown (exit 2), saying so and how far the search got.
    /// Peak RSS stays within the budget plus a few MiB; parsing itself is not capped.
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    pub max_memory: usize,
    /// Worker threads of the check, and parser threads of a big JSONL file (default: one
    /// per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Only read and pair the history, print `{"file","bytes","ops","parse_ms","mb_per_s"}`
    /// as JSON and exit 0 (a benchmark of the reader; no verdict).
    #[arg(long)]
    pub parse_only: bool,
    /// Write a self-contained HTML report (timeline of the failing key) to this path.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the history (as read) to this path: EDN if it ends in .edn, else JSONL.
    #[arg(long)]
    pub export: Option<PathBuf>,
}

use crate::units::parse_duration;

/// Parses `4G`, `512M`, `100K` or a number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1usize << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (use 512M or 4G)"))?;
    Ok((n * mult as f64) as usize)
}

fn bad(msg: impl std::fmt::Display) -> u8 {
    eprintln!("stasis check: {msg}");
    3
}

/// Runs the check and returns the process exit code.
pub fn run(args: &CheckArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(msg) => bad(msg),
    }
}

fn run_inner(args: &CheckArgs) -> Result<u8, String> {
    let started = Instant::now();
    let format = match &args.format {
        None => None,
        Some(f) => Some(Format::from_id(f).ok_or_else(|| {
            format!(
                "unknown --format {f:?} (use one of: {})",
                Format::ALL.map(|f| f.id()).join(", ")
            )
        })?),
    };
    let model = match &args.model {
        None => None,
        Some(m) => Some(ModelKind::from_id(m).ok_or_else(|| {
            format!(
                "unknown --model {m:?} (use one of: {})",
                ModelKind::ALL.map(|m| m.id()).join(", ")
            )
        })?),
    };
    let by_key = match args.partition.as_deref() {
        None => None,
        Some("by-key") => Some(true),
        Some("none") => Some(false),
        Some(p) => return Err(format!("unknown --partition {p:?} (use by-key or none)")),
    };
    let initial = match &args.initial {
        None => None,
        Some(s) => Some(serde_json::from_str::<serde_json::Value>(s).map_err(|e| {
            format!(
                "--initial {s:?} is not JSON ({e}); e.g. --initial 0 or --initial '{{\"x\":0}}'"
            )
        })?),
    };
    // Big JSONL histories are streamed straight into operations; --export needs the events.
    let (ops, fmt, warnings) = match &args.export {
        None => format::load_operations_with(&args.file, format, args.threads)
            .map_err(|e| e.to_string())?,
        Some(p) => {
            let loaded = format::load(&args.file, format).map_err(|e| e.to_string())?;
            let f = if p.extension().is_some_and(|e| e == "edn") {
                ExportFormat::Edn
            } else {
                ExportFormat::Jsonl
            };
            let file = std::fs::File::create(p)
                .map_err(|e| format!("{}: {e} (cannot write the export)", p.display()))?;
            format::export(&loaded.ops, f, file)
                .map_err(|e| format!("{}: {e} (cannot write the export)", p.display()))?;
            (
                checker::history::pair(&loaded.ops),
                loaded.format,
                loaded.warnings,
            )
        }
    };
    let parse_ms = started.elapsed().as_secs_f64() * 1e3;
    for w in &warnings {
        eprintln!("stasis check: warning: {w}");
    }
    if args.parse_only {
        let bytes = std::fs::metadata(&args.file).map_or(0, |m| m.len());
        let v = serde_json::json!({
            "file": args.file.display().to_string(),
            "format": fmt.id(),
            "bytes": bytes,
            "ops": ops.len(),
            "parse_ms": parse_ms,
            "mb_per_s": bytes as f64 / 1e3 / parse_ms,
        });
        println!("{v}");
        return Ok(0);
    }
    let model = model.unwrap_or(fmt.default_model());
    let mut opts = CheckOptions::for_format(model, fmt);
    opts.initial = initial;
    opts.by_key = by_key;
    opts.timeout = Some(args.timeout.saturating_sub(started.elapsed()));
    opts.max_memo_bytes = args.max_memory;
    opts.threads = args.threads;
    let result = checker::check_operations(&ops, &opts)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    if let Some(p) = &args.html {
        let title = args.file.display().to_string();
        write(p, &checker::report::html(&result, &title))?;
    }
    if args.json {
        let mut v = checker::report::json(&result, &args.file.display().to_string(), fmt);
        // Reading and pairing the file, before the check's own elapsed_ms.
        v["parse_ms"] = serde_json::json!(parse_ms);
        println!("{v}");
    } else {
        print!("{}", checker::report::text(&result));
        if let Some(p) = &args.html {
            println!("HTML report: {}", p.display());
        }
    }
    // The process exits next: freeing a big history's operations one by one (a million
    // operations, each with its values) would only delay the exit by a tenth of a second.
    std::mem::forget(ops);
    Ok(match result.verdict {
        Verdict::Linearizable => 0,
        Verdict::NotLinearizable => 1,
        Verdict::Unknown => 2,
    })
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("{}: {e} (cannot write the report)", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("abc").is_err());
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
    }
}
