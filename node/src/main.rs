//! `stasis-node`: a replicated key-value server (Raft or Multi-Paxos) speaking RESP2.
//! See docs/NODE.md.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use node::boot;
use node::config::{self, NodeConfig};
use node::runtime;
use node::storage::file::{Fs, RealFs};

fn main() {
    let cfg = match config::from_args(std::env::args_os()) {
        Ok(c) => c,
        Err((msg, 0)) => {
            print!("{msg}");
            std::process::exit(0);
        }
        Err((msg, code)) => {
            eprintln!("{msg}");
            std::process::exit(code);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    if let Err(e) = run(cfg) {
        eprintln!("stasis-node: {e:#}");
        std::process::exit(1);
    }
}

fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    // Durable creation: the data directory must not vanish in a power loss after the node
    // has answered anything.
    fs.create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "cannot create data dir {} (check the path and permissions)",
            cfg.data_dir.display()
        )
    })?;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ cfg.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let rt = boot::runtime_config(&cfg);
    if cfg.bugs.any() {
        let names = cfg.bugs.names().join(", ");
        tracing::warn!(bugs = %names, "SEEDED BUGS ON: this node deliberately violates consensus safety (--bug); never use it for real data");
        eprintln!(
            "stasis-node: WARNING: seeded bugs on ({names}): this node is deliberately unsafe"
        );
    }
    let clock = node::storage::process_clock();
    if cfg.protocol == "multipaxos" {
        let (core, storage) = boot::paxos(&cfg, fs, clock, seed)?;
        return runtime::run(rt, core, storage);
    }
    let (core, storage) = boot::raft(&cfg, fs, clock, seed)?;
    runtime::run(rt, core, storage)
}
