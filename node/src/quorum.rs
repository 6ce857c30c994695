//! Quorum systems for Paxos: which sets of acceptors may complete phase 1 (read) and
//! phase 2 (write).
//!
//! Flexible Paxos only needs every phase-1 quorum to intersect every phase-2 quorum; quorums
//! of the same phase may be disjoint. Systems (`--quorum`):
//!
//! - `majority`: both phases need more than half of the members;
//! - `flexible:Q1,Q2`: phase 1 needs `Q1` members, phase 2 `Q2`, with `Q1 + Q2 > N`;
//! - `grid:RxC`: members (sorted by id) fill an R×C grid row by row; phase 1 needs a full
//!   row, phase 2 a full column (every row meets every column);
//! - `even`: for an even N, `Major(D) ∪ Major(D∖{d})` with `d` the highest id, for both
//!   phases: a 2+2 split of four nodes still leaves one side with a quorum.
//!
//! Every system is monotone (a superset of a quorum is a quorum). [`QuorumSystem::new`]
//! refuses configurations whose quorums may not intersect, checking by brute force over all
//! subsets when N is small. [`Joint`] composes configurations during a membership change:
//! a set is a quorum only if it is one in every configuration.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::{Bugs, NodeId};

/// Largest member count for which [`QuorumSystem::new`] checks intersection exhaustively.
pub const BRUTE_FORCE_MAX: usize = 20;

/// The kind of quorum system (`--quorum`), independent of the member set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumSpec {
    #[default]
    Majority,
    Flexible {
        q1: usize,
        q2: usize,
    },
    Grid {
        rows: usize,
        cols: usize,
    },
    Even,
}

impl fmt::Display for QuorumSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumSpec::Majority => f.write_str("majority"),
            QuorumSpec::Flexible { q1, q2 } => write!(f, "flexible:{q1},{q2}"),
            QuorumSpec::Grid { rows, cols } => write!(f, "grid:{rows}x{cols}"),
            QuorumSpec::Even => f.write_str("even"),
        }
    }
}

impl QuorumSpec {
    /// Parses `majority`, `flexible:Q1,Q2`, `grid:RxC` or `even`.
    pub fn parse(s: &str) -> Result<QuorumSpec, String> {
        let num = |x: &str, what: &str| -> Result<usize, String> {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("--quorum {s:?}: {what} must be a number >= 1 (got {x:?})"))
        };
        if s == "majority" {
            Ok(QuorumSpec::Majority)
        } else if s == "even" {
            Ok(QuorumSpec::Even)
        } else if let Some(rest) = s.strip_prefix("flexible:") {
            let (a, b) = rest.split_once(',').ok_or_else(|| {
                format!("--quorum {s:?}: write flexible:Q1,Q2 (e.g. flexible:4,2)")
            })?;
            Ok(QuorumSpec::Flexible {
                q1: num(a, "Q1")?,
                q2: num(b, "Q2")?,
            })
        } else if let Some(rest) = s.strip_prefix("grid:") {
            let (a, b) = rest
                .split_once(['x', 'X'])
                .ok_or_else(|| format!("--quorum {s:?}: write grid:RxC (e.g. grid:3x6)"))?;
            Ok(QuorumSpec::Grid {
                rows: num(a, "R")?,
                cols: num(b, "C")?,
            })
        } else {
            Err(format!(
                "unknown --quorum {s:?}: use majority, flexible:Q1,Q2, grid:RxC or even"
            ))
        }
    }
}

/// A quorum system over a concrete member set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumSystem {
    spec: QuorumSpec,
    /// Members sorted by id (the grid is filled row by row in this order).
    members: Vec<NodeId>,
}

impl QuorumSystem {
    /// Builds the system for `members` and refuses one whose phase-1 and phase-2 quorums
    /// may not intersect (or that cannot be laid out), with a one-line reason.
    pub fn new(spec: QuorumSpec, members: &BTreeSet<NodeId>) -> Result<QuorumSystem, String> {
        QuorumSystem::validate(spec, members, &Bugs::default())
    }

