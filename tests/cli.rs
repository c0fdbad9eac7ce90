//! The command-line contract (DESIGN §12), through the real binary.

mod common;
use common::{Scratch, stderr, stdout};

const MINIMAL: &str = "[bottles.demo]\nallow = [\"api.anthropic.com\"]\n";

#[test]
fn help_lists_every_command_of_the_contract() {
    let out = Scratch::new().run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for cmd in [
        "config", "plan", "up", "ls", "inspect", "logs", "exec", "attach", "kill", "queue",
        "approve", "deny", "audit", "notices", "history", "wait", "image", "doctor",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "`{cmd}` missing from --help:\n{help}"
        );
    }
    assert!(help.contains("--config") && help.contains("--state-dir"));
}

#[test]
fn approvals_commands_explain_bad_input() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&["queue"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "no pending requests");
    let out = scratch.run(&["queue", "--json"]);
    assert_eq!(stdout(&out).trim(), "[]");

    let out = scratch.run(&["approve", "demo", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`1` is not a request id"),
        "{}",
        stderr(&out)
    );
    let out = scratch.run(&["deny", "demo", "0123abcd", "--reason", "no"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bottle `demo` has no approvals queue"),
        "{}",
        stderr(&out)
    );
    let out = scratch.run(&["audit"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "no answered requests yet");
}

/// What a bundle's init kept in the state dir reaches the history when `history` runs (each
/// line once, however often), and `--since` keeps only what is that recent.
#[test]
fn history_reads_what_the_bundle_kept_once_and_since_keeps_the_recent() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let events = scratch.state_dir().join("bottles/demo/events");
    std::fs::create_dir_all(&events).expect("events dir");
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("a time")
    };
    let now = time::OffsetDateTime::now_utc();
    let old = fmt(now - time::Duration::hours(3));
    let recent = fmt(now - time::Duration::minutes(5));
    std::fs::write(
        events.join("events.jsonl.1"),
        format!(
            "{{\"time\":\"{old}\",\"daemon\":\"gateway\",\"msg\":\"request\",\"decision\":\"deny\",\"host\":\"old.example\",\"port\":443,\"reason\":\"not on this bottle's allowlist\"}}\n"
        ),
    )
    .expect("rotated copy");
    std::fs::write(
        events.join("events.jsonl"),
        format!(
            "{{\"time\":\"{recent}\",\"daemon\":\"supervise\",\"msg\":\"approval requested\",\"id\":\"0a1b2c3d\",\"action\":\"deploy\"}}\nnot json at all\n"
        ),
    )
    .expect("current file");
    let read = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = scratch.run(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).expect("json")
    };
    let all = read(&["history", "demo", "--json"]);
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["approval", "blocked"], "newest first: {all:#?}");
    assert_eq!(read(&["history", "demo", "--json"]).len(), 2, "stored once");
    let recent_only = read(&["history", "demo", "--since", "1h", "--json"]);
    assert_eq!(recent_only.len(), 1, "{recent_only:#?}");
    assert_eq!(recent_only[0]["detail"]["action"], "deploy");
    let out = scratch.run(&["history", "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a duration such as"),
        "{}",
        stderr(&out)
    );
    let text = stdout(&scratch.run(&["history", "demo"]));
    assert!(text.contains("approval 0a1b2c3d asked to deploy"), "{text}");
    assert!(text.contains("blocked old.example:443"), "{text}");
}

