//! Remote hosts (`--hosts hosts.toml`): nodes run on other machines, reached only through
//! the system's OpenSSH client ([`ssh`]); the hosts file is [`hosts`].
//!
//! A remote node is known to the rest of the harness by its *place*, the string
//! `ssh:<node>` in [`crate::nodes::NodeInfo::netns`] where a local node has its network
//! namespace. The firewall and the TCP probes ask [`lookup`] whether a place is remote and,
//! if so, run their iptables commands and probes on that host over SSH instead of inside a
//! namespace. Node processes ([`crate::cluster`]) go through the lifecycle functions here:
//! start with a pid file, signals to the process group, state from `/proc` on the host.
//!
//! On each host a run owns `<dir>/stasis-<run>/` (node directories with data, log and pid
//! file, and the uploaded `stasis-node`) and two iptables chains, `stasis-in` and
//! `stasis-out`, jumped to from INPUT and OUTPUT. The run removes both at its end (after
//! fetching every node directory into the local run directory); `stasis clean --hosts`
//! removes them after a controller died. A run that shapes the network also uploads
//! `stasis` and runs its packet delayer agent ([`crate::netfault::agent`], pid file in
//! `<run dir>/netfault/`), whose chain `stasis-net` (jumped to from OUTPUT) the agent
//! removes when its session ends, and `stasis clean --hosts` after an agent was killed.
//! A run that faults disks runs `stasis diskfault-agent` per node ([`crate::diskfs::agent`],
//! pid file in `<run dir>/<node>-disk-agent/`), which mounts the disk-fault filesystem
//! (source `stasis-<agent pid>-<node>`) over the node's data directory and unmounts it
//! when its session ends; `stasis clean --hosts` detaches the mounts of a killed agent.
//! [`session`] is the line protocol both agents speak.

pub mod hosts;
pub mod session;
pub mod ssh;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use hosts::{HostSpec, HostsFile};
use ssh::{ControlDir, Ssh, one_line};

/// Places of remote nodes start with this (`ssh:n1`).
pub const PLACE_PREFIX: &str = "ssh:";
/// Our iptables chains on the hosts (INPUT jumps to the first, OUTPUT to the second).
pub const CHAIN_IN: &str = "stasis-in";
pub const CHAIN_OUT: &str = "stasis-out";
/// The packet delayer's chain, on a host as in a local namespace (OUTPUT jumps to it). It is
/// named here, with the other chains Stasis makes, so this host layer (`stasis clean
/// --hosts`, doctor) does not depend on the delayer that uses it (netfault::queue).
pub const CHAIN_NET: &str = "stasis-net";

/// Remote places currently in use: place -> host transport.
static PLACES: Mutex<BTreeMap<String, Arc<Ssh>>> = Mutex::new(BTreeMap::new());

/// The host behind a place, if the place is a remote one.
pub fn lookup(place: &str) -> Option<Arc<Ssh>> {
    if !place.starts_with(PLACE_PREFIX) {
        return None;
    }
    PLACES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(place)
        .cloned()
}

/// The hosts of one `--hosts` file with their shared SSH connections.
pub struct Remote {
    pub file: HostsFile,
    pub hosts: Vec<Arc<Ssh>>,
    places: Vec<String>,
    control: ControlDir,
}

impl Remote {
    /// Loads the hosts file and opens one master connection per host (in parallel);
    /// every host must answer.
    pub fn connect(path: &Path) -> Result<Remote> {
        let remote = Remote::open(path)?;
        remote.each(|_, h| h.run(&["true"]).map(|_| ()))?;
        Ok(remote)
    }

    /// Loads the hosts file; connections open on first use.
    pub fn open(path: &Path) -> Result<Remote> {
        let file = HostsFile::load(path)?;
        let control = ControlDir::create()?;
        let hosts: Vec<Arc<Ssh>> = file
            .hosts
            .iter()
            .enumerate()
            .map(|(k, h)| {
                Arc::new(Ssh::new(
                    h.clone(),
                    control.path.join(format!("h{}", k + 1)),
                    file.host_key_checking,
                    file.known_hosts.clone(),
                ))
            })
            .collect();
        Ok(Remote {
            file,
            hosts,
            places: Vec::new(),
            control,
        })
    }

