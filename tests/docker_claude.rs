//! The real Claude Code binary, from the project's own agent image, in a real bottle: the
//! Messages API is a FAKE (tests/fakes/anthropic_api.py, a local HTTPS server the bundle
//! reaches under the route's host name), since Anthropic's servers cannot be reached here.
//! Everything else is real: gateway, credential injection, supervise, sessions, attach.
//!
//! The agent command waits for a marker before starting Claude Code, so its first request
//! cannot leave before the stand-in answers under the route's name (the gateway would
//! otherwise resolve the name on the public DNS).

mod common;

use common::docker::{Bottle, FakeOrigin, docker, docker_ok, unique_slug};
use common::tmux::Tmux;
use common::{Scratch, stderr, stdout};
use std::time::{Duration, Instant};

const AGENT_IMAGE: &str = "bottle-agent:latest";
/// A FIFO the agent command blocks on (no polling) until the test writes to it.
const READY: &str = "/tmp/stand-in-ready";
const ANSWER: &str = "STAND-IN ANSWER";
const WAIT: Duration = Duration::from_secs(60);

/// A config whose `demo` bottle runs Claude Code (after the marker) and reaches `host`
/// through a route that injects `header: format` from `token_env`.
fn config(host: &str, header: &str, format: &str, token_env: &str, env: &str) -> String {
    format!(
        r#"[agents.cc]
image = "{AGENT_IMAGE}"
command = ["sh", "-c", "mkfifo {READY} && read _ < {READY} && exec claude --dangerously-skip-permissions"]
claude_code = true
prompt = "You are in a test bottle."
env = {{ {env} }}

[bottles.demo]
agent = "cc"
allow = ["{host}"]
allow_private = ["{host}:443"]
upstream_ca = "origin-ca.pem"

[[bottles.demo.routes]]
host = "{host}"
header = "{header}"
format = "{format}"
token_env = "{token_env}"

[bottles.demo.supervise]
enabled = true
timeout = "2m"
"#
    )
}

/// A scratch folder whose bottle routes api.anthropic.com with the OAuth token (the default's
/// route), its origin certificate made for the stand-in.
fn oauth_scratch() -> Scratch {
    let scratch = Scratch::new();
    common::pki::origin(scratch.path(), "api.anthropic.com");
    scratch.write_config(&config(
        "api.anthropic.com",
        "Authorization",
        "Bearer {token}",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "",
    ));
    scratch
}

/// Lets the agent command start Claude Code; returns when the marker is there.
fn release(bottle: &Bottle<'_>) -> Instant {
    // The command makes the FIFO once provision lets it start (up may return a moment before).
    common::eventually("the agent command waiting on its FIFO", WAIT, || {
        docker(&["exec", &bottle.agent(), "test", "-p", READY])
            .status
            .success()
            .then_some(())
    });
    // Writing blocks until the command has it open for reading, then it starts Claude Code.
    docker_ok(&[
        "exec",
        &bottle.agent(),
        "sh",
        "-c",
        &format!("echo go > {READY}"),
    ]);
    Instant::now()
}

