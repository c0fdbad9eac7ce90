//! How to reach a bottle's agent session: the `docker exec -it … session attach` command line
//! for a running agent (a plain terminal runs it directly, the dashboard's pane in a PTY), or
//! the last screen and exit code of a finished one.

use super::launch::AGENT_SIDECAR;
use crate::backend::{Backend, label, role};
use crate::sidecar::session::{DEFAULT_DIR, DetachKey, Paths, probe};
use crate::types::{ContainerState, Slug};
use crate::wire::session::SessionState;
use color_eyre::eyre::{Result, bail, eyre};

/// Overrides the `docker` program used to attach (it must talk to the same engine).
pub const DOCKER_CLI_ENV: &str = "BOTTLE_TUI_DOCKER";
/// The engine holds back the first key of its own detach sequence until the next key arrives;
/// a double NUL is the pair least likely to be typed, and our client detaches on its own key.
pub const ENGINE_DETACH_KEYS: &str = "ctrl-@,ctrl-@";

/// A program and its arguments, never through a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachCommand {
    pub program: String,
    pub args: Vec<String>,
}

impl AttachCommand {
    /// Tells the client the viewer's size, for when the engine's exec never sizes its TTY.
    /// The variable goes with the exec's other options, just before its `-it`.
    pub fn with_size(mut self, cols: u16, rows: u16) -> Self {
        if let Some(at) = self.args.iter().position(|a| a == "-it") {
            self.args.splice(
                at..at,
                [
                    "-e".to_owned(),
                    format!(
                        "{}={cols}x{rows}",
                        crate::sidecar::session::attach::SIZE_ENV
                    ),
                ],
            );
        }
        self
    }
}

/// Where a running agent is, and so how a terminal reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// An agent container: `docker exec -it`.
    Container(String),
    /// A smolvm machine: `smolvm machine exec -it`, dropping to the agent user there (the
    /// session's folder is the agent's alone).
    Machine { name: String, user: String },
}

impl Place {
    /// The session client, attached (it sets the agent's size).
    pub fn attach(&self, slug: &Slug, key: DetachKey) -> AttachCommand {
        match self {
            Self::Container(c) => docker_attach(c, slug, key),
            Self::Machine { name, user } => machine_attach(name, user, slug, key, false),
        }
    }

    /// The same client as a read-only view that never sets the agent's size.
    pub fn preview(&self, slug: &Slug, key: DetachKey) -> AttachCommand {
        match self {
            Self::Container(c) => docker_preview(c, slug, key),
            Self::Machine { name, user } => machine_attach(name, user, slug, key, true),
        }
    }
}

/// `smolvm machine exec -it` into the machine, running the attach client as the agent user.
pub fn machine_attach(
    machine: &str,
    user: &str,
    slug: &Slug,
    key: DetachKey,
    preview: bool,
) -> AttachCommand {
    let mut args: Vec<String> = vec![
        "machine".into(),
        "exec".into(),
        "--name".into(),
        machine.into(),
    ];
    if let Ok(v) = std::env::var(probe::ENV) {
        args.extend(["-e".into(), format!("{}={v}", probe::ENV)]);
    }
    args.extend(["-it".into(), "--".into()]);
    let slug = slug.to_string();
    let key = key.to_string();
    let mut client = vec![
        AGENT_SIDECAR,
        "session",
        "attach",
        "--name",
        &slug,
        "--detach-key",
        &key,
    ];
    if preview {
        client.push("--no-resize");
    }
    args.extend(super::agent_host::as_user(user, None, &client));
    AttachCommand {
        program: crate::backend::smolvm::cli::program().display().to_string(),
        args,
    }
}

#[derive(Debug)]
pub enum Target {
    /// The agent runs: the command that attaches to it, and its container.
    Live {
        command: AttachCommand,
        place: Place,
    },
    /// The agent finished: what it last showed and how it ended.
    Finished {
        exit_code: Option<i64>,
        last_screen: Option<Vec<u8>>,
    },
}

pub fn docker_program() -> String {
    std::env::var(DOCKER_CLI_ENV).unwrap_or_else(|_| "docker".to_owned())
}

/// `docker exec -it` into the agent container, running the attach client as the agent user.
pub fn docker_attach(container: &str, slug: &Slug, key: DetachKey) -> AttachCommand {
    let mut args: Vec<String> = vec![
        "exec".into(),
        "-it".into(),
        "--detach-keys".into(),
        ENGINE_DETACH_KEYS.into(),
    ];
    // Tests shorten the client's terminal liveness probe.
    if let Ok(v) = std::env::var(probe::ENV) {
        args.extend(["-e".into(), format!("{}={v}", probe::ENV)]);
    }
    args.extend([
        container.into(),
        AGENT_SIDECAR.into(),
        "session".into(),
        "attach".into(),
        "--name".into(),
        slug.to_string(),
        "--detach-key".into(),
        key.to_string(),
    ]);
    AttachCommand {
        program: docker_program(),
        args,
    }
}

/// A read-only view for a preview: the same client, never setting the agent's size.
pub fn docker_preview(container: &str, slug: &Slug, key: DetachKey) -> AttachCommand {
    let mut cmd = docker_attach(container, slug, key);
    cmd.args.push("--no-resize".into());
    cmd
}

