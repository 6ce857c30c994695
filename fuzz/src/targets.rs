//! One fuzz target per parser. Each runs the parser the way the program does, then checks
//! what must hold for any input: no panic, errors are one line, what was read round-trips
//! through the writer, small histories go through the checker (which interprets values
//! per model) without panicking.

use std::path::Path;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use checker::format::{edn, porcupine};
use checker::history::{self, Op};
use checker::{CheckOptions, ModelKind, TimeUnit};

use crate::engine::{Target, signature, size_class};

/// Every target, in the order scripts/fuzz.sh runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "jsonl",
        about: "Stasis JSONL history reader (checker::history), write-back round trip, check",
        run: jsonl,
        dict: &[
            "{\"index\":",
            "\"time\":",
            "\"process\":",
            "\"nemesis\"",
            "\"type\":",
            "\"invoke\"",
            "\"ok\"",
            "\"fail\"",
            "\"info\"",
            "\"f\":",
            "\"read\"",
            "\"write\"",
            "\"cas\"",
            "\"key\":",
            "\"value\":",
            "\"error\":",
            "\"node\":",
            "null",
            "[1,2]",
            "}\n",
        ],
        max_len: 16 << 10,
        shared_seeds: &[],
    },
    Target {
        name: "jepsen-edn",
        about: "Jepsen EDN history reader (checker::format::edn), EDN round trip, check",
        run: jepsen_edn,
        dict: &[
            "{:type :invoke, :f :read, :process 0, :value nil}",
            ":type",
            ":invoke",
            ":ok",
            ":fail",
            ":info",
            ":f",
            ":cas",
            ":write",
            ":read",
            ":process",
            ":nemesis",
            ":value",
            ":time",
            ":index",
            "nil",
            "true",
            "#{",
            "#jepsen.history.Op",
            "#_",
            "\\newline",
            "[",
            "]",
            "(",
            ")",
            "\"",
            "1N",
            "1.5M",
            "1/2",
        ],
        max_len: 16 << 10,
        shared_seeds: &[("knossos", ".edn")],
    },
    Target {
        name: "porcupine-etcd-log",
        about: "Porcupine's etcd logs (checker::format::porcupine), check with porcupine-etcd",
        run: porcupine_etcd_log,
        dict: &[
            "INFO  jepsen.util - ",
            ":invoke",
            ":ok",
            ":fail",
            ":info",
            ":read",
            ":write",
            ":cas",
            "nil",
            "[1 4]",
            ":timed-out",
            "\t",
            "\n",
        ],
        max_len: 16 << 10,
        shared_seeds: &[("porcupine/jepsen", ".log")],
    },
    Target {
        name: "porcupine-kv-edn",
        about: "Porcupine's kv logs (EDN maps, checker::format::edn), check with porcupine-kv",
        run: porcupine_kv_edn,
        dict: &[
            "{:process 0, :type :invoke, :f :get, :key \"0\", :value nil}",
            ":get",
            ":put",
            ":append",
            ":key",
            ":value",
            ":process",
            ":type",
            ":invoke",
            ":ok",
            "nil",
            "\"x\"",
        ],
        max_len: 16 << 10,
        shared_seeds: &[("porcupine/kv", ".txt")],
    },
    Target {
        name: "sut-spec",
        about: "SUT spec TOML (harness::sut::SutSpec::parse), launcher and membership rendering",
        run: sut_spec,
        dict: &[
            "name = ",
            "client = \"resp\"",
            "client = \"etcd\"",
            "[start]",
            "program = ",
            "args = [",
            "peer_format = ",
            "peer_separator = ",
            "[membership]",
            "command = [",
            "voter_format = ",
            "join_args = [",
            "join_replaces = [",
            "ready_timeout = ",
            "{id}",
            "{addr}",
            "{peers}",
            "{voters}",
            "{data_dir}",
            "{stasis_node}",
            "{client_port}",
            "{peer_port}",
            "{k}",
            "{",
            "}",
            "[start.env]",
            "faketime = true",
            "\"\"\"",
        ],
        max_len: 8 << 10,
        shared_seeds: &[],
    },
    Target {
        name: "campaign",
        about: "campaign TOML (harness::campaign::Campaign::parse) and cell expansion",
        run: campaign,
        dict: &[
            "name = ",
            "budget = ",
            "time_limit = ",
            "systems = [",
            "nemesis = [",
            "workloads = [",
            "nodes = [",
            "seeds = ",
            "target = ",
            "shapes = ",
            "\"raft\"",
            "\"multipaxos\"",
            "\"partition\"",
            "\"kill\"",
            "\"clock\"",
            "\"disk\"",
            "\"net\"",
            "\"register\"",
            "\"1m\"",
            "\"10s\"",
            "nemesis_interval = ",
            "[[workloads]]",
            "keys = ",
            "write_pct = ",
            "cas_pct = ",
            "rate = ",
            "concurrency = ",
            "op_timeout = ",
            "\"kill,pause\"",
            "[",
            "]",
        ],
        max_len: 8 << 10,
        shared_seeds: &[],
    },
    Target {
        name: "resp",
        about: "the node's RESP decoder (node::resp): commands and replies, split-feed consistency",
        run: resp,
        dict: &[
            "*",
            "$",
            "+",
            "-",
            ":",
            "\r\n",
            "-1",
            "*1\r\n",
            "$3\r\nGET\r\n",
            "SET",
            "PING",
        ],
        max_len: 4 << 10,
        shared_seeds: &[],
    },
    Target {
        name: "wal",
        about: "WAL recovery (node::storage::wal) of corrupted segments on the simulated fs",
        run: wal,
        dict: &["STWAL001"],
        max_len: 8 << 10,
        shared_seeds: &[],
    },
    Target {
        name: "snapshot",
        about: "snapshot loading (node::storage::snapshot) of corrupted files",
        run: snapshot,
        dict: &["STSNAP01"],
        max_len: 4 << 10,
        shared_seeds: &[],
    },
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Errors shown to people are one line.
fn one_line(kind: &str, msg: &str) -> u64 {
    assert!(!msg.contains('\n'), "{kind} error is not one line: {msg:?}");
    signature(kind, msg)
}

