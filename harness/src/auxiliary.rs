//! Auxiliary processes: programs a system needs beside its nodes that are not nodes
//! themselves, such as Redis Sentinels (spec: `[[aux]]`).
//!
//! Each group runs `count` processes named `<name>1`, `<name>2`, ... Each lives in its own
//! `stasis-` namespace on the run's bridge, exactly like a node: kill, pause and partition
//! faults draw from nodes and auxiliary processes alike (a partition can cut a Sentinel
//! off as it cuts a node), the heal restarts them, and teardown stops them. They are not
//! voters, clients do not send operations to them (a client may ask them things, as the
//! redis-sentinel client asks Sentinels for the primary), and `{peers}` does not list
//! them. Their `program`, `args`, `env` and `files` take the node placeholders, with
//! `{client_port}` and `{peer_port}` both the group's `port`.

use serde::{Deserialize, Serialize};

use crate::program::WithProgram;

/// One group of auxiliary processes: its own keys beside the program's
/// ([`crate::program`]).
pub type Aux = WithProgram<AuxGroup>;

/// The keys of an `[[aux]]` table that are not the program's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxGroup {
    /// Lowercase letters; the processes are `<name>1` ... `<name><count>`.
    pub name: String,
    pub count: u8,
    /// The port the processes listen on (probed to verify partitions).
    pub port: u16,
}

impl AuxGroup {
    /// The processes' host names.
    pub fn hosts(&self) -> Vec<String> {
        (1..=self.count)
            .map(|k| format!("{}{k}", self.name))
            .collect()
    }
}

impl Aux {
    /// Checks what the TOML types cannot; on error returns text to locate in the spec
    /// and a one-line message.
    pub fn validate(&self) -> Result<(), (Option<String>, String)> {
        let at = Some(format!("\"{}\"", self.name));
        if self.name.is_empty()
            || self.name.len() > 12
            || !self.name.bytes().all(|b| b.is_ascii_lowercase())
            || self.name == "n"
        {
            return Err((
                at,
                format!(
                    "aux name {:?} must be 1 to 12 lowercase letters, not \"n\" (the nodes' prefix)",
                    self.name
                ),
            ));
        }
        if !(1..=9).contains(&self.count) {
            return Err((at, format!("aux {}: count must be 1 to 9", self.name)));
        }
        if self.port == 0 {
            return Err((at, format!("aux {}: port must not be 0", self.name)));
        }
        self.run.check(&format!("aux.{}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::Program;

    fn aux() -> Aux {
        Aux {
            run: Program {
                program: "redis-sentinel".into(),
                args: vec!["{data_dir}/sentinel.conf".into()],
                ..Program::default()
            },
            own: AuxGroup {
                name: "sentinel".into(),
                count: 3,
                port: 26379,
            },
        }
    }

    #[test]
    fn groups_name_their_hosts_and_reject_bad_fields() {
        assert_eq!(aux().hosts(), vec!["sentinel1", "sentinel2", "sentinel3"]);
        aux().validate().unwrap();
        let mut a = aux();
        a.own.name = "n".into();
        assert!(a.validate().unwrap_err().1.contains("not \"n\""));
        let mut a = aux();
        a.own.count = 0;
        assert!(a.validate().unwrap_err().1.contains("count"));
        let mut a = aux();
        a.run.args.push("{primary}".into());
        assert!(
            a.validate()
                .unwrap_err()
                .1
                .starts_with("aux.sentinel.args: unknown placeholder {primary}")
        );
    }
}
