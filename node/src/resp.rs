//! RESP2 wire protocol codec (requests and replies).
//!
//! Parsing is incremental: every parser takes the bytes received so far and returns
//! `Ok(None)` when they end in the middle of a message (read more and call again with the
//! longer buffer), or the message and how many bytes it used. Parsers never panic and
//! never buffer without bound: arrays, bulk strings, lines and nesting are capped by
//! [`Limits`], and exceeding a cap is a [`RespError`] (the server should send it as an
//! `-ERR` reply and close the connection, like Redis does).
//!
//! Requests come in two forms, both accepted by [`parse_command`]:
//! - arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), as `redis-cli` and
//!   `redis-benchmark` send them;
//! - inline commands (`SET k v\r\n`, `\n` alone also ends a line), as typed in telnet, with
//!   Redis-style `"double"` (escapes `\n \r \t \b \a \\ \" \xHH`) and `'single'` quoting.
//!
//! An empty request (`*0\r\n`, `*-1\r\n` or an empty inline line) parses to an empty
//! argument list; servers ignore it. [`encode`] never emits a malformed message: CR and
//! LF inside simple strings and errors are replaced by spaces.

/// A RESP2 value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR message`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc` (`None` = null bulk `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None` = null array `*-1`).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    /// An error reply; `msg` should start with a code such as `ERR` or `NOTLEADER`.
    pub fn error(msg: impl Into<String>) -> Value {
        Value::Error(msg.into())
    }
}

/// A protocol violation; Display is one line in Redis's style.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct RespError(pub String);

/// Caps that bound what a peer can make the parser buffer or allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most elements in one array (and arguments in one command). Default 1 Mi.
    pub max_args: usize,
    /// Largest bulk string. Default 64 MiB.
    pub max_bulk: usize,
    /// Longest line (inline command or type header). Default 64 KiB.
    pub max_line: usize,
    /// Deepest array nesting in replies. Default 32.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args: 1 << 20,
            max_bulk: 64 << 20,
            max_line: 64 << 10,
            max_depth: 32,
        }
    }
}

/// Parser result: `Ok(None)` means the buffer ends mid-message.
pub type Step<T> = Result<Option<T>, RespError>;

/// A parsed command's arguments (empty for an empty request).
pub type Args = Vec<Vec<u8>>;

/// Unwraps `Ok(Some(v))`, returns early on `Ok(None)` or `Err`.
macro_rules! ready {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

fn err<T>(msg: impl Into<String>) -> Result<T, RespError> {
    Err(RespError(msg.into()))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Cursor<'a> {
    /// Bytes of the next line up to (excluding) its `\n`, advancing past it.
    fn raw_line(&mut self) -> Step<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i > self.limits.max_line => err("too big request line"),
            Some(i) => {
                self.pos += i + 1;
                Ok(Some(&rest[..i]))
            }
            None if rest.len() > self.limits.max_line => err("too big request line"),
            None => Ok(None),
        }
    }

    /// A CRLF-terminated protocol line (without the CRLF).
    fn line(&mut self) -> Step<&'a [u8]> {
        let line = ready!(self.raw_line());
        match line.strip_suffix(b"\r") {
            Some(l) => Ok(Some(l)),
            None => err("line not terminated by CRLF"),
        }
    }

    /// `len` bytes followed by CRLF.
    fn bulk_body(&mut self, len: usize) -> Step<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        if rest.len() < len.saturating_add(2) {
            return Ok(None);
        }
        if &rest[len..len + 2] != b"\r\n" {
            return err("bulk string not terminated by CRLF");
        }
        self.pos += len + 2;
        Ok(Some(&rest[..len]))
    }

    /// The length after `$` or `*`: `None` for -1 (null), an error if negative otherwise or
    /// above `max`.
    fn length(digits: &[u8], max: usize, what: &str) -> Result<Option<usize>, RespError> {
        match parse_int(digits) {
            Some(-1) => Ok(None),
            Some(n) if n >= 0 && n as u64 <= max as u64 => Ok(Some(n as usize)),
            _ => err(format!("invalid {what} length")),
        }
    }
}

