//! The JSONL reader's machinery: a fast path for the exact event shape Stasis writes, and
//! the block pipeline that feeds lines to it, on one thread or several.
//!
//! The fast path ([`parse_fast`]) accepts only lines spelled the way [`super::Op`]'s
//! serializer spells them: the keys in declaration order, no whitespace, strings without
//! escapes. It borrows the strings from the line instead of allocating, and builds a
//! `serde_json::Value` only for the event's value. Any line it does not accept goes to
//! the general path (`serde_json::from_str::<Op>`), so every error, every odd-but-valid
//! spelling and every torn line is handled by exactly the code that handled it before.
//!
//! The pipeline reads the input in blocks cut at newlines. Each block is parsed into
//! [`Item`]s (one per non-blank line) by a worker; the caller consumes the blocks in file
//! order, so line numbers, validation and pairing stay sequential and exact. Within a
//! block the fast path reads each event straight from the block's text and the line
//! ends where the event does; only lines it refuses are cut at their newline first.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::mpsc;

use serde_json::Value;

use super::{NO_INDEX, Op, OpType, Process};

/// One event with its strings borrowed from the line where it could be (fast path) or
/// owned (general path).
#[derive(Debug, PartialEq)]
pub(crate) struct Event<'a> {
    pub index: u64,
    pub time: u64,
    pub process: Process,
    pub kind: OpType,
    pub f: Cow<'a, str>,
    pub key: Option<Cow<'a, str>>,
    pub value: Value,
    pub error: Option<Cow<'a, str>>,
    pub node: Option<Cow<'a, str>>,
}

impl Event<'_> {
    pub fn into_op(self) -> Op {
        Op {
            index: self.index,
            time: self.time,
            process: self.process,
            kind: self.kind,
            f: self.f.into_owned(),
            key: self.key.map(Cow::into_owned),
            value: self.value,
            error: self.error.map(Cow::into_owned),
            node: self.node.map(Cow::into_owned),
        }
    }
}

impl From<Op> for Event<'static> {
    fn from(op: Op) -> Self {
        Event {
            index: op.index,
            time: op.time,
            process: op.process,
            kind: op.kind,
            f: Cow::Owned(op.f),
            key: op.key.map(Cow::Owned),
            value: op.value,
            error: op.error.map(Cow::Owned),
            node: op.node.map(Cow::Owned),
        }
    }
}

/// A byte range of a block's text (a line ending 4 GiB or more into its block takes the
/// general path).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    start: u32,
    end: u32,
}

/// An event read by the fast path, its strings as ranges of the block's text.
#[derive(Debug, PartialEq)]
pub(crate) struct FastEvent {
    index: u64,
    time: u64,
    process: Process,
    kind: OpType,
    f: Span,
    key: Option<Span>,
    value: Value,
    error: Option<Span>,
    node: Option<Span>,
}

impl FastEvent {
    /// The event, borrowing its strings from its block's text.
    pub fn resolve(self, text: &str) -> Event<'_> {
        let s = |sp: Span| Cow::Borrowed(&text[sp.start as usize..sp.end as usize]);
        Event {
            index: self.index,
            time: self.time,
            process: self.process,
            kind: self.kind,
            f: s(self.f),
            key: self.key.map(s),
            value: self.value,
            error: self.error.map(s),
            node: self.node.map(s),
        }
    }
}