    /// Runs `f` on every host in parallel; every host is attempted, the errors are joined
    /// into one line naming the hosts.
    pub fn each<T: Send>(&self, f: impl Fn(usize, &Ssh) -> Result<T> + Sync) -> Result<Vec<T>> {
        let results: Vec<Result<T>> = std::thread::scope(|s| {
            let hs: Vec<_> = self
                .hosts
                .iter()
                .enumerate()
                .map(|(k, h)| {
                    let f = &f;
                    s.spawn(move || f(k, h))
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("host thread panicked")))
                })
                .collect()
        });
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for (k, r) in results.into_iter().enumerate() {
            match r {
                Ok(v) => ok.push(v),
                Err(e) => errors.push(format!(
                    "host {} ({}): {e:#}",
                    k + 1,
                    self.hosts[k].spec.address
                )),
            }
        }
        if errors.is_empty() {
            Ok(ok)
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    /// Gives node `names[k]` host `k`: registers the places `ssh:<name>` and returns them.
    pub fn assign(&mut self, names: &[&str]) -> Result<Vec<(String, Ipv4Addr)>> {
        if names.len() > self.hosts.len() {
            bail!(
                "{} nodes need {} hosts, the hosts file has {} (one node per host)",
                names.len(),
                names.len(),
                self.hosts.len()
            );
        }
        let mut places = PLACES.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (k, n) in names.iter().enumerate() {
            let place = format!("{PLACE_PREFIX}{n}");
            if places.contains_key(&place) {
                bail!("node {n} is already placed on a remote host by another run in this process");
            }
            places.insert(place.clone(), self.hosts[k].clone());
            self.places.push(place.clone());
            out.push((place, self.hosts[k].spec.address));
        }
        Ok(out)
    }

    /// The control socket directory (for tests and messages).
    pub fn control_dir(&self) -> &Path {
        &self.control.path
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let mut places = PLACES.lock().unwrap_or_else(|e| e.into_inner());
        for p in &self.places {
            places.remove(p);
        }
        drop(places);
        for h in &self.hosts {
            h.close();
        }
    }
}

/// The directory a run owns on a host: `<dir>/stasis-<tag>`.
pub fn run_dir(spec: &HostSpec, tag: &str) -> String {
    format!("{}/stasis-{tag}", spec.dir)
}

/// Creates the run directory (and node directories below it).
pub fn make_dir(h: &Ssh, dir: &str) -> Result<()> {
    h.run(&["mkdir", "-p", "--", dir]).map(|_| ())
}