    /// [`QuorumSystem::new`] under the seeded `bugs`. With `disjoint-quorums` the
    /// intersection checks are skipped (the analytic `Q1 + Q2 > N` one and the exhaustive
    /// one): a flexible configuration whose phase-1 and phase-2 quorums may miss each other
    /// is let through, and the node runs with it.
    pub fn validate(
        spec: QuorumSpec,
        members: &BTreeSet<NodeId>,
        bugs: &Bugs,
    ) -> Result<QuorumSystem, String> {
        let q = QuorumSystem::fitted_with(spec, members, bugs)?;
        if bugs.disjoint_quorums {
            // Seeded bug `disjoint-quorums`: no intersection check.
            return Ok(q);
        }
        if members.len() <= BRUTE_FORCE_MAX
            && let Some((a, b)) = q.non_intersecting_pair()
        {
            return Err(format!(
                "--quorum {spec}: phase-1 quorum {a:?} and phase-2 quorum {b:?} do not intersect"
            ));
        }
        Ok(q)
    }

    /// Like [`QuorumSystem::new`] with the analytic checks only (sizes and layout), without
    /// the exhaustive intersection check: cheap enough for every quorum decision.
    pub fn fitted(spec: QuorumSpec, members: &BTreeSet<NodeId>) -> Result<QuorumSystem, String> {
        QuorumSystem::fitted_with(spec, members, &Bugs::default())
    }

    /// [`QuorumSystem::fitted`] under the seeded `bugs` (`disjoint-quorums` skips the
    /// `Q1 + Q2 > N` check).
    pub fn fitted_with(
        spec: QuorumSpec,
        members: &BTreeSet<NodeId>,
        bugs: &Bugs,
    ) -> Result<QuorumSystem, String> {
        let n = members.len();
        if n == 0 {
            return Err("a quorum system needs at least one member".into());
        }
        match spec {
            QuorumSpec::Majority => {}
            QuorumSpec::Flexible { q1, q2 } => {
                if q1 > n || q2 > n {
                    return Err(format!(
                        "--quorum {spec}: quorum sizes cannot exceed the {n} members"
                    ));
                }
                if q1 + q2 <= n && !bugs.disjoint_quorums {
                    return Err(format!(
                        "--quorum {spec}: Q1 + Q2 = {} must exceed N = {n} or phase-1 and \
                         phase-2 quorums may not intersect",
                        q1 + q2
                    ));
                }
            }
            QuorumSpec::Grid { rows, cols } => {
                if rows.checked_mul(cols) != Some(n) {
                    return Err(format!(
                        "--quorum {spec}: a {rows}x{cols} grid needs {} members, the \
                         configuration has {n}",
                        rows.saturating_mul(cols)
                    ));
                }
            }
            QuorumSpec::Even => {
                if !n.is_multiple_of(2) {
                    return Err(format!(
                        "--quorum even needs an even number of members, the configuration \
                         has {n} (use majority)"
                    ));
                }
            }
        }
        Ok(QuorumSystem {
            spec,
            members: members.iter().copied().collect(),
        })
    }

    /// A system that needs every member in both phases (intersects anything over the same
    /// members); used when a configuration does not fit the configured spec.
    pub fn unanimous(members: &BTreeSet<NodeId>) -> QuorumSystem {
        QuorumSystem {
            spec: QuorumSpec::Flexible {
                q1: members.len(),
                q2: members.len(),
            },
            members: members.iter().copied().collect(),
        }
    }

    pub fn spec(&self) -> QuorumSpec {
        self.spec
    }

    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    fn count(&self, set: &BTreeSet<NodeId>) -> usize {
        self.members.iter().filter(|m| set.contains(m)).count()
    }

    fn even_quorum(&self, set: &BTreeSet<NodeId>) -> bool {
        let n = self.members.len();
        let all = self.count(set);
        let without_last = self.members[..n - 1]
            .iter()
            .filter(|m| set.contains(m))
            .count();
        all > n / 2 || without_last > (n - 1) / 2
    }

    /// Whether `set` may complete phase 1 (prepare/promise).
    pub fn is_phase1_quorum(&self, set: &BTreeSet<NodeId>) -> bool {
        let n = self.members.len();
        match self.spec {
            QuorumSpec::Majority => self.count(set) > n / 2,
            QuorumSpec::Flexible { q1, .. } => self.count(set) >= q1,
            QuorumSpec::Grid { cols, .. } => self
                .members
                .chunks(cols)
                .any(|row| row.iter().all(|m| set.contains(m))),
            QuorumSpec::Even => self.even_quorum(set),
        }
    }

