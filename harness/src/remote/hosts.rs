//! The hosts file of `--hosts`: one `[[host]]` entry per node, in node order (the first
//! entry runs `n1`, ...).
//!
//! ```toml
//! # Optional, for every host: how OpenSSH checks host keys. `yes` (the default) needs
//! # the hosts in known_hosts already; `accept-new` records unknown keys on first use.
//! host_key_checking = "yes"
//! known_hosts = "/root/.ssh/known_hosts"   # default: OpenSSH's own
//!
//! [[host]]
//! address = "192.168.122.11"   # IPv4 address or host name (resolved once, to IPv4)
//! user = "root"                # default root
//! port = 22                    # default 22
//! key = "~/.ssh/id_ed25519"    # default: OpenSSH's own choice; relative to this file
//! sudo = false                 # run every command with `sudo -n` (user is not root)
//! dir = "/tmp/stasis-remote"   # where runs put their node directories (default)
//! ```
//!
//! Every value that ends up on an SSH command line is validated here (addresses parsed,
//! host names restricted to DNS characters and resolved once, when the file is loaded, so
//! ssh, the clients and the other nodes all use the same address; users and directories
//! restricted to plain characters), and the remote commands are quoted anyway
//! ([`super::ssh`]).

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Default directory on each host for the runs' node directories.
pub const DEFAULT_DIR: &str = "/tmp/stasis-remote";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    host_key_checking: Option<String>,
    #[serde(default)]
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    host: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    address: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    key: Option<PathBuf>,
    #[serde(default)]
    sudo: bool,
    #[serde(default)]
    dir: Option<String>,
}

/// How OpenSSH treats host keys it has not seen (`StrictHostKeyChecking`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyChecking {
    Yes,
    AcceptNew,
}

impl HostKeyChecking {
    pub fn option(self) -> &'static str {
        match self {
            HostKeyChecking::Yes => "yes",
            HostKeyChecking::AcceptNew => "accept-new",
        }
    }
}

/// One host, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct HostSpec {
    /// The IPv4 address everything connects to (a host name's, resolved once).
    pub address: Ipv4Addr,
    /// The host name the entry gave, if it gave one instead of an address.
    pub name: Option<String>,
    pub user: String,
    pub port: u16,
    pub key: Option<PathBuf>,
    pub sudo: bool,
    pub dir: String,
}

/// The whole hosts file, validated.
#[derive(Clone, Debug)]
pub struct HostsFile {
    pub hosts: Vec<HostSpec>,
    pub host_key_checking: HostKeyChecking,
    pub known_hosts: Option<PathBuf>,
}

impl HostsFile {
    /// Reads and validates a hosts file; errors are one line naming the file and entry.
    pub fn load(path: &Path) -> Result<HostsFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read hosts file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("hosts file {}", path.display()))
    }

    /// Parses hosts-file text; relative key and known_hosts paths are taken relative to
    /// `base` (the file's directory).
    pub fn parse(text: &str, base: &Path) -> Result<HostsFile> {
        let f: File = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines (with a caret); keep it to one.
            let msg = e.message().to_owned();
            match e.span() {
                Some(s) => {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    anyhow::anyhow!("line {line}: {msg}")
                }
                None => anyhow::anyhow!("{msg}"),
            }
        })?;
        let host_key_checking = match f.host_key_checking.as_deref() {
            None | Some("yes") => HostKeyChecking::Yes,
            Some("accept-new") => HostKeyChecking::AcceptNew,
            Some(other) => {
                bail!("host_key_checking must be \"yes\" or \"accept-new\", not {other:?}")
            }
        };
        if f.host.is_empty() {
            bail!("no [[host]] entries");
        }
        let mut hosts = Vec::new();
        for (k, e) in f.host.into_iter().enumerate() {
            let h = validate(e, base)
                .with_context(|| format!("host {} ([[host]] #{})", k + 1, k + 1))?;
            if let Some(prev) = hosts.iter().position(|p: &HostSpec| p.address == h.address) {
                bail!(
                    "host {}: address {}{} is also host {} (one node per host)",
                    k + 1,
                    h.address,
                    h.name
                        .as_ref()
                        .map(|n| format!(" (of {n})"))
                        .unwrap_or_default(),
                    prev + 1
                );
            }
            hosts.push(h);
        }
        Ok(HostsFile {
            hosts,
            host_key_checking,
            known_hosts: f.known_hosts.map(|p| resolve(base, &p)),
        })
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Whether `s` can be a DNS host name (letters, digits, '-' and '.', labels of at most
/// 63 characters not starting or ending with '-'): nothing else is handed to the resolver.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An entry's address: an IPv4 address as given, or a host name resolved (once, here)
/// to its first IPv4 address.
fn resolve_address(given: &str, port: u16) -> Result<(Ipv4Addr, Option<String>)> {
    let given = given.trim();
    if let Ok(a) = given.parse::<Ipv4Addr>() {
        return Ok((a, None));
    }
    if given.parse::<IpAddr>().is_ok() {
        bail!("address {given:?} is IPv6: give an IPv4 address or a host name with one");
    }
    if !is_host_name(given) {
        bail!("address {given:?} is neither an IPv4 address nor a host name");
    }
    let addrs: Vec<_> = (given, port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("host name {given:?} does not resolve: {e}"))?
        .collect();
    match addrs.iter().find_map(|a| match a.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }) {
        Some(v4) => Ok((v4, Some(given.to_owned()))),
        None => bail!("host name {given:?} has no IPv4 address (IPv6 hosts are not supported)"),
    }
}

