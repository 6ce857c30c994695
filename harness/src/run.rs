//! `stasis test`: one run end to end.
//!
//! Prepare a run directory, build the namespaces, start the nodes, run the workload with
//! the nemesis schedule (warm-up, faults, heal, recovery, final reads), tear everything
//! down on every exit path, then check the history and write the results.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use checker::history::{Op, OpType, Process};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::analyze;
use crate::client::resp::Endpoint;
use crate::client::{Client, ClientOp, Completion, Routing};
use crate::cluster::Cluster;
use crate::generator::{Mix, Workload, pause_between};
use crate::nemesis::FaultRecord;
use crate::nemesis::{self, Family, Planned};
use crate::net::Topology;
use crate::nodes::{Launcher, NodeInfo};
use crate::record::{Unresponsive, problem_of};
use crate::recorder::Recorder;
use crate::store::RunDir;
use crate::sut::{Protocol, Ready, SutSpec};
pub use crate::units::parse_duration;
use crate::{settings, signals};
use rand::RngExt;

/// Options of `stasis test` (all recorded in test.json).
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
pub struct TestArgs {
    /// System under test: a built-in (raft, multipaxos, etcd) or a path to a TOML spec
    /// (see README, "Testing your own system").
    #[arg(long, default_value = "raft")]
    pub sut: String,
    /// Number of nodes (3 to 7 are routine).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    pub nodes: u8,
    /// Extra argument appended to every node's argv (repeatable), e.g.
    /// `--node-arg --quorum --node-arg grid:2x3`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Spare nodes (n<nodes+1>, ...), started in join mode for the membership nemesis to
    /// add and remove (default: 2 when the membership nemesis is enabled, else 0).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=20))]
    pub spares: Option<u8>,
    /// Faults to inject: comma-separated kill, pause, partition, clock, membership; `all`
    /// or `none`.
    #[arg(long, default_value = "all", value_parser = parse_families)]
    pub nemesis: String,
    /// Nodes a kill or pause may hit, drawn per fault: comma-separated one, leader,
    /// minority, all.
    #[arg(long, default_value = "one,leader,minority,all", value_parser = parse_targets)]
    pub target: String,
    /// Partition shapes to draw from: comma-separated halves, random-halves, isolate-one,
    /// isolate-leader, majorities-ring, bridge, one-way; or `all`.
    #[arg(long, default_value = "all", value_parser = parse_shapes)]
    pub shapes: String,
    /// Mean time between faults, and mean fault duration.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub nemesis_interval: Duration,
    /// How long the workload runs (warm-up and faults included; recovery and final reads
    /// come after).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub time_limit: Duration,
    /// Concurrent client workers.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Target request rate over all workers, ops/s (0 = as fast as possible).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Number of keys.
    #[arg(long, default_value_t = 8)]
    pub keys: usize,
    /// Percentage of writes in the mix.
    #[arg(long, default_value_t = 30)]
    pub write_pct: u32,
    /// Percentage of compare-and-swaps in the mix (the rest are reads).
    #[arg(long, default_value_t = 20)]
    pub cas_pct: u32,
    /// Client operation timeout: a write or cas without an answer by then is `info`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// Seed for the workload and the nemesis schedule (random if not given; printed and
    /// recorded either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run store directory.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Test name (the run directory is store/<name>/<timestamp>); default `<sut>-<nemesis>`.
    #[arg(long)]
    pub name: Option<String>,
    /// The stasis-node binary (default: next to this `stasis` binary).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// How long to wait for the cluster to be ready at start and after healing (default:
    /// the system spec's `ready_timeout`).
    #[arg(long, value_parser = parse_duration)]
    pub ready_timeout: Option<Duration>,
    /// Budget for the linearizability check.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub check_timeout: Duration,
    /// Node settings: `vary` draws one choice of each knob of the system's spec
    /// (`[[settings]]`: snapshot interval, message batch, timing, read mode, ...) from the
    /// seed; `default` keeps the system's defaults. Flags given with --node-arg win.
    #[arg(long, value_enum, default_value = "vary")]
    #[serde(default)]
    pub settings: settings::Mode,
    /// `fuse`: mount the disk-fault filesystem over the nodes' data directories even
    /// without a disk fault (the disk nemesis mounts it anyway).
    #[arg(long, value_enum, default_value = "off")]
    #[serde(default)]
    pub disk: crate::diskfs::DiskMode,
    /// Network faults the net nemesis draws from: comma-separated delay, loss, duplicate,
    /// reorder, slow-link; or `all`.
    #[arg(long, default_value = "all", value_parser = parse_net_faults)]
    #[serde(default = "all_net_faults")]
    pub net_faults: String,
    /// Baseline latency on every link between nodes for the whole run, e.g. `20ms±10ms`
    /// (also `20ms+-10ms`, `20ms`): the nodes as if in different datacenters.
    #[arg(long, value_parser = parse_net_latency)]
    #[serde(default)]
    pub net_latency: Option<String>,
    /// Range of the mean latency a `delay` network fault draws, e.g. `100ms-400ms`
    /// (jitter ±80% of the mean); default 20ms-100ms. Long delays outlast election
    /// timeouts: a leader whose links turn slow is replaced while it still believes it
    /// leads.
    #[arg(long, value_parser = parse_net_delay)]
    #[serde(default)]
    pub net_delay: Option<String>,
    /// Jitter of a `delay` network fault, in percent of its mean: `PCT` or `MIN-MAX`
    /// drawn per fault (default 80). Low jitter is a clean latency step: the faulted
    /// links go silent for the whole delay at once, a gap past an election timeout when
    /// the delay is longer; high jitter reorders packets.
    #[arg(long, value_parser = parse_net_jitter)]
    #[serde(default)]
    pub net_jitter: Option<String>,
    /// Which links a network fault covers, drawn per fault: comma-separated all (every
    /// link), node (to and from one node), outbound (out of one node), inbound (into one
    /// node), leader (to and from the leader). Default: all, node, outbound, leader.
    #[arg(long, value_parser = parse_net_scopes)]
    #[serde(default)]
    pub net_scopes: Option<String>,
    /// Where each worker's operations go first: `sticky` (the node its last request
    /// went to: clients follow the leader), `home` (worker w always starts at node
    /// w mod n, as Jepsen binds clients to nodes; non-leaders redirect) or `random`
    /// (a node drawn per operation). `home` and `random` keep requests reaching a
    /// deposed leader that does not know it yet. RESP systems only.
    #[arg(long, value_enum, default_value = "sticky")]
    #[serde(default)]
    pub client_routing: crate::client::Routing,
    /// Run the nodes on remote hosts reached over SSH instead of in local namespaces: a
    /// TOML file with one `[[host]]` per node (address, user, port, key, sudo, dir); see
    /// docs/REMOTE.md. Every fault works remotely (disk faults through `stasis
    /// diskfault-agent` on each host).
    #[arg(long)]
    #[serde(default)]
    pub hosts: Option<PathBuf>,
}

