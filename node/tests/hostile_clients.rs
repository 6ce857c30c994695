//! The node's RESP server under hostile clients (issue 23): huge declared lengths, endless
//! arrays and lines, a request bigger than the buffer cap, slowloris connections, clients
//! that never read their replies, thousands of connections and one more than
//! `--max-clients`. Each gets a clear error (or backpressure), the node's memory stays
//! bounded, and a well-behaved client is served throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::resp::{self, Value};

const BIN: &str = env!("CARGO_BIN_EXE_stasis-node");
const STALL_MS: u64 = 5000;
const MAX_CLIENTS: usize = 2100;
/// Connections held open at once by the slowloris part.
const SLOW: usize = 2000;

struct Node {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn start() -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, peer) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args(["--id", "n1", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--peer-listen", &format!("127.0.0.1:{peer}")])
        .args(["--peers", &format!("n1=127.0.0.1:{peer}")])
        .args(["--data-dir", &dir.path().join("n1").display().to_string()])
        .args(["--max-clients", &MAX_CLIENTS.to_string()])
        .args(["--client-stall-ms", &STALL_MS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stasis-node");
    let node = Node {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(v) = try_call(node.port, &[b"SET", b"ready", b"1"])
            && v == Value::ok()
        {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not become ready in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the node");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one reply.
fn read_reply(s: &mut TcpStream) -> std::io::Result<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((v, _)) = resp::parse_reply(&buf).expect("the node sends valid RESP") {
            return Ok(v);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed before a reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn try_call(port: u16, args: &[&[u8]]) -> std::io::Result<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = Vec::new();
    resp::encode_command(args, &mut out);
    s.write_all(&out)?;
    read_reply(&mut s)
}

/// A well-behaved client: SET then GET, within a second.
fn served(node: &Node, key: &str) {
    let t0 = Instant::now();
    let v = try_call(node.port, &[b"SET", key.as_bytes(), b"v"]).expect("SET answered");
    assert_eq!(v, Value::ok(), "SET {key}");
    let v = try_call(node.port, &[b"GET", key.as_bytes()]).expect("GET answered");
    assert_eq!(v, Value::Bulk(Some(b"v".to_vec())), "GET {key}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a normal client waited {:?}",
        t0.elapsed()
    );
}

/// Sends `wire`, expects an error reply containing `want`, then the connection closed.
fn rejected(node: &Node, wire: &[u8], want: &str) {
    let mut s = connect(node.port);
    // The node may close while we are still sending: that is the point.
    let _ = s.write_all(wire);
    match read_reply(&mut s) {
        Ok(Value::Error(e)) => assert!(e.contains(want), "error {e:?} lacks {want:?}"),
        other => panic!("expected an error containing {want:?}, got {other:?}"),
    }
    let mut rest = [0u8; 1];
    assert_eq!(s.read(&mut rest).ok(), Some(0), "connection not closed");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("node status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .expect("Max open files")
}

#[test]
fn hostile_clients_get_errors_and_others_are_served() {
    let need = (MAX_CLIENTS + 200) as u64;
    assert!(
        open_files_limit() >= need,
        "this test opens {need} sockets: raise the open-files limit (ulimit -n {need})"
    );
    let node = start();
    let pid = node.child.id();
    let rss0 = rss_kib(pid);

    // Declared lengths beyond the caps are refused before anything is buffered.
    rejected(
        &node,
        b"*2\r\n$3\r\nGET\r\n$99999999999\r\n",
        "invalid bulk length",
    );
    rejected(
        &node,
        b"*2\r\n$3\r\nGET\r\n$16777217\r\n",
        "invalid bulk length",
    );
    rejected(&node, b"*100000000\r\n", "invalid multibulk length");
    // An endless line: refused at 64 KiB.
    rejected(&node, &vec![b'x'; 200 << 10], "too big request line");
    // An endless array of maximal arguments: refused past the buffer cap (~16 MiB).
    let mut endless = b"*1024\r\n".to_vec();
    let arg = vec![b'a'; 4 << 20];
    for _ in 0..6 {
        endless.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        endless.extend_from_slice(&arg);
        endless.extend_from_slice(b"\r\n");
    }
    rejected(&node, &endless, "request larger than");
    served(&node, "after-big");

    // A client that pipelines many GETs of a 64 KiB value and never reads: the node
    // stops reading it (backpressure) instead of queueing every reply.
    let value = vec![b'v'; 64 << 10];
    assert_eq!(
        try_call(node.port, &[b"SET", b"big", &value]).unwrap(),
        Value::ok()
    );
    let mut greedy = connect(node.port);
    greedy
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut get = Vec::new();
    resp::encode_command(&[b"GET", b"big"], &mut get);
    let pipeline = get.repeat(20_000);
    // The write blocks once the node stops reading; a timeout here is the expected case.
    let _ = greedy.write_all(&pipeline);
    std::thread::sleep(Duration::from_millis(500));
    served(&node, "during-greedy");
    let rss_greedy = rss_kib(pid);
    assert!(
        rss_greedy < rss0 + (128 << 10),
        "a client that never reads grew the node from {rss0} KiB to {rss_greedy} KiB"
    );
    drop(greedy);

    // Thousands of idle connections (between requests, so never timed out) fill the
    // slots; connections over --max-clients are refused with a clear error.
    let idle: Vec<TcpStream> = (0..SLOW).map(|_| connect(node.port)).collect();
    served(&node, "with-idle-connections");
    let extra: Vec<TcpStream> = (0..MAX_CLIENTS + 50 - SLOW)
        .map(|_| connect(node.port))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut refused = 0;
    for mut s in extra {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        if let Ok(n) = s.read(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(text.contains("max number of clients"), "{text:?}");
            refused += 1;
        }
    }
    assert!(
        refused >= 45,
        "{refused} of {} connections over --max-clients {MAX_CLIENTS} were refused",
        MAX_CLIENTS + 50 - SLOW
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));

    // Slowloris: thousands of connections, each in the middle of a request.
    let t0 = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|i| {
            let mut s = connect(node.port);
            s.write_all(format!("*3\r\n$3\r\nSET\r\n$4\r\nk{:03}", i % 1000).as_bytes())
                .expect("send a partial request");
            s
        })
        .collect();
    let opened = t0.elapsed();
    served(&node, "during-slowloris");
    let rss_slow = rss_kib(pid);
    assert!(
        rss_slow < rss0 + (SLOW as u64 * 64),
        "{SLOW} stalled connections grew the node from {rss0} KiB to {rss_slow} KiB \
         (more than 64 KiB each)"
    );
    // One byte more now and then does not keep a request alive past the stall limit.
    for s in slow.iter_mut().take(10) {
        let _ = s.write_all(b"\r");
    }
    // Every stalled connection gets the stall error and is closed.
    for (i, s) in slow.iter_mut().enumerate() {
        match read_reply(s) {
            Ok(Value::Error(e)) => assert!(e.contains("not completed within"), "#{i}: {e}"),
            other => panic!("stalled connection #{i}: {other:?}"),
        }
    }
    let took = t0.elapsed();
    assert!(
        took < opened + Duration::from_millis(STALL_MS) + Duration::from_secs(5),
        "stalled connections were closed only after {took:?} (opening them took {opened:?})"
    );
    drop(slow);
    std::thread::sleep(Duration::from_millis(300));
    served(&node, "after-slowloris");
    assert!(node_alive(&node), "the node exited under hostile clients");
    eprintln!(
        "hostile_clients: RSS {rss0} KiB at start, {rss_greedy} KiB with a non-reading client, \
         {rss_slow} KiB with {SLOW} stalled connections; {refused} refused over the cap; \
         slowloris phase {took:?}"
    );
}

fn node_alive(node: &Node) -> bool {
    std::fs::metadata(format!("/proc/{}", node.child.id())).is_ok()
        && try_call(node.port, &[b"PING"]).is_ok()
}

/// CPU time (user + system) the process has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("node stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A client that never reads its replies while GETting a 16 MiB value: the node holds at
/// most its reply budget (32 MiB) for it, not one copy per pipelined GET (64 GETs were
/// 1 GiB), and keeps serving others. A big request trickled in small writes costs the
/// node time linear in its size (the decoder copies each byte once).
#[test]
fn big_values_and_trickled_requests_are_bounded() {
    let node = start();
    let pid = node.child.id();
    let value = vec![b'v'; (16 << 20) - 64];
    assert_eq!(
        try_call(node.port, &[b"SET", b"huge", &value]).unwrap(),
        Value::ok()
    );
    // One GET read whole first, so the allocator has seen a reply of that size.
    let mut s = connect(node.port);
    let mut get = Vec::new();
    resp::encode_command(&[b"GET", b"huge"], &mut get);
    s.write_all(&get).unwrap();
    assert_eq!(
        read_reply(&mut s).unwrap(),
        Value::Bulk(Some(value.clone()))
    );
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = rss_kib(pid);

    let mut greedy = connect(node.port);
    greedy
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = greedy.write_all(&get.repeat(64));
    std::thread::sleep(Duration::from_millis(2000));
    served(&node, "beside-a-greedy-reader");
    let rss_greedy = rss_kib(pid);
    drop(greedy);
    assert!(
        rss_greedy < rss0 + (96 << 10),
        "64 unread GETs of a 16 MiB value grew the node from {rss0} KiB to {rss_greedy} KiB"
    );

    // A CAS whose two 4 MiB values arrive in 256-byte writes: the node's CPU time stays
    // small (the old parser copied the complete first value again on every read).
    let four = vec![b'w'; 4 << 20];
    let mut wire = Vec::new();
    resp::encode_command(&[b"CAS", b"huge", &four, &four], &mut wire);
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let mut s = connect(node.port);
    s.set_nodelay(true).unwrap();
    for piece in wire.chunks(256) {
        s.write_all(piece).unwrap();
    }
    let reply = read_reply(&mut s).unwrap();
    let took = t0.elapsed();
    let cpu = cpu_ticks(pid) - cpu0;
    assert_eq!(reply, Value::Integer(0), "CAS of a value that is not there");
    assert!(
        cpu < 300,
        "an 8 MiB request in 256-byte writes cost the node {cpu} ticks of CPU ({took:?})"
    );
    served(&node, "after-trickle");
    eprintln!(
        "big values: RSS {rss0} KiB with a 16 MiB value, {rss_greedy} KiB with 64 unread GETs \
         of it; an 8 MiB CAS in 256-byte writes took {took:?}, {cpu} ticks of node CPU"
    );
}
