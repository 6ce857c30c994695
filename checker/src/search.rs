//! The linearizability search: Wing & Gong's algorithm with Lowe's just-in-time
//! linearization and memoization, the algorithm of Porcupine and Knossos' `wgl`.
//!
//! Operations become *entries* in one list sorted by time: a call entry for every
//! operation and a return entry for every operation whose outcome is known. Walking the
//! list from its head, a call entry may be *linearized* (lifted out of the list, with its
//! return entry) when the model accepts it in the current state; reaching a return entry
//! whose operation is still in the list means no candidate before it works, so the search
//! backtracks. Operations with unknown outcomes have no return entry: nothing forces them,
//! so they may take effect at any time after their call, or never. The search succeeds once
//! every operation with a return entry is linearized.
//!
//! The memo holds every (set of linearized operations, model state) reached; reaching one
//! again cannot lead anywhere new. Sets are stored compactly: operations are numbered in
//! call order (required ones first, unknown ones after), so a set is "every operation below
//! a frontier" plus a short window of words above it. A probe costs a model step, a window
//! copy and a hash: of the words themselves when they fit inline, else the set's Zobrist
//! hash (maintained incrementally as operations are lifted and unlifted) with the state's.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxHasher;

use crate::model::{Model, SearchOp};

/// Budgets: running out of either gives [`SearchOutcome::Unknown`], never a wrong verdict.
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    pub deadline: Option<Instant>,
    /// Cap on the memo's memory, bytes.
    pub max_memo_bytes: usize,
    /// Set by another partition's search when the overall verdict is already known.
    pub cancel: Option<&'a AtomicBool>,
    /// Order of the candidates at each configuration: unknown (crashed) ops before the
    /// required ones instead of after (see [`Search::try_unknown`]). Both orders explore
    /// the same configurations and decide the same; which is faster depends on the
    /// history, so a check may race one of each.
    pub unknown_first: bool,
}

impl Default for Limits<'_> {
    fn default() -> Self {
        Limits {
            deadline: None,
            max_memo_bytes: 2 << 30,
            cancel: None,
            unknown_first: false,
        }
    }
}

/// Why a search could not decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GaveUp {
    Timeout,
    Memory,
    Cancelled,
}

/// The longest linearizable prefix found, and the operation that blocked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Operations (index into the search's ops) in linearization order, with the
    /// alternative used (see [`Model::alternatives`]).
    pub prefix: Vec<(u32, u32)>,
    /// The operation whose return was reached while it could not be linearized.
    pub blocked: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchOutcome {
    Linearizable,
    NotLinearizable(Failure),
    Unknown(GaveUp),
}

/// Counters for benchmarks and `--json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub steps: u64,
    pub memo_entries: u64,
    pub memo_bytes: u64,
    /// Most operations with known outcomes linearized at once (how far the search got).
    pub deepest: u64,
    /// Bytes the search held when it stopped (or peak estimate when it ran out): memo,
    /// stacks, model caches.
    pub bytes: u64,
    /// How often each cut of the search fired (see [`SearchCuts`]).
    pub cuts: SearchCuts,
}

/// How often the search's cuts fired, for `--json` (`cuts` of each partition). Each is
/// sound in general (its argument is at its code), so the search always applies it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SearchCuts {
    /// Read-only ops lifted first as forced moves, with no sibling tried
    /// ("reads first", see [`Search::run_inner`]).
    pub reads_first: u64,
    /// Candidates skipped because an interchangeable twin (equal input) is tried instead:
    /// unknown ops in call order ([`twins`]), required ops by return ([`required_twins`]).
    pub twins: u64,
}

const NONE: u32 = u32::MAX;

/// How many states a watching search collects.
pub const MAX_WATCHED: usize = 16;

/// Runs the search. `watch`: collect (up to [`MAX_WATCHED`]) distinct states in which that
/// operation could take effect, for explanations; returned in the third slot. A watching
/// search never linearizes the watched operation, so its verdict is not meaningful. (Tests
/// only: the checker's workers reuse one memo with [`search_in`].)
#[cfg(test)]
pub fn search<M: Model>(
    model: &M,
    init: M::State,
    ops: &[SearchOp<M::Input>],
    limits: Limits<'_>,
    watch: Option<u32>,
) -> (SearchOutcome, SearchStats, Vec<M::State>) {
    search_in(model, init, ops, limits, watch, &mut MemoBuf::default())
}

/// [`search`] with a memo table reused from an earlier search: a worker that checks one
/// partition after another keeps one table (cleared in between) instead of allocating,
/// growing and freeing one per partition. Fresh tables cost page faults, rehashing, and
/// memory the allocator keeps after they are freed. A memo bigger than 2^16 entries is
/// not kept (it is freed on another thread, see [`Search::run`]).
pub fn search_in<M: Model>(
    model: &M,
    init: M::State,
    ops: &[SearchOp<M::Input>],
    limits: Limits<'_>,
    watch: Option<u32>,
    buf: &mut MemoBuf<M::State>,
) -> (SearchOutcome, SearchStats, Vec<M::State>) {
    let mut s = Search::new(model, ops, limits, watch);
    s.take_memo(buf);
    let (out, stats, watched, memo) = s.run(init);
    buf.0 = memo;
    (out, stats, watched)
}

/// What a noting search (see [`search_noting`]) saw of each operation.
#[derive(Clone, Debug)]
pub struct Met<S> {
    /// For each operation with a known outcome: the first [`MAX_WATCHED`] distinct states
    /// in which the search reached its call entry (with everything that must precede it
    /// linearized), in the order met.
    pub states: Vec<Vec<S>>,
    /// For each operation: whether the search ever linearized it.
    pub lifted: Vec<bool>,
}

/// [`search_in`] that also notes, for every operation, the states in which it could have
/// taken effect ([`Met`]). For an operation the search never linearized, these are exactly
/// the states a search watching that operation collects: that search never linearizes it
/// either, and otherwise makes the same moves in the same order (the operation's step
/// failed at every visit, since a step that fits is memoized and then linearized), so it
/// explores the same configurations. A failing search whose blocked operation was never
/// linearized thus explains itself without a second pass. Costs a little per step, so
/// the check uses it where failure is expected (partitions a screen refuted).
pub fn search_noting<M: Model>(
    model: &M,
    init: M::State,
    ops: &[SearchOp<M::Input>],
    limits: Limits<'_>,
    buf: &mut MemoBuf<M::State>,
) -> (SearchOutcome, SearchStats, Met<M::State>) {
    let mut s = Search::new(model, ops, limits, None);
    s.met = Some(Met {
        states: vec![Vec::new(); ops.len()],
        lifted: vec![false; ops.len()],
    });
    s.take_memo(buf);
    let met = &mut None;
    let (out, stats, _, memo) = s.run_with(init, met);
    buf.0 = memo;
    (out, stats, met.take().expect("a noting search notes"))
}

/// The memo: a hash table of entries, and the words of wide sets back to back in one
/// arena (an entry holds their offset). A probe encodes the set into a reused buffer and
/// looks it up once (the table's `entry`); only a new wide set copies its words, into the
/// arena: no allocation per probe or per entry.
struct Memo<S> {
    table: HashTable<MemoKey<S>>,
    arena: Vec<u64>,
}

impl<S> Default for Memo<S> {
    fn default() -> Self {
        Memo {
            table: HashTable::new(),
            arena: Vec::new(),
        }
    }
}

impl<S> Memo<S> {
    fn len(&self) -> usize {
        self.table.len()
    }

    fn clear(&mut self) {
        self.table.clear();
        self.arena.clear();
    }

