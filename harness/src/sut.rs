//! Systems under test, described by TOML specs.
//!
//! A spec says how to start one node (an argv template with placeholders), which client
//! protocol to speak, how to tell it is ready, whether libfaketime can move its clock,
//! and (optionally) how to change its membership. The built-in `raft`, `multipaxos` and
//! `etcd` systems are specs in this same format, compiled into the binary; `--sut
//! path/to/my.toml` loads a user's. A bad spec is reported as `file:line: message`.
//!
//! Placeholders in `start.program`, `start.args` and `start.env` values:
//! `{id}` (`n3`), `{k}` (3), `{addr}` (the node's address), `{client_port}`,
//! `{peer_port}`, `{data_dir}`, `{peers}` (every voter rendered with `start.peer_format`,
//! joined with `start.peer_separator`), `{stasis_node}` (the stasis-node binary).
//! `peer_format` and `membership.voter_format` may use `{id}`, `{k}`, `{addr}`,
//! `{client_port}` and `{peer_port}`. `{first_addr}` and `{first_client_port}` are those
//! of the first node (`n1`), e.g. the initial primary of a primary/replica system.
//! `start.files` are rendered the same way into the node's data directory before its
//! first start (kept across restarts, as a real deployment keeps its config files).
//!
//! Auxiliary processes (`[[aux]]`, see [`crate::auxiliary`]) such as Redis Sentinels run
//! beside the nodes in namespaces of their own; `[leader]` says how to ask a node whether
//! it leads, `[bootstrap]` what to send the nodes once after their first start, and
//! `[redis]` / `[etcd]` are the per-system client options.
//!
//! Spare nodes (`stasis test --spares K`, for the membership nemesis) are not initial
//! voters: `{peers}` lists the voters only, and a spare starts with `start.args` in which
//! the run `membership.join_replaces` (e.g. `["--peers", "{peers}"]`) is replaced by
//! `membership.join_args` (e.g. `["--join"]`), so it waits to be added by the
//! membership command.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::auxiliary::Aux;
use crate::client::Client;
use crate::client::etcd::{self, EtcdClient};
use crate::client::etcd_grpc::{self, EtcdGrpcClient};
use crate::client::redis_sentinel::{RedisOptions, RedisSentinelClient};
use crate::client::resp::{Endpoint, RespClient, request, status};
use crate::client::zookeeper::{self, ZkClient};
use crate::needs::Need;
use crate::nodes::{Launcher, NodeInfo};
use crate::program::{Program, WithProgram};
use crate::template::{NODE_PLACEHOLDERS, check_placeholders, render};
use crate::units::parse_duration;

/// The built-in specs, by name.
pub const BUILTIN: [(&str, &str); 5] = [
    ("raft", include_str!("../suts/raft.toml")),
    ("multipaxos", include_str!("../suts/multipaxos.toml")),
    ("etcd", include_str!("../suts/etcd.toml")),
    ("zookeeper", include_str!("../suts/zookeeper.toml")),
    ("redis", include_str!("../suts/redis.toml")),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    Resp,
    Etcd,
    Zookeeper,
    /// Redis: the primary found through Sentinel (options in `[redis]`).
    RedisSentinel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ready {
    /// A node reports itself leader.
    Leader,
    /// A read through the client protocol succeeds.
    Read,
    /// The client protocol's own readiness check (redis-sentinel: every Sentinel names
    /// the same primary and knows every replica and Sentinel; the primary has every
    /// replica connected).
    Client,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub client: u16,
    pub peer: u16,
}

/// `[start]`: how to start one node, its keys beside the program's
/// ([`crate::program`]).
pub type Start = WithProgram<PeerList>;

/// The keys of `[start]` that are not the program's: how `{peers}` lists the voters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerList {
    pub peer_format: String,
    #[serde(default = "comma")]
    pub peer_separator: String,
}

/// How to ask a node whether it leads: a command over the client protocol (RESP); the
/// node leads when the reply (the first element of an array reply) equals `is`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderProbe {
    pub command: Vec<String>,
    pub is: String,
}

impl LeaderProbe {
    pub fn leads(&self, addr: std::net::SocketAddr, timeout: Duration) -> Result<bool, String> {
        let args: Vec<&[u8]> = self.command.iter().map(|c| c.as_bytes()).collect();
        let reply = request(addr, &args, timeout).map_err(|(_, e)| e)?;
        let first = match &reply {
            node::resp::Value::Array(Some(v)) => v.first().cloned(),
            other => Some(other.clone()),
        };
        Ok(match first {
            Some(node::resp::Value::Bulk(Some(b))) => b == self.is.as_bytes(),
            Some(node::resp::Value::Simple(s)) => s == self.is,
            _ => false,
        })
    }
}

/// Commands sent once over the client protocol (RESP) after the nodes first start:
/// `others` to every initial node but the first, in order (e.g. make them replicas of
/// `n1`). Placeholders as in `start.args`, rendered for the receiving node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    pub others: Vec<Vec<String>>,
}

