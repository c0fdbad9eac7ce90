//! The gate's bare mirror of each upstream: created empty at start, refreshed from the
//! upstream on start and before every clone or fetch. Bare repositories never check anything
//! out, so no filter or attribute an agent commits ever runs here.

use super::git::{self, Layout, Upstream};
use crate::wire::git_gate::GitGateRepo;
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use nix::fcntl::{Flock, FlockArg};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// How long one fetch from the upstream may take before the gate gives up on it.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// A local git in the mirror (or nowhere), bounded by a short timeout.
fn local(layout: &Layout, dir: Option<&Path>, args: &[&str], what: &str) -> Result<Output> {
    let mut c = layout.git(dir);
    c.args(args);
    git::run(c, what, Duration::from_secs(30))
}

/// Creates `NAME.git` if missing, with the gate's settings in its own config as well (a second
/// line: the command-line scope set by [`Layout::isolate`] wins anyway).
pub fn ensure(layout: &Layout, repo: &GitGateRepo) -> Result<()> {
    let dir = layout.repo_dir(&repo.name);
    if !dir.join("HEAD").exists() {
        // No template: no sample hooks folder, nothing but what git needs.
        let out = git::run(
            {
                let mut c = layout.git(None);
                c.args(["init", "--bare", "--quiet", "--template="])
                    .arg(&dir);
                c
            },
            "create the mirror",
            Duration::from_secs(30),
        )?;
        if !out.status.success() {
            bail!(
                "cannot create the mirror {}: {}",
                dir.display(),
                git::failure(&out)
            );
        }
    }
    // Per repository, so not at command-line scope: receive-pack reads it from the mirror.
    // Over the limit, index-pack stops reading and receive-pack drops its quarantine.
    let per_repo = [("receive.maxInputSize", repo.max_push.to_string())];
    for (k, v) in layout.gate_config().into_iter().chain(per_repo) {
        let out = local(
            layout,
            Some(&dir),
            &["config", "--local", "--replace-all", k, &v],
            "configure the mirror",
        )?;
        if !out.status.success() {
            bail!(
                "cannot set {k} on {}: {}",
                dir.display(),
                git::failure(&out)
            );
        }
    }
    Ok(())
}

/// An exclusive lock on one repository: fetches and forwarded pushes never overlap.
pub fn lock(layout: &Layout, name: &str) -> Result<Flock<std::fs::File>> {
    let path = layout.lock_file(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .wrap_err_with(|| format!("cannot open the lock {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| eyre!("cannot lock {}: {e}", path.display()))
}

/// How long a refresh waits for pushes in flight before fetching anyway (a push whose
/// receive-pack hangs must not stop every clone).
const PUSH_WAIT: Duration = Duration::from_secs(30);

/// Records, while the caller holds the repository's lock, that a push was forwarded upstream
/// and that `receive_pack` (its pid) has yet to move the mirror's refs. receive-pack updates
/// them only after the pre-receive hook returns and checks each ref's old value; a refresh
/// fetching the upstream's new value in between would fail the agent's push although the
/// upstream took it. The marker is done when that process is gone.
pub fn mark_push(layout: &Layout, name: &str, receive_pack: u32) -> Result<()> {
    if receive_pack <= 1 {
        // Orphaned: receive-pack is gone already, and init never exits.
        return Ok(());
    }
    let path = layout.push_marker(name, receive_pack);
    std::fs::write(&path, b"").wrap_err_with(|| format!("cannot write {}", path.display()))
}

/// Pushes of `name` still in flight; markers whose receive-pack is gone are removed.
fn pushes_in_flight(layout: &Layout, name: &str) -> usize {
    let prefix = format!("{name}.push.");
    let Ok(entries) = std::fs::read_dir(&layout.state) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name();
            let pid = file.to_str()?.strip_prefix(&prefix)?.parse::<i32>().ok()?;
            Some((e.path(), pid))
        })
        .filter(|(path, pid)| {
            // Signal 0 only asks whether the process exists. A marker older than the wait is
            // stale whatever its pid names now (pids are reused).
            let fresh = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < PUSH_WAIT);
            // EPERM: it exists, another user's.
            let alive = fresh
                && !matches!(
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), None),
                    Err(nix::errno::Errno::ESRCH)
                );
            if !alive {
                let _ = std::fs::remove_file(path);
            }
            alive
        })
        .count()
}

