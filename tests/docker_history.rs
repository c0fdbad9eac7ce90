//! A history with no gaps, on the real engine: with no dashboard running, a bottle's agent is
//! refused by the gateway, asks an approval that is denied, and exits; `bottle-tui history`,
//! started only afterwards, has every one of those events, once (however often it runs), in
//! order — from the lines the bundle's init kept in the state dir and the status changes the
//! agent's session holder logged to the engine.

mod common;
use common::docker::{Bottle, docker_ok, scratch_with, unique_slug};
use common::mcp::{approval, mcp};
use common::{Scratch, stderr, stdout};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn history(s: &Scratch, slug: &str) -> Vec<serde_json::Value> {
    let out = s.run(&["history", slug, "--json", "--limit", "500"]);
    assert!(out.status.success(), "history: {}", stderr(&out));
    let mut events: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&out)).expect("history --json is JSON");
    events.reverse(); // oldest first
    events
}

#[test]
fn what_happened_with_no_dashboard_open_reaches_the_history_once_in_order() {
    let s = scratch_with("[bottles.demo.supervise]\nenabled = true\ntimeout = \"1m\"\n");
    let slug = unique_slug("hist");
    let b = Bottle::up(&s, &slug, &[]);

    // Refused: a host nobody listed (the gateway decides before any lookup).
    let code = stdout(&b.sh(
        "curl -s -o /dev/null -w '%{http_code}' -x http://gateway:8888 http://not-listed.example/",
    ));
    assert_eq!(code.trim(), "403", "the gateway refuses the unlisted host");

    // Asked, and denied from the CLI.
    std::thread::scope(|scope| {
        let call = scope.spawn(|| mcp(&s, &slug, &approval("deploy the history test", "")));
        let id = common::eventually("the request in the queue", WAIT, || {
            let out = s.run(&["queue", "--json"]);
            let list: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).ok()?;
            list.into_iter()
                .find(|r| r["slug"] == slug.as_str())
                .and_then(|r| r["id"].as_str().map(str::to_owned))
        });
        let out = s.run(&["deny", &slug, &id, "--reason", "not today"]);
        assert!(out.status.success(), "deny: {}", stderr(&out));
        call.join().expect("the agent's call returns");
    });

    // The agent exits (its session passes the engine's SIGTERM on).
    docker_ok(&["stop", "-t", "20", &b.agent()]);

    // Only now does a bottle-tui process look.
    let first = history(&s, &slug);
    let kinds: Vec<String> = first
        .iter()
        .map(|e| {
            let d = &e["detail"];
            match e["kind"].as_str().unwrap_or("?") {
                "blocked" => format!("blocked {}", d["host"].as_str().unwrap_or("?")),
                "approval" => format!("approval {}", d["step"].as_str().unwrap_or("?")),
                "status" => format!("status {}", d["status"].as_str().unwrap_or("?")),
                other => other.to_owned(),
            }
        })
        .collect();
    let wanted = [
        "blocked not-listed.example",
        "approval requested",
        "approval answered",
        "status exited",
    ];
    let found: Vec<&str> = kinds
        .iter()
        .map(String::as_str)
        .filter(|k| wanted.contains(k))
        .collect();
    assert_eq!(found, wanted, "in order, once each; all: {kinds:?}");
    let answered = first
        .iter()
        .find(|e| e["kind"] == "approval" && e["detail"]["step"] == "answered")
        .expect("the answer");
    assert_eq!(answered["detail"]["decision"], "denied");
    assert_eq!(answered["detail"]["reason"], "not today");

    // A second look (another process) adds nothing.
    let second = history(&s, &slug);
    assert_eq!(second.len(), first.len(), "each event is stored once");
    // Another state dir's history does not take this bottle's events (its agent runs on the
    // same engine, but the bottle is not that state dir's).
    let other = Scratch::new();
    let theirs = history(&other, &slug);
    assert!(theirs.is_empty(), "{theirs:#?}");

    // The state dir's file held them: the bundle's own record, no dashboard involved.
    let kept = std::fs::read_to_string(
        s.state_dir()
            .join("bottles")
            .join(&slug)
            .join("events")
            .join("events.jsonl"),
    )
    .expect("the kept events file");
    // (Which lines are kept, allowed requests not among them: `src/sidecar/log.rs` tests.)
    assert!(kept.contains("not-listed.example") && kept.contains("approval answered"));
}

#[test]
fn an_agent_killed_behind_its_sessions_back_is_reconstructed_from_the_engine_once() {
    let s = scratch_with("");
    let slug = unique_slug("hist-kill");
    let b = Bottle::up(&s, &slug, &[]);
    // SIGKILL to the container: its session holder says nothing.
    docker_ok(&["kill", &b.agent()]);
    let ended = |events: &[serde_json::Value]| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["kind"] == "ended")
            .cloned()
            .collect()
    };
    let first = history(&s, &slug);
    let found = ended(&first);
    assert_eq!(found.len(), 1, "{first:#?}");
    assert_eq!(found[0]["detail"]["exit_code"], 137);
    assert!(
        !first
            .iter()
            .any(|e| e["kind"] == "status" && e["detail"]["status"] == "exited"),
        "the session never said exited"
    );
    assert_eq!(
        ended(&history(&s, &slug)).len(),
        1,
        "once, however often it is read"
    );
}
