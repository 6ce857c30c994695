//! Node processes: start, kill, pause, resume, restart, stop.
//!
//! Each node runs in its own network namespace (entered with `setns` between fork and
//! exec, so the node's PID is the one we hold) and in its own process group, with stdout
//! and stderr appended to `<run>/<node>/node.log`. Signals go to the process group. Nodes
//! that may have their clock moved run under libfaketime with a per-node control file
//! (see [`crate::faketime`]); the monotonic clock is never faked.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::net::{Topology, netns_path};
use crate::nodes::{Launcher, NodeInfo};
use crate::runstate::{proc_start_time, proc_state};
use crate::sut::Protocol;

struct NodeProc {
    info: NodeInfo,
    child: Option<Child>,
    paused: bool,
    /// Set when the node runs on a remote host (`--hosts`).
    remote: Option<RemoteProc>,
}

/// A node on a remote host: the host, its node directory there, and the running pid.
struct RemoteProc {
    host: std::sync::Arc<crate::remote::ssh::Ssh>,
    dir: String,
    /// The local program path to replace by its uploaded copy (stasis-node).
    upload: Option<(PathBuf, String)>,
    /// The host's libfaketime, when the node's clock may be moved.
    faketime: Option<String>,
    /// The uploaded `stasis` on the host, for the disk-fault agent.
    stasis: Option<String>,
    pid: Option<u32>,
}

/// A set of node processes over a topology.
pub struct Cluster<'t> {
    topo: &'t Topology,
    nodes: Vec<NodeProc>,
    launcher: Launcher,
    /// How to talk to the nodes (clients, leader and clock probes).
    pub protocol: Protocol,
    /// libfaketime to preload, when the system can run under it.
    faketime: Option<PathBuf>,
    /// How to change the voter set (the spec's `[membership]`), for the membership nemesis.
    pub membership: Option<crate::sut::Membership>,
    /// The disk-fault filesystems over the nodes' data directories (empty unless
    /// [`Cluster::mount_disks`] was called), here or by agents on the nodes' hosts;
    /// unmounted after the nodes stop.
    disks: Vec<crate::diskfs::Disk>,
    /// The packet delayer, when the run has a baseline latency or the net nemesis.
    pub shaper: Option<crate::netfault::Shaper>,
}