fn parse_int(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses one client command with [`Limits::default`]. Returns the arguments and the
/// number of bytes consumed, or `Ok(None)` if `buf` holds only part of a command.
pub fn parse_command(buf: &[u8]) -> Step<(Args, usize)> {
    parse_command_with(buf, &Limits::default())
}

/// [`parse_command`] with explicit limits.
pub fn parse_command_with(buf: &[u8], limits: &Limits) -> Step<(Args, usize)> {
    let mut cur = Cursor {
        buf,
        pos: 0,
        limits,
    };
    match buf.first() {
        None => Ok(None),
        Some(b'*') => {
            let header = ready!(cur.line());
            let n = match parse_int(&header[1..]) {
                Some(n) if n <= 0 => return Ok(Some((Vec::new(), cur.pos))),
                Some(n) if n as u64 <= limits.max_args as u64 => n as usize,
                _ => return err("invalid multibulk length"),
            };
            let mut args = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                match buf.get(cur.pos) {
                    None => return Ok(None),
                    Some(b'$') => {}
                    Some(&c) => return err(format!("expected '$', got '{}'", c.escape_ascii())),
                }
                let header = ready!(cur.line());
                let Some(len) = Cursor::length(&header[1..], limits.max_bulk, "bulk")? else {
                    return err("invalid bulk length");
                };
                args.push(ready!(cur.bulk_body(len)).to_vec());
            }
            Ok(Some((args, cur.pos)))
        }
        Some(_) => {
            let line = ready!(cur.raw_line());
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let args = split_inline(line)?;
            if args.len() > limits.max_args {
                return err("invalid multibulk length");
            }
            Ok(Some((args, cur.pos)))
        }
    }
}

/// Incremental request decoder for a server: it keeps a partly received command between
/// reads, so every received byte is examined and copied once however the input is cut
/// (byte by byte, a slowloris client, a 16 MiB bulk string in 16 KiB reads).
/// [`parse_command_with`] starts again from the first byte of the command on every call,
/// which copies the arguments already complete again on each read: quadratic.
///
/// Feed bytes with [`CommandDecoder::push`], take commands with
/// [`CommandDecoder::next_command`] until it returns `Ok(None)`; after an error the
/// decoder must not be used again (the server closes the connection). It accepts and
/// rejects exactly what [`parse_command_with`] does, with the same errors.
#[derive(Debug)]
pub struct CommandDecoder {
    limits: Limits,
    /// Received bytes; `buf[pos..]` is not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of the current line (from `pos`) already searched for its `\n`.
    scan: usize,
    state: DecodeState,
    /// Bytes held in the arguments of the command in progress.
    held: usize,
}

#[derive(Debug, Default)]
enum DecodeState {
    /// Between commands.
    #[default]
    Start,
    /// In a `*n` array, `remaining` bulk strings to go.
    Array { args: Args, remaining: usize },
    /// Inside a bulk string of `len` bytes (`body` holds those received), then CRLF.
    Bulk {
        args: Args,
        remaining: usize,
        body: Vec<u8>,
        len: usize,
    },
}

