//! The smolvm backend against a scripted FAKE `smolvm` (tests/fakes/smolvm: smolvm cannot be
//! installed here), with the bundle on the real Docker engine. The fake records every argv;
//! these tests pin the exact calls, the env re-passed on every exec, the bundle published on
//! the alias only, and rollback when any step fails.

mod common;
use common::docker::{TEST_AGENT, docker_ok, resources_of, unique_slug};
use common::{Scratch, stderr, stdout};
use std::path::PathBuf;

fn fake() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/smolvm")
}

fn scratch() -> Scratch {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("skills/review/SKILL.md"),
        "review carefully\n",
    )
    .expect("skill");
    s.write_config(&format!(
        "[agents.test]\nimage = \"{TEST_AGENT}\"\ncommand = [\"sh\"]\nprompt = \"You are a test.\"\nskills = [\"skills/review\"]\n\n\
         [bottles.demo]\nagent = \"test\"\nbackend = \"smolvm\"\nallow = [\"api.example.com\"]\n\
         [[bottles.demo.routes]]\nhost = \"api.example.com\"\ntoken_env = \"EXAMPLE_TOKEN\"\n\
         [[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\n"
    ));
    s
}

fn up(s: &Scratch, slug: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = s.command(&["up", "demo", "--name", slug]);
    c.env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .env("EXAMPLE_TOKEN", "tok-smolvm");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run up")
}

fn kill(s: &Scratch, slug: &str) -> std::process::Output {
    s.command(&["kill", slug])
        .env("BOTTLE_TUI_SMOLVM", fake())
        .env("FAKE_SMOLVM_LOG", s.path().join("calls.log"))
        .output()
        .expect("run kill")
}