/// What one non-blank line turned into.
#[derive(Debug)]
pub(crate) enum Line {
    Fast(FastEvent),
    Slow(Box<Op>),
    /// A torn final line; the reason for the warning.
    Torn(&'static str),
    /// A line that is not an event; the message for `file:line: message`.
    Bad(String),
}

/// One parsed line: its number within the block (1-based) and what it holds.
#[derive(Debug)]
pub(crate) struct Item {
    pub line: usize,
    pub what: Line,
}

/// A parsed block: its text (empty when the block was not valid UTF-8; then every item is
/// owned), its items and how many lines it spans. Only the parallel pipeline keeps a
/// block's items; on one thread each item goes to the consumer as it is parsed.
pub(crate) struct Block {
    text: String,
    items: Vec<Item>,
    lines: usize,
}

impl Block {
    /// The block's text buffer and item vector, to be reused for a later block: freeing
    /// and allocating a megabyte or two per block would hand the pages back to the system
    /// and fault them in again.
    fn into_buffers(self) -> Buffers {
        Buffers {
            text: self.text.into_bytes(),
            items: self.items,
        }
    }
}

/// Takes the parsed lines of the input in order, block by block: the reader's validator
/// and sink ([`super::Events`]), or a test's.
pub(crate) trait Consumer {
    type Error;
    /// One non-blank line of the current block; `text` is the block's text, which the
    /// spans of a `Fast` item index. `Ok(false)` ends the input here (a torn final line).
    fn item(&mut self, text: &str, item: Item) -> Result<bool, Self::Error>;
    /// The current block ended after `lines` lines.
    fn end_block(&mut self, lines: usize);
    /// Reading the input failed; the input ends with this error.
    fn io_error(&mut self, e: io::Error) -> Self::Error;
}

/// The reusable allocations of a block (see [`Block::into_buffers`]).
#[derive(Default)]
struct Buffers {
    text: Vec<u8>,
    items: Vec<Item>,
}

/// Parses one line the way the reader always has: `serde_json` into an [`Op`].
pub(crate) fn parse_general(text: &str, terminated: bool) -> Line {
    match serde_json::from_str::<Op>(text) {
        Ok(op) => Line::Slow(Box::new(op)),
        // A final line without its newline that does not parse is what a harness killed
        // mid-write leaves behind: drop it, keep everything before it.
        Err(e) if !terminated && e.is_eof() => Line::Torn("it ends mid-event"),
        Err(e) => Line::Bad(super::describe_json_error(&e)),
    }
}

/// Parses a block of whole lines (the last one unterminated only at the end of the input)
/// and hands each non-blank line's item to `emit` as soon as it is parsed, with the
/// block's text; stops early (returning `Ok(None)`) when `emit` returns `Ok(false)`.
/// Returns the block's text (empty when it was not valid UTF-8) and its number of lines.
/// Handing items over one by one instead of collecting them saves moving every parsed
/// event through a vector on the single-threaded path.
fn parse_block<E>(
    buf: Vec<u8>,
    mut emit: impl FnMut(&str, Item) -> Result<bool, E>,
) -> Result<Option<(String, usize)>, E> {
    let text = match String::from_utf8(buf) {
        Ok(t) => t,
        Err(e) => return parse_block_bytes(&e.into_bytes(), emit),
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut lines = 0;
    // Spans are u32 offsets: a block of 4 GiB or more (one giant line) takes the general path.
    let spans_fit = u32::try_from(bytes.len()).is_ok();
    while pos < bytes.len() {
        lines += 1;
        // Most lines are events spelled as Stasis writes them: the fast path reads one
        // straight from the block and it is a whole line if its `}` ends the line. The
        // fast path never reads past a newline (its strings stop at control characters,
        // its general values refuse one), so it reads exactly what it would read from the
        // line cut out first; this saves searching for the newline separately.
        if spans_fit
            && bytes[pos] == b'{'
            && let Some((ev, len)) = parse_fast(&text[pos..], pos as u32)
            && matches!(bytes.get(pos + len), None | Some(b'\n'))
        {
            let item = Item {
                line: lines,
                what: Line::Fast(ev),
            };
            if !emit(&text, item)? {
                return Ok(None);
            }
            pos += len + 1;
            continue;
        }
        let (end, next, terminated) = match memchr::memchr(b'\n', &bytes[pos..]) {
            Some(i) => (pos + i, pos + i + 1, true),
            None => (bytes.len(), bytes.len(), false),
        };
        let raw = &text[pos..end];
        // Trimming is a no-op for a line from `{` to `}`, which most are.
        let t = match raw.as_bytes() {
            [b'{', .., b'}'] => raw,
            _ => raw.trim(),
        };
        if !t.is_empty() {
            let offset = pos + (t.as_ptr() as usize - raw.as_ptr() as usize);
            // (Trimmed or CRLF lines: the fast path again, on the line alone.)
            let fast = u32::try_from(offset + t.len())
                .ok()
                .and_then(|_| parse_fast(t, offset as u32))
                .filter(|&(_, len)| len == t.len())
                .map(|(ev, _)| ev);
            let what = match fast {
                Some(ev) => Line::Fast(ev),
                None => parse_general(t, terminated),
            };
            if !emit(&text, Item { line: lines, what })? {
                return Ok(None);
            }
        }
        pos = next;
    }
    Ok(Some((text, lines)))
}

/// A block that is not valid UTF-8: line by line, as the reader always did.
fn parse_block_bytes<E>(
    bytes: &[u8],
    mut emit: impl FnMut(&str, Item) -> Result<bool, E>,
) -> Result<Option<(String, usize)>, E> {
    let mut lines = 0;
    for chunk in bytes.split_inclusive(|&b| b == b'\n') {
        lines += 1;
        let terminated = chunk.last() == Some(&b'\n');
        let what = match std::str::from_utf8(chunk) {
            Ok(t) => {
                let t = t.trim();
                if t.is_empty() {
                    continue;
                }
                parse_general(t, terminated)
            }
            Err(_) if !terminated => Line::Torn("it is not valid UTF-8"),
            Err(e) => Line::Bad(format!("not valid UTF-8 ({e})")),
        };
        if !emit("", Item { line: lines, what })? {
            return Ok(None);
        }
    }
    Ok(Some((String::new(), lines)))
}

/// Parses a block into a [`Block`] that keeps its items (for the parallel pipeline).
fn collect_block(buf: Vec<u8>, mut items: Vec<Item>) -> Block {
    items.clear();
    items.reserve(buf.len() / 96 + 1);
    let parsed = parse_block(buf, |_, item| {
        items.push(item);
        Ok::<_, std::convert::Infallible>(true)
    });
    let Ok(Some((text, lines))) = parsed else {
        unreachable!("collecting never stops early")
    };
    Block { text, items, lines }
}

/// Reads the input in blocks of whole lines (at least `size` bytes unless the input ends).
struct Blocks<R> {
    reader: R,
    carry: Vec<u8>,
    size: usize,
    done: bool,
}

impl<R: Read> Blocks<R> {
    fn new(reader: R, size: usize) -> Self {
        Blocks {
            reader,
            carry: Vec::new(),
            size: size.max(1),
            done: false,
        }
    }

    /// The next block, read into `buf`; `None` at the end of the input.
    fn next(&mut self, mut buf: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        buf.clear();
        buf.append(&mut self.carry);
        let mut want = self.size;
        loop {
            let scanned = buf.len();
            if buf.len() < want {
                // read_to_end on a Take fills the spare capacity without zeroing it first,
                // and retries on Interrupted.
                let wanted = want - buf.len();
                buf.reserve(wanted);
                match (&mut self.reader).take(wanted as u64).read_to_end(&mut buf) {
                    Ok(n) if n < wanted => self.done = true,
                    Ok(_) => {}
                    Err(e) => {
                        self.done = true;
                        return Err(e);
                    }
                }
            }
            if self.done {
                return Ok((!buf.is_empty()).then_some(buf));
            }
            // Cut after the last newline; a line longer than the block grows the block.
            match memchr::memrchr(b'\n', &buf[scanned.min(buf.len())..]) {
                Some(i) => {
                    let cut = scanned + i + 1;
                    self.carry.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    return Ok(Some(buf));
                }
                None => want = buf.len() * 2,
            }
        }
    }
}

/// Block size of the pipeline.
pub(crate) const BLOCK: usize = 1 << 20;

/// Reads and parses the input in blocks of about `block` bytes on this thread, handing
/// every line to `consumer` in input order as it is parsed.
pub(crate) fn for_each_block<R: Read, C: Consumer>(
    reader: R,
    block: usize,
    consumer: &mut C,
) -> Result<(), C::Error> {
    let mut blocks = Blocks::new(reader, block);
    let mut spare = Vec::new();
    loop {
        match blocks.next(std::mem::take(&mut spare)) {
            Ok(Some(buf)) => {
                let parsed = parse_block(buf, |text, item| consumer.item(text, item))?;
                let Some((text, lines)) = parsed else {
                    return Ok(());
                };
                consumer.end_block(lines);
                spare = text.into_bytes();
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(consumer.io_error(e)),
        }
    }
}

/// As [`for_each_block`], with `workers` threads parsing blocks while the caller's thread
/// consumes them in order (a reader thread fills the blocks). At most `2 * workers + 2`
/// blocks are in flight, so memory stays bounded whatever the file size.
pub(crate) fn for_each_block_parallel<R: Read + Send, C: Consumer>(
    reader: R,
    block: usize,
    workers: usize,
    consumer: &mut C,
) -> Result<(), C::Error> {
    let window = 2 * workers + 2;
    // Every job holds one of `window` buffers, so sending a job never blocks.
    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<u8>, Vec<Item>)>(window);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        // Free buffers go back to the reader; holding one is the right to read a block.
        let (free_tx, free_rx) = mpsc::sync_channel::<Buffers>(window);
        for _ in 0..window {
            free_tx.send(Buffers::default()).expect("receiver alive");
        }
        let (done_tx, done_rx) = mpsc::sync_channel::<(u64, io::Result<Block>)>(window);
        {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut blocks = Blocks::new(reader, block);
                let mut seq = 0u64;
                while let Ok(Buffers { text, items }) = free_rx.recv() {
                    match blocks.next(text) {
                        Ok(Some(b)) => {
                            if job_tx.send((seq, b, items)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            let _ = done_tx.send((seq, Err(e)));
                            return;
                        }
                    }
                    seq += 1;
                }
            });
        }
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || {
                loop {
                    let job = job_rx.lock().expect("no panics holding it").recv();
                    let Ok((seq, buf, items)) = job else { return };
                    if done_tx.send((seq, Ok(collect_block(buf, items)))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Returning drops free_tx and done_rx: the reader and the workers then stop.
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        while let Ok((seq, block)) = done_rx.recv() {
            pending.insert(seq, block);
            while let Some(block) = pending.remove(&next) {
                next += 1;
                match block {
                    Ok(mut block) => {
                        for item in block.items.drain(..) {
                            if !consumer.item(&block.text, item)? {
                                return Ok(());
                            }
                        }
                        consumer.end_block(block.lines);
                        let _ = free_tx.try_send(block.into_buffers());
                    }
                    Err(e) => return Err(consumer.io_error(e)),
                }
            }
        }
        Ok(())
    })
}

/// The bytes of `w` (eight bytes, little-endian) that end a string on the fast path: `"`,
/// `\` and control characters (below 0x20). The lowest set bit marks the first such byte
/// exactly (each test flags a byte with its high bit; a borrow can flag a byte wrongly only
/// above a byte it flagged rightly); bytes above it may be flagged wrongly.
#[inline(always)]
fn string_stops(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control) & HIGH
}

/// Whether the eight bytes of `w` are all ASCII digits.
#[inline(always)]
fn eight_digits(w: u64) -> bool {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    // A digit has high nibble 3 and stays below 0x40 when 6 is added; a byte of 0xfa or
    // more carries into the next byte, but its own high nibble already fails the test.
    (w & HIGH_NIBBLES) | ((w.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) >> 4)
        == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits (the first in the lowest byte), by adding neighbours
/// in pairs, then pairs of pairs (as simdjson reads them).
#[inline(always)]
fn eight_digits_value(w: u64) -> u64 {
    let w = ((w & 0x0f0f_0f0f_0f0f_0f0f).wrapping_mul(2561)) >> 8;
    let w = ((w & 0x00ff_00ff_00ff_00ff).wrapping_mul(6_553_601)) >> 16;
    ((w & 0x0000_ffff_0000_ffff).wrapping_mul(42_949_672_960_001)) >> 32
}

/// A cursor over a line for the fast path. It keeps the rest of the line as a slice, so
/// consuming a literal costs one length check (an index would need its sum with the
/// literal's length checked for overflow and against the line first).
struct Cur<'a> {
    /// What is left of the line.
    rest: &'a [u8],
    /// The length of the whole line: the cursor is at `len - rest.len()`.
    len: usize,
}

impl<'a> Cur<'a> {
    fn new(line: &'a [u8]) -> Self {
        Cur {
            rest: line,
            len: line.len(),
        }
    }