    /// Whether `set` may complete phase 2 (accept/accepted).
    pub fn is_phase2_quorum(&self, set: &BTreeSet<NodeId>) -> bool {
        let n = self.members.len();
        match self.spec {
            QuorumSpec::Majority => self.count(set) > n / 2,
            QuorumSpec::Flexible { q2, .. } => self.count(set) >= q2,
            QuorumSpec::Grid { cols, .. } => (0..cols).any(|c| {
                self.members
                    .iter()
                    .skip(c)
                    .step_by(cols)
                    .all(|m| set.contains(m))
            }),
            QuorumSpec::Even => self.even_quorum(set),
        }
    }

    /// All subsets of the members, as sets (only for small N).
    pub fn subsets(&self) -> Vec<BTreeSet<NodeId>> {
        let n = self.members.len();
        assert!(n <= BRUTE_FORCE_MAX, "too many members to enumerate");
        (0u32..(1 << n)).map(|mask| self.set_of(mask)).collect()
    }

    fn set_of(&self, mask: u32) -> BTreeSet<NodeId> {
        self.members
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, &m)| m)
            .collect()
    }

    /// A phase-1 quorum and a disjoint phase-2 quorum, if any exist. Exhaustive over the
    /// 2^N subsets: by monotonicity such a pair exists iff some phase-1 quorum's complement
    /// is a phase-2 quorum.
    pub fn non_intersecting_pair(&self) -> Option<(BTreeSet<NodeId>, BTreeSet<NodeId>)> {
        let n = self.members.len();
        assert!(n <= BRUTE_FORCE_MAX, "too many members to enumerate");
        let all: u32 = if n == 32 { u32::MAX } else { (1 << n) - 1 };
        let p1 = self.masks(true);
        let p2 = self.masks(false);
        (0..=all)
            .find(|&m| p1[m as usize] && p2[(all & !m) as usize])
            .map(|m| (self.set_of(m), self.set_of(all & !m)))
    }

    /// For every subset mask, whether it is a quorum of phase 1 (`true`) or 2.
    fn masks(&self, phase1: bool) -> Vec<bool> {
        let n = self.members.len();
        let count = |m: u32| m.count_ones() as usize;
        let row_or_col = |m: u32, cols: usize, rows_wanted: bool| -> bool {
            let rows = n / cols;
            if rows_wanted {
                (0..rows).any(|r| (0..cols).all(|c| m & (1 << (r * cols + c)) != 0))
            } else {
                (0..cols).any(|c| (0..rows).all(|r| m & (1 << (r * cols + c)) != 0))
            }
        };
        (0u32..(1 << n))
            .map(|m| match self.spec {
                QuorumSpec::Majority => count(m) > n / 2,
                QuorumSpec::Flexible { q1, q2 } => count(m) >= if phase1 { q1 } else { q2 },
                QuorumSpec::Grid { cols, .. } => row_or_col(m, cols, phase1),
                QuorumSpec::Even => {
                    let without_last = m & !(1 << (n - 1));
                    count(m) > n / 2 || count(without_last) > (n - 1) / 2
                }
            })
            .collect()
    }
}

/// Several configurations that must all agree (joint consensus C_old,new): a set is a
/// quorum of a phase iff it is one in every part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Joint {
    pub parts: Vec<QuorumSystem>,
}

impl Joint {
    pub fn new(parts: Vec<QuorumSystem>) -> Joint {
        Joint { parts }
    }

