//! TOML text → validated [`Config`]. Reports every problem it finds, each with its location.

use super::error::{ConfigError, ConfigErrors, did_you_mean};
use super::keys;
use super::model::*;
use super::paths::{check_dir, check_readable_file, resolve};
use super::reader::{Diags, Table, Value};
use super::source::Source;
use crate::types::{
    BackendKind, ByteSize, HostPattern, KeySpec, PrivateTarget, Slug, Timeout, is_env_name,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub const BUILTIN_AGENT: &str = "claude";
pub const DEFAULT_AGENT_IMAGE: &str = "bottle-agent:latest";
pub const DEFAULT_COMMAND: &[&str] = &["claude", "--dangerously-skip-permissions"];
pub const DEFAULT_MEMORY: ByteSize = ByteSize(4 << 30);
pub const DEFAULT_PIDS: u32 = 512;
pub const DEFAULT_PUSH: &[&str] = &["bottle/*"];
pub const DEFAULT_PROTECT: &[&str] = &["main", "master"];
/// The largest pack one push may send to the gate: a bound on what an agent can write to the
/// bundle's disk per push.
pub const DEFAULT_MAX_PUSH: ByteSize = ByteSize(crate::wire::git_gate::DEFAULT_MAX_PUSH);
pub const DEFAULT_SUPERVISE_TIMEOUT: Timeout = Timeout { seconds: 600 };
/// Approval requests one bottle may file in an hour (withdrawn ones count).
pub const DEFAULT_MAX_PER_HOUR: u32 = crate::wire::supervise::DEFAULT_MAX_PER_HOUR;

const TOP_KEYS: &[&str] = &[
    "defaults",
    "agents",
    "bottles",
    "keys",
    "dashboard",
    "notify",
];
const NOTIFY_KEYS: &[&str] = &["command"];
/// How long an agent without hooks is quiet before it counts as no longer working.
pub const DEFAULT_QUIET: Timeout = Timeout { seconds: 2 };
const DASHBOARD_KEYS: &[&str] = &["bell"];
const DEFAULTS_KEYS: &[&str] = &["backend", "agent"];
const AGENT_KEYS: &[&str] = &[
    "image",
    "command",
    "env",
    "prompt",
    "prompt_file",
    "skills",
    "memory",
    "pids",
    "cpus",
    "claude_code",
    "needs_you",
    "quiet",
];
const BOTTLE_KEYS: &[&str] = &[
    "agent",
    "backend",
    "workspace",
    "allow",
    "allow_private",
    "intercept",
    "upstream_ca",
    "routes",
    "git",
    "supervise",
    "pipelock",
];
const ROUTE_KEYS: &[&str] = &[
    "host",
    "header",
    "format",
    "placeholder_env",
    "token_env",
    "token_file",
];
const GIT_KEYS: &[&str] = &[
    "name",
    "upstream",
    "identity",
    "known_hosts",
    "push",
    "protect",
    "max_push",
];
const SUPERVISE_KEYS: &[&str] = &["enabled", "timeout", "max_per_hour"];
const PIPELOCK_KEYS: &[&str] = &["enabled", "image", "mode"];

pub fn parse(source: &Source) -> Result<Config, ConfigErrors> {
    let root = match DeTable::parse(&source.text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = source.line_col(span.start);
            // Name the offending text when it is a short single-line snippet (e.g. the key).
            let snippet = source
                .text
                .get(span.clone())
                .filter(|s| !s.is_empty() && s.len() <= 60 && !s.contains('\n'))
                .map(|s| format!(" at `{s}`"))
                .unwrap_or_default();
            return Err(ConfigErrors(vec![ConfigError {
                path: source.path.clone(),
                line,
                column,
                key: None,
                message: format!("invalid TOML: {}{snippet}", e.message().trim_end()),
            }]));
        }
    };
    let span = root.span();
    let root: Value<'_> = Spanned::new(span, DeValue::Table(root.into_inner()));
    // Errors name the path as the user wrote it; the model holds it absolute.
    let path = std::path::absolute(&source.path).unwrap_or_else(|_| source.path.clone());
    let dir = path
        .parent()
        .map_or_else(|| Path::new("/").to_owned(), Path::to_owned);
    let mut d = Diags::new(source);
    let config = Parser { dir: &dir }.config(&mut d, &root);
    let mut errors = d.errors;
    match config {
        Some(c) if errors.is_empty() => Ok(Config { path, dir, ..c }),
        _ => {
            errors.sort_by_key(|e| (e.line, e.column));
            errors.dedup();
            Err(ConfigErrors(errors))
        }
    }
}

