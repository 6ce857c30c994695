//! One namespace's packet delayer: iptables rules that send the namespace's outgoing
//! peer traffic to NFQUEUE queue 0, and a thread inside the namespace that holds each
//! packet for the fate [`Sched`] draws, then accepts it, drops it, or sends a copy.
//!
//! Netlink queue crate: `nfq` (pure Rust over libc, no C library to install): it keeps
//! messages valid after later `recv`s, so verdicts can be given out of order, which is the
//! whole point of a delayer; it batches receives, sets marks, fail-open and queue length,
//! and has a non-blocking mode. The bindings to libnetfilter_queue need the C library and
//! its headers on every machine and hand out packets only inside a callback.
//!
//! Rules live in a chain of our own, `stasis-net`, jumped to from OUTPUT, so removing them
//! never touches any other rule: `-d <peer> -m mark ! --mark 0x5354 -j NFQUEUE
//! --queue-num 0 --queue-bypass`. `--queue-bypass` makes the kernel accept packets when no
//! program is bound to the queue, so a harness that dies never blackholes the cluster; the
//! namespace (and with it the chain) is removed by teardown or `stasis clean`.
//!
//! Duplicates: `NF_REPEAT` re-injects the same packet, not a copy, so the delayer accepts
//! the packet and sends a copy of its bytes through a raw socket (IP_HDRINCL) marked
//! 0x5354, which the rule lets through. The copy's TCP/UDP checksum is computed here: a
//! queued packet may carry only a partial checksum (offload).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nfq::{Message, Queue, Verdict};
use nix::libc;
use nix::sched::{CloneFlags, setns};

use super::sched::{Fate, LinkSpec, Pending, Sched};
use crate::net;

/// The chain our rules live in (one per namespace or host), named with the other chains
/// of Stasis in [`crate::remote`].
pub const CHAIN: &str = crate::remote::CHAIN_NET;
/// Mark of packets the delayer injects itself (duplicates): the rule skips them.
pub const MARK: u32 = 0x5354;
const QUEUE: u16 = 0;
/// Longest the loop sleeps while packets may arrive.
const TICK: Duration = Duration::from_micros(500);

/// Counters of one delayer, readable while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    /// Most packets held at once.
    pub max_held: AtomicU64,
    /// CPU time of the delayer thread, microseconds (updated about once a second and at
    /// exit).
    pub cpu_us: AtomicU64,
}

/// Shared between the owner and the thread: the link specs and a change counter.
struct Control {
    specs: Mutex<BTreeMap<Ipv4Addr, LinkSpec>>,
    generation: AtomicU64,
    stop: AtomicBool,
}

/// A running delayer in one namespace (`None`: this process's own namespace, as the
/// remote agent runs it on a host).
pub struct Delayer {
    pub netns: Option<String>,
    peers: Vec<Ipv4Addr>,
    control: Arc<Control>,
    pub stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
    rules: bool,
}

