//! Each partition shape produces exactly the intended reachability: every ordered pair of
//! hosts is probed with a TCP connect from inside the namespaces, with real iptables rules
//! applied and then healed. Needs root (CI runs as root).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use harness::nemesis::partition::{self, Shape};
use harness::net::{self, Topology};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (namespaces, iptables): run it as root, as CI does"
    );
}

fn check_shapes(n: usize) {
    let names: Vec<String> = (1..=n).map(|k| format!("n{k}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let topo = Topology::create('t', &refs).expect("topology");
    let netns: Vec<String> = topo.hosts.iter().map(|h| h.netns.clone()).collect();
    let addrs: Vec<_> = topo.hosts.iter().map(|h| h.addr).collect();
    // One listener per namespace stands in for a node's peer port.
    let listeners: Vec<TcpListener> = topo
        .hosts
        .iter()
        .map(|h| {
            net::with_netns(&h.netns, || TcpListener::bind((h.addr, 7000)))
                .unwrap()
                .unwrap()
        })
        .collect();
    let targets: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let timeout = Duration::from_millis(400);
    let before = net::unreachable_pairs(&netns, &targets, timeout).unwrap();
    assert!(before.is_empty(), "fresh topology has cuts: {before:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    for shape in Shape::ALL {
        let g = partition::grudge(shape, n, Some(n - 1), &mut rng).unwrap();
        partition::apply(&g, &netns, &addrs).unwrap();
        let got = net::unreachable_pairs(&netns, &targets, timeout).unwrap();
        let want = partition::expected_unreachable(&g, n);
        assert_eq!(got, want, "{shape:?} on {n} nodes, grudge {g:?}");
        assert!(!want.is_empty(), "{shape:?} cut nothing");
        // Every node can still reach the bridge address (the harness's own traffic is
        // never cut): connect from the host side to each namespace's listener.
        for t in &targets {
            std::net::TcpStream::connect_timeout(t, timeout)
                .unwrap_or_else(|e| panic!("{shape:?}: harness cannot reach {t}: {e}"));
        }
        partition::heal(&netns).unwrap();
        let healed = net::unreachable_pairs(&netns, &targets, timeout).unwrap();
        assert_eq!(healed, BTreeSet::new(), "{shape:?} did not heal");
    }
    drop(listeners);
    let id = topo.id.clone();
    drop(topo);
    let left: Vec<String> = net::stasis_namespaces()
        .into_iter()
        .chain(net::stasis_links())
        .filter(|x| {
            x.strip_prefix(&format!("stasis-{id}"))
                .is_some_and(|r| r.starts_with(|c: char| !c.is_ascii_digit()))
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn shapes_on_three_nodes() {
    require_root();
    check_shapes(3);
}

#[test]
fn shapes_on_five_nodes() {
    require_root();
    check_shapes(5);
}
