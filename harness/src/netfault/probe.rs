//! Probes that measure what a directed link does, from inside the namespaces: numbered,
//! timestamped UDP datagrams from one namespace to a socket in another give the one-way
//! delay (both ends share this process's monotonic clock), loss, duplicates, reordering
//! and throughput of that one direction; TCP connects give the round trip a node's peer
//! connection sees (SYN one way, SYN-ACK back).
//!
//! On remote hosts the two ends of a link are on different machines with different
//! clocks, so the probe of a link a -> b is an echo: the agent on b reflects each datagram
//! from a socket marked with the delayer's mark ([`reflect`]), which the NFQUEUE rule lets
//! pass, so the way back is not delayed; the agent on a ([`udp_echo`]) times each echo on
//! its own clock. The one-way figure is then the delay of a -> b plus the network's own
//! return time (tens of microseconds on a LAN).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::net::with_netns;

/// How to send a UDP probe.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct UdpPlan {
    pub count: u32,
    /// Datagram size, bytes (at least 12).
    pub size: usize,
    /// Gap between sends (zero: one burst).
    pub gap: Duration,
    /// How long to keep listening after the last send.
    pub linger: Duration,
}

/// What a UDP probe saw on one directed link.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UdpMeasure {
    pub sent: u32,
    /// Distinct datagrams received.
    pub received: u32,
    /// Extra copies received.
    pub duplicates: u32,
    /// Arrivals with a lower number than one already seen.
    pub reordered: u32,
    /// One-way delays of first copies, ms, sorted.
    #[serde(skip)]
    pub delays_ms: Vec<f64>,
    pub median_ms: f64,
    /// Bytes per second between the first and last arrival.
    pub arrival_bps: f64,
}

impl UdpMeasure {
    pub fn loss(&self) -> f64 {
        1.0 - f64::from(self.received) / f64::from(self.sent.max(1))
    }
    pub fn dup_rate(&self) -> f64 {
        f64::from(self.duplicates) / f64::from(self.received.max(1))
    }
    pub fn reorder_rate(&self) -> f64 {
        f64::from(self.reordered) / f64::from(self.received.max(1))
    }
    /// Share of received datagrams whose one-way delay exceeded `ms`.
    pub fn share_over_ms(&self, ms: f64) -> f64 {
        let n = self.delays_ms.iter().filter(|d| **d > ms).count();
        n as f64 / self.delays_ms.len().max(1) as f64
    }
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.delays_ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.delays_ms.len() - 1) as f64 * q).round() as usize;
        self.delays_ms[i]
    }
}

/// Sends `plan.count` datagrams from namespace `from_ns` to a fresh socket at `to_addr`
/// in namespace `to_ns`, and measures what arrives.
pub fn udp(from_ns: &str, to_ns: &str, to_addr: Ipv4Addr, plan: UdpPlan) -> Result<UdpMeasure> {
    let rx = with_netns(to_ns, || UdpSocket::bind((to_addr, 0)))?
        .with_context(|| format!("cannot bind a probe socket in {to_ns}"))?;
    let target = rx.local_addr()?;
    let tx = with_netns(from_ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?
        .with_context(|| format!("cannot bind a probe socket in {from_ns}"))?;
    Ok(send_and_receive(&tx, &rx, target, plan))
}

/// Sends `plan.count` datagrams from this namespace to the reflector at `target` (see
/// [`reflect`]) and measures the echoes: the link to `target` one way, the undelayed
/// network back.
pub fn udp_echo(target: SocketAddr, plan: UdpPlan) -> Result<UdpMeasure> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("cannot bind a probe socket")?;
    Ok(send_and_receive(&sock, &sock, target, plan))
}

/// Sends the plan's datagrams from `tx` to `target` and times what `rx` receives.
fn send_and_receive(
    tx: &UdpSocket,
    rx: &UdpSocket,
    target: SocketAddr,
    plan: UdpPlan,
) -> UdpMeasure {
    let size = plan.size.max(12);
    let epoch = Instant::now();
    let send_time = plan.gap * plan.count;
    let deadline = epoch + send_time + plan.linger;
    let arrivals = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut got: Vec<(u32, u64, u64)> = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let _ = rx.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                match rx.recv(&mut buf) {
                    Ok(n) if n >= 12 => {
                        let seq = u32::from_be_bytes(buf[0..4].try_into().unwrap_or_default());
                        let sent = u64::from_be_bytes(buf[4..12].try_into().unwrap_or_default());
                        got.push((seq, sent, epoch.elapsed().as_nanos() as u64));
                    }
                    Ok(_) => {}
                    Err(_) => {}
                }
            }
            got
        });
        let mut msg = vec![0u8; size];
        for seq in 0..plan.count {
            let due = epoch + plan.gap * seq;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            msg[0..4].copy_from_slice(&seq.to_be_bytes());
            msg[4..12].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
            let _ = tx.send_to(&msg, target);
        }
        receiver.join().unwrap_or_default()
    });
    summarize(plan.count, size, &arrivals)
}