impl Delayer {
    /// Starts the thread (bound to the queue), then adds the rules for `peers`.
    pub fn start(netns: Option<&str>, peers: &[Ipv4Addr], seed: u64) -> Result<Delayer> {
        let control = Arc::new(Control {
            specs: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let stats = Arc::new(Stats::default());
        let handle =
            match netns {
                Some(ns) => {
                    let path = net::netns_path(ns);
                    Some(std::fs::File::open(&path).with_context(|| {
                        format!("namespace {ns} not found ({})", path.display())
                    })?)
                }
                None => None,
            };
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let (c, s) = (control.clone(), stats.clone());
        let ns = where_(netns);
        let thread = std::thread::Builder::new()
            .name(format!("delayer-{}", netns.unwrap_or("host")))
            .spawn(move || {
                let entered = match &handle {
                    Some(h) => setns(h.as_fd(), CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("cannot enter {ns}")),
                    None => Ok(()),
                };
                let setup = entered.and_then(|_| open_queue().with_context(|| format!("in {ns}")));
                match setup {
                    Ok((queue, raw)) => {
                        let _ = tx.send(Ok(()));
                        run(queue, raw, &c, &s, seed);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .context("cannot start a delayer thread")?;
        let ready = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow!("the delayer in {} did not start", where_(netns)))?;
        let mut d = Delayer {
            netns: netns.map(str::to_owned),
            peers: peers.to_vec(),
            control,
            stats,
            thread: Some(thread),
            rules: false,
        };
        ready?;
        d.rules = true;
        add_rules(netns, peers)?;
        Ok(d)
    }

    /// Sets the outgoing links of this namespace: destination -> spec. Destinations not
    /// named pass without delay.
    pub fn set(&self, specs: BTreeMap<Ipv4Addr, LinkSpec>) {
        *self.control.specs.lock().unwrap_or_else(|p| p.into_inner()) = specs;
        self.control.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes the rules, then releases every held packet and stops the thread (unbinding
    /// the queue). Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        if self.rules {
            self.rules = false;
            if let Err(e) = remove_rules(self.netns.as_deref()) {
                errors.push(format!("{e:#}"));
            }
        }
        self.control.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            errors.push(format!(
                "the delayer thread in {} panicked",
                where_(self.netns.as_deref())
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    pub fn peers(&self) -> &[Ipv4Addr] {
        &self.peers
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!("{e}");
        }
    }
}

/// "namespace NS" or "this host's namespace", for messages.
fn where_(netns: Option<&str>) -> String {
    match netns {
        Some(ns) => format!("namespace {ns}"),
        None => "this host's network namespace".into(),
    }
}

/// Runs an argv inside `netns` (`None`: here).
fn run_at(netns: Option<&str>, argv: &[&str]) -> Result<String> {
    match netns {
        Some(ns) => net::run_in(ns, argv),
        None => net::run(argv),
    }
}

/// Adds the chain, its NFQUEUE rules and the jump from OUTPUT.
pub fn add_rules(netns: Option<&str>, peers: &[Ipv4Addr]) -> Result<()> {
    // A chain left by an earlier delayer in this namespace would duplicate rules.
    let _ = remove_rules(netns);
    run_at(netns, &["iptables", "-w", "-N", CHAIN])?;
    let mark = format!("{MARK:#x}");
    let q = QUEUE.to_string();
    for p in peers {
        let dst = p.to_string();
        run_at(
            netns,
            &[
                "iptables",
                "-w",
                "-A",
                CHAIN,
                "-d",
                &dst,
                "-m",
                "mark",
                "!",
                "--mark",
                &mark,
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
                "--queue-bypass",
            ],
        )?;
    }
    run_at(netns, &["iptables", "-w", "-I", "OUTPUT", "-j", CHAIN])?;
    Ok(())
}

/// Removes the jump and the chain (missing ones are not an error).
pub fn remove_rules(netns: Option<&str>) -> Result<()> {
    if !has_chain(netns)? {
        return Ok(());
    }
    while run_at(netns, &["iptables", "-w", "-D", "OUTPUT", "-j", CHAIN]).is_ok() {}
    run_at(netns, &["iptables", "-w", "-F", CHAIN])?;
    run_at(netns, &["iptables", "-w", "-X", CHAIN])?;
    Ok(())
}

/// Whether the namespace has our chain.
pub fn has_chain(netns: Option<&str>) -> Result<bool> {
    let rules = run_at(netns, &["iptables", "-w", "-S"])?;
    Ok(rules.lines().any(|l| l == format!("-N {CHAIN}")))
}

fn open_queue() -> Result<(Queue, OwnedFd)> {
    let mut q = Queue::open().context("cannot open a netfilter queue socket")?;
    q.bind(QUEUE).context("cannot bind NFQUEUE 0")?;
    q.set_queue_max_len(QUEUE, 65536)
        .context("cannot size the queue")?;
    // No fail-open: with it the kernel accepts a packet at once when the queue or the
    // netlink socket's buffer is full, so a burst would skip its delay or bandwidth cap
    // (seen: a probe burst through a 2 Mbit/s link arriving at 27 Mbit/s). Without it such
    // a packet is dropped, as at a real bottleneck, and TCP resends it. `--queue-bypass`
    // still lets everything through when no delayer is bound.
    q.set_fail_open(QUEUE, false)
        .context("cannot clear fail-open")?;
    q.set_nonblocking(true);
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot open a raw socket");
    }
    // SAFETY: fd is a fresh descriptor we own.
    let raw = unsafe { OwnedFd::from_raw_fd(fd) };
    let mark: libc::c_int = MARK as libc::c_int;
    // SAFETY: setsockopt with a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            raw.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            &mark as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot mark the raw socket");
    }
    Ok((q, raw))
}

enum Held {
    Packet(Message),
    Copy(Vec<u8>, Ipv4Addr),
}

/// Destination address and length of an IPv4 packet.
pub fn ipv4_dst(p: &[u8]) -> Option<Ipv4Addr> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(p[16], p[17], p[18], p[19]))
}

fn thread_cpu_us() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let t =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0,
    }
}

fn run(mut queue: Queue, raw: OwnedFd, control: &Control, stats: &Stats, seed: u64) {
    let epoch = Instant::now();
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut sched = Sched::new(seed);
    let mut generation = u64::MAX;
    let mut pending: Pending<Held> = Pending::default();
    let mut last_cpu = Instant::now();
    let verdict = |queue: &mut Queue, mut m: Message, v: Verdict| {
        m.set_verdict(v);
        if let Err(e) = queue.verdict(m) {
            tracing::debug!("verdict failed: {e}");
        }
    };
    while !control.stop.load(Ordering::Relaxed) {
        let g = control.generation.load(Ordering::SeqCst);
        if g != generation {
            generation = g;
            let specs = control
                .specs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            sched.set_specs(&specs);
        }
        // Take in everything waiting (bounded, so releases are not starved).
        for _ in 0..1024 {
            let msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("queue recv: {e}");
                    break;
                }
            };
            stats.queued.fetch_add(1, Ordering::Relaxed);
            let payload = msg.get_payload();
            let Some(dst) = ipv4_dst(payload) else {
                verdict(&mut queue, msg, Verdict::Accept);
                continue;
            };
            match sched.fate(now_ns(), dst, payload.len()) {
                Fate::Drop => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    verdict(&mut queue, msg, Verdict::Drop);
                }
                Fate::Deliver { at, dup_at } => {
                    if let Some(d) = dup_at {
                        pending.push(d, Held::Copy(payload.to_vec(), dst));
                    }
                    pending.push(at, Held::Packet(msg));
                }
            }
        }
        stats
            .max_held
            .fetch_max(pending.len() as u64, Ordering::Relaxed);
        let now = now_ns();
        while let Some(h) = pending.pop_due(now) {
            release(&mut queue, &raw, h, stats, &verdict);
        }
        if last_cpu.elapsed() > Duration::from_secs(1) {
            stats.cpu_us.store(thread_cpu_us(), Ordering::Relaxed);
            last_cpu = Instant::now();
        }
        let wait = pending
            .next_at()
            .map(|at| Duration::from_nanos(at.saturating_sub(now_ns())))
            .unwrap_or(TICK)
            .min(TICK);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
    // Stopping: the rules are gone; let every held packet go now.
    for h in pending.drain_all() {
        release(&mut queue, &raw, h, stats, &verdict);
    }
    let _ = queue.unbind(QUEUE);
    stats.cpu_us.store(thread_cpu_us(), Ordering::Relaxed);
}

