//! The SSH transport: the system's OpenSSH client (`ssh`), one shared connection per host.
//!
//! The first command to a host opens a master connection (`ControlMaster=auto`) whose
//! socket lives in a private directory (mode 0700) made for this controller; every later
//! command reuses it, so a fault costs one round trip, not a handshake. `ControlPersist`
//! keeps the master alive between commands; [`Ssh::close`] ends it.
//!
//! A remote command is always an argv: it is quoted with `shlex` into the one string ssh
//! hands to the remote shell, so no value from the hosts file or a spec is ever parsed by
//! a shell. Scripts are constant strings run as `sh -c SCRIPT stasis ARGS...`, with every
//! variable part passed as a positional argument. With `sudo = true` the argv is prefixed
//! with `sudo -n --`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use super::hosts::{HostKeyChecking, HostSpec};

/// ssh's own exit status for its errors (connection, authentication).
const SSH_ERROR: i32 = 255;

/// A private directory for the control sockets, removed on drop.
#[derive(Debug)]
pub struct ControlDir {
    pub path: PathBuf,
}

impl ControlDir {
    /// Creates `$TMPDIR/stasis-ssh-<pid>-<n>` with mode 0700 (socket paths must stay
    /// short: Unix sockets allow about 100 bytes).
    pub fn create() -> Result<ControlDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let path = base.join(format!("stasis-ssh-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(ControlDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
        bail!("cannot create a control directory in {}", base.display())
    }
}

impl Drop for ControlDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One host reached through the system `ssh`.
#[derive(Clone, Debug)]
pub struct Ssh {
    pub spec: HostSpec,
    control: PathBuf,
    checking: HostKeyChecking,
    known_hosts: Option<PathBuf>,
}

/// The result of a remote command that ran (ssh itself worked).
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ssh {
    /// A transport to `spec` whose control socket is `control` (in a [`ControlDir`]).
    pub fn new(
        spec: HostSpec,
        control: PathBuf,
        checking: HostKeyChecking,
        known_hosts: Option<PathBuf>,
    ) -> Ssh {
        Ssh {
            spec,
            control,
            checking,
            known_hosts,
        }
    }

    /// `user@address`, or `user@name (address)` for a host given by name (for messages).
    pub fn target(&self) -> String {
        match &self.spec.name {
            Some(n) => format!("{}@{n} ({})", self.spec.user, self.spec.address),
            None => format!("{}@{}", self.spec.user, self.spec.address),
        }
    }

    /// The ssh options before the destination (no shell involved: each is one argv item).
    pub fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = Vec::new();
        let mut opt = |s: String| {
            o.push("-o".into());
            o.push(s);
        };
        opt("BatchMode=yes".into());
        opt("ControlMaster=auto".into());
        opt(format!("ControlPath={}", self.control.display()));
        opt("ControlPersist=300".into());
        opt("ConnectTimeout=5".into());
        opt("ServerAliveInterval=5".into());
        opt("ServerAliveCountMax=3".into());
        opt("LogLevel=ERROR".into());
        opt(format!("StrictHostKeyChecking={}", self.checking.option()));
        if let Some(k) = &self.known_hosts {
            opt(format!("UserKnownHostsFile={}", k.display()));
        }
        // ssh connects to the address resolved when the hosts file was loaded, and checks
        // the host key under the name the file gave (as `ssh NAME` would).
        if let Some(name) = &self.spec.name {
            opt(format!("HostKeyAlias={name}"));
        }
        if let Some(key) = &self.spec.key {
            opt("IdentitiesOnly=yes".into());
            o.push("-i".into());
            o.push(key.display().to_string());
        }
        o.push("-p".into());
        o.push(self.spec.port.to_string());
        o.push("-l".into());
        o.push(self.spec.user.clone());
        o
    }

    /// The one string ssh sends as the remote command: `argv` quoted for a POSIX shell
    /// (with `sudo -n --` in front when the host asks for sudo).
    pub fn remote_command(&self, argv: &[&str]) -> Result<String> {
        if argv.is_empty() {
            bail!("empty remote command");
        }
        let mut full: Vec<&str> = Vec::new();
        if self.spec.sudo {
            full.extend(["sudo", "-n", "--"]);
        }
        full.extend_from_slice(argv);
        shlex::try_join(full).map_err(|e| anyhow!("cannot quote remote command: {e}"))
    }