    /// Memory of the table and the arena (not what states own on the heap).
    fn bytes(&self) -> usize {
        Self::table_bytes(self.table.capacity()) + self.arena.capacity() * 8
    }

    /// The allocation behind a table of this capacity: hashbrown keeps 1/8 of its
    /// buckets free (a bucket is an entry and a control byte), in a power of two.
    fn table_bytes(capacity: usize) -> usize {
        if capacity == 0 {
            return 0;
        }
        (capacity + 1).next_power_of_two() * (std::mem::size_of::<MemoKey<S>>() + 1)
    }

    /// Bytes allocated at once if the next insert (of a set of `wide` arena words) makes
    /// the table or the arena grow: the new allocation, while the old one still exists.
    fn growth_bytes(&self, wide: usize) -> usize {
        let mut b = 0;
        if self.table.len() == self.table.capacity() {
            b += 2 * Self::table_bytes(self.table.capacity()).max(64);
        }
        if wide > 0 && self.arena.len() + wide > self.arena.capacity() {
            b += (2 * self.arena.capacity()).max(self.arena.len() + wide) * 8;
        }
        b
    }
}

/// A subsumption memo entry: hash, required-ops key (as the memo's header and window),
/// state, and the sets of unknown ops (first word index, words) met with them.
type SubEntry<S> = (u64, Box<[u64]>, S, Vec<(u32, Box<[u64]>)>);

/// The memo of a partition with unknown ops, by subsumption. A configuration is the set
/// R of required ops linearized, the set U of unknown ops linearized, and the state s.
/// If (R, U', s) was met before and U' is a subset of U, then (R, U, s) cannot lead
/// anywhere (R, U', s) could not: from (R, U', s) every op still open in (R, U, s) is
/// open too (the ops of U \ U' are unknown: no return entry, optional, invoked before),
/// so any completion from (R, U, s) is one from (R, U', s), taking an earlier twin where
/// the twin order asks. (R, U', s) either failed, or is still being explored on the
/// current path, which then explores that completion. So (R, U, s) is skipped. With the
/// lazy order of unknown ops (see [`Search::try_unknown`]) configurations with fewer
/// unknown ops tend to come first, and crashed ops that lead nowhere stop multiplying
/// the configurations.
struct Subsumed<S> {
    table: HashTable<SubEntry<S>>,
    entries: usize,
    /// The table capacity already counted in `bytes`.
    counted_cap: usize,
    /// Bytes of the table and of everything its entries own (states' heap excepted,
    /// counted with the memo's).
    bytes: usize,
}

impl<S> Default for Subsumed<S> {
    fn default() -> Self {
        Subsumed {
            table: HashTable::new(),
            entries: 0,
            counted_cap: 0,
            bytes: 0,
        }
    }
}

/// A memo table kept between searches (see [`search_in`]); empty between them.
pub struct MemoBuf<S>(Memo<S>);

impl<S> Default for MemoBuf<S> {
    fn default() -> Self {
        MemoBuf(Memo::default())
    }
}

impl<S: Send + 'static> MemoBuf<S> {
    /// Frees the table; one of more than 2^12 slots on another thread, since unmapping
    /// its pages takes a while and a worker that is done should not wait for it (a CLI
    /// that exits right after never does).
    pub fn release(self) {
        if self.0.table.capacity() > 1 << 12 {
            std::thread::spawn(move || drop(self));
        }
    }
}

/// Encoded sets of up to this many words live inside the memo's table.
const INLINE: usize = 4;

/// An encoded set (see [`Bits::encode`]): inline, or in the search's scratch buffer.
enum Words {
    Inline(u8, [u64; INLINE]),
    Wide,
}

/// A memo entry: the encoded set (see [`Bits::encode`]) and the state. The words are not
/// nested in a `Words` so that the tag, the length and a small state share one word
/// (40 bytes an entry for a `u32` state). An inline entry stores no hash (it would cost 8
/// bytes an entry): its few words and the state are hashed when needed. A wide one stores
/// its hash, since hashing its words on every probe and rehash is what costs.
enum MemoKey<S> {
    Inline(u8, S, [u64; INLINE]),
    /// A wide set: its length, its hash (from the set's Zobrist hash, kept up to date as
    /// bits change, and the state's: neither a probe nor a rehash reads the words), and
    /// the offset of its words in the memo's arena.
    Wide(S, u32, u64, usize),
}