    /// Whether any part exists (an empty joint decides nothing).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn is_phase1_quorum(&self, set: &BTreeSet<NodeId>) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(|q| q.is_phase1_quorum(set))
    }

    pub fn is_phase2_quorum(&self, set: &BTreeSet<NodeId>) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(|q| q.is_phase2_quorum(set))
    }

    /// Every member of every part.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.parts
            .iter()
            .flat_map(|q| q.members.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> BTreeSet<NodeId> {
        (1..=n).collect()
    }

    fn set(v: &[NodeId]) -> BTreeSet<NodeId> {
        v.iter().copied().collect()
    }

    /// Literal check over all pairs of quorums.
    fn all_pairs_intersect(q: &QuorumSystem) -> bool {
        let subsets = q.subsets();
        let p1: Vec<_> = subsets.iter().filter(|s| q.is_phase1_quorum(s)).collect();
        let p2: Vec<_> = subsets.iter().filter(|s| q.is_phase2_quorum(s)).collect();
        assert!(!p1.is_empty() && !p2.is_empty());
        p1.iter()
            .all(|a| p2.iter().all(|b| a.intersection(b).next().is_some()))
    }

    /// Builds the system without validation (to test the validator against the brute force).
    fn raw(spec: QuorumSpec, n: u64) -> QuorumSystem {
        QuorumSystem {
            spec,
            members: (1..=n).collect(),
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["majority", "flexible:4,2", "grid:3x6", "even"] {
            assert_eq!(QuorumSpec::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            QuorumSpec::parse("grid:2X3"),
            Ok(QuorumSpec::Grid { rows: 2, cols: 3 })
        );
        for bad in [
            "",
            "maj",
            "flexible:",
            "flexible:3",
            "flexible:0,3",
            "flexible:a,b",
            "grid:3",
            "grid:0x3",
            "grid:3x",
            "evens",
        ] {
            let e = QuorumSpec::parse(bad).unwrap_err();
            assert!(!e.contains('\n') && e.contains("quorum"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn brute_force_every_system_validator_agrees() {
        let mut accepted = 0;
        let mut rejected = 0;
        for n in 1..=8u64 {
            let mut specs = vec![QuorumSpec::Majority, QuorumSpec::Even];
            for q1 in 1..=n as usize {
                for q2 in 1..=n as usize {
                    specs.push(QuorumSpec::Flexible { q1, q2 });
                }
            }
            for rows in 1..=n as usize {
                if (n as usize).is_multiple_of(rows) {
                    specs.push(QuorumSpec::Grid {
                        rows,
                        cols: n as usize / rows,
                    });
                }
            }
            for spec in specs {
                let layout_ok = match spec {
                    QuorumSpec::Even => n % 2 == 0,
                    _ => true,
                };
                let intersect = layout_ok && all_pairs_intersect(&raw(spec, n));
                match QuorumSystem::new(spec, &ids(n)) {
                    Ok(_) => {
                        accepted += 1;
                        assert!(
                            intersect,
                            "{spec} over {n} accepted but quorums are disjoint"
                        )
                    }
                    Err(e) => {
                        rejected += 1;
                        assert!(!e.contains('\n'));
                        assert!(
                            !intersect || !layout_ok,
                            "{spec} over {n} rejected ({e}) but all quorums intersect"
                        );
                    }
                }
            }
        }
        assert!(accepted > 50 && rejected > 50, "{accepted} {rejected}");
    }

    #[test]
    fn seed_grid_3x6_rows_read_columns_write() {
        let q = QuorumSystem::new(QuorumSpec::Grid { rows: 3, cols: 6 }, &ids(18)).unwrap();
        // Row 1 = n1..n6; column 1 = n1, n7, n13.
        let row = set(&[1, 2, 3, 4, 5, 6]);
        let col = set(&[1, 7, 13]);
        assert!(q.is_phase1_quorum(&row) && !q.is_phase2_quorum(&row));
        assert!(q.is_phase2_quorum(&col) && !q.is_phase1_quorum(&col));
        // Neither is a majority, nor is their union (3 + 6 - 1 = 8 of 18).
        let union: BTreeSet<_> = row.union(&col).copied().collect();
        assert_eq!(union.len(), 8);
        // Two columns are disjoint: phase-2 quorums need not intersect each other.
        assert!(q.is_phase2_quorum(&set(&[2, 8, 14])));
        assert!(q.non_intersecting_pair().is_none());
        // Reading columns and writing rows the other way round would not be a grid of
        // this shape; a 3x6 layout with 17 members is refused.
        assert!(QuorumSystem::new(QuorumSpec::Grid { rows: 3, cols: 6 }, &ids(17)).is_err());
    }

    #[test]
    fn even_cluster_survives_a_two_two_split() {
        let q = QuorumSystem::new(QuorumSpec::Even, &ids(4)).unwrap();
        // a=n1 b=n2 c=n3 d=n4: {a,b},{b,c},{a,c} join the 3-node majorities.
        for pair in [[1, 2], [2, 3], [1, 3]] {
            assert!(q.is_phase1_quorum(&set(&pair)) && q.is_phase2_quorum(&set(&pair)));
        }
        assert!(!q.is_phase1_quorum(&set(&[3, 4])));
        assert!(!q.is_phase1_quorum(&set(&[1, 4])));
        // Every 2+2 split leaves exactly one side with a quorum.
        for s in q.subsets().into_iter().filter(|s| s.len() == 2) {
            let rest: BTreeSet<_> = ids(4).difference(&s).copied().collect();
            assert!(q.is_phase1_quorum(&s) ^ q.is_phase1_quorum(&rest), "{s:?}");
        }
        assert!(QuorumSystem::new(QuorumSpec::Even, &ids(5)).is_err());
    }

    #[test]
    fn flexible_validation_messages() {
        let e = QuorumSystem::new(QuorumSpec::Flexible { q1: 2, q2: 3 }, &ids(5)).unwrap_err();
        assert!(e.contains("must exceed N = 5"), "{e}");
        let e = QuorumSystem::new(QuorumSpec::Flexible { q1: 6, q2: 3 }, &ids(5)).unwrap_err();
        assert!(e.contains("cannot exceed"), "{e}");
        let q = QuorumSystem::new(QuorumSpec::Flexible { q1: 4, q2: 2 }, &ids(5)).unwrap();
        assert!(q.is_phase2_quorum(&set(&[4, 5])) && !q.is_phase1_quorum(&set(&[3, 4, 5])));
        // Large N: analytic check only (no enumeration).
        let big: BTreeSet<NodeId> = (1..=40).collect();
        assert!(QuorumSystem::new(QuorumSpec::Flexible { q1: 30, q2: 11 }, &big).is_ok());
        assert!(QuorumSystem::new(QuorumSpec::Flexible { q1: 30, q2: 10 }, &big).is_err());
    }

    #[test]
    fn seeded_bug_disjoint_quorums_lets_non_intersecting_systems_through() {
        let bugs = Bugs {
            disjoint_quorums: true,
            ..Bugs::default()
        };
        let spec = QuorumSpec::Flexible { q1: 2, q2: 1 };
        assert!(QuorumSystem::new(spec, &ids(3)).is_err());
        assert!(QuorumSystem::fitted(spec, &ids(3)).is_err());
        let q = QuorumSystem::validate(spec, &ids(3), &bugs).unwrap();
        assert!(QuorumSystem::fitted_with(spec, &ids(3), &bugs).is_ok());
        // The concrete failure: a phase-1 quorum that misses a phase-2 quorum.
        assert!(q.is_phase1_quorum(&set(&[2, 3])) && q.is_phase2_quorum(&set(&[1])));
        assert!(q.non_intersecting_pair().is_some());
        // Layout errors stay errors: the bug is about intersection only.
        assert!(
            QuorumSystem::validate(QuorumSpec::Flexible { q1: 4, q2: 1 }, &ids(3), &bugs).is_err()
        );
        assert!(QuorumSystem::validate(QuorumSpec::Even, &ids(3), &bugs).is_err());
    }

    #[test]
    fn joint_needs_every_part() {
        let old = QuorumSystem::new(QuorumSpec::Majority, &set(&[1, 2, 3])).unwrap();
        let new = QuorumSystem::new(QuorumSpec::Majority, &set(&[3, 4, 5])).unwrap();
        let j = Joint::new(vec![old.clone(), new.clone()]);
        assert!(!j.is_phase2_quorum(&set(&[1, 2, 3])));
        assert!(!j.is_phase1_quorum(&set(&[3, 4, 5])));
        assert!(j.is_phase1_quorum(&set(&[2, 3, 4])) && j.is_phase2_quorum(&set(&[2, 3, 4])));
        assert_eq!(j.members(), set(&[1, 2, 3, 4, 5]));
        assert!(!Joint::default().is_phase1_quorum(&set(&[1])));
        // Brute force: every joint phase-1 quorum meets every phase-2 quorum of each part.
        let all = raw(QuorumSpec::Majority, 5).subsets();
        for a in all.iter().filter(|s| j.is_phase1_quorum(s)) {
            for b in all
                .iter()
                .filter(|s| old.is_phase2_quorum(s) || new.is_phase2_quorum(s))
            {
                assert!(a.intersection(b).next().is_some());
            }
        }
    }
}