impl CommandDecoder {
    pub fn new(limits: Limits) -> CommandDecoder {
        CommandDecoder {
            limits,
            buf: Vec::new(),
            pos: 0,
            scan: 0,
            state: DecodeState::Start,
            held: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as a command: the unparsed input plus the
    /// arguments of the command in progress. What a connection makes the server hold.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.held
    }

    /// Whether a command has started and not yet completed.
    pub fn in_command(&self) -> bool {
        self.buffered() > 0 || !matches!(self.state, DecodeState::Start)
    }

    /// Gives back the memory a big request made the input buffer grow to, if it is empty.
    pub fn shrink(&mut self, keep: usize) {
        if self.pos == self.buf.len() && self.buf.capacity() > keep {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// The next line up to (excluding) its `\n`, as a range of `buf`, advancing past it.
    fn raw_line(&mut self) -> Step<std::ops::Range<usize>> {
        let rest = &self.buf[self.pos..];
        match rest[self.scan..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scan + i;
                if end > self.limits.max_line {
                    return err("too big request line");
                }
                let start = self.pos;
                self.pos += end + 1;
                self.scan = 0;
                Ok(Some(start..start + end))
            }
            None => {
                self.scan = rest.len();
                if rest.len() > self.limits.max_line {
                    return err("too big request line");
                }
                Ok(None)
            }
        }
    }

    /// A CRLF-terminated protocol line (without the CRLF), as a range of `buf`.
    fn line(&mut self) -> Step<std::ops::Range<usize>> {
        let r = ready!(self.raw_line());
        if r.is_empty() || self.buf[r.end - 1] != b'\r' {
            return err("line not terminated by CRLF");
        }
        Ok(Some(r.start..r.end - 1))
    }

    /// The next complete command (empty for an empty request), `Ok(None)` if more bytes
    /// are needed.
    pub fn next_command(&mut self) -> Step<Args> {
        loop {
            match std::mem::take(&mut self.state) {
                DecodeState::Start => {
                    let Some(&first) = self.buf.get(self.pos) else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        let Some(r) = self.line()? else {
                            return Ok(None);
                        };
                        let n = match parse_int(&self.buf[r.start + 1..r.end]) {
                            Some(n) if n <= 0 => return Ok(Some(Vec::new())),
                            Some(n) if n as u64 <= self.limits.max_args as u64 => n as usize,
                            _ => return err("invalid multibulk length"),
                        };
                        self.state = DecodeState::Array {
                            args: Vec::with_capacity(n.min(64)),
                            remaining: n,
                        };
                    } else {
                        let Some(r) = self.raw_line()? else {
                            return Ok(None);
                        };
                        let line = &self.buf[r];
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        let args = split_inline(line)?;
                        if args.len() > self.limits.max_args {
                            return err("invalid multibulk length");
                        }
                        return Ok(Some(args));
                    }
                }
                DecodeState::Array { args, remaining: 0 } => {
                    self.held = 0;
                    return Ok(Some(args));
                }
                DecodeState::Array { args, remaining } => {
                    match self.buf.get(self.pos) {
                        None => {
                            self.state = DecodeState::Array { args, remaining };
                            return Ok(None);
                        }
                        Some(b'$') => {}
                        Some(&c) => {
                            return err(format!("expected '$', got '{}'", c.escape_ascii()));
                        }
                    }
                    let Some(r) = self.line()? else {
                        self.state = DecodeState::Array { args, remaining };
                        return Ok(None);
                    };
                    let digits = &self.buf[r.start + 1..r.end];
                    let Some(len) = Cursor::length(digits, self.limits.max_bulk, "bulk")? else {
                        return err("invalid bulk length");
                    };
                    self.state = DecodeState::Bulk {
                        args,
                        remaining,
                        body: Vec::new(),
                        len,
                    };
                }
                DecodeState::Bulk {
                    mut args,
                    remaining,
                    mut body,
                    len,
                } => {
                    let avail = &self.buf[self.pos..];
                    let take = (len - body.len()).min(avail.len());
                    if take > 0 {
                        // Grow by doubling, never past the declared length (which the
                        // client may never send: no allocation up front).
                        if body.capacity() - body.len() < take {
                            let want = (body.capacity() * 2).max(body.len() + take).min(len);
                            body.reserve_exact(want - body.len());
                        }
                        body.extend_from_slice(&avail[..take]);
                        self.pos += take;
                        self.held += take;
                    }
                    let avail = &self.buf[self.pos..];
                    if body.len() < len || avail.len() < 2 {
                        self.state = DecodeState::Bulk {
                            args,
                            remaining,
                            body,
                            len,
                        };
                        return Ok(None);
                    }
                    if &avail[..2] != b"\r\n" {
                        return err("bulk string not terminated by CRLF");
                    }
                    self.pos += 2;
                    args.push(body);
                    self.state = DecodeState::Array {
                        args,
                        remaining: remaining - 1,
                    };
                }
            }
        }
    }
}

/// Splits an inline command line into arguments (Redis `sdssplitargs` rules).
fn split_inline(line: &[u8]) -> Result<Args, RespError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let Some(&first) = line.get(i) else {
            return Ok(args);
        };
        let mut arg = Vec::new();
        if first == b'"' || first == b'\'' {
            i += 1;
            loop {
                match (line.get(i), line.get(i + 1)) {
                    (None, _) => return err("unbalanced quotes in request"),
                    (Some(&q), next) if q == first => {
                        if next.is_some_and(|c| !c.is_ascii_whitespace()) {
                            return err("closing quote must be followed by a space");
                        }
                        i += 1;
                        break;
                    }
                    (Some(b'\\'), Some(&c)) if first == b'"' => {
                        let hex = line
                            .get(i + 2..i + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok());
                        match (c, hex) {
                            (b'x', Some(byte)) => {
                                arg.push(byte);
                                i += 4;
                                continue;
                            }
                            (b'n', _) => arg.push(b'\n'),
                            (b'r', _) => arg.push(b'\r'),
                            (b't', _) => arg.push(b'\t'),
                            (b'b', _) => arg.push(8),
                            (b'a', _) => arg.push(7),
                            (c, _) => arg.push(c),
                        }
                        i += 2;
                    }
                    (Some(b'\\'), Some(b'\'')) => {
                        arg.push(b'\'');
                        i += 2;
                    }
                    (Some(&c), _) => {
                        arg.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(&c) = line.get(i).filter(|c| !c.is_ascii_whitespace()) {
                arg.push(c);
                i += 1;
            }
        }
        args.push(arg);
    }
}

/// Parses one reply (any RESP2 value) with [`Limits::default`], for clients.
pub fn parse_reply(buf: &[u8]) -> Step<(Value, usize)> {
    parse_reply_with(buf, &Limits::default())
}

/// [`parse_reply`] with explicit limits.
pub fn parse_reply_with(buf: &[u8], limits: &Limits) -> Step<(Value, usize)> {
    let mut cur = Cursor {
        buf,
        pos: 0,
        limits,
    };
    let value = ready!(parse_value(&mut cur, 0));
    Ok(Some((value, cur.pos)))
}

fn parse_value(cur: &mut Cursor<'_>, depth: usize) -> Step<Value> {
    let line = ready!(cur.line());
    let Some((&kind, rest)) = line.split_first() else {
        return err("empty line where a value was expected");
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    let value = match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => match parse_int(rest) {
            Some(n) => Value::Integer(n),
            None => return err("invalid integer"),
        },
        b'$' => match Cursor::length(rest, cur.limits.max_bulk, "bulk")? {
            None => Value::Bulk(None),
            Some(len) => Value::Bulk(Some(ready!(cur.bulk_body(len)).to_vec())),
        },
        b'*' => match Cursor::length(rest, cur.limits.max_args, "multibulk")? {
            None => Value::Array(None),
            Some(_) if depth >= cur.limits.max_depth => return err("arrays nested too deeply"),
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    items.push(ready!(parse_value(cur, depth + 1)));
                }
                Value::Array(Some(items))
            }
        },
        c => return err(format!("unexpected type byte '{}'", c.escape_ascii())),
    };
    Ok(Some(value))
}