fn comma() -> String {
    ",".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdOptions {
    /// Serve reads from the member's local state (not linearizable).
    #[serde(default)]
    pub serializable_reads: bool,
    /// Which of etcd's client APIs the harness speaks.
    #[serde(default)]
    pub api: EtcdApi,
}

/// etcd's client APIs: the v3 JSON gateway (HTTP/1.1, one request per operation) or the
/// native gRPC API (one HTTP/2 connection per client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdApi {
    #[default]
    Gateway,
    Grpc,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZookeeperOptions {
    /// `sync` before every `getData` (ZooKeeper's way to read the latest value).
    #[serde(default = "yes")]
    pub sync_reads: bool,
}

impl Default for ZookeeperOptions {
    fn default() -> Self {
        ZookeeperOptions { sync_reads: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The admin command, as client-protocol arguments; `{voters}` is the new voter set
    /// (every voter rendered with `voter_format`, joined with `voter_separator`).
    pub command: Vec<String>,
    pub voter_format: String,
    #[serde(default = "comma")]
    pub voter_separator: String,
    /// Arguments that make a spare node start empty and wait to be added.
    pub join_args: Vec<String>,
    /// A consecutive run of `start.args` that `join_args` replace for a spare (empty:
    /// `join_args` are appended).
    #[serde(default)]
    pub join_replaces: Vec<String>,
}

impl Membership {
    /// The membership command that makes `voters` the complete voter set.
    pub fn render(&self, voters: &[NodeInfo]) -> Vec<String> {
        let list = voters
            .iter()
            .map(|n| render(&self.voter_format, &peer_vars(n)))
            .collect::<Vec<_>>()
            .join(&self.voter_separator);
        let vars = [("voters", list)];
        self.command.iter().map(|c| render(c, &vars)).collect()
    }
}

/// A system under test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SutSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub client: ClientKind,
    /// Whether libfaketime reaches the binary's wall clock (not for Go binaries).
    #[serde(default)]
    pub faketime: bool,
    #[serde(default = "default_ready")]
    pub ready: Ready,
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: String,
    pub ports: Ports,
    pub start: Start,
    #[serde(default)]
    pub etcd: EtcdOptions,
    #[serde(default)]
    pub zookeeper: ZookeeperOptions,
    /// Programs and files the system needs, each with its Debian package and optionally
    /// a version check (see [`crate::needs`]).
    #[serde(default)]
    pub needs: Vec<Need>,
    #[serde(default)]
    pub membership: Option<Membership>,
    /// Node settings a run may vary (`stasis test --settings vary`; see [`crate::settings`]).
    #[serde(default)]
    pub settings: Vec<crate::settings::Setting>,
    /// Auxiliary processes beside the nodes (see [`crate::auxiliary`]).
    #[serde(default)]
    pub aux: Vec<Aux>,
    #[serde(default)]
    pub leader: Option<LeaderProbe>,
    #[serde(default)]
    pub bootstrap: Option<Bootstrap>,
    /// Client options of `client = "redis-sentinel"`.
    #[serde(default)]
    pub redis: Option<RedisOptions>,
}

fn default_ready() -> Ready {
    Ready::Leader
}

fn default_ready_timeout() -> String {
    "30s".into()
}

const PEER_PLACEHOLDERS: [&str; 5] = ["id", "k", "addr", "client_port", "peer_port"];

impl SutSpec {
    /// Loads `--sut`: a built-in name or a path to a TOML file.
    pub fn load(arg: &str) -> Result<SutSpec> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == arg) {
            return Self::parse(text, Path::new(&format!("<built-in {arg}>")));
        }
        let path = Path::new(arg);
        if !path.exists() {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            bail!(
                "--sut {arg:?}: neither a built-in system ({}) nor an existing spec file",
                names.join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and validates a spec; errors read `file:line: message`.
    pub fn parse(text: &str, path: &Path) -> Result<SutSpec> {
        let spec: SutSpec = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            let msg = e.message().trim().replace('\n', " ");
            anyhow::anyhow!("{}:{line}: {msg}", path.display())
        })?;
        spec.validate().map_err(|(needle, msg)| {
            let line = needle
                .and_then(|n| text.find(&n))
                .map(|i| text[..i].matches('\n').count() + 1)
                .unwrap_or(1);
            anyhow::anyhow!("{}:{line}: {msg}", path.display())
        })?;
        Ok(spec)
    }

    /// Checks what the TOML types cannot; on error returns text to locate and a message.
    fn validate(&self) -> Result<(), (Option<String>, String)> {
        let at = |field: &str| Some(field.to_owned());
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err((
                at("name"),
                "name must be letters, digits, '-' or '_'".into(),
            ));
        }
        if self.ports.client == 0 || self.ports.peer == 0 || self.ports.client == self.ports.peer {
            return Err((
                at("[ports]"),
                "ports.client and ports.peer must be distinct and non-zero".into(),
            ));
        }
        parse_duration(&self.ready_timeout)
            .map_err(|e| (at("ready_timeout"), format!("ready_timeout: {e}")))?;
        self.start.run.check("start")?;
        for c in self
            .bootstrap
            .iter()
            .flat_map(|b| b.others.iter().flatten())
        {
            check_placeholders(c, &NODE_PLACEHOLDERS).map_err(|p| {
                (
                    Some(c.to_owned()),
                    format!(
                        "bootstrap.others: unknown placeholder {{{p}}} (known: {})",
                        NODE_PLACEHOLDERS.join(", ")
                    ),
                )
            })?;
        }
        check_placeholders(&self.start.peer_format, &PEER_PLACEHOLDERS).map_err(|p| {
            (
                at("peer_format"),
                format!(
                    "start.peer_format: unknown placeholder {{{p}}} (known: {})",
                    PEER_PLACEHOLDERS.join(", ")
                ),
            )
        })?;
        if let Some(m) = &self.membership {
            self.validate_membership(m)?;
        }
        crate::settings::validate(&self.settings)
            .map_err(|(name, msg)| (Some(format!("\"{name}\"")), msg))?;
        if self.client != ClientKind::Etcd && self.etcd != EtcdOptions::default() {
            return Err((at("[etcd]"), "[etcd] options need client = \"etcd\"".into()));
        }
        if self.client != ClientKind::Zookeeper && self.zookeeper != ZookeeperOptions::default() {
            return Err((
                at("[zookeeper]"),
                "[zookeeper] options need client = \"zookeeper\"".into(),
            ));
        }
        for n in &self.needs {
            n.validate().map_err(|m| (at("[[needs]]"), m))?;
        }
        self.validate_additions()
    }

    /// `[[aux]]`, `[leader]`, `[bootstrap]`, `[redis]` and `ready`.
    fn validate_additions(&self) -> Result<(), (Option<String>, String)> {
        let at = |field: &str| Some(field.to_owned());
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.aux {
            a.validate()?;
            if !seen.insert(a.name.as_str()) {
                return Err((
                    at("[[aux]]"),
                    format!("two [[aux]] groups named {:?}", a.name),
                ));
            }
        }
        let resp_like = matches!(self.client, ClientKind::Resp | ClientKind::RedisSentinel);
        if (self.leader.is_some() || self.bootstrap.is_some()) && !resp_like {
            return Err((
                at(if self.leader.is_some() { "[leader]" } else { "[bootstrap]" }),
                "[leader] and [bootstrap] send RESP commands: they need client = \"resp\" or \"redis-sentinel\"".into(),
            ));
        }
        if self.leader.as_ref().is_some_and(|l| l.command.is_empty()) {
            return Err((at("[leader]"), "leader.command must not be empty".into()));
        }
        if self
            .bootstrap
            .as_ref()
            .is_some_and(|b| b.others.iter().any(Vec::is_empty))
        {
            return Err((
                at("[bootstrap]"),
                "bootstrap.others: a command must not be empty".into(),
            ));
        }
        match (self.client, &self.redis) {
            (ClientKind::RedisSentinel, None) => {
                return Err((
                    at("client"),
                    "client = \"redis-sentinel\" needs a [redis] section naming the Sentinels' [[aux]] group (sentinels = \"...\")".into(),
                ));
            }
            (ClientKind::RedisSentinel, Some(r)) => {
                r.validate().map_err(|m| (at("[redis]"), m))?;
                if !self.aux.iter().any(|a| a.name == r.sentinels) {
                    return Err((
                        at("sentinels"),
                        format!("redis.sentinels = {:?} names no [[aux]] group", r.sentinels),
                    ));
                }
                if self.ready == Ready::Leader && self.leader.is_none() {
                    return Err((
                        at("ready"),
                        "ready = \"leader\" with client = \"redis-sentinel\" needs a [leader] section".into(),
                    ));
                }
            }
            (_, Some(_)) => {
                return Err((
                    at("[redis]"),
                    "[redis] options need client = \"redis-sentinel\"".into(),
                ));
            }
            (_, None) => {}
        }
        if self.ready == Ready::Client && self.client != ClientKind::RedisSentinel {
            return Err((
                at("ready"),
                "ready = \"client\" is the redis-sentinel client's own check; use \"leader\" or \"read\"".into(),
            ));
        }
        Ok(())
    }

    /// Host names of every auxiliary process, in order (`sentinel1`, ...).
    pub fn aux_hosts(&self) -> Vec<(String, &Aux)> {
        self.aux
            .iter()
            .flat_map(|a| a.hosts().into_iter().map(move |h| (h, a)))
            .collect()
    }

    fn validate_membership(&self, m: &Membership) -> Result<(), (Option<String>, String)> {
        let at = |field: &str| Some(field.to_owned());
        if self.client != ClientKind::Resp {
            return Err((
                at("[membership]"),
                "[membership] needs client = \"resp\": the membership command is sent over the RESP client protocol".into(),
            ));
        }
        if m.command.is_empty() {
            return Err((
                at("[membership]"),
                "membership.command must not be empty".into(),
            ));
        }
        if !m.command.iter().any(|c| c.contains("{voters}")) {
            return Err((
                at("command"),
                "membership.command must contain {voters} (the complete new voter set)".into(),
            ));
        }
        for c in &m.command {
            check_placeholders(c, &["voters"]).map_err(|p| {
                (
                    Some(c.to_owned()),
                    format!("membership.command: unknown placeholder {{{p}}} (known: voters)"),
                )
            })?;
        }
        check_placeholders(&m.voter_format, &PEER_PLACEHOLDERS).map_err(|p| {
            (
                at("voter_format"),
                format!(
                    "membership.voter_format: unknown placeholder {{{p}}} (known: {})",
                    PEER_PLACEHOLDERS.join(", ")
                ),
            )
        })?;
        if m.join_args.is_empty() {
            return Err((
                at("[membership]"),
                "membership.join_args must say how a spare node starts empty and waits to be added (e.g. [\"--join\"])".into(),
            ));
        }
        for a in &m.join_args {
            check_placeholders(a, &NODE_PLACEHOLDERS).map_err(|p| {
                (
                    Some(a.to_owned()),
                    format!(
                        "membership.join_args: unknown placeholder {{{p}}} (known: {})",
                        NODE_PLACEHOLDERS.join(", ")
                    ),
                )
            })?;
        }
        if !m.join_replaces.is_empty() && find_run(&self.start.run.args, &m.join_replaces).is_none()
        {
            return Err((
                at("join_replaces"),
                format!(
                    "membership.join_replaces {:?} is not a consecutive run of start.args",
                    m.join_replaces
                ),
            ));
        }
        Ok(())
    }

    /// Checks everything the system needs is installed (`[[needs]]`, then the programs
    /// of `[start]` and `[[aux]]`): a one-line error naming the Debian package.
    pub fn check_needs(&self) -> Result<()> {
        let mut programs = vec![(self.start.run.program.as_str(), "start.program".to_owned())];
        programs.extend(
            self.aux
                .iter()
                .map(|a| (a.run.program.as_str(), format!("aux.{}.program", a.name))),
        );
        crate::needs::check_all(&self.name, &self.needs, &programs)
    }

    pub fn ready_timeout(&self) -> Duration {
        parse_duration(&self.ready_timeout).unwrap_or(Duration::from_secs(30))
    }

    /// The launcher for this system's nodes.
    pub fn launcher(&self, stasis_node: &Path) -> Launcher {
        let spec = self.clone();
        let stasis_node = stasis_node.display().to_string();
        Box::new(move |me: &NodeInfo, all: &[NodeInfo]| {
            let vars = node_vars(&spec, me, all, &stasis_node);
            if let Some(a) = me
                .aux
                .as_ref()
                .and_then(|g| spec.aux.iter().find(|a| &a.name == g))
            {
                return a.run.launch(me, &vars);
            }
            match (&spec.membership, me.spare) {
                (Some(m), true) => Program {
                    args: join_argv(&spec.start.run.args, m),
                    ..spec.start.run.clone()
                }
                .launch(me, &vars),
                _ => spec.start.run.launch(me, &vars),
            }
        })
    }

    /// Whether the program is the stasis-node binary (so `--node-bin` matters).
    pub fn uses_stasis_node(&self) -> bool {
        self.start.run.program.contains("{stasis_node}")
    }

    /// The membership command that makes `voters` the complete voter set, or `None` when
    /// the spec has no `[membership]` section.
    pub fn membership_command(&self, voters: &[NodeInfo]) -> Option<Vec<String>> {
        self.membership.as_ref().map(|m| m.render(voters))
    }

    pub fn protocol(&self) -> Protocol {
        match self.client {
            ClientKind::Resp => Protocol::Resp,
            ClientKind::Etcd => Protocol::Etcd {
                serializable: self.etcd.serializable_reads,
                api: self.etcd.api,
            },
            ClientKind::Zookeeper => Protocol::Zookeeper {
                sync_reads: self.zookeeper.sync_reads,
            },
            ClientKind::RedisSentinel => Protocol::RedisSentinel {
                opts: std::sync::Arc::new(self.redis.clone().unwrap_or(RedisOptions {
                    master_name: "stasis".into(),
                    sentinels: String::new(),
                    wait_replicas: 0,
                    wait_timeout: "1s".into(),
                })),
                leader: self.leader.clone().map(std::sync::Arc::new),
            },
        }
    }

    /// The `[bootstrap]` commands for node `me`, rendered (empty for the first node).
    pub fn bootstrap_commands(&self, me: &NodeInfo, all: &[NodeInfo]) -> Vec<Vec<String>> {
        let first = all.iter().find(|n| !n.spare && n.aux.is_none());
        let Some(b) = &self.bootstrap else {
            return Vec::new();
        };
        if me.aux.is_some() || me.spare || first.is_none_or(|f| f.name == me.name) {
            return Vec::new();
        }
        let vars = node_vars(self, me, all, "");
        b.others
            .iter()
            .map(|c| c.iter().map(|a| render(a, &vars)).collect())
            .collect()
    }
}

