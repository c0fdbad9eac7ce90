//! The dashboard end to end on the real engine, driven through tmux: two bottles with healthy
//! dots, a third launched from the dialog, its agent pane (type, see, detach), kill through the
//! confirm dialog, a gateway killed from outside turning its dot red, and a SIGKILLed dashboard
//! that finds every bottle again.

mod common;
use common::docker::{Bottle, docker_ok, scratch_with, unique_slug};
use common::tmux::Tmux;
use common::{stderr, stdout};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_bottle-tui");

/// The table row of `slug` (a line of the bottles table), if it is on screen.
fn row<'a>(screen: &'a str, slug: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.starts_with('│') && l.contains(&format!(" {slug} ")))
}

fn wait_until(tmux: &Tmux, what: &str, within: Duration, ok: impl Fn(&str) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let screen = tmux.capture();
        if ok(&screen) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not seen within {within:?}:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// SIGKILLs the bundle's gateway process (init restarts it after a backoff).
fn kill_gateway(bundle: &str) {
    let script = r#"for p in /proc/[0-9]*; do c=$(tr '\0' ' ' < $p/cmdline 2>/dev/null); case "$c" in *"sidecar gate""way"*) kill -9 ${p#/proc/};; esac; done"#;
    docker_ok(&["exec", bundle, "sh", "-c", script]);
}

#[test]
fn dashboard_end_to_end_in_tmux() {
    let scratch = scratch_with("");
    let a = unique_slug("dash-a");
    let b = unique_slug("dash-b");
    let c = unique_slug("dash-c");
    let first = Bottle::up(&scratch, &a, &[]);
    let _second = Bottle::up(&scratch, &b, &[]);
    let tmux = Tmux::for_scratch(&scratch, &a, &[]);
    tmux.line(BIN);

    // Both bottles, each with a healthy gateway dot.
    let healthy = |s: &str, slug: &str| row(s, slug).is_some_and(|r| r.contains("●gw"));
    let took = wait_until(&tmux, "two healthy bottles", WAIT, |s| {
        healthy(s, &a) && healthy(s, &b)
    });
    eprintln!("both bottles healthy on screen after {took:?}");

    // Launch a third from the dialog, with a name.
    tmux.keys(&["n"]);
    tmux.wait_for("launch a bottle", WAIT);
    tmux.keys(&["Tab"]);
    tmux.type_text(&c);
    tmux.keys(&["Enter"]);
    wait_until(
        &tmux,
        "the launched bottle running",
        Duration::from_secs(60),
        |s| row(s, &c).is_some_and(|r| r.contains("running")),
    );
    // The dialog shows progress until provision is done, then closes by itself.
    tmux.wait_gone("launch a bottle", Duration::from_secs(60));
    // Selected: the detail panel shows its history (the snapshots pin it above the
    // resources, which the live preview cuts off).
    wait_until(&tmux, "the launch in the detail panel", WAIT, |s| {
        s.lines()
            .any(|l| l.contains("history") && l.contains("launched from demo"))
    });

    // It is selected: open its agent pane, type, see the answer, detach.
    tmux.keys(&["Enter"]);
    tmux.wait_for(&format!("{c} · ctrl-q detaches"), WAIT);
    tmux.type_text("echo hi");
    tmux.keys(&["Enter"]);
    wait_until(&tmux, "hi in the pane", WAIT, |s| {
        s.lines()
            .any(|l| l.trim_matches(|ch: char| ch == '│' || ch.is_whitespace()) == "hi")
    });
    tmux.keys(&["C-q"]);
    tmux.wait_gone(&format!("{c} · ctrl-q detaches"), WAIT);
    assert!(row(&tmux.capture(), &c).is_some(), "the agent still runs");

    // Kill it through the confirm dialog and watch it vanish.
    tmux.keys(&["x"]);
    tmux.wait_for("Remove every container and network of", WAIT);
    tmux.keys(&["y"]);
    wait_until(&tmux, "the killed bottle gone", WAIT, |s| {
        row(s, &c).is_none()
    });
    let out = scratch.run(&["ls", "--json"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&c),
        "{}",
        stderr(&out)
    );
    // The dashboard wrote the launch and the kill into the history, in that order (the row can
    // vanish before the kill is recorded; between them come the states it saw on the way).
    let history_kinds = || -> Vec<String> {
        let out = scratch.run(&["history", &c, "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .expect("history json")
            .iter()
            .rev()
            .map(|e| {
                format!(
                    "{} {}",
                    e["kind"].as_str().unwrap_or("?"),
                    e["detail"]["ok"]
                )
            })
            .collect()
    };
    let kinds = common::eventually("the kill in the history", Duration::from_secs(60), || {
        let kinds = history_kinds();
        kinds.iter().any(|k| k.starts_with("kill")).then_some(kinds)
    });
    let launch = kinds.iter().position(|k| k == "launch true");
    let kill = kinds.iter().position(|k| k.starts_with("kill"));
    assert!(
        matches!((launch, kill), (Some(l), Some(k)) if l < k),
        "oldest first: {kinds:?}"
    );

    // A gateway killed from outside turns its dot red at once (init's line, not the next
    // health check); the time is printed, the bound only keeps a loaded machine from failing.
    kill_gateway(&first.bundle());
    let took = wait_until(&tmux, "a red gateway dot", WAIT, |s| {
        row(s, &a).is_some_and(|r| r.contains("✖g"))
    });
    eprintln!("red dot after {took:?}");
    // The dashboard read init's line and put the exit in the history.
    let exits = || {
        let out = scratch.run(&["history", &a]);
        stdout(&out)
            .lines()
            .filter(|l| l.contains("gateway exited with code 137"))
            .count()
    };
    common::eventually(
        "the gateway's exit in the history",
        Duration::from_secs(60),
        || (exits() > 0).then_some(()),
    );

    // A request the gateway refuses is in the history too (once the gateway is back).
    common::eventually(
        "the restarted gateway refuses the request",
        Duration::from_secs(60),
        || {
            let out = first.sh(
                "curl -sS --max-time 3 -o /dev/null -w '%{http_code}' http://blocked-by-policy.example/",
            );
            (stdout(&out) == "403").then_some(())
        },
    );
    common::eventually(
        "the refusal in the history",
        Duration::from_secs(60),
        || {
            let out = scratch.run(&["history", &a]);
            stdout(&out)
                .contains("blocked blocked-by-policy.example:80")
                .then_some(())
        },
    );

    // kill -9 the dashboard; a new one finds every bottle again.
    let shell = tmux.shell_pid().to_string();
    let status = std::process::Command::new("pkill")
        .args(["-KILL", "-P", &shell, "-x", "bottle-tui"])
        .status()
        .expect("pkill");
    assert!(
        status.success(),
        "no dashboard process under the tmux shell"
    );
    // The killed dashboard left the terminal raw (no CR→LF), and its screen is still there:
    // end the line with a line feed, and wait for output only a run command prints.
    tmux.type_text("stty sane; clear; echo terminal-$((2+3))");
    tmux.keys(&["C-j"]);
    tmux.wait_for("terminal-5", WAIT);
    assert!(
        !tmux.capture().contains(a.as_str()),
        "the old dashboard's screen is gone"
    );
    tmux.line(BIN);
    wait_until(&tmux, "both bottles back", WAIT, |s| {
        row(s, &a).is_some() && row(s, &b).is_some()
    });
    // The new dashboard reads the same log line again (its logs view shows it); the history
    // still has the exit once.
    tmux.keys(&["/"]);
    tmux.type_text(&a);
    tmux.keys(&["Enter", "l"]);
    // (The detail panel's last log lines can show it too: wait for the logs view first.)
    tmux.wait_for("every daemon · following", WAIT);
    tmux.wait_for("daemon exited", WAIT);
    assert_eq!(exits(), 1, "one recorded exit of the gateway");
    // (An escape and a key sent together would read as alt+key.)
    tmux.keys(&["Escape"]);
    tmux.wait_gone("every daemon · following", WAIT);
    tmux.keys(&["q"]);
    tmux.wait_for(common::tmux::HOST_PROMPT, WAIT);
}

/// A relay between a socket of the test's and the real engine's: stopping it makes the engine
/// unreachable for whoever uses it (as a stopped or restarting dockerd does), starting it again
/// brings the same engine back.
struct Relay {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(path: &std::path::Path) -> Self {
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind relay");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::UnixListener::from_std(listener).expect("listener");
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((mut client, _)) = accepted else { continue };
                            conns.spawn(async move {
                                if let Ok(mut engine) =
                                    tokio::net::UnixStream::connect("/var/run/docker.sock").await
                                {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                                }
                            });
                        }
                        _ = &mut rx => break,
                    }
                }
                conns.abort_all();
            });
        });
        Self {
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn the_engine_going_away_is_shown_in_place_and_the_dashboard_reconnects() {
    let scratch = scratch_with("");
    let a = unique_slug("dash-r");
    let _bottle = Bottle::up(&scratch, &a, &[]);
    let socket = scratch.path().join("engine.sock");
    let mut relay = Relay::start(&socket);
    let tmux = Tmux::for_scratch(
        &scratch,
        &a,
        &[("DOCKER_HOST", format!("unix://{}", socket.display()))],
    );
    tmux.line(BIN);
    wait_until(&tmux, "the bottle", WAIT, |s| {
        row(s, &a).is_some() && s.contains("engine ●")
    });

    relay.stop();
    let took = wait_until(&tmux, "the engine reported unreachable", WAIT, |s| {
        s.contains("engine unreachable")
    });
    eprintln!("engine loss shown after {took:?}");
    // Keys still work while the engine is away.
    tmux.keys(&["?"]);
    tmux.wait_for("remap any key", WAIT);
    tmux.keys(&["Escape"]);
    tmux.wait_gone("remap any key", WAIT);

    let _relay = Relay::start(&socket);
    let took = wait_until(&tmux, "the engine back", WAIT, |s| {
        s.contains("engine ●") && row(s, &a).is_some()
    });
    eprintln!("reconnected after {took:?}");
    tmux.keys(&["q"]);
    tmux.wait_for(common::tmux::HOST_PROMPT, WAIT);
}

/// An agent asks through supervise; the dashboard shows the pending badge and count, and
/// answering in its approvals dialog returns the agent's call — approve, then deny with a
/// reason typed in place.
#[test]
fn approvals_answered_from_the_dashboard() {
    use common::mcp::{approval, mcp, notify, result_text};
    let scratch = scratch_with("[bottles.demo.supervise]\nenabled = true\ntimeout = \"2m\"\n");
    let slug = unique_slug("dash-ap");
    let _bottle = Bottle::up(&scratch, &slug, &[]);
    let tmux = Tmux::for_scratch(&scratch, &slug, &[]);
    tmux.line(BIN);
    // The slug is long, so narrower columns (backend) give way: find the row by slug alone.
    // Its last table cell is PENDING.
    let pending_cell = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("│  ") && l.contains(slug.as_str()))
            .and_then(|l| l.split("││").next())
            .and_then(|t| t.split_whitespace().last())
            .map(str::to_owned)
    };
    wait_until(&tmux, "the bottle", WAIT, |s| {
        pending_cell(s).as_deref() == Some("–")
    });
    // What the dashboard writes to its terminal, raw: each new request rings the bell once.
    let raw = scratch.path().join("pane.raw");
    tmux.pipe_output_to(&raw);
    let bells = || {
        std::fs::read(&raw)
            .unwrap_or_default()
            .iter()
            .filter(|b| **b == 0x07)
            .count()
    };

    std::thread::scope(|scope| {
        let call = scope.spawn(|| mcp(&scratch, &slug, &approval("push bottle/e2e", "one commit")));
        let took = wait_until(&tmux, "the pending badge", WAIT, |s| {
            s.contains("⚑ 1 pending") && pending_cell(s).as_deref() == Some("1")
        });
        eprintln!("pending badge on screen {took:?} after the call started");
        common::eventually("a bell for the request", Duration::from_secs(30), || {
            (bells() >= 1).then_some(())
        });
        common::holds_for(
            "exactly one bell for the request",
            Duration::from_millis(300),
            || bells() != 1,
        );
        tmux.keys(&["a"]);
        tmux.wait_for("push bottle/e2e", WAIT);
        tmux.keys(&["y"]);
        let body = call.join().expect("call thread");
        assert_eq!(result_text(&body), "approved");
        wait_until(&tmux, "the badge gone", WAIT, |s| !s.contains("pending —"));

        assert_eq!(bells(), 1, "answering rings no bell");
        let call = scope.spawn(|| mcp(&scratch, &slug, &approval("force-push main", "")));
        tmux.wait_for("force-push main", WAIT);
        common::eventually(
            "a bell for the second request",
            Duration::from_secs(30),
            || (bells() >= 2).then_some(()),
        );
        common::holds_for("exactly one more bell", Duration::from_millis(300), || {
            bells() != 2
        });
        tmux.keys(&["n"]);
        tmux.type_text("never on main");
        tmux.keys(&["Enter"]);
        assert_eq!(
            result_text(&call.join().expect("call thread")),
            "denied: never on main"
        );
    });

    // A notice: counted in the header, shown in the open dialog, marked read with `r`.
    let said = mcp(&scratch, &slug, &notify("tests are green on bottle/e2e"));
    assert_eq!(result_text(&said), "delivered", "{said}");
    wait_until(&tmux, "the notice", WAIT, |s| {
        s.contains("✉ 1 notice") && s.contains("tests are green on bottle/e2e")
    });
    tmux.keys(&["r"]);
    wait_until(&tmux, "the notice read", WAIT, |s| {
        s.contains("1 notice marked read")
            && !s.contains("✉")
            && !s.contains("tests are green on bottle/e2e")
    });
    let out = scratch.run(&["notices", &slug, "--json"]);
    assert_eq!(stdout(&out).trim(), "[]", "{}", common::stderr(&out));
    let read = scratch
        .state_dir()
        .join("bottles")
        .join(slug.as_str())
        .join("queue/notices/read");
    assert_eq!(
        std::fs::read_dir(&read).map(Iterator::count).unwrap_or(0),
        1,
        "the notice is kept, read, in {}",
        read.display()
    );

    tmux.keys(&["Escape"]);
    let out = scratch.run(&["audit", &slug, "--json"]);
    let trail: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("audit json");
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert_eq!(trail[0]["reason"], "never on main");
    assert_eq!(trail[1]["decision"], "approved");
    tmux.keys(&["q"]);
}

