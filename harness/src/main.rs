//! `stasis`: a fault-injection test harness for replicated systems.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use harness::{
    analyze, campaign, check, cleanup, doctor, replay, run, selftest, serve, sim, store,
};

/// Stasis starts real nodes of a replicated system, breaks them on purpose (kill -9,
/// SIGSTOP, clock skew, network partitions), records every client operation and checks
/// that the history is linearizable.
///
/// Exit codes of commands that judge: 0 linearizable, 1 not linearizable, 2 unknown
/// (checker budget hit, nothing invalid), 3 bad input or harness/environment error.
#[derive(Parser, Debug)]
#[command(name = "stasis", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check that this machine can run fault-injection tests (root, namespaces, iptables,
    /// libfaketime, etcd, redis-cli) and say how to fix what is missing.
    ///
    /// The network checks create two `stasis-` namespaces joined by a bridge, open a TCP
    /// connection between them, add and remove an iptables rule inside one of them, and
    /// remove everything again. The host's own iptables rules are never touched.
    /// Exit 0 if everything the default test needs is present, 1 otherwise.
    Doctor(doctor::DoctorArgs),
    /// Run a test: start a cluster in network namespaces, run a workload under faults,
    /// record the history, check it, and leave a run directory under the store.
    ///
    /// With no flags: a 3-node Raft cluster for 60 s under a mix of all faults (kill,
    /// pause, partition, clock). Needs root.
    Test(Box<run::TestArgs>),
    /// Re-check a stored run (default: store/latest) and rewrite its results.json and
    /// summary.txt.
    Analyze {
        /// A run directory, or a store whose `latest` to use.
        #[arg(default_value = "store")]
        run_dir: PathBuf,
        /// Budget for the linearizability check.
        #[arg(long, default_value = "120s", value_parser = run::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Remove what killed runs left behind: node processes, `stasis-` links and
    /// namespaces recorded by runs whose harness is gone. Live runs are not touched.
    Clean {
        /// Clean these remote hosts instead of this machine: kill the nodes of every run
        /// directory under each host's `dir` and their agents, detach their disk-fault
        /// mounts, remove those directories and our iptables chains (do not run it while
        /// a run uses the hosts).
        #[arg(long)]
        hosts: Option<PathBuf>,
    },
    /// Check a saved history for linearizability.
    Check(check::CheckArgs),
    /// Prove the harness catches real consensus bugs: run each seeded bug (`stasis-node
    /// --bug NAME`) under its targeted faults until the first violation, and the correct
    /// builds under the same faults. Exit 0 if every bug was caught and no correct build
    /// showed a violation, 1 otherwise, 3 on a harness error or Ctrl-C.
    Selftest(selftest::SelftestArgs),
    /// Deterministic simulation: run the same Raft or Multi-Paxos cores, storage code and
    /// request handling as stasis-node, N nodes in one process over a seeded network,
    /// simulated disks and clocks, under fault schedules drawn from seeds. Each history is
    /// checked; a failing seed leaves a run directory, is shrunk, and replays bit for bit.
    /// Exit 0 all linearizable, 1 a violation, 2 unknown, 3 bad input.
    Sim(Box<sim::SimArgs>),
    /// Run a matrix of tests (systems x nemesis sets x workloads x node counts x seeds)
    /// from a TOML file within a time budget; write campaign.json, summary.txt and
    /// junit.xml. Exit 0 all linearizable, 1 any not, 2 any unknown, 3 harness error.
    Campaign(campaign::CampaignArgs),
    /// Start a new run with a stored run's options, seed and nemesis schedule (process
    /// timing is not reproduced).
    Replay(replay::ReplayArgs),
    /// A read-only web UI over a run store: runs, campaigns and selftests newest first,
    /// each run with its summary, report, plots and files. Binds to loopback by default;
    /// binding elsewhere exposes every file in the store.
    Serve(serve::ServeArgs),
    /// The packet delayer of a remote host (started by `stasis test --hosts` over ssh,
    /// not by hand): queues the host's traffic to `--peers` and answers requests on stdin
    /// until stdin closes, then removes its rules.
    #[command(name = "netfault-agent", hide = true)]
    NetfaultAgent {
        /// The other nodes' addresses, comma-separated.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<std::net::Ipv4Addr>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The disk-fault filesystem of a remote host (started by `stasis test --hosts` over
    /// ssh, not by hand): mounts it over `--mount` (state in `--backing`) and applies the
    /// faults it is sent on stdin until stdin closes or SIGTERM/SIGINT, then unmounts.
    #[command(name = "diskfault-agent", hide = true)]
    DiskfaultAgent {
        #[arg(long)]
        backing: PathBuf,
        #[arg(long)]
        mount: PathBuf,
        /// The node's name (in the mount's source, `stasis-<pid>-<node>`).
        #[arg(long)]
        node: String,
    },
}

/// mimalloc: the reader's per-event values and the search's small allocations cost a
/// fraction of glibc malloc's instructions (docs/BENCHMARKS.md, "Checker").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STASIS_LOG")
                // The ZooKeeper client warns of every session it cannot open, which is what
                // faults cause; the outcomes are in the history.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,zookeeper_client=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    // Usage errors exit 3 ("bad input"), not clap's 2, which means "unknown" here.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 3 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match &cli.command {
        Cmd::Doctor(args) => doctor::run(args),
        Cmd::Check(args) => check::run(args),
        Cmd::Test(args) => run::run(args),
        Cmd::Analyze { run_dir, timeout } => analyze_cmd(run_dir, *timeout),
        Cmd::Clean { hosts: Some(h) } => clean_hosts_cmd(h),
        Cmd::Clean { hosts: None } => clean_cmd(),
        Cmd::Selftest(args) => selftest::finish(if args.sim {
            sim::selftest::execute(args)
        } else {
            selftest::execute(args)
        }),
        Cmd::Sim(args) => sim::run(args),
        Cmd::Campaign(args) => campaign::run(args),
        Cmd::Replay(args) => replay::run(args),
        Cmd::Serve(args) => serve::run(args),
        Cmd::NetfaultAgent { peers, seed } => harness::netfault::agent::serve(peers, *seed),
        Cmd::DiskfaultAgent {
            backing,
            mount,
            node,
        } => harness::diskfs::agent::serve(backing, mount, node),
    };
    ExitCode::from(code)
}

