//! The `net` nemesis: slow, lossy, duplicating, reordering and narrow links, per directed
//! node pair, through the delayer of [`crate::netfault`]. Each fault is drawn from the
//! fault seed (kind, numbers and scope at schedule time; the links at start from the
//! fault's pick), put on top of the run's baseline latency, and verified with UDP probes
//! inside the namespaces on the faulted links (one-way delay, loss, duplicates, held-back
//! share, arrival rate), plus TCP connect round trips as evidence. Stop takes every link
//! back to the baseline and probes one again.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::netfault::probe::{UdpMeasure, UdpPlan};
use crate::netfault::{LinkSpec, describe_latency};

/// The kinds of network fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Added latency with jitter (reorders packets across and within connections).
    Delay,
    Loss,
    Duplicate,
    /// A share of packets held back past later ones.
    Reorder,
    /// A bandwidth cap.
    SlowLink,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Delay,
        Kind::Loss,
        Kind::Duplicate,
        Kind::Reorder,
        Kind::SlowLink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Delay => "delay",
            Kind::Loss => "loss",
            Kind::Duplicate => "duplicate",
            Kind::Reorder => "reorder",
            Kind::SlowLink => "slow-link",
        }
    }

    /// Parses a comma-separated list of kinds, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                out.extend(Kind::ALL);
                continue;
            }
            match Kind::ALL.iter().find(|k| k.name() == part) {
                Some(k) => out.push(*k),
                None => {
                    return Err(format!(
                        "unknown network fault {part:?}: use delay, loss, duplicate, reorder, slow-link or all"
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("give at least one network fault kind".into());
        }
        out.dedup();
        Ok(out)
    }
}

/// Which directed links a fault covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every link between the nodes, both ways.
    All,
    /// Every link to and from one node.
    Node,
    /// Every link out of one node (its messages are late; it hears the others on time).
    Outbound,
    /// Every link to and from the current leader (one node if none answers).
    Leader,
    /// Every link into one node (it hears the others late; its messages are on time).
    /// Drawn only when `--net-scopes` names it.
    Inbound,
}

impl Scope {
    /// What a fault draws from when `--net-scopes` is not given.
    pub const DEFAULT: [Scope; 4] = [Scope::All, Scope::Node, Scope::Outbound, Scope::Leader];
    pub const ALL: [Scope; 5] = [
        Scope::All,
        Scope::Node,
        Scope::Outbound,
        Scope::Leader,
        Scope::Inbound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Node => "node",
            Scope::Outbound => "outbound",
            Scope::Leader => "leader",
            Scope::Inbound => "inbound",
        }
    }

    /// Parses `--net-scopes`: a comma-separated list of all, node, outbound, inbound,
    /// leader.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Scope::ALL.iter().find(|k| k.name() == part) {
                Some(k) if !out.contains(k) => out.push(*k),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "unknown network fault scope {part:?}: use all, node, outbound, inbound or leader"
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("give at least one network fault scope".into());
        }
        Ok(out)
    }
}

/// One network fault: a kind, the spec put on each covered link, and the scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetFault {
    pub kind: Kind,
    pub scope: Scope,
    pub spec: LinkSpec,
}

impl NetFault {
    /// Draws a fault of one of `kinds`.
    pub fn draw(rng: &mut impl Rng, kinds: &[Kind]) -> NetFault {
        let kind = *kinds.choose(rng).unwrap_or(&Kind::Delay);
        let scope = *Scope::DEFAULT.choose(rng).unwrap_or(&Scope::All);
        let spec = match kind {
            Kind::Delay => {
                let d = rng.random_range(20..=100u64);
                LinkSpec {
                    delay_us: d * 1000,
                    jitter_us: d * 800,
                    ..Default::default()
                }
            }
            Kind::Loss => LinkSpec {
                loss: f64::from(rng.random_range(5..=30u32)) / 100.0,
                ..Default::default()
            },
            Kind::Duplicate => LinkSpec {
                duplicate: f64::from(rng.random_range(10..=50u32)) / 100.0,
                ..Default::default()
            },
            Kind::Reorder => LinkSpec {
                reorder: f64::from(rng.random_range(10..=40u32)) / 100.0,
                reorder_hold_us: rng.random_range(20..=80u64) * 1000,
                ..Default::default()
            },
            Kind::SlowLink => LinkSpec {
                rate_bps: *[256_000u64, 512_000, 1_000_000, 2_000_000]
                    .choose(rng)
                    .unwrap_or(&1_000_000),
                ..Default::default()
            },
        };
        NetFault { kind, scope, spec }
    }