pub async fn resolve(backend: &dyn Backend, slug: &Slug, key: DetachKey) -> Result<Target> {
    let containers = backend
        .list_containers(&[(label::SLUG, slug.as_str())])
        .await?;
    if containers.is_empty() {
        bail!("no bottle `{slug}` (see `bottle-tui ls`)");
    }
    if let Some(bundle) = containers
        .iter()
        .find(|c| c.labels.contains_key(label::MACHINE))
    {
        return resolve_machine(bundle, slug, key).await;
    }
    let agent = containers
        .iter()
        .find(|c| c.labels.get(label::ROLE).map(String::as_str) == Some(role::AGENT))
        .ok_or_else(|| eyre!("`{slug}` has no agent container (it is broken; `bottle-tui kill {slug}` cleans it up)"))?;
    match agent.state {
        ContainerState::Running => {
            let place = Place::Container(agent.name.clone());
            Ok(Target::Live {
                command: place.attach(slug, key),
                place,
            })
        }
        ContainerState::Exited | ContainerState::Dead => {
            let paths = Paths::new(DEFAULT_DIR);
            let path = paths.last_screen();
            let last_screen = backend
                .read_file(&agent.name, &path.display().to_string())
                .await?;
            Ok(Target::Finished {
                exit_code: agent.exit_code,
                last_screen,
            })
        }
        other => bail!("the agent of `{slug}` is {other}; it can be attached once it runs"),
    }
}

/// A smolvm bottle: the engine sees only its bundle; the machine's session record says
/// whether the agent runs.
async fn resolve_machine(
    bundle: &crate::backend::ContainerInfo,
    slug: &Slug,
    key: DetachKey,
) -> Result<Target> {
    let machine = bundle
        .labels
        .get(label::MACHINE)
        .cloned()
        .unwrap_or_default();
    let user = bundle
        .labels
        .get(label::AGENT_USER)
        .cloned()
        .ok_or_else(|| eyre!("`{slug}`'s bundle does not say who its agent runs as (launched by an older bottle-tui); relaunch it"))?;
    let smolvm = crate::backend::smolvm::cli::Smolvm::new(std::path::PathBuf::new());
    let record = super::agent_host::machine_session(&smolvm, &machine).await?;
    match record.as_ref().map(|r| r.state) {
        Some(SessionState::Exited) => Ok(Target::Finished {
            exit_code: record.and_then(|r| r.exit_code()).map(i64::from),
            last_screen: super::agent_host::machine_last_screen(&smolvm, &machine).await?,
        }),
        Some(SessionState::Running) => {
            let place = Place::Machine {
                name: machine,
                user,
            };
            Ok(Target::Live {
                command: place.attach(slug, key),
                place,
            })
        }
        None => bail!(
            "the smolvm machine {machine} of `{slug}` has no session (it is not running, or provision never finished); `bottle-tui kill {slug}` cleans it up"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attach_command_line_is_one_argv_with_explicit_detach_keys() {
        let slug: Slug = "demo".parse().unwrap();
        let cmd = docker_attach("bottle-demo-agent", &slug, "ctrl-q".parse().unwrap());
        assert_eq!(
            cmd.args.join(" "),
            "exec -it --detach-keys ctrl-@,ctrl-@ bottle-demo-agent /.bottle/bottle-sidecar session attach --name demo --detach-key ctrl-q"
        );
    }

    #[test]
    fn the_viewers_size_goes_to_the_client_as_an_exec_env() {
        let slug: Slug = "demo".parse().unwrap();
        let cmd =
            docker_attach("bottle-demo-agent", &slug, "ctrl-q".parse().unwrap()).with_size(160, 48);
        assert_eq!(
            &cmd.args[..4],
            ["exec", "-e", "BOTTLE_ATTACH_SIZE=160x48", "-it"]
        );
    }

    #[test]
    fn a_machine_attach_is_smolvm_exec_it_with_the_size_before_it_and_the_client_as_the_agent() {
        let slug: Slug = "demo".parse().unwrap();
        let key: DetachKey = "ctrl-q".parse().unwrap();
        let place = Place::Machine {
            name: "bottle-demo".into(),
            user: "node".into(),
        };
        let cmd = place.attach(&slug, key).with_size(120, 40);
        assert_eq!(
            cmd.program,
            crate::backend::smolvm::cli::program().display().to_string()
        );
        let it = cmd.args.iter().position(|a| a == "-it").expect("-it");
        assert_eq!(cmd.args[..4], ["machine", "exec", "--name", "bottle-demo"]);
        assert_eq!(cmd.args[it - 2..it], ["-e", "BOTTLE_ATTACH_SIZE=120x40"]);
        assert_eq!(cmd.args[it + 1], "--");
        let client = cmd.args[it + 2..].join(" ");
        assert!(client.contains("node"), "as the agent user: {client}");
        assert!(
            client.ends_with(
                "/.bottle/bottle-sidecar session attach --name demo --detach-key ctrl-q"
            ),
            "{client}"
        );
        let preview = place.preview(&slug, key).args.join(" ");
        assert!(
            preview.ends_with("--detach-key ctrl-q --no-resize"),
            "{preview}"
        );
    }
}
