//! The disk faults as operations on one node's mounted filesystem, and [`Disk`], the
//! handle the disk nemesis drives: the filesystem mounted by this process (a local node),
//! or by `stasis diskfault-agent` on the node's remote host ([`super::agent`]). Either way
//! the operation is [`Op`] and it is applied by [`apply`], so local and remote nodes get
//! the same faults from the same code; the remote one travels as one JSON line.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::agent::DiskAgent;
use super::{Corruption, Loss, Mounted};

/// One operation on a node's disk-fault filesystem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A power loss: drop what was written since the last fsync; `torn` (a seed) keeps
    /// each unsynced write with probability 1/2.
    LoseUnfsynced { torn: Option<u64> },
    /// Damage one data file (seeded).
    Corrupt { seed: u64 },
    /// Give the corrupted file its old contents back.
    UndoCorruption,
    /// Switch the full disk on (counting ENOSPC from zero) or off.
    Full { on: bool },
    /// Make every fsync sleep `ms` first (counting fsyncs from zero), or not (0).
    Slow { ms: u64 },
}

/// A switch read back after it was set: the setting (`full`: 0 or 1, `slow`: ms) and the
/// calls it hit since it was switched on (ENOSPC failures, fsyncs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Switched {
    pub set: u64,
    pub count: u64,
}

/// Applies `op` to a mounted filesystem; the answer is what the op reports (a [`Loss`],
/// a [`Corruption`], the restored file, a [`Switched`]) as JSON.
pub fn apply(m: &Mounted, op: &Op) -> Result<Value> {
    Ok(match op {
        Op::LoseUnfsynced { torn } => json!(m.store().lose_unfsynced(*torn)?),
        Op::Corrupt { seed } => json!(m.store().corrupt(*seed)?),
        Op::UndoCorruption => json!(m.store().undo_corruption()?),
        Op::Full { on } => {
            if *on {
                m.ctl.enospc.store(0, Relaxed);
            }
            m.ctl.full.store(*on, Relaxed);
            json!(Switched {
                set: m.ctl.full.load(Relaxed) as u64,
                count: m.ctl.enospc.load(Relaxed),
            })
        }
        Op::Slow { ms } => {
            if *ms > 0 {
                m.ctl.fsyncs.store(0, Relaxed);
            }
            m.ctl.slow_ms.store(*ms, Relaxed);
            json!(Switched {
                set: m.ctl.slow_ms.load(Relaxed),
                count: m.ctl.fsyncs.load(Relaxed),
            })
        }
    })
}

/// One node's disk-fault filesystem: mounted by this process, or by the agent on the
/// node's host.
pub enum Disk {
    Local(Mounted),
    Remote(DiskAgent),
}

/// How long a remote operation may take (a power loss reverts every unsynced file).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

impl Disk {
    fn call<T: DeserializeOwned>(&self, op: Op) -> Result<T> {
        let v = match self {
            Disk::Local(m) => apply(m, &op)?,
            Disk::Remote(a) => a.request(&op, REMOTE_TIMEOUT)?,
        };
        serde_json::from_value(v).context("a malformed answer from the disk-fault filesystem")
    }

    pub fn lose_unfsynced(&self, torn: Option<u64>) -> Result<Loss> {
        self.call(Op::LoseUnfsynced { torn })
    }

    pub fn corrupt(&self, seed: u64) -> Result<Option<Corruption>> {
        self.call(Op::Corrupt { seed })
    }

    pub fn undo_corruption(&self) -> Result<Option<String>> {
        self.call(Op::UndoCorruption)
    }

    /// Switches the full disk on or off, verified by reading the switch back; returns
    /// the calls refused with ENOSPC since it was switched on.
    pub fn full(&self, on: bool) -> Result<u64> {
        let s: Switched = self.call(Op::Full { on })?;
        if s.set != on as u64 {
            bail!("the full-disk switch reads {} after setting {on}", s.set);
        }
        Ok(s.count)
    }

    /// Makes fsyncs sleep `ms` (0: not), verified by reading the setting back; returns
    /// the fsyncs served since it was last set nonzero.
    pub fn slow(&self, ms: u64) -> Result<u64> {
        let s: Switched = self.call(Op::Slow { ms })?;
        if s.set != ms {
            bail!("the fsync delay reads {} ms after setting {ms} ms", s.set);
        }
        Ok(s.count)
    }

    /// Unmounts (a remote agent unmounts and exits). Idempotent for a remote agent.
    pub fn unmount(self) -> Result<()> {
        match self {
            Disk::Local(m) => Ok(m.unmount()?),
            Disk::Remote(mut a) => a.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_tagged_json() {
        let line = serde_json::to_string(&Op::LoseUnfsynced { torn: Some(5) }).unwrap();
        assert_eq!(line, r#"{"op":"lose_unfsynced","torn":5}"#);
        for op in [
            Op::LoseUnfsynced { torn: None },
            Op::Corrupt { seed: 9 },
            Op::UndoCorruption,
            Op::Full { on: true },
            Op::Slow { ms: 120 },
        ] {
            let back: Op = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
            assert_eq!(back, op);
        }
        let loss = Loss {
            files: 2,
            ops_dropped: 7,
            ..Default::default()
        };
        let back: Loss = serde_json::from_value(json!(loss)).unwrap();
        assert_eq!(back, loss);
    }
}
