//! `bottle-tui attach SLUG`: a plain terminal on the agent's session.

use super::bottles_cmd::runtime;
use super::{Failure, Outcome};
use crate::backend::docker::DockerBackend;
use crate::engine::attach::{self, DOCKER_CLI_ENV, Target};
use crate::sidecar::session::{DEFAULT_DETACH_KEY, DetachKey, screen};
use crate::types::Slug;
use color_eyre::eyre::eyre;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

pub fn run(slug: &Slug, detach_key: Option<DetachKey>, config: Option<PathBuf>) -> Outcome {
    let key = match detach_key {
        Some(k) => k,
        None => configured_key(config)?,
    };
    let rt = runtime()?;
    let target = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        attach::resolve(&backend, slug, key).await
    })?;
    drop(rt);
    match target {
        Target::Live { command: cmd, .. } => {
            if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
                return Err(Failure::Usage(format!(
                    "attach needs a terminal on stdin and stdout; for scripts use `bottle-tui exec {slug} …`"
                )));
            }
            let cmd = match crossterm::terminal::size() {
                Ok((cols, rows)) if cols > 0 && rows > 0 => cmd.with_size(cols, rows),
                _ => cmd,
            };
            eprintln!("attaching to {slug} — {key} detaches, the agent keeps running");
            let status = std::process::Command::new(&cmd.program)
                .args(&cmd.args)
                .status()
                .map_err(|e| {
                    eyre!(
                        "cannot run `{}` to attach ({e}); attach needs the docker CLI (or set {DOCKER_CLI_ENV})",
                        cmd.program
                    )
                })?;
            match status.code() {
                Some(0) => Ok(()),
                Some(c) => Err(Failure::Silent(u8::try_from(c).unwrap_or(1))),
                None => Err(Failure::Silent(1)),
            }
        }
        Target::Finished {
            exit_code,
            last_screen,
        } => {
            let mut out = std::io::stdout().lock();
            match last_screen {
                Some(bytes) if std::io::stdout().is_terminal() => {
                    let _ = out.write_all(&bytes);
                    let _ = out.write_all(screen::RESET_MODES.as_bytes());
                    let _ = out.write_all(b"\r\n");
                }
                Some(bytes) => {
                    let _ = writeln!(out, "{}", plain_text(&bytes));
                }
                None => eprintln!("(the agent left no screen: it never started)"),
            }
            let _ = out.flush();
            let code = exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
            eprintln!(
                "[the agent in {slug} has exited with code {code}; `bottle-tui kill {slug}` removes the bottle]"
            );
            Ok(())
        }
    }
}

/// The config's `[keys] detach` when there is a config and the key can detach a plain
/// terminal (a ctrl chord); otherwise the default.
fn configured_key(config: Option<PathBuf>) -> Result<DetachKey, Failure> {
    let location = crate::config::locate(config);
    let from_config = match location.path {
        Some(path) => {
            let config = crate::config::load(&path).map_err(Failure::Config)?;
            config.keys.get("detach").cloned()
        }
        None => None,
    };
    let text = match from_config {
        Some(spec) if spec.ctrl && !spec.alt && !spec.shift => format!("ctrl-{}", spec.key),
        Some(spec) => {
            return Err(Failure::Usage(format!(
                "[keys] detach = \"{spec}\" cannot detach a plain terminal: it must be ctrl-<key>; pass --detach-key to override"
            )));
        }
        None => DEFAULT_DETACH_KEY.to_owned(),
    };
    text.parse::<DetachKey>()
        .map_err(|e| Failure::Usage(format!("[keys] detach: {e}")))
}

/// The last screen as text, for a pipe: rendered through a terminal model, trailing blanks
/// trimmed.
fn plain_text(bytes: &[u8]) -> String {
    let mut parser = screen::parser(500, 500);
    parser.process(bytes);
    let text = parser.screen().contents();
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}
