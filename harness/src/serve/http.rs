//! Just enough HTTP/1.1 for a read-only UI: one GET or HEAD per connection, answered with
//! `Connection: close`. Requests are parsed from bytes without panicking on anything a
//! client can send; bodies are ignored.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};

/// Longest request head accepted (request line plus headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request line (headers are read and discarded: nothing here depends on them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path part of the target, still percent-encoded.
    pub path: String,
    /// The query string without `?`, still encoded ("" if none).
    pub query: String,
}

/// Why a request could not be parsed: the status to answer and a short reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub status: u16,
    pub reason: &'static str,
}

fn bad(reason: &'static str) -> BadRequest {
    BadRequest {
        status: 400,
        reason,
    }
}

/// Reads the request head (up to the blank line) from `r`.
pub fn read_head(r: &mut impl Read) -> Result<Vec<u8>, BadRequest> {
    let mut reader = BufReader::new(r.take(MAX_HEAD as u64 + 1));
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Err(bad("connection closed before the end of the request head")),
            Ok(_) => {}
            Err(_) => return Err(bad("could not read the request (timeout or reset)")),
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(BadRequest {
                status: 431,
                reason: "request head too large",
            });
        }
        if line == b"\r\n" || line == b"\n" {
            // A blank line before the request line is tolerated (RFC 9112 2.2).
            if head.len() == line.len() {
                head.clear();
                continue;
            }
            return Ok(head);
        }
        if !line.ends_with(b"\n") {
            return Err(bad("connection closed before the end of the request head"));
        }
    }
}

/// Parses the request line of `head`.
pub fn parse(head: &[u8]) -> Result<Request, BadRequest> {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| bad("request line is not UTF-8"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line is not `METHOD TARGET HTTP/1.x`"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("bad method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(BadRequest {
            status: 505,
            reason: "only HTTP/1.0 and HTTP/1.1 are spoken here",
        });
    }
    if !target.starts_with('/') {
        return Err(bad("request target must be a path starting with /"));
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("control characters in the request target"));
    }
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
    })
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set). `None` if an escape is
/// malformed.
pub fn percent_decode(s: &str, plus: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Encodes one path segment or query value for a URL.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes a slash-separated relative path segment by segment.
pub fn encode_path(rel: &str) -> String {
    rel.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses `a=1&b=2` into decoded pairs; malformed pairs are dropped.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = String::from_utf8(percent_decode(k, true)?).ok()?;
            let v = String::from_utf8(percent_decode(v, true)?).ok()?;
            Some((k, v))
        })
        .collect()
}

/// What to send back.
pub enum Body {
    Bytes(Vec<u8>),
    File(File, u64),
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: content_type.to_owned(),
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }

    pub fn html(status: u16, body: String) -> Response {
        Response::new(status, "text/html; charset=utf-8", body.into_bytes())
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            format!("{body}\n").into_bytes(),
        )
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    fn len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }

    /// Writes the response; the body only when `with_body` (not for HEAD).
    pub fn write_to(self, w: &mut impl Write, with_body: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        if with_body {
            match self.body {
                Body::Bytes(b) => w.write_all(&b)?,
                Body::File(f, n) => {
                    // A file that shrank since its length was taken: the connection
                    // closes early and the client sees a short body, never garbage.
                    io::copy(&mut f.take(n), w)?;
                }
            }
        }
        w.flush()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The Content-Type for a file name.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "txt" | "log" | "toml" | "edn" | "out" | "err" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_lines() {
        let r = parse(b"GET /run/a%20b?system=raft&x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/run/a%20b");
        assert_eq!(r.query, "system=raft&x");
        let r = parse(b"HEAD / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("HEAD", "/", "")
        );
    }

    #[test]
    fn refuses_garbage() {
        for (raw, status) in [
            (&b"\xff\xfe\r\n\r\n"[..], 400),
            (b"GET\r\n\r\n", 400),
            (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET http://evil/ HTTP/1.1\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\n\r\n", 400),
            (b"GET /a\x01b HTTP/1.1\r\n\r\n", 400),
            (b"", 400),
        ] {
            assert_eq!(parse(raw).unwrap_err().status, status, "{raw:?}");
        }
    }

    #[test]
    fn reads_heads_within_limits() {
        let mut ok: &[u8] = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(
            read_head(&mut ok).unwrap(),
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let mut cut: &[u8] = b"GET / HTTP/1.1\r\nHost";
        assert_eq!(read_head(&mut cut).unwrap_err().status, 400);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(read_head(&mut big.as_bytes()).unwrap_err().status, 431);
    }

    #[test]
    fn percent_coding_round_trips() {
        assert_eq!(percent_decode("%2e%2E/a+b", false).unwrap(), b"../a+b");
        assert_eq!(percent_decode("a+b%20c", true).unwrap(), b"a b c");
        assert!(percent_decode("%zz", false).is_none());
        assert!(percent_decode("%2", false).is_none());
        assert_eq!(percent_encode("a b/<é>"), "a%20b%2F%3C%C3%A9%3E");
        assert_eq!(encode_path("raft-all/2026 x"), "raft-all/2026%20x");
        assert_eq!(
            parse_query("system=raft&nemesis=kill%2Cpause&&bad=%zz&q=a+b"),
            vec![
                ("system".into(), "raft".into()),
                ("nemesis".into(), "kill,pause".into()),
                ("q".into(), "a b".into())
            ]
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("latency.svg"), "image/svg+xml");
        assert_eq!(content_type("a.PNG"), "image/png");
        assert_eq!(content_type("history.jsonl"), "application/x-ndjson");
        assert_eq!(content_type("junit.xml"), "application/xml");
        assert_eq!(content_type("node.log"), "text/plain; charset=utf-8");
        assert_eq!(content_type("wal"), "application/octet-stream");
    }

    #[test]
    fn writes_head_without_body() {
        let mut out = Vec::new();
        Response::text(404, "no such page")
            .write_to(&mut out, false)
            .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(s.contains("Content-Length: 13\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n"), "{s}");
    }
}
