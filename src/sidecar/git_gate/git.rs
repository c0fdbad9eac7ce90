//! Every git the gate runs, isolated: no system or user config, the gate's own settings at
//! command-line scope (which no repository config can override), and the upstream's identity
//! given through the environment or a credential helper, never through argv or a log.

use crate::wire::git_gate::GitGateRepo;
use color_eyre::eyre::{Result, WrapErr, bail};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the gate keeps its state inside the bundle (container-local: a fresh bundle starts
/// from a fresh mirror).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The bare mirrors, `NAME.git`; git daemon's base path.
    pub root: PathBuf,
    /// Locks, known_hosts and the gate's global git config.
    pub state: PathBuf,
    /// The read-only folder holding only the gate's pre-receive hook.
    pub hooks: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            root: "/var/lib/bottle/git".into(),
            state: "/var/lib/bottle/git-gate".into(),
            hooks: crate::wire::in_bundle::GIT_HOOKS.into(),
        }
    }
}

impl Layout {
    pub fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }

    pub fn lock_file(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.lock"))
    }

    /// Marks a push forwarded upstream that receive-pack has not yet recorded in the mirror,
    /// named by receive-pack's pid (see [`super::mirror::mark_push`]).
    pub fn push_marker(&self, name: &str, pid: u32) -> PathBuf {
        self.state.join(format!("{name}.push.{pid}"))
    }

    /// The CAs https upstreams are checked against when the bottle has an `upstream_ca`: the
    /// system's and that one (`http.sslCAInfo` replaces the system's, so both go in one file).
    pub fn ca_bundle(&self) -> PathBuf {
        self.state.join("ca-bundle.pem")
    }

    /// Writes [`Self::ca_bundle`] from the system's CAs and `extra`, or removes it without one.
    pub fn write_ca_bundle(&self, extra: Option<&Path>, system: &Path) -> Result<()> {
        let path = self.ca_bundle();
        let Some(extra) = extra else {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).wrap_err_with(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            };
        };
        // A bundle without the system's CAs still reaches the private upstream.
        let mut pem = std::fs::read(system).unwrap_or_default();
        if !pem.is_empty() && !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend(
            std::fs::read(extra)
                .wrap_err_with(|| format!("cannot read the upstream CA {}", extra.display()))?,
        );
        std::fs::write(&path, pem).wrap_err_with(|| format!("cannot write {}", path.display()))
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state.join("known_hosts")
    }

    /// The gate's "global" config. It holds only `safe.directory`, because a `file://`
    /// upstream's git runs with the command-line config cleared but this file still read.
    pub fn global_config(&self) -> PathBuf {
        self.state.join("gitconfig")
    }

    /// Settings for every git of the gate and git daemon's children, at command-line scope.
    pub fn gate_config(&self) -> Vec<(&'static str, String)> {
        let s = |v: &str| v.to_owned();
        vec![
            // The only hooks that ever run on the gate: ours, from a read-only mount.
            ("core.hooksPath", self.hooks.display().to_string()),
            ("core.fsmonitor", s("false")),
            ("safe.directory", s("*")),
            ("receive.fsckObjects", s("true")),
            // Second line behind the pre-receive hook.
            ("receive.denyDeletes", s("true")),
            ("receive.denyNonFastForwards", s("true")),
            ("receive.advertisePushOptions", s("false")),
            // receive-pack exits right after recording a push, so refreshes waiting for it
            // (`mirror::mark_push`) are not held back by a gc.
            ("receive.autogc", s("false")),
            ("fetch.recurseSubmodules", s("false")),
            ("submodule.recurse", s("false")),
            ("protocol.allow", s("never")),
            ("protocol.file.allow", s("always")),
            ("protocol.https.allow", s("always")),
            ("protocol.ssh.allow", s("always")),
            ("credential.helper", s("")),
        ]
    }

    /// A `git` with the gate's isolation, run in `dir` (a bare mirror) if given.
    pub fn git(&self, dir: Option<&Path>) -> Command {
        let mut c = Command::new("git");
        self.isolate(&mut c);
        if let Some(d) = dir {
            c.current_dir(d).env("GIT_DIR", d);
        }
        c
    }

    /// The gate's environment, applied to `c` (also to git daemon, whose children inherit it).
    pub fn isolate(&self, c: &mut Command) {
        for var in [
            "GIT_CONFIG_PARAMETERS",
            "GIT_SSH",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
        ] {
            c.env_remove(var);
        }
        c.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.global_config())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("HOME", &self.state);
        let config = self.gate_config();
        c.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            c.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
    }

    /// Creates the state folder and the gate's global config.
    pub fn prepare(&self) -> Result<()> {
        for d in [&self.root, &self.state] {
            std::fs::create_dir_all(d)
                .wrap_err_with(|| format!("cannot create {}", d.display()))?;
        }
        std::fs::write(self.global_config(), "[safe]\n\tdirectory = *\n")
            .wrap_err_with(|| format!("cannot write {}", self.global_config().display()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    File,
    Https,
    Ssh,
}

/// Where a mirror comes from and how the gate authenticates to it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
    pub kind: UpstreamKind,
    pub identity: Option<PathBuf>,
    /// Pinned host keys; None trusts the first key seen (kept in the bundle's known_hosts).
    pub known_hosts: Option<PathBuf>,
}

impl Upstream {
    pub fn of(repo: &GitGateRepo) -> Self {
        let kind = if repo.upstream.starts_with("file://") {
            UpstreamKind::File
        } else if repo.upstream.starts_with("https://") {
            UpstreamKind::Https
        } else {
            UpstreamKind::Ssh
        };
        Self {
            url: repo.upstream.clone(),
            kind,
            identity: repo.identity.clone(),
            known_hosts: repo.known_hosts.clone(),
        }
    }

    /// A git of the gate that talks to this upstream: `args` go after the identity's options.
    pub fn git(&self, layout: &Layout, dir: Option<&Path>, args: &[&str]) -> Command {
        let mut c = layout.git(dir);
        match (self.kind, &self.identity) {
            (UpstreamKind::Ssh, identity) => {
                // -F /dev/null: no ssh config but ours. The key path is not a secret; the key is.
                let (checking, known) = match &self.known_hosts {
                    Some(pinned) => ("yes", pinned.clone()),
                    None => ("accept-new", layout.known_hosts()),
                };
                let mut ssh = format!(
                    "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=15 -o StrictHostKeyChecking={checking} -o UserKnownHostsFile={}",
                    shell_quote(&known.display().to_string())
                );
                if let Some(key) = identity {
                    ssh.push_str(&format!(
                        " -o IdentitiesOnly=yes -i {}",
                        shell_quote(&key.display().to_string())
                    ));
                }
                c.env("GIT_SSH_COMMAND", ssh);
            }
            (UpstreamKind::Https, Some(token)) => {
                // The helper reads the token file itself: the token is on no argv. It is
                // scoped to the upstream's host, so a redirect elsewhere never gets the token.
                let exe = std::env::current_exe()
                    .unwrap_or_else(|_| "/usr/local/bin/bottle-sidecar".into());
                let authority = self
                    .url
                    .strip_prefix("https://")
                    .and_then(|rest| rest.split('/').next())
                    .map(|a| a.rsplit_once('@').map_or(a, |(_, host)| host))
                    .unwrap_or_default();
                c.arg("-c").arg(format!(
                    "credential.https://{authority}.helper=!{} git-gate credential --identity {}",
                    shell_quote(&exe.display().to_string()),
                    shell_quote(&token.display().to_string())
                ));
            }
            (UpstreamKind::Https | UpstreamKind::File, _) => {}
        }
        if self.kind == UpstreamKind::Https && layout.ca_bundle().is_file() {
            c.arg("-c")
                .arg(format!("http.sslCAInfo={}", layout.ca_bundle().display()));
        }
        // A stalled https upstream gives up instead of holding a clone forever.
        c.args([
            "-c",
            "http.lowSpeedLimit=1000",
            "-c",
            "http.lowSpeedTime=30",
        ]);
        c.args(args);
        c
    }
}

/// `'…'` quoting for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `c` to completion with piped output, killing it after `timeout`.
pub fn run(mut c: Command, what: &str, timeout: Duration) -> Result<Output> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout stops git's ssh / remote helpers too (they could
    // otherwise finish a push after we reported it refused).
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c
        .spawn()
        .wrap_err_with(|| format!("cannot start git to {what} (is git installed?)"))?;
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pipe(child.stdout.take().map(|s| Box::new(s) as _));
    let err = pipe(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .wrap_err_with(|| format!("waiting for git to {what}"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "git took longer than {}s to {what}; stopped it",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// git's message from a failed run: its stderr, trimmed, with any `user:password@` in a URL
/// blanked, since an operator may have written a token into an https upstream.
pub fn failure(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.trim();
    let text = if text.is_empty() {
        format!("git exited with {}", out.status)
    } else {
        text.to_owned()
    };
    redact_userinfo(&text)
}

pub fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_timeout_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("child.pid");
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("sleep 30 & echo $! > {}; wait", pid_file.display()));
        let err = run(c, "test", Duration::from_millis(300)).expect_err("timed out");
        assert!(format!("{err}").contains("longer than"), "{err}");
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        let proc_dir = format!("/proc/{}", pid.trim());
        let start = Instant::now();
        // Killed, then reaped by init (or left a zombie briefly): not running `sleep` any more.
        while std::fs::read_to_string(format!("{proc_dir}/stat")).is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the grandchild survived the timeout"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    use super::*;

    #[test]
    fn credentials_in_urls_are_blanked() {
        assert_eq!(
            redact_userinfo("fatal: unable to access 'https://me:tok3n@host/x.git/': 403"),
            "fatal: unable to access 'https://***@host/x.git/': 403"
        );
        assert_eq!(
            redact_userinfo("https://host/x and ssh://git@h:22/y"),
            "https://host/x and ssh://***@h:22/y"
        );
        assert_eq!(redact_userinfo("no url here"), "no url here");
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }

    fn repo(upstream: &str, identity: Option<&str>) -> GitGateRepo {
        GitGateRepo {
            name: "web".into(),
            upstream: upstream.into(),
            identity: identity.map(PathBuf::from),
            known_hosts: None,
            push: vec![],
            protect: vec![],
            max_push: 1 << 20,
        }
    }

    /// The `GIT_SSH_COMMAND` a fetch from `up` gets.
    fn ssh_command(up: &Upstream, l: &Layout) -> String {
        let (_, env) = rendered(&up.git(l, None, &["fetch"]));
        env.into_iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    fn rendered(c: &Command) -> (Vec<String>, Vec<(String, String)>) {
        let args = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env = c
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        (args, env)
    }

    #[test]
    fn identities_reach_git_by_path_only() {
        let l = Layout::default();
        let ssh = Upstream::of(&repo(
            "git@h:me/web.git",
            Some("/etc/bottle/identities/web"),
        ));
        assert_eq!(ssh.kind, UpstreamKind::Ssh);
        let cmd = ssh_command(&ssh, &l);
        assert!(
            cmd.contains("-i '/etc/bottle/identities/web'")
                && cmd.contains("IdentitiesOnly=yes")
                && cmd.contains("BatchMode=yes")
                && cmd.contains("-F /dev/null"),
            "{cmd}"
        );
        let https = Upstream::of(&repo(
            "https://h/me/web.git",
            Some("/etc/bottle/identities/web"),
        ));
        let (args, env) = rendered(&https.git(&l, None, &["fetch"]));
        assert!(
            args.iter()
                .any(|a| a.starts_with("credential.https://h.helper=!")
                    && a.ends_with("git-gate credential --identity '/etc/bottle/identities/web'")),
            "{args:?}"
        );
        assert!(!env.iter().any(|(k, _)| k == "GIT_SSH_COMMAND"));
        // Isolation: no system config, the gate's own global file, no prompts.
        assert!(env.contains(&("GIT_CONFIG_NOSYSTEM".into(), "1".into())));
        assert!(env.contains(&("GIT_TERMINAL_PROMPT".into(), "0".into())));
        let file = Upstream::of(&repo("file:///srv/bottle/upstreams/web", None));
        assert_eq!(file.kind, UpstreamKind::File);
    }

    #[test]
    fn the_gate_config_pins_hooks_to_the_read_only_folder() {
        let l = Layout::default();
        let c = l.gate_config();
        assert!(c.contains(&("core.hooksPath", "/etc/bottle/git-hooks".to_owned())));
        assert!(c.contains(&("receive.fsckObjects", "true".to_owned())));
        assert!(c.contains(&("protocol.allow", "never".to_owned())));
    }

    /// Through real git, with the gate's isolation: the token helper answers for the
    /// upstream's host and for no other (a redirect elsewhere gets nothing). The helper
    /// program is swapped for one that reads the file the same way (the sidecar binary itself
    /// is tested in tests/cli.rs); the scoping and config order are what is under test.
    #[test]
    fn the_token_helper_answers_only_for_the_upstreams_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "TOKEN-123\n").expect("token");
        let l = Layout {
            state: dir.path().to_owned(),
            ..Layout::default()
        };
        std::fs::write(l.global_config(), "").expect("global config");
        let https = Upstream::of(&repo(
            "https://me@git.example.com/me/web.git",
            token.to_str(),
        ));
        let fill = |host: &str| {
            let (args, env) = rendered(&https.git(&l, None, &["credential", "fill"]));
            let mut c = Command::new("git");
            for a in args {
                c.arg(match a.split_once(".helper=!") {
                    Some((key, _)) => format!(
                        "{key}.helper=!f() {{ echo username=x-access-token; echo password=$(head -n1 {}); }}; f",
                        token.display()
                    ),
                    None => a,
                });
            }
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(env)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().expect("git");
            if let Some(mut i) = child.stdin.take() {
                let _ = std::io::Write::write_all(
                    &mut i,
                    format!("protocol=https\nhost={host}\npath=me/web.git\n\n").as_bytes(),
                );
            }
            let out = child.wait_with_output().expect("wait");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert!(fill("git.example.com").contains("password=TOKEN-123"));
        assert!(!fill("evil.example").contains("TOKEN-123"));
    }

    #[test]
    fn pinned_host_keys_are_checked_strictly() {
        let l = Layout::default();
        let mut r = repo("ssh://git@h/me/web.git", Some("/etc/bottle/identities/web"));
        r.known_hosts = Some("/etc/bottle/known_hosts/web".into());
        let cmd = ssh_command(&Upstream::of(&r), &l);
        assert!(
            cmd.contains("StrictHostKeyChecking=yes")
                && cmd.contains("UserKnownHostsFile='/etc/bottle/known_hosts/web'"),
            "{cmd}"
        );
    }

    /// With the bottle's CA, https upstreams are checked against the system's CAs and it, in
    /// one file; without, the file is gone and git uses the system's alone.
    #[test]
    fn a_private_ca_joins_the_systems_for_https_upstreams_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        let layout = Layout {
            root: t.join("git"),
            state: t.join("state"),
            hooks: t.join("hooks"),
        };
        layout.prepare().expect("prepare");
        std::fs::write(t.join("system.pem"), "SYSTEM").expect("system");
        std::fs::write(t.join("private.pem"), "PRIVATE\n").expect("private");
        layout
            .write_ca_bundle(Some(&t.join("private.pem")), &t.join("system.pem"))
            .expect("write");
        assert_eq!(
            std::fs::read_to_string(layout.ca_bundle()).expect("bundle"),
            "SYSTEM\nPRIVATE\n"
        );
        let info = format!("http.sslCAInfo={}", layout.ca_bundle().display());
        let https = Upstream::of(&repo("https://git.lan/web.git", None));
        assert!(
            rendered(&https.git(&layout, None, &["fetch"]))
                .0
                .contains(&info)
        );
        let ssh = Upstream::of(&repo("ssh://git@git.lan/web.git", Some("/id")));
        assert!(
            !rendered(&ssh.git(&layout, None, &["fetch"]))
                .0
                .contains(&info)
        );

        layout
            .write_ca_bundle(None, &t.join("system.pem"))
            .expect("remove");
        assert!(!layout.ca_bundle().exists());
        assert!(
            !rendered(&https.git(&layout, None, &["fetch"]))
                .0
                .contains(&info)
        );
        let err = layout
            .write_ca_bundle(Some(&t.join("missing.pem")), &t.join("system.pem"))
            .expect_err("a missing CA is an error");
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    }
}
