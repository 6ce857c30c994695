//! A small EDN reader and writer: lists, vectors, maps, sets, keywords, symbols, strings,
//! characters, integers, floats, booleans, nil, `;` comments, `#_` discards and tagged
//! elements (`#jepsen.history.Op{...}` reads as its map). Values become `serde_json`
//! values: keywords and symbols lose their colon and become strings, sets become lists,
//! map keys become strings.

use serde_json::{Map, Number, Value};

use crate::history::{Op, OpType, Process};

/// An EDN syntax error at a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdnError {
    pub line: usize,
    pub message: String,
}

/// One top-level form and the line it starts on.
pub struct Form {
    pub line: usize,
    pub value: Value,
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    depth: usize,
}

/// Deeper nesting than this is an error, not a stack overflow.
const MAX_DEPTH: usize = 256;
/// Longest text of a map key that is not a string (it becomes a JSON object key as text;
/// maps nested as keys double their escaping at every level).
const MAX_KEY_TEXT: usize = 4096;

/// Reads every top-level form of `text`.
pub fn read_all(text: &str) -> Result<Vec<Form>, EdnError> {
    let mut r = Reader {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
        depth: 0,
    };
    let mut out = Vec::new();
    loop {
        r.skip_ws()?;
        if r.pos >= r.s.len() {
            return Ok(out);
        }
        let line = r.line;
        match r.read()? {
            Some(value) => out.push(Form { line, value }),
            None => return Err(r.err("unexpected closing delimiter")),
        }
    }
}

/// Reads `text` as a history: either one collection of op maps, or a sequence of op maps.
/// Each op gets `time` = its position (EDN histories are in real-time order).
pub fn read_history(text: &str) -> Result<Vec<Op>, EdnError> {
    let mut r = Reader {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
        depth: 0,
    };
    // Elements are read one at a time so each keeps its own line for messages.
    let mut maps: Vec<(usize, Value)> = Vec::new();
    r.skip_ws()?;
    let close = match r.peek() {
        Some(b'[') => Some(b']'),
        Some(b'(') => Some(b')'),
        _ => None,
    };
    if close.is_some() {
        r.pos += 1;
    }
    loop {
        r.skip_ws()?;
        if r.pos >= r.s.len() {
            if close.is_some() {
                return Err(
                    r.err("unexpected end of input: the history's collection is not closed")
                );
            }
            break;
        }
        let line = r.line;
        match r.read()? {
            Some(v) => maps.push((line, v)),
            None if close.is_some() && r.peek() == close => {
                r.pos += 1;
                r.skip_ws()?;
                if r.pos < r.s.len() {
                    return Err(r.err("unexpected text after the history's closing delimiter"));
                }
                break;
            }
            None => return Err(r.err("unexpected closing delimiter")),
        }
    }
    let mut ops = Vec::with_capacity(maps.len());
    for (pos, (line, v)) in maps.into_iter().enumerate() {
        let op = to_op(v, pos as u64).map_err(|message| EdnError {
            line,
            message: format!("operation {pos}: {message}"),
        })?;
        ops.push(op);
    }
    Ok(ops)
}

