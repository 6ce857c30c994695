//! `porcupine-kv`: Porcupine's kv test model. Each key holds a string, `""` at first;
//! `get` returns it, `put` replaces it, `append` concatenates. Partitioned by key each
//! partition has one key; with `--partition none` the state is every key's string.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::SearchOp;
use super::{Interner, Model, argument, unknown_f};
use crate::history::{Operation, Outcome};

/// The model. Strings are hash-consed: a state holds one `u32` id per key, and equal
/// strings always get the same id, so comparing and hashing states costs O(keys) and a
/// memo entry owns no string. The table lives in the model; [`Model::for_partition`] gives
/// each partition a fresh one (one thread uses it, so its lock is never contended).
#[derive(Debug, Default)]
pub struct PorcupineKv {
    store: Mutex<Store>,
    /// Set by `init` when the partition has at most one key: a state is then the id of
    /// that key's string, and a `get` is checked without the store (nor its lock).
    single_key: AtomicBool,
}

/// Base of the polynomial string hash: `h(s + t) = h(s) * BASE^len(t) + h(t)` (mod 2^64),
/// so an append hashes only what it adds. The hash only picks a bucket: ids are given by
/// comparing bytes, so a collision costs a comparison, never a wrong answer.
const BASE: u64 = 0x100_0000_01B3;

fn poly(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1)
    })
}

const NO_ID: u32 = u32::MAX;

/// Strings room is made for once a search has made an eighth of them (about 0.5 MB).
const APPENDS_AHEAD: usize = 8192;

/// A string of the store: a piece (a literal of the history: a put's value, an append's
/// suffix, a read's result) after the string `parent` (`NO_ID`: after nothing). Strings
/// share their prefixes, so a new string costs one node whatever its length.
#[derive(Debug, Clone, Copy)]
struct Node {
    hash: u64,
    len: u32,
    parent: u32,
    piece: u32,
    /// The next id with the same hash.
    next: u32,
}

/// Every distinct string of one partition, once: two ids are equal iff their strings are.
#[derive(Debug, Default)]
struct Store {
    nodes: Vec<Node>,
    /// The first id with a given hash.
    by_hash: FxHashMap<u64, u32>,
    /// Distinct pieces: bytes, hash, `BASE^len`.
    pieces: Vec<(Box<[u8]>, u64, u64)>,
    piece_ids: FxHashMap<Box<[u8]>, u32>,
    /// (string id, piece id) -> id of their concatenation: most appends are met again
    /// in other interleavings and cost one lookup.
    appends: FxHashMap<u64, u32>,
    piece_bytes: usize,
    /// Keys of the partition; with more than one, states are ids of `vecs`.
    n_keys: usize,
    vecs: Vec<Box<[u32]>>,
    vec_ids: FxHashMap<Box<[u32]>, u32>,
    scratch: Vec<u32>,
}

impl Store {
    fn vec_id(&mut self, v: &[u32]) -> u32 {
        if let Some(&i) = self.vec_ids.get(v) {
            return i;
        }
        let i = self.vecs.len() as u32;
        self.vecs.push(v.into());
        self.vec_ids.insert(v.into(), i);
        self.piece_bytes += 8 * v.len() + 64;
        i
    }

    /// The string id of key slot `i` in state `s`.
    fn slot(&self, s: KvState, i: usize) -> u32 {
        if self.n_keys <= 1 {
            s.0
        } else {
            self.vecs[s.0 as usize][i]
        }
    }

    /// `s` with key slot `i` holding string `v`.
    fn with(&mut self, s: KvState, i: usize, v: u32) -> KvState {
        if self.n_keys <= 1 {
            return KvState(v);
        }
        if self.vecs[s.0 as usize][i] == v {
            return s;
        }
        // Built in a reused buffer: a step allocates only when the vector is new.
        let mut n = std::mem::take(&mut self.scratch);
        n.clear();
        n.extend_from_slice(&self.vecs[s.0 as usize]);
        n[i] = v;
        let id = self.vec_id(&n);
        self.scratch = n;
        KvState(id)
    }