    /// The complete local argv: `ssh OPTIONS -- ADDRESS QUOTED-COMMAND`.
    pub fn argv(&self, remote: &[&str]) -> Result<Vec<String>> {
        let mut a = vec!["ssh".to_owned()];
        a.extend(self.options());
        a.push("--".into());
        a.push(self.spec.address.to_string());
        a.push(self.remote_command(remote)?);
        Ok(a)
    }

    fn command(&self, remote: &[&str]) -> Result<Command> {
        let argv = self.argv(remote)?;
        tracing::debug!(host = %self.spec.address, cmd = remote.join(" "), "ssh");
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        Ok(c)
    }

    /// Runs `remote` on the host, with `input` on its stdin; `Err` only when ssh itself
    /// failed (cannot connect, authentication, ...).
    pub fn exec(&self, remote: &[&str], input: Option<&[u8]>) -> Result<Ran> {
        let mut c = self.command(remote)?;
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .context("cannot run ssh (apt-get install openssh-client)")?;
        if let Some(data) = input {
            let mut stdin = child.stdin.take().context("ssh stdin")?;
            // A remote side that exits early closes the pipe; its status says why.
            let _ = stdin.write_all(data);
        }
        let out: Output = child.wait_with_output().context("waiting for ssh")?;
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if code == SSH_ERROR {
            bail!(
                "ssh {} -p {}: {}",
                self.target(),
                self.spec.port,
                one_line(&stderr)
            );
        }
        Ok(Ran {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        })
    }

    /// Runs `remote`; a non-zero exit is an error carrying its stderr.
    pub fn run(&self, remote: &[&str]) -> Result<String> {
        let r = self.exec(remote, None)?;
        if r.code != 0 {
            bail!(
                "{}: `{}` failed (exit {}): {}",
                self.target(),
                remote.join(" "),
                r.code,
                one_line(&r.stderr)
            );
        }
        Ok(r.stdout)
    }

    /// Runs a constant shell script with positional arguments (`sh -c SCRIPT stasis ARGS`).
    pub fn script(&self, script: &str, args: &[&str]) -> Result<Ran> {
        let mut argv = vec!["sh", "-c", script, "stasis"];
        argv.extend_from_slice(args);
        self.exec(&argv, None)
    }

    /// Like [`Ssh::script`], but a non-zero exit is an error.
    pub fn script_ok(&self, what: &str, script: &str, args: &[&str]) -> Result<String> {
        let r = self.script(script, args)?;
        if r.code != 0 {
            bail!(
                "{}: {what} failed (exit {}): {}",
                self.target(),
                r.code,
                one_line(&r.stderr)
            );
        }
        Ok(r.stdout)
    }

    /// Copies a local file to `remote_path` (written beside it and renamed, mode 0755).
    pub fn upload(&self, local: &Path, remote_path: &str) -> Result<()> {
        let data =
            std::fs::read(local).with_context(|| format!("cannot read {}", local.display()))?;
        let r = self.exec(
            &[
                "sh",
                "-c",
                r#"cat > "$1.tmp" && chmod 755 "$1.tmp" && mv -f "$1.tmp" "$1""#,
                "stasis",
                remote_path,
            ],
            Some(&data),
        )?;
        if r.code != 0 {
            bail!(
                "{}: cannot upload {} to {remote_path}: {}",
                self.target(),
                local.display(),
                one_line(&r.stderr)
            );
        }
        Ok(())
    }

    /// Copies the remote directory `remote_dir` into `local_dir` (tar over ssh).
    pub fn fetch_dir(&self, remote_dir: &str, local_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(local_dir)
            .with_context(|| format!("cannot create {}", local_dir.display()))?;
        let mut ssh = self.command(&["tar", "-C", remote_dir, "-cf", "-", "."])?;
        let mut src = ssh
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run ssh")?;
        let out = src.stdout.take().context("ssh stdout")?;
        let untar = Command::new("tar")
            .arg("-C")
            .arg(local_dir)
            .args(["-xf", "-"])
            .stdin(Stdio::from(out))
            .stderr(Stdio::piped())
            .output()
            .context("cannot run tar")?;
        let fetched = src.wait_with_output().context("waiting for ssh")?;
        if !fetched.status.success() {
            bail!(
                "{}: cannot fetch {remote_dir}: {}",
                self.target(),
                one_line(&String::from_utf8_lossy(&fetched.stderr))
            );
        }
        if !untar.status.success() {
            bail!(
                "cannot unpack {remote_dir} from {} into {}: {}",
                self.target(),
                local_dir.display(),
                one_line(&String::from_utf8_lossy(&untar.stderr))
            );
        }
        Ok(())
    }