fn validate(e: Entry, base: &Path) -> Result<HostSpec> {
    let port = e.port.unwrap_or(22);
    if port == 0 {
        bail!("port 0 is not a port");
    }
    let (address, name) = resolve_address(&e.address, port)?;
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
        bail!("address {address} cannot be a host");
    }
    let user = e.user.unwrap_or_else(|| "root".into());
    let plain_user = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !plain_user {
        bail!(
            "user {user:?} must be 1 to 32 letters, digits, '_', '.' or '-' (not starting with '-')"
        );
    }
    let key = match e.key {
        Some(k) => {
            let k = resolve(base, &k);
            if !k.is_file() {
                bail!("key {} not found", k.display());
            }
            Some(k)
        }
        None => None,
    };
    let dir = e.dir.unwrap_or_else(|| DEFAULT_DIR.into());
    let plain_dir = dir.starts_with('/')
        && dir.len() > 1
        && !dir.ends_with('/')
        && dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
        && !dir.split('/').any(|c| c == "..");
    if !plain_dir {
        bail!(
            "dir {dir:?} must be an absolute path other than / of letters, digits, '/', '_', '.' and '-', without '..' or a trailing '/'"
        );
    }
    Ok(HostSpec {
        address,
        name,
        user,
        port,
        key,
        sudo: e.sudo,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostsFile> {
        HostsFile::parse(text, Path::new("/nonexistent"))
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        let s = format!("{e:#}");
        assert!(!s.contains('\n'), "one line: {s}");
        s
    }

    #[test]
    fn defaults_and_full_entries() {
        let key = tempfile::NamedTempFile::new().unwrap();
        let text = format!(
            r#"
host_key_checking = "accept-new"
known_hosts = "kh"
[[host]]
address = "10.0.0.1"
[[host]]
address = "10.0.0.2"
user = "deploy"
port = 2222
key = "{}"
sudo = true
dir = "/var/tmp/st"
"#,
            key.path().display()
        );
        let f = HostsFile::parse(&text, Path::new("/etc/stasis")).unwrap();
        assert_eq!(f.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(f.known_hosts, Some(PathBuf::from("/etc/stasis/kh")));
        assert_eq!(
            f.hosts[0],
            HostSpec {
                address: Ipv4Addr::new(10, 0, 0, 1),
                name: None,
                user: "root".into(),
                port: 22,
                key: None,
                sudo: false,
                dir: DEFAULT_DIR.into(),
            }
        );
        let h = &f.hosts[1];
        assert_eq!((h.user.as_str(), h.port, h.sudo), ("deploy", 2222, true));
        assert_eq!(h.key.as_deref(), Some(key.path()));
        assert_eq!(h.dir, "/var/tmp/st");
    }

    #[test]
    fn bad_entries_are_one_line_errors_naming_the_host() {
        assert!(err("").contains("no [[host]] entries"));
        // `.invalid` never resolves (RFC 6761).
        let e = err("[[host]]\naddress = \"db1.stasis.invalid\"\n");
        assert!(
            e.contains("host 1") && e.contains("\"db1.stasis.invalid\" does not resolve"),
            "{e}"
        );
        let e = err("[[host]]\naddress = \"db1;reboot\"\n");
        assert!(e.contains("neither an IPv4 address nor a host name"), "{e}");
        let e = err("[[host]]\naddress = \"-oProxyCommand=x\"\n");
        assert!(e.contains("neither an IPv4 address nor a host name"), "{e}");
        let e = err("[[host]]\naddress = \"fe80::1\"\n");
        assert!(e.contains("IPv6"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\n[[host]]\naddress = \"10.0.0.1\"\n");
        assert!(e.contains("also host 1"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\nuser = \"-oProxyCommand=x\"\n");
        assert!(e.contains("user"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\nuser = \"a b\"\n");
        assert!(e.contains("user"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\ndir = \"/tmp/$(reboot)\"\n");
        assert!(e.contains("dir"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\ndir = \"/\"\n");
        assert!(e.contains("dir"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\ndir = \"/tmp/../etc\"\n");
        assert!(e.contains("dir"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\nkey = \"/no/such/key\"\n");
        assert!(e.contains("key /no/such/key not found"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\nport = 0\n");
        assert!(e.contains("port"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\nport = 70000\n");
        assert!(e.contains("line 3"), "{e}");
        let e = err("[[host]]\naddress = \"10.0.0.1\"\npassword = \"x\"\n");
        assert!(e.contains("unknown field"), "{e}");
        let e = err("host_key_checking = \"no\"\n[[host]]\naddress = \"10.0.0.1\"\n");
        assert!(e.contains("host_key_checking"), "{e}");
        let e = err("[[host]]\naddress = \"0.0.0.0\"\n");
        assert!(e.contains("cannot be a host"), "{e}");
    }

    #[test]
    fn host_names_are_resolved_once_to_ipv4() {
        // localhost is in every /etc/hosts; the name is kept for ssh's host key lookup.
        let f = parse("[[host]]\naddress = \"localhost\"\n").unwrap();
        assert_eq!(f.hosts[0].address, Ipv4Addr::LOCALHOST);
        assert_eq!(f.hosts[0].name.as_deref(), Some("localhost"));
        // A name and the address it resolves to are the same host.
        let e = err("[[host]]\naddress = \"127.0.0.1\"\n[[host]]\naddress = \"localhost\"\n");
        assert!(e.contains("(of localhost) is also host 1"), "{e}");
        assert!(is_host_name("n1.db.example.") && is_host_name("db-1"));
        for bad in ["", "a..b", "-a", "a-", "a b", "a_b", "$(id)"] {
            assert!(!is_host_name(bad), "{bad:?}");
        }
    }
}
