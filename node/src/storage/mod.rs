//! Durable storage: storage-file interface, segmented WAL, snapshots.
//!
//! - [`file`]: every byte goes through the [`file::Fs`] trait (`RealFs` on disk, `SimFs`
//!   in memory with simulated power loss).
//! - [`wal`]: segmented append-only log of opaque, checksummed records.
//! - [`snapshot`]: one atomically replaced, checksummed blob.
//! - [`durable`]: a protocol's durable state, a WAL of typed records plus a snapshot.
//!
//! All storage operations return [`StorageError`], whose Display is one line naming the
//! file involved.

pub mod durable;
pub mod file;
pub mod snapshot;
pub mod wal;

use std::io;
use std::path::{Path, PathBuf};

/// A monotonic clock: the time elapsed since a fixed origin. A node's is the process's
/// monotonic clock ([`process_clock`]); the simulator's is its simulated time, so storage
/// behaviour that depends on time replays bit for bit.
pub type Clock = std::sync::Arc<dyn Fn() -> std::time::Duration + Send + Sync>;

/// The process's monotonic clock, from the moment this is called.
pub fn process_clock() -> Clock {
    let origin = std::time::Instant::now();
    std::sync::Arc::new(move || origin.elapsed())
}

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// Storage failure. Display is a single line that names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed.
    #[error("storage I/O error: cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done ("open", "fsync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Durable data failed validation; never silently dropped.
    #[error(
        "corrupt storage file {} at byte {offset}: {reason}; the node's data is damaged \
         (restore the data directory from a healthy replica or backup)",
        .path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record larger than the configured limit was appended.
    #[error("record of {len} bytes exceeds the limit of {max} bytes for log {}", .dir.display())]
    RecordTooLarge {
        /// The log directory.
        dir: PathBuf,
        /// Size of the rejected record.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; the only safe
    /// move is to restart and recover from disk.
    #[error(
        "log {} is unusable after an earlier I/O error; restart the node to recover from disk",
        .dir.display()
    )]
    Poisoned {
        /// The log directory.
        dir: PathBuf,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io { op, path, source }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

/// CRC32 over the concatenation of `parts` (the one checksum used by all storage formats).
pub(crate) fn checksum(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}
