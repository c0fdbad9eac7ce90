//! The commands that act on running bottles: up, ls, inspect, exec, logs, kill.

use super::{Failure, Outcome, print_json};
use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, ExecSpec, OutputStream, label, role};
use crate::config::Config;
use crate::engine::history::{self, Happened};
use crate::engine::redact::redact;
use crate::engine::{kill, reconcile, sidecar_bin, up};
use crate::state::StateRoot;
use crate::store::Store;
use crate::types::Slug;
use color_eyre::eyre::{Result, WrapErr, eyre};
use futures_util::StreamExt;
use std::io::Write;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")
}

pub fn up_cmd(
    config: &Config,
    root: &StateRoot,
    bottles: Vec<Slug>,
    name: Option<Slug>,
) -> Outcome {
    if name.is_some() && bottles.len() > 1 {
        return Err(Failure::Usage(
            "--name names one bottle; launch several without it".into(),
        ));
    }
    for b in &bottles {
        if !config.bottles.contains_key(b) {
            return Err(super::plan_cmd::unknown_bottle(config, b));
        }
    }
    let store = Store::open(&root.db_path())?;
    let sidecar = sidecar_bin::locate()?;
    let rt = runtime()?;
    let results = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let launches = bottles.iter().map(|bottle| {
            let backend = &backend;
            let name = name.clone();
            let sidecar = &sidecar;
            async move {
                let label = name.clone().unwrap_or_else(|| bottle.clone());
                let progress = move |step: &str| eprintln!("{label}: {step}");
                let r = up::up(backend, config, bottle, name, root, sidecar, &progress).await;
                (bottle.clone(), r)
            }
        });
        Ok::<_, color_eyre::Report>(futures_util::future::join_all(launches).await)
    })?;
    let mut failed = Vec::new();
    for (bottle, result) in results {
        match result {
            Ok(plan) => {
                history::record(
                    &store,
                    plan.slug.as_str(),
                    &Happened::Launched {
                        bottle: bottle.to_string(),
                    },
                )?;
                println!("{}", plan.slug);
            }
            Err(e) => {
                let slug = name.clone().unwrap_or_else(|| bottle.clone());
                history::record(
                    &store,
                    slug.as_str(),
                    &Happened::LaunchFailed {
                        bottle: bottle.to_string(),
                        error: format!("{e:#}"),
                    },
                )?;
                failed.push(e);
            }
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 => Err(Failure::Other(failed.remove(0))),
        n => {
            for e in &failed {
                eprintln!("Error: {e:?}");
            }
            Err(Failure::Other(eyre!("{n} bottles failed to launch")))
        }
    }
}