    /// The directed links (from, to) over `pool`, `lone` being the drawn node.
    pub fn links(&self, pool: &[usize], lone: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for &a in pool {
            for &b in pool {
                let covered = match self.scope {
                    Scope::All => true,
                    Scope::Node | Scope::Leader => a == lone || b == lone,
                    Scope::Outbound => a == lone,
                    Scope::Inbound => b == lone,
                };
                if a != b && covered {
                    out.push((a, b));
                }
            }
        }
        out
    }

    pub fn describe(&self) -> String {
        let s = &self.spec;
        match self.kind {
            Kind::Delay => describe_latency(s),
            Kind::Loss => format!("{:.0}% loss", s.loss * 100.0),
            Kind::Duplicate => format!("{:.0}% duplicated", s.duplicate * 100.0),
            Kind::Reorder => format!(
                "{:.0}% held back {} ms",
                s.reorder * 100.0,
                s.reorder_hold_us / 1000
            ),
            Kind::SlowLink => format!("{} kbit/s", s.rate_bps / 1000),
        }
    }
}

/// Redraws the net faults of a schedule from `kinds` only (each from its own pick), so
/// `--net-faults` narrows the kinds without moving any other draw of the schedule.
pub fn restrict(schedule: &mut [super::Planned], kinds: &[Kind]) {
    use rand::SeedableRng;
    for p in schedule {
        if let super::Fault::Net { net } = &mut p.fault
            && !kinds.contains(&net.kind)
        {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.pick ^ 0x6e6574);
            *net = NetFault::draw(&mut rng, kinds);
        }
    }
}

/// Parses `--net-delay`: `MIN-MAX` (e.g. `100ms-400ms`), the range of a delay fault's
/// mean latency, in milliseconds.
pub fn parse_delay_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("bad --net-delay {s:?}: give MIN-MAX, e.g. 100ms-400ms");
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let ms = |p: &str| {
        crate::units::parse_duration(p.trim())
            .map(|d| d.as_millis() as u64)
            .map_err(|_| bad())
    };
    let (lo, hi) = (ms(lo)?, ms(hi)?);
    if lo == 0 || lo > hi {
        return Err(format!(
            "bad --net-delay {s:?}: MIN must be at least 1ms and at most MAX"
        ));
    }
    if hi > 5000 {
        return Err(format!("bad --net-delay {s:?}: MAX is at most 5s"));
    }
    Ok((lo, hi))
}

/// Redraws the mean latency of every delay fault of a schedule from `range` (ms; jitter
/// stays 80% of the mean), each from its own pick, so `--net-delay` moves no other draw.
pub fn redraw_delays(schedule: &mut [super::Planned], (lo, hi): (u64, u64)) {
    use rand::SeedableRng;
    for p in schedule {
        if let super::Fault::Net { net } = &mut p.fault
            && net.kind == Kind::Delay
        {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.pick ^ 0x64656c6179);
            let d = rng.random_range(lo..=hi);
            net.spec.delay_us = d * 1000;
            net.spec.jitter_us = d * 800;
        }
    }
}

/// Parses `--net-jitter`: `PCT` or `MIN-MAX` (percent of a delay fault's mean, 0-100,
/// e.g. `0-80`), the range a delay fault's jitter is drawn from.
pub fn parse_jitter_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("bad --net-jitter {s:?}: give PCT or MIN-MAX in percent, e.g. 0-80");
    let pct = |p: &str| {
        p.trim()
            .trim_end_matches('%')
            .parse::<u64>()
            .map_err(|_| bad())
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (pct(lo)?, pct(hi)?),
        None => {
            let p = pct(s)?;
            (p, p)
        }
    };
    if lo > hi || hi > 100 {
        return Err(format!(
            "bad --net-jitter {s:?}: percentages from 0 to 100, MIN at most MAX"
        ));
    }
    Ok((lo, hi))
}

