//! `stasis sim`: deterministic simulation. The same cores, storage code and request
//! handling as `stasis-node`, N nodes in one process over a seeded network and simulated
//! disks and clocks ([`world`]), under a fault schedule drawn from the seed
//! ([`schedule`]). Each schedule's client history is the usual JSONL, checked by the
//! usual checker; a failing seed leaves a normal run directory (test.json, history.jsonl,
//! results.json, report.html) and is shrunk to a smaller failing schedule.

pub mod agreement;
pub mod campaign;
pub mod progress;
pub mod schedule;
pub mod selftest;
pub mod world;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use checker::ModelKind;
use checker::history::Op;
use checker::{CheckOptions, check_history};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::generator::Mix;
use crate::run::parse_duration;
use crate::settings;
use crate::store::{RunDir, utc_timestamp};
use crate::sut::SutSpec;
use schedule::Fault;
use world::{World, WorldOptions};

/// Options of `stasis sim`.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// raft or multipaxos.
    #[arg(long, default_value = "raft")]
    pub protocol: String,
    /// Switch on a seeded bug in every node (repeatable), as `stasis-node --bug`.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// Number of nodes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// The first seed (default: drawn from the clock and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How many schedules to run (seeds seed, seed+1, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// Simulated time of one schedule.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sim_time: Duration,
    /// Stop starting schedules after this much wall time (0 = no limit).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub budget: Duration,
    /// Fault kinds: all, none, or a comma-separated list of crash, pause, partition, net,
    /// drift, clock, bounce, churn, transition, reconfig, persist, stall, torn, freeze,
    /// tcp, outage. `all` is every kind but reconfig (membership changes), persist (kills
    /// at storage events, slow syncs), stall (batched, interleaved input), torn (power
    /// losses on a disk with no ordering guarantees), freeze (several nodes paused and
    /// resumed at one instant), tcp (the runtime's transport) and outage (several nodes
    /// losing power at one instant), which are named: `--faults all,reconfig,outage`.
    #[arg(long, default_value = "all")]
    pub faults: String,
    /// Swarm testing: each schedule draws its faults from a subset of --faults chosen by
    /// its seed (each kind kept with probability 1/2, at least one), so some schedules
    /// give a few kinds long stretches that the others would interrupt. Replays and
    /// shrinking use the recorded schedule.
    #[arg(long)]
    pub swarm: bool,
    /// Spare nodes besides --nodes: started empty in join mode, they become voters only
    /// through membership changes (`reconfig` faults). Default: 2 with reconfig faults,
    /// else 0 (as `stasis test --spares`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=4))]
    pub spares: Option<u64>,
    /// Simulated client workers.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Target ops/s over all clients (simulated time).
    #[arg(long, default_value_t = 300.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 6)]
    pub keys: usize,
    #[arg(long, default_value_t = 30)]
    pub write_pct: u32,
    #[arg(long, default_value_t = 10)]
    pub cas_pct: u32,
    /// Written values take at least this many bytes (the number padded with `.`; reads
    /// strip it): real clients write values far larger than a counter, so each batch a
    /// node persists spans more of its disk's sectors. 0: the number alone (as before).
    #[arg(long, default_value_t = 0)]
    pub value_bytes: usize,
    /// A client gives up on an operation after this much simulated time.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// A flag for every simulated node, as `stasis-node` takes it (repeatable), e.g.
    /// `--node-arg=--read-mode --node-arg=lease`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Node settings: `vary` draws one choice of each knob of the protocol's built-in
    /// spec (`[[settings]]`: snapshot interval, batch sizes, timing, read mode, ...) per
    /// schedule from its seed, as `stasis test` does; `default` keeps the node's defaults.
    /// A knob set with --node-arg is not drawn.
    #[arg(long, value_enum, default_value = "vary")]
    pub settings: settings::Mode,
    /// Run store: run directories go to STORE/sim-<protocol>[-<bug>]/<timestamp>/.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Keep a run directory for every schedule, not only failing ones.
    #[arg(long)]
    pub keep: bool,
    /// Do not shrink a failing schedule.
    #[arg(long)]
    pub no_shrink: bool,
    /// Keep going after a failing schedule (default: stop at the first).
    #[arg(long)]
    pub keep_going: bool,
    /// Replay the schedule stored in a sim run directory's test.json (its seed, faults
    /// and options) instead of drawing one.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Budget of each linearizability check.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub check_timeout: Duration,
    /// Let the simulated nodes' own log lines through to stderr, each inside a `sim{t=..}`
    /// span naming the simulated second (filter with STASIS_LOG, e.g.
    /// `STASIS_LOG=node=debug,sim=info`). For diagnosing one schedule (with --replay or --seed);
    /// shrinking tries stay quiet.
    #[arg(long)]
    pub node_logs: bool,
}