fn calls(s: &Scratch) -> Vec<Vec<String>> {
    std::fs::read_to_string(s.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON argv line"))
        .collect()
}

/// The `-e K=V` pairs of one call, in order.
fn env_args(call: &[String]) -> Vec<String> {
    call.windows(2)
        .filter(|w| w[0] == "-e")
        .map(|w| w[1].clone())
        .collect()
}

/// The command after `--` of an exec.
fn exec_cmd(call: &[String]) -> Vec<String> {
    call.iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .cloned()
        .collect()
}

#[test]
fn launch_makes_these_exact_calls_and_repasses_env_on_every_exec() {
    let s = scratch();
    let slug = unique_slug("smol");
    let machine = format!("bottle-{slug}");
    let out = up(&s, &slug, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), slug);
    let calls = calls(&s);
    let state = s.state_dir();
    let bundle = format!("bottle-{slug}-bundle");

    // The bundle publishes its entry ports on the bottle's own alias and nowhere else (on Linux
    // too: 127.0.0.1 would be shared by every bottle).
    let bindings: serde_json::Value = serde_json::from_str(&docker_ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.PortBindings}}",
        &bundle,
    ]))
    .expect("json");
    let bindings = bindings.as_object().expect("bindings");
    let mut published: Vec<&String> = bindings.keys().collect();
    published.sort();
    assert_eq!(published, ["8888/tcp", "8900/tcp", "9418/tcp"]);
    let alias = bindings["8888/tcp"][0]["HostIp"]
        .as_str()
        .expect("host ip")
        .to_owned();
    let n: u8 = alias
        .strip_prefix("127.0.0.")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{alias} is not a loopback alias"));
    assert!((16..=31).contains(&n), "{alias} is outside the alias pool");
    for (_, b) in bindings {
        assert_eq!(b[0]["HostIp"], alias.as_str(), "{b}");
    }
    let gw_port = docker_ok(&["port", &bundle, "8888/tcp"]);
    let gw_port = gw_port.trim().rsplit(':').next().expect("port").to_owned();

    // 1. pack, cached by image reference.
    let cache = state.join("cache/smolmachines");
    let packed = calls[0]
        .last()
        .expect("-o path")
        .replace(".partial", ".smolmachine");
    assert_eq!(calls[0][..4], ["pack", "create", "--image", TEST_AGENT]);
    assert_eq!(calls[0][4], "-o");
    assert!(
        calls[0][5].starts_with(&cache.display().to_string()) && calls[0][5].ends_with(".partial")
    );
    // 2. create --from the pack, allowlisted to the alias alone, with the guest env.
    assert_eq!(
        calls[1][..6],
        ["machine", "create", "--name", &machine, "--from", &packed]
    );
    assert_eq!(calls[1][6..8], ["--allow-cidr", &format!("{alias}/32")]);
    let env = env_args(&calls[1]);
    assert!(
        env.contains(&format!("HTTPS_PROXY=http://{alias}:{gw_port}")),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("NO_PROXY=localhost,127.0.0.1,{alias}")),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|e| e.starts_with("EXAMPLE_TOKEN=bottle-placeholder-")),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|e| e.contains("tok-smolvm")),
        "the real token reached the guest"
    );
    assert!(
        !calls.iter().flatten().any(|a| a.contains("tok-smolvm")),
        "the real token is on an argv"
    );
    // 3. start, then exec: every exec re-passes exactly the create-time env.
    assert_eq!(calls[2], ["machine", "start", "--name", &machine]);
    let execs: Vec<&Vec<String>> = calls
        .iter()
        .filter(|c| c[..2] == ["machine", "exec"])
        .collect();
    assert!(execs.len() >= 8, "{execs:?}");
    for e in &execs {
        assert_eq!(e[2..4], ["--name", &machine]);
        assert_eq!(env_args(e), env, "an exec without the guest env: {e:?}");
    }
    assert_eq!(exec_cmd(&calls[3]), ["true"], "readiness is polled first");
    let repair = exec_cmd(&calls[4]);
    assert_eq!(repair[..2], ["sh", "-c"]);
    assert_eq!(
        repair[2],
        "mkdir -p /home/node/.bottle && chown -R node:node /home/node && chown root:root /tmp /var/tmp && chmod 1777 /tmp /var/tmp && stat -c %a /tmp"
    );
    // Files go in with `machine cp`.
    let cps: Vec<(String, String)> = calls
        .iter()
        .filter(|c| c[..2] == ["machine", "cp"])
        .map(|c| (c[2].clone(), c[3].clone()))
        .collect();
    let dir = state.join(format!("bottles/{slug}"));
    assert_eq!(
        cps,
        [
            (
                dir.join("prompt.md").display().to_string(),
                format!("{machine}:/home/node/.bottle/prompt.md")
            ),
            (
                s.path()
                    .join("skills/review/SKILL.md")
                    .display()
                    .to_string(),
                format!("{machine}:/home/node/.claude/skills/review/SKILL.md")
            ),
            (
                dir.join("ca/ca.pem").display().to_string(),
                format!("{machine}:/usr/local/share/ca-certificates/bottle-ca.crt")
            ),
            (
                dir.join("agent-claude.json").display().to_string(),
                format!("{machine}:/home/node/.claude.json")
            ),
        ]
    );
    // The CA goes in with one exec that checks the trust store gained it.
    let ca = execs
        .iter()
        .map(|e| exec_cmd(e))
        .find(|c| c.len() > 2 && c[2].contains("openssl x509 -hash"))
        .expect("CA exec");
    assert_eq!(
        ca[3..5],
        ["sh", "/usr/local/share/ca-certificates/bottle-ca.crt"]
    );
    // git points at the gate on the alias; the MCP URL too.
    let git_port = docker_ok(&["port", &bundle, "9418/tcp"])
        .trim()
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    assert!(execs.iter().any(|e| {
        exec_cmd(e)
            .join(" ")
            .contains(&format!("url.git://{alias}:{git_port}/web.git.insteadOf"))
    }));
    let mcp = std::fs::read_to_string(dir.join("agent-claude.json")).expect("mcp file");
    let sup_port = docker_ok(&["port", &bundle, "8900/tcp"])
        .trim()
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    assert!(
        mcp.contains(&format!("http://{alias}:{sup_port}/mcp")),
        "{mcp}"
    );
    assert!(
        exec_cmd(execs.last().expect("last"))
            .join(" ")
            .contains("/.bottle/provisioned"),
        "done is marked last"
    );

    // ls shows it with its alias; kill removes the machine and the bundle.
    let ls = s.run(&["ls", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&ls)).expect("ls json");
    let me = all
        .as_array()
        .expect("array")
        .iter()
        .find(|b| b["slug"] == slug.as_str())
        .expect("listed");
    assert_eq!(me["backend"], "smolvm");
    assert_eq!(me["alias"], alias.as_str());
    assert_eq!(me["state"], "running");
    let out = kill(&s, &slug);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = calls_after(&s, calls.len());
    assert!(
        last.contains(&vec![
            "machine".into(),
            "rm".into(),
            "--force".into(),
            "--name".into(),
            machine.clone()
        ]),
        "{last:?}"
    );
    assert_eq!(resources_of(&slug), Vec::<String>::new());
}