fn push_line_text(out: &mut Vec<u8>, prefix: u8, text: &str) {
    out.push(prefix);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, prefix: u8, n: i64) {
    out.push(prefix);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    push_header(out, b'$', bytes.len() as i64);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends the wire form of `value` to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Simple(s) => push_line_text(out, b'+', s),
        Value::Error(s) => push_line_text(out, b'-', s),
        Value::Integer(n) => push_header(out, b':', *n),
        Value::Bulk(None) => push_header(out, b'$', -1),
        Value::Bulk(Some(b)) => push_bulk(out, b),
        Value::Array(None) => push_header(out, b'*', -1),
        Value::Array(Some(items)) => {
            push_header(out, b'*', items.len() as i64);
            for item in items {
                encode(item, out);
            }
        }
    }
}

/// Appends a client command (array of bulk strings) to `out`.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    push_header(out, b'*', args.len() as i64);
    for arg in args {
        push_bulk(out, arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    /// Feeds `input` in two pieces split at `split`, draining every complete command after
    /// each piece, as a server reading from a socket does.
    fn drain_commands(input: &[u8], split: usize) -> Vec<Vec<Vec<u8>>> {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for piece in [&input[..split], &input[split..]] {
            buf.extend_from_slice(piece);
            while let Some((cmd, used)) = parse_command(&buf).expect("valid input") {
                assert!(used > 0);
                got.push(cmd);
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty(), "leftover {buf:?}");
        got
    }

    const PIPELINE: &[u8] =
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\nPING\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n\
SET x \"y z\\x41\\n\" 'it\\'s'\n*0\r\n\r\n*1\r\n$4\r\nPING\r\n";

    fn pipeline_expected() -> Vec<Vec<Vec<u8>>> {
        vec![
            args(&["SET", "a", "b"]),
            args(&["PING"]),
            args(&["GET", ""]),
            vec![
                b"SET".to_vec(),
                b"x".to_vec(),
                b"y zA\n".to_vec(),
                b"it's".to_vec(),
            ],
            vec![],
            vec![],
            args(&["PING"]),
        ]
    }

    #[test]
    fn pipelined_commands_at_every_split_point() {
        for split in 0..=PIPELINE.len() {
            assert_eq!(
                drain_commands(PIPELINE, split),
                pipeline_expected(),
                "split {split}"
            );
        }
    }

    #[test]
    fn pipelined_commands_byte_by_byte() {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for &b in PIPELINE {
            buf.push(b);
            if let Some((cmd, used)) = parse_command(&buf).expect("valid") {
                got.push(cmd);
                buf.drain(..used);
            }
        }
        assert_eq!(got, pipeline_expected());
        assert!(buf.is_empty());
    }

    #[test]
    fn replies_byte_by_byte() {
        let values = vec![
            Value::ok(),
            Value::error("NOTLEADER n2"),
            Value::Integer(-7),
            Value::Bulk(None),
            Value::Bulk(Some(b"a\r\nb".to_vec())),
            Value::Array(None),
            Value::Array(Some(vec![
                Value::Integer(1),
                Value::Array(Some(vec![])),
                Value::Bulk(Some(vec![])),
            ])),
        ];
        let mut wire = Vec::new();
        for v in &values {
            encode(v, &mut wire);
        }
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for &b in &wire {
            buf.push(b);
            if let Some((v, used)) = parse_reply(&buf).expect("valid") {
                got.push(v);
                buf.drain(..used);
            }
        }
        assert_eq!(got, values);
    }

    #[test]
    fn malformed_requests_are_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*2\r\n:1\r\n", "expected '$'"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$abc\r\n", "invalid bulk length"),
            (b"*1\r\n$3\r\nGETX\r\n", "not terminated by CRLF"),
            (b"*1\n", "not terminated by CRLF"),
            (b"SET a \"b\n", "unbalanced quotes"),
            (b"SET a \"b\"c\n", "closing quote"),
            (b"*99999999999\r\n", "invalid multibulk length"),
            (b"*1\r\n$99999999999\r\n", "invalid bulk length"),
        ];
        for (input, want) in cases {
            let e = parse_command(input).expect_err(&String::from_utf8_lossy(input));
            assert!(e.to_string().contains(want), "{input:?}: {e}");
            assert!(e.to_string().starts_with("Protocol error: "));
        }
    }

    /// Found by fuzzing (stasis-fuzz target `resp`): a control byte where a bulk string's
    /// `$` belongs went into the error message raw, so a `\n` split the one-line error.
    #[test]
    fn errors_quote_control_bytes() {
        for bad in [&b"*1\r\n\n"[..], b"*1\r\n\r\n", b"*2\r\n$1\r\na\r\n\x00"] {
            let e = parse_command(bad).unwrap_err().to_string();
            assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
            assert!(
                e.starts_with("Protocol error: expected '$', got '\\"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn limits_bound_buffering() {
        let limits = Limits {
            max_args: 2,
            max_bulk: 4,
            max_line: 16,
            max_depth: 1,
        };
        assert!(parse_command_with(b"*3\r\n", &limits).is_err());
        assert!(parse_command_with(b"a b c\r\n", &limits).is_err());
        assert!(parse_command_with(b"*1\r\n$5\r\n", &limits).is_err());
        assert_eq!(parse_command_with(b"*1\r\n$4\r\nab", &limits), Ok(None));
        assert_eq!(parse_command_with(b"PING PING PING", &limits), Ok(None));
        assert!(parse_command_with(b"PING PING PING PING", &limits).is_err());
        assert!(parse_reply_with(b"*1\r\n*1\r\n:1\r\n", &limits).is_err());
        assert!(parse_reply_with(b"*1\r\n:1\r\n", &limits).is_ok());
    }

    #[test]
    fn malformed_replies_are_errors() {
        for input in [
            &b"?\r\n"[..],
            b"\r\n",
            b":x\r\n",
            b"$-2\r\n",
            b"$1\r\nab\r\n",
        ] {
            assert!(parse_reply(input).is_err(), "{input:?}");
        }
        assert_eq!(parse_reply(b"$3\r\nab"), Ok(None));
        assert_eq!(parse_reply(b""), Ok(None));
    }

    #[test]
    fn encoding_sanitizes_line_breaks() {
        let mut out = Vec::new();
        encode(&Value::error("ERR bad\r\nthing"), &mut out);
        assert_eq!(out, b"-ERR bad  thing\r\n");
    }

    /// Feeds `input` to a [`CommandDecoder`] in pieces of `chunk` bytes; the commands, then
    /// the error if any.
    fn decode_chunked(input: &[u8], chunk: usize, limits: &Limits) -> (Vec<Args>, Option<String>) {
        let mut d = CommandDecoder::new(*limits);
        let mut got = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            d.push(piece);
            loop {
                match d.next_command() {
                    Ok(Some(cmd)) => got.push(cmd),
                    Ok(None) => break,
                    Err(e) => return (got, Some(e.to_string())),
                }
            }
        }
        (got, None)
    }

    /// The stateless parser over the whole input: the reference for the decoder.
    fn parse_whole(input: &[u8], limits: &Limits) -> (Vec<Args>, Option<String>) {
        let mut got = Vec::new();
        let mut at = 0;
        loop {
            match parse_command_with(&input[at..], limits) {
                Ok(Some((cmd, used))) => {
                    got.push(cmd);
                    at += used;
                }
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn decoder_at_every_split_point_and_byte_by_byte() {
        let limits = Limits::default();
        for chunk in 1..=PIPELINE.len() {
            let (got, e) = decode_chunked(PIPELINE, chunk, &limits);
            assert_eq!(e, None, "chunk {chunk}");
            assert_eq!(got, pipeline_expected(), "chunk {chunk}");
        }
        let mut d = CommandDecoder::new(limits);
        d.push(b"*2\r\n$3\r\nGET\r\n$2\r\nk");
        assert_eq!(d.next_command(), Ok(None));
        assert!(d.in_command());
        assert_eq!(d.buffered(), 4, "GET and the k of the key");
        d.push(b"1\r\n");
        assert_eq!(d.next_command(), Ok(Some(args(&["GET", "k1"]))));
        assert!(!d.in_command());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn decoder_rejects_what_the_parser_rejects() {
        let limits = Limits {
            max_args: 4,
            max_bulk: 16,
            max_line: 32,
            max_depth: 4,
        };
        for bad in [
            &b"*5\r\n"[..],
            b"*2\r\n$3\r\nGET\r\n$17\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n$1\r\nab\r\n",
            b"*1\n",
            b"*1\r\n$x\r\n",
            b"*1\r\n$-1\r\n",
            &[b'x'; 40],
            b"a b c d e\r\n",
            b"SET \"k\r\n",
        ] {
            for chunk in 1..=bad.len() {
                let want = parse_whole(bad, &limits);
                assert!(want.1.is_some(), "{:?} is not an error", bad.escape_ascii());
                assert_eq!(decode_chunked(bad, chunk, &limits), want, "chunk {chunk}");
            }
        }
    }

    /// The point of the decoder: a big request arriving in small pieces costs time linear
    /// in its size. The stateless parser re-copies the arguments already complete on each
    /// read: a CAS whose first value (1 MiB) is complete while the second arrives byte by
    /// byte would copy 1 MiB per byte, a terabyte in all.
    #[test]
    fn big_requests_in_small_pieces_decode_in_linear_time() {
        let limits = Limits::default();
        let big = vec![b'x'; 1 << 20];
        let mut wire = Vec::new();
        encode_command(&[b"CAS", b"k", &big, &big], &mut wire);
        let t0 = std::time::Instant::now();
        let (got, e) = decode_chunked(&wire, 1, &limits);
        let byte_by_byte = t0.elapsed();
        assert_eq!(e, None);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][3], big);
        // 16 MiB in 16 KiB reads, as the server reads them, and in 64-byte pieces.
        let huge = vec![b'y'; 16 << 20];
        let mut wire = Vec::new();
        encode_command(&[b"SET", b"k", &huge], &mut wire);
        let t1 = std::time::Instant::now();
        let (got, _) = decode_chunked(&wire, 16 << 10, &limits);
        let reads = t1.elapsed();
        assert_eq!(got[0][2].len(), huge.len());
        let t2 = std::time::Instant::now();
        let (got, _) = decode_chunked(&wire, 64, &limits);
        let small = t2.elapsed();
        assert_eq!(got[0][2].len(), huge.len());
        eprintln!(
            "decoder: 2 MiB CAS byte by byte {byte_by_byte:?}, 16 MiB SET in 16 KiB reads \
             {reads:?}, in 64-byte pieces {small:?}"
        );
        // Linear: a few seconds at most even in a debug build on a loaded machine; the
        // quadratic parser needs hours for the first case.
        for (what, t) in [("byte by byte", byte_by_byte), ("64-byte pieces", small)] {
            assert!(t < std::time::Duration::from_secs(60), "{what}: {t:?}");
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let text = "[^\r\n]{0,12}";
        let leaf = prop_oneof![
            text.prop_map(Value::Simple),
            text.prop_map(Value::Error),
            any::<i64>().prop_map(Value::Integer),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..20)).prop_map(Value::Bulk),
            Just(Value::Array(None)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop::collection::vec(inner, 0..6).prop_map(|v| Value::Array(Some(v)))
        })
    }

    proptest! {
        #[test]
        fn reply_round_trip(v in arb_value()) {
            let mut wire = Vec::new();
            encode(&v, &mut wire);
            prop_assert_eq!(parse_reply(&wire), Ok(Some((v, wire.len()))));
            for cut in 0..wire.len() {
                prop_assert_eq!(parse_reply(&wire[..cut]), Ok(None));
            }
        }

        #[test]
        fn command_round_trip(cmd in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 1..6)) {
            let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            let mut wire = Vec::new();
            encode_command(&refs, &mut wire);
            prop_assert_eq!(parse_command(&wire), Ok(Some((cmd, wire.len()))));
        }

        #[test]
        fn decoder_matches_the_parser_on_any_input(
            bytes in prop::collection::vec(prop_oneof![
                Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'1'), Just(b'2'),
                Just(b'-'), Just(b' '), Just(b'"'), Just(b'a'), any::<u8>()
            ], 0..96),
            chunk in 1usize..8,
        ) {
            let limits = Limits { max_args: 8, max_bulk: 32, max_line: 24, max_depth: 4 };
            prop_assert_eq!(decode_chunked(&bytes, chunk, &limits), parse_whole(&bytes, &limits));
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_command(&bytes);
            let _ = parse_reply(&bytes);
        }
    }
}