/// Everything that determines one simulated run (stored as test.json).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SimSpec {
    pub mode: String,
    pub protocol: String,
    pub bugs: Vec<String>,
    pub nodes: u64,
    /// Spare nodes (n<nodes+1>...), started in join mode; 0 for runs recorded before
    /// simulated membership changes.
    #[serde(default)]
    pub spares: u64,
    pub seed: u64,
    pub sim_time_ns: u64,
    pub concurrency: usize,
    pub rate: f64,
    pub keys: usize,
    pub write_pct: u32,
    pub cas_pct: u32,
    /// [`SimArgs::value_bytes`] (0 in runs recorded before it).
    #[serde(default)]
    pub value_bytes: usize,
    pub op_timeout_ns: u64,
    pub node_args: Vec<String>,
    /// The node settings drawn for this schedule (appended to every node's flags after
    /// `node_args`); empty for `--settings default` and for runs recorded before sims
    /// drew settings.
    #[serde(default)]
    pub settings: Vec<settings::Drawn>,
    pub schedule: Vec<Fault>,
}

impl SimSpec {
    /// The spec of `seed` under `args`, with its schedule drawn from the seed.
    pub fn draw(args: &SimArgs, seed: u64) -> Result<SimSpec, String> {
        let kinds = schedule::parse_faults(&args.faults)?;
        if args.write_pct + args.cas_pct > 100 {
            return Err("--write-pct plus --cas-pct must be at most 100".into());
        }
        let sim_ns = args.sim_time.as_nanos() as u64;
        let spares = args
            .spares
            .unwrap_or(if kinds.contains(&"reconfig") { 2 } else { 0 });
        let drawn = match args.settings {
            settings::Mode::Vary => {
                let spec = SutSpec::load(&args.protocol).map_err(|_| {
                    format!(
                        "--protocol {:?} is unknown; use raft or multipaxos",
                        args.protocol
                    )
                })?;
                settings::draw(&spec.settings, seed, &args.node_args)
            }
            settings::Mode::Default => Vec::new(),
        };
        Ok(SimSpec {
            mode: "sim".into(),
            protocol: args.protocol.clone(),
            bugs: args.bugs.clone(),
            nodes: args.nodes,
            spares,
            seed,
            sim_time_ns: sim_ns,
            concurrency: args.concurrency.max(1),
            rate: args.rate,
            keys: args.keys.max(1),
            write_pct: args.write_pct,
            cas_pct: args.cas_pct,
            value_bytes: args.value_bytes,
            op_timeout_ns: args.op_timeout.as_nanos() as u64,
            node_args: args.node_args.clone(),
            settings: drawn,
            schedule: schedule::draw(
                seed,
                args.nodes,
                sim_ns,
                &if args.swarm {
                    schedule::swarm(seed, &kinds)
                } else {
                    kinds
                },
            ),
        })
    }

    pub(crate) fn node_flags(&self) -> Vec<String> {
        let mut v = self.node_args.clone();
        v.extend(settings::args(&self.settings));
        for b in &self.bugs {
            v.push("--bug".into());
            v.push(b.clone());
        }
        v
    }

    /// The test name of its run directories.
    pub fn test_name(&self) -> String {
        let mut s = format!("sim-{}", self.protocol);
        for b in &self.bugs {
            s.push('-');
            s.push_str(b);
        }
        s
    }
}

