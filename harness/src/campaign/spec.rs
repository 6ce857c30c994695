//! A campaign file: its TOML shape, validation (one-line `file[:line]: message` errors)
//! and expansion into the matrix of runs ([`Cell`]s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::nemesis::{self, Family};
use crate::run::TestArgs;
use crate::sim::campaign::{SimStage, SimStageSpec};
use crate::sut::SutSpec;
use crate::units::parse_duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    name: String,
    budget: String,
    time_limit: String,
    systems: Vec<String>,
    nemesis: Vec<String>,
    seeds: toml::Value,
    #[serde(default = "default_nodes")]
    nodes: Vec<i64>,
    workloads: Vec<WorkloadSpec>,
    #[serde(default)]
    node_args: BTreeMap<String, Vec<String>>,
    target: Option<String>,
    shapes: Option<String>,
    nemesis_interval: Option<String>,
    check_timeout: Option<String>,
    ready_timeout: Option<String>,
    spares: Option<i64>,
    settings: Option<String>,
    /// Network fault kinds for the net nemesis (`--net-faults`).
    net_faults: Option<String>,
    /// Baseline latency on every link for every run (`--net-latency`).
    net_latency: Option<String>,
    /// Range of a delay fault's mean latency (`--net-delay`).
    net_delay: Option<String>,
    /// Jitter of a delay fault, percent of its mean (`--net-jitter`).
    net_jitter: Option<String>,
    /// Where each operation goes first (`--client-routing`).
    client_routing: Option<String>,
    /// Which links a network fault covers (`--net-scopes`).
    net_scopes: Option<String>,
    /// Run every cell's nodes on these remote hosts (`--hosts`; relative to this file).
    hosts: Option<String>,
    /// Deterministic-simulation stages, run before the matrix (`[[sim]]`).
    #[serde(default)]
    sim: Vec<SimStageSpec>,
    /// Systems known not to be linearizable (a documented finding, docs/FINDINGS.md):
    /// their `invalid` runs are recorded as such but do not fail the campaign.
    #[serde(default)]
    expect_violation: Vec<String>,
}

fn default_nodes() -> Vec<i64> {
    vec![3]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadSpec {
    name: String,
    keys: Option<i64>,
    write_pct: Option<i64>,
    cas_pct: Option<i64>,
    rate: Option<toml::Value>,
    concurrency: Option<i64>,
    op_timeout: Option<String>,
}

/// Where the seeds come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seeds {
    /// These seeds, in this order.
    List(Vec<u64>),
    /// This many fresh random seeds, drawn when the campaign starts (printed and recorded).
    Random(usize),
}

/// A validated campaign file.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub name: String,
    pub file: PathBuf,
    pub budget: Duration,
    pub time_limit: Duration,
    /// As written in the file (built-in names or spec paths).
    pub systems: Vec<String>,
    pub nemesis: Vec<String>,
    pub workloads: Vec<(String, TestArgs)>,
    pub nodes: Vec<u8>,
    pub seeds: Seeds,
    pub node_args: BTreeMap<String, Vec<String>>,
    /// `[[sim]]` stages, run before the matrix.
    pub sim: Vec<SimStage>,
    /// Base options every run starts from (defaults of `stasis test` plus the file's).
    base: TestArgs,
    /// Built-in or spec name per system entry (for run names).
    sut_names: BTreeMap<String, String>,
    /// System entries whose violations are expected findings (see [`judged`]).
    pub expect_violation: Vec<String>,
    /// What `--sut` gets per system entry (spec paths resolved against the file's
    /// directory).
    sut_paths: BTreeMap<String, String>,
}

/// One run of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub system: String,
    pub nemesis: String,
    pub workload: String,
    pub nodes: u8,
    /// `None` for a fresh random seed not drawn yet (dry run).
    pub seed: Option<u64>,
    pub args: TestArgs,
}

/// The defaults of `stasis test`, exactly as its command line gives them.
fn default_test_args() -> TestArgs {
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: TestArgs,
    }
    Wrap::try_parse_from(["stasis"])
        .map(|w| w.args)
        .expect("stasis test's defaults parse")
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `file: message` (with the line when the TOML parser knows it).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            anyhow::anyhow!("{}:{line}: {msg}", path.display())
        }
        None => anyhow::anyhow!("{}: {msg}", path.display()),
    }
}