/// A UDP reflector at `addr` for `lifetime`: every datagram goes straight back to its
/// sender from a socket marked with the delayer's mark, so the delayer of this host lets
/// the echo pass undelayed. Returns the port.
pub fn reflect(addr: Ipv4Addr, lifetime: Duration) -> Result<u16> {
    let sock = UdpSocket::bind((addr, 0))
        .with_context(|| format!("cannot bind a reflector socket on {addr}"))?;
    set_mark(&sock, super::queue::MARK)?;
    let port = sock.local_addr()?.port();
    let deadline = Instant::now() + lifetime;
    std::thread::Builder::new()
        .name("reflector".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        })
        .context("cannot start a reflector thread")?;
    Ok(port)
}

/// A TCP listener at `addr` for `lifetime` (connections are accepted and dropped), for
/// [`tcp_rtt_to`] from another host. Returns the port.
pub fn listen(addr: Ipv4Addr, lifetime: Duration) -> Result<u16> {
    let listener =
        TcpListener::bind((addr, 0)).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let deadline = Instant::now() + lifetime;
    std::thread::Builder::new()
        .name("listener".into())
        .spawn(move || {
            while Instant::now() < deadline {
                while listener.accept().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .context("cannot start a listener thread")?;
    Ok(port)
}

fn set_mark(sock: &UdpSocket, mark: u32) -> Result<()> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let mark = mark as libc::c_int;
    // SAFETY: setsockopt with a c_int option value of the right size on a live socket.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            &mark as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot mark the reflector socket");
    }
    Ok(())
}

/// Turns arrivals (number, sent ns, arrived ns) into a measure.
fn summarize(sent: u32, size: usize, arrivals: &[(u32, u64, u64)]) -> UdpMeasure {
    let mut seen = BTreeSet::new();
    let mut m = UdpMeasure {
        sent,
        ..Default::default()
    };
    let mut highest: Option<u32> = None;
    for &(seq, t_sent, t_got) in arrivals {
        if !seen.insert(seq) {
            m.duplicates += 1;
            continue;
        }
        m.received += 1;
        if highest.is_some_and(|h| seq < h) {
            m.reordered += 1;
        }
        highest = Some(highest.map_or(seq, |h| h.max(seq)));
        m.delays_ms.push(t_got.saturating_sub(t_sent) as f64 / 1e6);
    }
    m.delays_ms.sort_by(f64::total_cmp);
    m.median_ms = m.quantile_ms(0.5);
    if let (Some(first), Some(last)) = (
        arrivals.iter().map(|a| a.2).min(),
        arrivals.iter().map(|a| a.2).max(),
    ) && last > first
        && arrivals.len() > 1
    {
        let bytes = (arrivals.len() - 1) * size;
        m.arrival_bps = bytes as f64 / ((last - first) as f64 / 1e9);
    }
    m
}

/// Median TCP connect time (ms) from `from_ns` to a listener at `to_addr` in `to_ns`,
/// over `count` connects; connects that time out are not counted (`None` if none
/// succeeded).
pub fn tcp_rtt(
    from_ns: &str,
    to_ns: &str,
    to_addr: Ipv4Addr,
    count: usize,
    timeout: Duration,
) -> Result<Option<f64>> {
    let listener = with_netns(to_ns, || TcpListener::bind((to_addr, 0)))?
        .with_context(|| format!("cannot listen in {to_ns}"))?;
    let target: SocketAddr = listener.local_addr()?;
    with_netns(from_ns, || tcp_rtt_to(target, count, timeout))
}

/// Median TCP connect time (ms) from this namespace to `target` over `count` connects
/// (`None` if none succeeded).
pub fn tcp_rtt_to(target: SocketAddr, count: usize, timeout: Duration) -> Option<f64> {
    let mut rtts: Vec<f64> = (0..count)
        .filter_map(|_| {
            let t = Instant::now();
            TcpStream::connect_timeout(&target, timeout)
                .ok()
                .map(|_| t.elapsed().as_secs_f64() * 1000.0)
        })
        .collect();
    if rtts.is_empty() {
        return None;
    }
    rtts.sort_by(f64::total_cmp);
    Some(rtts[rtts.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_loss_duplicates_and_reordering() {
        // 0 and 2 arrive, then 1 (late), then 2 again; 3 is lost.
        let arrivals = [
            (0, 0, 1_000_000),
            (2, 2_000_000, 3_000_000),
            (1, 1_000_000, 9_000_000),
            (2, 2_000_000, 3_200_000),
        ];
        let m = summarize(4, 100, &arrivals);
        assert_eq!((m.received, m.duplicates, m.reordered), (3, 1, 1));
        assert!((m.loss() - 0.25).abs() < 1e-9);
        assert!((m.dup_rate() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.delays_ms, vec![1.0, 1.0, 8.0]);
        assert_eq!(m.median_ms, 1.0);
        // 3 datagrams after the first, 100 bytes each, over 8 ms.
        assert!((m.arrival_bps - 300.0 / 0.008).abs() < 1.0);
        let empty = summarize(5, 100, &[]);
        assert_eq!(empty.loss(), 1.0);
        assert!(empty.median_ms.is_nan());
    }
}
