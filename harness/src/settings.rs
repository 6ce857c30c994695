//! Node settings a run varies: each system spec lists knobs (`[[settings]]`, e.g. the
//! snapshot interval, the replication batch size, election timing, read mode), and
//! `stasis test --settings vary` (the default) draws one choice of each per run from the
//! run's seed and appends it to every node's argv.
//!
//! Faults reach the code paths a cluster takes; settings decide which paths those are. A
//! node that snapshots every 10,000 entries never installs a snapshot in a 60 s run, and
//! one that sends 512 entries per message never leaves a follower one entry behind, so
//! the bugs in those paths stay out of reach whatever the nemesis does. Drawing the
//! settings per run, like the faults, spreads a campaign over them without a plan per bug.
//!
//! The draw is a separate random stream of the seed (the workload and the fault schedule
//! are unchanged by it), recorded in `test.json` (`settings`) and reused verbatim by
//! `stasis replay`. A knob whose flag the user gives explicitly (`--node-arg`) is not
//! drawn: explicit settings win.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One knob of a system spec: alternative argv fragments, the first being the system's
/// default (usually `[]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub name: String,
    pub choices: Vec<Vec<String>>,
}

/// Whether a run draws its node settings or keeps the system's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Draw one choice per knob from the seed.
    Vary,
    /// The system's defaults (and whatever `--node-arg` gives). Runs recorded before
    /// settings existed replay this way.
    #[default]
    Default,
}

/// The choice drawn for one knob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drawn {
    pub name: String,
    pub args: Vec<String>,
}

/// The flags (`--x`) a knob's choices set.
fn flags(s: &Setting) -> impl Iterator<Item = &str> {
    s.choices
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split_once('=').map_or(a, |(f, _)| f))
}

/// Draws one choice per knob from `seed`; knobs with a flag in `explicit` are left out.
pub fn draw(settings: &[Setting], seed: u64, explicit: &[String]) -> Vec<Drawn> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7365_7474_696e_6773);
    let given = |flag: &str| {
        explicit
            .iter()
            .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
    };
    let mut out = Vec::new();
    for s in settings {
        // Draw even for a skipped knob, so one explicit flag does not shift the others.
        let pick = rng.random_range(0..s.choices.len().max(1));
        if flags(s).any(given) {
            continue;
        }
        if let Some(c) = s.choices.get(pick) {
            out.push(Drawn {
                name: s.name.clone(),
                args: c.clone(),
            });
        }
    }
    out
}

/// The argv fragments of a draw, in knob order.
pub fn args(drawn: &[Drawn]) -> Vec<String> {
    drawn.iter().flat_map(|d| d.args.iter().cloned()).collect()
}

/// One line for the run's output: `snapshot=--snapshot-every 30, batch=default, ...`.
pub fn describe(drawn: &[Drawn]) -> String {
    drawn
        .iter()
        .map(|d| {
            let v = if d.args.is_empty() {
                "default".to_owned()
            } else {
                d.args.join(" ")
            };
            format!("{}={v}", d.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a spec's knobs: names unique and non-empty, at least two choices each, every
/// choice's arguments non-empty strings. Returns the offending name and a message.
pub fn validate(settings: &[Setting]) -> Result<(), (String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for s in settings {
        if s.name.is_empty()
            || !s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err((
                s.name.clone(),
                format!("settings: name {:?} must be letters, digits or '-'", s.name),
            ));
        }
        if !seen.insert(&s.name) {
            return Err((
                s.name.clone(),
                format!("settings: {:?} is listed twice", s.name),
            ));
        }
        if s.choices.len() < 2 {
            return Err((
                s.name.clone(),
                format!(
                    "settings {:?}: give at least two choices (the first is usually [], the default)",
                    s.name
                ),
            ));
        }
        if s.choices.iter().flatten().any(|a| a.trim().is_empty()) {
            return Err((
                s.name.clone(),
                format!("settings {:?}: an argument is empty", s.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs() -> Vec<Setting> {
        let s = |name: &str, choices: &[&[&str]]| Setting {
            name: name.into(),
            choices: choices
                .iter()
                .map(|c| c.iter().map(|a| a.to_string()).collect())
                .collect(),
        };
        vec![
            s(
                "snapshot",
                &[
                    &[],
                    &["--snapshot-every", "30"],
                    &["--snapshot-every", "300"],
                ],
            ),
            s("batch", &[&[], &["--max-msg-entries", "1"]]),
            s("read", &[&[], &["--read-mode", "lease"]]),
        ]
    }

    #[test]
    fn same_seed_same_draw_and_seeds_spread_over_the_choices() {
        let k = knobs();
        assert_eq!(draw(&k, 42, &[]), draw(&k, 42, &[]));
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let d = draw(&k, seed, &[]);
            assert_eq!(d.len(), 3);
            seen.insert(args(&d));
        }
        // 3 x 2 x 2 combinations, all reached.
        assert_eq!(seen.len(), 12);
    }

    #[test]
    fn explicit_flags_win_and_do_not_shift_the_other_knobs() {
        let k = knobs();
        for seed in 0..50 {
            let all = draw(&k, seed, &[]);
            for explicit in [
                vec!["--max-msg-entries".to_owned(), "7".to_owned()],
                vec!["--max-msg-entries=7".to_owned()],
            ] {
                let d = draw(&k, seed, &explicit);
                assert_eq!(d.len(), 2);
                assert!(d.iter().all(|x| x.name != "batch"));
                let others: Vec<&Drawn> = all.iter().filter(|x| x.name != "batch").collect();
                assert_eq!(d.iter().collect::<Vec<_>>(), others);
            }
        }
        // A flag that only shares a prefix does not count.
        let d = draw(&k, 1, &["--read-mode-x".to_owned()]);
        assert!(d.iter().any(|x| x.name == "read"));
    }

    #[test]
    fn describe_names_each_knob() {
        let d = vec![
            Drawn {
                name: "snapshot".into(),
                args: vec!["--snapshot-every".into(), "30".into()],
            },
            Drawn {
                name: "batch".into(),
                args: vec![],
            },
        ];
        assert_eq!(describe(&d), "snapshot=--snapshot-every 30, batch=default");
        assert_eq!(args(&d), ["--snapshot-every", "30"]);
    }

    #[test]
    fn validation_errors_are_one_line() {
        let mut k = knobs();
        assert!(validate(&k).is_ok());
        k.push(k[0].clone());
        assert!(validate(&k).unwrap_err().1.contains("listed twice"));
        let one = vec![Setting {
            name: "x".into(),
            choices: vec![vec![]],
        }];
        assert!(
            validate(&one)
                .unwrap_err()
                .1
                .contains("at least two choices")
        );
        let bad = vec![Setting {
            name: "a b".into(),
            choices: vec![vec![], vec!["--x".into()]],
        }];
        assert!(validate(&bad).is_err());
        let empty = vec![Setting {
            name: "e".into(),
            choices: vec![vec![], vec![" ".into()]],
        }];
        assert!(validate(&empty).unwrap_err().1.contains("empty"));
    }
}