fn to_op(v: Value, pos: u64) -> Result<Op, String> {
    let Value::Object(mut m) = v else {
        return Err(format!(
            "expected a map like {{:process 0, :type :invoke, :f :read, :value nil}}, got {}",
            short(&v)
        ));
    };
    let process = match m.remove("process") {
        Some(Value::Number(n)) if n.as_u64().is_some() => Process::Client(n.as_u64().unwrap_or(0)),
        Some(Value::String(s)) if s == "nemesis" => Process::Nemesis,
        Some(other) => return Err(format!("bad :process {}", short(&other))),
        None => return Err("missing :process".into()),
    };
    let kind = match m.remove("type") {
        Some(Value::String(s)) => match s.as_str() {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => {
                // Named escaped and cut short: a string value may hold a newline, and the
                // error must stay one line (found by fuzz.sh, target porcupine-kv-edn).
                let shown: String = other.chars().take(60).collect();
                return Err(format!(
                    ":type must be :invoke, :ok, :fail or :info, got :{}",
                    shown.escape_debug()
                ));
            }
        },
        Some(other) => return Err(format!("bad :type {}", short(&other))),
        None => return Err("missing :type".into()),
    };
    let f = match m.remove("f") {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None if process == Process::Nemesis => String::new(),
        Some(other) => return Err(format!("bad :f {}", short(&other))),
        None => return Err("missing :f".into()),
    };
    let key = match m.remove("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let index = match m.remove("index") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(pos),
        _ => pos,
    };
    let error = match m.remove("error") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    Ok(Op {
        index,
        time: pos,
        process,
        kind,
        f,
        key,
        value: m.remove("value").unwrap_or(Value::Null),
        error,
        node: None,
    })
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

impl Reader<'_> {
    fn err(&self, message: &str) -> EdnError {
        EdnError {
            line: self.line,
            message: message.to_owned(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> Result<(), EdnError> {
        while let Some(c) = self.peek() {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b'#' if self.s.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    if self.read()?.is_none() {
                        return Err(self.err("#_ must be followed by a form"));
                    }
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Reads one form; `None` if the next character closes a collection (not consumed).
    fn read(&mut self) -> Result<Option<Value>, EdnError> {
        self.skip_ws()?;
        let Some(c) = self.peek() else {
            return Err(self.err("unexpected end of input (an unclosed collection?)"));
        };
        let v = match c {
            b')' | b']' | b'}' => return Ok(None),
            b'(' | b'[' => {
                self.pos += 1;
                Value::Array(self.read_seq(if c == b'(' { b')' } else { b']' })?)
            }
            b'{' => {
                self.pos += 1;
                self.read_map()?
            }
            b'#' => {
                self.pos += 1;
                match self.peek() {
                    Some(b'{') => {
                        self.pos += 1;
                        Value::Array(self.read_seq(b'}')?)
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        // A tagged element: the tag, then the value it tags.
                        self.token();
                        match self.read()? {
                            Some(v) => v,
                            None => return Err(self.err("a tag must be followed by a form")),
                        }
                    }
                    _ => return Err(self.err("unsupported dispatch after '#'")),
                }
            }
            b'"' => Value::String(self.read_string()?),
            b'\\' => {
                self.pos += 1;
                let t = self.token();
                Value::String(match t {
                    "newline" => "\n".into(),
                    "space" => " ".into(),
                    "tab" => "\t".into(),
                    _ => t.to_owned(),
                })
            }
            b':' => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return Err(self.err("empty keyword"));
                }
                Value::String(t.to_owned())
            }
            _ => {
                let line = self.line;
                let t = self.token();
                if t.is_empty() {
                    return Err(EdnError {
                        line,
                        message: format!("unexpected character {:?}", c as char),
                    });
                }
                atom(t).map_err(|message| EdnError { line, message })?
            }
        };
        Ok(Some(v))
    }

    fn token(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace()
                || matches!(
                    c,
                    b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
                )
            {
                break;
            }
            self.pos += 1;
        }
        // Token bytes are ASCII delimiters apart; input came from a &str.
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn read_seq(&mut self, close: u8) -> Result<Vec<Value>, EdnError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(&format!("collections nested deeper than {MAX_DEPTH}")));
        }
        let r = self.read_seq_inner(close);
        self.depth -= 1;
        r
    }

    fn read_seq_inner(&mut self, close: u8) -> Result<Vec<Value>, EdnError> {
        let mut out = Vec::new();
        loop {
            match self.read()? {
                Some(v) => out.push(v),
                None => {
                    let c = self.peek().unwrap_or(0);
                    if c != close {
                        return Err(self.err(&format!(
                            "expected '{}' but found '{}'",
                            close as char, c as char
                        )));
                    }
                    self.pos += 1;
                    return Ok(out);
                }
            }
        }
    }

    fn read_map(&mut self) -> Result<Value, EdnError> {
        let items = self.read_seq(b'}')?;
        if items.len() % 2 != 0 {
            return Err(self.err("a map needs an even number of forms"));
        }
        let mut m = Map::new();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let k = match k {
                Value::String(s) => s,
                other => {
                    let text = other.to_string();
                    if text.len() > MAX_KEY_TEXT {
                        return Err(self.err(&format!(
                            "a map key longer than {MAX_KEY_TEXT} bytes as text (maps nested as keys?)"
                        )));
                    }
                    text
                }
            };
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }

    fn read_string(&mut self) -> Result<String, EdnError> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(EdnError {
                    line: start_line,
                    message: "unterminated string".into(),
                });
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not valid UTF-8"))
    }
}

