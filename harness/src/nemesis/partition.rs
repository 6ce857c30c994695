//! Network partitions as iptables rules inside node namespaces.
//!
//! A partition is a *grudge*: for each node, the set of nodes whose packets it drops
//! (`iptables -A INPUT -s <peer> -j DROP` in that node's namespace). Rules match node
//! addresses only, so the harness's own client traffic (from the bridge address) is never
//! cut, and the host's own iptables are never touched. Healing flushes the INPUT chain of
//! every node namespace (all rules there are ours).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::firewall::{self, Action, Change, Rule};

/// Partition shapes (Jepsen's names where they exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// First half against the second half, in node order.
    Halves,
    /// A random split into a majority and a minority.
    RandomHalves,
    /// One random node cut from all others.
    IsolateOne,
    /// The current leader cut from all others.
    IsolateLeader,
    /// Every node sees a majority, but no two nodes see the same majority.
    MajoritiesRing,
    /// Two halves joined only through one bridge node.
    Bridge,
    /// One random node stops hearing from the others (one direction only).
    OneWay,
}

impl Shape {
    pub const ALL: [Shape; 7] = [
        Shape::Halves,
        Shape::RandomHalves,
        Shape::IsolateOne,
        Shape::IsolateLeader,
        Shape::MajoritiesRing,
        Shape::Bridge,
        Shape::OneWay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Halves => "halves",
            Shape::RandomHalves => "random-halves",
            Shape::IsolateOne => "isolate-one",
            Shape::IsolateLeader => "isolate-leader",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
            Shape::OneWay => "one-way",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Parses a comma-separated list of shapes, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Shape>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                out.extend(Shape::ALL);
                continue;
            }
            match Shape::parse(part) {
                Some(x) => out.push(x),
                None => {
                    let names: Vec<&str> = Shape::ALL.iter().map(|x| x.name()).collect();
                    return Err(format!(
                        "unknown partition shape {part:?}: use {} or all",
                        names.join(", ")
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("give at least one partition shape".into());
        }
        Ok(out)
    }
}

/// node -> nodes whose packets it drops. Nodes are indices into the cluster.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// Cuts every node of `a` from every node of `b`, both ways.
fn cut(g: &mut Grudge, a: &[usize], b: &[usize]) {
    for &x in a {
        for &y in b {
            g.entry(x).or_default().insert(y);
            g.entry(y).or_default().insert(x);
        }
    }
}

/// Builds the grudge of a shape over `n` nodes. `leader` is needed for `IsolateLeader`.
pub fn grudge(shape: Shape, n: usize, leader: Option<usize>, rng: &mut impl Rng) -> Result<Grudge> {
    if n < 2 {
        bail!("a partition needs at least 2 nodes");
    }
    let mut nodes: Vec<usize> = (0..n).collect();
    let mut g = Grudge::new();
    match shape {
        Shape::Halves => {
            let (a, b) = nodes.split_at(n / 2);
            cut(&mut g, a, b);
        }
        Shape::RandomHalves => {
            nodes.shuffle(rng);
            let (a, b) = nodes.split_at(n / 2);
            cut(&mut g, a, b);
        }
        Shape::IsolateOne | Shape::IsolateLeader => {
            let lone = match shape {
                Shape::IsolateLeader => match leader {
                    Some(l) => l,
                    None => bail!("isolate-leader: no node reports itself leader"),
                },
                _ => rng.random_range(0..n),
            };
            let rest: Vec<usize> = nodes.into_iter().filter(|&x| x != lone).collect();
            cut(&mut g, &[lone], &rest);
        }
        Shape::MajoritiesRing => {
            // Around a shuffled ring, each node keeps the nodes within ring distance `d`
            // (the smallest distance that still leaves it a majority) and is cut from the
            // rest, both ways: TCP needs packets in both directions, so one-way drops would
            // cost nodes their majority. Neighbouring nodes see different majorities. With
            // three nodes every node is within distance 1 of all others, so one ring edge
            // is cut instead (each end still sees two of three).
            nodes.shuffle(rng);
            let d = (n / 2).div_ceil(2);
            for i in 0..n {
                for j in 0..n {
                    let dist = (i + n - j) % n;
                    if dist.min(n - dist) > d {
                        g.entry(nodes[i]).or_default().insert(nodes[j]);
                    }
                }
            }
            if g.is_empty() {
                cut(&mut g, &[nodes[0]], &[nodes[1]]);
            }
        }
        Shape::Bridge => {
            if n < 3 {
                bail!("bridge needs at least 3 nodes");
            }
            nodes.shuffle(rng);
            let bridge = nodes[0];
            let rest = &nodes[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            cut(&mut g, a, b);
            debug_assert!(!g.contains_key(&bridge));
        }
        Shape::OneWay => {
            let deaf = rng.random_range(0..n);
            let others: BTreeSet<usize> = (0..n).filter(|&y| y != deaf).collect();
            g.insert(deaf, others);
        }
    }
    Ok(g)
}

/// The grudge as JSON for the history: `{"n1": ["n2","n3"], ...}`.
pub fn describe(g: &Grudge, names: &[String]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (x, ys) in g {
        m.insert(
            names[*x].clone(),
            ys.iter()
                .map(|y| names[*y].clone())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    serde_json::Value::Object(m)
}

/// Applies a grudge: DROP rules inside the namespaces of the nodes that hold it.
pub fn apply(g: &Grudge, netns: &[String], addrs: &[std::net::Ipv4Addr]) -> Result<()> {
    let changes: Vec<Change<'_>> = g
        .iter()
        .flat_map(|(&x, ys)| {
            ys.iter()
                .map(move |&y| Change::Add(&netns[x], Rule::from(addrs[y], Action::Drop)))
        })
        .collect();
    firewall::apply(&changes)
}

/// Removes every partition rule (flushes INPUT in each node namespace).
pub fn heal(netns: &[String]) -> Result<()> {
    firewall::flush_input(netns).context("healing the partition failed")
}

/// The ordered pairs (from, to) a TCP connection cannot cross under this grudge: a
/// connection needs packets both ways, so (a, b) fails if either end drops the other.
pub fn expected_unreachable(g: &Grudge, n: usize) -> BTreeSet<(usize, usize)> {
    let drops = |x: usize, y: usize| g.get(&x).is_some_and(|s| s.contains(&y));
    let mut out = BTreeSet::new();
    for a in 0..n {
        for b in 0..n {
            if a != b && (drops(a, b) || drops(b, a)) {
                out.insert((a, b));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn sees(g: &Grudge, x: usize, n: usize) -> BTreeSet<usize> {
        (0..n)
            .filter(|y| !g.get(&x).is_some_and(|s| s.contains(y)))
            .collect()
    }

    #[test]
    fn every_shape_on_every_size() {
        for n in 3..=7 {
            for seed in 0..20 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for shape in Shape::ALL {
                    let g = grudge(shape, n, Some(0), &mut rng).unwrap();
                    assert!(!g.is_empty(), "{shape:?} n={n} cuts nothing");
                    for (x, ys) in &g {
                        assert!(!ys.contains(x), "{shape:?} cuts a node from itself");
                    }
                    match shape {
                        Shape::Halves | Shape::RandomHalves => {
                            let sizes: BTreeSet<usize> =
                                (0..n).map(|x| sees(&g, x, n).len()).collect();
                            assert_eq!(sizes, [n / 2, n - n / 2].into_iter().collect());
                        }
                        Shape::IsolateOne | Shape::IsolateLeader => {
                            let lone: Vec<usize> =
                                (0..n).filter(|&x| sees(&g, x, n).len() == 1).collect();
                            assert_eq!(lone.len(), 1);
                            if shape == Shape::IsolateLeader {
                                assert_eq!(lone, vec![0]);
                            }
                        }
                        Shape::MajoritiesRing => {
                            let views: BTreeSet<BTreeSet<usize>> =
                                (0..n).map(|x| sees(&g, x, n)).collect();
                            for x in 0..n {
                                assert!(
                                    sees(&g, x, n).len() > n / 2,
                                    "n={n} node {x} sees a minority"
                                );
                            }
                            if n >= 4 {
                                assert!(views.len() > 1, "n={n}: all majorities equal");
                            }
                        }
                        Shape::Bridge => {
                            let full: Vec<usize> =
                                (0..n).filter(|&x| sees(&g, x, n).len() == n).collect();
                            assert_eq!(full.len(), 1, "exactly one bridge node");
                        }
                        Shape::OneWay => {
                            assert_eq!(g.len(), 1);
                            let (deaf, ys) = g.iter().next().unwrap();
                            assert_eq!(ys.len(), n - 1);
                            assert!(!ys.contains(deaf));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn isolate_leader_needs_a_leader() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let e = grudge(Shape::IsolateLeader, 3, None, &mut rng).unwrap_err();
        assert!(e.to_string().contains("no node reports itself leader"));
    }

    #[test]
    fn tcp_reachability_is_two_way() {
        let mut g = Grudge::new();
        g.insert(0, [1].into_iter().collect());
        let e = expected_unreachable(&g, 3);
        assert_eq!(e, [(0, 1), (1, 0)].into_iter().collect());
    }

    #[test]
    fn names_round_trip() {
        for s in Shape::ALL {
            assert_eq!(Shape::parse(s.name()), Some(s));
        }
        assert_eq!(Shape::parse("nope"), None);
    }
}
