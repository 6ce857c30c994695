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
//! [`Agent`] is the controller's end: one ssh session per host, requests tagged with ids so
//! probes of several links can run at once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::probe::{self, UdpMeasure, UdpPlan};
use super::queue;
use super::sched::LinkSpec;
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

#[derive(Serialize, Deserialize)]
struct Request {
    id: u64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    err: Option<String>,
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
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = |r: Reply| {
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        let line = serde_json::to_string(&r).unwrap_or_default();
        // A closed stdout means the controller is gone; stdin closes too, and we stop.
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    let mut delayer = match queue::Delayer::start(None, peers, seed) {
        Ok(d) => d,
        Err(e) => {
            say(Reply {
                id: 0,
                ok: None,
                err: Some(format!("{e:#}")),
            });
            return 3;
        }
    };
    say(Reply {
        id: 0,
        ok: Some(json!("ready")),
        err: None,
    });
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                say(Reply {
                    id: 0,
                    ok: None,
                    err: Some(format!("bad request {line:?}: {e}")),
                });
                continue;
            }
        };
        match req.op {
            Op::Set { links } => {
                delayer.set(links.into_iter().collect::<BTreeMap<_, _>>());
                say(Reply {
                    id: req.id,
                    ok: Some(Value::Null),
                    err: None,
                });
            }
            Op::Stats => say(Reply {
                id: req.id,
                ok: Some(json!(Counters::of(&delayer.stats))),
                err: None,
            }),
            op => {
                // Probes take time and may run side by side: one thread each.
                let out = out.clone();
                std::thread::spawn(move || {
                    let r = match answer(op) {
                        Ok(v) => Reply {
                            id: req.id,
                            ok: Some(v),
                            err: None,
                        },
                        Err(e) => Reply {
                            id: req.id,
                            ok: None,
                            err: Some(format!("{e:#}")),
                        },
                    };
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(o, "{}", serde_json::to_string(&r).unwrap_or_default());
                    let _ = o.flush();
                });
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

type Waiters = BTreeMap<u64, mpsc::Sender<Result<Value, String>>>;

/// Shared between callers and the reader thread.
struct Pending {
    waiters: Waiters,
    /// Set when the agent's stdout closed: why no answer will come.
    closed: Option<String>,
}

/// A running agent on one host.
pub struct Agent {
    host: String,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    pending: Arc<Mutex<Pending>>,
    next_id: std::sync::atomic::AtomicU64,
    reader: Option<JoinHandle<()>>,
    log: std::path::PathBuf,
}

/// Starts the agent: `cd DIR && echo $$ > pid && exec BIN netfault-agent ...`, so the
/// pid file names the agent itself for `stasis clean --hosts`.
const START: &str = r#"mkdir -p "$1" && cd "$1" || exit 1
echo $$ > pid
exec "$2" netfault-agent --peers "$3" --seed "$4""#;

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
        let argv = h.argv(&["sh", "-c", START, "stasis", dir, bin, &peers_csv, &seed_s])?;
        let err = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        // Its own process group: a Ctrl-C at the terminal reaches the controller, which
        // stops the agent in order, not the ssh client under it.
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .context("cannot run ssh (apt-get install openssh-client)")?;
        let stdout = child.stdout.take().context("ssh stdout")?;
        let stdin = child.stdin.take();
        let pending = Arc::new(Mutex::new(Pending {
            waiters: BTreeMap::new(),
            closed: None,
        }));
        let (ready_tx, ready_rx) = mpsc::channel();
        lock(&pending).waiters.insert(0, ready_tx);
        let p = pending.clone();
        let reader = std::thread::Builder::new()
            .name("netfault-agent-reader".into())
            .spawn(move || read_replies(stdout, &p))
            .context("cannot start a reader thread")?;
        let mut agent = Agent {
            host: h.target(),
            child,
            stdin: Mutex::new(stdin),
            pending,
            next_id: std::sync::atomic::AtomicU64::new(1),
            reader: Some(reader),
            log: log.to_owned(),
        };
        let ready = ready_rx.recv_timeout(Duration::from_secs(20));
        match ready {
            Ok(Ok(_)) => Ok(agent),
            Ok(Err(e)) => {
                let _ = agent.stop();
                bail!("{}: the packet delayer did not start: {e}", agent.host)
            }
            Err(_) => {
                let _ = agent.stop();
                bail!(
                    "{}: the packet delayer did not answer within 20 s (its messages: {})",
                    agent.host,
                    agent.log.display()
                )
            }
        }
    }

    /// Sends `op` and waits up to `timeout` for its answer.
    pub fn request(&self, op: Op, timeout: Duration) -> Result<Value> {
        use std::sync::atomic::Ordering;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut p = lock(&self.pending);
            if let Some(why) = &p.closed {
                bail!("{}: the packet delayer is gone: {why}", self.host);
            }
            p.waiters.insert(id, tx);
        }
        let line = serde_json::to_string(&Request { id, op })?;
        let sent = {
            let mut stdin = lock(&self.stdin);
            match stdin.as_mut() {
                Some(s) => writeln!(s, "{line}")
                    .and_then(|_| s.flush())
                    .map_err(|e| e.to_string()),
                None => Err("stopped".into()),
            }
        };
        if let Err(e) = sent {
            lock(&self.pending).waiters.remove(&id);
            bail!("{}: cannot reach the packet delayer: {e}", self.host);
        }
        match rx.recv_timeout(timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => bail!("{}: packet delayer: {e}", self.host),
            Err(_) => {
                lock(&self.pending).waiters.remove(&id);
                bail!(
                    "{}: the packet delayer did not answer within {timeout:?}",
                    self.host
                )
            }
        }
    }

    /// Sets the outgoing links of the host.
    pub fn set(&self, links: &BTreeMap<Ipv4Addr, LinkSpec>) -> Result<()> {
        let links = links.iter().map(|(a, s)| (*a, *s)).collect();
        self.request(Op::Set { links }, Duration::from_secs(10))
            .map(|_| ())
    }

    pub fn counters(&self) -> Result<Counters> {
        let v = self.request(Op::Stats, Duration::from_secs(10))?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad counters: {e}", self.host))
    }

    /// A reflector on this host's `addr` for `lifetime`; its port.
    pub fn reflect(&self, addr: Ipv4Addr, lifetime: Duration) -> Result<u16> {
        let ms = lifetime.as_millis() as u64;
        let v = self.request(Op::Reflect { addr, ms }, Duration::from_secs(10))?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad port: {e}", self.host))
    }

    /// A TCP listener on this host's `addr` for `lifetime`; its port.
    pub fn listen(&self, addr: Ipv4Addr, lifetime: Duration) -> Result<u16> {
        let ms = lifetime.as_millis() as u64;
        let v = self.request(Op::Listen { addr, ms }, Duration::from_secs(10))?;
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad port: {e}", self.host))
    }

    /// A UDP echo probe from this host to a reflector.
    pub fn udp_echo(&self, target: SocketAddr, plan: UdpPlan) -> Result<UdpMeasure> {
        let wait = plan.gap * plan.count + plan.linger + Duration::from_secs(10);
        let v = self.request(Op::Udp { target, plan }, wait)?;
        let Measured { mut m, delays_ms } = serde_json::from_value(v)
            .map_err(|e| anyhow!("{}: bad probe result: {e}", self.host))?;
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
        serde_json::from_value(v).map_err(|e| anyhow!("{}: bad probe result: {e}", self.host))
    }

    /// Closes the session: the agent removes its rules and exits. Waits up to 10 s for it,
    /// then ends the local ssh client. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        drop(lock(&self.stdin).take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!(
                "{}: the packet delayer exited with {s} (its messages: {})",
                self.host,
                self.log.display()
            ),
            None => bail!(
                "{}: the packet delayer did not stop within 10 s (`stasis clean --hosts` removes it)",
                self.host
            ),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.reader.is_some()
            && let Err(e) = self.stop()
        {
            tracing::error!("{e:#}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands each reply line to its waiter; when stdout closes, fails every waiter.
fn read_replies(stdout: std::process::ChildStdout, pending: &Mutex<Pending>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(r) = serde_json::from_str::<Reply>(&line) else {
            tracing::warn!("netfault agent: unexpected line {line:?}");
            continue;
        };
        let result = match (r.ok, r.err) {
            (_, Some(e)) => Err(e),
            (Some(v), None) => Ok(v),
            (None, None) => Ok(Value::Null),
        };
        if let Some(tx) = lock(pending).waiters.remove(&r.id) {
            let _ = tx.send(result);
        } else if let Err(e) = result {
            tracing::warn!("netfault agent: {e}");
        }
    }
    let mut p = lock(pending);
    p.closed = Some("its session ended".into());
    for (_, tx) in std::mem::take(&mut p.waiters) {
        let _ = tx.send(Err("its session ended".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let back: Request = serde_json::from_str(&line).unwrap();
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
        let back: Request = serde_json::from_str(&line).unwrap();
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
