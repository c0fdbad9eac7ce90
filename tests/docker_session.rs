//! Agent sessions end to end on the real engine, driven through tmux: attach, type, detach,
//! re-attach from a new process and see the screen at once, resize, a SIGKILLed client, and
//! a killed agent whose exit code `ls` reports.

mod common;
use common::docker::{Bottle, docker, docker_ok, scratch_with, unique_slug};
use common::tmux::Tmux;
use common::{Scratch, stderr, stdout};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const BIN: &str = env!("CARGO_BIN_EXE_bottle-tui");

fn tmux_for(scratch: &Scratch, name: &str) -> Tmux {
    // Ask the terminal every second, give up after three: a client whose terminal died leaves
    // within seconds rather than the default half minute.
    Tmux::for_scratch(scratch, name, &[("BOTTLE_ATTACH_PROBE", "1,3".to_owned())])
}

/// Waits until `ls` shows the agent exited; returns its status.
fn wait_agent_exited(scratch: &Scratch, slug: &str) -> serde_json::Value {
    common::eventually("the agent exits", Duration::from_secs(60), || {
        let agent = agent_of(scratch, slug);
        (agent["state"] == "exited").then_some(agent)
    })
}

fn agent_of(scratch: &Scratch, slug: &str) -> serde_json::Value {
    let out = scratch.run(&["ls", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("ls --json");
    all.as_array()
        .and_then(|a| a.iter().find(|b| b["slug"] == slug))
        .map(|b| b["agent"].clone())
        .unwrap_or_else(|| panic!("{slug} not in ls: {all}"))
}

/// Runs `action` (a shell command taking a pid, or nothing) on every in-container attach
/// client and returns how many there were. The pattern is split so the shell running this does
/// not match itself.
fn each_attach_client(agent: &str, action: &str) -> usize {
    let script = format!(
        r#"n=0; for p in /proc/[0-9]*; do c=$(tr '\0' ' ' < $p/cmdline 2>/dev/null); case "$c" in *"session at""tach"*) {action} ${{p#/proc/}}; n=$((n+1));; esac; done; echo $n"#
    );
    docker_ok(&["exec", agent, "sh", "-c", &script])
        .trim()
        .parse()
        .expect("a count")
}

fn sigkill_attach_clients(agent: &str) -> usize {
    each_attach_client(agent, "kill -9")
}

fn count_attach_clients(agent: &str) -> usize {
    each_attach_client(agent, "true")
}

#[test]
fn attach_detach_reattach_resize_and_exit_codes_in_tmux() {
    let scratch = scratch_with("");
    let slug = unique_slug("sess");
    let bottle = Bottle::up(&scratch, &slug, &[]);
    let tmux = tmux_for(&scratch, &slug);
    let attach = format!("{BIN} attach {slug}");

    // Attach: the detach key shows on the bottom line for a moment, then the agent's screen
    // is whole again. Type, see the output.
    tmux.line(&attach);
    let hint = format!("bottle {slug} · ctrl-q detaches");
    tmux.wait_for(&hint, WAIT);
    tmux.wait_gone(&hint, WAIT);
    tmux.line("echo hello-$((6*7))");
    tmux.wait_for("hello-42", WAIT);

    // Detach with the key: the agent keeps running.
    tmux.keys(&["C-q"]);
    tmux.wait_for(&format!("[detached from {slug}"), WAIT);
    assert_eq!(agent_of(&scratch, &slug)["state"], "running");

    // A new attach process repaints the earlier output at once.
    tmux.clear();
    assert!(!tmux.capture().contains("hello-42"));
    tmux.line(&attach);
    let took = tmux.wait_for("hello-42", WAIT);
    eprintln!("re-attach repainted the screen in {took:?}");

    // The agent follows the window's size.
    resize_and_check(&tmux, 100, 30);
    resize_and_check(&tmux, 160, 48);

    // SIGKILL the attach client inside the container: the agent survives, and the session
    // still serves a new client with the same screen.
    assert!(sigkill_attach_clients(&bottle.agent()) >= 1);
    tmux.wait_for(HOST_OR_ERROR, WAIT);
    tmux.line("stty sane");
    assert_eq!(agent_of(&scratch, &slug)["state"], "running");
    tmux.clear();
    tmux.line(&attach);
    tmux.wait_for("48 160", WAIT);

    // SIGKILL the host side (bottle-tui attach and its docker CLI): no attach client is left
    // behind in the container, and the agent still runs.
    let host = std::process::Command::new("pkill")
        .args(["-KILL", "-f", &format!("attach {slug}$")])
        .status()
        .expect("pkill");
    assert!(host.success(), "no host attach process to kill");
    let _ = std::process::Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("docker exec -it .* {} ", bottle.agent()),
        ])
        .status();
    common::eventually(
        "every attach client ends with its terminal",
        Duration::from_secs(60),
        || (count_attach_clients(&bottle.agent()) == 0).then_some(()),
    );
    assert_eq!(agent_of(&scratch, &slug)["state"], "running");

    // Kill the agent: the session ends with 128+9 and `ls` says so.
    let record = docker_ok(&["exec", &bottle.agent(), "cat", "/.bottle/run/session.json"]);
    let pid = serde_json::from_str::<serde_json::Value>(&record).expect("record")["pid"]
        .as_i64()
        .expect("pid");
    let out = docker(&["exec", &bottle.agent(), "kill", "-9", &pid.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let agent = wait_agent_exited(&scratch, &slug);
    assert_eq!(agent["state"], "exited", "{agent}");
    assert_eq!(agent["exit_code"], 137, "{agent}");

    // The finished agent's last screen is still there to see.
    let out = scratch.run(&["attach", &slug]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("48 160"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("exited with code 137"),
        "{}",
        stderr(&out)
    );
}

/// A resize travels tmux → docker CLI → engine → attach client → holder → agent while typed
/// keys go straight through, so ask the agent until it reports the new size.
fn resize_and_check(tmux: &Tmux, cols: u16, rows: u16) {
    tmux.resize(cols, rows);
    let expected = format!("{rows} {cols}");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        tmux.line("stty size");
        if tmux.shows_within(&expected, Duration::from_secs(1)) {
            return;
        }
    }
    panic!("the agent never saw {expected}:\n{}", tmux.capture());
}

/// After the client dies the host shell is back (its prompt) or the CLI reports the loss.
const HOST_OR_ERROR: &str = common::tmux::HOST_PROMPT;

#[test]
fn the_agent_command_exit_code_reaches_ls() {
    let scratch = Scratch::new();
    scratch.write_config(&common::docker::config("").replace(
        "command = [\"sh\"]",
        "command = [\"sh\", \"-c\", \"echo finishing; exit 5\"]",
    ));
    let slug = unique_slug("exit");
    let _bottle = Bottle::up(&scratch, &slug, &[]);
    let agent = wait_agent_exited(&scratch, &slug);
    assert_eq!(agent["exit_code"], 5, "{agent}");
    let out = scratch.run(&["attach", &slug]);
    assert!(stdout(&out).contains("finishing"), "{}", stdout(&out));

    // The exit code outlives the bottle in the history.
    let out = scratch.run(&["kill", &slug]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = bottle_tui::store::Store::open(&scratch.state_dir().join("state.db")).expect("db");
    let events = store.events(Some(&slug), 10).expect("events");
    let kill = events
        .iter()
        .find(|e| e.kind == "kill")
        .unwrap_or_else(|| panic!("no kill event: {events:?}"));
    assert_eq!(kill.detail["agent_exit_code"], 5, "{:?}", kill.detail);
    assert_eq!(kill.detail["agent_state"], "exited", "{:?}", kill.detail);
}

#[test]
fn attach_without_a_terminal_or_to_a_missing_bottle_is_a_clear_error() {
    let scratch = scratch_with("");
    let out = scratch.run(&["attach", "no-such-bottle"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no bottle `no-such-bottle`"),
        "{}",
        stderr(&out)
    );

    let slug = unique_slug("tty");
    let _bottle = Bottle::up(&scratch, &slug, &[]);
    let out = scratch.run(&["attach", &slug]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs a terminal"),
        "{}",
        stderr(&out)
    );
}

/// docker exec sets its TTY's size only after start, with a few quick retries a busy engine can
/// exhaust; then the exec's terminal stays 0×0. The attach client falls back to the viewer's
/// size that `bottle-tui attach` passes (`BOTTLE_ATTACH_SIZE`): the agent gets that size, and the
/// detach hint is drawn on that bottom line. Here `script` with a piped stdin makes a terminal
/// docker never sizes.
#[test]
fn a_terminal_docker_never_sizes_gets_the_viewers_size() {
    use std::io::Write;
    let scratch = scratch_with("");
    let slug = unique_slug("size");
    let bottle = Bottle::up(&scratch, &slug, &[]);
    // Asks the agent its size until it answers `expected` (a resize takes a moment to land).
    let run = |env: &str, expected: &str| {
        let mut child = std::process::Command::new("script")
            .args(["-qfec"])
            .arg(format!(
                "docker exec -it {env} {} /.bottle/bottle-sidecar session attach --name {slug}",
                bottle.agent()
            ))
            .arg("/dev/null")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script");
        let mut input = child.stdin.take().expect("stdin");
        let mut output = child.stdout.take().expect("stdout");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut output, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("seen").extend_from_slice(&buf[..n]);
            }
        });
        let text = || String::from_utf8_lossy(&seen.lock().expect("seen")).into_owned();
        // Attached once the holder has repainted the screen for us.
        common::eventually("the attach draws", Duration::from_secs(60), || {
            (!text().is_empty()).then_some(())
        });
        let answered = |t: &str| t.split('\n').any(|l| l.trim() == expected);
        let mut typed = None;
        common::eventually(
            &format!("the agent answers {expected}"),
            Duration::from_secs(60),
            || {
                if answered(&text()) {
                    return Some(());
                }
                // Typed again at most once a second: the answer to the last may be on its way.
                if typed.is_none_or(|t: std::time::Instant| t.elapsed() >= Duration::from_secs(1)) {
                    input.write_all(b"stty size\n").expect("type");
                    typed = Some(std::time::Instant::now());
                }
                None
            },
        );
        input.write_all(&[0x11]).expect("ctrl-q");
        child.wait().expect("script");
        reader.join().expect("reader");
        text()
    };
    // Control: without the fallback the agent keeps the holder's default size and no hint is drawn.
    let bare = run("", "24 80");
    assert!(bare.contains("24 80"), "{bare}");
    assert!(!bare.contains("\x1b[7m bottle"), "{bare}");
    let sized = run("-e BOTTLE_ATTACH_SIZE=100x30", "30 100");
    assert!(
        sized.contains("30 100"),
        "the agent did not get the viewer's size: {sized}"
    );
    assert!(
        sized.contains(&format!("\x1b[30;1H\x1b[7m bottle {slug}")),
        "the detach hint is not on the viewer's bottom line: {sized:?}"
    );
}