fn release(
    queue: &mut Queue,
    raw: &OwnedFd,
    h: Held,
    stats: &Stats,
    verdict: &impl Fn(&mut Queue, Message, Verdict),
) {
    match h {
        Held::Packet(m) => verdict(queue, m, Verdict::Accept),
        Held::Copy(mut bytes, dst) => {
            fix_l4_checksum(&mut bytes);
            if send_raw(raw, &bytes, dst).is_ok() {
                stats.duplicated.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn send_raw(raw: &OwnedFd, bytes: &[u8], dst: Ipv4Addr) -> std::io::Result<()> {
    // SAFETY: a zeroed sockaddr_in is valid; the fields set are plain integers.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from(dst).to_be();
    // SAFETY: bytes and sa outlive the call; lengths are theirs.
    let r = unsafe {
        libc::sendto(
            raw.as_raw_fd(),
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
            0,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Recomputes the TCP or UDP checksum of an IPv4 packet in place (other protocols and
/// fragments are left alone).
pub fn fix_l4_checksum(p: &mut [u8]) {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    let frag = u16::from_be_bytes([p[6], p[7]]) & 0x3fff;
    if ihl < 20 || total <= ihl || frag != 0 {
        return;
    }
    let proto = p[9];
    let off = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    let seg_len = total - ihl;
    if seg_len < off + 2 {
        return;
    }
    p[ihl + off] = 0;
    p[ihl + off + 1] = 0;
    let mut acc = sum16(&p[12..20], 0);
    acc += u32::from(proto) + seg_len as u32;
    acc = sum16(&p[ihl..total], acc);
    let mut c = fold(acc);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    p[ihl + off..ihl + off + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP packet 10.0.0.1:1000 -> 10.0.0.2:2000 with payload "hi" and the checksum
    /// computed by hand: pseudo header + header + data.
    fn udp_packet() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 10, 0xab, 0xcd, b'h', b'i']);
        p
    }

    #[test]
    fn udp_checksum_matches_a_hand_computation() {
        let mut p = udp_packet();
        fix_l4_checksum(&mut p);
        // Sum of 16-bit words: 0a00+0001+0a00+0002 (addresses) + 0011 + 000a (pseudo)
        // + 03e8+07d0+000a (header) + 6869 (data).
        let acc: u32 =
            0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x11 + 0x0a + 0x03e8 + 0x07d0 + 0x0a + 0x6869;
        let want = !(((acc & 0xffff) + (acc >> 16)) as u16);
        assert_eq!(u16::from_be_bytes([p[26], p[27]]), want);
        // A correct checksum sums (with the pseudo header) to 0xffff.
        let mut acc = sum16(&p[12..20], 0x11 + 10);
        acc = sum16(&p[20..30], acc);
        assert_eq!(fold(acc), 0);
    }

    #[test]
    fn non_ip_and_fragments_are_left_alone() {
        let mut short = vec![0x45, 0, 0];
        fix_l4_checksum(&mut short);
        assert_eq!(short, vec![0x45, 0, 0]);
        let mut frag = udp_packet();
        frag[7] = 1; // fragment offset 8
        let before = frag.clone();
        fix_l4_checksum(&mut frag);
        assert_eq!(frag, before);
        assert_eq!(ipv4_dst(&udp_packet()), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(ipv4_dst(&[0x60; 40]), None);
    }
}
