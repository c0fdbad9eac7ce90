//! An agent that floods its gateway with connections must not take the bottle's other
//! daemons with it: while 10,000 connections to the gateway are held open from inside a real
//! agent, the git gate still serves and supervise still answers.

mod common;

use common::docker::{Bottle, unique_slug};
use common::mcp::{mcp_output, notify};
use common::{Scratch, stderr, stdout};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 10_000;

/// Opens `n` connections to the gateway, each with half a request head, prints how many it
/// holds once done, then holds them until stdin closes.
const FLOOD: &str = r#"
import os, resource, socket, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
proxy = os.environ["HTTP_PROXY"].split("//", 1)[1].rstrip("/")
host, port = proxy.rsplit(":", 1)
addr = socket.getaddrinfo(host, int(port), socket.AF_INET)[0][4]
held, refused = [], 0
for _ in range(n):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(addr)
        s.sendall(b"GET http://api.example.com/ HTTP/1.1\r\nX-Slow: ")
        held.append(s)
    except OSError:
        refused += 1
        s.close()
print(f"held {len(held)} refused {refused}", flush=True)
sys.stdin.read()
"#;

#[test]
fn ten_thousand_gateway_connections_leave_the_git_gate_and_supervise_answering() {
    let scratch = Scratch::new();
    let upstream = common::docker::bare_upstream(&scratch);
    scratch.write_config(&common::docker::config(&format!(
        "[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{upstream}\"\n\
         [bottles.demo.supervise]\nenabled = true\n"
    )));
    let bottle = Bottle::up(&scratch, &unique_slug("flood"), &[]);

    // The flood runs in the agent and holds its connections while the probes run.
    let mut flood = std::process::Command::new(env!("CARGO_BIN_EXE_bottle-tui"))
        .args(["exec", &bottle.slug, "--", "python3", "-c", FLOOD])
        .arg(CONNECTIONS.to_string())
        .current_dir(scratch.path())
        .env("BOTTLE_TUI_STATE_DIR", scratch.state_dir())
        .env("HOME", scratch.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flood");
    let mut out = std::io::BufReader::new(flood.stdout.take().expect("stdout"));
    let mut line = String::new();
    let started = Instant::now();
    std::io::BufRead::read_line(&mut out, &mut line).expect("flood report");
    eprintln!("flood: {} in {:?}", line.trim(), started.elapsed());
    let held: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no flood report: {line:?}"));
    // Positive control: the flood really holds thousands of connections (the gateway accepts
    // what it can; the rest wait in its backlog or are refused).
    assert!(held >= 1000, "the flood held only {held} connections");

    // While it holds them: the git gate serves and supervise answers.
    let t = Instant::now();
    let git = bottle.sh("git ls-remote git://git-gate/web.git main");
    assert!(
        git.status.success() && stdout(&git).contains("refs/heads/main"),
        "git gate during the flood: {}{}",
        stdout(&git),
        stderr(&git)
    );
    let git_took = t.elapsed();
    let t = Instant::now();
    let sup = mcp_output(
        &scratch,
        &bottle.slug,
        &notify("still here during the flood"),
    );
    assert!(
        stdout(&sup).contains("HTTP 200"),
        "supervise during the flood: {}{}",
        stdout(&sup),
        stderr(&sup)
    );
    let sup_took = t.elapsed();
    eprintln!("during the flood: git ls-remote {git_took:?}, supervise notify {sup_took:?}");

    drop(flood.stdin.take());
    let _ = flood.wait();
    // After it: the gateway serves again (its denial, since api.example.com is not served here).
    common::eventually(
        "the gateway serving (its 403) after the flood",
        Duration::from_secs(60),
        || {
            let out =
                bottle.sh("curl -s -o /dev/null -w '%{http_code}' http://not-allowed.example/");
            (stdout(&out) == "403").then_some(())
        },
    );
}