pub fn ls_cmd(json: bool) -> Outcome {
    let rt = runtime()?;
    let bottles = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let mut bottles = reconcile::reconcile(&backend).await?;
        reconcile::read_activities(&backend, &mut bottles).await;
        Ok::<_, color_eyre::Report>(bottles)
    })?;
    if json {
        return print_json(&bottles);
    }
    if bottles.is_empty() {
        println!("no bottles running (start one with `bottle-tui up BOTTLE`)");
        return Ok(());
    }
    println!(
        "{:<20} {:<14} {:<8} {:<8} {:<12} {:<16} {:<28} CREATED",
        "SLUG", "BOTTLE", "BACKEND", "STATE", "AGENT", "STATUS", "HEALTH"
    );
    let now = time::OffsetDateTime::now_utc();
    for b in bottles {
        let agent = match b.agent.exit_code {
            Some(code) => format!("exited {code}"),
            None => b.agent.state.to_string(),
        };
        let status = b.agent.activity.as_ref().map_or_else(
            || "-".to_owned(),
            |a| match crate::types::age::since(&a.since, now) {
                Some(age) => format!("{} {age}", a.status),
                None => a.status.to_string(),
            },
        );
        let health = if b.health.is_empty() {
            "-".to_owned()
        } else {
            b.health
                .iter()
                .map(|(d, s)| format!("{d}:{s}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<20} {:<14} {:<8} {:<8} {:<12} {:<16} {:<28} {}",
            b.slug, b.bottle, b.backend, b.state, agent, status, health, b.created
        );
    }
    Ok(())
}

pub fn inspect_cmd(root: &StateRoot, slug: &Slug, json: bool) -> Outcome {
    let rt = runtime()?;
    let status = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let all = reconcile::reconcile(&backend).await?;
        Ok::<_, color_eyre::Report>(all.into_iter().find(|b| b.slug == slug.as_str()))
    })?;
    let Some(status) = status else {
        return Err(Failure::Other(eyre!(
            "no bottle `{slug}` is running (see `bottle-tui ls`)"
        )));
    };
    let plan_path = root
        .bottle_dir(slug)
        .join(crate::engine::prepare::files::PLAN);
    let mut plan: Option<crate::engine::Plan> = std::fs::read(&plan_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let vars: Vec<String> = plan
        .as_ref()
        .map(|p| {
            p.gateway
                .routes
                .iter()
                .map(|r| r.placeholder_env.clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = plan.as_mut() {
        for (k, v) in p.agent.env.iter_mut() {
            if let Some((_, redacted)) = redact(&format!("{k}={v}"), &vars).split_once('=') {
                *v = redacted.to_owned();
            }
        }
    }
    let containers: Vec<serde_json::Value> = [&status.bundle, &status.agent_container]
        .into_iter()
        .flatten()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "role": c.labels.get(label::ROLE),
                "image": c.image,
                // Docker copies image labels onto the container: the agent image's pin.
                "claude_code": c.labels.get(crate::engine::claude_code::VERSION_LABEL),
                "state": c.state,
                "exit_code": c.exit_code,
                "health": c.health,
                "networks": c.networks,
                "started_at": c.started_at,
                "env": c.env.iter().map(|e| redact(e, &vars)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({ "status": status, "containers": containers, "plan": plan });
    if json {
        return print_json(&doc);
    }
    println!(
        "{} ({}), {} on {}; created {}",
        status.slug, status.bottle, status.state, status.backend, status.created
    );
    for c in &containers {
        println!(
            "  {} [{}] {} {}",
            c["name"].as_str().unwrap_or(""),
            c["role"].as_str().unwrap_or(""),
            c["state"].as_str().unwrap_or(""),
            c["image"].as_str().unwrap_or("")
        );
        if let Some(v) = c["claude_code"].as_str() {
            println!("      Claude Code {v}");
        }
        if let Some(nets) = c["networks"].as_object() {
            for (n, ip) in nets {
                println!("      network {n} {}", ip.as_str().unwrap_or("-"));
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            println!("      env {}", e.as_str().unwrap_or(""));
        }
    }
    if let Some(p) = &plan {
        print!("{}", super::plan_cmd::human(p));
    }
    Ok(())
}

pub fn exec_cmd(root: &StateRoot, slug: &Slug, command: Vec<String>) -> Outcome {
    let rt = runtime()?;
    let code = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let container = format!("bottle-{slug}-agent");
        if let Some(bundle) = backend
            .inspect_container(&format!("bottle-{slug}-bundle"))
            .await?
        {
            if let Some(machine) = bundle.labels.get(label::MACHINE) {
                return machine_exec(root, slug, machine, &command).await;
            }
        }
        if backend.inspect_container(&container).await?.is_none() {
            return Err(eyre!("no bottle `{slug}` is running (see `bottle-tui ls`)"));
        }
        let spec = ExecSpec {
            cmd: command,
            ..Default::default()
        };
        backend
            .exec_streaming(&container, &spec, &mut |stream, bytes| {
                let _ = match stream {
                    OutputStream::Stdout => std::io::stdout().write_all(bytes),
                    OutputStream::Stderr => std::io::stderr().write_all(bytes),
                };
            })
            .await
    })?;
    let _ = std::io::stdout().flush();
    match code {
        0 => Ok(()),
        c => Err(Failure::Silent(u8::try_from(c).unwrap_or(1))),
    }
}

/// `exec` into a smolvm machine: as the agent, in its workdir, with the env launch gave the
/// guest — what `docker exec` into an agent container gives. Output passes straight through.
async fn machine_exec(
    root: &StateRoot,
    slug: &Slug,
    machine: &str,
    command: &[String],
) -> Result<i64> {
    let agent = crate::engine::agent_host::MachineAgent::load(&root.bottle_dir(slug), machine)
        .wrap_err_with(|| {
            format!(
                "`{slug}` runs in the smolvm machine {machine}, but its launch state is unreadable"
            )
        })?;
    let cmd: Vec<&str> = command.iter().map(String::as_str).collect();
    let program = crate::backend::smolvm::cli::program();
    let status = tokio::process::Command::new(&program)
        .args(agent.exec_args(&cmd))
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .wrap_err_with(|| format!("cannot run {}", program.display()))?;
    Ok(status.code().map_or(1, i64::from))
}

pub fn logs_cmd(slug: &Slug, daemon: Option<String>, follow: bool) -> Outcome {
    let rt = runtime()?;
    rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let bundle = backend
            .list_containers(&[(label::SLUG, slug.as_str()), (label::ROLE, role::BUNDLE)])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| eyre!("no bundle for `{slug}` (see `bottle-tui ls`)"))?;
        let mut lines = backend.logs(&bundle.name, follow, None);
        let mut out = std::io::stdout().lock();
        while let Some(line) = lines.next().await {
            let line = line?;
            for text in line.text.lines() {
                if let Some(want) = &daemon {
                    let of = serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| v["daemon"].as_str().map(str::to_owned));
                    if of.as_deref() != Some(want.as_str()) {
                        continue;
                    }
                }
                // The agent's text is in these lines: nothing in them may drive the terminal.
                let safe = super::escape::json(text);
                writeln!(out, "{}", super::escape::line(&safe))
                    .wrap_err("cannot write to stdout")?;
            }
            out.flush().ok();
        }
        Ok::<(), color_eyre::Report>(())
    })?;
    Ok(())
}

