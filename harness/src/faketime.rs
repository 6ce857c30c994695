//! Wall-clock faults through libfaketime.
//!
//! Each node runs with `LD_PRELOAD=libfaketime`, `FAKETIME_TIMESTAMP_FILE=<its control
//! file>`, `FAKETIME_NO_CACHE=1` and `FAKETIME_DONT_FAKE_MONOTONIC=1` (faking the
//! monotonic clock hangs tokio, and a correct node must not use the wall clock for safety
//! anyway). Writing `+<seconds> x<rate>` to the control file moves the running process's
//! wall clock at once. A rate is always written explicitly: a plain `+0` does not reset a
//! rate set earlier.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes the control file atomically (tmp + rename), so a node never reads half a line.
pub fn write_control(path: &Path, offset_secs: f64, rate: f64) -> Result<()> {
    let tmp = path.with_extension("rc.tmp");
    fs::write(&tmp, control_line(offset_secs, rate))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The control line for an offset in seconds and a rate (1.0 = real speed).
pub fn control_line(offset_secs: f64, rate: f64) -> String {
    format!("{offset_secs:+.3} x{rate}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_always_carry_a_rate() {
        assert_eq!(control_line(0.0, 1.0), "+0.000 x1\n");
        assert_eq!(control_line(-12.5, 1.0), "-12.500 x1\n");
        assert_eq!(control_line(3.0, 2.5), "+3.000 x2.5\n");
    }
}
