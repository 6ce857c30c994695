//! Replicated key-value state machine (protocol-neutral).
//!
//! Invariants:
//! - [`KvStore::apply`] is deterministic: the same command sequence from the same state
//!   yields the same replies and state on every replica (ordered `BTreeMap`, no clocks,
//!   no randomness).
//! - `CAS k old new` succeeds only if `k` is present with value `old`; on an absent key it
//!   fails (there is no "expect absent" form).
//! - [`KvStore::snapshot`] then [`KvStore::restore`] reproduces the store exactly.
//! - Wire forms ([`Command::encode`], snapshots) are postcard; snapshots carry a leading
//!   format version byte. Decoding untrusted bytes never panics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

/// Version byte at the start of every snapshot.
const SNAPSHOT_VERSION: u8 = 1;

/// The longest value any store in this process has held: an upper bound on the size of a
/// GET's answer, which the client server reserves from a connection's reply budget before
/// forwarding the GET (runtime/client.rs). Only grows; not part of the replicated state.
static LARGEST_VALUE: AtomicUsize = AtomicUsize::new(0);

/// See [`LARGEST_VALUE`].
pub fn largest_value() -> usize {
    LARGEST_VALUE.load(Ordering::Relaxed)
}

fn saw_value(len: usize) {
    LARGEST_VALUE.fetch_max(len, Ordering::Relaxed);
}

/// A state-machine command, as replicated in the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Unconditional write.
    Set {
        /// Key.
        key: Vec<u8>,
        /// New value.
        value: Vec<u8>,
    },
    /// Compare-and-set: write `new` if the current value is `old`.
    Cas {
        /// Key.
        key: Vec<u8>,
        /// Expected current value.
        old: Vec<u8>,
        /// Value to write on success.
        new: Vec<u8>,
    },
    /// Read through the log (linearizable by construction).
    Get {
        /// Key.
        key: Vec<u8>,
    },
    /// No effect (a new leader's first entry of its term).
    Noop,
}

/// Result of applying a command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A `Set` or `Noop` was applied.
    Ok,
    /// Value read by `Get` (`None` = absent).
    Value(Option<Vec<u8>>),
    /// Whether a `Cas` swapped.
    Cas(bool),
}

/// Failure to decode a command or snapshot.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Bytes are not a valid command.
    #[error("cannot decode kv command ({0}); the log entry is damaged or from another version")]
    Command(postcard::Error),
    /// Bytes are not a valid snapshot.
    #[error("cannot decode kv snapshot: {0}")]
    Snapshot(String),
}

impl Command {
    /// Serialized form for the log.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self)
            .expect("postcard serialization of plain data into a Vec cannot fail")
    }

    /// Parses the output of [`Command::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Command, KvError> {
        postcard::from_bytes(bytes).map_err(KvError::Command)
    }

    /// The key this command touches, if any.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Command::Set { key, .. } | Command::Cas { key, .. } | Command::Get { key } => Some(key),
            Command::Noop => None,
        }
    }
}

