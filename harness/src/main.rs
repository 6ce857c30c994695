//! `stasis`: a fault-injection test harness for replicated systems.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use harness::{check, doctor};

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
    /// Check a saved history for linearizability.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STASIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
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
    };
    ExitCode::from(code)
}
