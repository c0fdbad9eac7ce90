//! Where an agent runs — a Docker container or a smolvm machine — behind the few calls that
//! provision, the session and `exec` need: run a command as a user, unpack an archive, and
//! the argv that reaches the agent from a terminal. Launch differs per backend (networks and
//! seal, or alias and allowlist); everything after the agent starts is one code path.

use crate::backend::smolvm::cli::Smolvm;
use crate::backend::{Backend, ExecOutput, ExecSpec};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

#[async_trait]
pub trait AgentHost: Send + Sync {
    /// The container or machine, for messages.
    fn name(&self) -> &str;
    /// Runs `cmd` as `user` (a name) with the agent's environment; any exit code is returned.
    async fn exec(&self, user: &str, cmd: &[&str]) -> Result<ExecOutput>;
    /// Unpacks `tar` into `dir`, keeping the archive's owners and modes.
    async fn copy_in(&self, dir: &str, tar: Vec<u8>) -> Result<()>;
}

/// An agent container: the engine execs and unpacks archives itself.
pub struct Container<'a> {
    pub backend: &'a dyn Backend,
    pub name: &'a str,
}

#[async_trait]
impl AgentHost for Container<'_> {
    fn name(&self) -> &str {
        self.name
    }

    async fn exec(&self, user: &str, cmd: &[&str]) -> Result<ExecOutput> {
        let spec = ExecSpec {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            user: Some(user.to_owned()),
            ..Default::default()
        };
        self.backend.exec(self.name, &spec).await
    }

    async fn copy_in(&self, dir: &str, tar: Vec<u8>) -> Result<()> {
        self.backend.copy_in(self.name, dir, tar).await
    }
}

/// A smolvm machine. `machine exec` runs as root with none of the machine's create-time
/// environment, so every exec re-passes the guest's env and drops to the user through
/// [`as_user`]; archives travel as a file (`machine cp`) unpacked by the guest's tar.
pub struct Machine<'a> {
    pub smolvm: &'a Smolvm,
    pub name: &'a str,
    pub env: &'a BTreeMap<String, String>,
    /// A host folder (the bottle's state dir) for archives on their way in.
    pub scratch: &'a Path,
    pub copies: AtomicUsize,
}

