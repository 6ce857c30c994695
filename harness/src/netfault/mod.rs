//! Network timing faults without tc netem: a userspace packet scheduler per node
//! namespace ([`queue`]) driven by a pure model ([`sched`]), verified by probes
//! ([`probe`]). A [`Shaper`] owns one delayer per node and sets every directed link: a
//! run-wide baseline (`--net-latency`) with the `net` nemesis's faults on top. A node on
//! a remote host (`--hosts`) has its delayer on that host: the same code run by
//! `stasis netfault-agent` there ([`agent`]), driven and probed through the same Shaper.

pub mod agent;
pub mod probe;
pub mod queue;
pub mod sched;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

pub use sched::LinkSpec;

/// One node's delayer: a thread of this process inside the node's namespace, or the agent
/// on the node's remote host.
pub enum NodeDelayer {
    Local(queue::Delayer),
    Remote(agent::Agent),
}

/// Where to start a remote node's agent.
pub struct RemoteHost {
    pub ssh: Arc<crate::remote::ssh::Ssh>,
    /// The agent's directory on the host (its pid file), in the run directory there.
    pub dir: String,
    /// The uploaded `stasis` on the host.
    pub bin: String,
    /// The agent's messages (its stderr), here.
    pub log: PathBuf,
}

impl NodeDelayer {
    fn set(&self, specs: BTreeMap<Ipv4Addr, LinkSpec>) -> Result<()> {
        match self {
            NodeDelayer::Local(d) => {
                d.set(specs);
                Ok(())
            }
            NodeDelayer::Remote(a) => a.set(&specs),
        }
    }

    fn counters(&self) -> Result<agent::Counters> {
        match self {
            NodeDelayer::Local(d) => Ok(agent::Counters::of(&d.stats)),
            NodeDelayer::Remote(a) => a.counters(),
        }
    }

    fn stop(&mut self) -> Result<()> {
        match self {
            NodeDelayer::Local(d) => d.stop(),
            NodeDelayer::Remote(a) => a.stop(),
        }
    }
}

/// Per-node delayers over a cluster's namespaces or remote hosts.
pub struct Shaper {
    delayers: Vec<NodeDelayer>,
    /// The local nodes' namespaces (empty for remote nodes).
    netns: Vec<String>,
    addrs: Vec<Ipv4Addr>,
    base: LinkSpec,
    /// Directed links (from, to) with a fault on top of the baseline.
    faults: Mutex<BTreeMap<(usize, usize), LinkSpec>>,
}

/// Counters over all delayers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub queued: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub max_held: u64,
    pub cpu_s: f64,
}

impl Shaper {
    /// Starts a delayer in every namespace, queueing traffic to every other node's
    /// address, with `base` on every link.
    pub fn install(
        netns: &[String],
        addrs: &[Ipv4Addr],
        base: LinkSpec,
        seed: u64,
    ) -> Result<Shaper> {
        if netns.len() != addrs.len() {
            bail!("one address per namespace");
        }
        base.validate().map_err(anyhow::Error::msg)?;
        let mut delayers = Vec::new();
        for (i, ns) in netns.iter().enumerate() {
            let peers: Vec<Ipv4Addr> = addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect();
            // Dropping `delayers` on error stops the ones already started.
            delayers.push(NodeDelayer::Local(queue::Delayer::start(
                Some(ns),
                &peers,
                seed ^ (i as u64 + 1),
            )?));
        }
        Shaper::with(delayers, netns.to_vec(), addrs, base)
    }