fn calls_after(s: &Scratch, n: usize) -> Vec<Vec<String>> {
    calls(s).into_iter().skip(n).collect()
}

/// A failure makes `up` exit 1 naming the cause, and leaves no container, network, token file
/// or machine (a machine that was created is removed).
fn assert_rolled_back(env: &[(&str, &str)], expect_in_error: &[&str]) {
    let s = scratch();
    let slug = unique_slug("smolf");
    let machine = format!("bottle-{slug}");
    let out = up(&s, &slug, env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{env:?}: {err}");
    assert!(err.contains("everything it created was removed"), "{err}");
    for needle in expect_in_error {
        assert!(
            err.contains(needle),
            "{env:?}: expected {needle:?} in:\n{err}"
        );
    }
    assert_eq!(resources_of(&slug), Vec::<String>::new(), "{env:?}");
    assert!(
        !s.state_dir()
            .join(format!("bottles/{slug}/secrets/route-0.token"))
            .exists()
    );
    let calls = calls(&s);
    if let Some(created) = calls.iter().position(|c| c[..2] == ["machine", "create"]) {
        let removed = calls[created..]
            .iter()
            .any(|c| c[..2] == ["machine", "rm"] && c.contains(&machine));
        assert!(
            removed,
            "{env:?}: the machine was created and never removed: {calls:?}"
        );
    }
}

#[test]
fn each_failing_smolvm_call_is_named_with_its_exit_and_stderr_and_rolled_back() {
    for sub in [
        "pack create",
        "machine create",
        "machine start",
        "machine cp",
    ] {
        assert_rolled_back(
            &[("FAKE_SMOLVM_FAIL", sub)],
            &[
                &format!("smolvm {sub}"),
                "exited 1",
                &format!("fake smolvm: injected failure of {sub}"),
            ],
        );
    }
    for (needle, what) in [
        ("chmod 1777", "repairing ownership"),
        ("openssl x509", "installing the bottle CA"),
        ("provisioned", "marking provision done"),
    ] {
        assert_rolled_back(&[("FAKE_SMOLVM_FAIL_EXEC", needle)], &[what, "exited 1"]);
    }
}

#[test]
fn a_failure_injected_at_every_smolvm_step_is_rolled_back() {
    for step in bottle_tui::engine::smolvm_launch::STEPS {
        assert_rolled_back(
            &[(bottle_tui::engine::launch::FAIL_AT_ENV, step)],
            &[&format!("injected failure at step `{step}`")],
        );
    }
}

#[test]
fn readiness_is_polled_until_the_exec_channel_answers_and_packs_are_cached() {
    let s = scratch();
    let slug = unique_slug("smolw");
    let out = up(&s, &slug, &[("FAKE_SMOLVM_WARMUP", "3")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let calls = calls(&s);
    let trues = calls
        .iter()
        .filter(|c| c[..2] == ["machine", "exec"] && exec_cmd(c) == ["true"])
        .count();
    assert_eq!(trues, 4, "three refused, the fourth answered");
    assert_eq!(kill(&s, &slug).status.code(), Some(0));

    // A second launch of the same image reuses the pack.
    let again = unique_slug("smolw2");
    let out = up(&s, &again, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let packs = self::calls(&s)
        .iter()
        .filter(|c| c[..2] == ["pack", "create"])
        .count();
    assert_eq!(packs, 1, "the .smolmachine is cached by image reference");
    assert_eq!(kill(&s, &again).status.code(), Some(0));
}