/// Checks a small history against `model` within tight budgets; the signature of the
/// verdict or error.
fn check_small(ops: &[Op], model: ModelKind, unit: TimeUnit) -> u64 {
    if ops.len() > 40 {
        return 0;
    }
    let mut opts = CheckOptions::new(model);
    opts.time_unit = unit;
    opts.threads = 1;
    opts.timeout = Some(Duration::from_millis(50));
    opts.max_memo_bytes = 16 << 20;
    match checker::check_history(ops, &opts) {
        Ok(r) => signature(model.id(), r.verdict.id()),
        Err(e) => one_line("check", &e.to_string()),
    }
}

/// A second model for the same history, picked by the input so every model's value
/// interpretation is reached.
fn other_model(data: &[u8]) -> ModelKind {
    ModelKind::ALL[data.len() % ModelKind::ALL.len()]
}

fn jsonl(data: &[u8]) -> u64 {
    let path = Path::new("fuzz.jsonl");
    match history::read_jsonl_from(std::io::Cursor::new(data), path) {
        Err(e) => one_line("jsonl", &e.to_string()),
        Ok(h) => {
            for w in &h.warnings {
                one_line("jsonl warning", w);
            }
            // What the writer writes, the reader reads back unchanged.
            let mut out = Vec::new();
            history::write_jsonl(&h.ops, &mut out).expect("write to memory");
            let back = history::read_jsonl_from(std::io::Cursor::new(&out), path)
                .unwrap_or_else(|e| panic!("written history does not read back: {e}"));
            assert_eq!(back.ops, h.ops, "JSONL round trip changed the history");
            size_class(h.ops.len())
                ^ check_small(&h.ops, ModelKind::Kv, TimeUnit::Nanos)
                ^ check_small(&h.ops, other_model(data), TimeUnit::Nanos)
        }
    }
}