    /// Ends the shared master connection (if any).
    pub fn close(&self) {
        let mut c = Command::new("ssh");
        c.args(self.options())
            .args(["-O", "exit", "--"])
            .arg(self.spec.address.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }
}

/// The first non-empty line of a message (ssh and remote tools print several).
pub fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.as_slice() {
        [] => "(no message)".into(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} (+{} more lines)", rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ssh(sudo: bool) -> Ssh {
        Ssh::new(
            HostSpec {
                address: Ipv4Addr::new(10, 211, 9, 2),
                name: None,
                user: "root".into(),
                port: 2222,
                key: Some("/k/id".into()),
                sudo,
                dir: "/tmp/stasis-remote".into(),
            },
            "/tmp/stasis-ssh-1-0/n1".into(),
            HostKeyChecking::AcceptNew,
            Some("/tmp/kh".into()),
        )
    }

    #[test]
    fn argv_shares_the_connection_and_quotes_the_remote_command() {
        let a = ssh(false).argv(&["kill", "-9", "--", "-1234"]).unwrap();
        let s = a.join(" ");
        for want in [
            "ControlMaster=auto",
            "ControlPath=/tmp/stasis-ssh-1-0/n1",
            "ControlPersist=",
            "BatchMode=yes",
            "StrictHostKeyChecking=accept-new",
            "UserKnownHostsFile=/tmp/kh",
            "-i /k/id",
            "-p 2222",
            "-l root",
        ] {
            assert!(s.contains(want), "{want} missing in {s}");
        }
        // The destination follows `--`, the command is one argv item.
        let n = a.len();
        assert_eq!(a[n - 3], "--");
        assert_eq!(a[n - 2], "10.211.9.2");
        assert_eq!(a[n - 1], "kill -9 -- -1234");
    }

    #[test]
    fn named_hosts_connect_to_the_resolved_address_with_the_name_s_host_key() {
        let mut s = ssh(false);
        s.spec.name = Some("db1.example".into());
        let a = s.argv(&["true"]).unwrap();
        assert!(a.contains(&"HostKeyAlias=db1.example".to_owned()), "{a:?}");
        assert_eq!(a[a.len() - 2], "10.211.9.2");
        assert_eq!(s.target(), "root@db1.example (10.211.9.2)");
        assert!(
            !ssh(false)
                .argv(&["true"])
                .unwrap()
                .join(" ")
                .contains("HostKeyAlias")
        );
    }

    #[test]
    fn hostile_arguments_stay_single_words() {
        let s = ssh(false);
        let evil = "x; rm -rf / $(reboot) `id` 'q' \"d\"";
        let cmd = s.remote_command(&["echo", evil]).unwrap();
        // What a POSIX shell would split the command into: exactly the argv we gave.
        assert_eq!(shlex::split(&cmd).unwrap(), vec!["echo", evil]);
        let cmd = ssh(true)
            .remote_command(&["sh", "-c", "echo \"$1\"", "stasis", evil])
            .unwrap();
        assert_eq!(
            shlex::split(&cmd).unwrap(),
            vec![
                "sudo",
                "-n",
                "--",
                "sh",
                "-c",
                "echo \"$1\"",
                "stasis",
                evil
            ]
        );
        assert!(s.remote_command(&["a\0b"]).is_err());
        assert!(s.remote_command(&[]).is_err());
    }

    #[test]
    fn quoted_commands_survive_a_real_shell() {
        // Run the quoted string through sh, as sshd does with the user's shell.
        let s = ssh(false);
        let evil = "a b; echo pwned $(echo sub) `echo tick` 'q' \"d\" \\ *";
        let cmd = s
            .remote_command(&["printf", "%s|", evil, "--", "-x"])
            .unwrap();
        let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{evil}|--|-x|")
        );
    }

    #[test]
    fn control_dirs_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let d = ControlDir::create().unwrap();
        let mode = std::fs::metadata(&d.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let p = d.path.clone();
        drop(d);
        assert!(!p.exists());
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line(""), "(no message)");
        assert_eq!(one_line("\n  a  \n"), "a");
        assert_eq!(one_line("a\nb\nc"), "a (+2 more lines)");
    }
}
