//! prepare: config + bottle name → [`Plan`], writing the bottle's state dir. No backend call.

use super::plan::*;
use super::{ca, placeholders, render};
use crate::config::{Agent, Bottle, Config, Prompt};
use crate::fsutil;
use crate::state::StateRoot;
use crate::types::Slug;
use crate::wire::daemon::Daemon;
use color_eyre::eyre::{Result, WrapErr, eyre};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the bundle sees what the state dir holds.
pub use crate::wire::in_bundle;

pub use super::plan::in_agent;

pub const BUNDLE_IMAGE: &str = "bottle-bundle:latest";
/// Overrides [`BUNDLE_IMAGE`] (a second checkout can build and test its own bundle).
pub const BUNDLE_IMAGE_ENV: &str = "BOTTLE_TUI_BUNDLE_IMAGE";

/// The bundle image bottles run: `$BOTTLE_TUI_BUNDLE_IMAGE`, else [`BUNDLE_IMAGE`].
pub fn bundle_image() -> String {
    std::env::var(BUNDLE_IMAGE_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| BUNDLE_IMAGE.to_owned())
}

/// State-dir file names, relative to the bottle's folder.
pub mod files {
    pub const PLAN: &str = "plan.json";
    pub const PLACEHOLDERS: &str = "placeholders.json";
    pub const CA_DIR: &str = "ca";
    pub const GATEWAY: &str = "gateway.json";
    pub const PIPELOCK: &str = "pipelock.yaml";
    pub const GIT_GATE: &str = "git-gate.json";
    pub const GIT_HOOKS: &str = "git-hooks";
    pub const SUPERVISE: &str = "supervise.json";
    pub const QUEUE: &str = "queue";
    pub const SECRETS: &str = "secrets";
    pub const PROMPT: &str = "prompt.md";
    /// What the bundle's init keeps for the history (`wire::log::EVENTS_FILE`).
    pub const EVENTS: &str = "events";
}

/// Renders the bottle's state dir and returns its plan. Re-running keeps the CA and the
/// placeholders (a running bottle depends on them) and rewrites everything else.
pub fn prepare(
    config: &Config,
    bottle: &Slug,
    slug: Option<Slug>,
    root: &StateRoot,
) -> Result<Plan> {
    let def = config.bottles.get(bottle).ok_or_else(|| {
        let names: Vec<&str> = config.bottles.keys().map(Slug::as_str).collect();
        eyre!(
            "no bottle named `{bottle}` in {} (defined: {}){}",
            config.path.display(),
            names.join(", "),
            crate::config::did_you_mean(bottle.as_str(), names.iter().copied())
        )
    })?;
    let agent = config.agent_of(def);
    let slug = slug.unwrap_or_else(|| bottle.clone());
    let dir = root.bottle_dir(&slug);
    fsutil::private_dir(&dir)?;

    let vars: Vec<&str> = def
        .routes
        .iter()
        .map(|r| r.placeholder_env.as_str())
        .collect();
    let placeholders = placeholders::ensure(&dir.join(files::PLACEHOLDERS), &vars)?;
    let plan = build(config, def, agent, slug, &dir, &placeholders);

    ca::ensure(&dir.join(files::CA_DIR), plan.slug.as_str())?;
    write_state(&plan, agent, &placeholders)
        .wrap_err_with(|| format!("cannot write the state dir {}", dir.display()))?;
    Ok(plan)
}

