//! Porcupine's etcd test logs (Jepsen client-event lines), read as Porcupine reads them:
//!
//! ```text
//! INFO  jepsen.util - 3 :invoke :cas [1 4]
//! INFO  jepsen.util - 3 :fail :cas [1 4]
//! ```
//!
//! * an `:info` line leaves the operation open: it gets an unknown result at the end;
//! * `:fail :read :timed-out` is an unknown result, not a definite failure;
//! * `:fail :cas [a b]` is a definite failure (the `porcupine-etcd` model reads it as
//!   "the value was not `a`"); other `:fail` lines leave the operation open, as
//!   Porcupine's parser ignores them.
//!
//! Porcupine's kv logs are EDN maps one per line and are read by [`super::edn`].

use serde_json::Value;

use super::edn;
use crate::history::{Op, OpType, Process};

/// Reads an etcd log. Errors carry the 1-based line.
pub fn read_etcd_log(text: &str) -> Result<Vec<Op>, (usize, String)> {
    let mut ops = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let err = |m: String| (line_no, m);
        let Some(rest) = line.split_once("jepsen.util -").map(|(_, r)| r) else {
            return Err(err(format!(
                "not a Jepsen client-event line (expected \"INFO  jepsen.util - <process> \
                 :<type> :<f> <value>\"): {}",
                short(line)
            )));
        };
        let mut parts = rest.split_whitespace();
        let (Some(proc), Some(kind), Some(f)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err("expected <process> :<type> :<f> <value>".into()));
        };
        let value_text = parts.collect::<Vec<_>>().join(" ");
        let process = proc
            .parse::<u64>()
            .map(Process::Client)
            .map_err(|_| err(format!("process must be an integer, got {proc:?}")))?;
        let f = f
            .strip_prefix(':')
            .ok_or_else(|| err(format!(":f must be a keyword, got {f:?}")))?;
        if !matches!(f, "read" | "write" | "cas") {
            return Err(err(format!(
                "unknown :f :{f} (an etcd log has :read, :write and :cas)"
            )));
        }
        let value = if value_text.is_empty() {
            Value::Null
        } else {
            let forms = edn::read_all(&value_text).map_err(|e| err(e.message))?;
            match forms.len() {
                1 => forms
                    .into_iter()
                    .next()
                    .map(|f| f.value)
                    .unwrap_or(Value::Null),
                _ => return Err(err(format!("expected one value, got {value_text:?}"))),
            }
        };
        let kind = match (kind, f) {
            (":invoke", _) => OpType::Invoke,
            (":ok", _) => OpType::Ok,
            (":fail", "read") if value == Value::String("timed-out".into()) => OpType::Info,
            (":fail", "cas") => OpType::Fail,
            // Porcupine ignores these lines: the operation stays open.
            (":info" | ":fail", _) => continue,
            (other, _) => {
                return Err(err(format!(
                    "unknown type {other} (expected :invoke, :ok, :fail or :info)"
                )));
            }
        };
        let value = if kind == OpType::Info {
            Value::Null
        } else {
            value
        };
        ops.push(Op {
            index: ops.len() as u64,
            time: line_no as u64,
            process,
            kind,
            f: f.to_owned(),
            key: None,
            value,
            error: (kind == OpType::Info).then(|| "timed-out".to_owned()),
            node: None,
        });
    }
    Ok(ops)
}

fn short(s: &str) -> String {
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(60)])
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Outcome, pair};
    use serde_json::json;

    #[test]
    fn reads_porcupines_way() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - 1\t:invoke\t:cas\t[1 4]\n\
                   INFO  jepsen.util - 2   :invoke   :write   3\n\
                   INFO  jepsen.util - 0\t:fail\t:read\t:timed-out\n\
                   INFO  jepsen.util - 1\t:fail\t:cas\t[1 4]\n\
                   INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n";
        let ops = pair(&read_etcd_log(log).unwrap());
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].outcome, Outcome::Unknown);
        assert_eq!(ops[1].outcome, Outcome::Fail);
        assert_eq!(ops[1].input, json!([1, 4]));
        assert_eq!(ops[2].outcome, Outcome::Unknown);
        assert_eq!(ops[2].input, json!(3));
    }

    #[test]
    fn malformed_lines() {
        let (line, m) =
            read_etcd_log("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nhello\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(m.contains("not a Jepsen client-event line"), "{m}");
        let (_, m) = read_etcd_log("INFO  jepsen.util - x\t:invoke\t:read\tnil").unwrap_err();
        assert!(m.contains("process must be an integer"), "{m}");
        let (_, m) = read_etcd_log("INFO  jepsen.util - 1\t:invoke\t:incr\t1").unwrap_err();
        assert!(m.contains("unknown :f"), "{m}");
        let (_, m) = read_etcd_log("INFO  jepsen.util - 1\t:done\t:read\t1").unwrap_err();
        assert!(m.contains("unknown type"), "{m}");
        let (_, m) = read_etcd_log("INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2").unwrap_err();
        assert!(m.contains("end of input"), "{m}");
    }
}