/// `claude -p` in the agent prints the stand-in's answer.
fn print_mode_answers(bottle: &Bottle<'_>) {
    let out = bottle.sh("claude -p 'say hello'");
    assert!(
        stdout(&out).contains(ANSWER),
        "claude -p: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Checks every request the stand-in saw: the real credential in `header`, never a
/// placeholder; returns "METHOD path" of each (query strings cut) for the log.
fn check_credentials(api: &FakeOrigin, header: &str, expected: &str) -> Vec<String> {
    let requests = api.requests();
    assert!(!requests.is_empty(), "the stand-in saw no request");
    let mut seen = Vec::new();
    for r in &requests {
        let line = r.to_string();
        assert!(
            !line.contains("bottle-placeholder"),
            "a placeholder reached the API: {line}"
        );
        let path = r["path"].as_str().unwrap_or_default();
        if path.starts_with("/v1/") || path.starts_with("/api/") {
            assert_eq!(
                r["headers"][header].as_str(),
                Some(expected),
                "request without the real credential in {header}: {line}"
            );
        }
        let short = path.split('?').next().unwrap_or_default();
        seen.push(format!("{} {short}", r["method"].as_str().unwrap_or("?")));
    }
    seen.sort();
    seen.dedup();
    seen
}

/// What the gateway refused while Claude Code started: the hosts it tried beyond the route.
fn gateway_denials(scratch: &Scratch, slug: &str) -> Vec<String> {
    let out = scratch.run(&["logs", slug, "--daemon", "gateway"]);
    let mut hosts: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["decision"] == "deny")
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("?").to_owned();
            format!("{}:{} ({})", s("host"), v["port"], s("reason"))
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

fn queue(s: &Scratch) -> Vec<serde_json::Value> {
    let out = s.run(&["queue", "--json"]);
    assert!(out.status.success(), "queue: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("queue --json is JSON")
}

/// Text of first-run screens that must not appear: onboarding, trust, bypass and key dialogs.
const DIALOGS: &[&str] = &[
    "Do you trust",
    "trust the files",
    "Choose the text style",
    "Unable to connect",
    "Yes, I accept",
    "Detected a custom API key",
    "Select login method",
];

fn assert_no_dialog(screen: &str) {
    for d in DIALOGS {
        assert!(!screen.contains(d), "a first-run screen ({d:?}):\n{screen}");
    }
}

#[test]
fn oauth_claude_code_answers_lists_supervise_opens_ready_and_runs_the_approval_loop() {
    let token = format!("sk-ant-oat01-REAL-{}", std::process::id());
    let scratch = oauth_scratch();
    let slug = unique_slug("cc");
    let began = Instant::now();
    let bottle = Bottle::up(&scratch, &slug, &[("CLAUDE_CODE_OAUTH_TOKEN", &token)]);
    let up_took = began.elapsed();
    let api = FakeOrigin::start(
        &scratch,
        &slug,
        "api.anthropic.com",
        "anthropic_api.py",
        443,
    );
    let released = release(&bottle);

    // The interactive client in the session opens at its input box, no dialog first.
    let tmux = Tmux::for_scratch(&scratch, &format!("{slug}-a"), &[]);
    let attach = format!("{} attach {slug}", env!("CARGO_BIN_EXE_bottle-tui"));
    tmux.line(&attach);
    tmux.wait_for("bypass permissions on", WAIT);
    let to_input_box = released.elapsed();
    assert_no_dialog(&tmux.capture());
    eprintln!(
        "up took {up_took:?}; Claude Code's input box {to_input_box:?} after it was let start"
    );

    // A typed prompt gets the streamed answer on screen.
    tmux.type_text("hello from the test");
    tmux.keys(&["Enter"]);
    tmux.wait_for(ANSWER, WAIT);

    // Detach and re-attach from a new process: the answer is repainted.
    tmux.keys(&["C-q"]);
    tmux.wait_for(&format!("[detached from {slug}"), WAIT);
    tmux.clear();
    assert!(!tmux.capture().contains(ANSWER));
    tmux.line(&attach);
    tmux.wait_for(ANSWER, WAIT);

    // A tool_use of the supervise tool: Claude Code files the request, `approve` answers it,
    // and the tool result goes back to the API.
    tmux.type_text("ASK-APPROVAL for the deploy");
    tmux.keys(&["Enter"]);
    let id = common::eventually("Claude Code filing the approval request", WAIT, || {
        queue(&scratch)
            .into_iter()
            .find(|r| r["slug"] == slug.as_str() && r["action"] == "deploy the stand-in")
            .and_then(|r| r["id"].as_str().map(str::to_owned))
    });
    let out = scratch.run(&["approve", &slug, &id, "--reason", "go ahead"]);
    assert!(out.status.success(), "approve: {}", stderr(&out));
    tmux.wait_for("STAND-IN GOT TOOL RESULT", WAIT);
    tmux.keys(&["C-q"]);
    let results: Vec<String> = api
        .requests()
        .iter()
        .filter_map(|r| r["user_text"].as_str().map(str::to_owned))
        .filter(|t| t.contains("approved"))
        .collect();
    assert!(
        results.iter().any(|t| t.contains("go ahead")),
        "the tool result never reached the API: {results:?}"
    );

    // `claude -p` prints the stand-in's answer; `claude mcp list` shows supervise connected.
    print_mode_answers(&bottle);
    let out = bottle.sh("claude mcp list");
    let listed = stdout(&out);
    let line = listed
        .lines()
        .find(|l| l.starts_with("supervise"))
        .unwrap_or_else(|| panic!("no supervise server in:\n{listed}{}", stderr(&out)));
    assert!(line.contains("Connected"), "{line}");

    // Every request carried the real token, and the model was offered the supervise tools
    // directly (not behind ToolSearch).
    let endpoints = check_credentials(&api, "authorization", &format!("Bearer {token}"));
    let offered = api
        .requests()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/v1/messages")
        })
        .any(|r| {
            r["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|n| n == "mcp__supervise__request_approval"))
        });
    assert!(
        offered,
        "the supervise tool was never offered:\n{}",
        api.log()
    );
    eprintln!("endpoints the stand-in served: {endpoints:?}");
    eprintln!(
        "the gateway refused: {:?}",
        gateway_denials(&scratch, &slug)
    );
    let agent_env = stdout(&bottle.sh("env"));
    assert!(
        !agent_env.contains(&token),
        "the agent holds the real token"
    );
}

#[test]
fn api_key_through_an_own_llm_gateway_needs_no_key_dialog() {
    let key = format!("sk-ant-api03-REAL-{}", std::process::id());
    let host = "llm.gateway.test";
    let scratch = Scratch::new();
    common::pki::origin(scratch.path(), host);
    scratch.write_config(&config(
        host,
        "x-api-key",
        "{token}",
        "ANTHROPIC_API_KEY",
        &format!("ANTHROPIC_BASE_URL = \"https://{host}\""),
    ));
    let slug = unique_slug("cckey");
    let bottle = Bottle::up(&scratch, &slug, &[("ANTHROPIC_API_KEY", &key)]);
    let api = FakeOrigin::start(&scratch, &slug, host, "anthropic_api.py", 443);
    release(&bottle);

    let tmux = Tmux::for_scratch(&scratch, &format!("{slug}-k"), &[]);
    tmux.line(&format!(
        "{} attach {slug}",
        env!("CARGO_BIN_EXE_bottle-tui")
    ));
    tmux.wait_for("bypass permissions on", WAIT);
    assert_no_dialog(&tmux.capture());
    tmux.type_text("hello through the LLM gateway");
    tmux.keys(&["Enter"]);
    tmux.wait_for(ANSWER, WAIT);
    tmux.keys(&["C-q"]);

    print_mode_answers(&bottle);
    let endpoints = check_credentials(&api, "x-api-key", &key);
    assert!(
        endpoints.iter().any(|e| e.starts_with("POST /v1/messages")),
        "{endpoints:?}"
    );
    eprintln!("endpoints the LLM gateway stand-in served: {endpoints:?}");
    eprintln!(
        "the gateway refused: {:?}",
        gateway_denials(&scratch, &slug)
    );
}

#[test]
fn without_a_workspace_claude_code_works_in_its_own_writable_folder() {
    let scratch = oauth_scratch();
    let bottle = Bottle::up(
        &scratch,
        &unique_slug("ccwd"),
        &[("CLAUDE_CODE_OAUTH_TOKEN", "t")],
    );
    let out = bottle.sh("pwd && touch made-here && ls -ld . ~/.claude && stat -c %U ~/.claude");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.starts_with("/workspace\n"), "{text}");
    assert!(
        text.trim_end().ends_with("node"),
        "~/.claude is not the agent's: {text}"
    );
    let trusted = stdout(&bottle.sh("cat ~/.claude.json"));
    let doc: serde_json::Value = serde_json::from_str(&trusted).expect(".claude.json");
    assert_eq!(
        doc["projects"]["/workspace"]["hasTrustDialogAccepted"],
        true
    );
    assert_eq!(doc["hasCompletedOnboarding"], true);
    assert_eq!(doc["autoUpdates"], false);
    let settings = stdout(&bottle.sh("cat ~/.claude/settings.json"));
    assert!(
        settings.contains("\"skipDangerousModePermissionPrompt\": true"),
        "{settings}"
    );
    let prompt = stdout(&bottle.sh("cat ~/.claude/CLAUDE.md"));
    assert_eq!(prompt.trim(), "You are in a test bottle.");
}

/// The agent's status as `ls --json` reports it: (status, reason).
fn ls_status(s: &Scratch, slug: &str) -> Option<(String, Option<String>)> {
    let out = s.run(&["ls", "--json"]);
    assert!(out.status.success(), "ls --json: {}", stderr(&out));
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&out)).expect("ls --json is JSON");
    let a = all.into_iter().find(|b| b["slug"] == slug)?["agent"]["activity"].clone();
    Some((
        a["status"].as_str()?.to_owned(),
        a["reason"].as_str().map(str::to_owned),
    ))
}