/// The result of one simulated schedule.
pub struct SimRun {
    pub history: Vec<u8>,
    pub ops: Vec<Op>,
    pub completions: u64,
    pub events: u64,
    /// Terms in which two nodes led at once ([`world::Outcome::split_terms`]).
    pub split_terms: u64,
    /// The checker's exit code: 0 linearizable, 1 not, 2 unknown.
    pub verdict: u8,
    /// Set when the schedule was stopped as a message storm ([`world::Outcome::storm`]).
    pub storm: Option<String>,
    /// Set when the cluster made no progress after the last fault healed
    /// ([`progress`]): a finding beside the verdict.
    pub stalled: Option<String>,
    /// Heal to progress, in election timeouts ([`world::Outcome::recovery_ns`]).
    pub recovery_timeouts: Option<f64>,
    /// A membership change answered "definitely not made" that took effect: a safety
    /// finding, counted as a violation ([`crate::nemesis::membership::AbortWatch`]).
    pub abort_violation: Option<String>,
    /// Two replicas that applied different entries, or held different states, at one
    /// index ([`world::Outcome::diverged`]): a safety finding, counted as a violation.
    pub diverged: Option<String>,
    /// A node that could not restart from its disk after a crash or power loss the disk
    /// model allows ([`world::Outcome::restart_failed`]): an availability finding.
    pub restart_failed: Option<String>,
}

/// How a schedule failed, for the summary and the shrinker (which keeps only smaller
/// schedules that fail the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The history is not linearizable.
    NotLinearizable,
    /// A membership change answered "definitely not made" took effect.
    AbortTookEffect,
    /// Two replicas applied different entries (or held different states) at one index:
    /// State Machine Safety broken, whether or not a client saw it.
    Diverged,
    /// Two nodes led in one Raft term: Raft's Election Safety broken, whether or not a
    /// client saw it ([`SimRun::split_terms`]).
    TwoLeaders,
    /// A node could not restart from what its disk kept (an availability finding).
    CannotRestart,
    /// No progress after the last fault healed (a liveness finding).
    NoProgress,
}

impl Failure {
    /// The failure's word in reports and selftest.json (`not-linearizable` is the
    /// checker's own, read back by [`crate::record::Verdict::of_word`]).
    pub fn name(self) -> &'static str {
        match self {
            Failure::NotLinearizable => checker::Verdict::NotLinearizable.id(),
            Failure::AbortTookEffect => "abort-took-effect",
            Failure::Diverged => "replicas-diverged",
            Failure::TwoLeaders => "two-leaders",
            Failure::CannotRestart => "cannot-restart",
            Failure::NoProgress => "no-progress",
        }
    }

    /// A safety finding (something happened that must never happen), not a liveness one.
    pub fn is_safety(self) -> bool {
        !matches!(self, Failure::CannotRestart | Failure::NoProgress)
    }
}

impl SimRun {
    /// The first of the failures this run shows (safety, then a node that cannot restart,
    /// then progress).
    pub fn failure(&self) -> Option<Failure> {
        if self.verdict == 1 {
            Some(Failure::NotLinearizable)
        } else if self.abort_violation.is_some() {
            Some(Failure::AbortTookEffect)
        } else if self.diverged.is_some() {
            Some(Failure::Diverged)
        } else if self.split_terms > 0 {
            Some(Failure::TwoLeaders)
        } else if self.restart_failed.is_some() {
            Some(Failure::CannotRestart)
        } else if self.stalled.is_some() {
            Some(Failure::NoProgress)
        } else {
            None
        }
    }

    /// What the report says about `failure` beside the verdict (`None` for the checker's
    /// own finding, which the report explains).
    pub fn finding(&self, failure: Failure) -> Option<String> {
        match failure {
            Failure::NotLinearizable => None,
            Failure::AbortTookEffect => self.abort_violation.clone(),
            Failure::Diverged => self.diverged.clone(),
            Failure::TwoLeaders => Some(format!(
                "two leaders in one term in {} term(s) (Raft Election Safety)",
                self.split_terms
            )),
            Failure::CannotRestart => self.restart_failed.clone(),
            Failure::NoProgress => self.stalled.clone(),
        }
    }
}