fn edn_history(data: &[u8], model: ModelKind) -> u64 {
    // Histories are UTF-8 text (format::load reads them with read_to_string).
    let Ok(text) = std::str::from_utf8(data) else {
        return 1;
    };
    match edn::read_history(text) {
        Err(e) => one_line("edn", &e.message),
        Ok(ops) => {
            let mut out = Vec::new();
            edn::write_history(&ops, &mut out).expect("write to memory");
            let text = String::from_utf8(out).expect("EDN writer writes UTF-8");
            let back = edn::read_history(&text)
                .unwrap_or_else(|e| panic!("written EDN does not read back: {}", e.message));
            assert_eq!(back, ops, "EDN round trip changed the history");
            size_class(ops.len())
                ^ check_small(&ops, model, TimeUnit::Events)
                ^ check_small(&ops, other_model(data), TimeUnit::Events)
        }
    }
}

fn jepsen_edn(data: &[u8]) -> u64 {
    edn_history(data, ModelKind::CasRegister)
}

fn porcupine_kv_edn(data: &[u8]) -> u64 {
    edn_history(data, ModelKind::PorcupineKv)
}

fn porcupine_etcd_log(data: &[u8]) -> u64 {
    let Ok(text) = std::str::from_utf8(data) else {
        return 1;
    };
    match porcupine::read_etcd_log(text) {
        Err((_, msg)) => one_line("etcd log", &msg),
        Ok(ops) => {
            size_class(ops.len())
                ^ check_small(&ops, ModelKind::PorcupineEtcd, TimeUnit::Events)
                ^ check_small(&ops, other_model(data), TimeUnit::Events)
        }
    }
}

fn nodes(n: usize) -> Vec<harness::nodes::NodeInfo> {
    (0..n)
        .map(|i| harness::nodes::NodeInfo {
            name: format!("n{}", i + 1),
            addr: std::net::Ipv4Addr::new(10, 201, 0, 10 + i as u8),
            client_port: 6379,
            peer_port: 7000,
            netns: format!("stasis-fuzz-n{}", i + 1),
            dir: format!("/nonexistent/stasis-fuzz/n{}", i + 1).into(),
            spare: i >= 3,
            aux: None,
        })
        .collect()
}

fn sut_spec(data: &[u8]) -> u64 {
    let Ok(text) = std::str::from_utf8(data) else {
        return 1;
    };
    match harness::sut::SutSpec::parse(text, Path::new("fuzz.toml")) {
        Err(e) => one_line("sut", &format!("{e:#}")),
        Ok(spec) => {
            let all = nodes(4);
            let launch = spec.launcher(Path::new("/nonexistent/stasis-node"));
            let mut sig = 2;
            for me in &all {
                let l = launch(me, &all);
                sig ^= size_class(l.args.len());
            }
            if let Some(cmd) = spec.membership_command(&all[..3]) {
                sig ^= size_class(cmd.len()) << 8;
            }
            let _ = spec.ready_timeout();
            sig
        }
    }
}

fn campaign(data: &[u8]) -> u64 {
    let Ok(text) = std::str::from_utf8(data) else {
        return 1;
    };
    // A directory that does not exist: system names that are paths are looked up in it.
    let path = Path::new("/nonexistent/stasis-fuzz/campaign.toml");
    match harness::campaign::Campaign::parse(text, path) {
        Err(e) => one_line("campaign", &format!("{e:#}")),
        Ok(c) => {
            if c.len() <= 10_000 {
                let cells = c.expand(None);
                assert_eq!(cells.len(), c.len(), "expand disagrees with len");
            }
            size_class(c.len())
        }
    }
}