    /// Starts the agent on every remote host (in parallel), queueing traffic to every
    /// other node's address, with `base` on every link.
    pub fn install_remote(
        hosts: &[RemoteHost],
        addrs: &[Ipv4Addr],
        base: LinkSpec,
        seed: u64,
    ) -> Result<Shaper> {
        if hosts.len() != addrs.len() {
            bail!("one address per host");
        }
        base.validate().map_err(anyhow::Error::msg)?;
        let started: Vec<Result<agent::Agent>> = std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    s.spawn(move || {
                        let peers: Vec<Ipv4Addr> = addrs
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| *j != i)
                            .map(|(_, a)| *a)
                            .collect();
                        agent::Agent::start(
                            &h.ssh,
                            &h.dir,
                            &h.bin,
                            &peers,
                            seed ^ (i as u64 + 1),
                            &h.log,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| bail!("agent start thread panicked"))
                })
                .collect()
        });
        let mut delayers = Vec::new();
        let mut errors = Vec::new();
        for r in started {
            match r {
                Ok(a) => delayers.push(NodeDelayer::Remote(a)),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            // Dropping `delayers` stops the agents that did start.
            bail!("{}", errors.join("; "));
        }
        Shaper::with(delayers, Vec::new(), addrs, base)
    }

    fn with(
        delayers: Vec<NodeDelayer>,
        netns: Vec<String>,
        addrs: &[Ipv4Addr],
        base: LinkSpec,
    ) -> Result<Shaper> {
        let s = Shaper {
            delayers,
            netns,
            addrs: addrs.to_vec(),
            base,
            faults: Mutex::new(BTreeMap::new()),
        };
        s.push(&BTreeMap::new())?;
        Ok(s)
    }

    /// Whether the delayers run on remote hosts.
    pub fn is_remote(&self) -> bool {
        matches!(self.delayers.first(), Some(NodeDelayer::Remote(_)))
    }

    /// A UDP probe of the directed link `from -> to` (see [`probe`]): in the namespaces
    /// here, or from the agent on `from`'s host to a reflector of the agent on `to`'s.
    pub fn probe_udp(
        &self,
        from: usize,
        to: usize,
        plan: probe::UdpPlan,
    ) -> Result<probe::UdpMeasure> {
        let addr = self.addrs[to];
        match (&self.delayers[from], &self.delayers[to]) {
            (NodeDelayer::Remote(a), NodeDelayer::Remote(b)) => {
                let life = plan.gap * plan.count + plan.linger + Duration::from_secs(5);
                let port = b.reflect(addr, life)?;
                a.udp_echo(SocketAddr::from((addr, port)), plan)
            }
            (NodeDelayer::Local(_), NodeDelayer::Local(_)) => {
                probe::udp(&self.netns[from], &self.netns[to], addr, plan)
            }
            _ => bail!("a link between a local and a remote node cannot be probed"),
        }
    }

    /// Median TCP connect time over `count` connects from node `from` to a listener of
    /// node `to` (`None` if none connected).
    pub fn probe_tcp_rtt(
        &self,
        from: usize,
        to: usize,
        count: usize,
        timeout: Duration,
    ) -> Result<Option<f64>> {
        let addr = self.addrs[to];
        match (&self.delayers[from], &self.delayers[to]) {
            (NodeDelayer::Remote(a), NodeDelayer::Remote(b)) => {
                let life = timeout * count as u32 + Duration::from_secs(5);
                let port = b.listen(addr, life)?;
                a.tcp_rtt(SocketAddr::from((addr, port)), count, timeout)
            }
            (NodeDelayer::Local(_), NodeDelayer::Local(_)) => {
                probe::tcp_rtt(&self.netns[from], &self.netns[to], addr, count, timeout)
            }
            _ => bail!("a link between a local and a remote node cannot be probed"),
        }
    }

    pub fn base(&self) -> LinkSpec {
        self.base
    }

    /// What link (from, to) does now.
    pub fn effective(&self, from: usize, to: usize) -> LinkSpec {
        self.effective_in(&self.faults(), from, to)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, BTreeMap<(usize, usize), LinkSpec>> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The links that carry a fault now.
    pub fn fault_links(&self) -> Vec<(usize, usize)> {
        self.faults().keys().copied().collect()
    }

    fn effective_in(
        &self,
        faults: &BTreeMap<(usize, usize), LinkSpec>,
        from: usize,
        to: usize,
    ) -> LinkSpec {
        match faults.get(&(from, to)) {
            Some(f) => self.base.with(f),
            None => self.base,
        }
    }

    /// Puts `faults` on top of the baseline (replacing any earlier faults).
    pub fn set_faults(&self, faults: BTreeMap<(usize, usize), LinkSpec>) -> Result<()> {
        for (&(a, b), s) in &faults {
            if a >= self.addrs.len() || b >= self.addrs.len() || a == b {
                bail!("no link {a} -> {b}");
            }
            s.validate().map_err(anyhow::Error::msg)?;
        }
        let mut guard = self.faults();
        *guard = faults;
        self.push(&guard)
    }

    /// Back to the baseline on every link.
    pub fn clear_faults(&self) -> Result<()> {
        let mut guard = self.faults();
        guard.clear();
        self.push(&guard)
    }

    /// Sets every delayer's links (remote ones in parallel: one round trip each); every
    /// delayer is attempted.
    fn push(&self, faults: &BTreeMap<(usize, usize), LinkSpec>) -> Result<()> {
        let specs_of = |i: usize| -> BTreeMap<Ipv4Addr, LinkSpec> {
            (0..self.addrs.len())
                .filter(|&j| j != i)
                .map(|j| (self.addrs[j], self.effective_in(faults, i, j)))
                .filter(|(_, s)| !s.is_clean())
                .collect()
        };
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .delayers
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let specs = specs_of(i);
                    s.spawn(move || d.set(specs))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| bail!("delayer thread panicked"))
                })
                .collect()
        });
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
        if !errors.is_empty() {
            bail!("setting the links: {}", errors.join("; "));
        }
        Ok(())
    }

    /// The counters of every delayer (a remote agent that does not answer counts nothing).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for d in &self.delayers {
            let c = match d.counters() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("{e:#}");
                    continue;
                }
            };
            t.queued += c.queued;
            t.dropped += c.dropped;
            t.duplicated += c.duplicated;
            t.max_held = t.max_held.max(c.max_held);
            t.cpu_s += c.cpu_us as f64 / 1e6;
        }
        t
    }

    /// Removes every rule and stops every delayer (held packets are released).
    pub fn remove(&mut self) -> Result<Totals> {
        let totals = self.totals();
        let mut errors = Vec::new();
        for d in &mut self.delayers {
            if let Err(e) = d.stop() {
                errors.push(format!("{e:#}"));
            }
        }
        if !errors.is_empty() {
            bail!("removing the delayers: {}", errors.join("; "));
        }
        if self.is_remote() {
            return Ok(totals);
        }
        // Local counters: final after the threads stopped (CPU time is stored at exit).
        Ok(self.totals())
    }
}