/// The history starts empty and remembers what the CLI did (here: a plan), newest first, as
/// text and as JSON.
#[test]
fn history_remembers_what_was_done() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&["history"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "nothing recorded yet");
    for name in ["first", "second"] {
        let out = scratch.run(&["plan", "demo", "--name", name]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = scratch.run(&["history"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with("second  prepared (plan written)"),
        "{text}"
    );
    assert!(
        lines[1].ends_with("first  prepared (plan written)"),
        "{text}"
    );
    let out = scratch.run(&["history", "first", "--json"]);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(events.as_array().map(Vec::len), Some(1));
    assert_eq!(events[0]["slug"], "first");
    assert_eq!(events[0]["kind"], "prepare");
    assert_eq!(events[0]["detail"]["bottle"], "demo");
}

/// Notices filed in a bottle's queue folder (as supervise files them) are listed newest first,
/// one line each, and `--mark-read` files exactly the ones shown as read.
#[test]
fn notices_are_listed_newest_first_and_marked_read() {
    use bottle_tui::sidecar::supervise::queue::Queue;
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&["notices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "no unread notices");

    let queue =
        |slug: &str| Queue::new(scratch.state_dir().join("bottles").join(slug).join("queue"));
    let (a, b) = (queue("alpha"), queue("beta"));
    a.ensure().expect("queue");
    b.ensure().expect("queue");
    let first = a.notice("tests are green").expect("notice");
    // Notices are ordered by their time, in whole seconds: the second one is a second later.
    let second_of = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let filed = second_of();
    common::eventually(
        "the clock passes a second",
        std::time::Duration::from_secs(5),
        || (second_of() > filed).then_some(()),
    );
    let second = b
        .notice("pushed bottle/x\n\x1b[2Jcleared?")
        .expect("notice");

    let out = scratch.run(&["notices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("beta {}", second.id)),
        "{text}"
    );
    assert!(
        lines[0].ends_with("pushed bottle/x  [2Jcleared?"),
        "one line, no escape: {text}"
    );
    assert!(
        lines[1].starts_with(&format!("alpha {}", first.id)),
        "{text}"
    );

    let out = scratch.run(&["notices", "alpha", "--json", "--mark-read"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[0]["slug"], "alpha");
    assert_eq!(shown[0]["message"], "tests are green");
    assert_eq!(shown.as_array().map(Vec::len), Some(1));
    assert_eq!(stderr(&out).trim(), "marked 1 read");

    let out = scratch.run(&["notices", "--json"]);
    let left: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(left.as_array().map(Vec::len), Some(1));
    assert_eq!(left[0]["id"], second.id.as_str());
}

#[test]
fn supervise_without_its_config_names_the_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
        .args(["supervise", "--config", "/nonexistent/supervise.json"])
        .output()
        .expect("run bottle-sidecar");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("cannot read the supervise config /nonexistent/supervise.json"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn git_gate_without_its_config_fails_and_says_which_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
        .args(["git-gate", "--config", "/nonexistent/git-gate.json"])
        .output()
        .expect("run bottle-sidecar");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON line");
    assert_eq!(line["daemon"], "git-gate");
    assert!(
        line["error"].as_str().is_some_and(
            |e| e.contains("cannot read the git-gate config /nonexistent/git-gate.json")
        ),
        "{line}"
    );
}

#[test]
fn the_git_gate_credential_helper_answers_get_from_the_identity_file() {
    use std::io::Write;
    let scratch = Scratch::new();
    let token = scratch.path().join("token");
    std::fs::write(&token, "ghp_secret123\n").expect("token");
    let run = |op: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
            .args(["git-gate", "credential", "--identity"])
            .arg(&token)
            .arg(op)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run bottle-sidecar");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"protocol=https\nhost=git.example.com\n\n")
            // `store` and `erase` may exit without reading their input.
            .ok();
        child.wait_with_output().expect("wait")
    };
    let out = run("get");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "username=x-access-token\npassword=ghp_secret123\n"
    );
    for op in ["store", "erase"] {
        let out = run(op);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).is_empty(), "{op} answers nothing");
    }
}

#[test]
fn the_dashboard_without_a_terminal_says_what_to_use_instead() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs a terminal"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("ls --json"), "{}", stderr(&out));
}

