//! A session with an agent on a remote host: a hidden subcommand of the uploaded `stasis`
//! (`netfault-agent`, `diskfault-agent`) started over the host's shared ssh connection,
//! talking one JSON line each way over the session's stdin and stdout. Each request
//! carries an id, each reply names the id it answers (`ok` or `err`); id 0 is the agent's
//! "ready" (or why it could not start). The agent lives exactly as long as its session:
//! when stdin closes (the controller stopped it, died, or the connection dropped) it
//! undoes what it did and exits.
//!
//! [`Session`] is the controller's end; [`Replier`] and [`requests`] are the agent's.
//! Both agents use them, so the wire format and its failure handling have one owner.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ssh::Ssh;

/// One request: an id and the agent's operation (its `op` tag and fields, flattened).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request<O> {
    pub id: u64,
    #[serde(flatten)]
    pub op: O,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    err: Option<String>,
}

// ---------------------------------------------------------------------------------------
// The agent's end

/// Writes replies to stdout, one line each, from any thread.
#[derive(Clone)]
pub struct Replier(Arc<Mutex<std::io::Stdout>>);

impl Default for Replier {
    fn default() -> Replier {
        Replier(Arc::new(Mutex::new(std::io::stdout())))
    }
}

impl Replier {
    /// Answers request `id`.
    pub fn say(&self, id: u64, r: Result<Value, String>) {
        let (ok, err) = match r {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        let line = serde_json::to_string(&Reply { id, ok, err }).unwrap_or_default();
        let mut o = lock(&self.0);
        // A closed stdout means the controller is gone; stdin closes too, and we stop.
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    }

    /// Tells the controller the agent is ready (or why it is not).
    pub fn ready(&self, r: Result<(), String>) {
        self.say(0, r.map(|()| json!("ready")));
    }
}

/// Reads requests from stdin on a thread of their own; a line that is not a request is
/// answered with an error (id 0). The channel closes when stdin does.
pub fn requests<O: DeserializeOwned + Send + 'static>(
    replier: Replier,
) -> mpsc::Receiver<(u64, O)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Request<O>>(&line) {
                Ok(r) => {
                    if tx.send((r.id, r.op)).is_err() {
                        break;
                    }
                }
                Err(e) => replier.say(0, Err(format!("bad request {line:?}: {e}"))),
            }
        }
    });
    rx
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
pub struct Session {
    /// What the agent runs, for messages ("the packet delayer").
    what: &'static str,
    host: String,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    pending: Arc<Mutex<Pending>>,
    next_id: std::sync::atomic::AtomicU64,
    reader: Option<JoinHandle<()>>,
    log: std::path::PathBuf,
}

/// Starts the agent: `cd DIR && echo $$ > pid && exec ARGV...`, so the pid file names the
/// agent itself for `stasis clean --hosts` (which kills what a run directory's pid files
/// name when the process's cwd is their directory).
const START: &str = r#"mkdir -p "$1" && cd "$1" || exit 1
echo $$ > pid
shift
exec "$@""#;

impl Session {
    /// Starts `argv` on `h` with its pid file in `dir` on the host and its stderr in `log`
    /// here; waits up to 20 s until it says it is ready.
    pub fn start(
        h: &Ssh,
        dir: &str,
        argv: &[&str],
        log: &Path,
        what: &'static str,
    ) -> Result<Session> {
        let mut remote = vec!["sh", "-c", START, "stasis", dir];
        remote.extend_from_slice(argv);
        let argv = h.argv(&remote)?;
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
            .name("agent-reader".into())
            .spawn(move || read_replies(stdout, &p, what))
            .context("cannot start a reader thread")?;
        let mut s = Session {
            what,
            host: h.target(),
            child,
            stdin: Mutex::new(stdin),
            pending,
            next_id: std::sync::atomic::AtomicU64::new(1),
            reader: Some(reader),
            log: log.to_owned(),
        };
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(_)) => Ok(s),
            Ok(Err(e)) => {
                let _ = s.stop();
                bail!("{}: {} did not start: {e}", s.host, s.what)
            }
            Err(_) => {
                let _ = s.stop();
                bail!(
                    "{}: {} did not answer within 20 s (its messages: {})",
                    s.host,
                    s.what,
                    s.log.display()
                )
            }
        }
    }

    /// The host, as ssh names it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `op` and waits up to `timeout` for its answer.
    pub fn request<O: Serialize>(&self, op: O, timeout: Duration) -> Result<Value> {
        use std::sync::atomic::Ordering;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut p = lock(&self.pending);
            if let Some(why) = &p.closed {
                bail!("{}: {} is gone: {why}", self.host, self.what);
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
            bail!("{}: cannot reach {}: {e}", self.host, self.what);
        }
        match rx.recv_timeout(timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => bail!("{}: {}: {e}", self.host, self.what),
            Err(_) => {
                lock(&self.pending).waiters.remove(&id);
                bail!(
                    "{}: {} did not answer within {timeout:?}",
                    self.host,
                    self.what
                )
            }
        }
    }

    /// Closes the session: the agent undoes what it did and exits. Waits up to 10 s for
    /// it, then ends the local ssh client. Idempotent.
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
                "{}: {} exited with {s} (its messages: {})",
                self.host,
                self.what,
                self.log.display()
            ),
            None => bail!(
                "{}: {} did not stop within 10 s (`stasis clean --hosts` removes it)",
                self.host,
                self.what
            ),
        }
    }

    /// Whether [`Session::stop`] has not run yet.
    pub fn running(&self) -> bool {
        self.reader.is_some()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.running()
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
fn read_replies(stdout: std::process::ChildStdout, pending: &Mutex<Pending>, what: &str) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(r) = serde_json::from_str::<Reply>(&line) else {
            tracing::warn!("{what}: unexpected line {line:?}");
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
            tracing::warn!("{what}: {e}");
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

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Op {
        Ping,
        Set { n: u64 },
    }

    #[test]
    fn requests_are_one_json_line_with_the_op_flattened() {
        let line = serde_json::to_string(&Request {
            id: 3,
            op: Op::Set { n: 9 },
        })
        .unwrap();
        assert_eq!(line, r#"{"id":3,"op":"set","n":9}"#);
        let back: Request<Op> = serde_json::from_str(&line).unwrap();
        assert_eq!((back.id, back.op), (3, Op::Set { n: 9 }));
        let ping: Request<Op> = serde_json::from_str(r#"{"id":1,"op":"ping"}"#).unwrap();
        assert_eq!(ping.op, Op::Ping);
        assert!(serde_json::from_str::<Request<Op>>(r#"{"id":1,"op":"nope"}"#).is_err());
    }
}
