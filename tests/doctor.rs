//! `doctor` against the real Docker engine on this machine (scripts/test starts one and makes
//! `debian:bookworm-slim` offline before running the tests).

mod common;
use common::{Scratch, stderr, stdout};
use std::process::Command;

fn leftover_probe_resources() -> String {
    let mut found = String::new();
    let queries: [&[&str]; 2] = [
        &["ps", "-aq", "--filter", "label=bottle.role=doctor-probe"],
        &[
            "network",
            "ls",
            "-q",
            "--filter",
            "label=bottle.role=doctor-probe",
        ],
    ];
    for args in queries {
        let out = Command::new("docker")
            .args(args)
            .output()
            .expect("docker CLI");
        assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
        found.push_str(&stdout(&out));
    }
    found
}

#[test]
fn doctor_probes_the_real_engine_and_cleans_up() {
    let out = Scratch::new().run(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["ok"], true);
    let engine = &v["engine"];
    assert!(
        !engine["server_version"].as_str().unwrap_or("").is_empty(),
        "{engine}"
    );
    // Negotiated: never above what the server supports.
    let negotiated: f64 = engine["api_version"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("api");
    let server: f64 = engine["server_api_version"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("server api");
    assert!(negotiated > 1.0 && negotiated <= server, "{engine}");

    // The probe gave a definite answer, and its control shows the method works here.
    let dns = &v["dns_leak"];
    assert_eq!(dns["control_resolved"], true, "{dns}");
    let verdict = dns["verdict"].as_str().expect("verdict");
    assert!(verdict == "no-leak" || verdict == "leaks", "{dns}");
    assert_eq!(dns["internal_resolved"], verdict == "leaks");

    // The engine's IPv6 and log defaults are checked, and the answer matches the engine.
    let checks = v["checks"].as_array().expect("checks");
    let named = |n: &str| {
        checks
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no {n} check in {v:#}"))
    };
    let bridge_v6 =
        common::docker::docker_ok(&["network", "inspect", "-f", "{{.EnableIPv6}}", "bridge"]);
    let expected = if bridge_v6.trim() == "true" {
        "warn"
    } else {
        "ok"
    };
    assert_eq!(named("IPv6")["status"], expected, "{v:#}");
    assert!(
        named("log rotation")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("10m")),
        "{v:#}"
    );

    assert_eq!(
        leftover_probe_resources(),
        "",
        "probe containers or networks left behind"
    );
}

#[test]
fn doctor_with_an_unreachable_engine_fails_clearly() {
    let out = Scratch::new()
        .command(&["doctor"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("[FAIL] engine"), "{text}");
    assert!(text.contains("unix:///nonexistent/docker.sock"), "{text}");
}

#[test]
fn doctor_reports_an_unwritable_state_dir() {
    let scratch = Scratch::new();
    let blocker = scratch.path().join("file.txt");
    let out = scratch
        .command(&["doctor", "--json"])
        .env("BOTTLE_TUI_STATE_DIR", blocker.join("state"))
        // No engine: keeps this test from starting probe containers beside the one above.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let state = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "state dir")
        .expect("state dir check");
    assert_eq!(state["status"], "fail", "{state}");
}