#[test]
fn a_session_without_an_agent_command_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
        .arg("session")
        .output()
        .expect("run bottle-sidecar");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bottle-sidecar session -- COMMAND"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn first_run_without_a_config_plans_the_built_in_default_and_says_so() {
    let scratch = Scratch::new();
    let out = scratch
        .command(&["plan", "claude", "--json"])
        .env_remove("ANTHROPIC_API_KEY")
        .env("CLAUDE_CODE_OAUTH_TOKEN", "tok-from-env")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("built-in default"), "{err}");
    assert!(err.contains("bottle-tui config init"), "{err}");
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("plan json");
    let text = plan.to_string();
    assert!(text.contains("api.anthropic.com"), "{text}");
    assert!(text.contains("CLAUDE_CODE_OAUTH_TOKEN"), "{text}");
    assert!(
        !text.contains("tok-from-env"),
        "the plan must not carry the token: {text}"
    );

    // With only an API key in the environment the default routes it as x-api-key.
    let out = scratch
        .command(&["plan", "claude", "--json"])
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env("ANTHROPIC_API_KEY", "key-from-env")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("x-api-key") && text.contains("ANTHROPIC_API_KEY"),
        "{text}"
    );
}

#[test]
fn config_check_without_a_config_explains_where_it_looked() {
    let scratch = Scratch::new();
    let out = scratch.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no config file found"), "{err}");
    assert!(
        err.contains("bottle.toml") && err.contains("xdg-config/bottle-tui/config.toml"),
        "{err}"
    );
    assert!(err.contains("bottle-tui config init"), "{err}");
}

#[test]
fn config_lookup_order_flag_env_cwd_then_xdg() {
    let scratch = Scratch::new();
    let xdg = scratch.path().join("xdg-config/bottle-tui/config.toml");
    std::fs::create_dir_all(xdg.parent().expect("parent")).expect("mkdir");
    std::fs::write(&xdg, MINIMAL).expect("write xdg");
    let path = |args: &[&str]| stdout(&scratch.run(args)).trim().to_owned();
    assert_eq!(path(&["config", "path"]), xdg.display().to_string());

    scratch.write_config(MINIMAL);
    assert_eq!(
        path(&["config", "path"]),
        "bottle.toml",
        "./bottle.toml wins over XDG"
    );

    let out = scratch
        .command(&["config", "path"])
        .env("BOTTLE_TUI_CONFIG", "/elsewhere/env.toml")
        .output()
        .expect("run");
    assert_eq!(
        stdout(&out).trim(),
        "/elsewhere/env.toml",
        "env wins over the cwd"
    );
    assert_eq!(
        path(&["--config", "/x/flag.toml", "config", "path"]),
        "/x/flag.toml"
    );
}