/// Redraws the jitter of every delay fault of a schedule as a share of its mean drawn
/// from `range` (percent), each from its own pick, so `--net-jitter` moves no other draw.
/// A low share is a clean latency step: every packet of a link late by about the same
/// time, so a node hears nothing at all from the faulted links for the whole delay (a
/// gap longer than an election timeout when the delay is), while high shares reorder.
pub fn redraw_jitter(schedule: &mut [super::Planned], (lo, hi): (u64, u64)) {
    use rand::SeedableRng;
    for p in schedule {
        if let super::Fault::Net { net } = &mut p.fault
            && net.kind == Kind::Delay
        {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.pick ^ 0x6a6974746572);
            let pct = rng.random_range(lo..=hi);
            net.spec.jitter_us = net.spec.delay_us * pct / 100;
        }
    }
}

/// Redraws the scope of every network fault whose drawn scope is not in `scopes`, each
/// from its own pick (`--net-scopes`), moving no other draw.
pub fn restrict_scopes(schedule: &mut [super::Planned], scopes: &[Scope]) {
    use rand::SeedableRng;
    for p in schedule {
        if let super::Fault::Net { net } = &mut p.fault
            && !scopes.contains(&net.scope)
        {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.pick ^ 0x73636f7065);
            net.scope = *scopes.choose(&mut rng).unwrap_or(&Scope::All);
        }
    }
}

/// How far a measure may be from what was asked before the fault counts as not applied.
fn check(kind: Kind, want: &LinkSpec, m: &UdpMeasure) -> Result<String, String> {
    let ms = |us: u64| us as f64 / 1000.0;
    match kind {
        Kind::Delay => {
            let tol = 4.0 + 0.15 * ms(want.delay_us) + 0.3 * ms(want.jitter_us);
            let got = m.median_ms;
            let line = format!(
                "one-way median {got:.1} ms, p5-p95 {:.1}-{:.1} ms (asked {})",
                m.quantile_ms(0.05),
                m.quantile_ms(0.95),
                describe_latency(want)
            );
            if (got - ms(want.delay_us)).abs() <= tol {
                Ok(line)
            } else {
                Err(line)
            }
        }
        Kind::Loss => {
            let line = format!(
                "{:.0}% of {} datagrams lost (asked {:.0}%)",
                m.loss() * 100.0,
                m.sent,
                want.loss * 100.0
            );
            if (m.loss() - want.loss).abs() <= 0.12 {
                Ok(line)
            } else {
                Err(line)
            }
        }
        Kind::Duplicate => {
            let line = format!(
                "{:.0}% of {} datagrams arrived twice (asked {:.0}%)",
                m.dup_rate() * 100.0,
                m.received,
                want.duplicate * 100.0
            );
            if (m.dup_rate() - want.duplicate).abs() <= 0.12 {
                Ok(line)
            } else {
                Err(line)
            }
        }
        Kind::Reorder => {
            let cut = ms(want.delay_us + want.jitter_us) + ms(want.reorder_hold_us) / 2.0;
            let held = m.share_over_ms(cut);
            let line = format!(
                "{:.0}% held back past {cut:.0} ms, {} of {} overtaken (asked {:.0}%)",
                held * 100.0,
                m.reordered,
                m.received,
                want.reorder * 100.0
            );
            if (held - want.reorder).abs() <= 0.12 && m.reordered > 0 {
                Ok(line)
            } else {
                Err(line)
            }
        }
        Kind::SlowLink => {
            // Node traffic shares the capped link, so the probe may get less: the cap
            // holds when the probe never gets more than asked, and gets a fair share.
            let cap = want.rate_bps as f64 / 8.0;
            let got = m.arrival_bps;
            let line = format!(
                "burst arrived at {:.0} kbit/s (cap {} kbit/s)",
                got * 8.0 / 1000.0,
                want.rate_bps / 1000
            );
            if got <= cap * 1.3 && got >= cap * 0.25 {
                Ok(line)
            } else {
                Err(line)
            }
        }
    }
}

