//! git-gate on the real engine: the agent clones and pushes through `git://git-gate/NAME.git`
//! with its usual upstream URL (provision's `insteadOf`); the gate's pre-receive hook enforces
//! the branch policy and forwards accepted pushes to a `file://` upstream on this host; hooks
//! the agent pushes never run on the gate; the identity file stays in the bundle.

mod common;
use common::docker::{Bottle, docker, docker_ok, unique_slug};
use common::{Scratch, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Host-side git with no user or system config.
fn host_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "host")
        .env("GIT_AUTHOR_EMAIL", "host@example.com")
        .env("GIT_COMMITTER_NAME", "host")
        .env("GIT_COMMITTER_EMAIL", "host@example.com")
        .output()
        .expect("git on the host");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// A bare upstream with `main` holding one commit, made by a work tree beside it.
struct Upstream {
    bare: PathBuf,
    work: PathBuf,
}

impl Upstream {
    fn new(scratch: &Scratch) -> Self {
        let bare = scratch.path().join("up.git");
        let work = scratch.path().join("host-work");
        host_git(
            scratch.path(),
            &["init", "-q", "--bare", "-b", "main", "up.git"],
        );
        host_git(scratch.path(), &["init", "-q", "-b", "main", "host-work"]);
        std::fs::write(work.join("README"), "hello\n").expect("write README");
        host_git(&work, &["add", "README"]);
        host_git(&work, &["commit", "-qm", "first"]);
        host_git(
            &work,
            &["push", "-q", bare.to_str().expect("utf-8"), "main"],
        );
        Self { bare, work }
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// The commit a branch points at upstream, or None.
    fn branch(&self, name: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{name}")])
            .env("GIT_DIR", &self.bare)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git rev-parse");
        out.status.success().then(|| stdout(&out).trim().to_owned())
    }

    /// Commits on the host and pushes `main`'s new commit to `branch` upstream.
    fn commit_and_push(&self, file: &str, branch: &str) -> String {
        std::fs::write(self.work.join(file), "from the host\n").expect("write");
        host_git(&self.work, &["add", file]);
        host_git(&self.work, &["commit", "-qm", file]);
        let bare = self.bare.to_str().expect("utf-8");
        host_git(
            &self.work,
            &["push", "-q", bare, &format!("HEAD:refs/heads/{branch}")],
        );
        host_git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// A scratch config with one git upstream (identity `id_web`, made 0600 with `secret` in it).
fn gate_scratch(secret: &str) -> (Scratch, Upstream) {
    let scratch = Scratch::new();
    let upstream = Upstream::new(&scratch);
    let id = scratch.path().join("id_web");
    std::fs::write(&id, format!("{secret}\n")).expect("identity");
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    scratch.write_config(&common::docker::config(&format!(
        "\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{}\"\nidentity = \"id_web\"\n\
         push = [\"bottle/*\"]\nprotect = [\"main\"]\n\n\
         [[bottles.demo.git]]\nname = \"empty\"\nupstream = \"file://{}\"\n",
        upstream.url(),
        // A folder that is no repository: an upstream the gate can never fetch.
        scratch.path().join("upstream").display()
    )));
    (scratch, upstream)
}

/// Runs `script` in the agent (as its user) with a git author set; returns the output.
fn agent(bottle: &Bottle<'_>, script: &str) -> Output {
    bottle.sh(&format!(
        "export GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@example.com \
         GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@example.com; {script}"
    ))
}

fn agent_ok(bottle: &Bottle<'_>, script: &str) -> String {
    let out = agent(bottle, script);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{script}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Clones through the gate with the upstream's own URL into /tmp/web.
fn clone(bottle: &Bottle<'_>, upstream: &Upstream) {
    agent_ok(
        bottle,
        &format!("git clone -q {} /tmp/web 2>&1", upstream.url()),
    );
}

/// The bundle's git-gate JSON lines, once one that `want` accepts is there (the caller's
/// assertions then say what was missing, with the lines).
fn gate_logs_until(
    bottle: &Bottle<'_>,
    want: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let lines = || -> Vec<serde_json::Value> {
        let out = docker(&["logs", &bottle.bundle()]);
        stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["daemon"] == "git-gate")
            .collect()
    };
    let start = Instant::now();
    loop {
        let now = lines();
        // Past the deadline the caller's assertions fail with every line in view.
        if want(&now) || start.elapsed() > Duration::from_secs(60) {
            return now;
        }
        std::thread::sleep(common::POLL);
    }
}

fn has_line(lines: &[serde_json::Value], op: &str, r: &str, decision: &str, reason: &str) -> bool {
    lines.iter().any(|l| {
        l["repo"] == "web"
            && l["op"] == op
            && (r.is_empty() || l["ref"] == r)
            && l["decision"] == decision
            && l["reason"].as_str().is_some_and(|s| s.contains(reason))
    })
}

#[test]
fn the_agent_clones_and_pushes_through_the_gate_under_the_branch_policy() {
    let (scratch, upstream) = gate_scratch("not-a-real-key");
    let bottle = Bottle::up(&scratch, &unique_slug("gate"), &[]);
    let main_before = upstream.branch("main").expect("upstream main");

    // provision's rewrite sends the usual URL to the gate.
    let url = agent_ok(
        &bottle,
        &format!(
            "git config --global --get url.git://git-gate/web.git.insteadOf; \
             git ls-remote --get-url {}",
            upstream.url()
        ),
    );
    assert_eq!(
        url.lines().collect::<Vec<_>>(),
        [upstream.url().as_str(), "git://git-gate/web.git"]
    );

    clone(&bottle, &upstream);
    let head = agent_ok(
        &bottle,
        "cd /tmp/web && git log -1 --format=%H && git remote get-url origin",
    );
    assert_eq!(
        head.lines().next(),
        Some(main_before.as_str()),
        "the clone has upstream's main"
    );

    // An allowed branch reaches the upstream.
    let pushed = agent_ok(
        &bottle,
        "cd /tmp/web && echo agent > agent.txt && git add agent.txt && git commit -qm agent \
         && git push -q origin HEAD:bottle/x 2>&1 && git rev-parse HEAD",
    );
    let pushed = pushed.lines().last().unwrap_or_default().to_owned();
    assert_eq!(
        upstream.branch("bottle/x").as_deref(),
        Some(pushed.as_str())
    );
    // The push left a marker naming its receive-pack, which refreshes wait for; that process
    // is gone once the push returned, so the next fetch clears the marker and is not held.
    let in_flight = "cd /var/lib/bottle/git-gate && for m in web.push.*; do \
                       [ -e \"$m\" ] || continue; \
                       if [ -d /proc/${m#web.push.} ]; then echo \"$m alive\"; else echo \"$m gone\"; fi; \
                     done";
    // receive-pack may take a moment to be reaped after the client has its report.
    let markers = common::eventually(
        "the push's receive-pack is reaped",
        Duration::from_secs(60),
        || {
            Some(docker_ok(&[
                "exec",
                &bottle.bundle(),
                "sh",
                "-c",
                in_flight,
            ]))
            .filter(|m| m.trim_end().ends_with(" gone"))
        },
    );
    assert!(
        markers.lines().count() == 1 && markers.trim_end().ends_with(" gone"),
        "one marker, its receive-pack finished: {markers:?}"
    );
    agent_ok(&bottle, "cd /tmp/web && git fetch -q origin 2>&1");
    let markers = docker_ok(&["exec", &bottle.bundle(), "sh", "-c", in_flight]);
    assert_eq!(markers, "", "the fetch cleared the finished push's marker");

    // Each refusal: the push fails and git shows the gate's reason.
    let refusals = [
        (
            "git push origin HEAD:main",
            "refused refs/heads/main: branch main is protected",
        ),
        (
            "git push origin HEAD:feature/y",
            "refused refs/heads/feature/y: branch feature/y may not be pushed: allowed branches are bottle/*",
        ),
        (
            "git commit -q --amend -m rewritten && git push --force origin HEAD:bottle/x",
            "refused refs/heads/bottle/x: force-push to bottle/x is not allowed",
        ),
        (
            "git push origin :bottle/x",
            "refused refs/heads/bottle/x: deleting refs/heads/bottle/x is not allowed",
        ),
        (
            "git tag v1 && git push origin v1",
            "refused refs/tags/v1: refs/tags/v1 is not a branch",
        ),
    ];
    for (cmd, reason) in refusals {
        let out = agent(&bottle, &format!("cd /tmp/web && {cmd} 2>&1"));
        let text = stdout(&out);
        assert_ne!(out.status.code(), Some(0), "{cmd} succeeded: {text}");
        assert!(
            text.contains(reason),
            "{cmd}: wanted {reason:?} in:\n{text}"
        );
        assert!(text.contains("pre-receive hook declined"), "{text}");
    }
    // None of them reached the upstream.
    assert_eq!(
        upstream.branch("main").as_deref(),
        Some(main_before.as_str())
    );
    assert_eq!(
        upstream.branch("bottle/x").as_deref(),
        Some(pushed.as_str())
    );
    assert_eq!(upstream.branch("feature/y"), None);

    // One JSON line per operation, with the decision and the reason.
    let lines = gate_logs_until(&bottle, |l| {
        has_line(l, "push", "refs/tags/v1", "deny", "not a branch")
    });
    for (r, decision, reason) in [
        ("refs/heads/bottle/x", "allow", "forwarded to the upstream"),
        ("refs/heads/main", "deny", "branch main is protected"),
        ("refs/heads/feature/y", "deny", "may not be pushed"),
        ("refs/heads/bottle/x", "deny", "force-push"),
        ("refs/heads/bottle/x", "deny", "deleting"),
        ("refs/tags/v1", "deny", "not a branch"),
    ] {
        assert!(
            has_line(&lines, "push", r, decision, reason),
            "no {decision} line for {r} ({reason}) in {lines:#?}"
        );
    }
    assert!(
        has_line(&lines, "fetch", "", "allow", "mirror refreshed"),
        "{lines:#?}"
    );

    // The health check counts git-gate as a running daemon.
    common::docker::wait_healthy(&scratch, &bottle.slug, "git-gate");
}

#[test]
fn fetches_see_new_upstream_commits_and_upstream_refusals_reach_the_agent() {
    let (scratch, upstream) = gate_scratch("not-a-real-key");
    let bottle = Bottle::up(&scratch, &unique_slug("gatef"), &[]);
    clone(&bottle, &upstream);

    // A commit made upstream after launch is seen by the next fetch (mirror on fetch).
    let newer = upstream.commit_and_push("later.txt", "main");
    let seen = agent_ok(
        &bottle,
        "cd /tmp/web && git fetch -q origin 2>&1 && git rev-parse origin/main",
    );
    assert_eq!(seen.trim(), newer);

    // The agent pushes bottle/y; then someone else moves it upstream. The agent's next push is a
    // fast-forward of what the gate knows, but not of the upstream: the upstream refuses, and
    // the agent sees that refusal and its reason.
    agent_ok(
        &bottle,
        "cd /tmp/web && git checkout -q -b mine origin/main && echo 1 > one && git add one \
         && git commit -qm one && git push -q origin HEAD:bottle/y 2>&1",
    );
    host_git(
        &upstream.work,
        &[
            "fetch",
            "-q",
            upstream.bare.to_str().expect("utf-8"),
            "bottle/y",
        ],
    );
    host_git(&upstream.work, &["checkout", "-q", "FETCH_HEAD"]);
    let theirs = upstream.commit_and_push("theirs.txt", "bottle/y");
    let out = agent(
        &bottle,
        "cd /tmp/web && echo 2 > two && git add two && git commit -qm two \
         && git push origin HEAD:bottle/y 2>&1",
    );
    let text = stdout(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the upstream refused the push") && text.contains("[rejected]"),
        "{text}"
    );
    assert_eq!(
        upstream.branch("bottle/y").as_deref(),
        Some(theirs.as_str())
    );
    let lines = gate_logs_until(&bottle, |l| {
        has_line(l, "push", "refs/heads/bottle/y", "deny", "upstream refused")
    });
    assert!(
        has_line(
            &lines,
            "push",
            "refs/heads/bottle/y",
            "deny",
            "the upstream refused"
        ),
        "{lines:#?}"
    );

    // The upstream goes away: fetches are served from the mirror as last fetched, with a
    // warning in the log.
    std::fs::rename(
        upstream.bare.join("objects"),
        upstream.bare.join("objects.away"),
    )
    .expect("hide the upstream's objects");
    let out = agent(
        &bottle,
        "cd /tmp/web && git fetch origin 2>&1 && git rev-parse origin/main",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains(&newer), "{}", stdout(&out));
    let lines = gate_logs_until(&bottle, |l| {
        has_line(l, "fetch", "", "allow", "upstream unreachable")
    });
    assert!(
        lines.iter().any(|l| l["level"] == "warn"
            && l["reason"].as_str().is_some_and(
                |r| r.starts_with("upstream unreachable, serving the mirror as last fetched")
            )),
        "{lines:#?}"
    );
    // An upstream that never answered has no mirror to serve: the clone is refused, saying why.
    let out = agent(
        &bottle,
        "git clone -q git://git-gate/empty.git /tmp/empty 2>&1",
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("the upstream is unreachable and there is no mirror yet"),
        "{}",
        stdout(&out)
    );

    // The gate does not serve what it was not configured with.
    let out = agent(
        &bottle,
        "git ls-remote git://git-gate/other.git 2>&1; git ls-remote git://git-gate/../../etc/bottle.git 2>&1",
    );
    let text = stdout(&out);
    assert_eq!(text.matches("fatal: remote error").count(), 2, "{text}");
}

#[test]
fn hooks_the_agent_pushes_never_run_on_the_gate() {
    let (scratch, upstream) = gate_scratch("not-a-real-key");
    let bottle = Bottle::up(&scratch, &unique_slug("gateh"), &[]);
    clone(&bottle, &upstream);

    // Every hook name a server runs, in every place an agent could hope a server looks, plus a
    // filter in .gitattributes; each would leave a marker. The agent's own clone uses
    // .githooks (core.hooksPath), so its pre-push fires in the agent: proof the scripts work.
    let marker = "/tmp/bottle-gate-pwned";
    let mut script = String::from("cd /tmp/web && mkdir -p hooks .githooks && ");
    for hook in [
        "pre-receive",
        "update",
        "post-receive",
        "post-update",
        "reference-transaction",
        "push-to-checkout",
        "pre-push",
    ] {
        for dir in ["hooks", ".githooks"] {
            script.push_str(&format!(
                "printf '#!/bin/sh\\ntouch {marker}\\n' > {dir}/{hook} && chmod +x {dir}/{hook} && "
            ));
        }
    }
    script.push_str(&format!(
        "printf '* filter=pwn\\n' > .gitattributes \
         && git config filter.pwn.clean 'touch {marker}; cat' \
         && git config core.hooksPath .githooks \
         && git add -A && git commit -qm planted \
         && rm -f {marker} \
         && git push -q origin HEAD:bottle/planted 2>&1 \
         && git rev-parse HEAD && test -e {marker} && echo agent-side-hook-ran"
    ));
    let out = agent_ok(&bottle, &script);
    assert!(
        out.contains("agent-side-hook-ran"),
        "the planted scripts do not work even in the agent: {out}"
    );
    let head = out
        .lines()
        .find(|l| l.len() == 40)
        .unwrap_or_default()
        .to_owned();
    // The push went through the gate's hooks to the upstream…
    assert_eq!(
        upstream.branch("bottle/planted").as_deref(),
        Some(head.as_str())
    );
    // …and nothing the agent sent ran there.
    let out = docker(&["exec", &bottle.bundle(), "test", "-e", marker]);
    assert_eq!(out.status.code(), Some(1), "{marker} exists in the bundle");
    // The mirror takes hooks only from the read-only folder holding the gate's own hook.
    let hooks_path = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "git",
        "--git-dir=/var/lib/bottle/git/web.git",
        "config",
        "core.hooksPath",
    ]);
    assert_eq!(hooks_path.trim(), "/etc/bottle/git-hooks");
    let listed = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "ls",
        "-A",
        "/etc/bottle/git-hooks",
    ]);
    assert_eq!(listed.trim(), "pre-receive");
    let out = docker(&[
        "exec",
        &bottle.bundle(),
        "touch",
        "/etc/bottle/git-hooks/post-receive",
    ]);
    assert_ne!(out.status.code(), Some(0), "the hooks folder is writable");
    // A hook in the mirror's own hooks/ folder — where git looks by default, and where one
    // would run — does not run either: only the read-only folder counts.
    docker_ok(&[
        "exec",
        &bottle.bundle(),
        "sh",
        "-c",
        &format!(
            "mkdir -p /var/lib/bottle/git/web.git/hooks; for h in pre-receive update post-receive post-update reference-transaction; do \
             printf '#!/bin/sh\\ntouch {marker}\\n' > /var/lib/bottle/git/web.git/hooks/$h; \
             chmod +x /var/lib/bottle/git/web.git/hooks/$h; done"
        ),
    ]);
    agent_ok(
        &bottle,
        "cd /tmp/web && git commit -q --allow-empty -m again && git push -q origin HEAD:bottle/planted 2>&1",
    );
    let out = docker(&["exec", &bottle.bundle(), "test", "-e", marker]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a hook in the mirror's hooks/ folder ran"
    );
    // Push options are not accepted.
    let out = agent(
        &bottle,
        "cd /tmp/web && git commit -q --allow-empty -m opt && git push -o x origin HEAD:bottle/planted 2>&1",
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("does not support push options"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_identity_stays_in_the_bundle() {
    let secret = format!(
        "IDENTITY-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let (scratch, upstream) = gate_scratch(&secret);
    let bottle = Bottle::up(&scratch, &unique_slug("gatei"), &[]);
    clone(&bottle, &upstream);

    // The bundle has it, 0600, where the gate reads it.
    let in_bundle = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "sh",
        "-c",
        "stat -c %a /etc/bottle/identities/web && cat /etc/bottle/identities/web",
    ]);
    assert_eq!(
        in_bundle.lines().collect::<Vec<_>>(),
        ["600", secret.as_str()]
    );

    // The agent's inspect output names neither the key nor its file.
    let inspect = docker_ok(&["inspect", &bottle.agent()]);
    assert!(
        !inspect.contains(&secret),
        "the key is in the agent's inspect"
    );
    assert!(
        !inspect.contains("id_web") && !inspect.contains("/etc/bottle/identities"),
        "the identity file is in the agent's inspect"
    );
    // The agent cannot read it: not at the bundle's path, not anywhere in its files, not
    // through the gate.
    let out = agent(&bottle, "cat /etc/bottle/identities/web");
    assert_ne!(out.status.code(), Some(0));
    let out = agent(
        &bottle,
        &format!(
            "grep -rlsF '{secret}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; echo grep-done"
        ),
    );
    assert_eq!(stdout(&out).trim(), "grep-done", "{}", stderr(&out));
    let out = agent(
        &bottle,
        "git ls-remote git://git-gate/../etc/bottle/identities/web 2>&1; \
         git ls-remote git://git-gate/etc/bottle/identities/web 2>&1",
    );
    assert!(!stdout(&out).contains(&secret), "{}", stdout(&out));
}

/// An sshd with git, built from the local base image (apt over the default bridge).
const SSHD_IMAGE: &str = "bottle-test-sshd:latest";
const SSHD_DOCKERFILE: &str = "FROM debian:bookworm-slim\n\
RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server git \\\n \
&& rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd && useradd -m -s /bin/sh git && usermod -p '*' git\n\
CMD [\"/usr/sbin/sshd\", \"-D\", \"-e\"]\n";

/// A container removed when dropped (declare it after the bottle: it must go before the
/// bottle's networks do).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// Builds a test server image from a Dockerfile (its packages come from Debian's mirror).
fn build_image(tag: &str, dockerfile: &str) {
    let built = docker_stdin(&["build", "-q", "-t", tag, "-"], dockerfile.as_bytes());
    assert!(built.status.success(), "building {tag}: {}", stderr(&built));
}

/// Fills a test server's `/srv/git/web.git` with one commit on `main` (a shell fragment).
const SEED_UPSTREAM: &str = "export HOME=/tmp GIT_AUTHOR_NAME=up GIT_AUTHOR_EMAIL=up@example.com \
    GIT_COMMITTER_NAME=up GIT_COMMITTER_EMAIL=up@example.com; \
    git init -q --bare -b main /srv/git/web.git; git init -q -b main /tmp/w; cd /tmp/w; \
    echo hi > README; git add README; git commit -qm first; git push -q /srv/git/web.git main";

/// A branch of the test server's `/srv/git/web.git`, if it exists.
fn served_branch(container: &str, name: &str) -> Option<String> {
    let out = docker(&[
        "exec",
        container,
        "git",
        "--git-dir=/srv/git/web.git",
        "rev-parse",
        "--verify",
        "-q",
        name,
    ]);
    out.status.success().then(|| stdout(&out).trim().to_owned())
}

/// From the agent: clones `url` through the gate into /tmp/web (retrying while the server
/// starts: the gate's first mirror may have run before it was up, and each clone refreshes
/// it), checks it has the server's `main`, commits and pushes to `branch`, and checks the
/// server has that commit.
fn clone_and_push(bottle: &Bottle<'_>, url: &str, server: &str, branch: &str) {
    let main = served_branch(server, "main").expect("upstream main");
    common::eventually("a clone through the gate", Duration::from_secs(60), || {
        let out = agent(bottle, &format!("git clone -q {url} /tmp/web 2>&1"));
        out.status.success().then_some(())
    });
    let head = agent_ok(bottle, "cd /tmp/web && git rev-parse HEAD");
    assert_eq!(head.trim(), main);
    let pushed = agent_ok(
        bottle,
        &format!(
            "cd /tmp/web && echo agent > a && git add a && git commit -qm a \
             && git push -q origin HEAD:{branch} 2>&1 && git rev-parse HEAD"
        ),
    );
    assert_eq!(
        served_branch(server, &format!("refs/heads/{branch}")).as_deref(),
        pushed.lines().last()
    );
}

fn docker_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to docker");
    child.wait_with_output().expect("docker")
}