/// Starts `program args` on the host in `node_dir` (cwd), in a new session (its own
/// process group), stdin from /dev/null, stdout and stderr appended to `node_dir/node.log`,
/// with `env` set; waits for its pid file and returns the pid.
pub fn start(
    h: &Ssh,
    node_dir: &str,
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<u32> {
    const SCRIPT: &str = r#"d=$1; shift
mkdir -p "$d/data" && cd "$d" || exit 1
rm -f "$d/pid"
setsid sh -c 'echo $$ > pid; exec env "$@"' stasis "$@" </dev/null >>"$d/node.log" 2>&1 &
i=0
while [ ! -s "$d/pid" ]; do
  i=$((i+1)); if [ $i -gt 500 ]; then echo "no pid file after 5 s" >&2; exit 1; fi
  sleep 0.01
done
cat "$d/pid""#;
    let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.iter().any(|p| p.starts_with('=')) || program.contains('=') {
        bail!("cannot start {program}: empty environment name or '=' in the program path");
    }
    let mut a: Vec<&str> = vec![node_dir];
    a.extend(pairs.iter().map(String::as_str));
    a.push(program);
    a.extend(args.iter().map(String::as_str));
    let out = h.script_ok(&format!("starting {program}"), SCRIPT, &a)?;
    out.trim()
        .parse()
        .map_err(|_| anyhow!("{}: bad pid file content {:?}", h.target(), out.trim()))
}

/// State letter and start time (clock ticks since boot) of a process on the host, `None`
/// if it does not exist.
pub fn stat(h: &Ssh, pid: u32) -> Result<Option<(char, u64)>> {
    let r = h.script(r#"cat "/proc/$1/stat" 2>/dev/null"#, &[&pid.to_string()])?;
    if r.code != 0 {
        return Ok(None);
    }
    Ok(parse_stat(&r.stdout))
}

fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let state = rest.chars().next()?;
    let start = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether a process (not a zombie) with this pid runs on the host.
pub fn alive(h: &Ssh, pid: u32) -> Result<bool> {
    Ok(matches!(stat(h, pid)?, Some((s, _)) if s != 'Z'))
}

/// Waits on the host until `pid` is in a state accepted by `want_state` shell test.
const WAIT_STATE: &str = r#"pid=$1; want=$2; i=0
while :; do
  s=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
  case "$want" in
    gone) if [ -z "$s" ] || [ "$s" = Z ]; then exit 0; fi ;;
    T) if [ "$s" = T ]; then exit 0; fi ;;
  esac
  i=$((i+1)); if [ $i -gt 300 ]; then echo "state ${s:-gone}" >&2; exit 1; fi
  sleep 0.01
done"#;

/// Sends `signal` (a name: KILL, STOP, CONT, TERM) to the process group `pid` on the
/// host. A group that is already gone is not an error.
pub fn signal(h: &Ssh, pid: u32, signal: &str) -> Result<()> {
    let group = format!("-{pid}");
    let r = h.exec(&["kill", "-s", signal, "--", &group], None)?;
    if r.code != 0 && alive(h, pid)? {
        bail!(
            "{}: kill -s {signal} -- {group}: {}",
            h.target(),
            one_line(&r.stderr)
        );
    }
    Ok(())
}

/// SIGKILLs the process group and waits until the process is gone.
pub fn kill9(h: &Ssh, pid: u32) -> Result<()> {
    signal(h, pid, "KILL")?;
    h.script_ok(
        &format!("waiting for pid {pid} to die"),
        WAIT_STATE,
        &[&pid.to_string(), "gone"],
    )?;
    Ok(())
}

/// SIGSTOPs the process group and waits until the process is in state T.
pub fn pause(h: &Ssh, pid: u32) -> Result<()> {
    signal(h, pid, "STOP")?;
    h.script_ok(
        &format!("pid {pid} entering state T after SIGSTOP"),
        WAIT_STATE,
        &[&pid.to_string(), "T"],
    )?;
    Ok(())
}

/// Writes `content` to `path` on the host atomically (beside it, then renamed), so a
/// reader never sees half of it.
pub fn write_file(h: &Ssh, path: &str, content: &str) -> Result<()> {
    let r = h.exec(
        &[
            "sh",
            "-c",
            r#"cat > "$1.tmp" && mv -f "$1.tmp" "$1""#,
            "stasis",
            path,
        ],
        Some(content.as_bytes()),
    )?;
    if r.code != 0 {
        bail!(
            "{}: cannot write {path}: {}",
            h.target(),
            one_line(&r.stderr)
        );
    }
    Ok(())
}

/// Creates (or empties) our chains and makes INPUT and OUTPUT jump to them first.
pub fn install_chains(h: &Ssh) -> Result<()> {
    const SCRIPT: &str = r#"for c in "$1" "$2"; do
  iptables -w -N "$c" 2>/dev/null || iptables -w -F "$c" || exit 1
done
iptables -w -C INPUT -j "$1" 2>/dev/null || iptables -w -I INPUT 1 -j "$1" || exit 1
iptables -w -C OUTPUT -j "$2" 2>/dev/null || iptables -w -I OUTPUT 1 -j "$2" || exit 1"#;
    h.script_ok(
        "creating the iptables chains",
        SCRIPT,
        &[CHAIN_IN, CHAIN_OUT],
    )
    .map(|_| ())
}