fn analyze_cmd(arg: &std::path::Path, timeout: std::time::Duration) -> u8 {
    let result =
        store::resolve_run(arg).and_then(|dir| analyze::analyze_run(&dir, None, None, timeout));
    match result {
        Ok(report) => {
            println!("{}", report.summary_text.trim_end());
            report.exit_code
        }
        Err(e) => {
            eprintln!("stasis analyze: {e:#}");
            3
        }
    }
}

fn clean_hosts_cmd(path: &std::path::Path) -> u8 {
    let result = harness::remote::Remote::connect(path).and_then(|r| {
        let done = r.each(|_, h| harness::remote::clean_host(h))?;
        for (k, c) in done.iter().enumerate() {
            println!(
                "host {} ({}): removed {} processes, {} run directories, {} iptables chains, {} disk mounts",
                k + 1,
                r.hosts[k].target(),
                c.processes,
                c.dirs,
                c.chains,
                c.mounts
            );
        }
        Ok(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("stasis clean: {e:#}");
            3
        }
    }
}

fn clean_cmd() -> u8 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("stasis clean: not root: removing namespaces needs CAP_NET_ADMIN (run as root)");
        return 3;
    }
    match cleanup::clean_stale() {
        Ok(c) => {
            println!(
                "removed {} processes, {} links, {} namespaces of {} stale run(s), {} disk mounts",
                c.processes, c.links, c.namespaces, c.runs, c.mounts
            );
            for e in &c.errors {
                eprintln!("stasis clean: {e}");
            }
            if c.errors.is_empty() { 0 } else { 3 }
        }
        Err(e) => {
            eprintln!("stasis clean: {e:#}");
            3
        }
    }
}