/// The plan, computed from config alone: pure, so golden tests can pin it.
pub fn build(
    config: &Config,
    def: &Bottle,
    agent: &Agent,
    slug: Slug,
    dir: &Path,
    placeholders: &BTreeMap<String, String>,
) -> Plan {
    let name = |role: &str| format!("bottle-{slug}-{role}");
    let config_hash = config_hash(def, agent);
    let labels = BTreeMap::from([
        ("bottle.slug".to_owned(), slug.to_string()),
        ("bottle.bottle".to_owned(), def.name.to_string()),
        ("bottle.config-hash".to_owned(), config_hash.clone()),
        ("bottle.version".to_owned(), crate::VERSION.to_owned()),
    ]);

    // pipelock runs from its own pinned image, in the bundle's network namespace, listening on
    // the bundle's loopback: only the gateway reaches it.
    let pipelock = def.pipelock.enabled.then(|| PipelockPlan {
        container: name("pipelock"),
        image: def.pipelock.image.clone().unwrap_or_default(),
        mode: def.pipelock.mode,
        listen: PIPELOCK_LISTEN.to_owned(),
        config_file: dir.join(files::PIPELOCK),
    });
    let routes: Vec<RoutePlan> = def
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| RoutePlan {
            host: r.host.clone(),
            header: r.header.clone(),
            format: r.format.clone(),
            placeholder_env: r.placeholder_env.clone(),
            token_source: r.token.clone(),
            token_file: dir.join(files::SECRETS).join(format!("route-{i}.token")),
            token_file_in_bundle: PathBuf::from(format!("{}/route-{i}.token", in_bundle::SECRETS)),
        })
        .collect();
    let gateway = GatewayPlan {
        listen_port: GATEWAY_PORT,
        config_file: dir.join(files::GATEWAY),
        ca_cert: dir.join(files::CA_DIR).join(ca::CERT_FILE),
        ca_key: dir.join(files::CA_DIR).join(ca::KEY_FILE),
        allow: def.allow.clone(),
        allow_private: def.allow_private.clone(),
        intercept: def.intercept.clone(),
        upstream_ca: def.upstream_ca.clone(),
        routes,
        upstream_proxy: pipelock.as_ref().map(|p| format!("http://{}", p.listen)),
    };
    let git_gate = (!def.git.is_empty()).then(|| GitGatePlan {
        port: GIT_GATE_PORT,
        config_file: dir.join(files::GIT_GATE),
        hooks_dir: dir.join(files::GIT_HOOKS),
        upstream_ca_in_bundle: def
            .upstream_ca
            .as_ref()
            .map(|_| PathBuf::from(in_bundle::UPSTREAM_CA)),
        repos: def
            .git
            .iter()
            .map(|g| GitRepoPlan {
                name: g.name.clone(),
                upstream: g.upstream.clone(),
                upstream_in_bundle: match g.upstream.strip_prefix("file://") {
                    Some(_) => format!("file://{}/{}", in_bundle::LOCAL_UPSTREAMS, g.name),
                    None => g.upstream.clone(),
                },
                gate_url: format!("git://{GIT_GATE_HOST}/{}.git", g.name),
                identity: g.identity.clone(),
                known_hosts: g.known_hosts.clone(),
                known_hosts_in_bundle: g
                    .known_hosts
                    .as_ref()
                    .map(|_| PathBuf::from(format!("{}/{}", in_bundle::KNOWN_HOSTS, g.name))),
                identity_in_bundle: g
                    .identity
                    .as_ref()
                    .map(|_| PathBuf::from(format!("{}/{}", in_bundle::IDENTITIES, g.name))),
                push: g.push.clone(),
                protect: g.protect.clone(),
                max_push: g.max_push,
            })
            .collect(),
    });
    let supervise = def.supervise.enabled.then(|| SupervisePlan {
        port: SUPERVISE_PORT,
        url: format!("http://{SUPERVISE_HOST}:{SUPERVISE_PORT}/mcp"),
        queue_dir: dir.join(files::QUEUE),
        timeout_seconds: def.supervise.timeout.seconds,
        max_per_hour: def.supervise.max_per_hour,
    });

    let mut daemons = vec![Daemon::Gateway];
    let mut aliases = vec![GATEWAY_HOST.to_owned()];
    let mut mounts = vec![
        Mount {
            host: gateway.config_file.clone(),
            container: in_bundle::GATEWAY_CONFIG.into(),
            read_only: true,
        },
        Mount {
            host: dir.join(files::CA_DIR),
            container: in_bundle::CA_DIR.into(),
            read_only: true,
        },
        Mount {
            host: dir.join(files::EVENTS),
            container: in_bundle::EVENTS_DIR.into(),
            read_only: false,
        },
    ];
    if let Some(ca) = &gateway.upstream_ca {
        mounts.push(Mount {
            host: ca.clone(),
            container: in_bundle::UPSTREAM_CA.into(),
            read_only: true,
        });
    }
    if !gateway.routes.is_empty() {
        mounts.push(Mount {
            host: dir.join(files::SECRETS),
            container: in_bundle::SECRETS.into(),
            read_only: true,
        });
    }
    if let Some(g) = &git_gate {
        daemons.push(Daemon::GitGate);
        aliases.push(GIT_GATE_HOST.into());
        mounts.push(Mount {
            host: g.config_file.clone(),
            container: in_bundle::GIT_GATE_CONFIG.into(),
            read_only: true,
        });
        mounts.push(Mount {
            host: g.hooks_dir.clone(),
            container: in_bundle::GIT_HOOKS.into(),
            read_only: true,
        });
        for r in &g.repos {
            if let Some(local) = r.upstream.strip_prefix("file://") {
                mounts.push(Mount {
                    host: PathBuf::from(local),
                    container: PathBuf::from(format!("{}/{}", in_bundle::LOCAL_UPSTREAMS, r.name)),
                    read_only: false,
                });
            }
            if let (Some(host), Some(container)) = (&r.known_hosts, &r.known_hosts_in_bundle) {
                mounts.push(Mount {
                    host: host.clone(),
                    container: container.clone(),
                    read_only: true,
                });
            }
            if let (Some(host), Some(container)) = (&r.identity, &r.identity_in_bundle) {
                mounts.push(Mount {
                    host: host.clone(),
                    container: container.clone(),
                    read_only: true,
                });
            }
        }
    }
    if let Some(s) = &supervise {
        daemons.push(Daemon::Supervise);
        aliases.push(SUPERVISE_HOST.into());
        mounts.push(Mount {
            host: dir.join(files::SUPERVISE),
            container: in_bundle::SUPERVISE_CONFIG.into(),
            read_only: true,
        });
        mounts.push(Mount {
            host: s.queue_dir.clone(),
            container: in_bundle::QUEUE.into(),
            read_only: false,
        });
    }
    let bundle = BundlePlan {
        container: name("bundle"),
        image: bundle_image(),
        env: BTreeMap::from([
            ("BOTTLE_DAEMONS".to_owned(), Daemon::join(&daemons)),
            ("BOTTLE_SLUG".to_owned(), slug.to_string()),
        ]),
        daemons,
        aliases: aliases.clone(),
        mounts,
    };

    let agent_plan = agent_plan(
        def,
        agent,
        &slug,
        dir,
        &gateway,
        &supervise,
        placeholders,
        aliases,
        name("agent"),
    );

    Plan {
        format: PLAN_FORMAT,
        tool_version: crate::VERSION.to_owned(),
        slug: slug.clone(),
        bottle: def.name.clone(),
        backend: def.backend,
        config_path: config.path.clone(),
        config_hash,
        state_dir: dir.to_owned(),
        labels,
        network: NetworkPlan {
            internal: name("int"),
            egress: name("ext"),
        },
        bundle,
        gateway,
        pipelock,
        git_gate,
        supervise,
        agent: agent_plan,
    }
}

