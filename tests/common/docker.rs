//! Helpers for tests against the real Docker engine: launch bottles through the real CLI,
//! look at what the engine holds, and clean up even when a test panics.
#![allow(dead_code)]

use super::{Scratch, stderr, stdout};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const TEST_AGENT: &str = "bottle-test-agent:latest";

/// A unique slug per call, so tests running side by side never share a bottle.
pub fn unique_slug(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{prefix}-{n}", std::process::id() % 100_000)
}

/// A config with one test-agent bottle named `demo`; `extra` is appended to `[bottles.demo]`.
pub fn config(extra: &str) -> String {
    format!(
        "[agents.test]\nimage = \"{TEST_AGENT}\"\ncommand = [\"sh\"]\nprompt = \"You are a test.\"\n\n\
         [bottles.demo]\nagent = \"test\"\nallow = [\"api.example.com\"]\n{extra}\n"
    )
}

/// A bottle's `health` map as `ls --json` shows it (Null while it is not listed).
pub fn health_of(scratch: &Scratch, slug: &str) -> serde_json::Value {
    let ls = scratch.run(&["ls", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&ls)).expect("ls json");
    all.as_array()
        .and_then(|a| a.iter().find(|b| b["slug"] == slug))
        .map(|b| b["health"].clone())
        .unwrap_or_default()
}

/// Waits until `ls --json` shows `daemon` of `slug` healthy; the whole map then.
pub fn wait_healthy(scratch: &Scratch, slug: &str, daemon: &str) -> serde_json::Value {
    super::eventually(
        &format!("{slug}'s {daemon} is healthy"),
        std::time::Duration::from_secs(90),
        || Some(health_of(scratch, slug)).filter(|h| h[daemon] == "healthy"),
    )
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Every container, network and volume labelled with `slug`, as "kind name" lines.
pub fn resources_of(slug: &str) -> Vec<String> {
    let filter = format!("label=bottle.slug={slug}");
    let mut found = Vec::new();
    for (kind, args) in [
        (
            "container",
            vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &filter],
        ),
        (
            "network",
            vec![
                "network",
                "ls",
                "--format",
                "{{.Name}}",
                "--filter",
                &filter,
            ],
        ),
        (
            "volume",
            vec!["volume", "ls", "--format", "{{.Name}}", "--filter", &filter],
        ),
    ] {
        for name in docker_ok(&args).lines().filter(|l| !l.is_empty()) {
            found.push(format!("{kind} {name}"));
        }
    }
    found
}

/// A launched bottle; killed (through the CLI) when dropped.
pub struct Bottle<'s> {
    pub scratch: &'s Scratch,
    pub slug: String,
}

impl<'s> Bottle<'s> {
    /// `bottle-tui up demo --name SLUG`, asserting success.
    pub fn up(scratch: &'s Scratch, slug: &str, env: &[(&str, &str)]) -> Self {
        let out = up(scratch, &["demo", "--name", slug], env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "up {slug} failed:\n{}",
            stderr(&out)
        );
        assert_eq!(stdout(&out).trim(), slug, "up prints the slug");
        Self {
            scratch,
            slug: slug.to_owned(),
        }
    }

    pub fn agent(&self) -> String {
        format!("bottle-{}-agent", self.slug)
    }

    pub fn bundle(&self) -> String {
        format!("bottle-{}-bundle", self.slug)
    }

    /// `bottle-tui exec SLUG -- sh -c SCRIPT`.
    pub fn sh(&self, script: &str) -> Output {
        self.scratch
            .run(&["exec", &self.slug, "--", "sh", "-c", script])
    }

    /// The container's address on the bottle's internal network.
    pub fn ip_of(&self, container: &str) -> String {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"bottle-{}-int\").IPAddress}}}}",
            self.slug
        );
        docker_ok(&["inspect", "-f", &format, container])
            .trim()
            .to_owned()
    }
}

impl Drop for Bottle<'_> {
    fn drop(&mut self) {
        let _ = self.scratch.run(&["kill", &self.slug]);
    }
}

pub fn up(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut full = vec!["up"];
    full.extend_from_slice(args);
    let mut c = scratch.command(&full);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run up")
}

/// A scratch folder holding `config(extra)` as bottle.toml.
pub fn scratch_with(extra: &str) -> Scratch {
    let s = Scratch::new();
    s.write_config(&config(extra));
    s
}

/// A FAKE server (a script from tests/fakes, run by python3 in the test-agent image) on a
/// bottle's way out under `alias`, with the scratch folder's `origin.pem`/`origin.key` (see
/// `pki::origin`); ready when it has logged `"listening"`, removed when dropped. Only the
/// bundle reaches it: it sits on the bottle's egress bridge, never on the host's routes.
pub struct FakeOrigin {
    pub name: String,
}

impl FakeOrigin {
    pub fn start(scratch: &Scratch, slug: &str, alias: &str, script: &str, port: u16) -> Self {
        let name = format!(
            "{slug}-{}",
            script.trim_end_matches(".py").replace('_', "-")
        );
        let fakes = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fakes");
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &format!("bottle-{slug}-ext"),
            "--network-alias",
            alias,
            "-v",
            &format!("{}:/pki:ro", scratch.path().display()),
            "-v",
            &format!("{fakes}:/fake:ro"),
            "--user",
            "root",
            TEST_AGENT,
            "python3",
            "-u",
            &format!("/fake/{script}"),
            &port.to_string(),
            "/pki/origin.pem",
            "/pki/origin.key",
        ]);
        let s = Self { name };
        super::eventually(
            &format!("{script} listening in {}", s.name),
            std::time::Duration::from_secs(60),
            || s.log().contains("\"listening\"").then_some(()),
        );
        s
    }

    pub fn log(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!("{}{}", stdout(&out), stderr(&out))
    }

    /// The JSON lines it logged, but the `listening` one.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["method"].is_string())
            .collect()
    }
}

impl Drop for FakeOrigin {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// A bare git repository `up.git` in the scratch folder with `main` holding one commit; its
/// `file://` URL.
pub fn bare_upstream(scratch: &Scratch) -> String {
    let dir = scratch.path().display().to_string();
    let made = Command::new("sh")
        .args([
            "-c",
            "set -e; cd \"$1\"; git init -q --bare -b main up.git; git init -q -b main w; cd w; \
             echo hi > f; git add f; git -c user.name=t -c user.email=t@t commit -qm one; \
             git push -q ../up.git main",
            "sh",
            &dir,
        ])
        .status()
        .expect("git");
    assert!(made.success(), "cannot make the upstream");
    format!("file://{dir}/up.git")
}
