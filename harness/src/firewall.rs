//! Firewall rules inside node namespaces: the one place iptables rules are built, applied
//! and checked. Partitions (`nemesis::partition`), the targeted scenarios
//! (`nemesis::targeted`) and `stasis doctor` all go through it. Rules are only ever added
//! inside `stasis-` namespaces, never to the host's own tables; the packet delayer's
//! NFQUEUE chain is `netfault::queue`'s own.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::net;

/// What a rule does with the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Silently dropped: connections hang until their timeouts.
    Drop,
    /// TCP packets answered with a reset (REJECT --reject-with tcp-reset), so connection
    /// attempts fail at once and a node retries on its short back-off. Incoming resets
    /// pass: both ends may hold a rule, and each must see the other's reset.
    Reset,
    /// Each matched packet dropped with this probability (the `statistic` match).
    DropRandom(f64),
}

/// One rule in one namespace's INPUT (packets from `peer`) or OUTPUT (packets to `peer`)
/// chain, optionally only TCP to or from port `port` (the destination port).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    pub chain: Chain,
    pub peer: Ipv4Addr,
    pub port: Option<u16>,
    pub action: Action,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    Input,
    Output,
}

impl Rule {
    /// Packets arriving from `peer`.
    pub fn from(peer: Ipv4Addr, action: Action) -> Rule {
        Rule {
            chain: Chain::Input,
            peer,
            port: None,
            action,
        }
    }

    /// Packets leaving for `peer`.
    pub fn to(peer: Ipv4Addr, action: Action) -> Rule {
        Rule {
            chain: Chain::Output,
            peer,
            port: None,
            action,
        }
    }

    /// Only TCP packets to destination port `port`.
    pub fn port(self, port: u16) -> Rule {
        Rule {
            port: Some(port),
            ..self
        }
    }

    /// The iptables argv that adds (`add`) or deletes this rule.
    pub fn argv(&self, add: bool) -> Vec<String> {
        self.argv_in(add, "INPUT", "OUTPUT")
    }

    /// The argv with the rule in chain `input` or `output` instead of INPUT or OUTPUT
    /// (on remote hosts our rules live in chains of our own).
    pub fn argv_in(&self, add: bool, input: &str, output: &str) -> Vec<String> {
        let mut a: Vec<String> = vec!["iptables".into(), "-w".into()];
        a.push(if add { "-A" } else { "-D" }.into());
        let (chain, dir) = match self.chain {
            Chain::Input => (input, "-s"),
            Chain::Output => (output, "-d"),
        };
        a.extend([chain.into(), dir.into(), self.peer.to_string()]);
        if self.action == Action::Reset || self.port.is_some() {
            a.extend(["-p".into(), "tcp".into()]);
        }
        if let Some(p) = self.port {
            a.extend(["--dport".into(), p.to_string()]);
        }
        match self.action {
            Action::Drop => a.extend(["-j".into(), "DROP".into()]),
            Action::Reset => a.extend(
                [
                    "!",
                    "--tcp-flags",
                    "RST",
                    "RST",
                    "-j",
                    "REJECT",
                    "--reject-with",
                    "tcp-reset",
                ]
                .map(String::from),
            ),
            Action::DropRandom(p) => a.extend([
                "-m".into(),
                "statistic".into(),
                "--mode".into(),
                "random".into(),
                "--probability".into(),
                format!("{p}"),
                "-j".into(),
                "DROP".into(),
            ]),
        }
        a
    }
}