#[test]
fn a_missing_explicit_config_is_a_located_error() {
    let out = Scratch::new().run(&["--config", "/nonexistent/b.toml", "config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("/nonexistent/b.toml:1:1: cannot read the config file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_init_writes_a_valid_config_and_never_clobbers() {
    let scratch = Scratch::new();
    let out = scratch.run(&["config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = scratch.path().join("xdg-config/bottle-tui/config.toml");
    assert!(written.is_file());
    let check = scratch.run(&["config", "check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    std::fs::write(&written, "# mine\n").expect("edit");
    let again = scratch.run(&["config", "init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&written).expect("read"),
        "# mine\n",
        "kept"
    );
}

#[test]
fn plan_of_an_unknown_bottle_suggests_the_nearest() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&["plan", "dmeo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no bottle named `dmeo`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("did you mean `demo`?"),
        "{}",
        stderr(&out)
    );
    assert!(
        !scratch.state_dir().join("bottles/dmeo").exists(),
        "nothing written"
    );
}

#[test]
fn an_invalid_slug_argument_is_a_usage_error() {
    let out = Scratch::new().run(&["plan", "Not_A_Slug"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a valid name"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_prints_a_readable_summary_and_records_the_prepare() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&["plan", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("plan for bottle demo (slug demo, backend docker); nothing was started"),
        "{text}"
    );
    assert!(text.contains("bottle-demo-int (internal)"), "{text}");
    let store = bottle_tui::store::Store::open(&scratch.state_dir().join("state.db")).expect("db");
    let events = store.events(Some("demo"), 10).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "prepare");
}

#[test]
fn a_corrupt_state_db_is_named_and_left_alone() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    std::fs::create_dir_all(scratch.state_dir()).expect("mkdir");
    let db = scratch.state_dir().join("state.db");
    let garbage = b"garbage, not sqlite\n".repeat(300);
    std::fs::write(&db, &garbage).expect("write");
    let out = scratch.run(&["plan", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&db.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&db).expect("read"), garbage);
}

#[test]
fn logs_go_to_the_state_dir_not_the_terminal() {
    let scratch = Scratch::new();
    scratch.write_config(MINIMAL);
    let out = scratch.run(&["plan", "demo"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !stderr(&out).contains("prepared"),
        "log lines leaked to stderr"
    );
    let logs: Vec<_> = std::fs::read_dir(scratch.state_dir().join("logs"))
        .expect("log dir")
        .flatten()
        .collect();
    assert_eq!(logs.len(), 1);
    let text = std::fs::read_to_string(logs[0].path()).expect("log");
    assert!(text.contains("prepared"), "{text}");
}

/// A supervise config on a free loopback port with its queue in `dir`, for init tests.
fn supervise_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("supervise.json");
    let cfg = serde_json::json!({
        "listen": "127.0.0.1:0",
        "queue_dir": dir.join("queue"),
        "timeout_seconds": 60,
    });
    std::fs::write(&path, cfg.to_string()).expect("write supervise config");
    path
}

#[test]
fn sidecar_init_reaps_logs_json_and_exits_143_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
        .arg("init")
        .env("BOTTLE_DAEMONS", "supervise")
        .env("BOTTLE_SUPERVISE_CONFIG", supervise_config(dir.path()))
        .env("BOTTLE_STATUS_FILE", dir.path().join("status.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn init");
    // init's lines as they come, so SIGTERM is sent once supervise is listening.
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let out = child.stdout.take().expect("init's stdout");
        let said = std::sync::Arc::clone(&said);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                said.lock().expect("lines").push(line);
            }
        })
    };
    common::eventually(
        "supervise listens under init",
        std::time::Duration::from_secs(30),
        || {
            said.lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains("\"listening\"") && l.contains("\"supervise\""))
                .then_some(())
        },
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(143));
    reader.join().expect("reader");
    let lines: Vec<serde_json::Value> = said
        .lock()
        .expect("lines")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["daemon"].is_string()), "{lines:?}");
    // supervise started once, its own lines came through init with its name, and it stopped.
    let started = lines
        .iter()
        .filter(|l| l["msg"] == "daemon started" && l["target"] == "supervise")
        .count();
    assert_eq!(started, 1, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["daemon"] == "supervise" && l["msg"] == "listening"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l["msg"] == "stopping"));
}

#[test]
fn sidecar_health_reports_init_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = dir.path().join("status.json");
    let health = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
            .arg("health")
            .env("BOTTLE_STATUS_FILE", file)
            .output()
            .expect("health")
    };
    let out = health(&status);
    assert_eq!(out.status.code(), Some(1), "no init, not healthy");
    let mut init = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
        .arg("init")
        .env("BOTTLE_DAEMONS", "supervise")
        .env("BOTTLE_SUPERVISE_CONFIG", supervise_config(dir.path()))
        .env("BOTTLE_STATUS_FILE", &status)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("init");
    let out = common::eventually(
        "init reports supervise running",
        std::time::Duration::from_secs(30),
        || {
            let out = health(&status);
            stdout(&out)
                .contains("\"supervise\":\"running\"")
                .then_some(out)
        },
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("\"supervise\":\"running\""),
        "{}",
        stdout(&out)
    );
    // SIGTERM, not SIGKILL: init stops its daemons (a killed init would orphan supervise here,
    // where init is not PID 1).
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = init.wait();
    let out = health(&status);
    assert_eq!(out.status.code(), Some(1), "init gone: {}", stdout(&out));
}