/// The probe that shows a kind's effect on a link with spec `want`.
fn plan(kind: Kind, want: &LinkSpec) -> UdpPlan {
    let linger = Duration::from_micros(want.delay_us + want.jitter_us + want.reorder_hold_us)
        + Duration::from_millis(300);
    match kind {
        Kind::Delay => UdpPlan {
            count: 80,
            size: 64,
            gap: Duration::from_millis(3),
            linger,
        },
        Kind::Loss | Kind::Duplicate | Kind::Reorder => UdpPlan {
            count: 250,
            size: 64,
            gap: Duration::from_millis(1),
            linger,
        },
        Kind::SlowLink => {
            // About 0.4 s of the capped link in one burst.
            let bytes = want.rate_bps / 8 * 2 / 5;
            // Offered at 40 Mbit/s, far above any cap, but not all in one instant.
            UdpPlan {
                count: (bytes / 1000).clamp(10, 200) as u32,
                size: 1000,
                gap: Duration::from_micros(200),
                linger: linger + Duration::from_millis(600),
            }
        }
    }
}

/// How many sequential TCP connects measure a delayed link's round trip: ten, but no
/// more than fit in about a second of expected round trips (at least one), so the
/// evidence of a long delay does not hold up the fault schedule for several seconds (the
/// UDP probes have verified the delay already).
fn rtt_probe_count(there: &LinkSpec, back: &LinkSpec) -> usize {
    let rtt_ms = (there.delay_us + back.delay_us) / 1000;
    (1000 / rtt_ms.max(1)).clamp(1, 10) as usize
}