struct Parser<'p> {
    dir: &'p Path,
}

impl Parser<'_> {
    fn config(&self, d: &mut Diags<'_>, root: &Value<'_>) -> Option<Config> {
        let top = Table::open(d, String::new(), root, Some(TOP_KEYS))?;

        let defaults_table = top.sub_table(d, "defaults", Some(DEFAULTS_KEYS));
        let backend = defaults_table
            .as_ref()
            .and_then(|t| backend_key(d, t))
            .unwrap_or(BackendKind::Docker);

        let mut agents = BTreeMap::new();
        agents.insert(slug(BUILTIN_AGENT), builtin_agent());
        if let Some(table) = top.sub_table(d, "agents", None) {
            for (name, key_span, value) in table.entries() {
                let Some(name) = name_key(d, &table, name, &key_span) else {
                    continue;
                };
                let path = table.key_path(name.as_str());
                if let Some(t) = Table::open(d, path, value, Some(AGENT_KEYS)) {
                    let agent = self.agent(d, &t, name.clone());
                    agents.insert(name, agent);
                }
            }
        }

        let default_agent = match defaults_table.as_ref().and_then(|t| t.str(d, "agent")) {
            Some((name, span)) => agent_ref(d, &agents, name, &span, "defaults.agent")
                .unwrap_or_else(|| slug(BUILTIN_AGENT)),
            None => slug(BUILTIN_AGENT),
        };

        let mut bottles = BTreeMap::new();
        match top.sub_table(d, "bottles", None) {
            Some(table) => {
                for (name, key_span, value) in table.entries() {
                    let Some(name) = name_key(d, &table, name, &key_span) else {
                        continue;
                    };
                    let path = table.key_path(name.as_str());
                    if let Some(t) = Table::open(d, path, value, Some(BOTTLE_KEYS)) {
                        if let Some(b) =
                            self.bottle(d, &t, name.clone(), &agents, &default_agent, backend)
                        {
                            bottles.insert(name, b);
                        }
                    }
                }
                if table.entries().next().is_none() {
                    d.error(
                        &table.span,
                        "bottles",
                        "no bottles defined; add a [bottles.NAME] table",
                    );
                }
            }
            None => d.error(
                &(0..0),
                "bottles",
                "no bottles defined; add a [bottles.NAME] table",
            ),
        }

        let keys = top
            .sub_table(d, "keys", Some(&keys::action_names().collect::<Vec<_>>()))
            .map(|t| key_bindings(d, &t))
            .unwrap_or_default();
        let dashboard = top
            .sub_table(d, "dashboard", Some(DASHBOARD_KEYS))
            .map(|t| Dashboard {
                bell: t.bool(d, "bell").unwrap_or(true),
            })
            .unwrap_or_default();
        let notify = top
            .sub_table(d, "notify", Some(NOTIFY_KEYS))
            .map(|t| Notify {
                command: match t.str_list(d, "command") {
                    Some(items) if items.is_empty() => {
                        d.error(
                            &t.span_of("command"),
                            &t.key_path("command"),
                            "expected at least one word (the program to run), or no `command`",
                        );
                        Vec::new()
                    }
                    Some(items) => items.into_iter().map(|(s, _)| s.to_owned()).collect(),
                    None => Vec::new(),
                },
            })
            .unwrap_or_default();

        Some(Config {
            path: Default::default(),
            dir: Default::default(),
            defaults: Defaults {
                backend,
                agent: default_agent,
            },
            agents,
            bottles,
            keys,
            dashboard,
            notify,
        })
    }

    fn agent(&self, d: &mut Diags<'_>, t: &Table<'_, '_>, name: Slug) -> Agent {
        let builtin = builtin_agent();
        let image = t.parsed(d, "image", image_ref).unwrap_or(builtin.image);
        let command = match t.str_list(d, "command") {
            Some(items) if items.is_empty() => {
                d.error(
                    &t.span_of("command"),
                    &t.key_path("command"),
                    "expected at least one word (the program to run)",
                );
                builtin.command
            }
            Some(items) => items.into_iter().map(|(s, _)| s.to_owned()).collect(),
            None => builtin.command,
        };
        let env = t
            .sub_table(d, "env", None)
            .map(|env| env_map(d, &env))
            .unwrap_or_default();
        let prompt = match (t.has("prompt"), t.has("prompt_file")) {
            (true, true) => {
                d.error(
                    &t.span_of("prompt_file"),
                    &t.key_path("prompt_file"),
                    "set either `prompt` or `prompt_file`, not both",
                );
                None
            }
            (true, false) => t.str(d, "prompt").map(|(s, _)| Prompt::Text(s.to_owned())),
            (false, true) => t
                .parsed(d, "prompt_file", |s| {
                    let p = resolve(self.dir, s);
                    check_readable_file(&p).map(|()| p)
                })
                .map(Prompt::File),
            (false, false) => None,
        };
        let skills = t
            .parsed_list(d, "skills", |s| {
                let p = resolve(self.dir, s);
                check_dir(&p).map(|()| p)
            })
            .unwrap_or_default();
        let memory = t
            .parsed_as(d, "memory", ByteSize::FORMAT, |s| {
                let size = ByteSize::parse(s)?;
                if size.0 < 64 << 20 {
                    return Err(format!("`{s}` is too small: an agent needs at least 64m"));
                }
                Ok(size)
            })
            .unwrap_or(DEFAULT_MEMORY);
        let pids = t
            .int(d, "pids", 16..65_536)
            .map_or(DEFAULT_PIDS, |n| n as u32);
        let cpus = t.float(d, "cpus").and_then(|c| {
            if c > 0.0 && c <= 1024.0 {
                Some(c)
            } else {
                d.error(
                    &t.span_of("cpus"),
                    &t.key_path("cpus"),
                    "expected a number of CPUs greater than 0",
                );
                None
            }
        });
        let claude_code = t.bool(d, "claude_code");
        let needs_you = t
            .str_list(d, "needs_you")
            .map(|items| {
                items
                    .into_iter()
                    .filter_map(|(s, span)| {
                        if s.trim().is_empty() {
                            d.error(
                                &span,
                                &t.key_path("needs_you"),
                                "expected text to look for, not an empty string",
                            );
                            None
                        } else {
                            Some(s.to_owned())
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let quiet = t
            .parsed_as(d, "quiet", Timeout::FORMAT, Timeout::parse)
            .unwrap_or(DEFAULT_QUIET);
        Agent {
            name,
            image,
            command,
            env,
            prompt,
            skills,
            memory,
            pids,
            cpus,
            claude_code,
            needs_you,
            quiet,
        }
    }

    fn bottle(
        &self,
        d: &mut Diags<'_>,
        t: &Table<'_, '_>,
        name: Slug,
        agents: &BTreeMap<Slug, Agent>,
        default_agent: &Slug,
        default_backend: BackendKind,
    ) -> Option<Bottle> {
        let agent = match t.str(d, "agent") {
            // On an unknown agent keep checking the rest; the error already fails the load.
            Some((a, span)) => agent_ref(d, agents, a, &span, &t.key_path("agent"))
                .unwrap_or_else(|| default_agent.clone()),
            None => default_agent.clone(),
        };
        let backend = backend_key(d, t).unwrap_or(default_backend);
        let workspace = t.parsed(d, "workspace", |s| {
            let p = resolve(self.dir, s);
            check_dir(&p).map(|()| p)
        });
        let allow = t
            .parsed_list(d, "allow", HostPattern::parse)
            .unwrap_or_default();
        let allow_private = t
            .parsed_list(d, "allow_private", PrivateTarget::parse)
            .unwrap_or_default();
        // A private CA the gateway trusts for upstream TLS (a service reached via allow_private).
        let upstream_ca = t.parsed(d, "upstream_ca", |s| {
            let p = resolve(self.dir, s);
            check_readable_file(&p).map(|()| p)
        });
        // Hosts to open up (TLS interception without a credential), so the gateway can see
        // and block a placeholder inside their traffic. Each must be allowed in the first place.
        let intercept = t
            .parsed_list(d, "intercept", |s| {
                let p = HostPattern::parse(s)?;
                match p.exact() {
                    Some(h) if allow.iter().any(|a| a.matches(h)) => Ok(p),
                    Some(h) => Err(format!(
                        "`{h}` is not in the allow list; only allowed hosts can be intercepted"
                    )),
                    None if allow.contains(&p) => Ok(p),
                    None => Err(format!(
                        "`{p}` is not in the allow list; only allowed hosts can be intercepted"
                    )),
                }
            })
            .unwrap_or_default();
        let agent_env = agents.get(&agent).map(|a| &a.env);

        let mut routes: Vec<Route> = Vec::new();
        // Duplicates are found on the raw names, so they are reported together with whatever
        // else is wrong in the same tables (one run shows every error).
        let mut route_hosts = std::collections::BTreeSet::new();
        for rt in t.table_list(d, "routes", ROUTE_KEYS) {
            let duplicate = rt.peek_str("host").is_some_and(|h| !route_hosts.insert(h));
            if duplicate {
                d.error(
                    &rt.span_of("host"),
                    &rt.key_path("host"),
                    format!(
                        "duplicate route for `{}`; one route per host",
                        rt.peek_str("host").unwrap_or_default()
                    ),
                );
            }
            if let Some(route) = self.route(d, &rt, &allow).filter(|_| !duplicate) {
                if routes
                    .iter()
                    .any(|r| r.placeholder_env == route.placeholder_env)
                {
                    d.error(
                        &rt.span_of("placeholder_env"),
                        &rt.key_path("placeholder_env"),
                        format!(
                            "`{}` is already the placeholder of another route",
                            route.placeholder_env
                        ),
                    );
                } else if agent_env.is_some_and(|env| env.contains_key(&route.placeholder_env)) {
                    d.error(
                        &rt.span_of("placeholder_env"),
                        &rt.key_path("placeholder_env"),
                        format!(
                            "`{}` is also set in agents.{agent}.env; the placeholder must own it",
                            route.placeholder_env
                        ),
                    );
                } else {
                    routes.push(route);
                }
            }
        }

        let mut git: Vec<GitUpstream> = Vec::new();
        let mut git_names = std::collections::BTreeSet::new();
        for gt in t.table_list(d, "git", GIT_KEYS) {
            let duplicate = gt.peek_str("name").is_some_and(|n| !git_names.insert(n));
            if duplicate {
                d.error(
                    &gt.span_of("name"),
                    &gt.key_path("name"),
                    format!(
                        "duplicate git upstream name `{}`",
                        gt.peek_str("name").unwrap_or_default()
                    ),
                );
            }
            if let Some(up) = self.git(d, &gt).filter(|_| !duplicate) {
                git.push(up);
            }
        }

        let supervise = match t.sub_table(d, "supervise", Some(SUPERVISE_KEYS)) {
            Some(st) => Supervise {
                enabled: st.bool(d, "enabled").unwrap_or(true),
                timeout: st
                    .parsed_as(d, "timeout", Timeout::FORMAT, Timeout::parse)
                    .unwrap_or(DEFAULT_SUPERVISE_TIMEOUT),
                max_per_hour: st
                    .int(d, "max_per_hour", 1..100_001)
                    .map_or(DEFAULT_MAX_PER_HOUR, |n| n as u32),
            },
            None => Supervise {
                enabled: true,
                timeout: DEFAULT_SUPERVISE_TIMEOUT,
                max_per_hour: DEFAULT_MAX_PER_HOUR,
            },
        };

        let pipelock = match t.sub_table(d, "pipelock", Some(PIPELOCK_KEYS)) {
            Some(pt) => self.pipelock(d, &pt, &allow),
            None => Pipelock {
                enabled: false,
                image: None,
                mode: PipelockMode::Balanced,
            },
        };

        Some(Bottle {
            name,
            agent,
            backend,
            workspace,
            allow,
            allow_private,
            intercept,
            upstream_ca,
            routes,
            git,
            supervise,
            pipelock,
        })
    }

    fn route(&self, d: &mut Diags<'_>, t: &Table<'_, '_>, allow: &[HostPattern]) -> Option<Route> {
        let host = match t.parsed(d, "host", HostPattern::parse) {
            Some(p) => {
                match p.exact() {
                    Some(h) if allow.iter().any(|a| a.matches(h)) => Some(h.to_owned()),
                    Some(h) => {
                        let bottle = t.path.rsplit_once(".routes").map_or("", |(b, _)| b);
                        d.error(
                        &t.span_of("host"),
                        &t.key_path("host"),
                        format!("route host `{h}` is not in the allow list; add it to {bottle}.allow"),
                    );
                        None
                    }
                    None => {
                        d.error(
                            &t.span_of("host"),
                            &t.key_path("host"),
                            "a route names one exact host, not a wildcard",
                        );
                        None
                    }
                }
            }
            None => {
                if !t.has("host") {
                    t.missing(d, "host", "the host name the credential is for");
                }
                None
            }
        };
        let header = t
            .parsed(d, "header", |s| {
                if !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    Ok(s.to_owned())
                } else {
                    Err(format!("`{s}` is not an HTTP header name"))
                }
            })
            .unwrap_or_else(|| "Authorization".into());
        let format = t
            .parsed(d, "format", |s| {
                if s.matches("{token}").count() != 1 {
                    Err(format!(
                        "`{s}` must contain `{{token}}` exactly once, as in \"Bearer {{token}}\""
                    ))
                } else if s.contains(['\r', '\n']) {
                    Err("the header value may not contain line breaks".into())
                } else {
                    Ok(s.to_owned())
                }
            })
            .unwrap_or_else(|| "Bearer {token}".into());
        let env_name = |s: &str| {
            if is_env_name(s) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "`{s}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                ))
            }
        };
        let token = match (t.has("token_env"), t.has("token_file")) {
            (true, true) => {
                d.error(
                    &t.span_of("token_file"),
                    &t.key_path("token_file"),
                    "set either `token_env` or `token_file`, not both",
                );
                None
            }
            (true, false) => t.parsed(d, "token_env", env_name).map(TokenSource::Env),
            (false, true) => t
                .parsed(d, "token_file", |s| Ok(resolve(self.dir, s)))
                .map(TokenSource::File),
            (false, false) => {
                t.missing(
                    d,
                    "token_env",
                    "`token_env` or `token_file`: where launch reads the real token",
                );
                None
            }
        };
        let placeholder_env = match t.parsed(d, "placeholder_env", env_name) {
            Some(p) => Some(p),
            None if t.has("placeholder_env") => None,
            None => match &token {
                Some(TokenSource::Env(name)) => Some(name.clone()),
                _ => {
                    t.missing(
                        d,
                        "placeholder_env",
                        "the variable the agent reads its placeholder credential from",
                    );
                    None
                }
            },
        };
        Some(Route {
            host: host?,
            header,
            format,
            placeholder_env: placeholder_env?,
            token: token?,
        })
    }

    fn git(&self, d: &mut Diags<'_>, t: &Table<'_, '_>) -> Option<GitUpstream> {
        let name = t.parsed(d, "name", Slug::parse);
        if !t.has("name") {
            t.missing(
                d,
                "name",
                "a repository name; it is served as git://git-gate/NAME.git",
            );
        }
        let upstream = t.parsed(d, "upstream", |s| git_url(self.dir, s));
        if !t.has("upstream") {
            t.missing(d, "upstream", "an ssh, https or file:// URL");
        }
        let identity = t.parsed(d, "identity", |s| {
            let p = resolve(self.dir, s);
            check_readable_file(&p).map(|()| p)
        });
        let known_hosts = t.parsed(d, "known_hosts", |s| {
            let p = resolve(self.dir, s);
            check_readable_file(&p).map(|()| p)
        });
        if let Some((url, kind)) = &upstream {
            if *kind != UrlKind::Ssh && t.has("known_hosts") {
                t.invalid(
                    d,
                    "known_hosts",
                    &format!("pins ssh host keys, but `{url}` is not an ssh upstream"),
                );
            }
            if *kind == UrlKind::Ssh && !t.has("identity") {
                t.missing(d, "identity", &format!("an identity file: `{url}` is an ssh upstream and the gate needs a key for it"));
            }
        }
        let push = t
            .parsed_list(d, "push", branch_pattern)
            .unwrap_or_else(|| DEFAULT_PUSH.iter().map(|s| s.to_string()).collect());
        let protect = t
            .parsed_list(d, "protect", branch_pattern)
            .unwrap_or_else(|| DEFAULT_PROTECT.iter().map(|s| s.to_string()).collect());
        let max_push = t
            .parsed_as(d, "max_push", ByteSize::FORMAT, |s| {
                let size = ByteSize::parse(s)?;
                if size.0 < 1 << 10 {
                    return Err(format!("`{s}` is too small: a push needs at least 1k"));
                }
                Ok(size)
            })
            .unwrap_or(DEFAULT_MAX_PUSH);
        Some(GitUpstream {
            name: name?,
            upstream: upstream?.0,
            identity,
            known_hosts,
            push,
            protect,
            max_push,
        })
    }

    fn pipelock(&self, d: &mut Diags<'_>, t: &Table<'_, '_>, allow: &[HostPattern]) -> Pipelock {
        let enabled = t.bool(d, "enabled").unwrap_or(false);
        let image = t.parsed(d, "image", |s| {
            let r = image_ref(s)?;
            if is_pinned(&r) {
                Ok(r)
            } else {
                Err(format!("`{s}` is not pinned; name an exact version tag or an @sha256: digest (pipelock's schema changes between versions)"))
            }
        });
        if enabled && !t.has("image") {
            t.missing(d, "image", "a pinned pipelock image reference, such as \"ghcr.io/luckypipewrench/pipelock:v2.3.0\"");
        }
        let mode = match t.str(d, "mode") {
            Some((s, span)) => PipelockMode::parse(s).or_else(|| {
                d.error(
                    &span,
                    &t.key_path("mode"),
                    format!(
                        "`{s}` is not a mode (expected one of: strict, balanced, audit){}",
                        did_you_mean(s, PipelockMode::NAMES.iter().copied())
                    ),
                );
                None
            }),
            None => None,
        }
        .unwrap_or(PipelockMode::Balanced);
        if enabled && mode == PipelockMode::Strict && allow.is_empty() {
            d.error(&t.span_of("mode"), &t.key_path("mode"), "strict mode needs at least one host in the bottle's allow list (pipelock refuses to start without one)");
        }
        Pipelock {
            enabled,
            image,
            mode,
        }
    }
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap_or_else(|e| unreachable!("built-in name: {e}"))
}

fn builtin_agent() -> Agent {
    Agent {
        name: slug(BUILTIN_AGENT),
        image: DEFAULT_AGENT_IMAGE.into(),
        command: DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        prompt: None,
        skills: Vec::new(),
        memory: DEFAULT_MEMORY,
        pids: DEFAULT_PIDS,
        cpus: None,
        claude_code: None,
        needs_you: Vec::new(),
        quiet: DEFAULT_QUIET,
    }
}

fn name_key(
    d: &mut Diags<'_>,
    table: &Table<'_, '_>,
    name: &str,
    span: &Range<usize>,
) -> Option<Slug> {
    Slug::parse(name)
        .map_err(|e| d.error(span, &table.key_path(name), e))
        .ok()
}

fn agent_ref(
    d: &mut Diags<'_>,
    agents: &BTreeMap<Slug, Agent>,
    name: &str,
    span: &Range<usize>,
    key: &str,
) -> Option<Slug> {
    match Slug::parse(name) {
        Ok(s) if agents.contains_key(&s) => Some(s),
        _ => {
            let defined: Vec<&str> = agents.keys().map(Slug::as_str).collect();
            d.error(
                span,
                key,
                format!(
                    "unknown agent `{name}` (defined: {}){}",
                    defined.join(", "),
                    did_you_mean(name, defined.iter().copied())
                ),
            );
            None
        }
    }
}

fn backend_key(d: &mut Diags<'_>, t: &Table<'_, '_>) -> Option<BackendKind> {
    let (s, span) = t.str(d, "backend")?;
    BackendKind::parse(s).or_else(|| {
        d.error(
            &span,
            &t.key_path("backend"),
            format!(
                "`{s}` is not a backend (expected one of: docker, smolvm){}",
                did_you_mean(s, BackendKind::NAMES.iter().copied())
            ),
        );
        None
    })
}

fn env_map(d: &mut Diags<'_>, t: &Table<'_, '_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, key_span, v) in t.entries() {
        if !is_env_name(k) {
            d.error(
                &key_span,
                &t.key_path(k),
                format!("`{k}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            );
            continue;
        }
        match v.get_ref() {
            DeValue::String(s) => {
                out.insert(k.to_owned(), s.to_string());
            }
            other => d.error(
                &v.span(),
                &t.key_path(k),
                format!(
                    "expected a string, found {}",
                    super::reader::type_name(other)
                ),
            ),
        }
    }
    out
}

/// `[keys]`: the actions remapped, each to one key. Within a view (a key context) no two
/// actions may share a key, counting the defaults of those not remapped.
fn key_bindings(d: &mut Diags<'_>, t: &Table<'_, '_>) -> BTreeMap<String, KeySpec> {
    let mut remapped = BTreeMap::new();
    for name in keys::action_names() {
        if let Some(k) = t.parsed_as(d, name, KeySpec::FORMAT, KeySpec::parse) {
            remapped.insert(name.to_owned(), k);
        }
    }
    // One error per remapped key, naming the action that already has it.
    let mut reported: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for context in keys::Context::ALL {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for row in keys::ROWS.iter().filter(|r| r.contexts.contains(&context)) {
            for k in effective_keys(row, &remapped) {
                let Some(other) = seen.insert(k.clone(), row.name) else {
                    continue;
                };
                // Blame the remap: of the two, the one the file names.
                let (blamed, holder) = if remapped.contains_key(row.name) {
                    (row.name, other)
                } else {
                    (other, row.name)
                };
                if reported.insert(blamed) {
                    d.error(
                        &t.span_of(blamed),
                        &t.key_path(blamed),
                        format!(
                            "`{k}` is already bound to `{holder}` in the {} view; remap `{holder}` too",
                            context.title()
                        ),
                    );
                }
            }
        }
    }
    remapped
}

/// The keys a row answers to: its remap, else its defaults.
pub(super) fn effective_keys(row: &keys::Row, remapped: &BTreeMap<String, KeySpec>) -> Vec<String> {
    match remapped.get(row.name) {
        Some(k) => vec![k.to_string()],
        None => row
            .keys
            .iter()
            .map(|k| {
                KeySpec::parse(k)
                    .unwrap_or_else(|e| unreachable!("built-in key: {e}"))
                    .to_string()
            })
            .collect(),
    }
}

fn image_ref(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_ascii_uppercase() && !s.contains('@'))
    {
        return Err(format!(
            "`{s}` is not an image reference (expected something like \"bottle-agent:latest\")"
        ));
    }
    Ok(s.to_owned())
}

fn is_pinned(reference: &str) -> bool {
    if reference.contains("@sha256:") {
        return true;
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    matches!(last.split_once(':'), Some((_, tag)) if !tag.is_empty() && tag != "latest")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlKind {
    Ssh,
    Https,
    File,
}

fn git_url(dir: &Path, s: &str) -> Result<(String, UrlKind), String> {
    if let Some(rest) = s.strip_prefix("file://") {
        let p = resolve(dir, rest);
        check_dir(&p)?;
        return Ok((format!("file://{}", p.display()), UrlKind::File));
    }
    if s.starts_with("http://") || s.starts_with("git://") {
        return Err(format!(
            "`{s}` is unencrypted; use an https:// or ssh upstream"
        ));
    }
    if let Some((scheme, rest)) = s.split_once("://") {
        // A password in the URL would reach the agent (its insteadOf rewrite names the URL)
        // and git's argv; the token belongs in an identity file.
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Err(format!(
                    "`{scheme}://***@{host}/...` has a password in the URL; put the token in a file and set `identity` to it (the URL is shown to the agent)"
                ));
            }
        }
    }
    if let Some(rest) = s.strip_prefix("https://") {
        return if rest.contains('/') && !rest.starts_with('/') {
            Ok((s.to_owned(), UrlKind::Https))
        } else {
            Err(format!("`{s}` has no repository path"))
        };
    }
    if let Some(rest) = s.strip_prefix("ssh://") {
        return if rest.contains('/') && !rest.starts_with('/') {
            Ok((s.to_owned(), UrlKind::Ssh))
        } else {
            Err(format!("`{s}` has no repository path"))
        };
    }
    // scp-like: user@host:path
    match s.split_once(':') {
        Some((host, path))
            if !host.is_empty()
                && !path.is_empty()
                && !host.contains('/')
                && !s.contains("://") =>
        {
            Ok((s.to_owned(), UrlKind::Ssh))
        }
        _ => Err(format!(
            "`{s}` is not a git URL (expected ssh like \"git@github.com:me/web.git\", https://... or file:///path)"
        )),
    }
}

fn branch_pattern(s: &str) -> Result<String, String> {
    let ok_chars = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/*-".contains(c));
    if !ok_chars
        || s.contains("..")
        || s.starts_with(['/', '-'])
        || s.ends_with('/')
        || s.ends_with(".lock")
        || s.starts_with("refs/")
    {
        return Err(format!(
            "`{s}` is not a branch pattern (expected a branch name, `*` matching any characters, such as \"bottle/*\")"
        ));
    }
    Ok(s.to_owned())
}

/// Names used in a bottle (for `did you mean` on the CLI side).
pub fn bottle_names(config: &Config) -> BTreeSet<&str> {
    config.bottles.keys().map(Slug::as_str).collect()
}