/// Every placeholder's value for `me` (a node or an auxiliary process).
fn node_vars(
    spec: &SutSpec,
    me: &NodeInfo,
    all: &[NodeInfo],
    stasis_node: &str,
) -> Vec<(&'static str, String)> {
    let voters: Vec<&NodeInfo> = all.iter().filter(|n| !n.spare && n.aux.is_none()).collect();
    let peers = voters
        .iter()
        .map(|n| render(&spec.start.peer_format, &peer_vars(n)))
        .collect::<Vec<_>>()
        .join(&spec.start.peer_separator);
    let mut vars = peer_vars(me);
    vars.push(("data_dir", me.data_dir().display().to_string()));
    vars.push(("peers", peers));
    vars.push(("stasis_node", stasis_node.to_owned()));
    vars.push(("cluster", cluster_name(me)));
    if let Some(f) = voters.first() {
        vars.push(("first_addr", f.addr.to_string()));
        vars.push(("first_client_port", f.client_port.to_string()));
    }
    vars
}

/// The `{cluster}` placeholder: one name per run, from its directory (`<run>/<node>`), so
/// the nodes of two runs never take each other as peers or each other's data.
fn cluster_name(me: &NodeInfo) -> String {
    let run = me
        .dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let token: String = run
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("stasis-{token}")
}