/// Spreads a hash so that the table's bucket (low bits) and tag (high bits) both vary.
fn mix(x: u64) -> u64 {
    (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

fn inline_hash<S: Hash>(n: u8, w: &[u64; INLINE], s: &S) -> u64 {
    let mut f = FxHasher::default();
    f.write_u8(n);
    w.hash(&mut f);
    s.hash(&mut f);
    mix(f.finish())
}

/// `zob`: the set's Zobrist hash.
fn wide_hash<S: Hash>(zob: u64, s: &S) -> u64 {
    let mut f = FxHasher::default();
    s.hash(&mut f);
    mix(zob ^ f.finish().wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

impl<S: Hash> MemoKey<S> {
    fn hash(&self) -> u64 {
        match self {
            MemoKey::Inline(n, s, w) => inline_hash(*n, w, s),
            MemoKey::Wide(_, _, h, _) => *h,
        }
    }
}

struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [SearchOp<M::Input>],
    limits: Limits<'a>,
    // Entry list. Entries 0..n_entries, head sentinel = n_entries.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// For each entry: op index, with the top bit set for return entries.
    entry_op: Vec<u32>,
    /// For each op: its call entry and return entry (NONE if unknown outcome).
    call_entry: Vec<u32>,
    ret_entry: Vec<u32>,
    /// For each op: its bit (ops renumbered: required in call order, then unknown).
    bit_of: Vec<u32>,
    /// For each op: a random word; a set's Zobrist hash is the xor of its ops' words.
    zobrist: Vec<u64>,
    /// For each unknown op: the unknown op with the same input called just before it
    /// (NONE if none). Such twins are interchangeable, and the earlier one is open
    /// whenever the later one is, so the search only linearizes a twin after its
    /// predecessor: any linearization can be rewritten that way with the same states.
    twin_prev: Vec<u32>,
    /// Unknown ops in call order, and each unknown op's position there. Unknown ops are
    /// not in the entry list: see [`Search::try_unknown`].
    unk: Vec<u32>,
    unk_pos: Vec<u32>,
    bits: Bits,
    memo: Memo<M::State>,
    memo_heap_bytes: usize,
    /// Bytes of the search's own stacks (frames, best prefix, what states in them own),
    /// as of the last budget poll.
    other_bytes: usize,
    /// For partitions with unknown ops: the memo by subsumption (see [`Subsumed`]).
    sub: Option<Subsumed<M::State>>,
    unknown_first: bool,
    /// Set when an insert would have taken the memo past the budget: the insert did not
    /// happen, so the search must give up (`Unknown(Memory)`) rather than decide.
    out_of_memory: bool,
    scratch: Vec<u64>,
    watch: Option<u32>,
    watched: Vec<M::State>,
    /// Noting (see [`search_noting`]).
    met: Option<Met<M::State>>,
    stats: SearchStats,
}

const RET: u32 = 1 << 31;

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        ops: &'a [SearchOp<M::Input>],
        limits: Limits<'a>,
        watch: Option<u32>,
    ) -> Self {
        let n = ops.len();
        assert!(n < (RET as usize) / 2, "partition too large for the search");
        // Entries sorted by time; on equal times calls come first (such operations are
        // concurrent), then by op index for determinism.
        let mut keys: Vec<(u64, u32, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            keys.push((op.call, 0, i as u32));
            if let Some(r) = op.ret {
                keys.push((r.max(op.call), 1, i as u32));
            }
        }
        keys.sort_unstable();
        let ne = keys.len();
        let mut entry_op = Vec::with_capacity(ne);
        let mut call_entry = vec![NONE; n];
        let mut ret_entry = vec![NONE; n];
        for (e, &(_, kind, i)) in keys.iter().enumerate() {
            if kind == 0 {
                call_entry[i as usize] = e as u32;
                entry_op.push(i);
            } else {
                ret_entry[i as usize] = e as u32;
                entry_op.push(i | RET);
            }
        }
        let head = ne as u32;
        let mut next = Vec::with_capacity(ne + 1);
        let mut prev = Vec::with_capacity(ne + 1);
        for e in 0..ne as u32 {
            next.push(if e + 1 < ne as u32 { e + 1 } else { NONE });
            prev.push(if e == 0 { head } else { e - 1 });
        }
        next.push(if ne > 0 { 0 } else { NONE });
        prev.push(NONE);
        // Bits: required ops in call order, then unknown ones in call order.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| (ops[i as usize].ret.is_none(), ops[i as usize].call, i));
        let n_req = ops.iter().filter(|o| o.ret.is_some()).count();
        // Unknown ops' bits start at the word after the required ones (whose last word
        // is padded with ones, see [`Bits`]).
        let unk_base = n_req.div_ceil(64) * 64;
        let mut bit_of = vec![0u32; n];
        for (b, &i) in order.iter().enumerate() {
            bit_of[i as usize] = if b < n_req { b } else { unk_base + b - n_req } as u32;
        }
        let mut twin_prev = twins(ops, &order[n_req..]);
        required_twins(
            ops,
            &order[..n_req],
            &call_entry,
            &ret_entry,
            &mut twin_prev,
        );
        let unk: Vec<u32> = order[n_req..].to_vec();
        let mut unk_pos = vec![NONE; n];
        for (k, &i) in unk.iter().enumerate() {
            unk_pos[i as usize] = k as u32;
        }
        let mut z = 0x9E37_79B9_7F4A_7C15u64 ^ (n as u64);
        let zobrist = (0..n)
            .map(|_| {
                z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut x = z;
                x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                x ^ (x >> 31)
            })
            .collect();
        let mut s = Search {
            model,
            ops,
            limits,
            next,
            prev,
            entry_op,
            call_entry,
            ret_entry,
            bit_of,
            zobrist,
            twin_prev,
            unk,
            unk_pos,
            bits: Bits::new(n_req, n - n_req),
            memo: Memo::default(),
            memo_heap_bytes: 0,
            other_bytes: 0,
            sub: (n > n_req).then(Subsumed::default),
            unknown_first: limits.unknown_first,
            out_of_memory: false,
            scratch: Vec::new(),
            watch,
            watched: Vec::new(),
            met: None,
            stats: SearchStats::default(),
        };
        for (i, op) in ops.iter().enumerate() {
            if op.ret.is_none() {
                s.lift(s.call_entry[i]);
            }
        }
        s
    }

    /// Takes the reused memo table, grown ahead to a size the search will likely reach:
    /// growing it step by step rehashes every entry at each doubling and faults in the
    /// pages of every intermediate table. Entries found in practice: 50-100 for each
    /// operation of the hard Porcupine keys (a few hundred operations). Ahead of need at
    /// most 57,344 entries (a table of 2^16 slots, 2.7 MB for a `u32` state), and at most
    /// a quarter of the memory budget, so the cap still gives `unknown` on time.
    fn take_memo(&mut self, buf: &mut MemoBuf<M::State>) {
        self.memo = std::mem::take(&mut buf.0);
        let entry = std::mem::size_of::<MemoKey<M::State>>() + 1;
        let budget = self.limits.max_memo_bytes / 4;
        let want = (self.ops.len() * 64).min(57_344).min(budget / 2 / entry);
        if self.memo.table.capacity() < want {
            self.memo.table.reserve(want, MemoKey::hash);
        }
        // Room for wide sets too (untouched pages cost no memory, but count here).
        let words = (want * 4).min(budget / 2 / 8);
        if self.memo.arena.capacity() < words {
            self.memo.arena.reserve(words);
        }
    }

    fn lift(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NONE {
            self.prev[n as usize] = p;
        }
    }

    fn unlift(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NONE {
            self.prev[n as usize] = e;
        }
    }

    /// Takes a required op's entries out of the list (unknown ops are never in it).
    fn lift_op(&mut self, op: u32) {
        let r = self.ret_entry[op as usize];
        if r != NONE {
            self.lift(self.call_entry[op as usize]);
            self.lift(r);
        }
    }

    fn unlift_op(&mut self, op: u32) {
        let r = self.ret_entry[op as usize];
        if r != NONE {
            self.unlift(r);
            self.unlift(self.call_entry[op as usize]);
        }
    }

    /// The first return entry left in the list (NONE if none).
    fn first_ret(&self) -> u32 {
        let mut e = self.next[self.entry_op.len()];
        while e != NONE && self.entry_op[e as usize] & RET == 0 {
            e = self.next[e as usize];
        }
        e
    }

    /// Tries to linearize unknown op `op` (from alternative `alt0`) in `state`; true if
    /// it was lifted (a frame pushed, `state` advanced).
    ///
    /// Unknown ops are tried lazily: at each configuration the search first tries every
    /// required candidate (the call entries before the first remaining return), and only
    /// then the unknown ops invoked before that return, in call order. Every candidate is
    /// still tried at every configuration, so the search explores the same configurations
    /// (only in another order) and decides the same; but a linearizable history is usually
    /// completed without guessing which crashed ops took effect where.
    ///
    /// An unknown op whose step leaves the state unchanged (a write of the value already
    /// there, a cas from a value to itself) is never lifted: dropping it from a
    /// linearization leaves every state the same, and it may never take effect.
    fn try_unknown(
        &mut self,
        op: u32,
        alt0: u32,
        state: &mut M::State,
        stack: &mut Vec<(u32, u32, M::State, bool)>,
    ) -> bool {
        let bit = self.bit_of[op as usize];
        if self.bits.get(bit) {
            return false;
        }
        let twin = self.twin_prev[op as usize];
        if twin != NONE && !self.bits.get(self.bit_of[twin as usize]) {
            self.stats.cuts.twins += 1;
            return false;
        }
        let ops: &'a [SearchOp<M::Input>] = self.ops;
        let model: &'a M = self.model;
        let input = &ops[op as usize].input;
        let n_alt = model.alternatives(input);
        let mut alt = alt0;
        while alt < n_alt {
            self.stats.steps += 1;
            let Some(next_state) = model.step_alt(state, input, alt) else {
                if n_alt > 1 {
                    break;
                }
                alt += 1;
                continue;
            };
            if next_state == *state {
                alt += 1;
                continue;
            }
            self.bits.set(bit, self.zobrist[op as usize]);
            let (new, next_state) = self.memo_insert(next_state);
            if new {
                let before = std::mem::replace(state, next_state);
                stack.push((op, alt, before, false));
                if let Some(met) = &mut self.met {
                    met.lifted[op as usize] = true;
                }
                return true;
            }
            self.bits.clear(bit, self.zobrist[op as usize]);
            alt += 1;
        }
        false
    }

    /// Inserts (current bits, state) into the memo; false if it was already there.
    /// Gives the state back either way (cloned only when inserted).
    ///
    /// The memory budget is a hard cap: an insert that would make the table or the arena
    /// grow past it (counting the new allocation beside the old one) does not happen; it
    /// sets `out_of_memory` and answers "already there", and the search then gives up.
    fn memo_insert(&mut self, state: M::State) -> (bool, M::State) {
        if self.sub.is_some() {
            return self.sub_insert(state);
        }
        let encoded = self.bits.encode(&mut self.scratch);
        let wide = match encoded {
            Words::Inline(..) => 0,
            Words::Wide => self.scratch.len(),
        };
        let growth = self.memo.growth_bytes(wide);
        if growth > 0
            && self.memo_bytes() + self.model.cache_bytes() + self.other_bytes + growth
                > self.limits.max_memo_bytes
        {
            self.out_of_memory = true;
            return (false, state);
        }
        let memo = &mut self.memo;
        let new = match encoded {
            Words::Inline(n, w) => {
                let h = inline_hash(n, &w, &state);
                let eq = |e: &MemoKey<M::State>| matches!(e, MemoKey::Inline(n2, s2, w2) if *n2 == n && *w2 == w && *s2 == state);
                match memo.table.entry(h, eq, MemoKey::hash) {
                    Entry::Occupied(_) => false,
                    Entry::Vacant(v) => {
                        v.insert(MemoKey::Inline(n, state.clone(), w));
                        true
                    }
                }
            }
            Words::Wide => {
                let words = self.scratch.as_slice();
                let h = wide_hash(self.bits.zob, &state);
                let arena = &memo.arena;
                let eq = |e: &MemoKey<M::State>| {
                    matches!(e, MemoKey::Wide(s2, len, h2, off)
                        if *h2 == h
                            && *len as usize == words.len()
                            && arena[*off..*off + words.len()] == *words
                            && *s2 == state)
                };
                match memo.table.entry(h, eq, MemoKey::hash) {
                    Entry::Occupied(_) => false,
                    Entry::Vacant(v) => {
                        let off = memo.arena.len();
                        v.insert(MemoKey::Wide(state.clone(), words.len() as u32, h, off));
                        memo.arena.extend_from_slice(words);
                        true
                    }
                }
            }
        };
        if new {
            self.memo_heap_bytes += self.model.state_bytes(&state);
        }
        (new, state)
    }

    fn memo_bytes(&self) -> usize {
        self.memo.bytes() + self.memo_heap_bytes + self.sub.as_ref().map_or(0, |m| m.bytes)
    }

    /// [`Search::memo_insert`] for partitions with unknown ops: false if a configuration
    /// with the same required ops linearized, the same state, and a subset of the current
    /// unknown ops linearized was met before (see [`Subsumed`]). Same hard cap.
    fn sub_insert(&mut self, state: M::State) -> (bool, M::State) {
        let b = &self.bits;
        let hi = b.req_hi.max(b.req_lo);
        self.scratch.clear();
        self.scratch.push(b.req_lo as u64 | (hi as u64) << 32);
        self.scratch.extend_from_slice(&b.words[b.req_lo..hi]);
        let (lo, uhi) = (b.unk_lo, b.unk_hi);
        let cur = &b.words[lo..uhi];
        let key = self.scratch.as_slice();
        let mut f = FxHasher::default();
        key.hash(&mut f);
        state.hash(&mut f);
        let h = mix(f.finish());
        let sub = self.sub.as_mut().expect("a subsumption memo");
        let hasher = |e: &SubEntry<M::State>| e.0;
        let entry_size = std::mem::size_of::<SubEntry<M::State>>() + 1;
        // What this insert may allocate: the table doubling, a new key, a list slot, a set.
        let mut growth = 24 + 8 * (key.len() + cur.len()) + 64;
        if sub.table.len() == sub.table.capacity() {
            growth += 2 * entry_size * (sub.table.capacity() + 1).next_power_of_two().max(4);
        }
        if sub.bytes
            + self.memo.bytes()
            + self.memo_heap_bytes
            + self.other_bytes
            + growth
            + self.model.cache_bytes()
            > self.limits.max_memo_bytes
        {
            self.out_of_memory = true;
            return (false, state);
        }
        let words = &b.words;
        let eq = |e: &SubEntry<M::State>| e.0 == h && *e.1 == *key && e.2 == state;
        let new = match sub.table.entry(h, eq, hasher) {
            Entry::Occupied(mut o) => {
                let sets = &mut o.get_mut().3;
                let covered = sets.iter().any(|(slo, sw)| {
                    sw.iter().enumerate().all(|(i, w)| {
                        let idx = *slo as usize + i;
                        let have = if idx >= lo && idx < uhi {
                            words[idx]
                        } else {
                            0
                        };
                        w & !have == 0
                    })
                });
                if covered {
                    false
                } else {
                    let cap = sets.capacity();
                    sets.push((lo as u32, cur.into()));
                    sub.bytes += (sets.capacity() - cap) * 24 + 8 * cur.len();
                    true
                }
            }
            Entry::Vacant(v) => {
                v.insert((h, key.into(), state.clone(), vec![(lo as u32, cur.into())]));
                sub.entries += 1;
                sub.bytes += 8 * (key.len() + cur.len()) + 24;
                self.memo_heap_bytes += self.model.state_bytes(&state);
                true
            }
        };
        let cap = sub.table.capacity();
        if cap != sub.counted_cap {
            let slots = |c: usize| {
                if c == 0 {
                    0
                } else {
                    (c + 1).next_power_of_two()
                }
            };
            sub.bytes += entry_size * (slots(cap) - slots(sub.counted_cap));
            sub.counted_cap = cap;
        }
        (new, state)
    }

    /// The outcome, and the memo emptied for reuse.
    fn run(self, init: M::State) -> (SearchOutcome, SearchStats, Vec<M::State>, Memo<M::State>) {
        self.run_with(init, &mut None)
    }

    /// [`Search::run`], handing what a noting search met to `met`.
    fn run_with(
        mut self,
        init: M::State,
        met: &mut Option<Met<M::State>>,
    ) -> (SearchOutcome, SearchStats, Vec<M::State>, Memo<M::State>) {
        let outcome = self.run_inner(init);
        *met = self.met.take();
        self.stats.memo_entries =
            (self.memo.len() + self.sub.as_ref().map_or(0, |m| m.entries)) as u64;
        self.stats.memo_bytes = self.memo_bytes() as u64;
        self.stats.bytes = (self.memo_bytes() + self.model.cache_bytes() + self.other_bytes) as u64;
        let mut memo = std::mem::take(&mut self.memo);
        if memo.len() > 1 << 16 {
            // Freeing a big memo (every state in it) takes a while; do it off the
            // caller's path. A CLI that exits right after never waits for it.
            std::thread::spawn(move || drop(memo));
            memo = Memo::default();
        } else {
            memo.clear();
        }
        (outcome, self.stats, self.watched, memo)
    }

    fn run_inner(&mut self, init: M::State) -> SearchOutcome {
        let head = self.entry_op.len() as u32;
        let mut remaining = self.ret_entry.iter().filter(|&&r| r != NONE).count();
        let total_required = remaining;
        // Frames: (op, alternative, state before, forced: siblings need not be tried).
        let mut stack: Vec<(u32, u32, M::State, bool)> = Vec::new();
        let mut state = init;
        let mut cur = self.next[head as usize];
        let mut cur_alt = 0u32;
        // The unknown phase (see `try_unknown`): the next unknown op to try (index into
        // `unk`), and the first remaining return entry, before which it must be invoked.
        let mut unk_k: Option<usize> = None;
        let mut limit = NONE;
        // Reads first: at every configuration the search first walks the required
        // candidates for a read-only one (a read, a failed cas) that fits the current
        // state, and lifts the first it finds as a forced move (see `forced` below); only
        // when none fits does it try the unknown ops and the state-changing candidates.
        // Soundness: a read-only op R that is a candidate (its call entry comes before
        // the first remaining return, so every op that returned before R was invoked is
        // already linearized) and fits the current state can be moved to the front of
        // any linearization from here: the states of every other op are unchanged (R
        // changes nothing), R's own state is the current one, and real time holds (what
        // must precede R is already linearized; moving R earlier only relaxes "R before
        // X" constraints). So if some linearization exists from here, one starts with R,
        // and no sibling of R need be tried. A read-only op that does not fit is not
        // tried again in the second walk (same configuration, same state).
        let mut reads = true;
        // Longest prefix seen at a dead end, and how much of the stack still equals it.
        let mut best: Vec<(u32, u32)> = Vec::new();
        let mut best_blocked = NONE;
        let mut common = 0usize;
        let mut tick = 0u32;
        loop {
            if remaining == 0 {
                return SearchOutcome::Linearizable;
            }
            if self.out_of_memory {
                return SearchOutcome::Unknown(GaveUp::Memory);
            }
            tick = tick.wrapping_add(1);
            // The cancel flag is one relaxed load: polled often, so that a search whose
            // verdict no longer matters stops within microseconds and frees its core. The
            // clock and the memory count cost more and are read less often.
            if tick & 0xFFF == 0 {
                // The stacks, counted at the memory polls (they grow by at most a frame a
                // step, 64 KiB between polls).
                let frame = std::mem::size_of::<(u32, u32, M::State, bool)>();
                let heap: usize = if std::mem::needs_drop::<M::State>() {
                    stack.iter().map(|f| self.model.state_bytes(&f.2)).sum()
                } else {
                    0
                };
                self.other_bytes = stack.capacity() * frame + best.capacity() * 8 + heap;
                let done = (total_required - remaining) as u64;
                self.stats.deepest = self.stats.deepest.max(done);
            }
            if tick & 0xFF == 0
                && let Some(g) = self.over_budget(tick & 0xFFF == 0)
            {
                return SearchOutcome::Unknown(g);
            }
            let blocked_here = if reads && (cur == NONE || self.entry_op[cur as usize] & RET != 0) {
                // No read-only candidate fits: now the unknown ops and the others.
                reads = false;
                cur_alt = 0;
                if self.unknown_first {
                    limit = cur;
                    unk_k = Some(0);
                } else {
                    cur = self.next[head as usize];
                }
                continue;
            } else if let Some(k) = unk_k {
                let cand = self
                    .unk
                    .get(k)
                    .copied()
                    .filter(|&op| limit == NONE || self.call_entry[op as usize] < limit);
                if let Some(op) = cand {
                    let alt0 = std::mem::take(&mut cur_alt);
                    unk_k = Some(k + 1);
                    if self.try_unknown(op, alt0, &mut state, &mut stack) {
                        unk_k = None;
                        reads = true;
                        cur = self.next[head as usize];
                    }
                    continue;
                }
                if self.unknown_first {
                    unk_k = None;
                    cur = self.next[head as usize];
                    cur_alt = 0;
                    continue;
                }
                (limit != NONE).then(|| self.entry_op[limit as usize] & !RET)
            } else if self.unknown_first && (cur == NONE || self.entry_op[cur as usize] & RET != 0)
            {
                (cur != NONE).then(|| self.entry_op[cur as usize] & !RET)
            } else if cur == NONE || self.entry_op[cur as usize] & RET != 0 {
                // Every required candidate was tried: now the unknown ones.
                limit = cur;
                unk_k = Some(0);
                cur_alt = 0;
                continue;
            } else {
                let op = self.entry_op[cur as usize];
                let input = &self.ops[op as usize].input;
                let n_alt = self.model.alternatives(input);
                if self.model.is_read_only(input) != reads {
                    // Read-only ops in the first walk only, the others in the second.
                    cur = self.next[cur as usize];
                    cur_alt = 0;
                    continue;
                }
                if self.watch == Some(op) {
                    // Watching: note the state and never linearize the watched operation,
                    // so the search visits exactly the configurations it could meet.
                    if !self.watched.contains(&state) {
                        self.watched.push(state.clone());
                        if self.watched.len() == MAX_WATCHED {
                            // Nothing more would be collected: stop here.
                            return SearchOutcome::Unknown(GaveUp::Cancelled);
                        }
                    }
                    cur = self.next[cur as usize];
                    cur_alt = 0;
                    continue;
                }
                if let Some(met) = &mut self.met
                    && self.ret_entry[op as usize] != NONE
                {
                    let seen = &mut met.states[op as usize];
                    if seen.len() < MAX_WATCHED && !seen.contains(&state) {
                        seen.push(state.clone());
                    }
                }
                let twin = self.twin_prev[op as usize];
                if twin != NONE && !self.bits.get(self.bit_of[twin as usize]) {
                    self.stats.cuts.twins += 1;
                    cur = self.next[cur as usize];
                    cur_alt = 0;
                    continue;
                }
                let mut lifted = false;
                let mut alt = cur_alt;
                while alt < n_alt {
                    self.stats.steps += 1;
                    let Some(next_state) = self.model.step_alt(&state, input, alt) else {
                        if n_alt > 1 {
                            // Alternatives end at the first that does not apply.
                            break;
                        }
                        alt += 1;
                        continue;
                    };
                    let bit = self.bit_of[op as usize];
                    self.bits.set(bit, self.zobrist[op as usize]);
                    let (new, next_state) = self.memo_insert(next_state);
                    if new {
                        // A pure observation (a read) that fits now can always go first:
                        // any linearization from here that places it later still works with
                        // it moved here, since everything that must precede it is already
                        // linearized and nothing after sees a difference. So if this branch
                        // fails, so does every sibling.
                        let forced = self.model.is_read_only(input);
                        self.stats.cuts.reads_first += u64::from(forced);
                        let before = std::mem::replace(&mut state, next_state);
                        stack.push((op, alt, before, forced));
                        self.lift_op(op);
                        if let Some(met) = &mut self.met {
                            met.lifted[op as usize] = true;
                        }
                        if self.ret_entry[op as usize] != NONE {
                            remaining -= 1;
                        }
                        lifted = true;
                        break;
                    }
                    self.bits.clear(bit, self.zobrist[op as usize]);
                    alt += 1;
                }
                if lifted {
                    cur = self.next[head as usize];
                    cur_alt = 0;
                    reads = true;
                } else {
                    cur = self.next[cur as usize];
                    cur_alt = 0;
                }
                continue;
            };
            // Dead end: remember the deepest one for the explanation, then backtrack.
            if let Some(blocked) = blocked_here
                && (best_blocked == NONE || stack.len() > best.len())
            {
                best.truncate(common);
                best.extend(stack[common..].iter().map(|(o, a, _, _)| (*o, *a)));
                common = stack.len();
                best_blocked = blocked;
            }
            loop {
                let Some((op, alt, before, forced)) = stack.pop() else {
                    if self.out_of_memory {
                        return SearchOutcome::Unknown(GaveUp::Memory);
                    }
                    return SearchOutcome::NotLinearizable(Failure {
                        prefix: best,
                        blocked: best_blocked,
                    });
                };
                common = common.min(stack.len());
                self.unlift_op(op);
                self.bits
                    .clear(self.bit_of[op as usize], self.zobrist[op as usize]);
                if self.ret_entry[op as usize] != NONE {
                    remaining += 1;
                }
                state = before;
                if !forced {
                    reads = false;
                    cur_alt = alt + 1;
                    if self.ret_entry[op as usize] != NONE {
                        cur = self.call_entry[op as usize];
                        unk_k = None;
                    } else {
                        unk_k = Some(self.unk_pos[op as usize] as usize);
                        limit = self.first_ret();
                    }
                    break;
                }
            }
        }
    }

    /// `all`: check the deadline and the memory cap too, not only the cancel flag.
    fn over_budget(&self, all: bool) -> Option<GaveUp> {
        if let Some(c) = self.limits.cancel
            && c.load(Ordering::Relaxed)
        {
            return Some(GaveUp::Cancelled);
        }
        if !all {
            return None;
        }
        if let Some(d) = self.limits.deadline
            && Instant::now() >= d
        {
            return Some(GaveUp::Timeout);
        }
        if self.memo_bytes() + self.model.cache_bytes() + self.other_bytes
            > self.limits.max_memo_bytes
        {
            return Some(GaveUp::Memory);
        }
        None
    }
}

/// For each op, the previous op of `unknown` (unknown ops in call order) with an equal
/// input, or NONE. Compares against at most `MAX_DISTINCT` distinct inputs, so the cost
/// stays linear; ops beyond that simply get no twin (less pruning, same verdicts).
fn twins<I: Eq>(ops: &[SearchOp<I>], unknown: &[u32]) -> Vec<u32> {
    const MAX_DISTINCT: usize = 64;
    let mut twin_prev = vec![NONE; ops.len()];
    // (input's op, the latest op with that input)
    let mut last: Vec<(u32, u32)> = Vec::new();
    for &i in unknown {
        let input = &ops[i as usize].input;
        if let Some(slot) = last
            .iter_mut()
            .find(|(first, _)| ops[*first as usize].input == *input)
        {
            twin_prev[i as usize] = slot.1;
            slot.1 = i;
        } else if last.len() < MAX_DISTINCT {
            last.push((i, i));
        }
    }
    twin_prev
}

/// Twins among required ops: for each required op X (in `required`, call order), an
/// earlier-invoked required op Y with an equal input whose return entry also comes before
/// X's, if one is among the `WINDOW` ops invoked just before X; stored in `twin_prev`.
/// The search never lifts X while such a Y is still in the list.
///
/// Soundness. When the search reaches X's call entry, Y's call entry (earlier in the list)
/// was passed with no return entry before it, so Y is a candidate too. Take any
/// linearization from this configuration that starts with X and places Y later, at
/// position q. Swap them: Y first, X at q. Every state is the same (equal inputs step
/// equally). Real time holds: Y may go first (it is a candidate); X at q must come after
/// every op that returned before X was invoked (all already linearized: X is a candidate)
/// and before every op invoked after X returned; those were invoked after Y returned too
/// (Y returns no later than X), so Y at q already came before them. So if a linearization
/// starts with X, one starts with Y, and trying Y alone loses nothing.
fn required_twins<I: Eq>(
    ops: &[SearchOp<I>],
    required: &[u32],
    call_entry: &[u32],
    ret_entry: &[u32],
    twin_prev: &mut [u32],
) {
    const WINDOW: usize = 32;
    for (k, &x) in required.iter().enumerate() {
        let xi = x as usize;
        let found = required[k.saturating_sub(WINDOW)..k]
            .iter()
            .rev()
            .find(|&&y| {
                let yi = y as usize;
                call_entry[yi] < call_entry[xi]
                    && ret_entry[yi] < ret_entry[xi]
                    && ops[yi].input == ops[xi].input
            });
        if let Some(&y) = found {
            twin_prev[xi] = y;
        }
    }
}

/// The set of linearized operations: required ops in bits `0..n_req` (padded to a word
/// with ones), unknown ops in the words after. Tracks the full-word prefix and the extent
/// of nonzero words so that [`Bits::encode`] is proportional to the window, not the set.
struct Bits {
    words: Vec<u64>,
    n_req_words: usize,
    /// Words below `req_lo` are all ones.
    req_lo: usize,
    /// Words at or above `req_hi` (up to `n_req_words`) are zero.
    req_hi: usize,
    /// Nonzero unknown words lie in `unk_lo..unk_hi` (empty when equal).
    unk_lo: usize,
    unk_hi: usize,
    /// Zobrist hash of the set.
    zob: u64,
}

impl Bits {
    fn new(n_req: usize, n_unk: usize) -> Bits {
        let n_req_words = n_req.div_ceil(64);
        let n_unk_words = n_unk.div_ceil(64);
        let mut words = vec![0u64; n_req_words + n_unk_words];
        if !n_req.is_multiple_of(64) {
            words[n_req_words - 1] = !0u64 << (n_req % 64);
        }
        let mut b = Bits {
            words,
            n_req_words,
            req_lo: 0,
            req_hi: n_req_words,
            unk_lo: n_req_words,
            unk_hi: n_req_words,
            zob: 0,
        };
        b.req_lo = b.words[..n_req_words]
            .iter()
            .take_while(|w| **w == !0)
            .count();
        b
    }

    fn get(&self, bit: u32) -> bool {
        self.words[(bit / 64) as usize] & (1u64 << (bit % 64)) != 0
    }

    fn set(&mut self, bit: u32, z: u64) {
        let w = (bit / 64) as usize;
        self.words[w] |= 1u64 << (bit % 64);
        self.zob ^= z;
        if w < self.n_req_words {
            self.req_hi = self.req_hi.max(w + 1);
            while self.req_lo < self.n_req_words && self.words[self.req_lo] == !0 {
                self.req_lo += 1;
            }
        } else if self.unk_lo == self.unk_hi {
            self.unk_lo = w;
            self.unk_hi = w + 1;
        } else {
            self.unk_lo = self.unk_lo.min(w);
            self.unk_hi = self.unk_hi.max(w + 1);
        }
    }

    fn clear(&mut self, bit: u32, z: u64) {
        let w = (bit / 64) as usize;
        self.words[w] &= !(1u64 << (bit % 64));
        self.zob ^= z;
        if w < self.n_req_words {
            self.req_lo = self.req_lo.min(w);
            while self.req_hi > self.req_lo && self.words[self.req_hi - 1] == 0 {
                self.req_hi -= 1;
            }
        } else if self.words[w] == 0 {
            while self.unk_lo < self.unk_hi && self.words[self.unk_lo] == 0 {
                self.unk_lo += 1;
            }
            while self.unk_hi > self.unk_lo && self.words[self.unk_hi - 1] == 0 {
                self.unk_hi -= 1;
            }
            if self.unk_lo == self.unk_hi {
                self.unk_lo = self.n_req_words;
                self.unk_hi = self.n_req_words;
            }
        }
    }

    /// An injective encoding of the set: [lo|hi header, window words, unknown header, words].
    /// Small sets are built in place; wide ones into `scratch`.
    #[inline]
    fn encode(&self, scratch: &mut Vec<u64>) -> Words {
        let hi = self.req_hi.max(self.req_lo);
        let n_req = hi - self.req_lo;
        let n_unk = if self.unk_lo < self.unk_hi {
            1 + self.unk_hi - self.unk_lo
        } else {
            0
        };
        let n = 1 + n_req + n_unk;
        let head = self.req_lo as u64 | (hi as u64) << 32;
        if n <= INLINE {
            // Built as one array expression (not word by word on the stack, which stalls
            // store forwarding when the array is then moved).
            let unk_head = self.unk_lo as u64 | (self.unk_hi as u64) << 32;
            let word = |i: usize| -> u64 {
                if i >= n {
                    0
                } else if i <= n_req {
                    self.words[self.req_lo + i - 1]
                } else if i == n_req + 1 {
                    unk_head
                } else {
                    self.words[self.unk_lo + i - n_req - 2]
                }
            };
            return Words::Inline(n as u8, [head, word(1), word(2), word(3)]);
        }
        scratch.clear();
        scratch.push(head);
        scratch.extend_from_slice(&self.words[self.req_lo..hi]);
        if n_unk > 0 {
            scratch.push(self.unk_lo as u64 | (self.unk_hi as u64) << 32);
            scratch.extend_from_slice(&self.words[self.unk_lo..self.unk_hi]);
        }
        Words::Wide
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cas_register::{CasRegister, RegOp};

    fn op(call: u64, ret: Option<u64>, input: RegOp) -> SearchOp<RegOp> {
        SearchOp { call, ret, input }
    }

    fn check(ops: &[SearchOp<RegOp>]) -> SearchOutcome {
        search(&CasRegister::default(), 0, ops, Limits::default(), None).0
    }

    #[test]
    fn sequential_and_concurrent() {
        // write 1 [0,10]; read 1 [5,15]; read 0 [1,3] (concurrent with the write, before it)
        let ops = [
            op(0, Some(10), RegOp::Write(1)),
            op(5, Some(15), RegOp::Read(1)),
            op(1, Some(3), RegOp::Read(0)),
        ];
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
        // A read of 0 after a completed write 1 is stale.
        let ops = [
            op(0, Some(10), RegOp::Write(1)),
            op(11, Some(12), RegOp::Read(0)),
        ];
        let SearchOutcome::NotLinearizable(f) = check(&ops) else {
            panic!("stale read accepted")
        };
        assert_eq!(f.blocked, 1);
        assert_eq!(f.prefix, vec![(0, 0)]);
    }

    #[test]
    fn unknown_ops_are_optional_and_open() {
        // An unknown write 1 may take effect late (read 0 then read 1) ...
        let ops = [
            op(0, None, RegOp::Write(1)),
            op(1, Some(2), RegOp::Read(0)),
            op(3, Some(4), RegOp::Read(1)),
        ];
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
        // ... or never, but not before its call.
        let ops = [op(5, None, RegOp::Write(1)), op(1, Some(2), RegOp::Read(1))];
        assert!(matches!(check(&ops), SearchOutcome::NotLinearizable(_)));
        let ops = [op(0, None, RegOp::Write(1))];
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
    }

    #[test]
    fn watch_collects_states() {
        let ops = [
            op(0, Some(1), RegOp::Write(1)),
            op(2, Some(5), RegOp::Write(2)),
            op(3, Some(6), RegOp::Read(3)),
        ];
        let (out, _, seen) = search(&CasRegister::default(), 0, &ops, Limits::default(), Some(2));
        assert!(matches!(out, SearchOutcome::NotLinearizable(ref f) if f.blocked == 2));
        let mut seen = seen;
        seen.sort();
        assert_eq!(seen, vec![1, 2]);
    }

    #[test]
    fn watch_stops_once_enough_states_are_collected() {
        // 40 sequential writes and a read of a value nothing wrote, concurrent with all of
        // them: the read could meet any of 41 states; the search meets one per write, and
        // stops after MAX_WATCHED instead of going on to the other writes.
        let mut ops: Vec<_> = (0..40u32)
            .map(|i| {
                let t = u64::from(i) * 10;
                op(t + 1, Some(t + 5), RegOp::Write(i + 1))
            })
            .collect();
        ops.push(op(0, Some(1000), RegOp::Read(999)));
        let (out, stats, seen) = search(
            &CasRegister::default(),
            0,
            &ops,
            Limits::default(),
            Some(40),
        );
        assert_eq!(seen.len(), MAX_WATCHED);
        assert_eq!(out, SearchOutcome::Unknown(GaveUp::Cancelled));
        assert!(stats.steps < MAX_WATCHED as u64, "{}", stats.steps);
    }

    #[test]
    fn many_ops_cross_word_boundaries() {
        // 200 sequential write/read pairs with an unknown write in the middle.
        let mut ops = Vec::new();
        for i in 0..200u32 {
            let t = u64::from(i) * 10;
            ops.push(op(t, Some(t + 4), RegOp::Write(i + 1)));
            ops.push(op(t + 5, Some(t + 9), RegOp::Read(i + 1)));
        }
        ops.push(op(3, None, RegOp::Write(999)));
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
        ops.push(op(5000, Some(5001), RegOp::Read(999)));
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
        ops.push(op(5002, Some(5003), RegOp::Read(200)));
        assert!(matches!(check(&ops), SearchOutcome::NotLinearizable(_)));
    }

    #[test]
    fn crashed_ops_have_memo_bits_of_their_own() {
        // A crashed write 1, then write 1, write 2 and a read of 1 in sequence: the
        // crashed write must take effect after write 2. Searching it first reaches
        // (write 1 done, crashed write used, value 1), which fails; then write 1 alone
        // reaches (write 1 done, value 1) with the crashed write still open. When the
        // crashed op's bit fell in the padding of the required ops' word, both had the
        // same memo key and the second was skipped: not linearizable, wrongly.
        let ops = [
            op(0, None, RegOp::Write(1)),
            op(1, Some(2), RegOp::Write(1)),
            op(3, Some(4), RegOp::Write(2)),
            op(5, Some(6), RegOp::Read(1)),
        ];
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
        for unknown_first in [false, true] {
            let limits = Limits {
                unknown_first,
                ..Limits::default()
            };
            let out = search(&CasRegister::default(), 0, &ops, limits, None).0;
            assert_eq!(
                out,
                SearchOutcome::Linearizable,
                "unknown_first {unknown_first}"
            );
        }
    }

    /// The oracle of the differential tests: tries every order of the operations (crashed
    /// ones included or left out) that respects real time, stepping `model` directly.
    fn brute<M: Model>(
        model: &M,
        ops: &[SearchOp<M::Input>],
        used: &mut Vec<usize>,
        state: M::State,
    ) -> bool {
        if (0..ops.len()).all(|i| ops[i].ret.is_none() || used.contains(&i)) {
            return true;
        }
        for i in 0..ops.len() {
            if used.contains(&i) {
                continue;
            }
            // i may go next only if no unused required op returned before i's call.
            let blocked = ops.iter().enumerate().any(|(j, o)| {
                !used.contains(&j) && j != i && o.ret.is_some_and(|r| r < ops[i].call)
            });
            if blocked {
                continue;
            }
            if let Some(next) = model.step(&state, &ops[i].input) {
                used.push(i);
                let ok = brute(model, ops, used, next);
                used.pop();
                if ok {
                    return true;
                }
            }
        }
        false
    }

    /// Both candidate orders decide the same as a brute force over every order of the
    /// operations (crashed ones included or left out) on random small histories.
    #[test]
    fn both_orders_agree_with_brute_force() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2526);
        let mut failing = 0;
        for case in 0..3000 {
            let ops: Vec<_> = (0..rng.random_range(1..=7))
                .map(|_| {
                    let call = rng.random_range(0..30u64);
                    let ret = (!rng.random_bool(0.35)).then(|| call + rng.random_range(0..12));
                    let v = rng.random_range(0..3u32);
                    let input = match rng.random_range(0..3) {
                        0 if ret.is_some() => RegOp::Read(v),
                        0 | 1 => RegOp::Write(v),
                        _ => RegOp::Cas(v, rng.random_range(0..3u32)),
                    };
                    op(call, ret, input)
                })
                .collect();
            let expected = brute(&CasRegister::default(), &ops, &mut Vec::new(), 0);
            failing += usize::from(!expected);
            for unknown_first in [false, true] {
                let limits = Limits {
                    unknown_first,
                    ..Limits::default()
                };
                let out = search(&CasRegister::default(), 0, &ops, limits, None).0;
                assert_eq!(
                    out == SearchOutcome::Linearizable,
                    expected,
                    "case {case}, unknown_first {unknown_first}: {ops:?}"
                );
            }
        }
        assert!(failing > 300, "only {failing} failing histories");
    }

    /// The search's cuts (reads first, twins among required and among unknown ops)
    /// against a brute force over every order, on random small histories built to
    /// trigger them: few values (many equal inputs), read-only ops (reads, failed cas),
    /// crashed writes and cas, and a share of histories where every op overlaps every
    /// other (the gen-adversarial `overlap` shape). Both candidate orders.
    #[test]
    fn cuts_agree_with_brute_force() {
        use crate::model::porcupine_etcd::{EtcdOp, PorcupineEtcd};
        use rand::{RngExt, SeedableRng};
        // A required twin invoked earlier but returning later must not replace the
        // other: w1 [1,2] must precede w2 [3,4], and w1 [0,100] follow it for r1 [5,6].
        let nested = [
            SearchOp {
                call: 0,
                ret: Some(100),
                input: EtcdOp::Write(1),
            },
            SearchOp {
                call: 1,
                ret: Some(2),
                input: EtcdOp::Write(1),
            },
            SearchOp {
                call: 3,
                ret: Some(4),
                input: EtcdOp::Write(2),
            },
            SearchOp {
                call: 5,
                ret: Some(6),
                input: EtcdOp::Read(1),
            },
        ];
        assert!(brute(&PorcupineEtcd, &nested, &mut Vec::new(), 0));
        assert_eq!(
            search(&PorcupineEtcd, 0, &nested, Limits::default(), None).0,
            SearchOutcome::Linearizable
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2527);
        let (mut good, mut bad) = (0, 0);
        let mut cuts = SearchCuts::default();
        for case in 0..6000 {
            let overlap = rng.random_bool(0.3);
            // Long operations too, so that equal inputs nest (one invoked earlier and
            // returning later than its twin).
            let span = if rng.random_bool(0.5) { 12 } else { 40 };
            let ops: Vec<_> = (0..rng.random_range(1..=8))
                .map(|_| {
                    let call = if overlap {
                        rng.random_range(0..10u64)
                    } else {
                        rng.random_range(0..30u64)
                    };
                    let kind = rng.random_range(0..4);
                    let crashed = kind >= 2 && rng.random_bool(0.3);
                    let ret = (!crashed).then(|| {
                        if overlap {
                            10 + rng.random_range(0..10u64)
                        } else {
                            call + rng.random_range(0..span)
                        }
                    });
                    let (a, b) = (rng.random_range(0..3u32), rng.random_range(0..3u32));
                    let input = match kind {
                        0 => EtcdOp::Read(a),
                        1 => EtcdOp::CasFailed(a, b),
                        2 => EtcdOp::Write(a),
                        _ => EtcdOp::Cas(a, b),
                    };
                    SearchOp { call, ret, input }
                })
                .collect();
            let expected = brute(&PorcupineEtcd, &ops, &mut Vec::new(), 0);
            if expected {
                good += 1
            } else {
                bad += 1
            }
            for unknown_first in [false, true] {
                let limits = Limits {
                    unknown_first,
                    ..Limits::default()
                };
                let (out, stats, _) = search(&PorcupineEtcd, 0, &ops, limits, None);
                assert_eq!(
                    out == SearchOutcome::Linearizable,
                    expected,
                    "case {case}, unknown_first {unknown_first}: {ops:?}"
                );
                cuts.reads_first += stats.cuts.reads_first;
                cuts.twins += stats.cuts.twins;
            }
        }
        assert!(good > 1000 && bad > 1000, "good {good}, bad {bad}");
        // Both cuts fired (and are counted for --json).
        assert!(cuts.reads_first > 1000 && cuts.twins > 100, "{cuts:?}");
    }

    #[test]
    fn unknown_twins_are_taken_in_call_order() {
        let ops = [
            op(0, None, RegOp::Write(1)),
            op(1, Some(2), RegOp::Read(0)),
            op(5, None, RegOp::Write(1)),
            op(3, None, RegOp::Write(2)),
            op(6, None, RegOp::Write(1)),
        ];
        assert_eq!(twins(&ops, &[0, 3, 2, 4]), vec![NONE, NONE, 0, NONE, 2]);
        // The read of 0 forces the first write 1 after it; then 2, then 1 again needs a
        // second write 1: the twins are still usable one after the other.
        let ops = [
            op(0, None, RegOp::Write(1)),
            op(1, Some(2), RegOp::Read(0)),
            op(5, None, RegOp::Write(1)),
            op(3, None, RegOp::Write(2)),
            op(6, Some(7), RegOp::Read(1)),
            op(8, Some(9), RegOp::Read(2)),
            op(10, Some(11), RegOp::Read(1)),
        ];
        assert_eq!(check(&ops), SearchOutcome::Linearizable);
        let mut three = ops.to_vec();
        three.push(op(12, Some(13), RegOp::Read(2)));
        three.push(op(14, Some(15), RegOp::Read(1)));
        assert!(matches!(check(&three), SearchOutcome::NotLinearizable(_)));
    }

    #[test]
    fn memory_cap_gives_unknown() {
        let ops: Vec<_> = (0..5000u32)
            .map(|i| op(0, Some(1_000_000), RegOp::Write(i)))
            .chain([op(0, Some(1_000_000), RegOp::Read(7777777))])
            .collect();
        let limits = Limits {
            max_memo_bytes: 1 << 16,
            ..Limits::default()
        };
        let (out, stats, _) = search(&CasRegister::default(), 0, &ops, limits, None);
        assert_eq!(out, SearchOutcome::Unknown(GaveUp::Memory));
        // The cap is checked every few thousand steps, so it is overshot only a little.
        assert!(stats.memo_bytes < 1 << 22, "{}", stats.memo_bytes);
    }

    #[test]
    fn deadline_gives_unknown() {
        let ops: Vec<_> = (0..5000u32)
            .map(|i| op(0, Some(1_000_000), RegOp::Write(i)))
            .chain([op(0, Some(1_000_000), RegOp::Read(7777777))])
            .collect();
        let limits = Limits {
            deadline: Some(Instant::now()),
            ..Limits::default()
        };
        let (out, _, _) = search(&CasRegister::default(), 0, &ops, limits, None);
        assert_eq!(out, SearchOutcome::Unknown(GaveUp::Timeout));
    }

    #[test]
    fn noting_meets_what_a_watching_search_collects() {
        // For every failing random history whose blocked operation the search never
        // linearized, the states noted for it equal a watching search's, in order.
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut compared = 0;
        for case in 0..3000 {
            let ops: Vec<_> = (0..rng.random_range(1..=9))
                .map(|_| {
                    let call = rng.random_range(0..40u64);
                    let ret = (!rng.random_bool(0.15)).then(|| call + rng.random_range(1..25));
                    let v = rng.random_range(0..3u32);
                    let input = match rng.random_range(0..3) {
                        0 => RegOp::Read(v),
                        1 => RegOp::Write(v),
                        _ => RegOp::Cas(v, rng.random_range(0..3u32)),
                    };
                    op(call, ret, input)
                })
                .collect();
            let m = CasRegister::default();
            let (out, _, met) =
                search_noting(&m, 0, &ops, Limits::default(), &mut MemoBuf::default());
            let SearchOutcome::NotLinearizable(f) = out else {
                continue;
            };
            if met.lifted[f.blocked as usize] {
                continue;
            }
            let (_, _, watched) = search(&m, 0, &ops, Limits::default(), Some(f.blocked));
            assert_eq!(
                met.states[f.blocked as usize], watched,
                "case {case}: {ops:?}"
            );
            compared += 1;
        }
        assert!(compared > 300, "only {compared} failing histories compared");
    }
}