/// Runs one schedule and checks its history.
pub fn simulate(spec: &SimSpec, check_timeout: Duration) -> Result<SimRun> {
    simulate_with(spec, check_timeout, false)
}

/// [`simulate`], with the nodes' own log lines let through (`node_logs`) or silenced.
fn simulate_with(spec: &SimSpec, check_timeout: Duration, node_logs: bool) -> Result<SimRun> {
    let configs = world::node_configs(
        &spec.protocol,
        spec.nodes as usize,
        spec.spares as usize,
        &spec.node_flags(),
    )
    .map_err(anyhow::Error::msg)?;
    let opts = WorldOptions {
        seed: spec.seed,
        sim_ns: spec.sim_time_ns,
        clients: spec.concurrency,
        rate: spec.rate,
        keys: spec.keys,
        mix: Mix {
            write: spec.write_pct,
            cas: spec.cas_pct,
        },
        op_timeout_ns: spec.op_timeout_ns,
        watch_split: spec.protocol == "raft",
        spares: spec.spares as usize,
        storm_queue: world::STORM_QUEUE,
        progress_timeouts: progress::TIMEOUTS,
        value_bytes: spec.value_bytes,
    };
    let world = || match spec.protocol.as_str() {
        "raft" => World::new(opts, configs, node::boot::raft, spec.schedule.clone())?.run(),
        "multipaxos" => World::new(opts, configs, node::boot::paxos, spec.schedule.clone())?.run(),
        p => bail!("--protocol {p:?} is unknown; use raft or multipaxos"),
    };
    // The nodes' own logs (thousands of simulated nodes' worth) stay quiet unless asked
    // for: the history, the schedule and the replay are the record of a simulated run.
    let out = if node_logs {
        world()?
    } else {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), world)?
    };
    let mut copts = CheckOptions::new(ModelKind::Kv);
    copts.timeout = Some(check_timeout);
    let check = check_history(&out.ops, &copts).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(SimRun {
        history: out.history,
        ops: out.ops,
        completions: out.completions,
        events: out.events,
        split_terms: out.split_terms,
        verdict: check.verdict.exit_code(),
        storm: out.storm,
        stalled: out.stalled,
        recovery_timeouts: out
            .recovery_ns
            .map(|r| r as f64 / out.election_ns.max(1) as f64),
        abort_violation: out.abort_violation,
        diverged: out.diverged,
        restart_failed: out.restart_failed,
    })
}

/// Writes a normal run directory for a simulated run (test.json, history.jsonl) and
/// analyzes it like `stasis analyze` (results.json, summary.txt, report.html, ...).
pub fn write_run(
    store: &Path,
    spec: &SimSpec,
    run: &SimRun,
    note: Option<&str>,
    check_timeout: Duration,
) -> Result<PathBuf> {
    let dir = RunDir::create(store, &spec.test_name())?;
    let mut test = serde_json::to_value(spec)?;
    test["stasis_version"] = json!(env!("CARGO_PKG_VERSION"));
    test["started"] = json!(utc_timestamp(std::time::SystemTime::now()));
    test["nodes_list"] = json!(
        (1..=spec.nodes)
            .map(|k| format!("n{k}"))
            .collect::<Vec<_>>()
    );
    test["spares_list"] = json!(
        (spec.nodes + 1..=spec.nodes + spec.spares)
            .map(|k| format!("n{k}"))
            .collect::<Vec<_>>()
    );
    if let Some(n) = note {
        test["note"] = json!(n);
    }
    std::fs::write(dir.file("test.json"), serde_json::to_vec_pretty(&test)?)
        .with_context(|| format!("cannot write {}", dir.file("test.json").display()))?;
    std::fs::write(dir.file("history.jsonl"), &run.history)
        .with_context(|| format!("cannot write {}", dir.file("history.jsonl").display()))?;
    crate::analyze::analyze_run(&dir.path, Some(&[]), None, check_timeout)?;
    Ok(dir.path)
}