fn peer_vars(n: &NodeInfo) -> Vec<(&'static str, String)> {
    vec![
        ("id", n.name.clone()),
        ("k", n.name.trim_start_matches('n').to_owned()),
        ("addr", n.addr.to_string()),
        ("client_port", n.client_port.to_string()),
        ("peer_port", n.peer_port.to_string()),
    ]
}

/// Where `run` occurs as consecutive elements of `args`.
fn find_run(args: &[String], run: &[String]) -> Option<usize> {
    if run.is_empty() || run.len() > args.len() {
        return None;
    }
    args.windows(run.len()).position(|w| w == run)
}

/// A spare's argv template: `start.args` with `join_replaces` swapped for `join_args`.
fn join_argv(args: &[String], m: &Membership) -> Vec<String> {
    match find_run(args, &m.join_replaces) {
        Some(i) => {
            let mut out = args[..i].to_vec();
            out.extend(m.join_args.iter().cloned());
            out.extend(args[i + m.join_replaces.len()..].iter().cloned());
            out
        }
        None => args.iter().chain(&m.join_args).cloned().collect(),
    }
}

/// The client protocol of a system: how to make clients and ask nodes about themselves.
#[derive(Clone, Debug, PartialEq)]
pub enum Protocol {
    Resp,
    Etcd {
        serializable: bool,
        api: EtcdApi,
    },
    RedisSentinel {
        opts: std::sync::Arc<RedisOptions>,
        leader: Option<std::sync::Arc<LeaderProbe>>,
    },
    Zookeeper {
        sync_reads: bool,
    },
}

