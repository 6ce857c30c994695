//! RESP codec over a real loopback TCP connection, fed in seeded random chunk sizes, with
//! the byte sequences redis-cli, redis-benchmark and telnet produce.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use node::resp::{self, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Reads commands from `stream` until EOF, answering each `PING` with `+PONG`, `ECHO x`
/// with a bulk `x`, anything else with the argument count; a protocol error is answered
/// with `-ERR ...` and ends the connection, as a server does. Returns the commands seen.
fn serve(mut stream: TcpStream) -> Vec<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 7];
    loop {
        loop {
            match resp::parse_command(&buf) {
                Ok(Some((args, used))) => {
                    buf.drain(..used);
                    let reply = match args.first().map(Vec::as_slice) {
                        Some(b"PING") => Value::Simple("PONG".into()),
                        Some(b"ECHO") => Value::Bulk(args.get(1).cloned()),
                        _ => Value::Integer(args.len() as i64),
                    };
                    let mut out = Vec::new();
                    resp::encode(&reply, &mut out);
                    stream.write_all(&out).expect("reply");
                    seen.push(args);
                }
                Ok(None) => break,
                Err(e) => {
                    let mut out = Vec::new();
                    resp::encode(&Value::error(format!("ERR {e}")), &mut out);
                    stream.write_all(&out).expect("reply");
                    // Lingering close: stop sending, drain what the client still sends,
                    // so no RST destroys the error reply in flight.
                    stream
                        .shutdown(std::net::Shutdown::Write)
                        .expect("shutdown");
                    while stream.read(&mut chunk).is_ok_and(|n| n > 0) {}
                    return seen;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return seen,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("server read: {e}"),
        }
    }
}

/// Sends `wire` in random chunks, then reads `n_replies` replies.
fn exchange(wire: &[u8], n_replies: usize, seed: u64) -> (Vec<Value>, Vec<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let server = thread::spawn(move || serve(listener.accept().expect("accept").0));
    let mut client = TcpStream::connect(addr).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rest = wire;
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len().min(9));
        client.write_all(&rest[..n]).expect("send");
        client.flush().expect("flush");
        rest = &rest[n..];
    }
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half close");
    let mut replies = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 5];
    while replies.len() < n_replies {
        match resp::parse_reply(&buf).expect("valid reply") {
            Some((v, used)) => {
                buf.drain(..used);
                replies.push(v);
            }
            None => {
                let n = client.read(&mut chunk).expect("client read");
                assert!(n > 0, "server closed after {} replies", replies.len());
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    (replies, server.join().expect("server thread"))
}

#[test]
fn redis_cli_benchmark_and_telnet_requests_over_tcp() {
    let mut wire = Vec::new();
    // redis-cli: one multibulk command per line typed.
    resp::encode_command(&[b"PING"], &mut wire);
    resp::encode_command(&[b"SET", b"key:000000000042", b"xxx"], &mut wire);
    // redis-benchmark -P 3: the same request pipelined back to back.
    for _ in 0..3 {
        wire.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000007\r\n$3\r\nxxx\r\n");
    }
    // telnet: inline commands, CRLF or bare LF, with quoting.
    wire.extend_from_slice(b"PING\r\nECHO \"two words\"\nCAS k 'a b' c\r\n");
    let binary: Vec<u8> = (0..=255).collect();
    resp::encode_command(&[b"ECHO", &binary], &mut wire);

    for seed in 0..20 {
        let (replies, seen) = exchange(&wire, 9, seed);
        assert_eq!(
            replies,
            vec![
                Value::Simple("PONG".into()),
                Value::Integer(3),
                Value::Integer(3),
                Value::Integer(3),
                Value::Integer(3),
                Value::Simple("PONG".into()),
                Value::Bulk(Some(b"two words".to_vec())),
                Value::Integer(4),
                Value::Bulk(Some(binary.clone())),
            ],
            "seed {seed}"
        );
        assert_eq!(seen[8][1], binary);
        assert_eq!(
            seen[7],
            vec![
                b"CAS".to_vec(),
                b"k".to_vec(),
                b"a b".to_vec(),
                b"c".to_vec()
            ]
        );
    }
}

#[test]
fn protocol_error_is_answered_then_connection_ends() {
    let wire = b"PING\r\n*2\r\n$3\r\nGET\r\n:5\r\nPING\r\n";
    let (replies, seen) = exchange(wire, 2, 1);
    assert_eq!(replies[0], Value::Simple("PONG".into()));
    match &replies[1] {
        Value::Error(msg) => assert!(msg.starts_with("ERR Protocol error: expected '$'"), "{msg}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    assert_eq!(seen.len(), 1, "nothing after the bad command is executed");
}