fn atom(t: &str) -> Result<Value, String> {
    match t {
        "nil" => return Ok(Value::Null),
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let first = t.as_bytes()[0];
    let numeric = first.is_ascii_digit()
        || ((first == b'-' || first == b'+') && t.len() > 1 && t.as_bytes()[1].is_ascii_digit());
    if !numeric {
        return Ok(Value::String(t.to_owned()));
    }
    let body = t.trim_end_matches(['N', 'M']);
    if let Ok(i) = body.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(u) = body.parse::<u64>() {
        return Ok(Value::Number(u.into()));
    }
    if let Some(n) = body.parse::<f64>().ok().and_then(Number::from_f64) {
        return Ok(Value::Number(n));
    }
    Err(format!("bad number {t:?}"))
}

/// Writes events as a Jepsen EDN history: a vector with one op map per line.
pub fn write_history<W: std::io::Write>(ops: &[Op], mut out: W) -> std::io::Result<()> {
    out.write_all(b"[")?;
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.write_all(b"\n ")?;
        }
        let mut s = String::with_capacity(96);
        s.push_str(&format!(
            "{{:index {}, :time {}, :process ",
            op.index, op.time
        ));
        match op.process {
            Process::Client(p) => s.push_str(&p.to_string()),
            Process::Nemesis => s.push_str(":nemesis"),
        }
        s.push_str(&format!(", :type :{}, :f {}", op.kind, keyword(&op.f)));
        if let Some(k) = &op.key {
            s.push_str(", :key ");
            write_value(&Value::String(k.clone()), &mut s);
        }
        s.push_str(", :value ");
        write_value(&op.value, &mut s);
        if let Some(e) = &op.error {
            s.push_str(", :error ");
            write_value(&Value::String(e.clone()), &mut s);
        }
        s.push('}');
        out.write_all(s.as_bytes())?;
    }
    out.write_all(b"]\n")?;
    out.flush()
}

fn keyword(s: &str) -> String {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_?!*+<>=./".contains(&c))
        && !s.as_bytes()[0].is_ascii_digit();
    if ok {
        format!(":{s}")
    } else {
        let mut out = String::new();
        write_value(&Value::String(s.to_owned()), &mut out);
        out
    }
}