impl Protocol {
    /// Whether this protocol's client can start each operation at a node the worker
    /// chooses (`--client-routing home|random`; [`Client::start_at`]).
    pub fn routes_per_op(&self) -> bool {
        matches!(self, Protocol::Resp)
    }

    /// A client over the nodes `nodes`; `aux` are the run's auxiliary processes (the
    /// Sentinels the redis-sentinel client asks), `home` the worker's preferred start.
    pub fn client(&self, nodes: Vec<Endpoint>, aux: &[Endpoint], home: usize) -> Box<dyn Client> {
        match self {
            Protocol::Resp => Box::new(RespClient::new(nodes, home)),
            Protocol::Etcd {
                serializable,
                api: EtcdApi::Gateway,
            } => Box::new(EtcdClient::new(nodes, home, *serializable)),
            Protocol::Etcd {
                serializable,
                api: EtcdApi::Grpc,
            } => Box::new(EtcdGrpcClient::new(nodes, home, *serializable)),
            Protocol::RedisSentinel { opts, .. } => {
                Box::new(RedisSentinelClient::new(nodes, aux, home, opts.clone()))
            }
            Protocol::Zookeeper { sync_reads } => Box::new(ZkClient::new(nodes, home, *sync_reads)),
        }
    }

    /// Whether the node at `addr` says it leads.
    pub fn is_leader(&self, addr: std::net::SocketAddr, timeout: Duration) -> Result<bool, String> {
        match self {
            Protocol::Resp => status(addr, timeout).map(|s| s.is_leader()),
            Protocol::Etcd {
                api: EtcdApi::Gateway,
                ..
            } => etcd::is_leader(&addr.to_string(), timeout),
            Protocol::Etcd {
                api: EtcdApi::Grpc, ..
            } => etcd_grpc::is_leader(addr, timeout),
            Protocol::Zookeeper { .. } => zookeeper::is_leader(addr, timeout),
            Protocol::RedisSentinel { leader, .. } => match leader {
                Some(l) => l.leads(addr, timeout),
                None => Err("the spec has no [leader] section".into()),
            },
        }
    }

    /// The protocol's own readiness check (`ready = "client"`): `Err` says what is
    /// missing.
    pub fn ready(
        &self,
        nodes: &[Endpoint],
        aux: &[Endpoint],
        timeout: Duration,
    ) -> Result<(), String> {
        match self {
            Protocol::RedisSentinel { opts, .. } => {
                crate::client::redis_sentinel::ready(nodes, aux, opts, timeout)
            }
            _ => Err("this client protocol has no readiness check of its own".into()),
        }
    }