    /// Where the cursor is in the line.
    fn pos(&self) -> usize {
        self.len - self.rest.len()
    }

    /// Consumes the literal `l` if the line continues with it. A fixed-size comparison,
    /// inlined: the literals are the event's field names, a call to `memcmp` for each was
    /// a tenth of the reader's instructions.
    #[inline(always)]
    fn lit<const N: usize>(&mut self, l: &[u8; N]) -> bool {
        match self.rest.split_first_chunk::<N>() {
            Some((w, tail)) if w == l => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// A JSON unsigned integer as serde_json reads it into a `u64`: no sign, no leading
    /// zero, no fraction or exponent (checked by the caller's next literal), no overflow.
    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        let s = self.rest;
        // Up to 19 digits cannot overflow a u64: no overflow checks in the loop.
        let stop = s.len().min(19);
        let mut i = 0;
        let mut n = 0u64;
        // Times are ten digits or more a few seconds into a run: their first eight at once.
        if let Some(w) = s.first_chunk::<8>() {
            let w = u64::from_le_bytes(*w);
            if eight_digits(w) {
                n = eight_digits_value(w);
                i = 8;
            }
        }
        while i < stop {
            let d = s[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            n = n * 10 + u64::from(d);
            i += 1;
        }
        if i == 0 || (i > 1 && s[0] == b'0') {
            return None;
        }
        // A twentieth digit may still fit; a twenty-first never does.
        if let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9) {
            n = n.checked_mul(10)?.checked_add(u64::from(d))?;
            i += 1;
            if s.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
        self.rest = s.get(i..)?;
        Some(n)
    }

    /// The rest of a string whose opening quote was consumed: no escapes, no control
    /// characters (which serde_json rejects); the closing quote is consumed. The span is
    /// in the line's positions.
    #[inline(always)]
    fn str(&mut self) -> Option<Span> {
        let start = self.pos();
        // Short strings (f, keys, values): eight bytes at a time in a word (a SIMD
        // search's set-up costs more than these strings), the last few one by one.
        let s = self.rest;
        let mut end = 0;
        loop {
            let Some(w) = s.get(end..end + 8) else {
                end += s[end..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
                break;
            };
            let hit = string_stops(u64::from_le_bytes(w.try_into().expect("eight bytes")));
            if hit != 0 {
                end += (hit.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        if s[end] != b'"' {
            return None;
        }
        self.rest = &s[end + 1..];
        Some(Span {
            start: start as u32,
            end: (start + end) as u32,
        })
    }

    /// An event's value; simple ones without serde, the rest through `serde_json::Value`.
    /// `text` is the line (the cursor's bytes).
    fn value(&mut self, text: &str) -> Option<Value> {
        let start = self.pos();
        let from = self.rest;
        match self.peek()? {
            b'n' if self.lit(b"null") => return Some(Value::Null),
            b'"' => {
                self.rest = &from[1..];
                if let Some(sp) = self.str() {
                    let s = &text[sp.start as usize..sp.end as usize];
                    return Some(Value::String(s.to_owned()));
                }
            }
            b'0'..=b'9' => {
                if let Some(n) = self.u64()
                    && matches!(self.peek(), Some(b',' | b'}'))
                {
                    return Some(Value::from(n));
                }
            }
            // Whitespace before the value: the general path's business.
            b' ' | b'\t' | b'\r' | b'\n' => return None,
            _ => {}
        }
        self.rest = from;
        let mut values = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        let v = values.next()?.ok()?;
        let taken = values.byte_offset();
        // Deep nesting: leave serde_json's recursion limit to the general path, where the
        // value sits one level deeper than here. A newline (whitespace inside the value)
        // means the value does not end on this line: the general path's business too.
        let mut depth = 0;
        for &b in from.get(..taken)? {
            match b {
                b'[' | b'{' => depth += 1,
                b'\n' => return None,
                _ => {}
            }
        }
        if depth > 64 {
            return None;
        }
        self.rest = from.get(taken..)?;
        Some(v)
    }
}

/// The fast path: an event spelled exactly as Stasis writes it
/// (`{"index":..,"time":..,"process":..,"type":"..","f":"..",["key":"..",]"value":..
/// [,"error":".."][,"node":".."]}`, `index` optional), or `None` for anything else, which
/// then takes the general path. `offset` is where `line` starts in the block's text.
/// Returns the event and the bytes it took: `line` may go on past the event (the rest of
/// the block); the caller decides whether the event was the whole line. The fast path
/// never reads past a newline.
fn parse_fast(line: &str, offset: u32) -> Option<(FastEvent, usize)> {
    let mut c = Cur::new(line.as_bytes());
    let index = if c.lit(b"{\"index\":") {
        let i = c.u64()?;
        if !c.lit(b",\"time\":") {
            return None;
        }
        i
    } else if c.lit(b"{\"time\":") {
        NO_INDEX
    } else {
        return None;
    };
    let time = c.u64()?;
    if !c.lit(b",\"process\":") {
        return None;
    }
    let process = if c.lit(b"\"nemesis\"") {
        Process::Nemesis
    } else {
        Process::Client(c.u64()?)
    };
    if !c.lit(b",\"type\":\"") {
        return None;
    }
    let kind = if c.lit(b"invoke\"") {
        OpType::Invoke
    } else if c.lit(b"ok\"") {
        OpType::Ok
    } else if c.lit(b"fail\"") {
        OpType::Fail
    } else if c.lit(b"info\"") {
        OpType::Info
    } else {
        return None;
    };
    if !c.lit(b",\"f\":\"") {
        return None;
    }
    let f = c.str()?;
    let key = if c.lit(b",\"key\":\"") {
        Some(c.str()?)
    } else {
        None
    };
    if !c.lit(b",\"value\":") {
        return None;
    }
    let value = c.value(line)?;
    let error = if c.lit(b",\"error\":\"") {
        Some(c.str()?)
    } else {
        None
    };
    let node = if c.lit(b",\"node\":\"") {
        Some(c.str()?)
    } else {
        None
    };
    if !c.lit(b"}") {
        return None;
    }
    let at = |sp: Span| Span {
        start: sp.start + offset,
        end: sp.end + offset,
    };
    let ev = FastEvent {
        index,
        time,
        process,
        kind,
        f: at(f),
        key: key.map(at),
        value,
        error: error.map(at),
        node: node.map(at),
    };
    Some((ev, c.pos()))
}

/// Both paths on one line, for the tests: the fast path's event (if it takes the line)
/// and the general path's.
#[cfg(test)]
pub(crate) fn both_paths(line: &str) -> (Option<Op>, Result<Op, String>) {
    let fast = parse_fast(line, 0)
        .filter(|&(_, len)| len == line.len())
        .map(|(ev, _)| ev.resolve(line).into_op());
    let general = serde_json::from_str::<Op>(line).map_err(|e| e.to_string());
    (fast, general)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use serde_json::json;

    use super::*;
    use crate::history::{Events, describe_json_error, torn_warning};

    type Read = Result<(Vec<Op>, Vec<String>), String>;

    /// The reader as it was before the fast path and the blocks: serde_json line by line,
    /// and the validator of that time. The new reader must agree with it on everything.
    fn reference(bytes: &[u8]) -> Read {
        let path = Path::new("h.jsonl");
        let (mut ops, mut warnings) = (Vec::new(), Vec::new());
        let mut outstanding: HashMap<u64, String> = HashMap::new();
        let mut crashed: HashMap<u64, u64> = HashMap::new();
        let mut count = 0;
        for (i, buf) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let terminated = buf.last() == Some(&b'\n');
            let err = |m: String| format!("h.jsonl:{line}: {m}");
            let text = match std::str::from_utf8(buf) {
                Ok(t) => t.trim(),
                Err(_) if !terminated => {
                    warnings.push(torn_warning(path, line, "it is not valid UTF-8"));
                    break;
                }
                Err(e) => return Err(err(format!("not valid UTF-8 ({e})"))),
            };
            if text.is_empty() {
                continue;
            }
            let mut op: Op = match serde_json::from_str(text) {
                Ok(op) => op,
                Err(e) if !terminated && e.is_eof() => {
                    warnings.push(torn_warning(path, line, "it ends mid-event"));
                    break;
                }
                Err(e) => return Err(err(describe_json_error(&e))),
            };
            if op.index == NO_INDEX {
                op.index = count;
            }
            count += 1;
            if let Process::Client(p) = op.process {
                if op.kind == OpType::Invoke {
                    if let Some(f) = outstanding.get(&p) {
                        return Err(err(format!(
                            "process {p} invokes {} while its {f} is still outstanding \
                             (a process runs one operation at a time)",
                            op.f
                        )));
                    }
                    if let Some(index) = crashed.get(&p) {
                        return Err(err(format!(
                            "process {p} invokes {} after its operation ended with info at \
                             index {index} (after info a worker must continue as a new process)",
                            op.f
                        )));
                    }
                    outstanding.insert(p, op.f.clone());
                } else {
                    let Some(f) = outstanding.remove(&p) else {
                        return Err(err(format!(
                            "{} of {} by process {p} has no matching invoke",
                            op.kind, op.f
                        )));
                    };
                    if f != op.f {
                        return Err(err(format!(
                            "process {p} completes {} but invoked {f}",
                            op.f
                        )));
                    }
                    if op.kind == OpType::Info {
                        crashed.insert(p, op.index);
                    }
                }
            } else if op.kind != OpType::Info {
                return Err(err(format!(
                    "nemesis events must have type \"info\", got \"{}\"",
                    op.kind
                )));
            }
            ops.push(op);
        }
        Ok((ops, warnings))
    }

    /// The new reader with `block`-byte blocks on `workers` threads (0: this thread).
    fn read(bytes: &[u8], block: usize, workers: usize) -> Read {
        let mut ops = Vec::new();
        let mut events = Events::new(Path::new("h.jsonl"), |ev: Event<'_>| ops.push(ev.into_op()));
        let r = if workers == 0 {
            for_each_block(bytes, block, &mut events)
        } else {
            for_each_block_parallel(bytes, block, workers, &mut events)
        };
        let warnings = std::mem::take(&mut events.warnings);
        drop(events);
        r.map_err(|e| e.to_string())?;
        Ok((ops, warnings))
    }

    fn agree(bytes: &[u8], what: &str) {
        let want = reference(bytes);
        for (block, workers) in [(BLOCK, 0), (1, 0), (61, 0), (61, 3), (4096, 2), (BLOCK, 2)] {
            assert_eq!(
                read(bytes, block, workers),
                want,
                "{what}: block {block}, {workers} workers"
            );
        }
    }

    /// The fast path's integers agree with serde_json's `u64` on every length around the
    /// eight-digit steps, on leading zeros and on overflow, whatever follows them.
    #[test]
    fn integers_read_as_serde_reads_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut cases: Vec<String> = [
            "0",
            "00",
            "01",
            "7",
            "10000000",
            "99999999",
            "100000000",
            "0000000012",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "123456789012345678901",
            "12345678a",
            "1234567/",
            "1234567:",
        ]
        .map(String::from)
        .to_vec();
        for len in 1..=21 {
            for _ in 0..50 {
                let mut t: String = (0..len)
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                if rng.random_bool(0.2) {
                    let at = rng.random_range(0..len);
                    t.replace_range(at..at + 1, "x");
                }
                cases.push(t);
            }
        }
        // What follows the number: the end of the block (the byte-by-byte loop), or more of
        // the line (the eight-digit word), including bytes that carry in the digit test.
        let tails: [&[u8]; 4] = [
            b",",
            b",\"type\":\"ok\"",
            b",\xff\xfa\xff\xfa\xff\xfa\xff\xfa",
            b",9999999999",
        ];
        for t in cases {
            for tail in tails {
                let mut line = t.clone().into_bytes();
                line.extend_from_slice(tail);
                let mut c = Cur::new(&line);
                let fast = c.u64().filter(|_| c.rest[0] == b',');
                let want = serde_json::from_str::<u64>(&t).ok();
                assert_eq!(fast, want, "{t} then {tail:?}");
            }
        }
    }

    /// The word-at-a-time string scan stops where a byte-by-byte scan stops: at the first
    /// `"`, `\` or control character, at every position of a word and in the last bytes.
    #[test]
    fn string_scan_stops_at_the_first_special_byte() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let specials = [b'"', b'\\', 0, b'\n', 0x1f];
        let plain = [
            b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xc3, 0xff, 0x21, 0x5d,
        ];
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let mut s: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_bool(0.1) {
                        specials[rng.random_range(0..specials.len())]
                    } else {
                        plain[rng.random_range(0..plain.len())]
                    }
                })
                .collect();
            if rng.random_bool(0.5) {
                s.push(b'"');
            }
            let at = rng.random_range(0..=s.len());
            let mut c = Cur {
                rest: &s[at..],
                len: s.len(),
            };
            let want = s[at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .filter(|&n| s[at + n] == b'"')
                .map(|n| (at as u32, (at + n) as u32));
            let got = c.str().map(|sp| (sp.start, sp.end));
            assert_eq!(got, want, "{s:?} from {at}");
            if let Some((_, end)) = want {
                assert_eq!(c.pos(), end as usize + 1);
            }
        }
    }

    /// Lines as Stasis writes them take the fast path and read as the general path reads.
    #[test]
    fn canonical_lines_take_the_fast_path() {
        let lines = [
            r#"{"index":0,"time":421,"process":13,"type":"invoke","f":"write","key":"k56","value":"v13-0"}"#,
            r#"{"index":1,"time":1141,"process":91,"type":"invoke","f":"read","key":"k484","value":null}"#,
            r#"{"index":3,"time":0,"process":0,"type":"ok","f":"read","key":"k","value":18446744073709551615}"#,
            r#"{"index":4,"time":9,"process":4,"type":"info","f":"cas","key":"k7","value":[5,6],"error":"timeout"}"#,
            r#"{"index":5,"time":9,"process":4,"type":"fail","f":"cas","key":"k7","value":[5,6],"error":"NOTLEADER n2","node":"n1"}"#,
            r#"{"index":6,"time":9,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2","n3"]}}"#,
            r#"{"index":7,"time":9,"process":4,"type":"ok","f":"read","key":"clé","value":"ünïcode ✓"}"#,
            r#"{"index":8,"time":9,"process":4,"type":"ok","f":"read","value":-3}"#,
            r#"{"index":9,"time":9,"process":4,"type":"ok","f":"read","value":1.5}"#,
            r#"{"index":10,"time":9,"process":4,"type":"ok","f":"read","value":"a\"b"}"#,
            r#"{"time":9,"process":4,"type":"ok","f":"read","key":"k","value":0}"#,
        ];
        for line in lines {
            let (fast, general) = both_paths(line);
            assert!(fast.is_some(), "fast path refused {line}");
            assert_eq!(fast, Some(general.unwrap()), "{line}");
        }
    }

    /// Valid lines spelled otherwise go to the general path, which reads them as always;
    /// invalid ones too, so their errors are the general path's.
    #[test]
    fn other_spellings_take_the_general_path() {
        let odd = [
            // Other key order, whitespace, escapes, integer or null keys, explicit nulls.
            r#"{"time":9,"index":1,"process":4,"type":"ok","f":"read","value":1}"#,
            r#"{ "index":1,"time":9,"process":4,"type":"ok","f":"read","value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1 }"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value": 1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"re\u0061d","value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","key":"k\n","value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","key":12,"value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","key":null,"value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1,"error":null}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read"}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1,"node":"n1","error":"x"}"#,
            // Invalid: overflow, leading zeros, negative or fractional integers, duplicate
            // and unknown fields, bad types, trailing text, control characters, torn.
            r#"{"index":18446744073709551616,"time":9,"process":4,"type":"ok","f":"read","value":1}"#,
            r#"{"index":01,"time":9,"process":4,"type":"ok","f":"read","value":1}"#,
            r#"{"index":1,"time":9,"process":-4,"type":"ok","f":"read","value":1}"#,
            r#"{"index":1,"time":9.5,"process":4,"type":"ok","f":"read","value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1,"value":2}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1,"vaule":2}"#,
            r#"{"index":1,"time":9,"process":4,"type":"done","f":"read","value":1}"#,
            r#"{"index":1,"time":9,"process":"n1","type":"ok","f":"read","value":1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1}x"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1}}"#,
            "{\"index\":1,\"time\":9,\"process\":4,\"type\":\"ok\",\"f\":\"re\tad\",\"value\":1}",
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":[1,2"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":0x1}"#,
            r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":tru}"#,
        ];
        for line in odd {
            let (fast, general) = both_paths(line);
            assert_eq!(fast, None, "fast path took {line}");
            let _ = general;
        }
        // And deep values stay with the general path and its recursion limit.
        let deep = format!(
            r#"{{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":{}{}}}"#,
            "[".repeat(127),
            "]".repeat(127)
        );
        let (fast, general) = both_paths(&deep);
        assert_eq!(fast, None);
        assert!(general.is_err(), "serde_json's limit is 128 levels");
    }

    /// A random history: mostly Stasis' own spelling, with odd-but-valid lines, blank
    /// lines, CRLF endings and non-ASCII text mixed in.
    fn history(rng: &mut ChaCha8Rng, n: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut open: HashMap<u64, (String, String)> = HashMap::new();
        let mut next_process = 0u64;
        let mut live: Vec<u64> = (0..5).collect();
        next_process += 5;
        let mut time = 0u64;
        for index in 0..n as u64 {
            time += rng.random_range(1..1000);
            let mut op = if rng.random_bool(0.03) {
                let mut o = Op {
                    index,
                    time,
                    process: Process::Nemesis,
                    kind: OpType::Info,
                    f: "start-partition".into(),
                    key: None,
                    value: json!({"n1": ["n2", "n3"], "shape": rng.random_range(0..9)}),
                    error: None,
                    node: None,
                };
                if rng.random_bool(0.3) {
                    o.value = json!([1.25, -7, "x\u{e9}", null, true]);
                }
                o
            } else {
                let slot = rng.random_range(0..live.len());
                let p = live[slot];
                match open.remove(&p) {
                    None => {
                        let f = ["read", "write", "cas", "r\u{e9}ad"][rng.random_range(0..4)];
                        let key = format!("k{}", rng.random_range(0..20));
                        open.insert(p, (f.to_owned(), key.clone()));
                        Op {
                            index,
                            time,
                            process: Process::Client(p),
                            kind: OpType::Invoke,
                            f: f.into(),
                            key: Some(key),
                            value: match f {
                                "write" => json!(format!("v{p}-{index}")),
                                "cas" => json!([rng.random_range(0..5), rng.random_range(0..5)]),
                                _ => Value::Null,
                            },
                            error: None,
                            node: None,
                        }
                    }
                    Some((f, key)) => {
                        let kind = [OpType::Ok, OpType::Ok, OpType::Fail, OpType::Info]
                            [rng.random_range(0..4)];
                        if kind == OpType::Info {
                            live[slot] = next_process;
                            next_process += 1;
                        }
                        Op {
                            index,
                            time,
                            process: Process::Client(p),
                            kind,
                            f,
                            key: Some(key),
                            value: match rng.random_range(0..4) {
                                0 => Value::Null,
                                1 => json!(rng.random::<u64>()),
                                2 => json!(format!("v\"{index}\\")),
                                _ => json!(format!("v{index}")),
                            },
                            error: (kind != OpType::Ok).then(|| "timeout".to_owned()),
                            node: rng.random_bool(0.5).then(|| "n2".to_owned()),
                        }
                    }
                }
            };
            if rng.random_bool(0.1) {
                op.index = NO_INDEX;
            }
            let mut line = serde_json::to_string(&op).unwrap();
            if op.index == NO_INDEX {
                line = line.replacen(&format!("\"index\":{NO_INDEX},"), "", 1);
            }
            match rng.random_range(0..40) {
                // Sorted keys, whitespace, an escaped f, an integer key.
                0 => line = serde_json::to_value(&op).unwrap().to_string(),
                1 => line = format!("  {}\t", line.replace(",\"", ", \"")),
                2 => line = line.replacen("\"f\":\"r", "\"f\":\"\\u0072", 1),
                3 => {
                    if let Some(k) = &op.key {
                        let int = format!("\"key\":{}", &k[1..]);
                        line = line.replacen(&format!("\"key\":\"{k}\""), &int, 1);
                    }
                }
                4 => line.push('\r'),
                5 => lines.push(String::new()),
                _ => {}
            }
            lines.push(line);
        }
        lines
    }

    #[test]
    fn generated_histories_read_as_before() {
        let mut rng = ChaCha8Rng::seed_from_u64(24);
        for round in 0..12 {
            let lines = history(&mut rng, 300);
            let mut text = lines.join("\n");
            text.push('\n');
            let (ops, warnings) = reference(text.as_bytes()).expect("generated history is valid");
            assert!(warnings.is_empty() && ops.len() == 300);
            agree(text.as_bytes(), &format!("round {round}"));
            // Torn anywhere in the last line, with or without its newline.
            let last = text[..text.len() - 1].rfind('\n').unwrap() + 1;
            for cut in [last + 1, last + 10, text.len() - 2, text.len() - 1] {
                agree(
                    &text.as_bytes()[..cut],
                    &format!("round {round}, cut at {cut}"),
                );
            }
            // Invalid UTF-8 at the very end (torn) and inside (an error).
            let mut bytes = text.as_bytes().to_vec();
            bytes.extend_from_slice(b"{\"time\":\xe2\x82");
            agree(&bytes, "torn inside a character");
            let mut bytes = text.as_bytes().to_vec();
            let at = rng.random_range(0..bytes.len());
            bytes.insert(at, 0xff);
            agree(&bytes, "stray byte");
            // A bad line somewhere: its error and line number, whichever path it took.
            let bad = [
                "{not json}",
                r#"{"index":1,"time":9,"process":4,"type":"ok","f":"read","value":1,"vaule":2}"#,
                r#"{"index":1,"time":9,"process":999,"type":"ok","f":"read","value":1}"#,
                r#"{"index":1,"time":9,"process":"nemesis","type":"ok","f":"x","value":1}"#,
                r#"{"index":1,"time":9,"process":4,"type":"invoke","f":"read","value":null}"#,
                r#"{"index":1,"time":9,"process":4,"type":"ok","f":"wrong","value":null}"#,
            ];
            for b in bad {
                let mut l = lines.clone();
                l.insert(rng.random_range(0..l.len()), b.to_owned());
                let text = l.join("\n");
                let want = reference(text.as_bytes());
                assert!(want.is_err() || b.contains("invoke") || b.contains("wrong"));
                agree(text.as_bytes(), b);
            }
        }
    }

    /// Every history of the shared test data (EDN and Porcupine logs), written out as
    /// Stasis JSONL, reads back the same through both paths.
    #[test]
    fn shared_testdata_reads_back_the_same() {
        // shared/testdata beside the repository clone, or $STASIS_TESTDATA (as the
        // integration tests' common::testdata: a git worktree elsewhere).
        let data = std::env::var_os("STASIS_TESTDATA").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
            Into::into,
        );
        let table = std::fs::read_to_string(data.join("EXPECTED.tsv"))
            .expect("shared/testdata beside the repository");
        let mut files = 0;
        for row in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let cols: Vec<&str> = row.split('\t').collect();
            let format = crate::format::Format::from_id(cols[1]).expect("known format");
            let loaded = crate::format::load(&data.join(cols[0]), Some(format)).expect(cols[0]);
            let mut out = Vec::new();
            crate::history::write_jsonl(&loaded.ops, &mut out).unwrap();
            // Not every EDN history passes the JSONL validator; then both must fail alike.
            if let Ok((ops, _)) = reference(&out) {
                assert_eq!(ops, loaded.ops, "{}", cols[0]);
            }
            agree(&out, cols[0]);
            files += 1;
        }
        assert!(files >= 10, "only {files} files in EXPECTED.tsv");
    }
}
