//! supervise in a real bottle: an MCP client inside the agent (curl speaking streamable HTTP)
//! asks, the host answers with `bottle-tui approve` / `deny` or lets it time out, and the
//! audit trail has every answer. Bad input — malformed requests, unknown tools, queue files
//! corrupted on disk, supervise restarted mid-request — gets a clear error and loses nothing.

mod common;
use common::docker::{Bottle, docker_ok, scratch_with, unique_slug};
use common::mcp::{approval, mcp, mcp_output, result_text};
use common::{Scratch, stderr, stdout};
use std::time::{Duration, Instant};

const TIMEOUT_SECS: u64 = 8;

fn queue(s: &Scratch) -> Vec<serde_json::Value> {
    let out = s.run(&["queue", "--json"]);
    assert!(out.status.success(), "queue: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("queue --json is JSON")
}

/// Waits until `action` is pending and returns its id.
fn wait_pending(s: &Scratch, slug: &str, action: &str) -> String {
    common::eventually(
        &format!("`{action}` reaches the queue"),
        Duration::from_secs(60),
        || {
            queue(s)
                .into_iter()
                .find(|r| r["slug"] == slug && r["action"] == action)
                .map(|r| r["id"].as_str().expect("id").to_owned())
        },
    )
}

#[test]
fn approve_deny_timeout_and_the_audit_trail() {
    let s = scratch_with(&format!(
        "[bottles.demo.supervise]\nenabled = true\ntimeout = \"{TIMEOUT_SECS}s\"\n"
    ));
    let slug = unique_slug("sup");
    let b = Bottle::up(&s, &slug, &[]);

    // provision registered the server with Claude Code, reached by name, off the proxy.
    let claude = b.sh("cat ~/.claude.json");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&claude)).expect("claude.json");
    assert_eq!(
        doc["mcpServers"]["supervise"]["url"],
        "http://supervise:8900/mcp"
    );
    let no_proxy = stdout(&b.sh("echo $NO_PROXY"));
    assert!(no_proxy.contains("supervise"), "NO_PROXY={no_proxy}");

    std::thread::scope(|scope| {
        // approve
        let call = scope.spawn(|| mcp(&s, &slug, &approval("push bottle/fix", "one commit")));
        let id = wait_pending(&s, &slug, "push bottle/fix");
        let out = s.run(&["approve", &slug, &id, "--reason", "looks fine"]);
        assert!(out.status.success(), "approve: {}", stderr(&out));
        let body = call.join().expect("call thread");
        assert_eq!(result_text(&body), "approved: looks fine");

        // a second answer is refused and says who answered first
        let again = s.run(&["deny", &slug, &id]);
        assert_eq!(again.status.code(), Some(1));
        assert!(
            stderr(&again).contains("already answered: approved: looks fine"),
            "{}",
            stderr(&again)
        );

        // deny
        let call = scope.spawn(|| mcp(&s, &slug, &approval("rm -rf /workspace", "")));
        let id = wait_pending(&s, &slug, "rm -rf /workspace");
        let out = s.run(&["deny", &slug, &id, "--reason", "not today"]);
        assert!(out.status.success(), "deny: {}", stderr(&out));
        assert_eq!(
            result_text(&call.join().expect("call thread")),
            "denied: not today"
        );

        // timeout: nobody answers
        let started = Instant::now();
        let body = mcp(&s, &slug, &approval("deploy", "to prod"));
        let waited = started.elapsed();
        assert_eq!(result_text(&body), "denied: timed out");
        assert!(
            waited >= Duration::from_secs(TIMEOUT_SECS - 1),
            "answered after {waited:?}, before the {TIMEOUT_SECS}s timeout"
        );
    });
    assert!(queue(&s).iter().all(|r| r["slug"] != slug.as_str()));

    let out = s.run(&["audit", &slug, "--json"]);
    assert!(out.status.success(), "audit: {}", stderr(&out));
    let trail: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("audit json");
    let got: Vec<(String, String, String)> = trail
        .iter()
        .map(|d| {
            (
                d["action"].as_str().unwrap_or_default().to_owned(),
                format!(
                    "{} {}",
                    d["decision"].as_str().unwrap_or_default(),
                    d["reason"]
                ),
                d["by"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, "deploy");
    assert_eq!(got[0].1, "denied \"timed out\"");
    assert_eq!(got[0].2, "supervise");
    assert_eq!(got[1].0, "rm -rf /workspace");
    assert_eq!(got[1].1, "denied \"not today\"");
    assert_eq!(got[2].0, "push bottle/fix");
    assert_eq!(got[2].1, "approved \"looks fine\"");
    assert_ne!(got[2].2, "supervise", "a human answered");

    // every answer is in the bundle's log as one JSON line
    let logs = docker_ok(&["logs", &b.bundle()]);
    let answered = logs
        .lines()
        .filter(|l| l.contains("\"approval answered\""))
        .count();
    assert_eq!(answered, 3, "{logs}");
    drop(b);
}

#[test]
fn bad_input_is_refused_and_nothing_is_lost() {
    let s = scratch_with("[bottles.demo.supervise]\nenabled = true\ntimeout = \"60s\"\n");
    let slug = unique_slug("supbad");
    let b = Bottle::up(&s, &slug, &[]);

    // Malformed JSON-RPC, an unknown tool, a missing argument: clear errors, server serves on.
    let body = mcp(&s, &slug, r#"{"jsonrpc":"2.0","id":5,"meth"#);
    assert!(body.contains("HTTP 4"), "malformed body accepted: {body}");
    let body = mcp(
        &s,
        &slug,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"rm_rf","arguments":{}}}"#,
    );
    assert!(body.contains("tool not found"), "{body}");
    let body = mcp(
        &s,
        &slug,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"request_approval","arguments":{"details":"x"}}}"#,
    );
    assert!(body.contains("missing field `action`"), "{body}");
    let body = mcp(&s, &slug, &approval("", ""));
    assert!(body.contains("refused: `action` is empty"), "{body}");
    let big = "x".repeat(20_000);
    let body = mcp(&s, &slug, &approval("big", &big));
    assert!(body.contains("at most 16384"), "{body}");
    let body = mcp(
        &s,
        &slug,
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#,
    );
    assert!(
        body.contains("request_approval") && body.contains("notify"),
        "{body}"
    );

    // A Host that is not supervise's own name is refused (DNS rebinding).
    let out = b.sh(
        "curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' -H 'Content-Type: application/json' \
         -H 'Accept: application/json, text/event-stream' http://supervise:8900/mcp -d '{}'",
    );
    assert_eq!(stdout(&out).trim(), "403");

    let queue_dir = s.state_dir().join("bottles").join(&slug).join("queue");
    std::thread::scope(|scope| {
        // A request file corrupted on disk: listed as unreadable (named), the rest still listed.
        std::fs::write(queue_dir.join("requests/deadbeef.json"), b"{\"id\": \"dead")
            .expect("write");
        let call = scope.spawn(|| mcp(&s, &slug, &approval("survive corruption", "")));
        let id = wait_pending(&s, &slug, "survive corruption");
        let out = s.run(&["queue"]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("survive corruption"));
        assert!(
            stderr(&out).contains("deadbeef.json")
                && stderr(&out).contains("not a valid queue file"),
            "{}",
            stderr(&out)
        );

        // An answer file corrupted on disk: supervise sets it aside (keeps it) and the request
        // is pending again; a real answer still reaches the agent.
        std::fs::write(queue_dir.join(format!("answers/{id}.json")), b"garbage").expect("write");
        common::eventually(
            "the corrupt answer is set aside",
            Duration::from_secs(60),
            || (!queue_dir.join(format!("answers/{id}.json")).exists()).then_some(()),
        );
        let aside = std::fs::read_dir(queue_dir.join("answers"))
            .expect("answers")
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{id}.json.corrupt-"))
            })
            .count();
        assert_eq!(aside, 1, "the corrupt answer is kept aside");
        assert_eq!(wait_pending(&s, &slug, "survive corruption"), id);
        let out = s.run(&["approve", &slug, &id]);
        assert!(out.status.success(), "approve: {}", stderr(&out));
        assert_eq!(result_text(&call.join().expect("call")), "approved");
    });

    // supervise restarted while a request waits: the request survives, the agent's retry
    // joins it, and the human's answer reaches the retry.
    std::thread::scope(|scope| {
        let first = scope.spawn(|| mcp_output(&s, &slug, &approval("restart me", "")));
        let id = wait_pending(&s, &slug, "restart me");
        // The bundle has no pkill; `[s]` keeps this shell from matching itself.
        docker_ok(&[
            "exec",
            &b.bundle(),
            "sh",
            "-c",
            "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -q 'bottle-sidecar [s]upervise' && kill ${d#/proc/}; done; true",
        ]);
        let first = first.join().expect("first call");
        assert!(
            !stdout(&first).contains("\"result\""),
            "the first call cannot have an answer: {}",
            stdout(&first)
        );
        let retry = scope.spawn(|| {
            // init restarts supervise after a backoff; retry until it listens again.
            common::eventually("supervise comes back", Duration::from_secs(90), || {
                let out = mcp_output(&s, &slug, &approval("restart me", ""));
                (out.status.success() && stdout(&out).contains("\"result\"")).then(|| stdout(&out))
            })
        });
        // The retry joins the pending request: while it waits, still one, with the same id.
        let pending = || -> Vec<serde_json::Value> {
            queue(&s)
                .into_iter()
                .filter(|r| r["slug"] == slug.as_str())
                .collect()
        };
        common::holds_for(
            "the retry joins the pending request (one request, same id)",
            Duration::from_secs(3),
            || {
                let p = pending();
                p.len() != 1 || p[0]["id"] != id.as_str()
            },
        );
        let out = s.run(&["approve", &slug, &id]);
        assert!(out.status.success(), "approve: {}", stderr(&out));
        assert_eq!(result_text(&retry.join().expect("retry")), "approved");
        let logs = docker_ok(&["logs", &b.bundle()]);
        let started = logs
            .lines()
            .filter(|l| {
                l.contains("\"daemon\":\"supervise\"") && l.contains("\"msg\":\"listening\"")
            })
            .count();
        assert_eq!(started, 2, "supervise was restarted once: {logs}");
    });

    // kill closes what is still pending and records it.
    std::thread::scope(|scope| {
        let _waiting = scope.spawn(|| mcp_output(&s, &slug, &approval("orphan", "")));
        let id = wait_pending(&s, &slug, "orphan");
        drop(b);
        assert!(queue(&s).iter().all(|r| r["id"] != id.as_str()));
        let out = s.run(&["audit", &slug, "--json"]);
        let trail: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("audit");
        let orphan = trail
            .iter()
            .find(|d| d["request_id"] == id.as_str())
            .expect("recorded");
        assert_eq!(orphan["reason"], "the bottle was killed");
    });
}