/// Probes the first two nodes' link both ways and checks the one-way medians are the
/// baseline's delay (within 3 ms + 30% of the jitter); returns the evidence line.
pub fn verify_baseline(
    shaper: &Shaper,
    infos: &[crate::nodes::NodeInfo],
    base: &LinkSpec,
) -> Result<String> {
    if infos.len() < 2 {
        return Ok("one node, no links".into());
    }
    let plan = probe::UdpPlan {
        count: 80,
        size: 64,
        gap: std::time::Duration::from_millis(3),
        linger: std::time::Duration::from_micros(base.delay_us + base.jitter_us)
            + std::time::Duration::from_millis(300),
    };
    let want = base.delay_us as f64 / 1000.0;
    let tol = 3.0 + 0.3 * base.jitter_us as f64 / 1000.0;
    let mut lines = Vec::new();
    for (a, b) in [(0, 1), (1, 0)] {
        let (x, y) = (&infos[a], &infos[b]);
        let m = shaper.probe_udp(a, b, plan)?;
        let line = format!(
            "{}->{} one-way median {:.1} ms, {:.0}% lost",
            x.name,
            y.name,
            m.median_ms,
            m.loss() * 100.0
        );
        if (m.median_ms - want).abs() > tol || m.loss() > 0.0 {
            bail!("the baseline latency did not take effect: {line}");
        }
        lines.push(line);
    }
    Ok(lines.join("; "))
}

/// Parses a latency such as `20ms±10ms`, `20ms+-10ms`, `20ms~10ms` or `20ms` into a
/// link spec (delay with uniform jitter).
pub fn parse_latency(s: &str) -> Result<LinkSpec, String> {
    let s = s.trim();
    let (mean, jitter) = match ["±", "+-", "~"].iter().find_map(|sep| s.split_once(sep)) {
        Some((m, j)) => (m, Some(j)),
        None => (s, None),
    };
    let ms = |t: &str| -> Result<u64, String> {
        let t = t.trim();
        let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
            (n, 1000.0)
        } else if let Some(n) = t.strip_suffix("us") {
            (n, 1.0)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1_000_000.0)
        } else {
            return Err(format!(
                "latency {t:?} needs a unit (ms, s or us), e.g. 20ms±10ms"
            ));
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("latency {t:?} is not a number with a unit, e.g. 20ms"))?;
        if !(0.0..=10_000_000.0).contains(&(v * scale)) {
            return Err(format!("latency {t:?} must be between 0 and 10 s"));
        }
        Ok((v * scale).round() as u64)
    };
    let spec = LinkSpec {
        delay_us: ms(mean)?,
        jitter_us: jitter.map(ms).transpose()?.unwrap_or(0),
        ..Default::default()
    };
    spec.validate()?;
    Ok(spec)
}

/// A latency spec as text (`20ms±10ms`).
pub fn describe_latency(s: &LinkSpec) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    if s.jitter_us == 0 {
        format!("{}ms", ms(s.delay_us))
    } else {
        format!("{}ms±{}ms", ms(s.delay_us), ms(s.jitter_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_parse() {
        let s = parse_latency("20ms±10ms").unwrap();
        assert_eq!((s.delay_us, s.jitter_us), (20_000, 10_000));
        assert_eq!(parse_latency("20ms+-10ms").unwrap(), s);
        assert_eq!(parse_latency(" 0.02s ~ 10ms").unwrap(), s);
        assert_eq!(parse_latency("5ms").unwrap().jitter_us, 0);
        assert_eq!(describe_latency(&s), "20ms±10ms");
        assert!(parse_latency("20").unwrap_err().contains("unit"));
        assert!(parse_latency("xms").unwrap_err().contains("not a number"));
        assert!(parse_latency("10ms±20ms").unwrap_err().contains("jitter"));
        assert!(parse_latency("-5ms").unwrap_err().contains("between"));
    }
}