impl<'t> Cluster<'t> {
    /// Prepares (does not start) one node per topology host; the last `spares` hosts are
    /// spare nodes, the others the initial voters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topo: &'t Topology,
        spares: usize,
        run_dir: &Path,
        client_port: u16,
        peer_port: u16,
        launcher: Launcher,
        protocol: Protocol,
        faketime: Option<PathBuf>,
    ) -> Result<Cluster<'t>> {
        let mut nodes = Vec::new();
        let voters = topo.hosts.len().saturating_sub(spares);
        for (k, h) in topo.hosts.iter().enumerate() {
            let dir = run_dir.join(&h.name);
            fs::create_dir_all(dir.join("data"))
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let info = NodeInfo {
                name: h.name.clone(),
                addr: h.addr,
                client_port,
                peer_port,
                netns: h.netns.clone(),
                dir,
                spare: k >= voters,
                aux: None,
            };
            if faketime.is_some() {
                crate::faketime::write_control(&info.faketime_file(), 0.0, 1.0)?;
            }
            nodes.push(NodeProc {
                info,
                child: None,
                paused: false,
                remote: None,
            });
        }
        Ok(Cluster {
            topo,
            nodes,
            launcher,
            protocol,
            faketime,
            membership: None,
            disks: Vec::new(),
            shaper: None,
        })
    }

    /// Makes node `i` run on a remote host, in `dir` there; `upload` maps a local program
    /// path to its uploaded copy; `faketime` is the host's libfaketime when the node's
    /// clock may be moved; `stasis` the uploaded `stasis` there, when the node's disk may
    /// be faulted. Call before the node starts.
    pub fn place_remote(
        &mut self,
        i: usize,
        host: std::sync::Arc<crate::remote::ssh::Ssh>,
        dir: String,
        upload: Option<(PathBuf, String)>,
        faketime: Option<String>,
        stasis: Option<String>,
    ) {
        self.nodes[i].remote = Some(RemoteProc {
            host,
            dir,
            upload,
            faketime,
            stasis,
            pid: None,
        });
    }

    /// The remote host and node directory of node `i`, if it runs remotely.
    pub fn remote_of(&self, i: usize) -> Option<(&crate::remote::ssh::Ssh, &str)> {
        self.nodes[i]
            .remote
            .as_ref()
            .map(|r| (r.host.as_ref(), r.dir.as_str()))
    }

    /// Mounts a disk-fault filesystem over every node's data directory (backing state in
    /// `<node>/disk/`): here for a local node, by `stasis diskfault-agent` on the host for
    /// a remote one (its pid file in `<node>-disk-agent/` there, its messages in
    /// `<run>/<node>-disk-agent.log` here). Call before the nodes start.
    pub fn mount_disks(&mut self) -> Result<()> {
        use crate::diskfs::{Disk, agent::DiskAgent};
        let mounted: Vec<Result<Disk>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .nodes
                .iter()
                .map(|n| {
                    s.spawn(move || match &n.remote {
                        None => crate::diskfs::mount_node(
                            &n.info.dir.join("disk"),
                            &n.info.data_dir(),
                            &n.info.name,
                        )
                        .map(Disk::Local),
                        Some(r) => {
                            let bin = r.stasis.as_deref().with_context(|| {
                                format!(
                                    "stasis was not uploaded to {} for the disk-fault agent",
                                    r.host.target()
                                )
                            })?;
                            let log = n
                                .info
                                .dir
                                .with_file_name(format!("{}-disk-agent.log", n.info.name));
                            DiskAgent::start(
                                &r.host,
                                &format!("{}-disk-agent", r.dir),
                                bin,
                                &r.dir,
                                &n.info.name,
                                &log,
                            )
                            .map(Disk::Remote)
                            .with_context(|| {
                                format!(
                                    "cannot mount {}'s disk-fault filesystem on {} (FUSE there: `stasis doctor --hosts` checks it)",
                                    n.info.name,
                                    r.host.target()
                                )
                            })
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("mount thread panicked")))
                })
                .collect()
        });
        // Dropping what did mount (on an error) unmounts it.
        for m in mounted {
            self.disks.push(m?);
        }
        Ok(())
    }

    /// Node `i`'s disk-fault filesystem, if mounted.
    pub fn disk(&self, i: usize) -> Option<&crate::diskfs::Disk> {
        self.disks.get(i)
    }

    pub fn infos(&self) -> Vec<NodeInfo> {
        self.nodes.iter().map(|n| n.info.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.info.name == name)
    }

    /// Indices of the initial voters (every node that is not a spare or auxiliary).
    pub fn initial_voters(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| !self.nodes[i].info.spare && self.nodes[i].info.aux.is_none())
            .collect()
    }

    /// Makes host `i` an auxiliary process of group `group` listening on `port` (see
    /// [`crate::auxiliary`]). Call before the processes start.
    pub fn set_aux(&mut self, i: usize, group: &str, port: u16) {
        let info = &mut self.nodes[i].info;
        info.aux = Some(group.to_owned());
        info.spare = false;
        info.client_port = port;
        info.peer_port = port;
    }

    /// Whether host `i` is an auxiliary process rather than a node.
    pub fn is_aux(&self, i: usize) -> bool {
        self.nodes[i].info.aux.is_some()
    }

    /// Whether the cluster has spare nodes.
    pub fn has_spares(&self) -> bool {
        self.nodes.iter().any(|n| n.info.spare)
    }

    pub fn info(&self, i: usize) -> &NodeInfo {
        &self.nodes[i].info
    }

    /// Whether every node runs under libfaketime (its own host's, for remote nodes).
    pub fn has_faketime(&self) -> bool {
        !self.nodes.is_empty()
            && self.nodes.iter().all(|n| match &n.remote {
                Some(r) => r.faketime.is_some(),
                None => self.faketime.is_some(),
            })
    }

    /// Node `i`'s faketime control file, where its host has it.
    pub fn clock_control(&self, i: usize) -> crate::faketime::Control {
        let n = &self.nodes[i];
        match &n.remote {
            Some(r) => crate::faketime::Control::Remote {
                host: r.host.clone(),
                path: format!("{}/faketime.rc", r.dir),
            },
            None => crate::faketime::Control::Local(n.info.faketime_file()),
        }
    }

    /// Moves node `i`'s wall clock by `offset_secs` at `rate` (1.0: real speed); the node
    /// must run under libfaketime ([`Cluster::has_faketime`]).
    pub fn set_clock(&self, i: usize, offset_secs: f64, rate: f64) -> Result<()> {
        self.clock_control(i)
            .write(offset_secs, rate)
            .with_context(|| format!("moving {}'s clock", self.nodes[i].info.name))
    }

    /// The PID of node `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        if let Some(r) = &self.nodes[i].remote {
            return r.pid;
        }
        self.nodes[i].child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        if let Some(r) = &self.nodes[i].remote {
            let Some(pid) = r.pid else { return false };
            return match crate::remote::alive(&r.host, pid) {
                Ok(alive) => alive,
                Err(e) => {
                    tracing::warn!("{}: {e:#}", self.nodes[i].info.name);
                    false
                }
            };
        }
        match self.nodes[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// Starts node `i` (its data dir is kept across restarts).
    pub fn start(&mut self, i: usize) -> Result<u32> {
        if self.is_running(i) {
            bail!("{} is already running", self.nodes[i].info.name);
        }
        if self.nodes[i].remote.is_some() {
            return self.start_remote(i);
        }
        let infos = self.infos();
        let info = &self.nodes[i].info;
        let launch = (self.launcher)(info, &infos);
        for (path, text) in &launch.files {
            if !path.exists() {
                fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(info.log_path())
            .with_context(|| format!("cannot open {}", info.log_path().display()))?;
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        if let Some(lib) = &self.faketime {
            cmd.envs(crate::faketime::env(
                &lib.display().to_string(),
                &info.faketime_file().display().to_string(),
            ));
        }
        let ns = File::open(netns_path(&info.netns))
            .with_context(|| format!("namespace {} is gone", info.netns))?;
        let fd = ns.as_raw_fd();
        // SAFETY: between fork and exec we only call setns(2) and close_range(2), which
        // are async-signal-safe, on a descriptor that stays open until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                // The node must not inherit the harness's descriptors (stdio is already
                // in place): a packet delayer's netlink socket held open by a node would
                // keep its queue bound after the harness dies, and --queue-bypass would
                // never let traffic through. Best effort: kernels before 5.11 lack it.
                nix::libc::syscall(
                    nix::libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    nix::libc::CLOSE_RANGE_CLOEXEC,
                );
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} ({}): is it built and executable?",
                info.name,
                launch.program.display()
            )
        })?;
        drop(ns);
        let pid = child.id();
        tracing::info!(node = %info.name, pid, "started");
        self.topo.register_process(pid)?;
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
        Ok(pid)
    }

    /// Starts remote node `i`: the launch command rendered with the node directories on
    /// the hosts, its files written there, the process started over SSH.
    fn start_remote(&mut self, i: usize) -> Result<u32> {
        // Every node's directory as the hosts see it ({data_dir} and friends).
        let infos: Vec<NodeInfo> = self
            .nodes
            .iter()
            .map(|n| {
                let mut info = n.info.clone();
                if let Some(r) = &n.remote {
                    info.dir = PathBuf::from(&r.dir);
                }
                info
            })
            .collect();
        let name = self.nodes[i].info.name.clone();
        let r = self.nodes[i].remote.as_ref().expect("remote node");
        let mut launch = (self.launcher)(&infos[i], &infos);
        if let Some((local, remote)) = &r.upload
            && &launch.program == local
        {
            launch.program = PathBuf::from(remote);
        }
        if let Some(lib) = &r.faketime {
            // The control file starts at real time (written once: a restarted node keeps
            // the clock a running fault gave it, as locally).
            let control = infos[i].faketime_file();
            launch
                .env
                .extend(crate::faketime::env(lib, &control.display().to_string()));
            launch
                .files
                .push((control, crate::faketime::control_line(0.0, 1.0)));
        }
        for (path, text) in &launch.files {
            let path = path.display().to_string();
            r.host.exec(
                &[
                    "sh",
                    "-c",
                    r#"mkdir -p "${1%/*}" && { [ -e "$1" ] || cat > "$1"; }"#,
                    "stasis",
                    &path,
                ],
                Some(text.as_bytes()),
            )?;
        }
        let pid = crate::remote::start(
            &r.host,
            &r.dir,
            &launch.program.display().to_string(),
            &launch.args,
            &launch.env,
        )
        .with_context(|| format!("cannot start {name} on {}", r.host.target()))?;
        tracing::info!(node = %name, pid, host = %r.host.target(), "started");
        let n = &mut self.nodes[i];
        if let Some(r) = n.remote.as_mut() {
            r.pid = Some(pid);
        }
        n.paused = false;
        Ok(pid)
    }

    /// SIGKILLs node `i`'s process group and reaps it. Returns the old PID.
    pub fn kill(&mut self, i: usize) -> Result<Option<u32>> {
        if let Some(r) = self.nodes[i].remote.as_mut() {
            let Some(pid) = r.pid else { return Ok(None) };
            crate::remote::kill9(&r.host, pid)?;
            r.pid = None;
            self.nodes[i].paused = false;
            return Ok(Some(pid));
        }
        let Some(mut child) = self.nodes[i].child.take() else {
            return Ok(None);
        };
        let pid = child.id();
        let pg = Pid::from_raw(pid as i32);
        let _ = killpg(pg, Signal::SIGKILL);
        // A stopped process still dies from SIGKILL; reap it.
        let _ = child.wait();
        self.nodes[i].paused = false;
        self.topo.unregister_process(pid)?;
        Ok(Some(pid))
    }

    /// SIGSTOPs node `i`'s process group and waits until the kernel reports it stopped.
    pub fn pause(&mut self, i: usize) -> Result<u32> {
        let pid = self
            .pid(i)
            .with_context(|| format!("{} is not running", self.nodes[i].info.name))?;
        if let Some(r) = &self.nodes[i].remote {
            crate::remote::pause(&r.host, pid)?;
            self.nodes[i].paused = true;
            return Ok(pid);
        }
        killpg(Pid::from_raw(pid as i32), Signal::SIGSTOP)
            .with_context(|| format!("SIGSTOP {}", self.nodes[i].info.name))?;
        self.nodes[i].paused = true;
        let deadline = Instant::now() + Duration::from_secs(2);
        while proc_state(pid) != Some('T') {
            if Instant::now() > deadline {
                bail!(
                    "{} (pid {pid}) did not enter state T after SIGSTOP (state {:?})",
                    self.nodes[i].info.name,
                    proc_state(pid)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(pid)
    }

    /// SIGCONTs node `i`'s process group.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        if let Some(r) = &self.nodes[i].remote {
            if let Some(pid) = r.pid {
                crate::remote::signal(&r.host, pid, "CONT")?;
            }
        } else if let Some(pid) = self.pid(i) {
            killpg(Pid::from_raw(pid as i32), Signal::SIGCONT)
                .with_context(|| format!("SIGCONT {}", self.nodes[i].info.name))?;
        }
        self.nodes[i].paused = false;
        Ok(())
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// Resumes and gracefully stops every node: SIGTERM, then SIGKILL after `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        for i in 0..self.nodes.len() {
            let _ = self.resume(i);
            if let Some(r) = &self.nodes[i].remote {
                if let Some(pid) = r.pid {
                    let _ = crate::remote::signal(&r.host, pid, "TERM");
                }
            } else if let Some(pid) = self.pid(i) {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for i in 0..self.nodes.len() {
            while self.is_running(i) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.kill(i);
        }
    }

    /// Start time of node `i`'s process (to prove a restart made a new process).
    pub fn start_time(&self, i: usize) -> Option<u64> {
        if let Some(r) = &self.nodes[i].remote {
            let pid = r.pid?;
            return crate::remote::stat(&r.host, pid)
                .ok()
                .flatten()
                .map(|(_, t)| t);
        }
        self.pid(i).and_then(proc_start_time)
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(3));
    }
}