/// A smaller failing schedule found by [`shrink`].
pub struct Shrunk {
    pub spec: SimSpec,
    pub run: SimRun,
    pub tries: u32,
}

/// Searches for a smaller schedule that still fails the same way ([`SimRun::failure`]):
/// drops faults one at a time (while the run still fails), then shortens the simulated
/// time, then halves the clients, then puts drawn settings back to their defaults, then
/// removes spares and nodes one at a time. At most `max_tries` simulations.
pub fn shrink(
    spec: &SimSpec,
    run: SimRun,
    check_timeout: Duration,
    max_tries: u32,
) -> Result<Shrunk> {
    let failure = run.failure();
    let mut best = (spec.clone(), run);
    let mut tries = 0;
    let fails = |s: &SimSpec, tries: &mut u32| -> Result<Option<SimRun>> {
        *tries += 1;
        let r = simulate(s, check_timeout)?;
        Ok((failure.is_some() && r.failure() == failure).then_some(r))
    };
    // Faults, one at a time, repeated until no single fault can go.
    let mut changed = true;
    while changed && tries < max_tries {
        changed = false;
        let mut i = 0;
        while i < best.0.schedule.len() && tries < max_tries {
            let mut s = best.0.clone();
            s.schedule.remove(i);
            if let Some(r) = fails(&s, &mut tries)? {
                best = (s, r);
                changed = true;
            } else {
                i += 1;
            }
        }
    }
    // Simulated time: cut to just after the last fault ends, then by quarters.
    let last_stop = best.0.schedule.iter().map(|f| f.stop_ns).max().unwrap_or(0);
    let mut candidates = vec![last_stop + 2_000_000_000];
    let mut t = best.0.sim_time_ns;
    while t > 1_000_000_000 {
        t = t * 3 / 4;
        candidates.push(t);
    }
    for t in candidates {
        if t >= best.0.sim_time_ns || tries >= max_tries {
            continue;
        }
        let mut s = best.0.clone();
        s.sim_time_ns = t;
        s.schedule.retain(|f| f.start_ns < t);
        if let Some(r) = fails(&s, &mut tries)? {
            best = (s, r);
        }
    }
    // Fewer clients (fewer concurrent operations).
    while best.0.concurrency > 1 && tries < max_tries {
        let mut s = best.0.clone();
        s.concurrency /= 2;
        match fails(&s, &mut tries)? {
            Some(r) => best = (s, r),
            None => break,
        }
    }
    // Settings back to the node's defaults, one knob at a time: what is left is what the
    // failure needs (say, a snapshot every 25 entries).
    let mut i = 0;
    while i < best.0.settings.len() && tries < max_tries {
        if best.0.settings[i].args.is_empty() {
            i += 1;
            continue;
        }
        let mut s = best.0.clone();
        s.settings[i].args.clear();
        match fails(&s, &mut tries)? {
            Some(r) => best = (s, r),
            None => i += 1,
        }
    }
    // Fewer spares, one at a time (membership changes plan among what is left).
    while best.0.spares > 0 && tries < max_tries {
        let mut s = best.0.clone();
        s.spares -= 1;
        match fails(&s, &mut tries)? {
            Some(r) => best = (s, r),
            None => break,
        }
    }
    // Fewer nodes, one at a time, while it still fails (node-targeted faults and
    // partition shapes name nodes modulo the count). A count the node flags refuse (a
    // quorum system that needs more nodes) ends the search like a passing run.
    while best.0.nodes > 1 && tries < max_tries {
        let mut s = best.0.clone();
        s.nodes -= 1;
        tries += 1;
        match simulate(&s, check_timeout) {
            Ok(r) if failure.is_some() && r.failure() == failure => best = (s, r),
            _ => break,
        }
    }
    Ok(Shrunk {
        spec: best.0,
        run: best.1,
        tries,
    })
}

/// Prints one line to stdout; a closed stdout (`| head`) is not an error worth a panic.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The settings that differ from the node's defaults, or `default`.
fn describe_settings(drawn: &[settings::Drawn]) -> String {
    let set: Vec<settings::Drawn> = drawn
        .iter()
        .filter(|d| !d.args.is_empty())
        .cloned()
        .collect();
    if set.is_empty() {
        "default".into()
    } else {
        settings::describe(&set)
    }
}