pub fn kill_cmd(
    root: &StateRoot,
    slugs: Vec<Slug>,
    all: bool,
    grace: std::time::Duration,
) -> Outcome {
    let store = Store::open(&root.db_path())?;
    let rt = runtime()?;
    let results = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let slugs = if all {
            reconcile::reconcile(&backend)
                .await?
                .into_iter()
                .map(|b| b.slug)
                .collect()
        } else {
            slugs
        };
        if slugs.is_empty() {
            println!("no bottles to kill");
        } else if grace.is_zero() {
            eprintln!("killing at once: {}", kill::WHAT_IS_LOST);
        } else {
            eprintln!(
                "asking each agent to stop (up to {}s), then removing: {}",
                grace.as_secs(),
                kill::WHAT_IS_LOST
            );
        }
        let backend = &backend;
        let kills = slugs.into_iter().map(|slug| async move {
            let ending = kill::stop_agent(backend, &slug, grace).await;
            // How the agent ended outlives the bottle in the history, and what it said on
            // the way (its log goes with its container).
            let name = format!("bottle-{slug}-agent");
            let agent = backend.inspect_container(&name).await.ok().flatten();
            let said = match &agent {
                Some(_) => crate::engine::ingest::agent_status_lines(backend, &name)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!("cannot read {name}'s log before removing it: {e:#}");
                        Vec::new()
                    }),
                None => Vec::new(),
            };
            let r = kill::kill(backend, &slug, root).await;
            (slug, ending, agent, said, r)
        });
        Ok::<_, color_eyre::Report>(futures_util::future::join_all(kills).await)
    })?;
    // Requests the killed bottles left pending were closed; put them in the audit trail.
    crate::engine::approvals::sync(root, &store)?;
    let mut failed = 0;
    for (slug, ending, agent, said, result) in results {
        if let Some(e) = &ending {
            println!("{slug}: {}", e.describe(grace));
        }
        crate::engine::ingest::record_lines(&store, &slug, &said)?;
        match result {
            Ok(removed) => {
                history::record(
                    &store,
                    slug.as_str(),
                    &Happened::Killed {
                        removed: removed.len(),
                        agent_state: agent.as_ref().map(|a| a.state.into()),
                        agent_exit_code: agent.as_ref().and_then(|a| a.exit_code),
                    },
                )?;
                if removed.is_empty() {
                    println!("{slug}: nothing to remove");
                } else {
                    println!("{slug}: removed {} resources", removed.len());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("Error: {e:?}");
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::Silent(super::exit::FAILURE))
    }
}

/// `history [SLUG]`: what the store remembers, newest first.
pub fn history_cmd(
    root: &StateRoot,
    slug: Option<&Slug>,
    limit: usize,
    since: Option<std::time::Duration>,
    json: bool,
) -> Outcome {
    let store = Store::open(&root.db_path())?;
    // What the bottles did while nothing watched comes in first; without an engine, the
    // kept files still do (the agents' status changes wait for the next look).
    let rt = runtime()?;
    let ingested = rt.block_on(async {
        let backend = DockerBackend::connect().await.ok();
        crate::engine::ingest::ingest(root, &store, backend.as_ref().map(|b| b as &dyn Backend))
            .await
    });
    if let Err(e) = ingested {
        eprintln!("warning: the history may miss recent events: {e:#}");
    }
    // With --since, the newest `limit` of those that recent (not the recent of the newest).
    let mut events = store.events(
        slug.map(Slug::as_str),
        if since.is_some() {
            usize::MAX >> 1
        } else {
            limit
        },
    )?;
    if let Some(since) = since {
        let cutoff = time::OffsetDateTime::now_utc() - since;
        events.retain(|e| {
            time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| t >= cutoff)
        });
        events.truncate(limit);
    }
    if json {
        return print_json(&events);
    }
    let mut out = std::io::stdout().lock();
    if events.is_empty() {
        writeln!(out, "nothing recorded yet").ok();
    }
    for e in &events {
        // A launch error or a daemon's name can carry text from outside: one line, no escapes.
        writeln!(
            out,
            "{}  {}  {}",
            e.time,
            e.slug,
            crate::engine::approvals::one_line(&history::summary(e), 300)
        )
        .ok();
    }
    Ok(())
}