/// The key-value store every replica applies committed commands to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed command.
    pub fn apply(&mut self, cmd: &Command) -> Reply {
        match cmd {
            Command::Set { key, value } => {
                saw_value(value.len());
                self.map.insert(key.clone(), value.clone());
                Reply::Ok
            }
            Command::Cas { key, old, new } => match self.map.get_mut(key) {
                Some(cur) if cur == old => {
                    saw_value(new.len());
                    cur.clone_from(new);
                    Reply::Cas(true)
                }
                _ => Reply::Cas(false),
            },
            Command::Get { key } => Reply::Value(self.map.get(key).cloned()),
            Command::Noop => Reply::Ok,
        }
    }

    /// Current value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Serialized full state (deterministic: equal stores give equal bytes).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_VERSION];
        out.extend(
            postcard::to_stdvec(&self.map)
                .expect("postcard serialization of plain data into a Vec cannot fail"),
        );
        out
    }

    /// Rebuilds a store from [`KvStore::snapshot`] output.
    pub fn restore(bytes: &[u8]) -> Result<KvStore, KvError> {
        match bytes.split_first() {
            Some((&SNAPSHOT_VERSION, rest)) => {
                let (map, extra): (BTreeMap<Vec<u8>, Vec<u8>>, &[u8]) =
                    postcard::take_from_bytes(rest)
                        .map_err(|e| KvError::Snapshot(e.to_string()))?;
                if !extra.is_empty() {
                    return Err(KvError::Snapshot(format!(
                        "{} trailing bytes after the map",
                        extra.len()
                    )));
                }
                saw_value(map.values().map(Vec::len).max().unwrap_or(0));
                Ok(KvStore { map })
            }
            Some((v, _)) => Err(KvError::Snapshot(format!(
                "unknown snapshot format version {v} (expected {SNAPSHOT_VERSION})"
            ))),
            None => Err(KvError::Snapshot("empty snapshot".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(k: &str, v: &str) -> Command {
        Command::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    fn cas(k: &str, old: &str, new: &str) -> Command {
        Command::Cas {
            key: k.into(),
            old: old.into(),
            new: new.into(),
        }
    }

    fn get(k: &str) -> Command {
        Command::Get { key: k.into() }
    }

    #[test]
    fn set_get_cas_semantics() {
        let mut kv = KvStore::new();
        assert_eq!(kv.apply(&get("a")), Reply::Value(None));
        assert_eq!(
            kv.apply(&cas("a", "", "1")),
            Reply::Cas(false),
            "absent key"
        );
        assert_eq!(kv.apply(&set("a", "1")), Reply::Ok);
        assert_eq!(kv.apply(&cas("a", "2", "3")), Reply::Cas(false));
        assert_eq!(kv.get(b"a"), Some(&b"1"[..]));
        assert_eq!(kv.apply(&cas("a", "1", "3")), Reply::Cas(true));
        assert_eq!(kv.apply(&get("a")), Reply::Value(Some(b"3".to_vec())));
        assert_eq!(kv.apply(&Command::Noop), Reply::Ok);
        assert_eq!(kv.len(), 1);
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(Command::decode(&[200, 1, 2]).is_err());
        assert!(Command::decode(&[]).is_err());
        assert!(KvStore::restore(&[]).is_err());
        let err = KvStore::restore(&[9, 0]).expect_err("version");
        assert!(err.to_string().contains("version 9"), "{err}");
        let mut snap = KvStore::new().snapshot();
        snap.push(0);
        assert!(KvStore::restore(&snap).is_err(), "trailing bytes");
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let key = prop::collection::vec(0u8..4, 0..3);
        let val = prop::collection::vec(0u8..3, 0..3);
        prop_oneof![
            (key.clone(), val.clone()).prop_map(|(key, value)| Command::Set { key, value }),
            (key.clone(), val.clone(), val).prop_map(|(key, old, new)| Command::Cas {
                key,
                old,
                new
            }),
            key.prop_map(|key| Command::Get { key }),
            Just(Command::Noop),
        ]
    }

    proptest! {
        #[test]
        fn command_encoding_round_trips(cmd in arb_command()) {
            prop_assert_eq!(Command::decode(&cmd.encode()).expect("decode"), cmd);
        }

        #[test]
        fn snapshot_restore_round_trips(cmds in prop::collection::vec(arb_command(), 0..60)) {
            let mut kv = KvStore::new();
            let mut replies = Vec::new();
            for c in &cmds {
                replies.push(kv.apply(c));
            }
            let restored = KvStore::restore(&kv.snapshot()).expect("restore");
            prop_assert_eq!(&restored, &kv);
            prop_assert_eq!(restored.snapshot(), kv.snapshot());
            // Determinism: replaying gives the same replies and state.
            let mut again = KvStore::new();
            let replayed: Vec<Reply> = cmds.iter().map(|c| again.apply(c)).collect();
            prop_assert_eq!(replayed, replies);
            prop_assert_eq!(again, kv);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = Command::decode(&bytes);
            let _ = KvStore::restore(&bytes);
        }
    }
}