fn client_ops(run: &SimRun) -> usize {
    run.ops.iter().filter(|o| o.is_client_completion()).count()
}

/// Runs `stasis sim`; returns the exit code.
pub fn run(args: &SimArgs) -> u8 {
    match execute(args) {
        Ok(sweep) => sweep.exit_code(),
        Err(e) => {
            eprintln!("stasis sim: {e:#}");
            3
        }
    }
}

/// What a `stasis sim` invocation did.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    pub schedules: u64,
    /// Client operations completed over all schedules.
    pub ops: u64,
    pub violations: u64,
    pub unknown: u64,
    /// Schedules stopped as a message storm (a finding beside the verdict).
    pub storms: u64,
    /// Schedules without progress after the last fault healed (a finding beside the
    /// verdict; exit code 4 when there is no violation).
    pub stalls: u64,
    /// Schedules in which a node could not restart from its disk (an availability
    /// finding beside the verdict; exit code 4 when there is no violation).
    pub restart_failures: u64,
    /// Of the violations, membership changes answered "definitely not made" that took
    /// effect.
    pub abort_violations: u64,
    /// The slowest recovery after the heal, in election timeouts, and its seed.
    pub slowest_recovery: Option<(f64, u64)>,
    /// The first and last seed run.
    pub seeds: Option<(u64, u64)>,
    /// The run directory of the first failing schedule (and of its shrunk schedule).
    pub failing: Option<PathBuf>,
    pub shrunk: Option<PathBuf>,
    pub wall_s: f64,
}

impl Sweep {
    /// 0 all linearizable and progressing, 1 a violation (of linearizability, of a definite
    /// membership answer, of State Machine Safety or of Raft's Election Safety), 4 no
    /// progress after the heal or a node that could not restart (no violation), 2 an
    /// unknown verdict.
    pub fn exit_code(&self) -> u8 {
        if self.violations > 0 {
            1
        } else if self.stalls > 0 || self.restart_failures > 0 {
            4
        } else if self.unknown > 0 {
            2
        } else {
            0
        }
    }
}

