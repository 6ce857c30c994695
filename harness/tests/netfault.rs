//! The NFQUEUE delayer in real namespaces: injected delay, loss, duplication, reordering
//! and a bandwidth cap are what was asked (measured by UDP and TCP probes from inside the
//! namespaces), and the rules and queues are gone after removal. Needs root and iptables
//! (CI runs as root).

use std::collections::BTreeMap;
use std::time::Duration;

use harness::net::Topology;
use harness::netfault::probe::{self, UdpPlan};
use harness::netfault::{LinkSpec, Shaper, queue};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (namespaces, iptables): run it as root, as CI does"
    );
}

fn plan(count: u32) -> UdpPlan {
    UdpPlan {
        count,
        size: 64,
        gap: Duration::from_millis(2),
        linger: Duration::from_millis(400),
    }
}

#[test]
fn delayer_injects_what_was_asked_and_leaves_nothing_behind() {
    require_root();
    let topo = Topology::create('q', &["n1", "n2", "n3"]).expect("topology");
    let netns: Vec<String> = topo.hosts.iter().map(|h| h.netns.clone()).collect();
    let addrs: Vec<_> = topo.hosts.iter().map(|h| h.addr).collect();
    let base = harness::netfault::parse_latency("10ms±5ms").unwrap();
    let mut shaper = Shaper::install(&netns, &addrs, base, 1).expect("install");
    for ns in &netns {
        assert!(queue::has_chain(Some(ns)).unwrap(), "no chain in {ns}");
    }
    let (a, b, c) = (0, 1, 2);

    // Baseline on every link: one-way median near 10 ms.
    let m = probe::udp(&netns[a], &netns[c], addrs[c], plan(100)).unwrap();
    assert!((m.median_ms - 10.0).abs() < 3.0, "baseline {m:?}");
    assert_eq!(m.loss(), 0.0, "{m:?}");

    // Delay 50±40 ms on a -> b only, on top of the baseline.
    let delay = LinkSpec {
        delay_us: 50_000,
        jitter_us: 40_000,
        ..Default::default()
    };
    shaper
        .set_faults(BTreeMap::from([((a, b), delay)]))
        .unwrap();
    let ab = probe::udp(&netns[a], &netns[b], addrs[b], plan(150)).unwrap();
    let ba = probe::udp(&netns[b], &netns[a], addrs[a], plan(100)).unwrap();
    assert!((ab.median_ms - 60.0).abs() < 8.0, "a->b {ab:?}");
    assert!(
        ab.quantile_ms(0.05) < 30.0 && ab.quantile_ms(0.95) > 90.0,
        "jitter {ab:?}"
    );
    assert!(ab.reordered > 0, "jitter reorders packets: {ab:?}");
    assert!((ba.median_ms - 10.0).abs() < 3.0, "b->a untouched {ba:?}");
    // TCP connect: SYN a->b (60 ms) plus SYN-ACK b->a (10 ms).
    let rtt = probe::tcp_rtt(&netns[a], &netns[b], addrs[b], 30, Duration::from_secs(1))
        .unwrap()
        .expect("connects");
    assert!((rtt - 70.0).abs() < 20.0, "rtt {rtt}");

    // Loss 30% and duplication 40% on b -> c.
    let lossy = LinkSpec {
        loss: 0.3,
        duplicate: 0.4,
        ..Default::default()
    };
    shaper
        .set_faults(BTreeMap::from([((b, c), lossy)]))
        .unwrap();
    let bc = probe::udp(&netns[b], &netns[c], addrs[c], plan(400)).unwrap();
    assert!((bc.loss() - 0.3).abs() < 0.08, "loss {bc:?}");
    assert!((bc.dup_rate() - 0.4).abs() < 0.08, "dups {bc:?}");
    let ab = probe::udp(&netns[a], &netns[b], addrs[b], plan(50)).unwrap();
    assert!(
        (ab.median_ms - 10.0).abs() < 3.0,
        "earlier fault replaced {ab:?}"
    );

    // Reorder: 30% held back 40 ms.
    let reorder = LinkSpec {
        reorder: 0.3,
        reorder_hold_us: 40_000,
        ..Default::default()
    };
    shaper
        .set_faults(BTreeMap::from([((c, a), reorder)]))
        .unwrap();
    let ca = probe::udp(&netns[c], &netns[a], addrs[a], plan(300)).unwrap();
    // Held packets take base (10±5) + 40 ms; later ones overtake them.
    let held = ca.share_over_ms(32.0);
    assert!((held - 0.3).abs() < 0.08, "held {held} {ca:?}");
    assert!(ca.reorder_rate() > 0.2, "reorder {ca:?}");

    // Bandwidth cap 2 Mbit/s: a burst of 100 x 1000 bytes arrives at about 250 kB/s.
    let slow = LinkSpec {
        rate_bps: 2_000_000,
        ..Default::default()
    };
    shaper.set_faults(BTreeMap::from([((a, c), slow)])).unwrap();
    let burst = UdpPlan {
        count: 100,
        size: 1000,
        gap: Duration::from_micros(200),
        linger: Duration::from_millis(900),
    };
    let ac = probe::udp(&netns[a], &netns[c], addrs[c], burst).unwrap();
    assert!(
        (ac.arrival_bps - 250_000.0).abs() < 60_000.0,
        "rate {} B/s {ac:?}",
        ac.arrival_bps
    );

    shaper.clear_faults().unwrap();
    let totals = shaper.remove().unwrap();
    assert!(totals.queued > 1000, "{totals:?}");
    assert!(totals.dropped > 50 && totals.duplicated > 50, "{totals:?}");
    for ns in &netns {
        assert!(!queue::has_chain(Some(ns)).unwrap(), "chain left in {ns}");
        let rules = harness::net::run_in(ns, &["iptables", "-w", "-S", "OUTPUT"]).unwrap();
        assert!(
            !rules.contains("NFQUEUE") && !rules.contains("stasis-net"),
            "{rules}"
        );
    }
    // The queues are unbound: nothing is delayed any more (the rules are gone, and a
    // rule left behind would bypass an unbound queue).
    let m = probe::udp(&netns[a], &netns[b], addrs[b], plan(50)).unwrap();
    assert!(m.median_ms < 2.0 && m.loss() == 0.0, "{m:?}");
}

#[test]
fn a_dead_delayer_fails_open() {
    require_root();
    let topo = Topology::create('q', &["n1", "n2"]).expect("topology");
    let netns: Vec<String> = topo.hosts.iter().map(|h| h.netns.clone()).collect();
    let addrs: Vec<_> = topo.hosts.iter().map(|h| h.addr).collect();
    // Rules without any program bound to the queue: --queue-bypass lets traffic through.
    queue::add_rules(Some(&netns[0]), &[addrs[1]]).unwrap();
    let m = probe::udp(&netns[0], &netns[1], addrs[1], plan(50)).unwrap();
    assert_eq!(m.loss(), 0.0, "{m:?}");
    queue::remove_rules(Some(&netns[0])).unwrap();
    assert!(!queue::has_chain(Some(&netns[0])).unwrap());
}