/// Writes a JSON value as EDN.
pub fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(&Value::String(k.clone()), out);
                out.push(' ');
                write_value(x, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (stasis-fuzz target `jepsen-edn`, an out-of-memory abort): a map
    /// used as a map key became its JSON text, whose escaping doubles at every level, so
    /// 60 nested levels in 1 KiB of EDN asked for gigabytes.
    #[test]
    fn nested_map_keys_are_bounded() {
        let depth = 60;
        let text = format!("{}\"k\" 1}}{}", "{".repeat(depth), " 1}".repeat(depth - 1));
        let Err(e) = read_all(&text) else {
            panic!("60 levels of maps as keys were read");
        };
        assert!(e.message.contains("map key longer than"), "{}", e.message);
        // A shallow composite key still reads.
        let v = read_all("{{:a 1} 2}").unwrap();
        assert_eq!(v.len(), 1);
    }
    use serde_json::json;

    fn one(text: &str) -> Value {
        let f = read_all(text).unwrap();
        assert_eq!(f.len(), 1);
        f.into_iter().next().unwrap().value
    }

    #[test]
    fn scalars_and_collections() {
        assert_eq!(one("nil"), Value::Null);
        assert_eq!(one("-12"), json!(-12));
        assert_eq!(one("1.5"), json!(1.5));
        assert_eq!(one("42N"), json!(42));
        assert_eq!(one(":timed-out"), json!("timed-out"));
        assert_eq!(one("\"a \\\"b\\\"\\n\""), json!("a \"b\"\n"));
        assert_eq!(one("[1 (2 3) #{4}]"), json!([1, [2, 3], [4]]));
        assert_eq!(
            one("{:a 1, \"b\" [true false]}"),
            json!({"a": 1, "b": [true, false]})
        );
        assert_eq!(one("#jepsen.history.Op{:f :read}"), json!({"f": "read"}));
        assert_eq!(one("[1 #_ 2 3] ; comment"), json!([1, 3]));
        assert_eq!(one("\\a"), json!("a"));
        assert_eq!(one("foo/bar"), json!("foo/bar"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = read_all("[1\n2\n").err().unwrap();
        assert!(e.message.contains("end of input"), "{e:?}");
        let e = read_all("{:a 1\n :b}").err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("even number"), "{e:?}");
        let e = read_all("[1 2)").err().unwrap();
        assert!(e.message.contains("expected ']'"), "{e:?}");
        let e = read_all("\n\n\"abc").err().unwrap();
        assert_eq!(e.line, 3);
        let deep = "[".repeat(100_000);
        let e = read_all(&deep).err().unwrap();
        assert!(e.message.contains("nested deeper"), "{e:?}");
        let e = read_all("]").err().unwrap();
        assert!(e.message.contains("closing"), "{e:?}");
        assert!(read_all("#?(:clj 1)").is_err());
    }

    #[test]
    fn histories_in_a_vector_or_one_map_per_line() {
        let v = read_history(
            "[{:type :invoke, :f :write, :value 3, :process 0}\n \
             {:type :ok, :f :write, :value 3, :process 0}\n \
             {:type :info, :f :start, :process :nemesis}]",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].kind, OpType::Ok);
        assert_eq!(v[1].time, 1);
        assert_eq!(v[2].process, Process::Nemesis);
        let v = read_history(
            "{:process 1, :type :invoke, :f :get, :key \"7\", :value nil}\n\
             {:process 1, :type :ok, :f :get, :key \"7\", :value \"x\"}\n",
        )
        .unwrap();
        assert_eq!(v[1].key.as_deref(), Some("7"));
        assert_eq!(v[1].value, json!("x"));
        let e = read_history("{:process 1, :type :done, :f :get}")
            .err()
            .unwrap();
        assert!(e.message.contains(":type must be"), "{e:?}");
        let e = read_history("{:process 1, :type \"ok\nx\", :f :get}")
            .err()
            .unwrap();
        assert!(
            e.message.ends_with("got :ok\\nx") && !e.message.contains('\n'),
            "{e:?}"
        );
        let e = read_history("[{:type :ok, :f :get}]").err().unwrap();
        assert!(e.message.contains("missing :process"), "{e:?}");
        let e = read_history("[1 2]").err().unwrap();
        assert!(e.message.contains("expected a map"), "{e:?}");
    }

    #[test]
    fn writes_what_it_reads() {
        let ops = read_history(
            "[{:index 0, :type :invoke, :f :cas, :key \"k\", :value [1 2], :process 0}\n \
             {:index 1, :type :fail, :f :cas, :key \"k\", :value [1 2], :process 0, :error \"no\"}]",
        )
        .unwrap();
        let mut buf = Vec::new();
        write_history(&ops, &mut buf).unwrap();
        let again = read_history(std::str::from_utf8(&buf).unwrap()).unwrap();
        assert_eq!(again, ops);
    }
}