/// Removes our chains and the jumps to them (every copy), the packet delayer's chain
/// included; fails if a chain survives.
pub fn remove_chains(h: &Ssh) -> Result<()> {
    const SCRIPT: &str = r#"while iptables -w -D INPUT -j "$1" 2>/dev/null; do :; done
while iptables -w -D OUTPUT -j "$2" 2>/dev/null; do :; done
while iptables -w -D OUTPUT -j "$3" 2>/dev/null; do :; done
for c in "$1" "$2" "$3"; do
  if iptables -w -S "$c" >/dev/null 2>&1; then
    iptables -w -F "$c" && iptables -w -X "$c" || exit 1
  fi
done"#;
    h.script_ok(
        "removing the iptables chains",
        SCRIPT,
        &[CHAIN_IN, CHAIN_OUT, CHAIN_NET],
    )
    .map(|_| ())
}

/// Which of our chains exist on the host.
pub fn chains_present(h: &Ssh) -> Result<Vec<String>> {
    let out = h.script_ok(
        "listing iptables chains",
        r#"for c in "$@"; do iptables -w -S "$c" >/dev/null 2>&1 && echo "$c"; done; true"#,
        &[CHAIN_IN, CHAIN_OUT, CHAIN_NET],
    )?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// TCP probes run on the host, all at once: for each target, whether a connection gets
/// an answer within `timeout` (accepted or refused: reachable; silence or an ICMP error:
/// not). Needs bash (`/dev/tcp`) and coreutils' `timeout` on the host.
pub fn probe(h: &Ssh, targets: &[SocketAddr], timeout: Duration) -> Result<Vec<bool>> {
    const SCRIPT: &str = r#"t=$1; shift; k=0
for target in "$@"; do
  (
    err=$(timeout "$t" bash --norc --noprofile -c 'exec 3<>"/dev/tcp/$0/$1"' "${target%:*}" "${target##*:}" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then echo "$k up"
    else case "$err" in *refused*) echo "$k up" ;; *) echo "$k down" ;; esac
    fi
  ) &
  k=$((k+1))
done
wait"#;
    let t = format!("{:.3}", timeout.as_secs_f64());
    let ts: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let mut a: Vec<&str> = vec![&t];
    a.extend(ts.iter().map(String::as_str));
    let out = h.script_ok("TCP probes", SCRIPT, &a)?;
    let mut seen: Vec<Option<bool>> = vec![None; targets.len()];
    for line in out.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        if let Ok(k) = k.parse::<usize>()
            && k < seen.len()
        {
            seen[k] = Some(v == "up");
        }
    }
    seen.into_iter()
        .enumerate()
        .map(|(k, s)| {
            s.ok_or_else(|| anyhow!("{}: no result for the probe of {}", h.target(), targets[k]))
        })
        .collect()
}

/// Runs an iptables argv (starting with `iptables`) on the host.
pub fn iptables(h: &Ssh, argv: &[&str]) -> Result<String> {
    h.run(argv)
}

/// What `stasis clean --hosts` removed on one host.
#[derive(Debug, Default)]
pub struct HostCleaned {
    pub processes: usize,
    pub dirs: usize,
    pub chains: usize,
    /// Disk-fault filesystems (`stasis diskfault-agent`) detached.
    pub mounts: usize,
}