#[test]
fn an_ssh_upstream_is_reached_with_the_identity_only_the_bundle_holds() {
    build_image(SSHD_IMAGE, SSHD_DOCKERFILE);

    let scratch = Scratch::new();
    let key = scratch.path().join("id_ssh");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "bottle-gate-test",
            "-f",
        ])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    let pubkey = std::fs::read(key.with_extension("pub")).expect("public key");
    // The upstream's name on the bottle's egress network, where only the bundle is.
    let url = "ssh://git@upstream-ssh/srv/git/web.git";
    scratch.write_config(&common::docker::config(&format!(
        "\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{url}\"\nidentity = \"id_ssh\"\n\
         push = [\"bottle/*\"]\nprotect = [\"main\"]\n"
    )));
    let bottle = Bottle::up(&scratch, &unique_slug("gates"), &[]);

    let sshd = Container(format!("{}-test-sshd", bottle.bundle()));
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &sshd.0,
        "--network",
        &format!("bottle-{}-ext", bottle.slug),
        "--network-alias",
        "upstream-ssh",
        SSHD_IMAGE,
    ]);
    let out = docker_stdin(
        &[
            "exec",
            "-i",
            &sshd.0,
            "sh",
            "-c",
            &format!(
                "set -e; mkdir -p ~git/.ssh /srv/git; cat > ~git/.ssh/authorized_keys; \
                 {SEED_UPSTREAM}; \
                 chown -R git:git ~git/.ssh /srv/git; chmod 700 ~git/.ssh; chmod 600 ~git/.ssh/authorized_keys"
            ),
        ],
        &pubkey,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let upstream_branch = |name: &str| served_branch(&sshd.0, name);
    let main = upstream_branch("main").expect("upstream main");
    // The agent clones through the gate with its usual URL (sshd may still be starting).
    clone_and_push(&bottle, url, &sshd.0, "bottle/ssh");
    let out = agent(&bottle, "cd /tmp/web && git push origin HEAD:main 2>&1");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("branch main is protected"),
        "{}",
        stdout(&out)
    );
    assert_eq!(upstream_branch("main").as_deref(), Some(main.as_str()));

    // The gate trusted the upstream's host key on first use, in its own known_hosts.
    let known = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "cat",
        "/var/lib/bottle/git-gate/known_hosts",
    ]);
    assert!(known.contains("upstream-ssh"), "{known}");
    // The private key is in the bundle only.
    let private = std::fs::read_to_string(&key).expect("private key");
    let secret_line = private.lines().nth(1).expect("key body");
    assert!(!docker_ok(&["inspect", &bottle.agent()]).contains(secret_line));
    let out = agent(
        &bottle,
        &format!(
            "grep -rlsF '{secret_line}' / --exclude-dir=proc --exclude-dir=sys; echo grep-done"
        ),
    );
    assert_eq!(stdout(&out).trim(), "grep-done");

    // Pinned host keys (`known_hosts`): a wrong pin refuses the upstream, the right one works.
    let host_key = docker_ok(&["exec", &sshd.0, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    let host_key = host_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(scratch.path().join("impostor"))
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    let impostor = std::fs::read_to_string(scratch.path().join("impostor.pub")).expect("pub");
    let impostor = impostor
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    for (pin, works) in [(impostor, false), (host_key, true)] {
        std::fs::write(
            scratch.path().join("known_hosts"),
            format!("upstream-ssh {pin}\n"),
        )
        .expect("known_hosts");
        scratch.write_config(&common::docker::config(&format!(
            "\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{url}\"\nidentity = \"id_ssh\"\n\
             known_hosts = \"known_hosts\"\npush = [\"bottle/*\"]\nprotect = [\"main\"]\n"
        )));
        let pinned = Bottle::up(&scratch, &unique_slug("gatepin"), &[]);
        docker_ok(&[
            "network",
            "connect",
            "--alias",
            "upstream-ssh",
            &format!("bottle-{}-ext", pinned.slug),
            &sshd.0,
        ]);
        let out = agent(&pinned, &format!("git clone -q {url} /tmp/web 2>&1"));
        let said = stdout(&out);
        if works {
            assert!(out.status.success(), "the right pin was refused: {said}");
        } else {
            assert!(!out.status.success(), "a wrong pin was accepted: {said}");
            let logs = docker_ok(&["logs", &pinned.bundle()]);
            assert!(
                logs.contains("Host key verification failed")
                    || said.contains("Host key verification failed"),
                "{said}\n{logs}"
            );
        }
        docker(&[
            "network",
            "disconnect",
            &format!("bottle-{}-ext", pinned.slug),
            &sshd.0,
        ]);
    }
}

#[test]
fn a_killed_gate_is_restarted_and_serves_again() {
    let (scratch, upstream) = gate_scratch("not-a-real-key");
    let bottle = Bottle::up(&scratch, &unique_slug("gatek"), &[]);
    clone(&bottle, &upstream);
    // SIGKILL leaves no chance to stop git daemon, which keeps the port.
    let kill = "for p in /proc/[0-9]*; do \
                  if [ \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" = '/usr/local/bin/bottle-sidecar git-gate ' ]; then kill -9 ${p#/proc/}; echo killed; fi; \
                done";
    let out = docker_ok(&["exec", &bottle.bundle(), "sh", "-c", kill]);
    assert_eq!(out.trim(), "killed", "found the git-gate process");
    let lines = gate_logs_until(&bottle, |l| {
        l.iter()
            .any(|v| v["msg"] == "stopped the git daemon a previous run left behind")
    });
    assert!(
        lines
            .iter()
            .any(|v| v["msg"] == "stopped the git daemon a previous run left behind"),
        "{lines:#?}"
    );
    let newer = upstream.commit_and_push("after-restart.txt", "main");
    let seen = common::eventually(
        "a fetch through the restarted gate",
        Duration::from_secs(60),
        || {
            let out = agent(
                &bottle,
                "cd /tmp/web && git fetch -q origin 2>&1 && git rev-parse origin/main",
            );
            out.status.success().then(|| stdout(&out))
        },
    );
    assert_eq!(seen.trim(), newer);
    // One git daemon, and it is the new gate's child (an orphan's parent would be init).
    let parents = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "sh",
        "-c",
        "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = git-daemon ] || continue; \
           pp=$(sed -n 's/^PPid:[[:space:]]*//p' $d/status); tr '\\0' ' ' < /proc/$pp/cmdline; echo; done",
    ]);
    assert_eq!(
        parents.lines().collect::<Vec<_>>(),
        ["/usr/local/bin/bottle-sidecar git-gate "],
        "git daemons by parent"
    );
}