/// The repository's lock, taken once no forwarded push is waiting for receive-pack.
fn lock_between_pushes(layout: &Layout, name: &str) -> Result<Flock<std::fs::File>> {
    let deadline = Instant::now() + PUSH_WAIT;
    loop {
        let held = lock(layout, name)?;
        if pushes_in_flight(layout, name) == 0 || Instant::now() >= deadline {
            return Ok(held);
        }
        drop(held);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fetches every branch and tag of the upstream into the mirror (pruning what the upstream
/// deleted) and points the mirror's HEAD at the upstream's default branch.
pub fn refresh(layout: &Layout, repo: &GitGateRepo) -> Result<()> {
    let _lock = lock_between_pushes(layout, &repo.name)?;
    let dir = layout.repo_dir(&repo.name);
    let up = Upstream::of(repo);
    let out = git::run(
        up.git(
            layout,
            Some(&dir),
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--no-write-fetch-head",
                "--",
                &up.url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
        ),
        "fetch from the upstream",
        FETCH_TIMEOUT,
    )?;
    if !out.status.success() {
        bail!("{}", git::failure(&out));
    }
    if !resolves(layout, &dir, "HEAD") {
        set_head(layout, &dir, &up)?;
    }
    Ok(())
}

/// Whether the mirror has any branch (a failed first fetch leaves none).
pub fn has_branches(layout: &Layout, dir: &Path) -> bool {
    first_branch(layout, dir).is_some()
}

fn first_branch(layout: &Layout, dir: &Path) -> Option<String> {
    let out = local(
        layout,
        Some(dir),
        &[
            "for-each-ref",
            "--count=1",
            "--format=%(refname)",
            "refs/heads/",
        ],
        "list the mirror's branches",
    )
    .ok()?;
    let first = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !first.is_empty()).then_some(first)
}

fn resolves(layout: &Layout, dir: &Path, rev: &str) -> bool {
    let rev = format!("{rev}^{{commit}}");
    local(
        layout,
        Some(dir),
        &["rev-parse", "--quiet", "--verify", &rev],
        "read the mirror's HEAD",
    )
    .is_ok_and(|o| o.status.success())
}

/// Points HEAD at the upstream's default branch, so a clone through the gate checks out
/// what a clone of the upstream would. Falls back to main, master, or any branch.
fn set_head(layout: &Layout, dir: &Path, up: &Upstream) -> Result<()> {
    let out = git::run(
        up.git(
            layout,
            Some(dir),
            &["ls-remote", "--symref", "--", &up.url, "HEAD"],
        ),
        "ask the upstream for its default branch",
        FETCH_TIMEOUT,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let from_upstream = out
        .status
        .success()
        .then(|| default_branch(&text))
        .flatten();
    let target = from_upstream
        .into_iter()
        .chain(["refs/heads/main".to_owned(), "refs/heads/master".to_owned()])
        .find(|c| resolves(layout, dir, c))
        .or_else(|| first_branch(layout, dir));
    let Some(target) = target else {
        return Ok(()); // an empty upstream: nothing to point at yet
    };
    let out = local(
        layout,
        Some(dir),
        &["symbolic-ref", "HEAD", &target],
        "set the mirror's HEAD",
    )?;
    if !out.status.success() {
        bail!("cannot point HEAD at {target}: {}", git::failure(&out));
    }
    Ok(())
}

/// The branch in `ls-remote --symref URL HEAD` output (`ref: refs/heads/main\tHEAD`).
fn default_branch(ls_remote: &str) -> Option<String> {
    ls_remote.lines().find_map(|l| {
        let (r, name) = l.strip_prefix("ref: ")?.split_once('\t')?;
        (name == "HEAD" && r.starts_with("refs/heads/")).then(|| r.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_default_branch_comes_from_the_symref_line() {
        assert_eq!(
            default_branch("ref: refs/heads/trunk\tHEAD\nabc\tHEAD\n").as_deref(),
            Some("refs/heads/trunk")
        );
        assert_eq!(default_branch("abc\tHEAD\n"), None);
    }

    fn sh(dir: &Path, script: &str) {
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A gate in `t` serving `t/up.git` as `web`, its mirror created (empty).
    fn gate(t: &Path) -> (Layout, GitGateRepo) {
        let layout = Layout {
            root: t.join("git"),
            state: t.join("state"),
            hooks: t.join("hooks"),
        };
        layout.prepare().expect("prepare");
        let repo = GitGateRepo {
            name: "web".into(),
            upstream: format!("file://{}", t.join("up.git").display()),
            identity: None,
            known_hosts: None,
            push: vec![],
            protect: vec![],
            max_push: 1 << 20,
        };
        ensure(&layout, &repo).expect("ensure");
        (layout, repo)
    }

    /// A real git against a local upstream: mirror, HEAD, prune, and tags.
    #[test]
    fn a_mirror_follows_its_file_upstream() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        sh(
            t,
            "git init -q --bare -b trunk up.git && git init -q -b trunk w && cd w \
             && echo a > a && git add a && git commit -qm a && git tag v1 \
             && git push -q ../up.git trunk v1 && git push -q ../up.git trunk:gone",
        );
        let (layout, repo) = gate(t);
        let dir = layout.repo_dir("web");
        assert!(!dir.join("hooks").exists(), "no sample hooks");
        assert!(!has_branches(&layout, &dir));
        refresh(&layout, &repo).expect("refresh");
        assert!(has_branches(&layout, &dir));
        assert!(resolves(&layout, &dir, "refs/tags/v1"));
        assert!(resolves(&layout, &dir, "refs/heads/gone"));
        let head = std::fs::read_to_string(dir.join("HEAD")).expect("HEAD");
        assert_eq!(head.trim(), "ref: refs/heads/trunk");
        sh(t, "git --git-dir=up.git branch -D gone >/dev/null");
        refresh(&layout, &repo).expect("refresh again");
        assert!(!resolves(&layout, &dir, "refs/heads/gone"), "pruned");
        // The gate's own settings are in the mirror's config too.
        let config = std::fs::read_to_string(dir.join("config")).expect("config");
        assert!(config.contains("hooksPath"), "{config}");
        // An unreachable upstream is an error the caller decides about.
        let gone = GitGateRepo {
            upstream: format!("file://{}", t.join("missing.git").display()),
            ..repo
        };
        assert!(refresh(&layout, &gone).is_err());
    }

    /// A push forwarded upstream but not yet recorded by receive-pack holds refreshes back:
    /// the mirror's ref stays where receive-pack expects it until that process is gone.
    #[test]
    fn a_refresh_waits_for_a_forwarded_push_to_be_recorded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        sh(
            t,
            "git init -q --bare -b trunk up.git && git init -q -b trunk w && cd w \
             && echo a > a && git add a && git commit -qm a && git push -q ../up.git trunk",
        );
        let (layout, repo) = gate(t);
        refresh(&layout, &repo).expect("refresh");
        let dir = layout.repo_dir("web");
        let at = |rev: &str| {
            let out = local(&layout, Some(&dir), &["rev-parse", rev], "rev-parse").expect("git");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let before = at("refs/heads/trunk");

        // The upstream moves (the forwarded push) while "receive-pack" (a sleeping child)
        // has yet to record it.
        sh(
            t,
            "cd w && echo b > b && git add b && git commit -qm b && git push -q ../up.git trunk",
        );
        let mut receive_pack = Command::new("sleep").arg("30").spawn().expect("sleep");
        mark_push(&layout, "web", receive_pack.id()).expect("mark");
        assert_eq!(pushes_in_flight(&layout, "web"), 1);
        let refresher = {
            let (layout, repo) = (layout.clone(), repo.clone());
            std::thread::spawn(move || refresh(&layout, &repo))
        };
        std::thread::sleep(Duration::from_millis(700));
        assert!(!refresher.is_finished(), "the refresh waits for the push");
        assert_eq!(
            at("refs/heads/trunk"),
            before,
            "the mirror's ref is untouched"
        );

        receive_pack.kill().expect("kill");
        receive_pack.wait().expect("reap");
        refresher.join().expect("thread").expect("refresh");
        assert_ne!(at("refs/heads/trunk"), before, "then the refresh fetches");
        assert_eq!(pushes_in_flight(&layout, "web"), 0);
        let markers = std::fs::read_dir(&layout.state)
            .expect("state")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".push."))
            .count();
        assert_eq!(markers, 0, "the done marker is removed");
    }

    /// A marker outlives its wait only if its pid was reused: it is dropped by age.
    #[test]
    fn an_old_marker_is_stale_even_if_its_pid_lives() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (layout, _) = gate(tmp.path());
        // This test's own process: alive.
        mark_push(&layout, "web", std::process::id()).expect("mark");
        assert_eq!(pushes_in_flight(&layout, "web"), 1);
        let marker = layout.push_marker("web", std::process::id());
        std::fs::File::options()
            .write(true)
            .open(&marker)
            .and_then(|f| f.set_modified(std::time::SystemTime::now() - PUSH_WAIT * 2))
            .expect("age the marker");
        assert_eq!(pushes_in_flight(&layout, "web"), 0);
        assert!(!marker.exists(), "removed");
    }
}