#[test]
fn agent_text_reaches_the_operators_terminal_only_escaped() {
    let s = scratch_with("[bottles.demo.supervise]\nenabled = true\n");
    let slug = unique_slug("esc");
    let _b = Bottle::up(&s, &slug, &[]);
    // A one-character CSI (U+009B) that clears the screen, an OSC that retitles the window, DEL.
    let planted = "MARK-\u{9b}2J-\u{1b}]0;pwned\u{7}-\u{7f}-END";
    let body = mcp(&s, &slug, &common::mcp::notify(planted));
    assert!(body.contains("HTTP 200"), "{body}");
    let raw = |text: &str| {
        text.chars()
            .filter(|c| (c.is_control() && *c != '\n') || ('\u{80}'..='\u{9f}').contains(c))
            .map(|c| format!("U+{:04X}", c as u32))
            .collect::<Vec<_>>()
    };
    // JSON output: escaped, and still the same text once parsed (positive control).
    let out = s.run(&["notices", &slug, "--json"]);
    let text = stdout(&out);
    assert!(
        raw(&text).is_empty(),
        "raw controls {:?} in {text}",
        raw(&text)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(v.to_string().contains("MARK-"), "{v}");
    assert!(
        v.as_array().into_iter().flatten().any(|n| n["message"]
            .as_str()
            .is_some_and(|m| m.contains("\u{1b}]0;pwned\u{7}"))),
        "{v}"
    );
    // The bundle's log lines, as `logs` prints them: the text is there, its controls shown.
    common::eventually(
        "the notice in the bundle's log",
        Duration::from_secs(20),
        || {
            let text = stdout(&s.run(&["logs", &slug]));
            assert!(
                raw(&text).is_empty(),
                "raw controls {:?} in logs",
                raw(&text)
            );
            text.contains("MARK-").then_some(())
        },
    );
}

/// The attack the hourly limit stops: an agent files a request and hangs up at once (supervise
/// withdraws it, freeing the pending slot), over and over, each leaving files in the host's
/// state dir. With `max_per_hour = 3` the fourth is refused with when the next may be filed,
/// and nothing more is written.
#[test]
fn filing_and_withdrawing_in_a_loop_stops_at_the_hourly_limit() {
    let s = scratch_with(
        "[bottles.demo.supervise]\nenabled = true\ntimeout = \"5s\"\nmax_per_hour = 3\n",
    );
    let slug = unique_slug("suprate");
    let _b = Bottle::up(&s, &slug, &[]);
    let queue_dir = s.state_dir().join("bottles").join(&slug).join("queue");
    let files = |sub: &str| {
        std::fs::read_dir(queue_dir.join(sub))
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or_default()
    };
    // The MCP exchange with the tool call cut off after a second: the agent hanging up.
    let hang_up = common::mcp::MCP.replace("curl -sS -w", "curl -sS -m 1 -w");
    assert_ne!(hang_up, common::mcp::MCP, "the call is cut off");
    for i in 0..3 {
        let out = s.run(&[
            "exec",
            &slug,
            "--",
            "sh",
            "-c",
            &hang_up,
            "sh",
            &approval(&format!("ask {i}"), ""),
        ]);
        assert!(
            !out.status.success(),
            "the call was not cut off: {}",
            stdout(&out)
        );
        common::eventually("the request is withdrawn", Duration::from_secs(15), || {
            (files("answers") == i + 1).then_some(())
        });
    }
    assert_eq!(files("requests"), 3);
    let body = mcp(&s, &slug, &approval("one more", ""));
    let text = result_text(&body);
    assert!(
        text.contains("3 requests were filed in the last hour and this bottle allows 3")
            && text.contains("the next can be filed in"),
        "{body}"
    );
    assert_eq!(files("requests"), 3, "the refused request left a file");
    assert!(
        queue(&s).iter().all(|r| r["slug"] != slug.as_str()),
        "nothing is pending"
    );
}
