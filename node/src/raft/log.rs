//! The in-memory view of the Raft log: a snapshot base plus the entries after it.

use serde::{Deserialize, Serialize};

use super::membership::Membership;

/// A log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub payload: Payload,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader at the start of its term.
    Noop,
    /// An opaque state-machine command.
    Command(Vec<u8>),
    /// A configuration; it takes effect as soon as it is appended (thesis §4.1).
    Config(Membership),
}

impl Entry {
    /// Approximate encoded size, used to bound message batches.
    pub fn size(&self) -> usize {
        24 + match &self.payload {
            Payload::Noop => 0,
            Payload::Command(c) => c.len(),
            Payload::Config(m) => {
                32 * m.members().len() + m.addrs.values().map(|a| a.len()).sum::<usize>()
            }
        }
    }
}

/// Entries after a snapshot base (`base_index`, `base_term`). The base itself is committed.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    pub base_index: u64,
    pub base_term: u64,
    entries: Vec<Entry>,
    pub commit: u64,
    /// Highest index handed to the runtime for applying.
    pub applied: u64,
}

impl RaftLog {
    pub fn new(base_index: u64, base_term: u64, entries: Vec<Entry>) -> RaftLog {
        let mut log = RaftLog {
            base_index,
            base_term,
            entries: Vec::new(),
            commit: base_index,
            applied: base_index,
        };
        let mut expect = base_index + 1;
        for e in entries {
            if e.index == expect {
                log.entries.push(e);
                expect += 1;
            }
        }
        log
    }

    pub fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    /// Term of the entry at `index`; `None` if compacted away or beyond the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        if index < self.base_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.base_index - 1) as usize].term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.base_index || index > self.last_index() {
            return None;
        }
        Some(&self.entries[(index - self.base_index - 1) as usize])
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a candidate with this last entry is at least as up to date as we are.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[lo, hi]`, at most `max_count` and (beyond the first) `max_bytes`.
    /// `None` if `lo` was compacted away.
    pub fn slice(
        &self,
        lo: u64,
        hi: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Option<Vec<Entry>> {
        if lo <= self.base_index {
            return None;
        }
        let hi = hi.min(self.last_index());
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = lo;
        while i <= hi && out.len() < max_count {
            let e = self.entry(i)?;
            bytes += e.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
            i += 1;
        }
        Some(out)
    }

    /// All entries after `index` (used when rewriting storage after compaction).
    pub fn entries_after(&self, index: u64) -> Vec<Entry> {
        let from = index.clamp(self.base_index, self.last_index());
        self.entries[(from - self.base_index) as usize..].to_vec()
    }

    /// Appends entries that start at or before `last_index() + 1`, removing any existing
    /// entries from the first one's index on. Callers never truncate committed entries.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        if first.index <= self.base_index || first.index > self.last_index() + 1 {
            return;
        }
        self.entries
            .truncate((first.index - self.base_index - 1) as usize);
        self.entries.extend_from_slice(entries);
    }

    /// The index of the first entry in `entries` that is missing or conflicts with ours,
    /// ignoring entries at or below the commit index (they are known to match).
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<usize> {
        entries
            .iter()
            .position(|e| e.index > self.commit && !self.match_term(e.index, e.term))
    }

    /// Makes `index` (with `term`) the new base, dropping older entries. If our entry at
    /// `index` has a different term (or is missing), the whole log is replaced.
    pub fn compact_to(&mut self, index: u64, term: u64) {
        if index <= self.base_index {
            return;
        }
        if self.match_term(index, term) {
            self.entries.drain(..(index - self.base_index) as usize);
        } else {
            self.entries.clear();
        }
        self.base_index = index;
        self.base_term = term;
        self.commit = self.commit.max(index);
        self.applied = self.applied.max(index);
    }

    /// The most recent configuration entry at or below `index`, if it is still in the log.
    pub fn config_at(&self, index: u64) -> Option<(u64, &Membership)> {
        let hi = index.min(self.last_index());
        if hi <= self.base_index {
            return None;
        }
        self.entries[..(hi - self.base_index) as usize]
            .iter()
            .rev()
            .find_map(|e| match &e.payload {
                Payload::Config(m) => Some((e.index, m)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Noop,
        }
    }

    #[test]
    fn append_truncates_and_terms_are_reported() {
        let mut log = RaftLog::new(0, 0, vec![e(1, 1), e(2, 1), e(3, 2)]);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(0), Some(0));
        assert_eq!(log.term(3), Some(2));
        assert_eq!(log.term(4), None);
        log.append(&[e(3, 3), e(4, 3)]);
        assert_eq!(log.term(3), Some(3));
        assert_eq!(log.last_index(), 4);
        // A gap is refused.
        log.append(&[e(9, 3)]);
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.find_conflict(&[e(3, 3), e(4, 4)]), Some(1));
        assert_eq!(log.find_conflict(&[e(3, 3), e(4, 3), e(5, 3)]), Some(2));
        assert_eq!(log.find_conflict(&[e(3, 3)]), None);
    }

    #[test]
    fn compaction_keeps_the_tail_or_replaces_the_log() {
        let mut log = RaftLog::new(0, 0, vec![e(1, 1), e(2, 1), e(3, 2)]);
        log.compact_to(2, 1);
        assert_eq!((log.base_index, log.base_term, log.last_index()), (2, 1, 3));
        assert_eq!(log.term(1), None);
        assert_eq!(log.slice(2, 3, 10, 1000), None);
        assert_eq!(log.slice(3, 3, 10, 1000).map(|v| v.len()), Some(1));
        log.compact_to(5, 4);
        assert_eq!((log.base_index, log.last_index(), log.commit), (5, 5, 5));
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let log = RaftLog::new(0, 0, vec![e(1, 1), e(2, 2)]);
        assert!(log.is_up_to_date(2, 2));
        assert!(log.is_up_to_date(1, 3));
        assert!(!log.is_up_to_date(5, 1));
        assert!(!log.is_up_to_date(1, 2));
    }
}
