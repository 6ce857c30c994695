//! The packet delayer on a remote host: `stasis netfault-agent`, started over the host's
//! shared ssh connection, runs the same [`queue::Delayer`] in the host's own network
//! namespace and answers requests, one JSON line each way over the session's stdin and
//! stdout: set the outgoing links, report counters, and run the probes that verify a
//! fault on the host itself ([`probe::reflect`], [`probe::udp_echo`], [`probe::listen`],
//! [`probe::tcp_rtt_to`]).
//!
//! The agent lives exactly as long as its session: when stdin closes (the controller
//! stopped it, died, or the ssh connection dropped) it removes its rules, releases every
//! held packet and exits. Its rules are the local delayer's, in our own chain
//! [`queue::CHAIN`] with `--queue-bypass`, so even an agent killed outright leaves traffic
//! flowing; `stasis clean --hosts` removes that chain and the agent process (its pid file
//! is `<run dir>/netfault/pid`, like a node's).
//!
//! [`Agent`] is the controller's end: one ssh session per host ([`crate::remote::session`],
//! the wire format shared with the disk-fault agent), requests tagged with ids so probes of
//! several links can run at once.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::probe::{self, UdpMeasure, UdpPlan};
use super::queue;
use super::sched::LinkSpec;
use crate::remote::session::{self, Replier, Session};
use crate::remote::ssh::Ssh;

/// The agent's subcommand (hidden from `stasis --help`).
pub const SUBCOMMAND: &str = "netfault-agent";

/// One request to the agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Sets the outgoing links: destination -> spec (others pass undelayed).
    Set { links: Vec<(Ipv4Addr, LinkSpec)> },
    /// The delayer's counters.
    Stats,
    /// A UDP reflector on `addr` for `ms`; answers its port.
    Reflect { addr: Ipv4Addr, ms: u64 },
    /// A TCP listener on `addr` for `ms`; answers its port.
    Listen { addr: Ipv4Addr, ms: u64 },
    /// A UDP echo probe to a reflector; answers the measure.
    Udp { target: SocketAddr, plan: UdpPlan },
    /// TCP connects to a listener; answers the median ms (or null).
    TcpRtt {
        target: SocketAddr,
        count: usize,
        timeout_ms: u64,
    },
}

/// The delayer's counters as the agent reports them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    pub queued: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub max_held: u64,
    pub cpu_us: u64,
}

impl Counters {
    pub fn of(stats: &queue::Stats) -> Counters {
        use std::sync::atomic::Ordering::Relaxed;
        Counters {
            queued: stats.queued.load(Relaxed),
            dropped: stats.dropped.load(Relaxed),
            duplicated: stats.duplicated.load(Relaxed),
            max_held: stats.max_held.load(Relaxed),
            cpu_us: stats.cpu_us.load(Relaxed),
        }
    }
}

/// A UDP measure with its delays (which the measure's own serialization leaves out).
#[derive(Serialize, Deserialize)]
struct Measured {
    m: UdpMeasure,
    delays_ms: Vec<f64>,
}

// ---------------------------------------------------------------------------------------
// The agent (on the host)

/// `stasis netfault-agent --peers A,B --seed N`: runs until stdin closes. Exit 0 after a
/// clean stop, 3 if the delayer could not start or stop.
pub fn serve(peers: &[Ipv4Addr], seed: u64) -> u8 {
    let out = Replier::default();
    let mut delayer = match queue::Delayer::start(None, peers, seed) {
        Ok(d) => d,
        Err(e) => {
            out.ready(Err(format!("{e:#}")));
            return 3;
        }
    };
    out.ready(Ok(()));
    for (id, op) in session::requests::<Op>(out.clone()) {
        match op {
            Op::Set { links } => {
                delayer.set(links.into_iter().collect::<BTreeMap<_, _>>());
                out.say(id, Ok(Value::Null));
            }
            Op::Stats => out.say(id, Ok(json!(Counters::of(&delayer.stats)))),
            op => {
                // Probes take time and may run side by side: one thread each.
                let out = out.clone();
                std::thread::spawn(move || out.say(id, answer(op).map_err(|e| format!("{e:#}"))));
            }
        }
    }
    // stdin closed: remove the rules, release what is held, exit.
    match delayer.stop() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("stasis netfault-agent: {e:#}");
            3
        }
    }
}

fn answer(op: Op) -> Result<Value> {
    Ok(match op {
        Op::Reflect { addr, ms } => json!(probe::reflect(addr, Duration::from_millis(ms))?),
        Op::Listen { addr, ms } => json!(probe::listen(addr, Duration::from_millis(ms))?),
        Op::Udp { target, plan } => {
            let m = probe::udp_echo(target, plan)?;
            json!(Measured {
                delays_ms: m.delays_ms.clone(),
                m,
            })
        }
        Op::TcpRtt {
            target,
            count,
            timeout_ms,
        } => json!(probe::tcp_rtt_to(
            target,
            count,
            Duration::from_millis(timeout_ms)
        )),
        Op::Set { .. } | Op::Stats => bail!("not a probe"),
    })
}

// ---------------------------------------------------------------------------------------
// The controller's end