/// One change to one namespace's rules.
#[derive(Clone, Debug)]
pub enum Change<'a> {
    Add(&'a str, Rule),
    Delete(&'a str, Rule),
    /// Removes every INPUT rule of the namespace (healing a partition).
    FlushInput(&'a str),
}

impl Change<'_> {
    fn run(&self) -> Result<String> {
        let ns = match self {
            Change::Add(ns, _) | Change::Delete(ns, _) | Change::FlushInput(ns) => *ns,
        };
        if let Some(host) = crate::remote::lookup(ns) {
            // On a remote host: the same rules in our own chains, over SSH.
            let (i, o) = (crate::remote::CHAIN_IN, crate::remote::CHAIN_OUT);
            let argv = match self {
                Change::Add(_, r) => r.argv_in(true, i, o),
                Change::Delete(_, r) => r.argv_in(false, i, o),
                Change::FlushInput(_) => ["iptables", "-w", "-F", i].map(String::from).to_vec(),
            };
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            return crate::remote::iptables(&host, &argv);
        }
        let (ns, argv) = match self {
            Change::Add(ns, r) => (*ns, r.argv(true)),
            Change::Delete(ns, r) => (*ns, r.argv(false)),
            Change::FlushInput(ns) => (
                *ns,
                ["iptables", "-w", "-F", "INPUT"].map(String::from).to_vec(),
            ),
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        net::run_in(ns, &argv)
    }
}

/// Applies the changes one after the other, stopping at the first failure.
pub fn apply(changes: &[Change<'_>]) -> Result<()> {
    for c in changes {
        c.run()?;
    }
    Ok(())
}

/// Applies the changes in parallel (one thread each): faults that change several
/// namespaces at once while the nodes' timers run. Every change is attempted; the first
/// failure is returned.
pub fn apply_parallel(changes: &[Change<'_>]) -> Result<()> {
    let results: Vec<Result<String>> = std::thread::scope(|sc| {
        let hs: Vec<_> = changes.iter().map(|c| sc.spawn(move || c.run())).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("iptables thread panicked")))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(())
}

/// Removes every INPUT rule in each namespace; every namespace is attempted.
pub fn flush_input(netns: &[String]) -> Result<()> {
    let errors: Vec<String> = netns
        .iter()
        .filter_map(|ns| Change::FlushInput(ns).run().err())
        .map(|e| e.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("flushing the firewall rules failed: {}", errors.join("; "))
    }
}

/// Whether a TCP connection from namespace `ns` to `to` is refused. Used where the peer's
/// process exists and listens, so a refusal can only come from a [`Action::Reset`] rule.
pub fn refused(ns: &str, to: SocketAddr) -> Result<bool> {
    net::with_netns(ns, || {
        match std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)) {
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            Ok(_) => false,
        }
    })
}

/// Checks, with TCP probes between the namespaces, that exactly the ordered pairs `want`
/// (indices into `netns`/`peers`) cannot connect; retries a few times with longer
/// timeouts, since rules and connection state take a moment to settle.
pub fn verify_reachability(
    netns: &[String],
    peers: &[SocketAddr],
    want: &std::collections::BTreeSet<(usize, usize)>,
) -> Result<()> {
    let mut last = Default::default();
    for attempt in 0..4 {
        let timeout = Duration::from_millis(300 + 200 * attempt);
        last = net::unreachable_pairs(netns, peers, timeout)?;
        if &last == want {
            return Ok(());
        }
    }
    bail!("wanted unreachable pairs {want:?}, measured {last:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, last)
    }

    #[test]
    fn rules_render_as_the_scenarios_wrote_them() {
        assert_eq!(
            Rule::from(ip(2), Action::Drop).argv(true).join(" "),
            "iptables -w -A INPUT -s 10.77.0.2 -j DROP"
        );
        assert_eq!(
            Rule::from(ip(3), Action::Reset)
                .port(7001)
                .argv(false)
                .join(" "),
            "iptables -w -D INPUT -s 10.77.0.3 -p tcp --dport 7001 ! --tcp-flags RST RST -j REJECT --reject-with tcp-reset"
        );
        assert_eq!(
            Rule::from(ip(3), Action::Drop)
                .port(7001)
                .argv(true)
                .join(" "),
            "iptables -w -A INPUT -s 10.77.0.3 -p tcp --dport 7001 -j DROP"
        );
        assert_eq!(
            Rule::to(ip(4), Action::Reset).argv(true).join(" "),
            "iptables -w -A OUTPUT -d 10.77.0.4 -p tcp ! --tcp-flags RST RST -j REJECT --reject-with tcp-reset"
        );
        assert_eq!(
            Rule::from(ip(5), Action::DropRandom(0.5))
                .argv(true)
                .join(" "),
            "iptables -w -A INPUT -s 10.77.0.5 -m statistic --mode random --probability 0.5 -j DROP"
        );
        assert_eq!(
            Rule::to(ip(4), Action::Drop)
                .argv_in(true, "stasis-in", "stasis-out")
                .join(" "),
            "iptables -w -A stasis-out -d 10.77.0.4 -j DROP"
        );
    }
}