fn duration(field: &str, s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| format!("{field}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{field}: must be more than zero"));
    }
    Ok(d)
}

fn int_in<T: TryFrom<i64>>(field: &str, v: i64, lo: i64, hi: i64) -> Result<T, String> {
    if v < lo || v > hi {
        return Err(format!("{field} = {v}: must be between {lo} and {hi}"));
    }
    T::try_from(v).map_err(|_| format!("{field} = {v}: out of range"))
}

fn non_empty<T>(field: &str, v: &[T]) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{field} is empty: give at least one"));
    }
    Ok(())
}

impl Campaign {
    /// Reads and validates a campaign file; errors are one line, `file: message`.
    pub fn load(path: &Path) -> Result<Campaign> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Campaign> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Self::validate(spec, path, base_dir)
            .map_err(|msg| anyhow::anyhow!("{}: {msg}", path.display()))
    }

    fn validate(f: FileSpec, path: &Path, base_dir: &Path) -> Result<Campaign, String> {
        if !name_ok(&f.name) {
            return Err(format!(
                "name {:?}: use letters, digits, '-', '_' or '.' (it names the campaign directory)",
                f.name
            ));
        }
        let budget = duration("budget", &f.budget)?;
        let time_limit = duration("time_limit", &f.time_limit)?;
        non_empty("systems", &f.systems)?;
        non_empty("nemesis", &f.nemesis)?;
        non_empty("workloads", &f.workloads)?;
        non_empty("nodes", &f.nodes)?;
        if let Some(x) = f.expect_violation.iter().find(|x| !f.systems.contains(x)) {
            return Err(format!(
                "expect_violation: {x:?} is not one of systems ({})",
                f.systems.join(", ")
            ));
        }

        let mut base = default_test_args();
        base.time_limit = time_limit;
        if let Some(t) = &f.target {
            nemesis::Target::parse_list(t).map_err(|e| format!("target: {e}"))?;
            base.target = t.clone();
        }
        if let Some(s) = &f.shapes {
            nemesis::partition::Shape::parse_list(s).map_err(|e| format!("shapes: {e}"))?;
            base.shapes = s.clone();
        }
        if let Some(d) = &f.nemesis_interval {
            base.nemesis_interval = duration("nemesis_interval", d)?;
        }
        if let Some(d) = &f.check_timeout {
            base.check_timeout = duration("check_timeout", d)?;
        }
        if let Some(d) = &f.ready_timeout {
            base.ready_timeout = Some(duration("ready_timeout", d)?);
        }
        if let Some(n) = f.spares {
            base.spares = Some(int_in("spares", n, 0, 20)?);
        }
        if let Some(k) = &f.net_faults {
            nemesis::net::Kind::parse_list(k).map_err(|e| format!("net_faults: {e}"))?;
            base.net_faults = k.clone();
        }
        if let Some(l) = &f.net_latency {
            crate::netfault::parse_latency(l).map_err(|e| format!("net_latency: {e}"))?;
            base.net_latency = Some(l.clone());
        }
        if let Some(d) = &f.net_delay {
            nemesis::net::parse_delay_range(d).map_err(|e| format!("net_delay: {e}"))?;
            base.net_delay = Some(d.clone());
        }
        if let Some(j) = &f.net_jitter {
            nemesis::net::parse_jitter_range(j).map_err(|e| format!("net_jitter: {e}"))?;
            base.net_jitter = Some(j.clone());
        }
        if let Some(sc) = &f.net_scopes {
            nemesis::net::Scope::parse_list(sc).map_err(|e| format!("net_scopes: {e}"))?;
            base.net_scopes = Some(sc.clone());
        }
        if let Some(r) = &f.client_routing {
            base.client_routing = <crate::client::Routing as clap::ValueEnum>::from_str(r, false)
                .map_err(|_| {
                format!("client_routing = {r:?}: use \"sticky\", \"home\" or \"random\"")
            })?;
        }
        if let Some(h) = &f.hosts {
            let path = base_dir.join(h);
            crate::remote::hosts::HostsFile::load(&path).map_err(|e| format!("hosts: {e:#}"))?;
            base.hosts = Some(path);
        }
        if let Some(m) = &f.settings {
            base.settings = <crate::settings::Mode as clap::ValueEnum>::from_str(m, false)
                .map_err(|_| format!("settings = {m:?}: use \"vary\" or \"default\""))?;
        }

        // Systems: built-ins or spec files (relative paths are relative to the campaign
        // file); each loads now so a typo fails before hours of runs.
        let mut systems: Vec<String> = Vec::new();
        let mut sut_paths = BTreeMap::new();
        let mut sut_names = BTreeMap::new();
        let mut faketime = BTreeMap::new();
        for s in &f.systems {
            if systems.contains(s) {
                return Err(format!("systems: {s:?} is listed twice"));
            }
            let is_builtin = crate::sut::BUILTIN.iter().any(|(n, _)| n == s);
            let resolved = if is_builtin || Path::new(s).is_absolute() {
                s.clone()
            } else {
                base_dir.join(s).to_string_lossy().into_owned()
            };
            let spec = SutSpec::load(&resolved).map_err(|e| format!("systems: {e:#}"))?;
            sut_names.insert(s.clone(), spec.name.clone());
            faketime.insert(s.clone(), (spec.faketime, spec.membership.is_some()));
            sut_paths.insert(s.clone(), resolved);
            systems.push(s.clone());
        }
        for k in f.node_args.keys() {
            if !systems.contains(k) {
                return Err(format!(
                    "node_args: {k:?} is not one of the systems ({})",
                    f.systems.join(", ")
                ));
            }
        }
        let node_args = f.node_args;

        for n in &f.nemesis {
            Family::parse_list(n).map_err(|e| format!("nemesis {n:?}: {e}"))?;
            if f.nemesis.iter().filter(|m| *m == n).count() > 1 {
                return Err(format!("nemesis: {n:?} is listed twice"));
            }
            // `all` skips what a system cannot take; naming it explicitly is a mistake.
            let named = |f: &str| n.split(',').any(|p| p.trim() == f);
            for (given, (ft, members)) in &faketime {
                if named("clock") && !ft {
                    return Err(format!(
                        "nemesis {n:?} includes clock, which cannot move {given}'s clock \
                         (faketime = false in its spec): use `all` (it skips clock there) \
                         or a set without clock"
                    ));
                }
                if named("membership") && !members {
                    return Err(format!(
                        "nemesis {n:?} includes membership, but {given}'s spec has no \
                         [membership] section: use `all` (it skips membership there) or a \
                         set without membership"
                    ));
                }
            }
        }

        let mut nodes = Vec::new();
        for n in &f.nodes {
            let n: u8 = int_in("nodes", *n, 1, 50)?;
            if nodes.contains(&n) {
                return Err(format!("nodes: {n} is listed twice"));
            }
            nodes.push(n);
        }

        let seeds = match &f.seeds {
            toml::Value::Integer(n) => Seeds::Random(int_in("seeds", *n, 1, 100_000)?),
            toml::Value::Array(items) => {
                non_empty("seeds", items)?;
                let mut out = Vec::new();
                for v in items {
                    let s = match v {
                        toml::Value::Integer(i) if *i >= 0 => *i as u64,
                        toml::Value::String(s) => s.trim().parse::<u64>().map_err(|_| {
                            format!("seeds: {s:?} is not a seed (a non-negative integer)")
                        })?,
                        other => {
                            return Err(format!(
                                "seeds: {other} is not a seed (a non-negative integer)"
                            ));
                        }
                    };
                    if out.contains(&s) {
                        return Err(format!("seeds: {s} is listed twice"));
                    }
                    out.push(s);
                }
                Seeds::List(out)
            }
            other => {
                return Err(format!(
                    "seeds = {other}: give a list of seeds ([1, 2, 3]) or a count of fresh random seeds (3)"
                ));
            }
        };

        let mut workloads = Vec::new();
        for w in &f.workloads {
            if !name_ok(&w.name) {
                return Err(format!(
                    "workload name {:?}: use letters, digits, '-', '_' or '.'",
                    w.name
                ));
            }
            if workloads
                .iter()
                .any(|(n, _): &(String, TestArgs)| *n == w.name)
            {
                return Err(format!("workloads: {:?} is defined twice", w.name));
            }
            let field = |k: &str| format!("workload {}: {k}", w.name);
            let mut a = base.clone();
            if let Some(v) = w.keys {
                a.keys = int_in(&field("keys"), v, 1, 1_000_000)?;
            }
            if let Some(v) = w.write_pct {
                a.write_pct = int_in(&field("write_pct"), v, 0, 100)?;
            }
            if let Some(v) = w.cas_pct {
                a.cas_pct = int_in(&field("cas_pct"), v, 0, 100)?;
            }
            if a.write_pct + a.cas_pct > 100 {
                return Err(format!(
                    "workload {}: write_pct + cas_pct = {} is more than 100",
                    w.name,
                    a.write_pct + a.cas_pct
                ));
            }
            if let Some(v) = &w.rate {
                a.rate = match v {
                    toml::Value::Integer(i) => *i as f64,
                    toml::Value::Float(x) => *x,
                    other => return Err(format!("{} = {other}: not a number", field("rate"))),
                };
                if !(a.rate >= 0.0 && a.rate.is_finite()) {
                    return Err(format!(
                        "{}: must be 0 (as fast as possible) or more",
                        field("rate")
                    ));
                }
            }
            if let Some(v) = w.concurrency {
                a.concurrency = int_in(&field("concurrency"), v, 1, 10_000)?;
            }
            if let Some(d) = &w.op_timeout {
                a.op_timeout = duration(&field("op_timeout"), d)?;
            }
            workloads.push((w.name.clone(), a));
        }
        let sim = (f.sim.iter().enumerate())
            .map(|(k, s)| s.validate(k + 1))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Campaign {
            name: f.name,
            file: path.to_path_buf(),
            budget,
            time_limit,
            systems,
            nemesis: f.nemesis,
            workloads,
            nodes,
            seeds,
            node_args,
            sim,
            base,
            sut_names,
            sut_paths,
            expect_violation: f.expect_violation,
        })
    }

    /// Number of runs in the matrix.
    pub fn len(&self) -> usize {
        let seeds = match &self.seeds {
            Seeds::List(s) => s.len(),
            Seeds::Random(n) => *n,
        };
        seeds * self.systems.len() * self.nemesis.len() * self.workloads.len() * self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The run name of a cell: `<system>-<nemesis>-<workload>-n<nodes>`.
    fn run_name(&self, system: &str, nemesis: &str, workload: &str, nodes: u8) -> String {
        let sut = self.sut_names.get(system).map_or(system, String::as_str);
        let nem: String = nemesis
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| if c == ',' { '-' } else { c })
            .collect();
        format!("{sut}-{nem}-{workload}-n{nodes}")
    }

    /// The matrix in run order. Seeds are outermost, so every combination has its first
    /// seed before any has a second. Within a seed the systems take turns (round-robin:
    /// each system's k-th cell, then every system's (k+1)-th), so a budget that runs out
    /// has given each system the same number of runs, give or take one, whatever the
    /// order of `systems`; each system's cells go through the nemesis sets fastest, then
    /// the workloads, then the node counts. `drawn` are the drawn seeds for
    /// `Seeds::Random` (`None` = undrawn).
    pub fn expand(&self, drawn: Option<&[u64]>) -> Vec<Cell> {
        let seeds: Vec<Option<u64>> = match (&self.seeds, drawn) {
            (Seeds::List(s), _) => s.iter().copied().map(Some).collect(),
            (Seeds::Random(_), Some(d)) => d.iter().copied().map(Some).collect(),
            (Seeds::Random(n), None) => vec![None; *n],
        };
        let mut cells = Vec::with_capacity(self.len());
        for seed in &seeds {
            for &nodes in &self.nodes {
                for (wname, wargs) in &self.workloads {
                    for nem in &self.nemesis {
                        for system in &self.systems {
                            let mut args = wargs.clone();
                            args.sut = self.sut_paths.get(system).unwrap_or(system).clone();
                            args.nemesis = nem.clone();
                            args.nodes = nodes;
                            args.seed = *seed;
                            args.node_args =
                                self.node_args.get(system).cloned().unwrap_or_default();
                            args.name = Some(self.run_name(system, nem, wname, nodes));
                            cells.push(Cell {
                                system: system.clone(),
                                nemesis: nem.clone(),
                                workload: wname.clone(),
                                nodes,
                                seed: *seed,
                                args,
                            });
                        }
                    }
                }
            }
        }
        cells
    }

    /// The base options (for tests and the dry run).
    pub fn base(&self) -> &TestArgs {
        &self.base
    }
}