/// A ref name git itself would refuse, sent with the raw push protocol (the git client will
/// not send it): `refs/heads/bottle/x:refs/heads/main` matches `bottle/*`, and forwarded as a
/// refspec it would read as "the gitlink at path refs/heads/bottle/x in commit C → main". The
/// commit carries exactly that gitlink, pointing at a commit that rewrites main's README, so a
/// gate that let the name through would move the protected `main` upstream.
#[test]
fn a_ref_name_with_a_colon_cannot_reach_a_protected_branch() {
    let (scratch, upstream) = gate_scratch("not-a-real-key");
    let bottle = Bottle::up(&scratch, &unique_slug("gatecolon"), &[]);
    let main_before = upstream.branch("main").expect("upstream main");
    clone(&bottle, &upstream);
    // bash for /dev/tcp; the update is built by hand as pkt-lines.
    let out = agent(
        &bottle,
        r#"bash -s <<'SCRIPT'
set -e
cd /tmp/web
echo evil > README && git commit -qam evil
M=$(git rev-parse HEAD)
git reset -q --hard HEAD~1
git update-index --add --cacheinfo 160000,$M,refs/heads/bottle/x
git commit -qm carrier
C=$(git rev-parse HEAD)
Z=0000000000000000000000000000000000000000
exec 3<>/dev/tcp/git-gate/9418
# 4 + len("git-receive-pack /web.git\0host=git-gate\0") = 44
printf '002cgit-receive-pack /web.git\0host=git-gate\0' >&3
# the update line: OLD NEW NAME\0capabilities
line=$(printf '%s %s %s' $Z $C 'refs/heads/bottle/x:refs/heads/main')
printf '%04x%s\0report-status\n' $((${#line} + 5 + 14)) "$line" >&3
printf '0000' >&3
printf '%s\n%s\n' $C $M | git pack-objects --revs --stdout -q >&3
timeout 20 cat <&3 | tr -d '\0' | tr -c '[:print:]\n' '.' || true
SCRIPT
"#,
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "the raw push could not be sent: {said}"
    );
    assert_eq!(
        upstream.branch("main").as_deref(),
        Some(main_before.as_str()),
        "main moved upstream: {said}"
    );
    assert!(
        said.contains("declined") || said.contains("refused") || said.contains("ng "),
        "the push was not refused: {said}"
    );
    // Nothing new under bottle/ either.
    assert_eq!(upstream.branch("bottle/x"), None, "{said}");
}

/// `max_push` bounds what one push may write to the bundle: a pack over it is cut off while it
/// arrives, nothing of it stays in the mirror (no quarantine, no temporary pack), and a push
/// under it still goes through.
#[test]
fn a_push_larger_than_max_push_is_refused_and_leaves_nothing_on_disk() {
    let scratch = Scratch::new();
    let upstream = Upstream::new(&scratch);
    scratch.write_config(&common::docker::config(&format!(
        "\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{}\"\nmax_push = \"1m\"\n",
        upstream.url()
    )));
    let bottle = Bottle::up(&scratch, &unique_slug("gatebig"), &[]);
    clone(&bottle, &upstream);
    let mirror = "/var/lib/bottle/git/web.git";
    let kib_on_disk = || -> u64 {
        let out = docker_ok(&[
            "exec",
            &bottle.bundle(),
            "du",
            "-sk",
            &format!("{mirror}/objects"),
        ]);
        out.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("du prints a size")
    };
    let before = kib_on_disk();

    // 3 MB of random bytes do not compress: the pack is about 3 MB.
    let out = agent(
        &bottle,
        "cd /tmp/web && head -c 3000000 /dev/urandom > big.bin && git add big.bin \
         && git commit -qm big && git push origin HEAD:bottle/big 2>&1",
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "the 3 MB push went through: {said}");
    // receive-pack says why over the sideband, then closes while the client is still
    // sending: when the reset overtakes that message (a loaded machine), git can only say the
    // remote hung up. Either way the push must have failed on the server's refusal.
    let told = ["maximum allowed size"];
    let cut_off = [
        "remote end hung up",
        "unexpected disconnect",
        "Broken pipe",
        "Connection reset",
    ];
    assert!(
        told.iter().chain(&cut_off).any(|m| said.contains(m)),
        "the push failed for another reason than the size limit: {said}"
    );
    assert_eq!(upstream.branch("bottle/big"), None, "{said}");
    let left = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "find",
        &format!("{mirror}/objects"),
        "-name",
        "incoming-*",
        "-o",
        "-name",
        "tmp_*",
    ]);
    assert_eq!(left.trim(), "", "the refused push left files behind");
    let after = kib_on_disk();
    assert!(
        after < before + 256,
        "the mirror grew from {before} KiB to {after} KiB after a refused push"
    );

    // Under the limit, pushes still work.
    agent_ok(
        &bottle,
        "cd /tmp/web && git reset -q --hard origin/main && echo small > small.txt \
         && git add small.txt && git commit -qm small && git push -q origin HEAD:bottle/small 2>&1",
    );
    assert!(upstream.branch("bottle/small").is_some(), "the small push");
    let limit = docker_ok(&[
        "exec",
        &bottle.bundle(),
        "git",
        "config",
        "--file",
        &format!("{mirror}/config"),
        "receive.maxInputSize",
    ]);
    assert_eq!(limit.trim(), (1u64 << 20).to_string(), "the mirror's limit");
}

const HTTPS_GIT_IMAGE: &str = "bottle-tui-test-https-git:1";
/// nginx in front of `git http-backend`, basic auth from a file: a self-hosted git server.
const HTTPS_GIT_DOCKERFILE: &str = "FROM debian:bookworm-slim\n\
RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx fcgiwrap git openssl \\\n \
&& rm -rf /var/lib/apt/lists/*\n\
CMD [\"sleep\", \"infinity\"]\n";
const HTTPS_GIT_NGINX: &str = r#"events {}
http {
  access_log /var/log/nginx/access.log;
  error_log /var/log/nginx/error.log;
  server {
    listen 443 ssl;
    ssl_certificate /pki/origin.pem;
    ssl_certificate_key /pki/origin.key;
    location / {
      auth_basic "git";
      auth_basic_user_file /etc/nginx/htpasswd;
      client_max_body_size 0;
      fastcgi_pass unix:/run/fcgiwrap.socket;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT /srv/git;
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;
    }
  }
}
"#;

/// An https upstream signed by the bottle's private `upstream_ca`, with a token the gate hands
/// over through its credential helper: clone and push work, the server saw the token's user,
/// and the token is nowhere the agent can see.
#[test]
fn an_https_upstream_signed_by_the_bottles_ca_gets_the_token_only_from_the_gate() {
    build_image(HTTPS_GIT_IMAGE, HTTPS_GIT_DOCKERFILE);
    let scratch = Scratch::new();
    common::pki::origin(scratch.path(), "upstream-https");
    let token = format!("tok-{}", unique_slug("https"));
    std::fs::write(scratch.path().join("id_https"), format!("{token}\n")).expect("token file");
    std::fs::write(scratch.path().join("nginx.conf"), HTTPS_GIT_NGINX).expect("nginx.conf");
    let url = "https://upstream-https/web.git";
    scratch.write_config(
        &common::docker::config(&format!(
            "\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{url}\"\nidentity = \"id_https\"\n\
             push = [\"bottle/*\"]\nprotect = [\"main\"]\n"
        ))
        .replace(
            "allow = [\"api.example.com\"]",
            "allow = [\"api.example.com\"]\nupstream_ca = \"origin-ca.pem\"",
        ),
    );
    let bottle = Bottle::up(&scratch, &unique_slug("gateh"), &[]);

    let server = Container(format!("{}-test-https", bottle.bundle()));
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &server.0,
        "--network",
        &format!("bottle-{}-ext", bottle.slug),
        "--network-alias",
        "upstream-https",
        "-v",
        &format!("{}:/pki:ro", scratch.path().display()),
        HTTPS_GIT_IMAGE,
    ]);
    let setup = format!(
        "set -e; \
        printf 'x-access-token:%s\\n' \"$(openssl passwd -apr1 \"$(head -n1 /pki/id_https)\")\" > /etc/nginx/htpasswd; \
        {SEED_UPSTREAM}; \
        fcgiwrap -s unix:/run/fcgiwrap.socket >/dev/null 2>&1 & \
        for i in $(seq 50); do [ -S /run/fcgiwrap.socket ] && break; sleep 0.1; done; \
        chmod 666 /run/fcgiwrap.socket; \
        nginx -c /pki/nginx.conf"
    );
    docker_ok(&["exec", &server.0, "sh", "-c", &setup]);
    // The gate's first mirror ran before the server was up: the clone refreshes it.
    clone_and_push(&bottle, url, &server.0, "bottle/https");

    // The server authenticated the gate as the token's user, for the push too.
    let access = docker_ok(&["exec", &server.0, "cat", "/var/log/nginx/access.log"]);
    assert!(
        access
            .lines()
            .any(|l| l.contains(" x-access-token ") && l.contains("git-receive-pack")),
        "{access}"
    );
    // The token: not in the agent's inspect output, files or environment; not in any log.
    assert!(!docker_ok(&["inspect", &bottle.agent()]).contains(&token));
    let out = agent(
        &bottle,
        &format!(
            "env | grep -cF '{token}'; grep -rlsF '{token}' / --exclude-dir=proc --exclude-dir=sys; echo grep-done"
        ),
    );
    assert_eq!(stdout(&out).trim(), "0\ngrep-done");
    let logs = docker(&["logs", &bottle.bundle()]);
    let logs = format!("{}{}", stdout(&logs), stderr(&logs));
    assert!(logs.contains("git-gate"), "the bundle logged: {logs}");
    assert!(!logs.contains(&token), "the token reached the bundle's log");
}