/// Prints the mount points of our FUSE mounts (source `stasis-*`) under directory `$1`
/// on the host, as /proc/mounts writes them (octal escapes). Shell, so no tool beyond
/// sh is needed on the host.
const MOUNTS_UNDER: &str = r#"stasis_mounts() {
  while read -r src mp fs rest; do
    case "$src" in stasis-*) ;; *) continue ;; esac
    case "$fs" in fuse*) ;; *) continue ;; esac
    case "$mp" in "$1"/*) echo "$mp" ;; esac
  done < /proc/mounts
}
"#;

/// The disk-fault filesystems mounted under `dir` on the host.
pub fn mounts_under(h: &Ssh, dir: &str) -> Result<Vec<String>> {
    let script = format!("{MOUNTS_UNDER}stasis_mounts \"$1\"");
    Ok(h.script_ok("listing disk-fault mounts", &script, &[dir])?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Removes a run from a host: kills the node processes (and the agents) whose pid file is
/// in the run directory (only if the process's cwd is that directory, so a reused pid is
/// never hit; the process group when the process leads one), detaches the disk-fault
/// filesystems mounted under it (an agent killed outright leaves its mount) and deletes
/// the directory. Returns the processes killed.
pub fn remove_run(h: &Ssh, run_dir: &str) -> Result<usize> {
    const SCRIPT: &str = r#"p=0
for pf in "$1"/*/pid; do
  [ -f "$pf" ] || continue
  pid=$(cat "$pf")
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(cd "${pf%/pid}" && pwd -P)" ]; then
    kill -s CONT -- "-$pid" 2>/dev/null
    if kill -s KILL -- "-$pid" 2>/dev/null || kill -s KILL "$pid" 2>/dev/null; then p=$((p+1)); fi
  fi
done
for mp in $(stasis_mounts "$1"); do
  mp=$(printf '%b' "$mp")
  umount -l -- "$mp" || exit 1
done
rm -rf -- "$1" || exit 1
echo "$p""#;
    let script = format!("{MOUNTS_UNDER}{SCRIPT}");
    let out = h.script_ok("removing the run directory", &script, &[run_dir])?;
    Ok(out.trim().parse().unwrap_or(0))
}

/// Removes everything of Stasis on a host (`stasis clean --hosts`): every run directory
/// under the host's `dir` with its processes ([`remove_run`]) and our chains.
pub fn clean_host(h: &Ssh) -> Result<HostCleaned> {
    let chains = chains_present(h)?.len();
    let dirs = run_dirs(h)?;
    let mut processes = 0;
    let mut mounts = 0;
    for d in &dirs {
        mounts += mounts_under(h, d)?.len();
        processes += remove_run(h, d)?;
    }
    remove_chains(h)?;
    Ok(HostCleaned {
        processes,
        dirs: dirs.len(),
        chains,
        mounts,
    })
}

/// The run directories on a host (`<dir>/stasis-*`).
pub fn run_dirs(h: &Ssh) -> Result<Vec<String>> {
    Ok(h.script_ok(
        "listing run directories",
        r#"for rd in "$1"/stasis-*; do [ -e "$rd" ] && echo "$rd"; done; true"#,
        &[&h.spec.dir],
    )?
    .lines()
    .map(str::to_owned)
    .collect())
}

/// Leftovers of Stasis on a host: run directories, disk-fault mounts and chains.
pub fn leftovers(h: &Ssh) -> Result<Vec<String>> {
    let mut out = run_dirs(h)?;
    out.extend(
        mounts_under(h, &h.spec.dir)?
            .into_iter()
            .map(|m| format!("disk-fault mount {m}")),
    );
    out.extend(
        chains_present(h)?
            .into_iter()
            .map(|c| format!("iptables chain {c}")),
    );
    Ok(out)
}

/// The host's wall clock minus this one's, in ms (half the round trip corrected).
pub fn clock_offset_ms(h: &Ssh) -> Result<f64> {
    let before = std::time::SystemTime::now();
    let t0 = Instant::now();
    let out = h.run(&["date", "+%s.%N"])?;
    let rtt = t0.elapsed();
    let remote: f64 = out
        .trim()
        .parse()
        .map_err(|_| anyhow!("{}: date printed {:?}", h.target(), out.trim()))?;
    let mid = before + rtt / 2;
    let local = mid
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Ok((remote - local) * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_after_the_command_name() {
        let line = "1234 (stasis node) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 5 0 98765 1000 10 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn places_are_only_remote_with_the_prefix() {
        assert!(lookup("stasis-r5-n1").is_none());
        assert!(lookup("ssh:nobody-here").is_none());
    }
}