fn all_net_faults() -> String {
    "all".into()
}

fn parse_net_faults(s: &str) -> Result<String, String> {
    nemesis::net::Kind::parse_list(s)?;
    Ok(s.to_owned())
}

fn parse_net_latency(s: &str) -> Result<String, String> {
    crate::netfault::parse_latency(s)?;
    Ok(s.to_owned())
}

fn parse_net_delay(s: &str) -> Result<String, String> {
    nemesis::net::parse_delay_range(s)?;
    Ok(s.to_owned())
}

fn parse_net_jitter(s: &str) -> Result<String, String> {
    nemesis::net::parse_jitter_range(s)?;
    Ok(s.to_owned())
}

fn parse_net_scopes(s: &str) -> Result<String, String> {
    nemesis::net::Scope::parse_list(s)?;
    Ok(s.to_owned())
}

fn parse_families(s: &str) -> Result<String, String> {
    Family::parse_list(s)?;
    Ok(s.to_owned())
}

fn parse_shapes(s: &str) -> Result<String, String> {
    nemesis::partition::Shape::parse_list(s)?;
    Ok(s.to_owned())
}

fn parse_targets(s: &str) -> Result<String, String> {
    nemesis::Target::parse_list(s)?;
    Ok(s.to_owned())
}

impl TestArgs {
    /// The enabled fault families.
    pub fn families(&self) -> Vec<Family> {
        Family::parse_list(&self.nemesis).unwrap_or_default()
    }

    /// Whether the nodes' data directories get the disk-fault filesystem.
    pub fn mounts_disks(&self) -> bool {
        self.disk == crate::diskfs::DiskMode::Fuse || self.families().contains(&Family::Disk)
    }
}

/// Everything about a run that a later `analyze` or `replay` needs.
#[derive(Serialize, Deserialize)]
pub struct TestJson {
    pub stasis_version: String,
    pub node_version: String,
    pub seed: u64,
    pub args: TestArgs,
    pub nemesis_families: Vec<Family>,
    pub schedule: Vec<Planned>,
    pub nodes: Vec<String>,
    /// Spare nodes (not initial voters; `nodes` lists the voters).
    #[serde(default)]
    pub spares: Vec<String>,
    pub sut: SutSpec,
    /// The node settings drawn for this run (empty with `--settings default`).
    #[serde(default)]
    pub settings: Vec<settings::Drawn>,
    pub started: String,
    /// Namespaces, links and subnet this run created (all removed at the end).
    pub topology: Value,
}

/// What a caller may override beyond the command-line options (`stasis replay` reuses a
/// stored run's nemesis schedule instead of drawing one from the seed).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Use this nemesis schedule verbatim instead of drawing one.
    pub schedule: Option<Vec<Planned>>,
    /// Use these node settings verbatim instead of drawing them.
    pub settings: Option<Vec<settings::Drawn>>,
}

/// The result of one completed run, for callers that run many (selftest, campaign).
#[derive(Debug)]
pub struct Outcome {
    /// 0 linearizable, 1 not, 2 unknown, 3 interrupted, or a harness problem after the
    /// recorded history was checked and found linearizable (`report.problem`). Errors
    /// before any history was recorded are `Err`.
    pub exit_code: u8,
    pub run_dir: PathBuf,
    pub seed: u64,
    /// Client completions recorded and the workload's length.
    pub completions: u64,
    pub workload_s: f64,
    /// `None` when the run was interrupted before analysis.
    pub report: Option<analyze::Report>,
}

/// Runs `stasis test`; returns the exit code.
pub fn run(args: &TestArgs) -> u8 {
    match execute(args, &Overrides::default()) {
        Ok(outcome) => outcome.exit_code,
        Err(e) => {
            eprintln!("stasis test: {e:#}");
            3
        }
    }
}

/// Runs one test end to end (cluster, workload, faults, check) and returns its outcome;
/// `Err` is a harness or environment error (exit code 3 for the CLI).
pub fn execute(args: &TestArgs, overrides: &Overrides) -> Result<Outcome> {
    run_inner(args, args.families(), overrides)
}

fn node_binary(args: &TestArgs) -> Result<PathBuf> {
    let path = match &args.node_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("cannot locate the stasis binary")?
            .with_file_name("stasis-node"),
    };
    if !path.is_file() {
        bail!(
            "node binary {} not found: build it (cargo build --release -p node) or pass --node-bin",
            path.display()
        );
    }
    Ok(path)
}

/// The spec's launcher with `--node-arg`s appended to every node's argv.
fn launcher(spec: &SutSpec, bin: &Path, extra: Vec<String>) -> Launcher {
    let base = spec.launcher(bin);
    Box::new(move |me: &NodeInfo, all: &[NodeInfo]| {
        let mut l = base(me, all);
        l.args.extend(extra.iter().cloned());
        l
    })
}

fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "not root: namespaces and partitions need CAP_NET_ADMIN (run as root; `stasis doctor` checks the rest)"
        );
    }
    Ok(())
}