#[test]
fn claude_codes_own_hooks_say_working_needs_you_and_idle_in_ls_the_dashboard_wait_and_notify() {
    let token = format!("sk-ant-oat01-REAL-{}", std::process::id());
    let scratch = Scratch::new();
    common::pki::origin(scratch.path(), "api.anthropic.com");
    let notified = scratch.path().join("notified.log");
    // Claude Code asks before running Bash: the command does not skip permissions.
    let toml = config(
        "api.anthropic.com",
        "Authorization",
        "Bearer {token}",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "",
    )
    .replace(
        "exec claude --dangerously-skip-permissions",
        "exec claude --permission-mode default",
    ) + &format!(
        "\n[notify]\ncommand = [\"sh\", \"-c\", \"echo \\\"$1|$2|$3\\\" >> {}\", \"notify\"]\n",
        notified.display()
    );
    scratch.write_config(&toml);
    let slug = unique_slug("cc-status");
    let bottle = Bottle::up(&scratch, &slug, &[("CLAUDE_CODE_OAUTH_TOKEN", &token)]);
    let _api = FakeOrigin::start(
        &scratch,
        &slug,
        "api.anthropic.com",
        "anthropic_api.py",
        443,
    );
    let (first, _) = common::eventually("the holder's first record", WAIT, || {
        ls_status(&scratch, &slug)
    });
    assert_eq!(first, "starting", "before Claude Code has said anything");

    // The dashboard watches (and runs the notify command) while the agent works.
    let dash = Tmux::for_scratch(&scratch, &format!("{slug}-d"), &[]);
    dash.line(env!("CARGO_BIN_EXE_bottle-tui"));
    dash.wait_for(&slug, WAIT);
    let released = release(&bottle);
    common::eventually(
        "idle once Claude Code has started (its SessionStart hook)",
        WAIT,
        || ls_status(&scratch, &slug).filter(|s| s.0 == "idle"),
    );
    eprintln!(
        "idle {:?} after Claude Code was let start",
        released.elapsed()
    );

    let tmux = Tmux::for_scratch(&scratch, &format!("{slug}-a"), &[]);
    tmux.line(&format!(
        "{} attach {slug}",
        env!("CARGO_BIN_EXE_bottle-tui")
    ));
    tmux.wait_for("❯", WAIT);
    tmux.type_text("RUN-BASH for the status test");
    let sent = Instant::now();
    tmux.keys(&["Enter"]);
    // The stand-in answers with a Bash tool use; Claude Code asks permission, and says so.
    tmux.wait_for("Do you want to proceed?", WAIT);
    let (_, reason) =
        common::eventually("needs-you while Claude Code asks permission", WAIT, || {
            ls_status(&scratch, &slug).filter(|s| s.0 == "needs-you")
        });
    let needs_after = sent.elapsed();
    assert_eq!(
        reason.as_deref(),
        Some("Claude needs your permission to use Bash")
    );
    dash.wait_for("needs-you", WAIT);
    // The header counts it (other tests' bottles share the engine: "N need(s) you").
    common::eventually("the header's count of agents needing you", WAIT, || {
        let top = dash.capture().lines().next().map(str::to_owned)?;
        (top.contains("needs you") || top.contains("need you")).then_some(())
    });

    // A script waiting for idle returns once the turn ends; one waiting for needs-you after
    // that times out with 124.
    let waiter = scratch
        .command(&["wait", &slug, "--for", "idle", "--timeout", "2m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wait");
    // The dialog ignores keys for a moment after it opens (so typing cannot approve by
    // accident): Enter until it takes it. An extra Enter at the empty prompt does nothing.
    common::eventually("Claude Code taking the approval", WAIT, || {
        tmux.keys(&["Enter"]);
        (!tmux.capture().contains("Do you want to proceed?")).then_some(())
    });
    tmux.wait_for("STAND-IN GOT TOOL RESULT", WAIT);
    let answered = Instant::now();
    let out = waiter.wait_with_output().expect("wait ends");
    assert!(
        out.status.success(),
        "wait --for idle: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("{slug}: idle")),
        "{}",
        stdout(&out)
    );
    eprintln!(
        "needs-you in ls {needs_after:?} after the prompt; wait --for idle returned {:?} after the answer was on screen",
        answered.elapsed()
    );
    dash.wait_for("idle", WAIT);
    let out = scratch.run(&["wait", &slug, "--for", "needs-you", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));

    // The notify command ran once per change into needs-you or idle, with bottle, status and
    // reason as its arguments. (The dashboard shows every bottle on the engine, and tells of
    // each: other tests' bottles have lines of their own.)
    let lines = common::eventually("the notify command's lines", WAIT, || {
        let text = std::fs::read_to_string(&notified).ok()?;
        let ours = format!("{slug}|");
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(&ours))
            .map(str::to_owned)
            .collect();
        (lines.len() >= 3).then_some(lines)
    });
    assert_eq!(
        lines,
        [
            format!("{slug}|idle|"),
            format!("{slug}|needs-you|Claude needs your permission to use Bash"),
            format!("{slug}|idle|"),
        ],
        "one line per change"
    );
    // The dashboard recorded every change in the history, in order: the prompt's working
    // included, however briefly it lasted.
    let statuses = common::eventually("the changes in the history", WAIT, || {
        let out = scratch.run(&["history", &slug, "--json"]);
        let events: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).ok()?;
        // Newest first; oldest first here.
        let mut seen: Vec<String> = events
            .iter()
            .filter(|e| e["kind"] == "status")
            .filter_map(|e| e["detail"]["status"].as_str().map(str::to_owned))
            .collect();
        seen.reverse();
        seen.ends_with(&["idle".to_owned()])
            .then_some(seen)
            .filter(|s| s.len() >= 5)
    });
    let from_start: Vec<&str> = statuses
        .iter()
        .map(String::as_str)
        .skip_while(|s| *s != "idle")
        .collect();
    assert_eq!(
        from_start,
        ["idle", "working", "needs-you", "working", "idle"],
        "{statuses:?}"
    );
    tmux.keys(&["C-q"]);
    dash.keys(&["q"]);
}