fn resp(data: &[u8]) -> u64 {
    use node::resp::{CommandDecoder, Limits, encode, parse_command_with, parse_reply_with};
    let limits = Limits {
        max_args: 64,
        max_bulk: 1 << 10,
        max_line: 256,
        max_depth: 8,
    };
    let mut sig = 3;
    // Commands, as the server reads them: one after another from a buffer.
    let mut rest = data;
    let mut commands = 0;
    let mut parsed = Vec::new();
    let mut error = None;
    loop {
        match parse_command_with(rest, &limits) {
            Ok(Some((args, used))) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "consumed {used} of {}",
                    rest.len()
                );
                // A complete command is also complete (and the same) with more bytes after
                // it, and incomplete when cut short.
                let cut = &rest[..used - 1];
                if let Ok(Some((_, u))) = parse_command_with(cut, &limits) {
                    panic!(
                        "command of {used} bytes also parses from {u} of its first {} bytes",
                        used - 1
                    )
                }
                parsed.push(args);
                commands += 1;
                rest = &rest[used..];
            }
            Ok(None) => break,
            Err(e) => {
                sig ^= one_line("resp command", &e.to_string());
                error = Some(e);
                break;
            }
        }
    }
    sig ^= size_class(commands);
    // The server's incremental decoder, fed in pieces (their size from the first byte),
    // gives the same commands and the same error.
    let piece = usize::from(data.first().copied().unwrap_or(0) % 7) + 1;
    let mut decoder = CommandDecoder::new(limits);
    let mut decoded = Vec::new();
    let mut decode_error = None;
    'feed: for p in data.chunks(piece) {
        decoder.push(p);
        loop {
            match decoder.next_command() {
                Ok(Some(args)) => decoded.push(args),
                Ok(None) => break,
                Err(e) => {
                    decode_error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(
        decoded, parsed,
        "the decoder in {piece}-byte pieces disagrees"
    );
    assert_eq!(decode_error, error, "the decoder's error differs");
    // Replies, as the harness client reads them; what parses re-encodes to the same bytes
    // and parses back to the same value.
    match parse_reply_with(data, &limits) {
        Ok(Some((value, used))) => {
            assert!(used > 0 && used <= data.len());
            let mut out = Vec::new();
            encode(&value, &mut out);
            // Default limits: lossy UTF-8 decoding may have made a line longer.
            match parse_reply_with(&out, &Limits::default()) {
                Ok(Some((again, n))) => {
                    assert_eq!(n, out.len(), "re-encoded reply not consumed whole");
                    assert_eq!(again, on_the_wire(value), "reply changed through encode");
                }
                other => panic!("re-encoded reply does not parse: {other:?}"),
            }
            sig ^= 5 << 16;
        }
        Ok(None) => sig ^= 7 << 16,
        Err(e) => sig ^= one_line("resp reply", &e.to_string()) << 1,
    }
    sig
}

/// What [`node::resp::encode`] documents it sends for `v`: CR and LF inside simple
/// strings and errors become spaces.
fn on_the_wire(v: node::resp::Value) -> node::resp::Value {
    use node::resp::Value;
    let clean = |s: String| s.replace(['\r', '\n'], " ");
    match v {
        Value::Simple(s) => Value::Simple(clean(s)),
        Value::Error(s) => Value::Error(clean(s)),
        Value::Array(Some(items)) => {
            Value::Array(Some(items.into_iter().map(on_the_wire).collect()))
        }
        other => other,
    }
}

/// A damage to a storage file.
#[derive(Arbitrary, Debug)]
enum Damage {
    /// Flip bits of one byte.
    Flip { at: u16, mask: u8 },
    /// Overwrite bytes.
    Write { at: u16, bytes: Vec<u8> },
    /// Cut the file.
    Truncate { len: u16 },
    /// Zero-fill from an offset (what power loss leaves on some file systems).
    ZeroTail { from: u16, len: u8 },
    /// Set a u32 (a length field, a segment kind).
    Word { at: u16, value: u32 },
    /// Write a well-formed WAL frame (length field, CRC32 of length ‖ payload, payload):
    /// damage that passes the checksum and reaches the decoder's deeper checks (a length
    /// with the sync-mark flag, a sync mark pointing anywhere).
    Frame {
        at: u16,
        len_field: u32,
        payload: Vec<u8>,
    },
    /// Append garbage.
    Append { bytes: Vec<u8> },
}

fn apply(file: &mut Vec<u8>, d: &Damage) {
    let len = file.len().max(1);
    match d {
        Damage::Flip { at, mask } => {
            if !file.is_empty() {
                file[*at as usize % len] ^= mask | 1;
            }
        }
        Damage::Write { at, bytes } => {
            let at = (*at as usize % len).min(file.len());
            let end = (at + bytes.len()).min(file.len());
            file.splice(at..end, bytes.iter().copied());
        }
        Damage::Truncate { len } => file.truncate(*len as usize % (file.len() + 1)),
        Damage::ZeroTail { from, len: n } => {
            let from = (*from as usize % len).min(file.len());
            file.truncate(from);
            file.extend(std::iter::repeat_n(0, *n as usize));
        }
        Damage::Word { at, value } => {
            if file.len() >= 4 {
                let at = *at as usize % (file.len() - 3);
                file[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Damage::Append { bytes } => file.extend_from_slice(bytes),
        Damage::Frame {
            at,
            len_field,
            payload,
        } => {
            let len_bytes = len_field.to_le_bytes();
            let mut h = crc32fast::Hasher::new();
            h.update(&len_bytes);
            h.update(payload);
            let mut frame = len_bytes.to_vec();
            frame.extend_from_slice(&h.finalize().to_le_bytes());
            frame.extend_from_slice(payload);
            let at = (*at as usize % len).min(file.len());
            let end = (at + frame.len()).min(file.len());
            file.splice(at..end, frame);
        }
    }
}

/// A WAL history and the damage done to its segments afterwards.
#[derive(Arbitrary, Debug)]
struct WalCase {
    /// Small segments make several of them.
    segment_bytes: u8,
    /// Batches of records; each batch is synced unless its flag says otherwise.
    batches: Vec<(Vec<Vec<u8>>, bool)>,
    /// Rewrite (compact) the log to these records after the batches.
    rewrite: Option<Vec<Vec<u8>>>,
    /// (segment index, damage).
    damage: Vec<(u8, Damage)>,
    /// Leave a stray `.tmp` file or a badly named file.
    stray: Option<(bool, Vec<u8>)>,
}

fn wal(data: &[u8]) -> u64 {
    use node::storage::file::{Fs, SimFs};
    use node::storage::wal::{Wal, WalOptions};
    let Ok(case) = WalCase::arbitrary(&mut Unstructured::new(data)) else {
        return 1;
    };
    let sim = SimFs::new();
    let fs: std::sync::Arc<dyn Fs> = std::sync::Arc::new(sim.clone());
    let dir = Path::new("/wal");
    let opts = WalOptions {
        segment_bytes: 32 + u64::from(case.segment_bytes) * 4,
        max_record_bytes: 1 << 10,
    };
    let (mut log, recovered) = Wal::open(fs.clone(), dir, opts).expect("open an empty WAL");
    assert!(recovered.records.is_empty());
    let mut written: Vec<Vec<u8>> = Vec::new();
    for (records, sync) in case.batches.iter().take(16) {
        for r in records.iter().take(16) {
            match log.append(r) {
                Ok(()) => written.push(r.clone()),
                Err(e) => {
                    one_line("wal append", &e.to_string());
                }
            }
        }
        if *sync {
            log.sync().expect("sync on the simulated fs");
        }
    }
    if let Some(records) = &case.rewrite {
        let records: Vec<Vec<u8>> = records
            .iter()
            .take(16)
            .filter(|r| r.len() <= 1 << 10)
            .cloned()
            .collect();
        log.rewrite(&records).expect("rewrite on the simulated fs");
        written = records;
    }
    log.sync().expect("sync on the simulated fs");
    drop(log);
    let segments = fs.list(dir).expect("list");
    let mut damaged = false;
    for (seg, d) in case.damage.iter().take(8) {
        if segments.is_empty() {
            break;
        }
        let path = dir.join(&segments[*seg as usize % segments.len()]);
        let mut content = fs.read(&path).expect("read segment");
        let before = content.clone();
        apply(&mut content, d);
        damaged |= content != before;
        let mut f = fs.create(&path).expect("recreate segment");
        f.write_all(&content).expect("write");
        f.sync().expect("sync");
    }
    if let Some((tmp, name)) = &case.stray {
        let name = if *tmp {
            "00000000000000000099.wal.tmp".to_string()
        } else {
            format!(
                "{}.wal",
                String::from_utf8_lossy(name).replace(['/', '\0'], "_")
            )
        };
        // A stray named as a segment of the log would replace that segment: damage, not a
        // stray (found by this target: a rewrite's segment overwritten by "stray").
        if !name.starts_with('.') && name != ".wal" && !segments.contains(&name) {
            let mut f = fs.create(&dir.join(&name)).expect("create stray");
            f.write_all(b"stray").expect("write");
        }
    }
    match Wal::open(fs, dir, opts) {
        Ok((mut log, rec)) => {
            if !damaged {
                assert_eq!(
                    rec.records, written,
                    "undamaged WAL lost or changed records"
                );
            }
            // A recovered log takes new records.
            log.append(b"after").expect("append after recovery");
            log.sync().expect("sync after recovery");
            size_class(rec.records.len()) ^ u64::from(rec.truncated_tail.is_some()) << 8
        }
        Err(e) => {
            assert!(
                damaged || case.stray.is_some(),
                "undamaged WAL fails to open: {e}"
            );
            one_line("wal open", &e.to_string())
        }
    }
}

/// A snapshot and the damage done to it (or raw bytes as the whole file).
#[derive(Arbitrary, Debug)]
enum SnapCase {
    Saved {
        payload: Vec<u8>,
        damage: Vec<Damage>,
    },
    Raw(Vec<u8>),
}

fn snapshot(data: &[u8]) -> u64 {
    use node::storage::file::{Fs, SimFs};
    use node::storage::snapshot::SnapshotStore;
    let Ok(case) = SnapCase::arbitrary(&mut Unstructured::new(data)) else {
        return 1;
    };
    let fs: std::sync::Arc<dyn Fs> = std::sync::Arc::new(SimFs::new());
    let dir = Path::new("/snap");
    let store = SnapshotStore::new(fs.clone(), dir).expect("open store");
    let path = store.path();
    let (expect, content) = match &case {
        SnapCase::Saved { payload, damage } => {
            store.save(payload).expect("save");
            let mut content = fs.read(&path).expect("read");
            let before = content.clone();
            for d in damage.iter().take(8) {
                apply(&mut content, d);
            }
            let intact = content == before;
            (intact.then(|| payload.clone()), content)
        }
        SnapCase::Raw(bytes) => (None, bytes.clone()),
    };
    let mut f = fs.create(&path).expect("create");
    f.write_all(&content).expect("write");
    f.sync().expect("sync");
    match SnapshotStore::new(fs, dir).expect("reopen").load() {
        Ok(Some(p)) => {
            if let Some(want) = expect {
                assert_eq!(p, want, "intact snapshot loads different bytes");
            }
            size_class(p.len())
        }
        Ok(None) => panic!("an existing snapshot file loads as no snapshot"),
        Err(e) => {
            assert!(expect.is_none(), "intact snapshot fails to load: {e}");
            one_line("snapshot", &e.to_string())
        }
    }
}