#[cfg(test)]
pub(in crate::campaign) mod tests {
    use super::*;

    pub(in crate::campaign) const BASIC: &str = r#"
name = "t"
budget = "10m"
time_limit = "20s"
systems = ["raft", "multipaxos"]
nemesis = ["kill", "partition,pause"]
seeds = [7, 8, 9]
nodes = [3, 5]

[[workloads]]
name = "small"
keys = 4

[[workloads]]
name = "cas"
cas_pct = 50
write_pct = 20
rate = 100
concurrency = 4
op_timeout = "1s"
"#;

    pub(in crate::campaign) fn parse(text: &str) -> Result<Campaign> {
        Campaign::parse(text, Path::new("camp.toml"))
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err().to_string();
        assert!(!e.contains('\n'), "error is not one line: {e}");
        assert!(e.starts_with("camp.toml"), "{e}");
        e
    }

    #[test]
    fn hosts_reach_every_run_with_every_fault() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = "[[host]]\naddress = \"10.0.0.1\"\n[[host]]\naddress = \"10.0.0.2\"\n";
        std::fs::write(dir.path().join("hosts.toml"), hosts).unwrap();
        let load = |text: &str| {
            let file = dir.path().join("camp.toml");
            std::fs::write(&file, text).unwrap();
            Campaign::load(&file).map_err(|e| e.to_string())
        };
        let text = BASIC.replace("nodes = [3, 5]", "nodes = [3, 5]\nhosts = \"hosts.toml\"");
        let c = load(&text).unwrap();
        let want = dir.path().join("hosts.toml");
        assert!(
            c.expand(None)
                .iter()
                .all(|c| c.args.hosts.as_deref() == Some(want.as_path()))
        );
        assert_eq!(parse(BASIC).unwrap().expand(None)[0].args.hosts, None);
        let one_line = |e: String| {
            assert!(!e.contains('\n'), "{e}");
            e
        };
        let e = one_line(load(&text.replace("hosts.toml", "nowhere.toml")).unwrap_err());
        assert!(e.contains("hosts:") && e.contains("nowhere.toml"), "{e}");
        // The disk-fault filesystem runs on remote hosts (stasis diskfault-agent there).
        assert!(load(&text.replace("\"kill\", ", "\"kill,disk\", ")).is_ok());
        // The packet delayer runs on remote hosts (stasis netfault-agent there).
        assert!(load(&text.replace("\"kill\", ", "\"kill,net\", ")).is_ok());
        assert!(load(&text.replace("hosts = ", "net_latency = \"20ms\"\nhosts = ")).is_ok());
        // `all` is allowed.
        assert!(load(&text.replace("\"kill\", ", "\"all\", ")).is_ok());
        // Clock faults run on remote hosts (libfaketime there).
        assert!(load(&text.replace("\"kill\", ", "\"kill,clock\", ")).is_ok());
    }

    #[test]
    fn net_keys_reach_every_run_and_bad_ones_are_one_line_errors() {
        let text = BASIC.replace(
            "nodes = [3, 5]",
            "nodes = [3, 5]\nnet_latency = \"20ms±10ms\"\nnet_faults = \"delay,loss\"\nnet_delay = \"100ms-300ms\"\nnet_jitter = \"0-20\"\nclient_routing = \"home\"",
        );
        let c = parse(&text.replace("\"kill\", ", "\"net\", ")).unwrap();
        let cells = c.expand(None);
        assert!(
            cells
                .iter()
                .all(|c| c.args.net_latency.as_deref() == Some("20ms±10ms")
                    && c.args.net_faults == "delay,loss"
                    && c.args.net_delay.as_deref() == Some("100ms-300ms")
                    && c.args.net_jitter.as_deref() == Some("0-20")
                    && c.args.client_routing == crate::client::Routing::Home)
        );
        assert!(cells.iter().any(|c| c.args.nemesis == "net"));
        let e = err(&text.replace("100ms-300ms", "300ms-100ms"));
        assert!(e.contains("net_delay"), "{e}");
        let e = err(&text.replace("\"0-20\"", "\"20-0\""));
        assert!(e.contains("net_jitter"), "{e}");
        let e = err(&text.replace("\"home\"", "\"nearest\""));
        assert!(e.contains("client_routing"), "{e}");
        let e = err(&text.replace("20ms±10ms", "fast"));
        assert!(e.contains("net_latency"), "{e}");
        let e = err(&text.replace("delay,loss", "delay,jam"));
        assert!(e.contains("net_faults") && e.contains("jam"), "{e}");
    }

    #[test]
    fn expansion_counts_order_and_fields() {
        let c = parse(BASIC).unwrap();
        assert_eq!(c.len(), 3 * 2 * 2 * 2 * 2);
        let cells = c.expand(None);
        assert_eq!(cells.len(), 48);
        // Seeds outermost, then node counts, workloads and nemesis sets, the systems
        // taking turns.
        let first: Vec<String> = cells[..5]
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {} {:?}",
                    c.system, c.nemesis, c.workload, c.nodes, c.seed
                )
            })
            .collect();
        assert_eq!(
            first,
            [
                "raft kill small 3 Some(7)",
                "multipaxos kill small 3 Some(7)",
                "raft partition,pause small 3 Some(7)",
                "multipaxos partition,pause small 3 Some(7)",
                "raft kill cas 3 Some(7)",
            ]
        );
        assert_eq!(cells[8].nodes, 5);
        assert_eq!(cells[16].seed, Some(8));
        assert_eq!(cells[47].seed, Some(9));
        // Every combination appears once.
        let mut keys: Vec<String> = cells
            .iter()
            .map(|c| {
                format!(
                    "{}{}{}{}{:?}",
                    c.system, c.nemesis, c.workload, c.nodes, c.seed
                )
            })
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 48);
        // Workload fields and the per-run options.
        let cas = cells.iter().find(|c| c.workload == "cas").unwrap();
        assert_eq!(cas.args.cas_pct, 50);
        assert_eq!(cas.args.write_pct, 20);
        assert_eq!(cas.args.rate, 100.0);
        assert_eq!(cas.args.concurrency, 4);
        assert_eq!(cas.args.op_timeout, Duration::from_secs(1));
        assert_eq!(cas.args.time_limit, Duration::from_secs(20));
        let small = &cells[0];
        assert_eq!(small.args.keys, 4);
        // Unset fields keep `stasis test`'s defaults.
        let d = default_test_args();
        assert_eq!(small.args.cas_pct, d.cas_pct);
        assert_eq!(small.args.concurrency, d.concurrency);
        assert_eq!(small.args.sut, "raft");
        assert_eq!(small.args.nemesis, "kill");
        assert_eq!(small.args.seed, Some(7));
        assert_eq!(small.args.name.as_deref(), Some("raft-kill-small-n3"));
        assert_eq!(
            cells[2].args.name.as_deref(),
            Some("raft-partition-pause-small-n3")
        );
    }

    /// However many runs the budget allows, the systems have had the same number of runs
    /// give or take one, and each system's runs go through the nemesis sets first: the
    /// last system of the list is not starved (the nightly campaign once ran no Redis
    /// cell at all).
    #[test]
    fn a_budget_that_runs_out_is_shared_fairly_by_the_systems() {
        let text = BASIC
            .replace(
                "systems = [\"raft\", \"multipaxos\"]",
                "systems = [\"raft\", \"multipaxos\", \"etcd\", \"zookeeper\", \"redis\"]",
            )
            .replace(
                "nemesis = [\"kill\", \"partition,pause\"]",
                "nemesis = [\"kill\", \"pause\", \"partition\", \"net\"]",
            );
        let c = parse(&text).unwrap();
        let cells = c.expand(None);
        assert_eq!(cells.len(), 3 * 5 * 4 * 2 * 2);
        for fit in 1..=cells.len() {
            let mut runs = std::collections::BTreeMap::<&str, usize>::new();
            for cell in &cells[..fit] {
                *runs.entry(cell.system.as_str()).or_default() += 1;
            }
            let most = runs.values().max().unwrap();
            let least = if runs.len() < 5 {
                0
            } else {
                *runs.values().min().unwrap()
            };
            assert!(most - least <= 1, "first {fit} runs: {runs:?}");
        }
        // The first 20 runs (what a short budget allows): every system under every
        // nemesis set once.
        let mut pairs: Vec<(String, String)> = cells[..20]
            .iter()
            .map(|c| (c.system.clone(), c.nemesis.clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 20);
    }

    #[test]
    fn random_seeds_are_a_count() {
        let text = BASIC.replace("seeds = [7, 8, 9]", "seeds = 2");
        let c = parse(&text).unwrap();
        assert_eq!(c.seeds, Seeds::Random(2));
        assert_eq!(c.len(), 32);
        assert!(c.expand(None).iter().all(|c| c.seed.is_none()));
        let cells = c.expand(Some(&[11, 12]));
        assert_eq!(cells[0].seed, Some(11));
        assert_eq!(cells[15].seed, Some(11));
        assert_eq!(cells[16].seed, Some(12));
        assert_eq!(cells[16].args.seed, Some(12));
        // Big seeds can be given as strings (TOML integers stop at i64).
        let text = BASIC.replace("seeds = [7, 8, 9]", "seeds = [\"18446744073709551615\", 1]");
        let c = parse(&text).unwrap();
        assert_eq!(c.seeds, Seeds::List(vec![u64::MAX, 1]));
    }

    #[test]
    fn node_args_go_to_their_system_only() {
        let text = format!("{BASIC}\n[node_args]\nraft = [\"--quorum\", \"grid:2x3\"]\n");
        let c = parse(&text).unwrap();
        for cell in c.expand(None) {
            if cell.system == "raft" {
                assert_eq!(cell.args.node_args, ["--quorum", "grid:2x3"]);
            } else {
                assert!(cell.args.node_args.is_empty());
            }
        }
    }

    #[test]
    fn validation_errors_are_one_line_and_say_what() {
        let cases: &[(&str, &str, &str)] = &[
            ("budget = \"10m\"", "budget = \"10 parsecs\"", "budget"),
            (
                "time_limit = \"20s\"",
                "time_limit = \"0s\"",
                "time_limit: must be more",
            ),
            ("nodes = [3, 5]", "nodes = []", "nodes is empty"),
            ("nodes = [3, 5]", "nodes = [0]", "nodes = 0"),
            (
                "systems = [\"raft\", \"multipaxos\"]",
                "systems = []",
                "systems is empty",
            ),
            (
                "systems = [\"raft\", \"multipaxos\"]",
                "systems = [\"nosuchsystem\"]",
                "nosuchsystem",
            ),
            (
                "nemesis = [\"kill\", \"partition,pause\"]",
                "nemesis = [\"kil\"]",
                "unknown nemesis \"kil\"",
            ),
            (
                "nemesis = [\"kill\", \"partition,pause\"]",
                "nemesis = []",
                "nemesis is empty",
            ),
            ("seeds = [7, 8, 9]", "seeds = []", "seeds is empty"),
            ("seeds = [7, 8, 9]", "seeds = [-1]", "not a seed"),
            ("seeds = [7, 8, 9]", "seeds = 0", "seeds = 0"),
            (
                "seeds = [7, 8, 9]",
                "seeds = \"many\"",
                "count of fresh random seeds",
            ),
            ("seeds = [7, 8, 9]", "seeds = [7, 7]", "listed twice"),
            ("name = \"t\"", "name = \"a/b\"", "name \"a/b\""),
            (
                "keys = 4",
                "keys = 4\nflavour = \"x\"",
                "unknown field `flavour`",
            ),
            ("keys = 4", "keys = 0", "keys = 0"),
            ("cas_pct = 50", "cas_pct = 90", "more than 100"),
            ("op_timeout = \"1s\"", "op_timeout = \"soon\"", "op_timeout"),
            ("rate = 100", "rate = \"fast\"", "rate"),
            (
                "budget = \"10m\"",
                "budget = \"10m\"\ncolour = 1",
                "unknown field `colour`",
            ),
            ("name = \"small\"", "name = \"cas\"", "defined twice"),
        ];
        for (from, to, want) in cases {
            assert!(BASIC.contains(from), "{from}");
            let e = err(&BASIC.replacen(from, to, 1));
            assert!(e.contains(want), "{to}: {e}");
        }
        // Unknown keys report the line.
        let e = err(&BASIC.replace("budget = \"10m\"", "budget = \"10m\"\ncolour = 1"));
        assert!(e.starts_with("camp.toml:4:"), "{e}");
        // Missing required keys and empty workloads.
        let e = err("name = \"x\"\n");
        assert!(e.contains("missing field"), "{e}");
        let no_workloads =
            BASIC.split("[[workloads]]").next().unwrap().to_owned() + "workloads = []\n";
        assert!(err(&no_workloads).contains("workloads is empty"));
        // node_args for a system not in the matrix.
        let e = err(&format!("{BASIC}\n[node_args]\netcd = [\"--x\"]\n"));
        assert!(
            e.contains("node_args: \"etcd\" is not one of the systems"),
            "{e}"
        );
        // An explicit clock nemesis for a system whose clock cannot move.
        let text = BASIC
            .replace("[\"raft\", \"multipaxos\"]", "[\"raft\", \"etcd\"]")
            .replace("\"partition,pause\"", "\"partition,clock\"");
        assert!(err(&text).contains("includes clock"));
        let text = BASIC
            .replace("[\"raft\", \"multipaxos\"]", "[\"raft\", \"etcd\"]")
            .replace("\"partition,pause\"", "\"kill,membership\"");
        assert!(err(&text).contains("includes membership"));
        let e = err(&BASIC.replace("budget = \"10m\"", "budget = \"10m\"\nspares = 99"));
        assert!(e.contains("spares = 99"), "{e}");
        // `all` is fine there (the run skips clock for etcd).
        let text = BASIC
            .replace("[\"raft\", \"multipaxos\"]", "[\"raft\", \"etcd\"]")
            .replace("\"partition,pause\"", "\"all\"");
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn spec_paths_are_relative_to_the_campaign_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("specs")).unwrap();
        let spec = crate::sut::BUILTIN[0]
            .1
            .replacen("name = ", "name = \"mine\"\n# was: ", 1);
        std::fs::write(d.path().join("specs/mine.toml"), spec).unwrap();
        let text = BASIC.replace("[\"raft\", \"multipaxos\"]", "[\"specs/mine.toml\"]");
        let file = d.path().join("c.toml");
        let c = Campaign::parse(&text, &file).unwrap();
        let cell = &c.expand(None)[0];
        assert_eq!(cell.system, "specs/mine.toml");
        assert_eq!(
            Path::new(&cell.args.sut),
            d.path().join("specs/mine.toml").as_path()
        );
        assert_eq!(cell.args.name.as_deref(), Some("mine-kill-small-n3"));
        // From elsewhere, the same relative path does not resolve.
        let e = err(&text);
        assert!(
            e.contains("systems:") && e.contains("specs/mine.toml"),
            "{e}"
        );
    }

    #[test]
    fn shipped_campaigns_and_the_readme_example_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let ci = Campaign::load(&root.join("campaigns/ci.toml")).unwrap();
        assert_eq!(ci.systems, ["raft", "multipaxos", "etcd"]);
        // CI's campaign must stay short: every run fits its budget of a few minutes.
        assert!(ci.budget <= Duration::from_secs(6 * 60));
        assert!(ci.len() as u32 * (ci.time_limit + super::super::INITIAL_OVERHEAD) <= ci.budget);
        let nightly = Campaign::load(&root.join("campaigns/nightly.toml")).unwrap();
        assert!(nightly.systems.len() >= 4, "{:?}", nightly.systems);
        assert!(nightly.systems.iter().any(|s| s == "zookeeper"));
        // Redis's loss of acknowledged writes is a known finding: it must not fail the
        // nightly.
        assert!(nightly.systems.iter().any(|s| s == "redis"));
        assert_eq!(nightly.expect_violation, ["redis"]);
        assert!(nightly.budget <= Duration::from_secs(60 * 60));
        assert!(nightly.workloads.len() >= 2 && nightly.nemesis.len() >= 3);

        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let section = readme
            .split("## Campaigns")
            .nth(1)
            .expect("a Campaigns section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a TOML example in the Campaigns section");
        let c = parse(example).unwrap();
        assert!(c.len() > 1);
    }
}