fn run_inner(args: &TestArgs, mut families: Vec<Family>, overrides: &Overrides) -> Result<Outcome> {
    let spec = SutSpec::load(&args.sut)?;
    if args.hosts.is_none() {
        // Before anything is printed: a missing program is the run's one line. (Remote
        // hosts bring their own programs; the controller's are not checked.)
        spec.check_needs()?;
    }
    if families.contains(&Family::Clock) && !spec.faketime {
        if args.nemesis.split(',').any(|f| f.trim() == "clock") {
            bail!(
                "the clock nemesis cannot move {}'s clock: its spec says faketime = false \
                 (libfaketime cannot move or Stasis cannot verify its clock; the spec says why)",
                spec.name
            );
        }
        // `all` means every fault that applies to this system.
        families.retain(|f| *f != Family::Clock);
        eprintln!(
            "stasis: {}: skipping the clock nemesis (faketime = false in its spec)",
            spec.name
        );
    }
    if families.contains(&Family::Membership) && spec.membership.is_none() {
        if args.nemesis.split(',').any(|f| f.trim() == "membership") {
            bail!(
                "the membership nemesis cannot change {}'s voters: its spec has no [membership] section (add one with command, voter_format and join_args; see README)",
                spec.name
            );
        }
        families.retain(|f| *f != Family::Membership);
        eprintln!(
            "stasis: {}: skipping the membership nemesis (no [membership] section in its spec)",
            spec.name
        );
    }
    let spares = usize::from(
        args.spares
            .unwrap_or(if families.contains(&Family::Membership) {
                2
            } else {
                0
            }),
    );
    if spares > 0 && spec.membership.is_none() {
        bail!(
            "--spares {spares}: {} has no [membership] section in its spec, so spare nodes could never join; drop --spares",
            spec.name
        );
    }
    if families.contains(&Family::Membership) && usize::from(args.nodes) + spares < 2 {
        bail!("the membership nemesis needs at least 2 nodes in all: give --spares 1 or more");
    }
    if args.hosts.is_some() {
        check_remote_support(args, &spec)?;
    } else {
        require_root()?;
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.write_pct + args.cas_pct > 100 {
        bail!("--write-pct plus --cas-pct must be at most 100");
    }
    if args.client_routing != Routing::Sticky && !spec.protocol().routes_per_op() {
        bail!(
            "--client-routing {}: the {} client cannot choose its node per operation (RESP systems only); use sticky",
            clap::ValueEnum::to_possible_value(&args.client_routing)
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            spec.name
        );
    }
    signals::install();
    let cpu_at_start = harness_cpu();
    let cleaned = crate::cleanup::clean_stale()?;
    if !cleaned.is_empty() {
        eprintln!(
            "stasis: removed leftovers of {} killed run(s): {} processes, {} links, {} namespaces, {} mounts",
            cleaned.runs, cleaned.processes, cleaned.links, cleaned.namespaces, cleaned.mounts
        );
    }
    let bin = if spec.uses_stasis_node() {
        node_binary(args)?
    } else {
        PathBuf::from(&spec.start.run.program)
    };
    // Remote nodes use their hosts' libfaketime (found when the hosts are prepared).
    let faketime = if families.contains(&Family::Clock) && args.hosts.is_none() {
        Some(crate::faketime::local_library().context(
            "the clock nemesis needs libfaketime: apt-get install faketime libfaketime (scripts/setup.sh)",
        )?)
    } else {
        None
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let fam_names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    let name = args.name.clone().unwrap_or_else(|| {
        let nem = if fam_names.is_empty() {
            "none".to_owned()
        } else {
            fam_names.join("-")
        };
        format!("{}-{nem}", spec.name)
    });
    let dir = RunDir::create(&args.store, &name)?;
    println!("stasis: run {} (seed {seed})", dir.path.display());

    let names: Vec<String> = (1..=args.nodes).map(|k| format!("n{k}")).collect();
    let spare_names: Vec<String> = (1..=spares)
        .map(|k| format!("n{}", usize::from(args.nodes) + k))
        .collect();
    let warmup = (args.time_limit / 6).min(Duration::from_secs(5));
    let fault_phase = args.time_limit.saturating_sub(warmup);
    let targets = nemesis::Target::parse_list(&args.target).map_err(anyhow::Error::msg)?;
    let shapes = nemesis::partition::Shape::parse_list(&args.shapes).map_err(anyhow::Error::msg)?;
    let net_kinds = nemesis::net::Kind::parse_list(&args.net_faults).map_err(anyhow::Error::msg)?;
    let schedule = match &overrides.schedule {
        Some(s) => s.clone(),
        None => {
            let mut s = nemesis::schedule(
                &families,
                &targets,
                &shapes,
                fault_phase,
                args.nemesis_interval,
                names.len(),
                seed,
            );
            nemesis::disk::restrict(&mut s, &nemesis::disk::kinds_in(&args.nemesis));
            nemesis::net::restrict(&mut s, &net_kinds);
            if let Some(r) = &args.net_delay {
                let range = nemesis::net::parse_delay_range(r).map_err(anyhow::Error::msg)?;
                nemesis::net::redraw_delays(&mut s, range);
            }
            if let Some(j) = &args.net_jitter {
                let range = nemesis::net::parse_jitter_range(j).map_err(anyhow::Error::msg)?;
                nemesis::net::redraw_jitter(&mut s, range);
            }
            if let Some(sc) = &args.net_scopes {
                let scopes = nemesis::net::Scope::parse_list(sc).map_err(anyhow::Error::msg)?;
                nemesis::net::restrict_scopes(&mut s, &scopes);
            }
            s
        }
    };
    let drawn = match (&overrides.settings, args.settings) {
        (Some(d), _) => d.clone(),
        (None, settings::Mode::Vary) => settings::draw(&spec.settings, seed, &args.node_args),
        (None, settings::Mode::Default) => Vec::new(),
    };
    if !drawn.is_empty() {
        println!("stasis: node settings: {}", settings::describe(&drawn));
    }
    let aux_hosts = spec.aux_hosts();
    let name_refs: Vec<&str> = names
        .iter()
        .chain(&spare_names)
        .map(String::as_str)
        .chain(aux_hosts.iter().map(|(h, _)| h.as_str()))
        .collect();
    let mut remote_run = None;
    let topo = match &args.hosts {
        None => {
            let topo = Topology::create('r', &name_refs)?;
            topo.set_run_dir(&dir.path)?;
            topo.check_connectivity()?;
            topo
        }
        Some(path) => {
            let r = RemoteRun::prepare(
                path,
                &name_refs,
                &dir,
                spec.uses_stasis_node().then_some(bin.as_path()),
                families.contains(&Family::Clock),
                families.contains(&Family::Net) || args.net_latency.is_some(),
                args.mounts_disks(),
            )?;
            let topo = Topology::remote(&r.places)?;
            topo.set_run_dir(&dir.path)?;
            r.check_connectivity(spec.ports.peer)?;
            remote_run = Some(r);
            topo
        }
    };
    let test_json = TestJson {
        stasis_version: env!("CARGO_PKG_VERSION").to_owned(),
        node_version: version_of(&bin),
        seed,
        args: args.clone(),
        nemesis_families: families.clone(),
        schedule: schedule.clone(),
        nodes: names.clone(),
        spares: spare_names.clone(),
        sut: spec.clone(),
        settings: drawn.clone(),
        started: dir.timestamp.clone(),
        topology: json!({
            "hosts": remote_run.as_ref().map(|r| r.describe()),
            "id": topo.id,
            "subnet": topo.subnet.cidr(),
            "bridge": topo.bridge,
            "namespaces": topo.hosts.iter().map(|h| h.netns.clone()).collect::<Vec<_>>(),
            "links": topo.hosts.iter().map(|h| h.veth.clone()).collect::<Vec<_>>(),
        }),
    };
    std::fs::write(
        dir.file("test.json"),
        serde_json::to_vec_pretty(&test_json)?,
    )?;
    let mut node_args = settings::args(&drawn);
    node_args.extend(args.node_args.iter().cloned());
    let outcome = drive(
        args,
        &spec,
        &dir,
        &topo,
        &bin,
        &node_args,
        faketime,
        seed,
        warmup,
        &schedule,
        remote_run.as_ref(),
    );
    drop(topo);
    // Remote hosts: node directories fetched, chains and run directories removed.
    let outcome = match (outcome, remote_run.map(|r| r.finish(&dir.path))) {
        (Ok(_), Some(Err(e))) => Err(e),
        (outcome, Some(Err(e))) => {
            eprintln!("stasis: {e:#}");
            outcome
        }
        (outcome, _) => outcome,
    };
    let (faults, load) = match outcome {
        Ok(v) => v,
        Err(e) => return ended_early(e, args, &dir, seed),
    };
    let cpu = harness_cpu() - cpu_at_start;
    if let Some(n) = &load.net {
        println!(
            "stasis: packet delayer: {} packets ({:.0}/s), {} dropped, {} duplicated, at most {} held; CPU {:.1} s ({:.0}% of one core)",
            n.queued,
            n.queued as f64 / load.seconds.max(1e-9),
            n.dropped,
            n.duplicated,
            n.max_held,
            n.cpu_s,
            100.0 * n.cpu_s / load.seconds.max(1e-9)
        );
    }
    let stats = json!({
        "net_delayer": load.net,
        "workload_s": load.seconds,
        "completions": load.completions,
        "ops_per_s": load.completions as f64 / load.seconds.max(1e-9),
        "harness_cpu_s": cpu,
        "harness_cpu_share_of_one_core": cpu / load.seconds.max(1e-9),
    });
    std::fs::write(dir.file("harness.json"), serde_json::to_vec_pretty(&stats)?)?;
    println!(
        "stasis: recorded {} completions in {:.1} s ({:.0} ops/s); harness CPU {:.1} s ({:.0}% of one core)",
        load.completions,
        load.seconds,
        load.completions as f64 / load.seconds.max(1e-9),
        cpu,
        100.0 * cpu / load.seconds.max(1e-9)
    );
    if signals::interrupted() {
        eprintln!(
            "stasis: interrupted; nodes stopped and namespaces removed; the history so far is in {}",
            dir.path.display()
        );
        return Ok(Outcome {
            exit_code: 3,
            run_dir: dir.path.clone(),
            seed,
            completions: load.completions,
            workload_s: load.seconds,
            report: None,
        });
    }
    let report = analyze::analyze_run(&dir.path, Some(&faults), None, args.check_timeout)?;
    println!("{}", report.summary_text.trim_end());
    Ok(Outcome {
        exit_code: report.exit_code,
        run_dir: dir.path.clone(),
        seed,
        completions: load.completions,
        workload_s: load.seconds,
        report: Some(report),
    })
}

/// A run that ended with an error after its history was started: check what was recorded
/// (a violation wins: exit 1), report the problem beside the verdict, and give exit 3 only
/// for a harness problem. Without a history there is nothing to check: the error stands.
fn ended_early(e: anyhow::Error, args: &TestArgs, dir: &RunDir, seed: u64) -> Result<Outcome> {
    let history = dir.file("history.jsonl");
    let recorded = std::fs::metadata(&history).is_ok_and(|m| m.len() > 0);
    if !recorded || signals::interrupted() {
        return Err(e);
    }
    let problem = problem_of(&e);
    eprintln!(
        "stasis: {}; checking the history recorded so far",
        problem.line()
    );
    let report = match analyze::analyze_run(&dir.path, None, Some(&problem), args.check_timeout) {
        Ok(r) => r,
        Err(check_err) => {
            return Err(e.context(format!(
                "the history could not be checked either: {check_err:#}"
            )));
        }
    };
    println!("{}", report.summary_text.trim_end());
    // The load figures the live run would have counted, from the recorded history.
    let (completions, last_ns) = checker::history::read_jsonl(&history)
        .map(|h| {
            let done = h.ops.iter().filter(|o| o.is_client_completion());
            (
                done.clone().count() as u64,
                done.map(|o| o.time).max().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    Ok(Outcome {
        exit_code: report.exit_code,
        run_dir: dir.path.clone(),
        seed,
        completions,
        workload_s: last_ns as f64 / 1e9,
        report: Some(report),
    })
}

/// CPU time (user + system) this process has used so far, seconds.
fn harness_cpu() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0.0,
    }
}

/// How much the workload did (for the record-rate benchmark).
struct Load {
    /// The packet delayer's counters, when the run had one.
    net: Option<crate::netfault::Totals>,
    seconds: f64,
    completions: u64,
}

fn version_of(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Shared by the workers, the nemesis loop and the progress printer.
struct Shared {
    rec: Arc<Recorder>,
    workload: Workload,
    endpoints: Vec<Endpoint>,
    /// The auxiliary processes (Sentinels, ...), for clients that ask them things.
    aux: Vec<Endpoint>,
    protocol: Protocol,
    stop_workers: AtomicBool,
    active: std::sync::Mutex<String>,
}

#[allow(clippy::too_many_arguments)]
fn drive(
    args: &TestArgs,
    spec: &SutSpec,
    dir: &RunDir,
    topo: &Topology,
    bin: &Path,
    node_args: &[String],
    faketime: Option<PathBuf>,
    seed: u64,
    warmup: Duration,
    schedule: &[Planned],
    remote: Option<&RemoteRun>,
) -> Result<(Vec<FaultRecord>, Load)> {
    let ready_timeout = args.ready_timeout.unwrap_or(spec.ready_timeout());
    let aux_hosts = spec.aux_hosts();
    let mut cluster = Cluster::new(
        topo,
        topo.hosts.len() - args.nodes as usize - aux_hosts.len(),
        &dir.path,
        spec.ports.client,
        spec.ports.peer,
        launcher(spec, bin, node_args.to_vec()),
        spec.protocol(),
        faketime,
    )?;
    if let Some(r) = remote {
        r.place(&mut cluster, bin);
    }
    cluster.membership = spec.membership.clone();
    // The auxiliary processes are the last hosts of the topology.
    let first_aux = cluster.len() - aux_hosts.len();
    for (k, (_, a)) in aux_hosts.iter().enumerate() {
        cluster.set_aux(first_aux + k, &a.name, a.port);
    }
    if args.mounts_disks() {
        if !spec.start.run.args.iter().any(|a| a.contains("{data_dir}")) {
            bail!(
                "the disk nemesis needs {}'s spec to put its data in {{data_dir}} (start.args has no {{data_dir}})",
                spec.name
            );
        }
        cluster.mount_disks()?;
    }
    let net_base = match &args.net_latency {
        Some(l) => Some(crate::netfault::parse_latency(l).map_err(anyhow::Error::msg)?),
        None if schedule.iter().any(|p| p.fault.family() == Family::Net) => {
            Some(crate::netfault::LinkSpec::default())
        }
        None => None,
    };
    if let Some(base) = net_base {
        let infos = cluster.infos();
        let netns: Vec<String> = infos.iter().map(|i| i.netns.clone()).collect();
        let addrs: Vec<_> = infos.iter().map(|i| i.addr).collect();
        let net_seed = seed ^ 0x006e_6574;
        cluster.shaper = Some(match remote {
            None => crate::netfault::Shaper::install(&netns, &addrs, base, net_seed).context(
                "cannot install the packet delayer (iptables NFQUEUE inside the node namespaces)",
            )?,
            Some(r) => crate::netfault::Shaper::install_remote(
                &r.delayer_hosts(&dir.path)?,
                &addrs,
                base,
                net_seed,
            )
            .context(
                "cannot start the packet delayer on the hosts (stasis netfault-agent: iptables NFQUEUE there; `stasis doctor --hosts` checks it)",
            )?,
        });
        if !base.is_clean() {
            let shaper = cluster.shaper.as_ref().context("no packet delayer")?;
            println!(
                "stasis: baseline latency {} on every link: {}",
                crate::netfault::describe_latency(&base),
                crate::netfault::verify_baseline(shaper, &infos, &base)?
            );
        }
    }
    // Spares start too, in join mode; readiness needs a leader, which only a voter can be.
    cluster.start_all()?;
    bootstrap(&cluster, spec, ready_timeout)?;
    wait_ready(&mut cluster, spec.ready, ready_timeout).context("the cluster did not come up")?;

    let start = Instant::now();
    let (rec, syncer) = Recorder::create(&dir.file("history.jsonl"), start)
        .context("cannot create history.jsonl")?;
    let shared = Shared {
        rec: rec.clone(),
        workload: Workload::new(
            args.keys,
            Mix {
                write: args.write_pct,
                cas: args.cas_pct,
            },
        ),
        endpoints: endpoints(&cluster),
        aux: aux_endpoints(&cluster),
        protocol: cluster.protocol.clone(),
        stop_workers: AtomicBool::new(false),
        active: std::sync::Mutex::new(String::new()),
    };
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| -> Result<Vec<FaultRecord>> {
        for w in 0..args.concurrency {
            let shared = &shared;
            s.spawn(move || worker(w, args, seed, shared));
        }
        let (shared_ref, done_ref) = (&shared, &done);
        s.spawn(move || progress(args.time_limit, shared_ref, done_ref, start));
        let faults = nemesis_loop(
            &mut cluster,
            &shared,
            start,
            warmup,
            args.time_limit,
            schedule,
        );
        // Whatever happened, heal and bring everything back before the final reads.
        let healed = recover(&mut cluster, &shared, spec.ready, ready_timeout);
        shared.stop_workers.store(true, Ordering::Relaxed);
        done.store(true, Ordering::Relaxed);
        let faults = faults?;
        healed?;
        Ok(faults)
    });
    // Final reads run after the workers have stopped: every key once, retried.
    let finals = match &result {
        Ok(_) if !signals::interrupted() => final_reads(&shared, args),
        _ => Ok(()),
    };
    cluster.stop_all(Duration::from_secs(5));
    let net = match cluster.shaper.as_mut() {
        Some(s) => Some(s.remove()?),
        None => None,
    };
    let recorded = rec.finish(syncer);
    let faults = result?;
    finals?;
    recorded.map_err(anyhow::Error::msg)?;
    let c = &rec.counts;
    let load = Load {
        net,
        seconds: start.elapsed().as_secs_f64(),
        completions: c.ok.load(Ordering::Relaxed)
            + c.fail.load(Ordering::Relaxed)
            + c.info.load(Ordering::Relaxed),
    };
    let ok = c.ok.load(Ordering::Relaxed);
    if ok == 0 {
        bail!(
            "no operation succeeded: the cluster never served a client (see the node logs in {})",
            dir.path.display()
        );
    }
    Ok((faults, load))
}

/// Refuses, with one line each, what remote hosts cannot do yet.
fn check_remote_support(args: &TestArgs, spec: &SutSpec) -> Result<()> {
    if let Some(path) = &args.hosts {
        // Bad input is reported before anything is created.
        crate::remote::hosts::HostsFile::load(path)?;
    }
    if !spec.aux.is_empty() {
        bail!(
            "--hosts: {} has auxiliary processes ([[aux]]), which run only on local namespaces so far",
            spec.name
        );
    }
    Ok(())
}

/// A run's remote hosts (`--hosts`): placed nodes, the run directory on each host, the
/// uploaded stasis-node. Dropped without [`RemoteRun::finish`] (a panic), it still kills
/// the nodes and removes its chains and directories.
struct RemoteRun {
    remote: crate::remote::Remote,
    /// (node name, place, address) per node, in node order.
    places: Vec<(String, String, std::net::Ipv4Addr)>,
    /// The run's directory on each host (`<dir>/stasis-<timestamp>`), in node order.
    dirs: Vec<String>,
    /// The uploaded stasis-node on each host.
    uploaded: Option<String>,
    /// The uploaded `stasis` on each host (node order), when the run shapes the network
    /// or faults disks: its `netfault-agent` runs the packet delayer there, its
    /// `diskfault-agent` the disk-fault filesystem.
    agent_bin: Option<Vec<String>>,
    /// Each host's libfaketime (node order), when the run moves clocks.
    faketime: Vec<Option<String>>,
    finished: bool,
}

impl RemoteRun {
    /// Connects to the hosts, gives node k host k, creates the run directories, uploads
    /// stasis-node (when the system runs it) and creates our iptables chains; with
    /// `clock`, finds each host's libfaketime (a host without one fails the run); with
    /// `net` or `disk`, uploads this `stasis` for the packet delayer's or the disk-fault
    /// filesystem's agent.
    fn prepare(
        path: &Path,
        names: &[&str],
        dir: &RunDir,
        node_bin: Option<&Path>,
        clock: bool,
        net: bool,
        disk: bool,
    ) -> Result<RemoteRun> {
        let mut remote = crate::remote::Remote::connect(path)?;
        let places: Vec<(String, String, std::net::Ipv4Addr)> = remote
            .assign(names)?
            .into_iter()
            .zip(names)
            .map(|((place, addr), n)| ((*n).to_owned(), place, addr))
            .collect();
        let tag: String = dir
            .timestamp
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let dirs: Vec<String> = remote.hosts[..names.len()]
            .iter()
            .map(|h| crate::remote::run_dir(&h.spec, &tag))
            .collect();
        let uploaded = node_bin.map(|_| "stasis-node".to_owned());
        let mut run = RemoteRun {
            remote,
            places,
            dirs,
            uploaded: None,
            agent_bin: None,
            faketime: Vec::new(),
            finished: false,
        };
        let n = names.len();
        let faketime = run.remote.each(|k, h| {
            if k >= n || !clock {
                return Ok(None);
            }
            crate::faketime::remote_library(h)
                .map(Some)
                .context("the clock nemesis needs libfaketime on every host (apt-get install libfaketime there)")
        })?;
        run.faketime = faketime;
        let me =
            if net || disk {
                Some(std::env::current_exe().context(
                    "cannot find this stasis binary to upload for its agents on the hosts",
                )?)
            } else {
                None
            };
        let dirs = &run.dirs;
        run.remote.each(|k, h| {
            if k >= n {
                return Ok(());
            }
            crate::remote::make_dir(h, &dirs[k])?;
            if let Some(bin) = node_bin {
                h.upload(bin, &format!("{}/stasis-node", dirs[k]))?;
            }
            if let Some(me) = &me {
                h.upload(me, &format!("{}/stasis", dirs[k]))?;
            }
            crate::remote::install_chains(h)
        })?;
        run.uploaded = uploaded;
        if me.is_some() {
            run.agent_bin = Some(dirs.iter().map(|d| format!("{d}/stasis")).collect());
        }
        Ok(run)
    }

    /// Where to start each node's packet delayer agent (node order); `local` is the local
    /// run directory (the agents' messages go there).
    fn delayer_hosts(&self, local: &Path) -> Result<Vec<crate::netfault::RemoteHost>> {
        let bins = self
            .agent_bin
            .as_ref()
            .context("the packet delayer was not uploaded to the hosts")?;
        Ok(self
            .dirs
            .iter()
            .enumerate()
            .map(|(k, d)| crate::netfault::RemoteHost {
                ssh: self.remote.hosts[k].clone(),
                dir: format!("{d}/netfault"),
                bin: bins[k].clone(),
                log: local.join(format!("netfault-{}.log", self.places[k].0)),
            })
            .collect())
    }

    /// Every host reaches every other one on the peer ports (a refusal counts: nothing
    /// listens yet), with probes run on the hosts.
    fn check_connectivity(&self, peer_port: u16) -> Result<()> {
        let places: Vec<String> = self.places.iter().map(|p| p.1.clone()).collect();
        let peers: Vec<std::net::SocketAddr> = self
            .places
            .iter()
            .map(|p| std::net::SocketAddr::from((p.2, peer_port)))
            .collect();
        crate::firewall::verify_reachability(&places, &peers, &Default::default()).context(
            "the hosts cannot all reach each other on the peer port (probes run on the hosts)",
        )
    }

    fn describe(&self) -> Value {
        json!(
            self.places
                .iter()
                .zip(&self.dirs)
                .map(|((n, _, addr), d)| json!({"node": n, "address": addr.to_string(), "dir": d}))
                .collect::<Vec<_>>()
        )
    }

    /// Puts each node of `cluster` on its host.
    fn place(&self, cluster: &mut Cluster<'_>, bin: &Path) {
        for (k, d) in self.dirs.iter().enumerate() {
            let name = cluster.info(k).name.clone();
            let upload = self
                .uploaded
                .as_ref()
                .map(|u| (bin.to_owned(), format!("{d}/{u}")));
            cluster.place_remote(
                k,
                self.remote.hosts[k].clone(),
                format!("{d}/{name}"),
                upload,
                self.faketime.get(k).cloned().flatten(),
                self.agent_bin.as_ref().map(|b| b[k].clone()),
            );
        }
    }

    /// Fetches every node directory into the local run directory, then removes the run
    /// directories and chains on the hosts. Every host is attempted.
    fn finish(mut self, local: &Path) -> Result<()> {
        self.finished = true;
        let (places, dirs) = (&self.places, &self.dirs);
        let n = dirs.len();
        self.remote
            .each(|k, h| {
                if k >= n {
                    return Ok(());
                }
                let node = &places[k].0;
                let fetched = h.fetch_dir(&format!("{}/{node}", dirs[k]), &local.join(node));
                let cleaned = crate::remote::remove_run(h, &dirs[k])
                    .and_then(|_| crate::remote::remove_chains(h));
                fetched.context("fetching the node directory")?;
                cleaned
            })
            .context("remote hosts")
            .map(|_| ())
    }
}

impl Drop for RemoteRun {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let dirs = &self.dirs;
        let n = dirs.len();
        if let Err(e) = self.remote.each(|k, h| {
            if k < n {
                crate::remote::remove_run(h, &dirs[k]).and_then(|_| crate::remote::remove_chains(h))
            } else {
                Ok(())
            }
        }) {
            eprintln!("stasis: cleaning the remote hosts: {e:#}");
        }
    }
}

/// Waits until the cluster is ready as the spec defines it.
fn wait_ready(cluster: &mut Cluster<'_>, ready: Ready, timeout: Duration) -> Result<()> {
    match ready {
        Ready::Leader => wait_for_leader(cluster, timeout).map(|_| ()),
        Ready::Read => {
            let deadline = Instant::now() + timeout;
            let endpoints = endpoints(cluster);
            let mut client = cluster
                .protocol
                .client(endpoints, &aux_endpoints(cluster), 0);
            let op = ClientOp::Read { key: "k0".into() };
            loop {
                if let Completion::Ok(_) =
                    client.invoke(&op, Instant::now() + Duration::from_secs(1))
                {
                    return Ok(());
                }
                if Instant::now() > deadline || signals::interrupted() {
                    bail!("no successful read within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ready::Client => {
            let deadline = Instant::now() + timeout;
            let (nodes, aux) = (endpoints(cluster), aux_endpoints(cluster));
            loop {
                let probe = Duration::from_secs(1);
                let Err(e) = cluster.protocol.ready(&nodes, &aux, probe) else {
                    return Ok(());
                };
                if Instant::now() > deadline || signals::interrupted() {
                    bail!("not ready within {timeout:?}: {e}");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Sends the spec's `[bootstrap]` commands to the nodes, each retried until the node
/// answers (it may still be starting); an error reply fails the run.
fn bootstrap(cluster: &Cluster<'_>, spec: &SutSpec, timeout: Duration) -> Result<()> {
    let infos = cluster.infos();
    for info in &infos {
        for cmd in spec.bootstrap_commands(info, &infos) {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            let deadline = Instant::now() + timeout;
            loop {
                match crate::client::resp::request(
                    info.client_addr(),
                    &args,
                    Duration::from_secs(1),
                ) {
                    Ok(node::resp::Value::Error(e)) => {
                        bail!("bootstrap `{}` on {}: {e}", cmd.join(" "), info.name)
                    }
                    Ok(_) => break,
                    Err((_, e)) if Instant::now() > deadline || signals::interrupted() => {
                        bail!("bootstrap `{}` on {}: {e}", cmd.join(" "), info.name)
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
    Ok(())
}

/// The nodes' client endpoints (the auxiliary processes are not nodes).
fn endpoints(cluster: &Cluster<'_>) -> Vec<Endpoint> {
    endpoints_where(cluster, |i| i.aux.is_none())
}

/// The auxiliary processes' endpoints.
fn aux_endpoints(cluster: &Cluster<'_>) -> Vec<Endpoint> {
    endpoints_where(cluster, |i| i.aux.is_some())
}

fn endpoints_where(cluster: &Cluster<'_>, keep: impl Fn(&NodeInfo) -> bool) -> Vec<Endpoint> {
    cluster
        .infos()
        .iter()
        .filter(|i| keep(i))
        .map(|i| Endpoint {
            name: i.name.clone(),
            addr: i.client_addr(),
        })
        .collect()
}

fn wait_for_leader(cluster: &mut Cluster<'_>, timeout: Duration) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        for i in 0..cluster.len() {
            if !cluster.is_running(i) && !cluster.is_paused(i) && cluster.pid(i).is_some() {
                bail!(
                    "{} exited; last lines of {}:\n{}",
                    cluster.info(i).name,
                    cluster.info(i).log_path().display(),
                    tail(&cluster.info(i).log_path(), 5)
                );
            }
        }
        if let Some(l) = nemesis::find_leader(cluster) {
            return Ok(l);
        }
        if Instant::now() > deadline || signals::interrupted() {
            let seen: Vec<String> = (0..cluster.len())
                .map(|i| {
                    let info = cluster.info(i);
                    format!(
                        "{}: {}",
                        info.name,
                        cluster.protocol.describe(info.client_addr())
                    )
                })
                .collect();
            bail!(
                "no leader within {:?}; node status: {}",
                timeout,
                seen.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn worker(w: usize, args: &TestArgs, seed: u64, shared: &Shared) {
    let mut rng = Workload::rng(seed, w);
    let mut process = w as u64;
    let mut client = shared
        .protocol
        .client(shared.endpoints.clone(), &shared.aux, w);
    // The random routing's own stream, so the workload's draws do not move with it.
    let mut route_rng = Workload::rng(seed ^ 0x726f_7574_6500, w);
    let n = shared.endpoints.len().max(1);
    while !shared.stop_workers.load(Ordering::Relaxed) && !signals::interrupted() {
        match args.client_routing {
            Routing::Sticky => {}
            Routing::Home => {
                client.start_at(w % n);
            }
            Routing::Random => {
                client.start_at(route_rng.random_range(0..n));
            }
        }
        let op = shared.workload.next(&mut rng);
        let info = run_op(shared, client.as_mut(), process, &op, args.op_timeout);
        if info {
            // Jepsen: after an indeterminate result the worker continues as a new process.
            process += args.concurrency as u64;
        }
        if let Some(gap) = pause_between(args.rate, args.concurrency, &mut rng) {
            std::thread::sleep(gap);
        }
    }
}

/// Performs one operation with its invoke and completion recorded. Returns whether the
/// outcome was `info`.
fn run_op(
    shared: &Shared,
    client: &mut dyn Client,
    process: u64,
    op: &ClientOp,
    timeout: Duration,
) -> bool {
    let mut event = invoke_event(process, op);
    shared.rec.record(event.clone());
    let completion = client.invoke(op, Instant::now() + timeout);
    event.node = client.node();
    let info = matches!(completion, Completion::Info(_));
    complete_event(&mut event, op, completion, &shared.workload);
    shared.rec.record(event);
    info
}

/// The invoke event of `op` by client `process` (index and time are the recorder's).
/// Shared with `stasis sim`, whose clients record the same events.
pub(crate) fn invoke_event(process: u64, op: &ClientOp) -> Op {
    Op {
        index: 0,
        time: 0,
        process: Process::Client(process),
        kind: OpType::Invoke,
        f: op.f().to_owned(),
        key: Some(op.key().to_owned()),
        value: op.value(),
        error: None,
        node: None,
    }
}

/// Turns `event` (the invoke of `op`) into its completion, and tells the workload the
/// value an `ok` operation saw or wrote (for its cas guesses).
pub(crate) fn complete_event(
    event: &mut Op,
    op: &ClientOp,
    completion: Completion,
    workload: &crate::generator::Workload,
) {
    match completion {
        Completion::Ok(v) => {
            let seen = match op {
                ClientOp::Read { .. } => v.as_i64(),
                ClientOp::Write { value, .. } => Some(*value),
                ClientOp::Cas { new, .. } => Some(*new),
            };
            if let Some(seen) = seen {
                workload.observe(op.key(), seen);
            }
            event.kind = OpType::Ok;
            event.value = v;
        }
        Completion::Fail(e) => {
            event.kind = OpType::Fail;
            event.error = Some(e);
        }
        Completion::Info(e) => {
            event.kind = OpType::Info;
            event.error = Some(e);
        }
    }
}

fn nemesis_loop(
    cluster: &mut Cluster<'_>,
    shared: &Shared,
    start: Instant,
    warmup: Duration,
    limit: Duration,
    schedule: &[Planned],
) -> Result<Vec<FaultRecord>> {
    let mut done = Vec::new();
    let sleep_until = |t: Instant| {
        while Instant::now() < t && !signals::interrupted() {
            std::thread::sleep(Duration::from_millis(20).min(t - Instant::now()));
        }
    };
    let phase_start = start + warmup;
    for p in schedule {
        let at = phase_start + Duration::from_millis(p.at_ms);
        // A fault needs time to matter; none starts in the last second.
        if at + Duration::from_secs(1) >= start + limit {
            break;
        }
        sleep_until(at);
        if signals::interrupted() {
            break;
        }
        let decided = Instant::now();
        let (mut active, value) = nemesis::start(cluster, p)
            .with_context(|| format!("could not apply fault {:?}", p.fault))?;
        let apply_ms = decided.elapsed().as_secs_f64() * 1000.0;
        let ev = shared.rec.nemesis(&p.fault.event("start"), value.clone());
        *shared.active.lock().unwrap_or_else(|e| e.into_inner()) =
            format!("{} {}", p.fault.family().name(), compact(&value));
        let until = (Instant::now() + Duration::from_millis(p.hold_ms)).min(start + limit);
        sleep_until(until);
        let healing = Instant::now();
        let stop_value = nemesis::stop(cluster, &mut active)
            .with_context(|| format!("could not undo fault {:?}", p.fault))?;
        let heal_ms = healing.elapsed().as_secs_f64() * 1000.0;
        let changed = p.fault.family() == Family::Membership
            && (nemesis::membership::succeeded(&value)
                || nemesis::membership::succeeded(&stop_value));
        let stop_ev = shared.rec.nemesis(&p.fault.event("stop"), stop_value);
        shared
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        done.push(FaultRecord {
            family: p.fault.family(),
            fault: p.fault.clone(),
            start_ns: ev.time,
            stop_ns: stop_ev.time,
            value,
            evidence: active.evidence,
            changed,
            apply_ms,
            heal_ms,
        });
    }
    sleep_until(start + limit);
    // A membership change the system refuses is a result, not a harness error; but when
    // not one change of the run worked, the nemesis was not exercising anything.
    let changes: Vec<&FaultRecord> = done
        .iter()
        .filter(|f| f.family == Family::Membership)
        .collect();
    if !changes.is_empty() && !changes.iter().any(|f| f.changed) && !signals::interrupted() {
        let last = changes
            .last()
            .map(|f| f.evidence.join("; "))
            .unwrap_or_default();
        return Err(Unresponsive(format!(
            "the membership nemesis never changed the voter set ({} faults, every change refused or unanswered; last: {last})",
            changes.len()
        ))
        .into());
    }
    Ok(done)
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..57])
    } else {
        s
    }
}

/// Heals the network, resumes paused nodes, restarts dead ones, and waits for a leader.
fn recover(
    cluster: &mut Cluster<'_>,
    shared: &Shared,
    ready: Ready,
    timeout: Duration,
) -> Result<()> {
    nemesis::heal_network(cluster)?;
    for i in 0..cluster.len() {
        cluster.resume(i)?;
        if !cluster.is_running(i) {
            cluster.start(i)?;
        }
        if cluster.has_faketime() {
            cluster.set_clock(i, 0.0, 1.0)?;
        }
    }
    shared
        .rec
        .nemesis("heal", json!("all faults healed, all nodes running"));
    wait_ready(cluster, ready, timeout)
        .map_err(|e| Unresponsive(format!("the cluster did not recover after healing: {e:#}")))?;
    // Let the cluster serve for a moment after recovery while the workload continues.
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

fn final_reads(shared: &Shared, args: &TestArgs) -> Result<()> {
    let base = 1_000_000 + args.concurrency as u64 * 1000;
    let mut client = shared
        .protocol
        .client(shared.endpoints.clone(), &shared.aux, 0);
    for (process, k) in (base..).zip(0..shared.workload.keys) {
        let op = ClientOp::Read {
            key: Workload::key_name(k),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A failed read has no effect, so the process id can be reused.
            let before = shared.rec.counts.ok.load(Ordering::Relaxed);
            run_op(shared, client.as_mut(), process, &op, args.op_timeout);
            if shared.rec.counts.ok.load(Ordering::Relaxed) > before {
                break;
            }
            if Instant::now() > deadline {
                return Err(Unresponsive(format!(
                    "final read of {} did not succeed within 20 s",
                    op.key()
                ))
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn progress(limit: Duration, shared: &Shared, done: &AtomicBool, start: Instant) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    };
    let mut last = (Instant::now(), 0u64);
    let mut next = Instant::now() + every;
    while !done.load(Ordering::Relaxed) && !signals::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += every;
        let c = &shared.rec.counts;
        let (ok, fail, info) = (
            c.ok.load(Ordering::Relaxed),
            c.fail.load(Ordering::Relaxed),
            c.info.load(Ordering::Relaxed),
        );
        let total = ok + fail + info;
        let rate = (total - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), total);
        let active = shared
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let line = format!(
            "[{:>4.0}s/{:.0}s] ok {ok} fail {fail} info {info} | {rate:.0} ops/s | faults: {}",
            start.elapsed().as_secs_f64(),
            limit.as_secs_f64(),
            if active.is_empty() { "none" } else { &active }
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ProblemKind;
    use clap::Parser;

    fn args() -> TestArgs {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: TestArgs,
        }
        Wrap::try_parse_from(["stasis"]).unwrap().args
    }

    /// A run directory whose history writes 1 to k1 and then reads 2 (`bad`) or 1.
    fn run_dir(store: &Path, bad: bool) -> RunDir {
        let dir = RunDir::create(store, "early").unwrap();
        let read = if bad { 2 } else { 1 };
        let lines = [
            r#"{"index":0,"time":1000,"process":0,"type":"invoke","f":"write","key":"k1","value":1}"#.to_owned(),
            r#"{"index":1,"time":2000,"process":0,"type":"ok","f":"write","key":"k1","value":1}"#.to_owned(),
            r#"{"index":2,"time":3000,"process":1,"type":"invoke","f":"read","key":"k1","value":null}"#.to_owned(),
            format!(r#"{{"index":3,"time":4000,"process":1,"type":"ok","f":"read","key":"k1","value":{read}}}"#),
        ];
        std::fs::write(dir.file("history.jsonl"), lines.join("\n") + "\n").unwrap();
        dir
    }

    fn results(dir: &RunDir) -> Value {
        serde_json::from_slice(&std::fs::read(dir.file("results.json")).unwrap()).unwrap()
    }

    #[test]
    fn a_violation_wins_over_a_harness_error() {
        let store = tempfile::tempdir().unwrap();
        let dir = run_dir(store.path(), true);
        let e = anyhow::anyhow!("iptables vanished").context("could not apply fault");
        let o = ended_early(e, &args(), &dir, 7).unwrap();
        assert_eq!(o.exit_code, 1);
        assert_eq!(o.completions, 2);
        let r = results(&dir);
        assert_eq!(r["verdict"], "not-linearizable");
        assert_eq!(r["exit_code"], 1);
        assert_eq!(r["problem"]["kind"], "harness");
        let summary = std::fs::read_to_string(dir.file("summary.txt")).unwrap();
        assert!(
            summary.contains("harness error: could not apply fault: iptables vanished"),
            "{summary}"
        );
        assert!(dir.file("report.html").is_file());
    }

    #[test]
    fn a_harness_error_on_a_linearizable_history_is_exit_3_with_the_verdict_beside_it() {
        let store = tempfile::tempdir().unwrap();
        let dir = run_dir(store.path(), false);
        let o = ended_early(anyhow::anyhow!("disk full"), &args(), &dir, 7).unwrap();
        assert_eq!(o.exit_code, 3);
        let r = results(&dir);
        assert_eq!(r["verdict"], "linearizable");
        assert_eq!(r["exit_code"], 3);
        assert_eq!(r["problem"]["kind"], "harness");
        // Re-analysis keeps the problem and its exit code.
        let again = analyze::analyze_run(&dir.path, None, None, Duration::from_secs(10)).unwrap();
        assert_eq!(again.exit_code, 3);
        assert_eq!(again.problem.map(|p| p.kind), Some(ProblemKind::Harness));
    }

    #[test]
    fn an_unresponsive_system_is_a_finding_and_the_verdict_decides() {
        let store = tempfile::tempdir().unwrap();
        let dir = run_dir(store.path(), false);
        let e = anyhow::Error::new(Unresponsive("final read of k1 did not succeed".into()))
            .context("recovery");
        let o = ended_early(e, &args(), &dir, 7).unwrap();
        assert_eq!(o.exit_code, 0);
        let p = o.report.unwrap().problem.unwrap();
        assert_eq!(p.kind, ProblemKind::System);
        assert!(
            p.line()
                .starts_with("finding: the system stopped answering"),
            "{}",
            p.line()
        );
        let bad = run_dir(store.path(), true);
        let e = anyhow::Error::new(Unresponsive("no leader".into()));
        assert_eq!(ended_early(e, &args(), &bad, 7).unwrap().exit_code, 1);
    }

    #[test]
    fn without_a_history_the_error_stands() {
        let store = tempfile::tempdir().unwrap();
        let dir = RunDir::create(store.path(), "early").unwrap();
        let e =
            ended_early(anyhow::anyhow!("cluster did not come up"), &args(), &dir, 7).unwrap_err();
        assert_eq!(format!("{e}"), "cluster did not come up");
    }
}
