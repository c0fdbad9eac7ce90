use super::{Failure, Outcome, print_json};
use crate::config::{Config, TokenSource};
use crate::engine::{self, Plan};
use crate::state::StateRoot;
use crate::store::Store;
use crate::types::{ByteSize, Slug, Timeout};

pub fn run(
    config: &Config,
    root: &StateRoot,
    bottle: &Slug,
    name: Option<Slug>,
    json: bool,
) -> Outcome {
    if !config.bottles.contains_key(bottle) {
        return Err(unknown_bottle(config, bottle));
    }
    let store = Store::open(&root.db_path())?;
    let plan = engine::prepare(config, bottle, name, root)?;
    store.record(
        plan.slug.as_str(),
        "prepare",
        &serde_json::json!({ "bottle": plan.bottle, "config_hash": plan.config_hash }),
    )?;
    tracing::info!(slug = %plan.slug, bottle = %plan.bottle, "prepared");
    if json {
        print_json(&plan)
    } else {
        print!("{}", human(&plan));
        Ok(())
    }
}

pub fn unknown_bottle(config: &Config, bottle: &Slug) -> Failure {
    let names: Vec<&str> = config.bottles.keys().map(Slug::as_str).collect();
    Failure::Usage(format!(
        "no bottle named `{bottle}` in {} (defined: {}){}",
        config.path.display(),
        names.join(", "),
        crate::config::did_you_mean(bottle.as_str(), names.iter().copied())
    ))
}

fn token_source(t: &TokenSource) -> String {
    match t {
        TokenSource::Env(v) => format!("env ${v}"),
        TokenSource::File(p) => format!("file {}", p.display()),
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The plan for a human: one line per concern, nothing secret.
pub fn human(plan: &Plan) -> String {
    let mut out = Vec::new();
    let mut line = |k: &str, v: String| out.push(format!("  {k:<13} {v}"));
    line(
        "config",
        format!("{} (hash {})", plan.config_path.display(), plan.config_hash),
    );
    line("state dir", plan.state_dir.display().to_string());
    line(
        "networks",
        format!(
            "{} (internal), {} (egress)",
            plan.network.internal, plan.network.egress
        ),
    );
    line(
        "bundle",
        format!(
            "{} from {}: {}",
            plan.bundle.container,
            plan.bundle.image,
            plan.bundle
                .daemons
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let g = &plan.gateway;
    line(
        "gateway",
        format!(
            "{}:{} allow {}",
            crate::engine::plan::GATEWAY_HOST,
            g.listen_port,
            join(&g.allow)
        ),
    );
    line("", format!("allow_private {}", join(&g.allow_private)));
    for r in &g.routes {
        line(
            "",
            format!(
                "route {}: {}: {} with ${} swapped for the token from {}",
                r.host,
                r.header,
                r.format,
                r.placeholder_env,
                token_source(&r.token_source)
            ),
        );
    }
    match &plan.pipelock {
        Some(p) => line(
            "pipelock",
            format!("{} ({} mode) at {}", p.image, p.mode.as_str(), p.listen),
        ),
        None => line("pipelock", "off".into()),
    }
    match &plan.git_gate {
        Some(gg) => {
            for r in &gg.repos {
                line(
                    "git-gate",
                    format!(
                        "{} → {} (push {}; protect {})",
                        r.upstream,
                        r.gate_url,
                        join(&r.push),
                        join(&r.protect)
                    ),
                );
            }
        }
        None => line("git-gate", "off (no [[git]] upstreams)".into()),
    }
    match &plan.supervise {
        Some(s) => line(
            "supervise",
            format!(
                "{} (approvals time out after {})",
                s.url,
                Timeout {
                    seconds: s.timeout_seconds
                }
            ),
        ),
        None => line("supervise", "off".into()),
    }
    let a = &plan.agent;
    line(
        "agent",
        format!(
            "{} as {}: {} from {}",
            a.container,
            a.user,
            a.command.join(" "),
            a.image
        ),
    );
    line(
        "",
        format!(
            "memory {}, pids {}{}",
            ByteSize(a.memory_bytes),
            a.pids,
            a.cpus.map(|c| format!(", cpus {c}")).unwrap_or_default()
        ),
    );
    if let Some(w) = &a.workspace {
        line(
            "",
            format!("workspace {} → {}", w.host.display(), w.container.display()),
        );
    }
    format!(
        "plan for bottle {} (slug {}, backend {}); nothing was started\n{}\n",
        plan.bottle,
        plan.slug,
        plan.backend,
        out.join("\n")
    )
}
