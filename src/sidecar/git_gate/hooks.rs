//! The entry points git runs: git daemon's access hook (refuse unknown repositories, refresh
//! the mirror before a clone or fetch), the gate's pre-receive hook (the branch policy, then
//! the push forwarded upstream) and the https credential helper.

use super::events::{Decision, Event, Level, Op};
use super::git::{self, Layout, Upstream};
use super::mirror;
use super::policy::{self, History, Policy, RefUpdate, UpdateKind};
use crate::wire::git_gate::{GitGateConfig, GitGateRepo};
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long forwarding a push to the upstream may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(300);

pub fn load(path: &Path) -> Result<GitGateConfig> {
    let bytes = std::fs::read(path)
        .wrap_err_with(|| format!("cannot read the git-gate config {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .wrap_err_with(|| format!("{} is not a git-gate config", path.display()))
}

fn find<'c>(config: &'c GitGateConfig, name: &str) -> Option<&'c GitGateRepo> {
    config.repos.iter().find(|r| r.name == name)
}

fn served(config: &GitGateConfig) -> String {
    let names: Vec<String> = config
        .repos
        .iter()
        .map(|r| format!("{}.git", r.name))
        .collect();
    names.join(", ")
}

/// git daemon's `--access-hook`: `SERVICE PATH HOST CANON_HOST IP PORT`. Exit 0 lets the
/// service run; otherwise the first line of stdout is the client's error message.
pub fn access(config: &Path, args: &[String]) -> ExitCode {
    let layout = Layout::default();
    let (service, path) = match args {
        [service, path, ..] => (service.as_str(), Path::new(path)),
        _ => {
            println!("bottle git-gate: bad access-hook call");
            return ExitCode::FAILURE;
        }
    };
    let config = match load(config) {
        Ok(c) => c,
        Err(e) => {
            println!("bottle git-gate: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".git"))
        .unwrap_or_default();
    let known = find(&config, name).filter(|_| path.parent() == Some(layout.root.as_path()));
    let Some(repo) = known else {
        let reason = format!(
            "this gate serves only {} (asked for {})",
            served(&config),
            path.display()
        );
        Event::new(name, Op::Access, Decision::Deny, &reason).send();
        println!("bottle git-gate: {reason}");
        return ExitCode::FAILURE;
    };
    if service != "upload-pack" {
        // Pushes are decided by the pre-receive hook, ref by ref.
        return ExitCode::SUCCESS;
    }
    match mirror::refresh(&layout, repo) {
        Ok(()) => {
            Event::new(
                &repo.name,
                Op::Fetch,
                Decision::Allow,
                "mirror refreshed from the upstream",
            )
            .send();
            ExitCode::SUCCESS
        }
        // The upstream is down or refuses us: serve what the mirror last had, and say so.
        Err(e) if mirror::has_branches(&layout, &layout.repo_dir(&repo.name)) => {
            Event::new(
                &repo.name,
                Op::Fetch,
                Decision::Allow,
                format!("upstream unreachable, serving the mirror as last fetched: {e:#}"),
            )
            .with_level(Level::Warn)
            .send();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let reason = format!("the upstream is unreachable and there is no mirror yet: {e:#}");
            Event::new(&repo.name, Op::Fetch, Decision::Deny, &reason).send();
            // One line: git daemon sends only the first.
            println!("bottle git-gate: {}", reason.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// The gate's pre-receive hook: runs in the mirror with the pushed objects quarantined.
pub fn pre_receive(config: &Path) -> ExitCode {
    match pre_receive_inner(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bottle git-gate: push refused: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn pre_receive_inner(config: &Path) -> Result<ExitCode> {
    let layout = Layout::default();
    let config = load(config)?;
    let cwd = std::env::current_dir().wrap_err("cannot read the hook's folder")?;
    let name = cwd
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".git"))
        .unwrap_or_default()
        .to_owned();
    let repo = find(&config, &name)
        .ok_or_else(|| eyre!("{} is not a repository this gate serves", cwd.display()))?;

    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.wrap_err("cannot read the pushed refs")?;
        let update = RefUpdate::parse(&line).ok_or_else(|| {
            eyre!("refused: {line:?} is not `OLD NEW REF` with a ref name git accepts")
        })?;
        updates.push(update);
    }
    let decisions = decide_all(&layout, &cwd, repo, &updates);

    let refused: Vec<_> = decisions
        .iter()
        .filter_map(|(u, d)| d.as_ref().err().map(|r| (u, r)))
        .collect();
    if !refused.is_empty() {
        let mut err = std::io::stderr().lock();
        for (u, d) in &decisions {
            let reason = match d {
                Err(r) => r.to_string(),
                Ok(()) => "not forwarded: another ref in this push was refused".to_owned(),
            };
            if d.is_err() {
                let _ = writeln!(err, "bottle git-gate: refused {}: {reason}", u.name);
            }
            Event::new(&repo.name, Op::Push, Decision::Deny, reason)
                .with_ref(&u.name)
                .send();
        }
        return Ok(ExitCode::FAILURE);
    }
    if updates.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }

    match forward(&layout, &cwd, repo, &updates) {
        Ok(()) => {
            for u in &updates {
                Event::new(
                    &repo.name,
                    Op::Push,
                    Decision::Allow,
                    "forwarded to the upstream",
                )
                .with_ref(&u.name)
                .send();
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let reason = format!("the upstream refused the push: {e:#}");
            eprintln!("bottle git-gate: {reason}");
            for u in &updates {
                Event::new(&repo.name, Op::Push, Decision::Deny, &reason)
                    .with_ref(&u.name)
                    .send();
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Every ref of the push decided before any is forwarded.
fn decide_all<'u>(
    layout: &Layout,
    dir: &Path,
    repo: &GitGateRepo,
    updates: &'u [RefUpdate],
) -> Vec<(&'u RefUpdate, Result<(), policy::Refusal>)> {
    let policy = Policy::new(&repo.push, &repo.protect);
    updates
        .iter()
        .map(|u| {
            let history = (u.kind() == UpdateKind::Update)
                .then(|| history(layout, dir, u))
                .flatten();
            (u, policy::decide(&policy, u, history))
        })
        .collect()
}

/// Is `old` an ancestor of `new`? The quarantined objects are visible through the
/// environment receive-pack gives its hooks. `None` when git cannot tell (treated as a rewrite).
fn history(layout: &Layout, dir: &Path, u: &RefUpdate) -> Option<History> {
    let mut c = layout.git(Some(dir));
    c.args([
        "merge-base",
        "--is-ancestor",
        u.old.as_str(),
        u.new.as_str(),
    ]);
    let out = git::run(c, "compare the pushed history", Duration::from_secs(60)).ok()?;
    match out.status.code() {
        Some(0) => Some(History::FastForward),
        Some(1) => Some(History::Rewrite),
        _ => None,
    }
}

/// Pushes the accepted refs to the upstream, never forced; all at once where the upstream
/// supports atomic pushes. Its refusal comes back as the error, in git's words.
fn forward(layout: &Layout, dir: &Path, repo: &GitGateRepo, updates: &[RefUpdate]) -> Result<()> {
    let _lock = mirror::lock(layout, &repo.name)?;
    let up = Upstream::of(repo);
    let refspecs: Vec<String> = updates
        .iter()
        .map(|u| format!("{}:{}", u.new, u.name))
        .collect();
    let attempt = |atomic: bool| -> Result<std::process::Output> {
        let mut args = vec!["push", "--no-verify", "--porcelain"];
        if atomic {
            args.push("--atomic");
        }
        args.push("--");
        args.push(&up.url);
        args.extend(refspecs.iter().map(String::as_str));
        let mut c = up.git(layout, Some(dir), &args);
        // The upstream's own git (for a file:// upstream, a local process) must not inherit the
        // quarantine marker, or it would refuse to update its refs.
        c.env_remove("GIT_QUARANTINE_PATH");
        git::run(c, "push to the upstream", PUSH_TIMEOUT)
    };
    let mut out = attempt(updates.len() > 1)?;
    if !out.status.success() && git::failure(&out).contains("does not support --atomic") {
        out = attempt(false)?;
    }
    if out.status.success() {
        // The hook runs as receive-pack's child (the hook script execs us). The upstream has
        // the push: a marker that cannot be written only leaves the race open, and must not
        // tell the agent its push failed.
        if let Err(e) = mirror::mark_push(layout, &repo.name, std::os::unix::process::parent_id()) {
            Event::new(
                &repo.name,
                Op::Push,
                Decision::Allow,
                format!("forwarded, but refreshes will not wait for it: {e:#}"),
            )
            .with_level(Level::Warn)
            .send();
        }
        return Ok(());
    }
    // --porcelain puts the per-ref verdicts on stdout; the reasons are on both.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rejected: Vec<&str> = stdout.lines().filter(|l| l.starts_with('!')).collect();
    let mut msg = git::failure(&out);
    if !rejected.is_empty() {
        msg = format!("{}\n{msg}", rejected.join("\n"));
    }
    Err(eyre!("{}", git::redact_userinfo(&msg)))
}

/// `credential.helper` for an https upstream: answers `get` with the token in the identity
/// file (first line; username `x-access-token`, which GitHub and GitLab accept with a token).
pub fn credential(identity: &Path, op: &str) -> ExitCode {
    if op != "get" {
        return ExitCode::SUCCESS; // store/erase: the file is the only store
    }
    // git writes the request on stdin; drain it so git never sees a broken pipe.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let token = match std::fs::read_to_string(identity) {
        Ok(t) => t.lines().next().unwrap_or_default().trim().to_owned(),
        Err(e) => {
            eprintln!(
                "bottle git-gate: cannot read the identity {}: {e}",
                identity.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if token.is_empty() {
        eprintln!(
            "bottle git-gate: the identity {} is empty",
            identity.display()
        );
        return ExitCode::FAILURE;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "username=x-access-token\npassword={token}");
    ExitCode::SUCCESS
}