    /// Every key's string id, by slot.
    fn all(&self, s: KvState) -> Vec<u32> {
        if self.n_keys <= 1 {
            vec![s.0]
        } else {
            self.vecs[s.0 as usize].to_vec()
        }
    }

    fn piece(&mut self, b: &[u8]) -> u32 {
        if let Some(&i) = self.piece_ids.get(b) {
            return i;
        }
        let i = self.pieces.len() as u32;
        let pow = b.iter().fold(1u64, |p, _| p.wrapping_mul(BASE));
        self.pieces.push((b.into(), poly(0, b), pow));
        self.piece_ids.insert(b.into(), i);
        self.piece_bytes += 2 * b.len() + 64;
        i
    }

    /// The string's bytes, into `out` (cleared first).
    fn bytes_into(&self, mut id: u32, out: &mut Vec<u8>) {
        out.clear();
        let mut parts = Vec::new();
        while id != NO_ID {
            let n = &self.nodes[id as usize];
            parts.push(n.piece);
            id = n.parent;
        }
        for p in parts.iter().rev() {
            out.extend_from_slice(&self.pieces[*p as usize].0);
        }
    }

    /// The id of the string `parent + piece`, added if new. Ids are decided by comparing
    /// bytes (only when hashes collide, which for different strings is rare).
    fn node(&mut self, parent: u32, piece: u32) -> u32 {
        let (ph, plen) = match parent {
            NO_ID => (0, 0),
            p => (self.nodes[p as usize].hash, self.nodes[p as usize].len),
        };
        let (pb, sh, pow) = &self.pieces[piece as usize];
        let h = ph.wrapping_mul(*pow).wrapping_add(*sh);
        let len = plen + pb.len() as u32;
        let first = self.by_hash.get(&h).copied().unwrap_or(NO_ID);
        if first != NO_ID {
            let mut want = Vec::new();
            self.bytes_into(parent, &mut want);
            want.extend_from_slice(&self.pieces[piece as usize].0);
            let mut have = Vec::new();
            let mut id = first;
            while id != NO_ID {
                let n = self.nodes[id as usize];
                if n.len == len {
                    self.bytes_into(id, &mut have);
                    if have == want {
                        return id;
                    }
                }
                id = n.next;
            }
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            hash: h,
            len,
            parent,
            piece,
            next: first,
        });
        self.by_hash.insert(h, id);
        id
    }

    fn intern(&mut self, s: &str) -> u32 {
        let p = self.piece(s.as_bytes());
        self.node(NO_ID, p)
    }

    fn append(&mut self, id: u32, piece: u32) -> u32 {
        let key = u64::from(id) << 32 | u64::from(piece);
        if let Some(&j) = self.appends.get(&key) {
            return j;
        }
        if self.appends.len() == APPENDS_AHEAD / 8 {
            // A search that made this many strings is a hard one (thousands): grow the
            // tables ahead rather than through more doublings. Not sooner: a big table
            // that few strings land in at random still faults in a page for each.
            self.appends.reserve(APPENDS_AHEAD);
            self.by_hash.reserve(APPENDS_AHEAD);
            self.nodes.reserve(APPENDS_AHEAD);
        }
        let j = self.node(id, piece);
        self.appends.insert(key, j);
        j
    }

    fn text(&self, id: u32) -> String {
        let mut b = Vec::new();
        self.bytes_into(id, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    fn bytes(&self) -> usize {
        self.piece_bytes
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + (self.by_hash.capacity() + self.appends.capacity()) * 17
            + self.vec_ids.capacity() * 25
    }
}

impl PorcupineKv {
    fn store(&self) -> MutexGuard<'_, Store> {
        // Only a panic while holding the lock poisons it, and the store stays consistent
        // at every step (ids are pushed before they are handed out).
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A state: with one key (a per-key partition) the id of its string; with several, the
/// id of the vector of every key's string id (vectors are hash-consed too, so a state is
/// always one `u32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KvState(u32);

/// String ids (`Get`, `Put`) and piece ids (`Append`) of the partition's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvStrOp {
    Get(u32),
    Put(u32),
    Append(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvStrInput {
    pub slot: u32,
    pub op: KvStrOp,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Model for PorcupineKv {
    type State = KvState;
    type Input = KvStrInput;

    fn for_partition(&self) -> Option<Self> {
        Some(PorcupineKv::default())
    }

    fn init(&self, cx: &mut Interner) -> KvState {
        let mut st = self.store();
        let empty = st.intern("");
        st.n_keys = cx.keys().len();
        self.single_key.store(st.n_keys <= 1, Ordering::Relaxed);
        match st.n_keys {
            0 | 1 => KvState(empty),
            n => KvState(st.vec_id(&vec![empty; n])),
        }
    }

    fn compile(&self, op: &Operation, cx: &mut Interner) -> Result<Option<KvStrInput>, String> {
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        let slot = cx.key_slot(op.key.as_deref().unwrap_or(""));
        let mut st = self.store();
        let kop = match op.f.as_str() {
            "get" | "read" => match op.outcome {
                Outcome::Ok => KvStrOp::Get(st.intern(&text(&op.output))),
                _ => return Ok(None),
            },
            "put" | "write" => KvStrOp::Put(st.intern(&text(argument(op)))),
            "append" => KvStrOp::Append(st.piece(text(argument(op)).as_bytes())),
            f => return Err(unknown_f("porcupine-kv", f, "get, put, append")),
        };
        Ok(Some(KvStrInput { slot, op: kop }))
    }

    fn step(&self, s: &KvState, input: &KvStrInput) -> Option<KvState> {
        let i = input.slot as usize;
        match input.op {
            KvStrOp::Get(v) if self.single_key.load(Ordering::Relaxed) => (s.0 == v).then_some(*s),
            KvStrOp::Get(v) => {
                let st = self.store();
                (st.slot(*s, i) == v).then_some(*s)
            }
            KvStrOp::Put(v) => Some(self.store().with(*s, i, v)),
            KvStrOp::Append(v) => {
                let mut st = self.store();
                let cur = st.slot(*s, i);
                let next = st.append(cur, v);
                Some(st.with(*s, i, next))
            }
        }
    }

    fn is_read_only(&self, input: &KvStrInput) -> bool {
        matches!(input.op, KvStrOp::Get(_))
    }

    fn screens(&self) -> bool {
        true
    }

    /// Refutes a partition in which a `get` (`g2`) cannot have read what it returned
    /// (the refutation's time is the earliest return of such a `get`): some `get` `g1` of
    /// the same key returned before `g2` was invoked, `g2`'s string does not start with
    /// `g1`'s, and no `put` that could fall between them wrote a string that `g2`'s starts
    /// with.
    ///
    /// Soundness: take any linearization. Both `get`s completed `ok`, so it holds both, and
    /// real time puts `g1` first (`g1` returned before `g2`'s call: strictly, as the search
    /// treats equal times as concurrent and reads a return before its call as at the
    /// call). Between them, `append`s only extend the key's string and `get`s leave it
    /// alone (failed operations have no effect and are not compiled). So if no `put` of the
    /// key lies between them, `g2`'s string starts with `g1`'s; otherwise the last such
    /// `put` `p` wrote a string that `g2`'s starts with, and `p` can only lie between them
    /// if it did not return before `g1`'s call (a `put` with an unknown outcome never
    /// returns) and was not invoked after `g2`'s return. For each `g2` only two `g1` are
    /// tried, among the `get`s that returned before its call: the one invoked last (it
    /// leaves the fewest `put`s) and the one that returned the longest string. That may
    /// miss violations (then the search finds them), never invent one.
    fn refutes(&self, ops: &[SearchOp<KvStrInput>]) -> Option<u64> {
        let st = self.store();
        let n_slots = ops
            .iter()
            .map(|o| o.input.slot as usize + 1)
            .max()
            .unwrap_or(0);
        // Per slot: (call, return, string id) of every get and every put (a put with an
        // unknown outcome returns at u64::MAX).
        let mut gets: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); n_slots];
        let mut puts: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); n_slots];
        for o in ops {
            let ret = o.ret.map_or(u64::MAX, |r| r.max(o.call));
            match o.input.op {
                KvStrOp::Get(v) if o.ret.is_some() => {
                    gets[o.input.slot as usize].push((o.call, ret, v));
                }
                KvStrOp::Put(v) => puts[o.input.slot as usize].push((o.call, ret, v)),
                _ => {}
            }
        }
        // Whether string `v` starts with string `prefix`; bytes built once per string.
        let mut text: FxHashMap<u32, Vec<u8>> = FxHashMap::default();
        let mut starts = |v: u32, prefix: u32| -> bool {
            if v == prefix {
                return true;
            }
            if st.nodes[v as usize].len < st.nodes[prefix as usize].len {
                return false;
            }
            for id in [v, prefix] {
                text.entry(id).or_insert_with(|| {
                    let mut b = Vec::new();
                    st.bytes_into(id, &mut b);
                    b
                });
            }
            text[&v].starts_with(&text[&prefix])
        };
        let mut refuted: Option<u64> = None;
        for (g, p) in gets.iter_mut().zip(&puts) {
            let mut by_ret: Vec<(u64, u64, u32)> = g.clone();
            by_ret.sort_unstable_by_key(|&(_, r, _)| r);
            g.sort_unstable();
            let mut done = 0;
            // Among the gets that returned so far: (call, id) of the one invoked last,
            // and (length, id) of the one with the longest string.
            let mut last: Option<(u64, u32)> = None;
            let mut longest: Option<(u32, u64, u32)> = None;
            for &(call2, ret2, v2) in g.iter() {
                while done < by_ret.len() && by_ret[done].1 < call2 {
                    let (c, _, v) = by_ret[done];
                    if last.is_none_or(|(lc, _)| c > lc) {
                        last = Some((c, v));
                    }
                    let len = st.nodes[v as usize].len;
                    if longest.is_none_or(|(l, _, _)| len > l) {
                        longest = Some((len, c, v));
                    }
                    done += 1;
                }
                for (call1, v1) in last.into_iter().chain(longest.map(|(_, c, v)| (c, v))) {
                    if starts(v2, v1) {
                        continue;
                    }
                    let explained = p
                        .iter()
                        .any(|&(pc, pr, pv)| pr >= call1 && pc <= ret2 && starts(v2, pv));
                    if !explained && refuted.is_none_or(|t| ret2 < t) {
                        refuted = Some(ret2);
                    }
                }
            }
        }
        refuted
    }

    fn cache_bytes(&self) -> usize {
        self.store().bytes()
    }

    fn show_state(&self, s: &KvState, cx: &Interner) -> String {
        let st = self.store();
        let s = st.all(*s);
        if s.len() == 1 {
            return format!("{:?}", st.text(s[0]));
        }
        let parts: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{}={:?}", cx.keys()[i], st.text(v)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn show_input(&self, input: &KvStrInput, cx: &Interner) -> String {
        let key = &cx.keys()[input.slot as usize];
        let st = self.store();
        match input.op {
            KvStrOp::Get(v) => format!("get {key} {:?}", st.text(v)),
            KvStrOp::Put(v) => format!("put {key} {:?}", st.text(v)),
            KvStrOp::Append(v) => format!(
                "append {key} {:?}",
                String::from_utf8_lossy(&st.pieces[v as usize].0)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::tests::opn;
    use serde_json::json;

    fn keyed(f: &str, i: Value, o: Value) -> Operation {
        let mut op = opn(f, i, o, Outcome::Ok);
        op.key = Some("k".into());
        op
    }

    #[test]
    fn equal_strings_get_one_id() {
        let mut st = Store::default();
        let ab = st.intern("ab");
        let cd = st.piece(b"cd");
        let abcd = st.append(ab, cd);
        assert_eq!(st.intern("abcd"), abcd);
        assert_eq!(st.append(ab, cd), abcd);
        let empty = st.piece(b"");
        assert_eq!(st.append(ab, empty), ab);
        let e = st.intern("");
        let a = st.piece(b"a");
        let b = st.piece(b"b");
        let a_then_b = st.append(e, a);
        let a_then_b = st.append(a_then_b, b);
        assert_eq!(a_then_b, ab);
        assert_ne!(st.intern("a"), e);
        assert_eq!(st.text(abcd), "abcd");
        assert_eq!(st.text(e), "");
    }

    #[test]
    fn colliding_hashes_keep_strings_apart() {
        // Forge a collision: a node claiming the hash of "zz" for the string "xy".
        let mut st = Store::default();
        let x = st.intern("xy");
        let h = poly(0, b"zz");
        st.by_hash.remove(&st.nodes[x as usize].hash);
        st.nodes[x as usize].hash = h;
        st.by_hash.insert(h, x);
        let zz = st.intern("zz");
        assert_ne!(zz, x);
        assert_eq!(st.intern("zz"), zz);
        assert_eq!(st.text(zz), "zz");
        assert_eq!(st.text(x), "xy");
    }

    #[test]
    fn append_concatenates() {
        let m = PorcupineKv::default();
        let mut cx = Interner::new();
        let a = m
            .compile(&keyed("append", json!("x"), Value::Null), &mut cx)
            .unwrap()
            .unwrap();
        let g = m
            .compile(&keyed("get", Value::Null, json!("xx")), &mut cx)
            .unwrap()
            .unwrap();
        let g0 = m
            .compile(&keyed("get", Value::Null, json!("")), &mut cx)
            .unwrap()
            .unwrap();
        let s = m.init(&mut cx);
        assert!(m.step(&s, &g0).is_some());
        let s = m.step(&s, &a).unwrap();
        assert_eq!(m.step(&s, &g), None);
        let s = m.step(&s, &a).unwrap();
        assert!(m.step(&s, &g).is_some());
        assert_eq!(m.show_state(&s, &cx), "\"xx\"");
        assert!(
            m.compile(&keyed("cas", json!(1), json!(1)), &mut cx)
                .is_err()
        );
    }

    /// What a random operation of [`screen_never_refutes_a_linearizable_history`] does.
    #[derive(Clone, Debug)]
    struct Gen {
        slot: u32,
        /// 0 get, 1 put, 2 append.
        kind: u8,
        /// The put's value, the append's suffix, or the get's result.
        value: String,
        call: u64,
        /// `None`: unknown outcome.
        ret: Option<u64>,
    }

    /// Tries every order consistent with real time: ok operations must all be placed,
    /// unknown ones may be.
    fn brute(ops: &[Gen], slots: usize) -> bool {
        fn go(ops: &[Gen], used: &mut [bool], state: &mut Vec<String>) -> bool {
            if ops
                .iter()
                .zip(used.iter())
                .all(|(o, u)| *u || o.ret.is_none())
            {
                return true;
            }
            for i in 0..ops.len() {
                let x = &ops[i];
                let blocked = ops
                    .iter()
                    .zip(used.iter())
                    .any(|(o, u)| !*u && o.ret.is_some_and(|r| r < x.call));
                if used[i] || blocked {
                    continue;
                }
                let s = x.slot as usize;
                let before = state[s].clone();
                match x.kind {
                    0 if x.value != before => continue,
                    0 => {}
                    1 => state[s] = x.value.clone(),
                    _ => state[s].push_str(&x.value),
                }
                used[i] = true;
                let ok = go(ops, used, state);
                used[i] = false;
                state[s] = before;
                if ok {
                    return true;
                }
            }
            false
        }
        go(
            ops,
            &mut vec![false; ops.len()],
            &mut vec![String::new(); slots],
        )
    }

    #[test]
    fn screen_never_refutes_a_linearizable_history() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut refuted, mut bad) = (0, 0);
        const CASES: usize = 4000;
        for case in 0..CASES {
            let slots = rng.random_range(1..=2usize);
            let procs = rng.random_range(2..=4usize);
            let mut clock = vec![0u64; procs];
            // (op, linearization point, takes effect)
            let mut made: Vec<(Gen, u64, bool)> = Vec::new();
            for _ in 0..rng.random_range(1..=7) {
                let p = rng.random_range(0..procs);
                let call = clock[p] + rng.random_range(1..20u64);
                let ret = call + rng.random_range(1..30u64);
                clock[p] = ret;
                let lp = rng.random_range(call..ret);
                let kind = rng.random_range(0..3u8);
                let value = ["", "a", "b", "ab"][rng.random_range(0..4)].to_owned();
                let outcome = rng.random_range(0..10);
                if outcome == 0 {
                    continue; // a failure: no effect, not compiled
                }
                let known = outcome < 8;
                let effect = known || rng.random_bool(0.5);
                made.push((
                    Gen {
                        slot: rng.random_range(0..slots as u32),
                        kind,
                        value,
                        call,
                        ret: known.then_some(ret),
                    },
                    lp,
                    effect,
                ));
            }
            // Results from the linearization points, then maybe one corrupted get.
            let mut order: Vec<usize> = (0..made.len()).collect();
            order.sort_by_key(|&i| made[i].1);
            let mut state = vec![String::new(); slots];
            for i in order {
                let (g, _, effect) = &mut made[i];
                let s = g.slot as usize;
                match g.kind {
                    _ if !*effect => {}
                    0 => g.value = state[s].clone(),
                    1 => state[s] = g.value.clone(),
                    _ => state[s].push_str(&g.value),
                }
            }
            // Unknown gets observe nothing and are not compiled.
            let mut ops: Vec<Gen> = made
                .into_iter()
                .map(|(g, _, _)| g)
                .filter(|g| g.kind != 0 || g.ret.is_some())
                .collect();
            let gets: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].kind == 0).collect();
            if !gets.is_empty() && rng.random_bool(0.6) {
                let i = gets[rng.random_range(0..gets.len())];
                ops[i].value = ["", "a", "ab", "b", "aab", "ba"][rng.random_range(0..6)].to_owned();
            }
            let m = PorcupineKv::default();
            let mut cx = Interner::new();
            for k in 0..slots {
                cx.key_slot(&format!("k{k}"));
            }
            let sops: Vec<SearchOp<KvStrInput>> = {
                let mut st = m.store();
                ops.iter()
                    .map(|g| SearchOp {
                        call: g.call,
                        ret: g.ret,
                        input: KvStrInput {
                            slot: g.slot,
                            op: match g.kind {
                                0 => KvStrOp::Get(st.intern(&g.value)),
                                1 => KvStrOp::Put(st.intern(&g.value)),
                                _ => KvStrOp::Append(st.piece(g.value.as_bytes())),
                            },
                        },
                    })
                    .collect()
            };
            let init = m.init(&mut cx);
            let expect = brute(&ops, slots);
            let (out, _, _) =
                crate::search::search(&m, init, &sops, crate::search::Limits::default(), None);
            assert_eq!(
                out == crate::search::SearchOutcome::Linearizable,
                expect,
                "case {case}: search vs brute force on {ops:#?}"
            );
            if let Some(t) = m.refutes(&sops) {
                assert!(
                    !expect,
                    "case {case}: refuted (at {t}) a linearizable {ops:#?}"
                );
                refuted += 1;
            }
            if !expect {
                bad += 1;
            }
        }
        // The generator must give the screen work: many bad histories, some refuted (most
        // are too small to hold two ordered gets).
        assert!(
            bad > CASES / 5 && refuted > CASES / 50,
            "bad {bad}, refuted {refuted}"
        );
    }
}