#[test]
fn first_run_without_a_config_opens_on_the_built_in_default_and_lists_the_engines_bottles() {
    // A bottle launched elsewhere (another config) is on the engine.
    let other = scratch_with("");
    let slug = unique_slug("first");
    let _running = Bottle::up(&other, &slug, &[]);

    let scratch = common::Scratch::new();
    assert!(!scratch.path().join("bottle.toml").exists());
    let tmux = Tmux::for_scratch(&scratch, &slug, &[]);
    tmux.line(BIN);
    // The banner names the config in use and how to write one; the bottle is listed.
    tmux.wait_for("using the built-in default", WAIT);
    wait_until(&tmux, "the engine's bottle listed", WAIT, |s| {
        row(s, &slug).is_some()
    });
    assert!(tmux.capture().contains("config init"));
    // The launch dialog offers the default bottle.
    tmux.keys(&["n"]);
    tmux.wait_for("launch a bottle", WAIT);
    wait_until(&tmux, "the default bottle in the dialog", WAIT, |s| {
        s.lines()
            .any(|l| l.contains("claude") && !l.contains("built-in default"))
    });
    tmux.keys(&["Escape"]);
    tmux.wait_gone("launch a bottle", WAIT);
    tmux.keys(&["q"]);
    tmux.wait_for(common::tmux::HOST_PROMPT, WAIT);
}

