//! A campaign's sim stages (`[[sim]]` tables in the campaign file): `stasis sim` over fresh
//! seeds for a wall-clock budget. The campaign records each as one cell (system
//! `sim:<protocol>`, workload `sim`; `campaign::sim_cell`).

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use super::{SimArgs, SimSpec, Sweep, execute};

/// One `[[sim]]` table as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimStageSpec {
    /// raft or multipaxos.
    pub protocol: String,
    /// Wall time of the stage: schedules start until it is used.
    pub budget: String,
    /// Simulated time of one schedule (`stasis sim --sim-time`).
    pub sim_time: Option<String>,
    pub nodes: Option<i64>,
    /// Spare nodes beside the voters (`stasis sim --spares`): what `reconfig` faults add.
    pub spares: Option<i64>,
    /// `stasis sim --faults` (default all).
    pub faults: Option<String>,
    /// `stasis sim --swarm`: each schedule draws from a seed-chosen subset of `faults`.
    #[serde(default)]
    pub swarm: bool,
    /// Seeded bugs switched on in every node (for measuring; a nightly stage has none).
    #[serde(default)]
    pub bugs: Vec<String>,
    /// Flags for every simulated node, as `stasis-node` takes them.
    #[serde(default)]
    pub node_args: Vec<String>,
}

/// A validated sim stage.
#[derive(Clone, Debug)]
pub struct SimStage {
    pub budget: Duration,
    pub args: SimArgs,
}

impl SimStageSpec {
    /// Validates `[[sim]]` number `k` (from 1) into `stasis sim` options, through the same
    /// flag parser as the command line (same defaults, same checks).
    pub fn validate(&self, k: usize) -> Result<SimStage, String> {
        let field = |name: &str| format!("[[sim]] {k}: {name}");
        let mut argv: Vec<String> = vec![
            "stasis".into(),
            "--protocol".into(),
            self.protocol.clone(),
            "--budget".into(),
            self.budget.clone(),
            // The budget ends the stage, not a seed count.
            "--seeds".into(),
            u64::MAX.to_string(),
        ];
        if let Some(t) = &self.sim_time {
            argv.extend(["--sim-time".into(), t.clone()]);
        }
        if let Some(n) = self.nodes {
            argv.extend(["--nodes".into(), n.to_string()]);
        }
        if let Some(n) = self.spares {
            argv.extend(["--spares".into(), n.to_string()]);
        }
        if let Some(f) = &self.faults {
            argv.extend(["--faults".into(), f.clone()]);
        }
        if self.swarm {
            argv.push("--swarm".into());
        }
        for b in &self.bugs {
            argv.extend(["--bug".into(), b.clone()]);
        }
        for a in &self.node_args {
            argv.push(format!("--node-arg={a}"));
        }
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: SimArgs,
        }
        let args = Wrap::try_parse_from(argv)
            .map_err(|e| {
                let text = e.to_string();
                let line = text.lines().next().unwrap_or("invalid").trim();
                format!(
                    "{}: {}",
                    field("options"),
                    line.trim_start_matches("error: ")
                )
            })?
            .args;
        if !matches!(args.protocol.as_str(), "raft" | "multipaxos") {
            return Err(format!(
                "{} = {:?}: use raft or multipaxos",
                field("protocol"),
                args.protocol
            ));
        }
        if args.budget.is_zero() {
            return Err(format!("{}: must be more than 0", field("budget")));
        }
        // Fault kinds, node flags and bugs are checked as a first schedule would use them.
        let spec = SimSpec::draw(&args, 0).map_err(|e| format!("{}: {e}", field("faults")))?;
        super::world::node_configs(
            &spec.protocol,
            spec.nodes as usize,
            spec.spares as usize,
            &spec.node_flags(),
        )
        .map_err(|e| format!("{}: {e}", field("node_args")))?;
        Ok(SimStage {
            budget: args.budget,
            args,
        })
    }
}

impl SimStage {
    /// `sim:<protocol>[+bug...]`: the system column of its cell.
    pub fn system(&self) -> String {
        let mut s = format!("sim:{}", self.args.protocol);
        for b in &self.args.bugs {
            s.push('+');
            s.push_str(b);
        }
        s
    }

    /// The stage's faults and node count (its nemesis and nodes columns).
    pub fn faults(&self) -> String {
        if self.args.swarm {
            format!("{} (swarm)", self.args.faults)
        } else {
            self.args.faults.clone()
        }
    }

    pub fn nodes(&self) -> u64 {
        self.args.nodes
    }

    /// Runs the stage, its run directories under `store`.
    pub fn run(&self, store: &Path) -> anyhow::Result<Sweep> {
        let mut args = self.args.clone();
        args.store = store.to_path_buf();
        execute(&args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(toml_text: &str) -> Result<SimStage, String> {
        let s: SimStageSpec = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        s.validate(1)
    }

    #[test]
    fn stages_validate_like_the_command_line_with_one_line_errors() {
        let s =
            stage("protocol = \"raft\"\nbudget = \"2m\"\nnodes = 3\nsim_time = \"4s\"").unwrap();
        assert_eq!(s.budget, Duration::from_secs(120));
        assert_eq!(s.args.nodes, 3);
        assert_eq!(s.args.faults, "all");
        assert_eq!(s.system(), "sim:raft");
        assert_eq!(s.args.spares, None);
        let s = stage(
            "protocol = \"multipaxos\"\nbudget = \"1m\"\nnodes = 3\nspares = 2\nfaults = \"all,reconfig\"",
        )
        .unwrap();
        assert_eq!((s.args.nodes, s.args.spares), (3, Some(2)));
        assert!(!s.args.swarm);
        assert_eq!(s.faults(), "all,reconfig");
        let s = stage(
            "protocol = \"raft\"\nbudget = \"1m\"\nfaults = \"all,outage,lag\"\nswarm = true",
        )
        .unwrap();
        assert!(s.args.swarm);
        assert_eq!(s.faults(), "all,outage,lag (swarm)");
        for (bad, says) in [
            ("protocol = \"etcd\"\nbudget = \"1m\"", "raft or multipaxos"),
            ("protocol = \"raft\"\nbudget = \"0s\"", "budget"),
            ("protocol = \"raft\"\nbudget = \"soon\"", "options"),
            (
                "protocol = \"raft\"\nbudget = \"1m\"\nfaults = \"fire\"",
                "fire",
            ),
            (
                "protocol = \"raft\"\nbudget = \"1m\"\nnodes = 12",
                "options",
            ),
            (
                "protocol = \"raft\"\nbudget = \"1m\"\nspares = -1",
                "options",
            ),
            (
                "protocol = \"raft\"\nbudget = \"1m\"\nbugs = [\"no-fencing\"]",
                "node_args",
            ),
        ] {
            let e = stage(bad).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
