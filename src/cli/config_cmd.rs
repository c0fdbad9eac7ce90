use super::args::ConfigCommand;
use super::{Failure, Outcome, exit, print_json};
use crate::config;
use color_eyre::eyre::WrapErr;
use std::path::{Path, PathBuf};

/// The commented example config, also what `config init` writes.
pub const EXAMPLE: &str = include_str!("../../assets/example.toml");

pub fn run(command: ConfigCommand, explicit: Option<PathBuf>) -> Outcome {
    match command {
        ConfigCommand::Check { json } => check(explicit, json),
        ConfigCommand::Path => {
            let location = config::locate(explicit);
            match &location.path {
                Some(p) => println!("{}", p.display()),
                None => {
                    eprintln!("no config file found; looked for:");
                    for p in &location.searched {
                        eprintln!("  {}", p.display());
                    }
                    return Err(Failure::Silent(exit::BAD_CONFIG));
                }
            }
            Ok(())
        }
        ConfigCommand::Init { path, force } => {
            let path = path.or(explicit).unwrap_or_else(config::user_config_path);
            if path.exists() && !force {
                return Err(Failure::Usage(format!(
                    "{} already exists; pass --force to overwrite it",
                    path.display()
                )));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&path, EXAMPLE)
                .wrap_err_with(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
            // Where the lookup finds it by itself, there is no need to name it.
            if config::locate(None).path.as_deref() == Some(Path::new(&path)) {
                println!("next: edit it, then `bottle-tui plan demo`");
            } else {
                println!(
                    "next: edit it, then `bottle-tui --config {} plan demo`",
                    path.display()
                );
            }
            Ok(())
        }
    }
}

fn check(explicit: Option<PathBuf>, json: bool) -> Outcome {
    match super::load_config(explicit) {
        Ok(c) => {
            if json {
                print_json(&serde_json::json!({
                    "ok": true,
                    "path": c.path,
                    "bottles": c.bottles.keys().collect::<Vec<_>>(),
                    "agents": c.agents.keys().collect::<Vec<_>>(),
                    "errors": [],
                }))?;
            } else {
                let names = |it: Vec<&str>| it.join(", ");
                println!(
                    "{}: ok (bottles: {}; agents: {})",
                    c.path.display(),
                    names(c.bottles.keys().map(|s| s.as_str()).collect()),
                    names(c.agents.keys().map(|s| s.as_str()).collect())
                );
            }
            Ok(())
        }
        Err(Failure::Config(errors)) if json => {
            print_json(&serde_json::json!({ "ok": false, "errors": errors.0 }))?;
            eprintln!("{errors}");
            Err(Failure::Silent(exit::BAD_CONFIG))
        }
        Err(e) => Err(e),
    }
}