/// The selected bottle's CPU chart moves while its agent burns a core, and a burst of refused
/// requests shows as a red bar in that row's egress sparkline.
#[test]
fn the_charts_move_with_the_agents_cpu_and_its_refused_requests() {
    let scratch = scratch_with("");
    let slug = unique_slug("ch");
    let bottle = Bottle::up(&scratch, &slug, &[]);
    let tmux = Tmux::for_scratch(&scratch, &slug, &[]);
    // Wide: the egress column gives way last, but other tests' bottles (long slugs) share
    // the engine and the table.
    tmux.resize(240, 48);
    tmux.line(BIN);
    // The one bottle is selected: its chart fills from the stats stream.
    let cpu = |s: &str| -> Option<f64> {
        s.lines()
            .filter_map(|l| l.split("││").nth(1))
            .find_map(|d| d.trim_start().strip_prefix("cpu"))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.trim_end_matches(['%', '│']).parse().ok())
    };
    // Quiet first (the bottle's own start shows on the chart too), then a busy core.
    wait_until(&tmux, "a quiet cpu chart", WAIT, |s| {
        cpu(s).is_some_and(|c| c < 10.0)
    });
    let started = Instant::now();
    // Detached from the exec's pipes, so the exec returns at once.
    bottle.sh("setsid sh -c 'yes > /dev/null' < /dev/null > /dev/null 2>&1 & echo started");
    // Far above quiet, though on a loaded machine `yes` may not get a whole core.
    wait_until(&tmux, "the chart showing the busy core", WAIT, |s| {
        cpu(s).is_some_and(|c| c > 30.0)
    });
    eprintln!(
        "a busy core on the chart {:?} after it started",
        started.elapsed()
    );
    bottle.sh("pkill yes; true");

    // A burst of refused requests: the row's egress shows this minute's bar, in red.
    let egress = |s: &str| -> Option<String> {
        let r = row(s, &slug)?;
        let cells: Vec<&str> = r.split("││").next()?.split_whitespace().collect();
        cells
            .iter()
            .find(|c| c.chars().count() == 10 && c.chars().all(|ch| ('▁'..='█').contains(&ch)))
            .map(|c| (*c).to_owned())
    };
    wait_until(&tmux, "an empty egress sparkline", WAIT, |s| {
        egress(s).is_some_and(|e| e.chars().all(|c| c == '▁'))
    });
    let sent = Instant::now();
    bottle.sh(
        "for i in 1 2 3 4 5 6 7 8 9 10; do curl -s -o /dev/null -x http://gateway:8888 http://refused-$i.example/; done",
    );
    let took = wait_until(&tmux, "this minute's bar", WAIT, |s| {
        egress(s).is_some_and(|e| e.ends_with('█'))
    });
    eprintln!(
        "the refusals on the row's sparkline {took:?} after the burst ended ({:?} after it began)",
        sent.elapsed()
    );
    // Red: the bar's cell in the coloured capture.
    let colours = tmux.capture_with_colours();
    let line = colours
        .lines()
        .find(|l| l.contains(slug.as_str()) && l.contains('█'))
        .expect("the row, coloured");
    // The style in force at the bar: the nearest run of SGR sequences before it.
    let upto = &line[..line.rfind('█').expect("the bar, coloured")];
    let before = &upto[..upto.rfind('m').map_or(0, |i| i + 1)];
    let mut sequences = Vec::new();
    let mut rest = before;
    while rest.ends_with('m') {
        let Some(i) = rest.rfind("\u{1b}[") else {
            break;
        };
        sequences.push(rest[i + 2..rest.len() - 1].to_owned());
        rest = &rest[..i];
    }
    // Red as SGR says it: 31 or 91, or 38;5;1 / 38;5;9 (256 colours).
    let red = |seq: &str| {
        let p: Vec<&str> = seq.split(';').collect();
        p.iter().any(|x| *x == "31" || *x == "91")
            || p.windows(3)
                .any(|w| w[0] == "38" && w[1] == "5" && (w[2] == "1" || w[2] == "9"))
    };
    assert!(
        sequences.iter().any(|s| red(s)),
        "the bar of a minute with refusals is red: {sequences:?} in {line:?}"
    );
    tmux.keys(&["q"]);
}