impl<'a> Machine<'a> {
    pub fn new(
        smolvm: &'a Smolvm,
        name: &'a str,
        env: &'a BTreeMap<String, String>,
        scratch: &'a Path,
    ) -> Self {
        Self {
            smolvm,
            name,
            env,
            scratch,
            copies: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl AgentHost for Machine<'_> {
    fn name(&self) -> &str {
        self.name
    }

    async fn exec(&self, user: &str, cmd: &[&str]) -> Result<ExecOutput> {
        let argv = as_user(user, None, cmd);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.smolvm.machine_exec(self.name, self.env, &argv).await?;
        Ok(ExecOutput {
            code: i64::from(out.code),
            stdout: out.stdout.into_bytes(),
            stderr: out.stderr.into_bytes(),
        })
    }

    async fn copy_in(&self, dir: &str, tar: Vec<u8>) -> Result<()> {
        // Copies may run side by side (provision's CA beside its files): one name each.
        let n = self.copies.fetch_add(1, Ordering::SeqCst);
        let host: PathBuf = self.scratch.join(format!("copy-in-{n}.tar"));
        crate::fsutil::write(&host, &tar, crate::fsutil::SECRET)?;
        let guest = format!("/.bottle-copy-in-{n}.tar");
        let copied = self.smolvm.machine_cp(self.name, &host, &guest).await;
        // The archive may hold settings; it does not stay on the host.
        let _ = std::fs::remove_file(&host);
        copied?;
        let out = self
            .smolvm
            .machine_exec(
                self.name,
                self.env,
                &["sh", "-c", UNPACK, "sh", &guest, dir],
            )
            .await?;
        if out.code != 0 {
            bail!(
                "unpacking files into {dir} in {} failed (exit {}): {}",
                self.name,
                out.code,
                out.stderr.trim()
            );
        }
        Ok(())
    }
}

/// `$1` archive, `$2` folder: unpack as root keeping owners, and never leave the archive.
const UNPACK: &str =
    r#"mkdir -p "$2" && tar -x -p --same-owner -f "$1" -C "$2"; r=$?; rm -f "$1"; exit $r"#;

/// Runs the rest as user `$1` (name or uid) in folder `$2` (empty: the user's home), with
/// HOME, USER and LOGNAME of that user and the rest of the environment kept — as `docker
/// exec --user` does. setpriv is util-linux's, in every Debian image.
const AS_USER: &str = r#"u="$1"; cwd="$2"; shift 2
h=$(getent passwd "$u" | cut -d: -f6)
[ -n "$h" ] || { echo "the machine has no user $u" >&2; exit 126; }
command -v setpriv >/dev/null || { echo "the machine has no setpriv (util-linux) to run as $u" >&2; exit 126; }
cd "${cwd:-$h}" || exit 126
export HOME="$h" USER="$u" LOGNAME="$u"
exec setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@""#;

/// The argv that runs `cmd` as `user` in `cwd` inside a machine.
pub fn as_user(user: &str, cwd: Option<&str>, cmd: &[&str]) -> Vec<String> {
    ["sh", "-c", AS_USER, "sh", user, cwd.unwrap_or("")]
        .into_iter()
        .chain(cmd.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// Where, in a machine, the exec that starts the session holder writes its pid and output
/// (a container's holder is its PID 1 and logs to the engine; a machine's has neither).
pub fn holder_files() -> (String, String) {
    let run = crate::sidecar::session::Paths::new(crate::sidecar::session::DEFAULT_DIR).run_dir();
    (
        run.join("holder.pid").display().to_string(),
        run.join("holder.log").display().to_string(),
    )
}

/// Sends SIGTERM to the session holder in `machine`, which passes it on to the agent (as the
/// engine does to a container's PID 1).
pub async fn terminate_holder(smolvm: &Smolvm, machine: &str) -> Result<()> {
    let (pid, _) = holder_files();
    let out = smolvm
        .machine_exec(
            machine,
            &BTreeMap::new(),
            &["sh", "-c", r#"kill -TERM "$(cat "$1")""#, "sh", &pid],
        )
        .await?;
    if out.code != 0 {
        bail!(
            "cannot signal the session holder in {machine} (exit {}): {}",
            out.code,
            out.stderr.trim()
        );
    }
    Ok(())
}

/// A launched machine's agent as `exec` reaches it: the machine, the agent's user and
/// workdir (from the plan launch saved) and the guest env launch used.
pub struct MachineAgent {
    pub machine: String,
    pub user: String,
    pub workdir: String,
    pub env: BTreeMap<String, String>,
}

impl MachineAgent {
    pub fn load(state_dir: &Path, machine: &str) -> Result<Self> {
        let path = state_dir.join(super::prepare::files::PLAN);
        let bytes =
            std::fs::read(&path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
        let plan: super::Plan = serde_json::from_slice(&bytes)
            .wrap_err_with(|| format!("{} is not a plan this bottle-tui reads", path.display()))?;
        Ok(Self {
            machine: machine.to_owned(),
            user: plan.agent.user,
            workdir: plan.agent.workdir.display().to_string(),
            env: load_guest_env(state_dir)?,
        })
    }

    /// The `smolvm` arguments that run `cmd` as the agent, in its workdir, with its env.
    pub fn exec_args(&self, cmd: &[&str]) -> Vec<String> {
        let argv = as_user(&self.user, Some(&self.workdir), cmd);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        crate::backend::smolvm::cli::exec_args(&self.machine, &self.env, &argv)
    }
}

/// Reads `path` in `machine` as root: `None` when the file is not there. An exec that fails
/// (the machine stopped or gone, smolvm missing) is an error naming the call.
async fn read_in_machine(smolvm: &Smolvm, machine: &str, path: &str) -> Result<Option<String>> {
    let out = smolvm
        .machine_exec(
            machine,
            &BTreeMap::new(),
            &[
                "sh",
                "-c",
                r#"[ ! -e "$1" ] || { printf x; cat "$1"; }"#,
                "sh",
                path,
            ],
        )
        .await?;
    if out.code != 0 {
        bail!(
            "`smolvm machine exec --name {machine}` failed (exit {}): {}",
            out.code,
            out.stderr.trim()
        );
    }
    // The x says the file was there (an empty file is not an absent one).
    Ok(out.stdout.strip_prefix('x').map(str::to_owned))
}

/// What the session holder in `machine` last recorded: `None` while it has written nothing
/// (provision has not finished, or the holder never started).
pub async fn machine_session(
    smolvm: &Smolvm,
    machine: &str,
) -> Result<Option<crate::sidecar::session::SessionRecord>> {
    let paths = crate::sidecar::session::Paths::new(crate::sidecar::session::DEFAULT_DIR);
    let record = paths.record().display().to_string();
    match read_in_machine(smolvm, machine, &record).await? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .wrap_err_with(|| format!("{record} in {machine} is not a session record")),
    }
}

/// The agent's last screen in `machine`, once it has exited.
pub async fn machine_last_screen(smolvm: &Smolvm, machine: &str) -> Result<Option<Vec<u8>>> {
    let paths = crate::sidecar::session::Paths::new(crate::sidecar::session::DEFAULT_DIR);
    let path = paths.last_screen().display().to_string();
    Ok(read_in_machine(smolvm, machine, &path)
        .await?
        .map(String::into_bytes))
}

/// The guest environment launch used, kept in the state dir so `exec` and `attach` can pass
/// it again (smolvm gives an exec none of it).
pub fn guest_env_file(state_dir: &Path) -> PathBuf {
    state_dir.join("guest-env.json")
}

pub fn save_guest_env(state_dir: &Path, env: &BTreeMap<String, String>) -> Result<()> {
    let json = serde_json::to_vec(env).wrap_err("cannot encode the guest environment")?;
    crate::fsutil::write(&guest_env_file(state_dir), &json, crate::fsutil::SECRET)
}

pub fn load_guest_env(state_dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = guest_env_file(state_dir);
    let bytes = std::fs::read(&path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).wrap_err_with(|| format!("{} is not a JSON map", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(argv: &[String]) -> std::process::Output {
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .expect("sh")
    }

    #[test]
    fn as_user_runs_the_command_as_that_user_in_its_home_keeping_the_environment() {
        // As whoever runs the tests (setpriv to oneself needs no privilege).
        let me = nix::unistd::User::from_uid(nix::unistd::getuid())
            .expect("passwd")
            .expect("a passwd entry");
        let argv = as_user(
            &me.name,
            None,
            &["sh", "-c", "id -u; pwd; echo \"$HOME $KEPT\""],
        );
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("KEPT", "yes")
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let home = me.dir.display().to_string();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [me.uid.to_string(), home.clone(), format!("{home} yes")]
        );
    }

    #[test]
    fn as_user_goes_to_the_folder_asked_for_and_refuses_an_unknown_user() {
        let me = nix::unistd::User::from_uid(nix::unistd::getuid())
            .expect("passwd")
            .expect("a passwd entry");
        let out = sh(&as_user(&me.name, Some("/"), &["pwd"]));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/");
        let out = sh(&as_user("no-such-user-here", None, &["true"]));
        assert_eq!(out.status.code(), Some(126));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no user no-such-user-here"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn exec_args_pass_the_guest_env_and_run_the_command_as_the_agent_in_its_workdir() {
        let me = nix::unistd::User::from_uid(nix::unistd::getuid())
            .expect("passwd")
            .expect("a passwd entry");
        let agent = MachineAgent {
            machine: "bottle-demo".into(),
            user: me.name.clone(),
            workdir: "/".into(),
            env: [("KEPT".to_owned(), "yes".to_owned())].into(),
        };
        let args = agent.exec_args(&["sh", "-c", "id -u; pwd; echo \"$KEPT\""]);
        assert_eq!(
            args[..7],
            [
                "machine",
                "exec",
                "--name",
                "bottle-demo",
                "-e",
                "KEPT=yes",
                "--"
            ]
        );
        // What follows `--` is what the guest runs: run it here with the env smolvm would set.
        let out = std::process::Command::new(&args[7])
            .args(&args[8..])
            .env("KEPT", "yes")
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .collect::<Vec<_>>(),
            [me.uid.to_string().as_str(), "/", "yes"]
        );
    }

    #[test]
    fn the_guest_environment_survives_a_round_trip_through_the_state_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env: BTreeMap<String, String> =
            [("HTTPS_PROXY".to_owned(), "http://127.0.0.16:1".to_owned())].into();
        save_guest_env(dir.path(), &env).expect("save");
        assert_eq!(load_guest_env(dir.path()).expect("load"), env);
        let err = load_guest_env(&dir.path().join("gone")).expect_err("missing");
        assert!(format!("{err:#}").contains("guest-env.json"), "{err:#}");
    }
}