#[allow(clippy::too_many_arguments)]
fn agent_plan(
    def: &Bottle,
    agent: &Agent,
    slug: &Slug,
    dir: &Path,
    gateway: &GatewayPlan,
    supervise: &Option<SupervisePlan>,
    placeholders: &BTreeMap<String, String>,
    hosts: Vec<String>,
    container: String,
) -> AgentPlan {
    let proxy = format!("http://{GATEWAY_HOST}:{}", gateway.listen_port);
    let mut no_proxy = vec!["localhost", "127.0.0.1", GIT_GATE_HOST];
    if supervise.is_some() {
        no_proxy.push(SUPERVISE_HOST);
    }
    let no_proxy = no_proxy.join(",");
    let mut env: BTreeMap<String, String> = agent.env.clone();
    for (k, v) in [
        ("HTTP_PROXY", proxy.as_str()),
        ("HTTPS_PROXY", &proxy),
        ("http_proxy", &proxy),
        ("https_proxy", &proxy),
        ("NO_PROXY", &no_proxy),
        ("no_proxy", &no_proxy),
        ("NODE_EXTRA_CA_CERTS", in_agent::CA_CERT),
        ("SSL_CERT_FILE", in_agent::SYSTEM_BUNDLE),
        ("REQUESTS_CA_BUNDLE", in_agent::SYSTEM_BUNDLE),
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DO_NOT_TRACK", "1"),
        ("BOTTLE_SLUG", slug.as_str()),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    for r in &gateway.routes {
        if let Some(p) = placeholders.get(&r.placeholder_env) {
            env.insert(r.placeholder_env.clone(), p.clone());
        }
    }
    let claude = agent.is_claude_code().then(|| {
        // Claude Code 2.1 hides MCP tools behind its ToolSearch tool until the model searches;
        // the bottle exists so the agent asks before anything irreversible, so the supervise
        // tools are offered directly. Updates come with a new image, never at run time.
        if supervise.is_some() {
            env.insert("ENABLE_TOOL_SEARCH".into(), "false".into());
        }
        env.insert("DISABLE_AUTOUPDATER".into(), "1".into());
        ClaudeSeed {
            skip_permissions: agent.skips_permissions(),
            approved_key_suffix: env.get("ANTHROPIC_API_KEY").map(|k| {
                let start = k.len().saturating_sub(20);
                k.get(start..).unwrap_or(k).to_owned()
            }),
        }
    });
    // prepare copies a prompt file into the state dir too: the bottle keeps the prompt it
    // was planned with even if the file changes later. Claude Code reads ~/.claude/CLAUDE.md.
    let prompt = agent.prompt.as_ref().map(|_| Mount {
        host: dir.join(files::PROMPT),
        container: if claude.is_some() {
            in_agent::CLAUDE_MD.into()
        } else {
            in_agent::PROMPT.into()
        },
        read_only: true,
    });
    let skills = agent
        .skills
        .iter()
        .map(|s| Mount {
            host: s.clone(),
            container: Path::new(in_agent::SKILLS).join(s.file_name().unwrap_or_default()),
            read_only: true,
        })
        .collect();
    AgentPlan {
        name: agent.name.clone(),
        container,
        image: agent.image.clone(),
        command: agent.command.clone(),
        user: in_agent::USER.to_owned(),
        env,
        hosts,
        dns: vec!["127.0.0.1".to_owned()],
        prompt,
        skills,
        workspace: def.workspace.as_ref().map(|w| Mount {
            host: w.clone(),
            container: in_agent::WORKSPACE.into(),
            read_only: false,
        }),
        workdir: in_agent::WORKSPACE.into(),
        claude,
        status: crate::wire::session::StatusConfig {
            hooks: agent.is_claude_code(),
            needs_you: agent.needs_you.clone(),
            quiet_ms: agent.quiet.seconds.saturating_mul(1000),
            ..Default::default()
        },
        ca_cert_in_agent: in_agent::CA_CERT.into(),
        memory_bytes: agent.memory.0,
        pids: agent.pids,
        cpus: agent.cpus,
    }
}

/// Short, stable hash of what defines a bottle; changes when its config does.
fn config_hash(def: &Bottle, agent: &Agent) -> String {
    let json = serde_json::to_vec(&(def, agent)).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

fn write_state(plan: &Plan, agent: &Agent, placeholders: &BTreeMap<String, String>) -> Result<()> {
    let dir = &plan.state_dir;
    let gw = render::gateway::render(plan, placeholders, in_bundle::CA_DIR);
    fsutil::write(
        &plan.gateway.config_file,
        json(&gw)?.as_bytes(),
        fsutil::SECRET,
    )?;
    if !plan.gateway.routes.is_empty() {
        fsutil::private_dir(&dir.join(files::SECRETS))?;
    }

    let pipelock_file = dir.join(files::PIPELOCK);
    match render::pipelock::render(plan, placeholders) {
        Some(yaml) => fsutil::write(&pipelock_file, yaml.as_bytes(), fsutil::SECRET)?,
        None => remove_if_present(&pipelock_file)?,
    }

    if let Some(g) = &plan.git_gate {
        fsutil::write(
            &g.config_file,
            json(&render::git_gate::render(
                g,
                &render::listen_host(plan, super::plan::GIT_GATE_HOST),
            ))?
            .as_bytes(),
            fsutil::PUBLIC,
        )?;
        fsutil::private_dir(&g.hooks_dir)?;
        let hook = render::git_gate::pre_receive_hook(in_bundle::GIT_GATE_CONFIG);
        fsutil::write(
            &g.hooks_dir.join("pre-receive"),
            hook.as_bytes(),
            fsutil::EXECUTABLE,
        )?;
    }

    fsutil::private_dir(&dir.join(files::EVENTS))?;
    if let Some(s) = &plan.supervise {
        let cfg = render::supervise::render(
            s,
            in_bundle::QUEUE,
            &render::listen_host(plan, super::plan::SUPERVISE_HOST),
        );
        fsutil::write(
            &dir.join(files::SUPERVISE),
            json(&cfg)?.as_bytes(),
            fsutil::PUBLIC,
        )?;
        for sub in ["", "requests", "answers", "notices"] {
            fsutil::private_dir(&s.queue_dir.join(sub))?;
        }
    }

    let prompt_file = dir.join(files::PROMPT);
    match &agent.prompt {
        Some(Prompt::Text(text)) => fsutil::write(&prompt_file, text.as_bytes(), fsutil::PUBLIC)?,
        Some(Prompt::File(source)) => {
            let text = std::fs::read(source)
                .wrap_err_with(|| format!("cannot read the prompt file {}", source.display()))?;
            fsutil::write(&prompt_file, &text, fsutil::PUBLIC)?;
        }
        None => remove_if_present(&prompt_file)?,
    }

    fsutil::write(
        &dir.join(files::PLAN),
        json(plan)?.as_bytes(),
        fsutil::SECRET,
    )
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).wrap_err_with(|| format!("cannot remove stale {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Pretty JSON with a final newline, as every rendered file is written.
fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    let mut s = serde_json::to_string_pretty(value).wrap_err("cannot encode as JSON")?;
    s.push('\n');
    Ok(s)
}