    /// The node's own wall clock in ms since the epoch, if the protocol exposes it.
    pub fn wall_clock_ms(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<i64, String> {
        match self {
            Protocol::Resp => status(addr, timeout).map(|s| s.wall_clock_ms as i64),
            Protocol::Etcd { .. } => Err("etcd does not report its wall clock".into()),
            Protocol::Zookeeper { .. } => Err("ZooKeeper does not report its wall clock".into()),
            Protocol::RedisSentinel { .. } => {
                Err("the redis-sentinel client does not read the nodes' clocks".into())
            }
        }
    }

    /// A one-line description of the node's state, for error messages.
    pub fn describe(&self, addr: std::net::SocketAddr) -> String {
        match self {
            Protocol::Resp => match status(addr, Duration::from_millis(500)) {
                Ok(s) => serde_json::to_string(&s).unwrap_or_default(),
                Err(e) => e,
            },
            Protocol::Etcd { .. } => match self.is_leader(addr, Duration::from_millis(500)) {
                Ok(l) => format!("reachable, leader: {l}"),
                Err(e) => e,
            },
            Protocol::Zookeeper { .. } => zookeeper::describe(addr),
            Protocol::RedisSentinel { .. } => {
                match self.is_leader(addr, Duration::from_millis(500)) {
                    Ok(l) => format!("reachable, primary: {l}"),
                    Err(e) => e,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn builtins_parse_and_render() {
        for (name, _) in BUILTIN {
            let spec = SutSpec::load(name).unwrap();
            assert_eq!(spec.name, name);
        }
        let spec = SutSpec::load("etcd").unwrap();
        assert!(!spec.faketime);
        assert_eq!(
            spec.protocol(),
            Protocol::Etcd {
                serializable: false,
                api: EtcdApi::Gateway,
            }
        );
        let nodes: Vec<NodeInfo> = (1..=3)
            .map(|k| NodeInfo {
                name: format!("n{k}"),
                addr: std::net::Ipv4Addr::new(10, 211, 9, k + 1),
                client_port: 2379,
                peer_port: 2380,
                netns: format!("stasis-r9-n{k}"),
                dir: PathBuf::from(format!("/run/x/n{k}")),
                spare: false,
                aux: None,
            })
            .collect();
        let launch = (spec.launcher(Path::new("/bin/stasis-node")))(&nodes[1], &nodes);
        assert_eq!(launch.program, PathBuf::from("etcd"));
        let args = launch.args.join(" ");
        assert!(
            args.contains("--name n2 --data-dir /run/x/n2/data"),
            "{args}"
        );
        assert!(args.contains("--initial-cluster n1=http://10.211.9.2:2380,n2=http://10.211.9.3:2380,n3=http://10.211.9.4:2380"), "{args}");
        let raft = SutSpec::load("raft").unwrap();
        let launch = (raft.launcher(Path::new("/bin/stasis-node")))(&nodes[0], &nodes);
        assert_eq!(launch.program, PathBuf::from("/bin/stasis-node"));
        assert!(
            launch
                .args
                .join(" ")
                .contains("--peers n1=10.211.9.2:2380,")
        );
        assert!(raft.uses_stasis_node() && !spec.uses_stasis_node());
    }

    #[test]
    fn zookeeper_spec_renders_its_ensemble_and_options() {
        let spec = SutSpec::load("zookeeper").unwrap();
        assert!(!spec.faketime);
        assert_eq!(spec.protocol(), Protocol::Zookeeper { sync_reads: true });
        assert!(spec.needs.iter().any(|n| n.package == "zookeeper"));
        let all = nodes(3, 0);
        let launch = (spec.launcher(Path::new("/x")))(&all[1], &all);
        assert_eq!(launch.program, PathBuf::from("sh"));
        // Script, $0, then data dir, address, client port, server id, ensemble.
        assert_eq!(
            launch.args[2..7],
            ["zookeeper", "/run/x/n2/data", "10.211.9.3", "6379", "2"]
        );
        assert_eq!(
            launch.args[7],
            "server.1=10.211.9.2:7000:3888\nserver.2=10.211.9.3:7000:3888\nserver.3=10.211.9.4:7000:3888"
        );
        let off = BUILTIN[3]
            .1
            .replace("sync_reads = true", "sync_reads = false");
        let spec = SutSpec::parse(&off, Path::new("zk.toml")).unwrap();
        assert_eq!(spec.protocol(), Protocol::Zookeeper { sync_reads: false });
        let e = err(&format!("{GOOD}[zookeeper]\nsync_reads = false\n"));
        assert!(
            e.contains("[zookeeper] options need client = \"zookeeper\""),
            "{e}"
        );
        let e = err(&format!("{GOOD}[[needs]]\npath = \"\"\npackage = \"x\"\n"));
        assert!(
            e.contains("needs: path and package must not be empty"),
            "{e}"
        );
        let missing = SutSpec::parse(
            &format!("{GOOD}[[needs]]\npath = \"/nonexistent/bin/mine\"\npackage = \"mine-pkg\"\n"),
            Path::new("my.toml"),
        )
        .unwrap();
        let e = missing.check_needs().unwrap_err().to_string();
        assert_eq!(
            e,
            "mine: /nonexistent/bin/mine is missing: apt-get install mine-pkg (or run scripts/setup.sh)"
        );
        let on_path = SutSpec::parse(
            &format!(
                "{}[[needs]]\npath = \"sh\"\npackage = \"dash\"\nversion_args = [\"-c\", \"echo 0.4\"]\nversion_expect = \"0.4\"\n",
                GOOD.replace("/usr/bin/mine", "sh")
            ),
            Path::new("my.toml"),
        )
        .unwrap();
        on_path.check_needs().unwrap();
        // A started program no need names must be there; the message says what to add.
        let e = SutSpec::parse(GOOD, Path::new("my.toml"))
            .unwrap()
            .check_needs()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "mine: /usr/bin/mine (start.program) is missing: install it, or add a [[needs]] entry naming its Debian package"
        );
        let e = err(&format!(
            "{GOOD}[[needs]]\npath = \"sh\"\npackage = \"dash\"\nversion_expect = \"x\"\n"
        ));
        assert!(
            e.starts_with("my.toml:10: needs sh: version_expect needs version_args"),
            "{e}"
        );
        // The old per-program keys are gone: one table of needs.
        let e = err(&GOOD.replace("[start]\n", "[start]\npackage = \"mine\"\n"));
        assert!(e.starts_with("my.toml:7: unknown field `package`, expected one of `program`, `args`, `env`, `files`, `peer_format`, `peer_separator`"), "{e}");
    }

    /// The redis spec: one [[needs]] table names both programs with their packages and
    /// version checks; the Sentinels' [[aux]] group shares [start]'s program keys.
    #[test]
    fn redis_spec_needs_both_programs_and_starts_sentinels() {
        let spec = SutSpec::load("redis").unwrap();
        let needs: Vec<(&str, &str, Option<&str>)> = spec
            .needs
            .iter()
            .map(|n| {
                (
                    n.path.as_str(),
                    n.package.as_str(),
                    n.version_expect.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            needs,
            [
                ("redis-server", "redis-server", Some("Redis server v=7.")),
                (
                    "redis-sentinel",
                    "redis-sentinel",
                    Some("Redis server v=7.")
                ),
            ]
        );
        assert_eq!(spec.aux.len(), 1);
        let mut all = nodes(3, 0);
        let mut sentinel = all[0].clone();
        sentinel.name = "sentinel2".into();
        sentinel.aux = Some("sentinel".into());
        sentinel.client_port = 26379;
        sentinel.dir = PathBuf::from("/run/x/sentinel2");
        all.push(sentinel.clone());
        let launch = (spec.launcher(Path::new("/x")))(&sentinel, &all);
        assert_eq!(launch.program, PathBuf::from("redis-sentinel"));
        assert_eq!(launch.args, ["/run/x/sentinel2/data/sentinel.conf"]);
        let (file, text) = &launch.files[0];
        assert_eq!(file, Path::new("/run/x/sentinel2/data/sentinel.conf"));
        assert!(
            text.contains("port 26379\n") && text.contains("monitor stasis 10.211.9.2 6379 2"),
            "{text}"
        );
        let node = (spec.launcher(Path::new("/x")))(&all[1], &all);
        assert_eq!(node.program, PathBuf::from("redis-server"));
        // An unknown key in [[aux]] is refused at its line, naming it.
        let text = BUILTIN[4].1.replace("count = 3", "count = 3\nquorum = 2");
        let e = SutSpec::parse(&text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        let line = text[..text.find("quorum = 2").unwrap()]
            .matches('\n')
            .count()
            + 1;
        assert!(
            e.starts_with(&format!("r.toml:{line}: unknown field `quorum`, expected one of `program`, `args`, `env`, `files`, `name`, `count`, `port`")),
            "{e}"
        );
    }

    /// Every combination of the built-in stasis-node specs' setting choices is a node
    /// configuration the node accepts (a draw can never start a cluster that refuses to
    /// run), for the initial voters and for a spare in join mode.
    #[test]
    fn every_combination_of_builtin_settings_is_a_valid_node_configuration() {
        let nodes: Vec<NodeInfo> = (1..=3)
            .map(|k| NodeInfo {
                name: format!("n{k}"),
                addr: std::net::Ipv4Addr::new(10, 211, 9, k + 1),
                client_port: 6379,
                peer_port: 7000,
                netns: format!("stasis-r9-n{k}"),
                dir: PathBuf::from(format!("/run/x/n{k}")),
                spare: false,
                aux: None,
            })
            .collect();
        for name in ["raft", "multipaxos"] {
            let spec = SutSpec::load(name).unwrap();
            assert!(spec.settings.len() >= 4, "{name}: {:?}", spec.settings);
            let base = (spec.launcher(Path::new("/bin/stasis-node")))(&nodes[0], &nodes).args;
            // Mixed-radix count over every knob's choices.
            let radix: Vec<usize> = spec.settings.iter().map(|s| s.choices.len()).collect();
            let total: usize = radix.iter().product();
            for mut n in 0..total {
                let mut argv = vec!["stasis-node".to_owned()];
                argv.extend(base.iter().cloned());
                for (s, r) in spec.settings.iter().zip(&radix) {
                    argv.extend(s.choices[n % r].iter().cloned());
                    n /= r;
                }
                if let Err((e, _)) = node::config::from_args(&argv) {
                    panic!("{name}: {e}: {}", argv.join(" "));
                }
            }
        }
    }

    /// `[etcd] api` picks the client: the gateway by default, gRPC when asked; anything
    /// else is refused with the spec's line.
    #[test]
    fn etcd_api_selects_the_client() {
        let builtin = BUILTIN.iter().find(|(n, _)| *n == "etcd").unwrap().1;
        let grpc = builtin.replace("api = \"gateway\"", "api = \"grpc\"");
        let spec = SutSpec::parse(&grpc, Path::new("e.toml")).unwrap();
        assert_eq!(
            spec.protocol(),
            Protocol::Etcd {
                serializable: false,
                api: EtcdApi::Grpc,
            }
        );
        let bad = builtin.replace("api = \"gateway\"", "api = \"rest\"");
        let e = SutSpec::parse(&bad, Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("e.toml:"), "{e}");
        assert!(e.contains("unknown variant `rest`"), "{e}");
    }

    fn err(text: &str) -> String {
        SutSpec::parse(text, Path::new("my.toml"))
            .unwrap_err()
            .to_string()
    }

    const GOOD: &str = r#"name = "mine"
client = "resp"
[ports]
client = 1
peer = 2
[start]
program = "/usr/bin/mine"
args = ["--id", "{id}"]
peer_format = "{id}={addr}:{peer_port}"
"#;

    #[test]
    fn user_specs_and_their_errors() {
        SutSpec::parse(GOOD, Path::new("my.toml")).unwrap();
        let e = err(&GOOD.replace("client = \"resp\"", "client = \"grpc\""));
        assert!(e.starts_with("my.toml:2: "), "{e}");
        assert!(e.contains("grpc"), "{e}");
        let e = err(&GOOD.replace("peer = 2", "peer = 2\nhost = 3"));
        assert!(e.starts_with("my.toml:6: "), "{e}");
        assert!(e.contains("unknown field `host`"), "{e}");
        let e = err(&GOOD.replace("\"{id}\"]", "\"{ident}\"]"));
        assert!(
            e.starts_with("my.toml:8: start.args: unknown placeholder {ident}"),
            "{e}"
        );
        let e = err(&GOOD.replace("peer = 2", "peer = 1"));
        assert!(e.starts_with("my.toml:3: "), "{e}");
        let e = err("name = \"x\"\nclient = \"resp\"\n[ports\n");
        assert!(e.starts_with("my.toml:3: "), "{e}");
        let e = err(&GOOD.replace("[start]", "[etcd]\nserializable_reads = true\n[start]"));
        assert!(e.contains("[etcd] options need client = \"etcd\""), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = SutSpec::load("/nonexistent/x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither a built-in system"), "{e}");
    }

    fn nodes(voters: u8, spares: u8) -> Vec<NodeInfo> {
        (1..=voters + spares)
            .map(|k| NodeInfo {
                name: format!("n{k}"),
                addr: std::net::Ipv4Addr::new(10, 211, 9, k + 1),
                client_port: 6379,
                peer_port: 7000,
                netns: format!("stasis-r9-n{k}"),
                dir: PathBuf::from(format!("/run/x/n{k}")),
                spare: k > voters,
                aux: None,
            })
            .collect()
    }

    #[test]
    fn spares_start_in_join_mode_and_peers_list_only_voters() {
        for name in ["raft", "multipaxos"] {
            let spec = SutSpec::load(name).unwrap();
            let all = nodes(3, 2);
            let launch = spec.launcher(Path::new("/bin/stasis-node"));
            let voter = launch(&all[0], &all).args;
            let peers = "n1=10.211.9.2:7000,n2=10.211.9.3:7000,n3=10.211.9.4:7000";
            let at = voter.iter().position(|a| a == "--peers").unwrap();
            assert_eq!(
                voter[at + 1],
                peers,
                "{name}: spares are not initial voters"
            );
            assert!(!voter.contains(&"--join".to_owned()));
            let spare = launch(&all[4], &all).args;
            assert!(!spare.contains(&"--peers".to_owned()), "{spare:?}");
            assert!(!spare.iter().any(|a| a.contains("10.211.9.2")), "{spare:?}");
            // `--join` sits where `--peers {peers}` was; the rest is the voters' argv.
            assert_eq!(spare[at], "--join");
            assert_eq!(spare.len(), voter.len() - 1);
            assert!(spare.join(" ").contains("--id n5"), "{spare:?}");
            assert!(spare.join(" ").contains("--data-dir /run/x/n5/data"));
            let cmd = spec.membership_command(&[all[0].clone(), all[4].clone()]);
            assert_eq!(
                cmd.unwrap(),
                vec!["RECONFIG", "n1=10.211.9.2:7000,n5=10.211.9.6:7000"]
            );
        }
        let etcd = SutSpec::load("etcd").unwrap();
        assert!(etcd.membership.is_none());
        assert_eq!(etcd.membership_command(&nodes(1, 0)), None);
    }

    const MEMBERSHIP: &str = r#"
[membership]
command = ["ADMIN", "SET-VOTERS", "{voters}"]
voter_format = "{id}@{addr}"
voter_separator = " "
join_args = ["--wait"]
"#;

    #[test]
    fn membership_sections_and_their_errors() {
        // No join_replaces: join_args are appended.
        let spec = SutSpec::parse(&format!("{GOOD}{MEMBERSHIP}"), Path::new("my.toml")).unwrap();
        let all = nodes(2, 1);
        let launch = spec.launcher(Path::new("/x"));
        assert_eq!(launch(&all[2], &all).args, vec!["--id", "n3", "--wait"]);
        assert_eq!(launch(&all[0], &all).args, vec!["--id", "n1"]);
        assert_eq!(
            spec.membership_command(&all).unwrap(),
            vec![
                "ADMIN",
                "SET-VOTERS",
                "n1@10.211.9.2 n2@10.211.9.3 n3@10.211.9.4"
            ]
        );
        let with = |m: &str| format!("{GOOD}{m}");
        let e = err(&with(&MEMBERSHIP.replace("join_args = [\"--wait\"]\n", "")));
        assert!(e.contains("missing field `join_args`"), "{e}");
        let e = err(&with(&MEMBERSHIP.replace("[\"--wait\"]", "[]")));
        assert!(
            e.contains("membership.join_args must say how a spare"),
            "{e}"
        );
        let e = err(&with(&MEMBERSHIP.replace("\"{voters}\"", "\"all\"")));
        assert!(e.starts_with("my.toml:"), "{e}");
        assert!(
            e.contains("membership.command must contain {voters}"),
            "{e}"
        );
        let e = err(&with(&MEMBERSHIP.replace("SET-VOTERS", "{term}")));
        assert!(
            e.starts_with("my.toml:12: membership.command: unknown placeholder {term}"),
            "{e}"
        );
        let e = err(&with(&MEMBERSHIP.replace("{id}@", "{name}@")));
        assert!(
            e.starts_with("my.toml:13: membership.voter_format: unknown placeholder {name}"),
            "{e}"
        );
        let e = err(&with(&MEMBERSHIP.replace("\"--wait\"", "\"{ports}\"")));
        assert!(
            e.contains("membership.join_args: unknown placeholder {ports}"),
            "{e}"
        );
        let e = err(&with(&format!(
            "{MEMBERSHIP}join_replaces = [\"--peers\", \"{{peers}}\"]\n"
        )));
        assert!(e.starts_with("my.toml:16: membership.join_replaces"), "{e}");
        assert!(e.contains("not a consecutive run of start.args"), "{e}");
        // A consecutive run of start.args is accepted and replaced.
        let spec = SutSpec::parse(
            &with(&format!("{MEMBERSHIP}join_replaces = [\"{{id}}\"]\n")),
            Path::new("my.toml"),
        )
        .unwrap();
        assert_eq!(launch_args(&spec, &all, 2), vec!["--id", "--wait"]);
        let e = err(&format!(
            "{}{MEMBERSHIP}",
            GOOD.replace("client = \"resp\"", "client = \"etcd\"")
        ));
        assert!(e.contains("[membership] needs client = \"resp\""), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    fn launch_args(spec: &SutSpec, all: &[NodeInfo], i: usize) -> Vec<String> {
        (spec.launcher(Path::new("/x")))(&all[i], all).args
    }
}