/// Runs the schedules `args` select and prints one line per kept or failing schedule and a
/// summary line.
pub fn execute(args: &SimArgs) -> Result<Sweep> {
    let specs: Box<dyn Iterator<Item = Result<SimSpec, String>>> = match &args.replay {
        Some(dir) => {
            let path = crate::store::resolve_run(dir)?.join("test.json");
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let spec: SimSpec = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("{} is not a sim run's test.json: {e}", path.display())
            })?;
            Box::new(std::iter::once(Ok(spec)))
        }
        None => {
            let first = args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
                    % 1_000_000_000
            });
            let args = args.clone();
            Box::new((0..args.seeds).map(move |i| SimSpec::draw(&args, first.wrapping_add(i))))
        }
    };
    let started = Instant::now();
    let mut seeds: Option<(u64, u64)> = None;
    let (mut schedules, mut ops, mut events, mut violations, mut unknown) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut split, mut watched, mut storms) = (0u64, false, 0u64);
    let (mut stalls, mut abort_violations, mut restart_failures) = (0u64, 0u64, 0u64);
    let mut slowest: Option<(f64, u64)> = None;
    let (mut failing, mut shrunk_dir) = (None, None);
    for spec in specs {
        if !args.budget.is_zero() && started.elapsed() >= args.budget {
            break;
        }
        let spec = spec.map_err(anyhow::Error::msg)?;
        seeds = Some((seeds.map_or(spec.seed, |s| s.0), spec.seed));
        // A harness error (a node that cannot start on its empty disk, say) names its
        // seed, so the schedule can be replayed.
        let run = simulate_with(&spec, args.check_timeout, args.node_logs)
            .with_context(|| format!("seed {}", spec.seed))?;
        schedules += 1;
        ops += run.completions;
        events += run.events;
        split += u64::from(run.split_terms > 0);
        watched |= spec.protocol == "raft";
        if let Some(storm) = &run.storm {
            // The nodes flooded the network faster than simulated time moved: a finding
            // about the system whatever the verdict on what was recorded until then.
            storms += 1;
            let dir = write_run(&args.store, &spec, &run, Some(storm), args.check_timeout)?;
            say(format!(
                "seed {}: {storm} ({} faults, settings {}) -> {}\n  replay: stasis sim --replay {}",
                spec.seed,
                spec.schedule.len(),
                describe_settings(&spec.settings),
                dir.display(),
                dir.display()
            ));
        }
        if let Some(r) = run.recovery_timeouts
            && slowest.is_none_or(|(t, _)| r > t)
        {
            slowest = Some((r, spec.seed));
        }
        violations += u64::from(run.failure().is_some_and(Failure::is_safety));
        abort_violations += u64::from(run.abort_violation.is_some());
        stalls += u64::from(run.stalled.is_some());
        restart_failures += u64::from(run.restart_failed.is_some());
        unknown += u64::from(run.verdict == 2);
        match run.failure() {
            Some(failure) => {
                let label = match failure {
                    Failure::NotLinearizable => "NOT LINEARIZABLE",
                    Failure::AbortTookEffect => "MEMBERSHIP ANSWER VIOLATED",
                    Failure::Diverged => "REPLICAS DIVERGED",
                    Failure::TwoLeaders => "TWO LEADERS IN ONE TERM",
                    Failure::CannotRestart => "NODE CANNOT RESTART",
                    Failure::NoProgress => "NO PROGRESS",
                };
                let finding = run.finding(failure);
                let dir = write_run(
                    &args.store,
                    &spec,
                    &run,
                    finding.as_deref(),
                    args.check_timeout,
                )?;
                failing.get_or_insert(dir.clone());
                say(format!(
                    "seed {}: {label} ({} faults, {} ops, settings {}) -> {}{}",
                    spec.seed,
                    spec.schedule.len(),
                    client_ops(&run),
                    describe_settings(&spec.settings),
                    dir.display(),
                    finding.map_or_else(String::new, |f| format!("\n  {f}"))
                ));
                if !args.no_shrink {
                    let shrunk = shrink(&spec, run, args.check_timeout, 200)?;
                    let mut note = format!(
                        "shrunk from seed {} ({} faults, {:.1} s simulated) in {} tries",
                        spec.seed,
                        spec.schedule.len(),
                        spec.sim_time_ns as f64 / 1e9,
                        shrunk.tries
                    );
                    if let Some(f) = shrunk.run.finding(failure) {
                        note.push_str("; ");
                        note.push_str(&f);
                    }
                    let sdir = write_run(
                        &args.store,
                        &shrunk.spec,
                        &shrunk.run,
                        Some(&note),
                        args.check_timeout,
                    )?;
                    shrunk_dir.get_or_insert(sdir.clone());
                    say(format!(
                        "seed {}: smallest failing schedule: {} faults, {:.1} s simulated, {} nodes{}, {} clients, {} ops, settings {} ({} tries) -> {}\n  replay: stasis sim --replay {}",
                        spec.seed,
                        shrunk.spec.schedule.len(),
                        shrunk.spec.sim_time_ns as f64 / 1e9,
                        shrunk.spec.nodes,
                        match shrunk.spec.spares {
                            0 => String::new(),
                            k => format!(" + {k} spares"),
                        },
                        shrunk.spec.concurrency,
                        client_ops(&shrunk.run),
                        describe_settings(&shrunk.spec.settings),
                        shrunk.tries,
                        sdir.display(),
                        sdir.display()
                    ));
                } else {
                    say(format!("  replay: stasis sim --replay {}", dir.display()));
                }
                if !args.keep_going {
                    break;
                }
            }
            None => {
                if args.keep || args.replay.is_some() {
                    let v = run.verdict;
                    let dir = write_run(&args.store, &spec, &run, None, args.check_timeout)?;
                    say(format!(
                        "seed {}: {} ({} faults, {} ops) -> {}",
                        spec.seed,
                        if v == 0 { "linearizable" } else { "unknown" },
                        spec.schedule.len(),
                        client_ops(&run),
                        dir.display()
                    ));
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let range = match seeds {
        Some((a, b)) if a == b => format!(" (seed {a})"),
        Some((a, b)) => format!(" (seeds {a}-{b})"),
        None => String::new(),
    };
    say(format!(
        "sim: {schedules} schedules{range}, {ops} operations, {events} events in {secs:.1} s ({:.0} simulated ops/s), {violations} violations{}, {unknown} unknown{}{}",
        ops as f64 / secs.max(1e-9),
        if abort_violations > 0 {
            format!(" ({abort_violations} of them membership answers proved false)")
        } else {
            String::new()
        },
        if watched {
            format!(", {split} with two leaders in one term")
        } else {
            String::new()
        },
        if storms > 0 {
            format!(", {storms} message storms")
        } else {
            String::new()
        },
    ));
    say(format!(
        "sim: {stalls} without progress after the heal (bound {} election timeouts + one operation timeout){}{}",
        progress::TIMEOUTS,
        slowest.map_or_else(String::new, |(t, seed)| format!(
            "; slowest recovery {t:.2} election timeouts (seed {seed})"
        )),
        if restart_failures > 0 {
            format!("; {restart_failures} with a node that could not restart from its disk")
        } else {
            String::new()
        }
    ));
    Ok(Sweep {
        schedules,
        ops,
        violations,
        unknown,
        storms,
        stalls,
        restart_failures,
        abort_violations,
        slowest_recovery: slowest,
        seeds,
        failing,
        shrunk: shrunk_dir,
        wall_s: secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> SimArgs {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: SimArgs,
        }
        let mut argv = vec!["sim", "--protocol", "multipaxos"];
        argv.extend_from_slice(extra);
        Wrap::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn schedules_draw_the_protocols_settings_from_their_seed() {
        let a = args(&[]);
        let spec = SutSpec::load("multipaxos").unwrap();
        let knobs: Vec<&str> = spec.settings.iter().map(|s| s.name.as_str()).collect();
        let draws: Vec<SimSpec> = (0..40).map(|s| SimSpec::draw(&a, s).unwrap()).collect();
        for d in &draws {
            let names: Vec<&str> = d.settings.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, knobs, "one choice per knob");
            assert_eq!(d.settings, SimSpec::draw(&a, d.seed).unwrap().settings);
            let flags = d.node_flags();
            for arg in settings::args(&d.settings) {
                assert!(flags.contains(&arg), "{arg} missing from {flags:?}");
            }
        }
        // Over 40 seeds the snapshot knob takes more than one value, the often-compacting
        // one among them: the code paths the defaults never reach are reached.
        let snap: std::collections::BTreeSet<Vec<String>> = draws
            .iter()
            .map(|d| {
                d.settings
                    .iter()
                    .find(|s| s.name == "snapshot")
                    .unwrap()
                    .args
                    .clone()
            })
            .collect();
        assert!(snap.len() > 1, "{snap:?}");
        assert!(snap.contains(&vec!["--snapshot-every".to_string(), "25".to_string()]));
    }

    #[test]
    fn explicit_node_flags_and_default_mode_are_not_drawn_over() {
        let a = args(&["--node-arg=--snapshot-every", "--node-arg=7"]);
        let d = SimSpec::draw(&a, 3).unwrap();
        assert!(d.settings.iter().all(|s| s.name != "snapshot"));
        assert!(!d.settings.is_empty());
        let d = SimSpec::draw(&args(&["--settings", "default"]), 3).unwrap();
        assert!(d.settings.is_empty());
        assert_eq!(describe_settings(&d.settings), "default");
    }

    #[test]
    fn a_run_recorded_before_settings_replays_with_the_defaults() {
        let mut v = serde_json::to_value(SimSpec::draw(&args(&[]), 5).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("settings");
        let old: SimSpec = serde_json::from_value(v).unwrap();
        assert!(old.settings.is_empty());
    }
}