/// A running agent on one host.
pub struct Agent {
    session: Session,
}

impl Agent {
    /// Starts the agent on `h` from the uploaded `bin`, with its pid file in `dir` on the
    /// host and its stderr in `log` here; waits until its delayer runs.
    pub fn start(
        h: &Ssh,
        dir: &str,
        bin: &str,
        peers: &[Ipv4Addr],
        seed: u64,
        log: &Path,
    ) -> Result<Agent> {
        let peers_csv = peers
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let seed_s = seed.to_string();
        let session = Session::start(
            h,
            dir,
            &[bin, SUBCOMMAND, "--peers", &peers_csv, "--seed", &seed_s],
            log,
            "the packet delayer",
        )?;
        Ok(Agent { session })
    }

    /// Sends `op` and waits up to `timeout` for its answer.
    pub fn request(&self, op: Op, timeout: Duration) -> Result<Value> {
        self.session.request(op, timeout)
    }

    fn host(&self) -> &str {
        self.session.host()
    }

    /// Sets the outgoing links of the host.
    pub fn set(&self, links: &BTreeMap<Ipv4Addr, LinkSpec>) -> Result<()> {
        let links = links.iter().map(|(a, s)| (*a, *s)).collect();
        self.request(Op::Set { links }, Duration::from_secs(10))
            .map(|_| ())
    }

    pub fn counters(&self) -> Result<Counters> {
        let v = self.request(Op::Stats, Duration::from_secs(10))?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad counters: {e}", self.host()))
    }

    /// A reflector on this host's `addr` for `lifetime`; its port.
    pub fn reflect(&self, addr: Ipv4Addr, lifetime: Duration) -> Result<u16> {
        let ms = lifetime.as_millis() as u64;
        let v = self.request(Op::Reflect { addr, ms }, Duration::from_secs(10))?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad port: {e}", self.host()))
    }

    /// A TCP listener on this host's `addr` for `lifetime`; its port.
    pub fn listen(&self, addr: Ipv4Addr, lifetime: Duration) -> Result<u16> {
        let ms = lifetime.as_millis() as u64;
        let v = self.request(Op::Listen { addr, ms }, Duration::from_secs(10))?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad port: {e}", self.host()))
    }

    /// A UDP echo probe from this host to a reflector.
    pub fn udp_echo(&self, target: SocketAddr, plan: UdpPlan) -> Result<UdpMeasure> {
        let wait = plan.gap * plan.count + plan.linger + Duration::from_secs(10);
        let v = self.request(Op::Udp { target, plan }, wait)?;
        let Measured { mut m, delays_ms } = serde_json::from_value(v)
            .map_err(|e| anyhow!("{}: bad probe result: {e}", self.host()))?;
        m.delays_ms = delays_ms;
        Ok(m)
    }

    /// Median TCP connect time from this host to `target`.
    pub fn tcp_rtt(
        &self,
        target: SocketAddr,
        count: usize,
        timeout: Duration,
    ) -> Result<Option<f64>> {
        let wait = timeout * count as u32 + Duration::from_secs(10);
        let v = self.request(
            Op::TcpRtt {
                target,
                count,
                timeout_ms: timeout.as_millis() as u64,
            },
            wait,
        )?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad probe result: {e}", self.host()))
    }

    /// Closes the session: the agent removes its rules and exits. Waits up to 10 s for it,
    /// then ends the local ssh client. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.session.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::session::Request;

    #[test]
    fn requests_round_trip_as_one_json_line() {
        let r = Request {
            id: 7,
            op: Op::Set {
                links: vec![(
                    Ipv4Addr::new(10, 0, 0, 2),
                    LinkSpec {
                        delay_us: 5000,
                        ..Default::default()
                    },
                )],
            },
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        let back: Request<Op> = serde_json::from_str(&line).unwrap();
        assert_eq!(back.id, 7);
        match back.op {
            Op::Set { links } => assert_eq!(links[0].1.delay_us, 5000),
            other => panic!("{other:?}"),
        }
        let plan = UdpPlan {
            count: 3,
            size: 64,
            gap: Duration::from_millis(2),
            linger: Duration::from_millis(100),
        };
        let line = serde_json::to_string(&Request {
            id: 1,
            op: Op::Udp {
                target: "10.0.0.2:99".parse().unwrap(),
                plan,
            },
        })
        .unwrap();
        let back: Request<Op> = serde_json::from_str(&line).unwrap();
        assert!(matches!(back.op, Op::Udp { plan, .. } if plan.gap == Duration::from_millis(2)));
    }

    #[test]
    fn an_echo_probe_through_a_reflector_sees_every_datagram() {
        let port = probe::reflect(Ipv4Addr::LOCALHOST, Duration::from_secs(3)).unwrap();
        let m = probe::udp_echo(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            UdpPlan {
                count: 20,
                size: 64,
                gap: Duration::from_millis(1),
                linger: Duration::from_millis(200),
            },
        )
        .unwrap();
        assert_eq!((m.sent, m.received, m.duplicates), (20, 20, 0), "{m:?}");
        assert!(m.median_ms < 50.0, "{m:?}");
    }
}