/// Probes links in parallel, each with the probe of `kind` for its effective spec.
fn probe_links(
    cluster: &Cluster<'_>,
    kind: Kind,
    links: &[(usize, usize, LinkSpec)],
) -> Result<Vec<(usize, usize, LinkSpec, UdpMeasure)>> {
    let shaper = cluster
        .shaper
        .as_ref()
        .context("the net nemesis needs the packet delayer, which this run did not install")?;
    std::thread::scope(|s| {
        let handles: Vec<_> = links
            .iter()
            .map(|&(a, b, want)| {
                s.spawn(move || {
                    shaper
                        .probe_udp(a, b, plan(kind, &want))
                        .map(|m| (a, b, want, m))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("probe thread panicked")))
            .collect()
    })
}

/// Applies a network fault and verifies it on up to two faulted links (retried once:
/// node traffic can crowd a probe). Returns the history value.
pub fn start(
    cluster: &Cluster<'_>,
    fault: &NetFault,
    pool: &[usize],
    rng: &mut impl Rng,
    evidence: &mut Vec<String>,
) -> Result<Value> {
    let shaper = cluster
        .shaper
        .as_ref()
        .context("the net nemesis needs the packet delayer, which this run did not install")?;
    if pool.len() < 2 {
        bail!("a network fault needs at least 2 nodes");
    }
    let drawn = *pool.choose(rng).unwrap_or(&pool[0]);
    let lone = match fault.scope {
        Scope::Leader => super::find_leader(cluster)
            .filter(|l| pool.contains(l))
            .unwrap_or(drawn),
        _ => drawn,
    };
    let links = fault.links(pool, lone);
    shaper.set_faults(links.iter().map(|&l| (l, fault.spec)).collect())?;
    let mut probed: Vec<(usize, usize)> = links.clone();
    probed.shuffle(rng);
    probed.truncate(2);
    let want: Vec<(usize, usize, LinkSpec)> = probed
        .iter()
        .map(|&(a, b)| (a, b, shaper.effective(a, b)))
        .collect();
    let name = |i: usize| cluster.info(i).name.clone();
    let mut last = Vec::new();
    for attempt in 0..2 {
        last.clear();
        let mut ok = true;
        for (a, b, spec, m) in probe_links(cluster, fault.kind, &want)? {
            match check(fault.kind, &spec, &m) {
                Ok(line) => last.push(format!("{}->{} {line}", name(a), name(b))),
                Err(line) => {
                    ok = false;
                    last.push(format!("{}->{} {line}", name(a), name(b)));
                }
            }
        }
        if ok {
            break;
        }
        if attempt == 1 {
            bail!(
                "network fault {} did not take effect: {}",
                fault.describe(),
                last.join("; ")
            );
        }
    }
    evidence.append(&mut last);
    if fault.kind == Kind::Delay {
        let (a, b) = probed[0];
        let count = rtt_probe_count(&shaper.effective(a, b), &shaper.effective(b, a));
        if let Some(rtt) = shaper.probe_tcp_rtt(a, b, count, Duration::from_secs(2))? {
            evidence.push(format!(
                "{}->{} TCP connect median {rtt:.1} ms (links ask {} there, {} back)",
                name(a),
                name(b),
                describe_latency(&shaper.effective(a, b)),
                describe_latency(&shaper.effective(b, a)),
            ));
        }
    }
    let mut by_from: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for &(a, b) in &links {
        by_from.entry(name(a)).or_default().push(name(b));
    }
    Ok(json!({
        "kind": fault.kind.name(),
        "fault": fault.describe(),
        "scope": fault.scope,
        "links": by_from,
    }))
}

/// Takes every link back to the baseline and verifies one of them with a probe.
pub fn stop(cluster: &Cluster<'_>, fault: &NetFault, evidence: &mut Vec<String>) -> Result<()> {
    let Some(shaper) = cluster.shaper.as_ref() else {
        return Ok(());
    };
    let links = shaper.fault_links();
    shaper.clear_faults()?;
    let Some(&(a, b)) = links.first() else {
        return Ok(());
    };
    let base = shaper.effective(a, b);
    let (from, to) = (cluster.info(a), cluster.info(b));
    // What the fault added must be gone: no loss or copies beyond noise, and a median
    // well under half of the fault's own added delay (at least 20 ms of slack: on a
    // loaded machine the delayer thread itself may wake late). Retried: node traffic and
    // other processes can crowd one probe.
    let f = &fault.spec;
    let added = (f.delay_us + f.jitter_us + f.reorder_hold_us) as f64 / 2000.0;
    let bound = (base.delay_us + base.jitter_us) as f64 / 1000.0 + 5.0 + added.max(20.0);
    let mut line = String::new();
    for attempt in 0..3 {
        let m = shaper.probe_udp(a, b, plan(Kind::Loss, &base))?;
        line = format!(
            "healed: {}->{} median {:.1} ms, {:.0}% lost, {:.0}% copies",
            from.name,
            to.name,
            m.median_ms,
            m.loss() * 100.0,
            m.dup_rate() * 100.0
        );
        if m.loss() <= 0.05 && m.dup_rate() <= 0.05 && m.median_ms <= bound {
            break;
        }
        if attempt == 2 {
            bail!(
                "network fault {} did not heal: {line} (bound {bound:.0} ms)",
                fault.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    evidence.push(line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A 120 s schedule of net faults (seed 9), redrawn by `redraw`: every fault keeps its
    /// kind, scope and timing, faults other than delays are unchanged, and `check(new,
    /// old)` holds for each delay (there is at least one). Returns the schedule as drawn.
    fn redrawn_delays(
        redraw: impl FnOnce(&mut Vec<super::super::Planned>),
        mut check: impl FnMut(&NetFault, &NetFault),
    ) -> Vec<super::super::Planned> {
        let before = super::super::schedule(
            &[super::super::Family::Net],
            &super::super::Target::ALL,
            &super::super::partition::Shape::ALL,
            Duration::from_secs(120),
            Duration::from_secs(3),
            3,
            9,
        );
        let mut s = before.clone();
        redraw(&mut s);
        let mut delays = 0;
        for (a, b) in s.iter().zip(&before) {
            match (&a.fault, &b.fault) {
                (super::super::Fault::Net { net }, super::super::Fault::Net { net: old }) => {
                    assert_eq!((net.kind, net.scope), (old.kind, old.scope));
                    if net.kind == Kind::Delay {
                        delays += 1;
                        check(net, old);
                    } else {
                        assert_eq!(net, old);
                    }
                }
                f => panic!("{f:?}"),
            }
            assert_eq!((a.at_ms, a.hold_ms, a.pick), (b.at_ms, b.hold_ms, b.pick));
        }
        assert!(delays > 0);
        before
    }

    #[test]
    fn draws_cover_every_kind_with_sane_numbers() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let f = NetFault::draw(&mut rng, &Kind::ALL);
            f.spec.validate().unwrap();
            assert!(!f.spec.is_clean());
            seen.insert(f.kind.name());
            if f.kind == Kind::Delay {
                assert!(f.spec.jitter_us * 5 == f.spec.delay_us * 4, "{f:?}");
            }
            assert!(
                f.spec.loss <= 0.3,
                "heavy loss is a liveness test of its own"
            );
        }
        assert_eq!(seen.len(), 5);
        let only = NetFault::draw(&mut rng, &[Kind::Loss]);
        assert_eq!(only.kind, Kind::Loss);
    }

    #[test]
    fn scopes_pick_the_right_links() {
        let mut f = NetFault::draw(&mut ChaCha8Rng::seed_from_u64(1), &[Kind::Delay]);
        let pool = [0, 1, 2];
        f.scope = Scope::All;
        assert_eq!(f.links(&pool, 1).len(), 6);
        f.scope = Scope::Node;
        let l = f.links(&pool, 1);
        assert_eq!(l, vec![(0, 1), (1, 0), (1, 2), (2, 1)]);
        f.scope = Scope::Outbound;
        assert_eq!(f.links(&pool, 1), vec![(1, 0), (1, 2)]);
        f.scope = Scope::Leader;
        assert_eq!(f.links(&pool, 2), vec![(0, 2), (1, 2), (2, 0), (2, 1)]);
        f.scope = Scope::Inbound;
        assert_eq!(f.links(&pool, 1), vec![(0, 1), (2, 1)]);
    }

    #[test]
    fn scopes_parse_and_restrict() {
        assert_eq!(
            Scope::parse_list("leader, inbound,leader").unwrap(),
            vec![Scope::Leader, Scope::Inbound]
        );
        assert!(
            Scope::parse_list("nearest")
                .unwrap_err()
                .contains("unknown")
        );
        assert!(Scope::parse_list(" , ").is_err());
        let mut s = super::super::schedule(
            &[super::super::Family::Net],
            &super::super::Target::ALL,
            &super::super::partition::Shape::ALL,
            Duration::from_secs(120),
            Duration::from_secs(3),
            3,
            11,
        );
        let before = s.clone();
        restrict_scopes(&mut s, &[Scope::Leader, Scope::Inbound]);
        for (a, b) in s.iter().zip(&before) {
            match (&a.fault, &b.fault) {
                (super::super::Fault::Net { net }, super::super::Fault::Net { net: old }) => {
                    assert!(matches!(net.scope, Scope::Leader | Scope::Inbound));
                    assert_eq!((net.kind, net.spec), (old.kind, old.spec));
                    if old.scope == Scope::Leader {
                        assert_eq!(net.scope, Scope::Leader);
                    }
                }
                f => panic!("{f:?}"),
            }
        }
    }

    #[test]
    fn kinds_parse_and_restrict() {
        assert_eq!(Kind::parse_list("all").unwrap(), Kind::ALL.to_vec());
        assert_eq!(
            Kind::parse_list("loss, slow-link").unwrap(),
            vec![Kind::Loss, Kind::SlowLink]
        );
        assert!(
            Kind::parse_list("jam")
                .unwrap_err()
                .contains("unknown network fault")
        );
        let mut s = super::super::schedule(
            &[super::super::Family::Net],
            &super::super::Target::ALL,
            &super::super::partition::Shape::ALL,
            Duration::from_secs(60),
            Duration::from_secs(3),
            3,
            5,
        );
        assert!(s.len() > 5);
        restrict(&mut s, &[Kind::Duplicate]);
        for p in &s {
            match &p.fault {
                super::super::Fault::Net { net } => assert_eq!(net.kind, Kind::Duplicate),
                f => panic!("{f:?}"),
            }
        }
        assert_eq!(s[0].fault.event("start"), "start-net");
    }

    #[test]
    fn delay_range_parses_and_redraws_only_delays() {
        assert_eq!(parse_delay_range("100ms-400ms").unwrap(), (100, 400));
        assert_eq!(parse_delay_range("50ms - 1s").unwrap(), (50, 1000));
        for bad in ["", "100ms", "400ms-100ms", "0ms-10ms", "10ms-9s", "a-b"] {
            assert!(parse_delay_range(bad).is_err(), "{bad:?}");
        }
        redrawn_delays(
            |s| redraw_delays(s, (150, 400)),
            |net, _| {
                let d = net.spec.delay_us / 1000;
                assert!((150..=400).contains(&d), "{net:?}");
                assert_eq!(net.spec.jitter_us, d * 800);
            },
        );
    }

    #[test]
    fn jitter_range_parses_and_redraws_only_delay_jitter() {
        assert_eq!(parse_jitter_range("0-80").unwrap(), (0, 80));
        assert_eq!(parse_jitter_range("20%").unwrap(), (20, 20));
        assert_eq!(parse_jitter_range(" 0 - 10% ").unwrap(), (0, 10));
        for bad in ["", "x", "80-20", "0-101", "-5", "5-"] {
            assert!(parse_jitter_range(bad).is_err(), "{bad:?}");
        }
        let before = redrawn_delays(
            |s| redraw_jitter(s, (0, 10)),
            |net, old| {
                assert_eq!(net.spec.delay_us, old.spec.delay_us);
                assert!(net.spec.jitter_us * 10 <= net.spec.delay_us, "{net:?}");
                net.spec.validate().unwrap();
            },
        );
        // 80% is what a delay fault draws without the option.
        let mut again = before.clone();
        redraw_jitter(&mut again, (80, 80));
        assert_eq!(again, before);
    }

    #[test]
    fn rtt_probes_of_long_delays_are_fewer() {
        let d = |ms: u64| LinkSpec {
            delay_us: ms * 1000,
            ..Default::default()
        };
        assert_eq!(rtt_probe_count(&d(0), &d(0)), 10);
        assert_eq!(rtt_probe_count(&d(50), &d(50)), 10);
        assert_eq!(rtt_probe_count(&d(100), &d(100)), 5);
        assert_eq!(rtt_probe_count(&d(200), &d(200)), 2);
        assert_eq!(rtt_probe_count(&d(400), &d(400)), 1);
    }

    #[test]
    fn checks_accept_what_was_asked_and_reject_the_rest() {
        let delay = LinkSpec {
            delay_us: 50_000,
            jitter_us: 40_000,
            ..Default::default()
        };
        let m = |median: f64| UdpMeasure {
            sent: 10,
            received: 10,
            delays_ms: vec![median; 10],
            median_ms: median,
            ..Default::default()
        };
        assert!(check(Kind::Delay, &delay, &m(55.0)).is_ok());
        assert!(check(Kind::Delay, &delay, &m(0.5)).is_err());
        let loss = LinkSpec {
            loss: 0.3,
            ..Default::default()
        };
        let lossy = UdpMeasure {
            sent: 100,
            received: 72,
            ..Default::default()
        };
        assert!(check(Kind::Loss, &loss, &lossy).is_ok());
        let clean = UdpMeasure {
            sent: 100,
            received: 100,
            ..Default::default()
        };
        assert!(check(Kind::Loss, &loss, &clean).is_err());
        let slow = LinkSpec {
            rate_bps: 1_000_000,
            ..Default::default()
        };
        let fast = UdpMeasure {
            arrival_bps: 10_000_000.0,
            ..Default::default()
        };
        assert!(check(Kind::SlowLink, &slow, &fast).is_err());
        let capped = UdpMeasure {
            arrival_bps: 120_000.0,
            ..Default::default()
        };
        assert!(check(Kind::SlowLink, &slow, &capped).is_ok());
    }
}
