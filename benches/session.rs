//! `cargo bench --bench session`:
//! 1. Throughput: 100 MB of mixed terminal output (SGR colours, long wrapping lines, some
//!    UTF-8) from an agent's PTY through the session holder, the attach client and the pane's
//!    PTY into the pane's parser — against tmux rendering the same file in a detached pane of the
//!    same size, in the same run. Also the pane alone (the file in the pane's own PTY).
//! 2. Keystroke echo latency in a real bottle: pane → `docker exec -it` → attach client →
//!    holder → agent shell and back, p50/p99, against `docker exec -it` straight into a shell in
//!    the same container. Needs a Docker engine and what `scripts/test` builds; skipped with a
//!    message when there is none.

use bottle_tui::engine::attach::{AttachCommand, docker_attach};
use bottle_tui::tui::pane::{Pane, PaneEvent, PaneSize};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SIDECAR: &str = env!("CARGO_BIN_EXE_bottle-sidecar");
mod common;

const SIZE: PaneSize = PaneSize {
    rows: 48,
    cols: 160,
};
const MB: usize = 1_000_000;
const TOTAL: usize = 100 * MB;
const ROUNDS: usize = 3;
const KEYS: usize = 300;
const SENTINEL: &str = "END-OF-BENCH-OUTPUT";

/// Deterministic mixed output: lines of 0–400 columns (a third wrap at 160), a third coloured.
fn write_corpus(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("corpus"));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words = [
        "fn",
        "let",
        "match",
        "error:",
        "warning",
        "src/main.rs:42:7",
        "é",
        "日本語",
        "→",
        "Compiling",
        "bottle",
        "0x1f",
        "{",
        "}",
        "=>",
        "Ok(())",
    ];
    let mut written = 0;
    while written < TOTAL - 1000 {
        let len = (next() % 400) as usize;
        let mut line = String::with_capacity(len + 32);
        let coloured = next() % 3 == 0;
        while line.len() < len {
            if coloured && next() % 5 == 0 {
                line.push_str(&format!("\x1b[{}m", 31 + next() % 7));
            }
            line.push_str(words[(next() % words.len() as u64) as usize]);
            line.push(' ');
            if coloured && next() % 7 == 0 {
                line.push_str("\x1b[0m");
            }
        }
        line.push_str("\x1b[0m\n");
        written += line.len();
        f.write_all(line.as_bytes()).expect("write corpus");
    }
    writeln!(f, "{SENTINEL}").expect("write corpus");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `cmd` in a pane; once its first output is drawn, presses Enter (the program waits for
/// it) and times until the program exits with everything parsed.
async fn pane_run(cmd: &AttachCommand) -> (Duration, String, u64) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let pane = Pane::spawn(1, cmd, SIZE, tx).expect("pane");
    // Wait for the first output (the repaint / a ready line) so start-up is not measured.
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(PaneEvent::Output(_))) => {}
        other => panic!("no first output from {cmd:?}: {other:?}"),
    }
    pane.take_dirty();
    let start = Instant::now();
    pane.send(b"\r".to_vec());
    loop {
        match tokio::time::timeout(Duration::from_secs(300), rx.recv()).await {
            Ok(Some(PaneEvent::Exited(_, e))) => {
                assert_eq!(e.code, 0, "{cmd:?} {e}");
                break;
            }
            Ok(Some(PaneEvent::Output(_))) => {
                pane.take_dirty();
            }
            other => panic!("{cmd:?}: {other:?}"),
        }
    }
    let took = start.elapsed();
    let text = pane.screen().screen().contents();
    (took, text, pane.bytes_received())
}

/// The whole chain; `lossless` makes the pane's attach client hold the agent back rather than
/// be repainted when it falls behind. Returns the time and the bytes the pane parsed.
async fn ours_round(sidecar: &str, corpus: &Path, lossless: bool) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("provisioned"), "ok\n").expect("marker");
    let script = format!("read x; cat {}", corpus.display());
    let mut holder = Command::new(sidecar)
        .args(["session", "--", "sh", "-c", &script])
        .env(bottle_tui::sidecar::session::DIR_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("holder");
    let socket = dir.path().join("run/session.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no session socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let cmd = AttachCommand {
        program: "env".into(),
        args: vec![
            format!(
                "{}={}",
                bottle_tui::sidecar::session::DIR_ENV,
                dir.path().display()
            ),
            sidecar.into(),
            "session".into(),
            "attach".into(),
        ]
        .into_iter()
        .chain(lossless.then(|| "--lossless".to_owned()))
        .collect(),
    };
    let (took, text, received) = pane_run(&cmd).await;
    assert!(text.contains(SENTINEL), "the pane missed the end:\n{text}");
    let _ = holder.wait();
    // A viewer that falls behind gets a repaint instead of what it missed; that would make
    // the chain look faster than it is, so count only complete runs.
    let size = std::fs::metadata(corpus).expect("corpus").len();
    assert!(
        !lossless || received >= size,
        "the lossless pane parsed {received} of {size} bytes"
    );
    (took, received)
}

async fn pane_alone_round(corpus: &Path) -> Duration {
    let cmd = AttachCommand {
        program: "sh".into(),
        args: vec![
            "-c".into(),
            format!("echo ready; read x; cat {}", corpus.display()),
        ],
    };
    let (took, text, _) = pane_run(&cmd).await;
    assert!(text.contains(SENTINEL), "the pane missed the end:\n{text}");
    took
}

fn tmux_round(corpus: &Path, n: usize) -> Duration {
    let socket = format!("bottle-bench-{}-{n}", std::process::id());
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let script = format!(
        "echo ready; read x; cat {}; tmux -L {socket} wait-for -S done; sleep 60",
        corpus.display()
    );
    tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "b",
        "-x",
        "160",
        "-y",
        "48",
        "sh",
        "-c",
        &script,
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tmux(&["capture-pane", "-p", "-t", "b"]).contains("ready") {
        assert!(Instant::now() < deadline, "tmux pane never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    tmux(&["send-keys", "-t", "b", "Enter"]);
    tmux(&["wait-for", "done"]);
    let took = start.elapsed();
    let screen = tmux(&["capture-pane", "-p", "-t", "b"]);
    assert!(screen.contains(SENTINEL), "tmux missed the end:\n{screen}");
    tmux(&["kill-server"]);
    took
}

/// Sends `KEYS` single characters one at a time, each timed until its echo is drawn.
async fn echo_latencies(cmd: &AttachCommand) -> Vec<f64> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let pane = Pane::spawn(1, cmd, SIZE, tx).expect("pane");
    let settle = |rx: &mut mpsc::UnboundedReceiver<PaneEvent>, pane: &Pane| {
        // Drain whatever is pending (prompt, repaint, probe) for a quiet start.
        std::thread::sleep(Duration::from_millis(300));
        while rx.try_recv().is_ok() {}
        pane.take_dirty();
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle(&mut rx, &pane);
    let mut out = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        if i % 50 == 49 {
            pane.send(vec![0x15]); // ctrl-u: clear the line now and then
            tokio::time::sleep(Duration::from_millis(50)).await;
            settle(&mut rx, &pane);
        }
        let start = Instant::now();
        pane.send(b"x".to_vec());
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(PaneEvent::Output(_))) => {}
            other => panic!("no echo for key {i}: {other:?}"),
        }
        out.push(start.elapsed().as_secs_f64() * 1000.0);
        pane.take_dirty();
    }
    pane.send(vec![0x15]);
    out
}

fn docker_ready() -> bool {
    Command::new("docker")
        .args(["image", "inspect", "bottle-test-agent:latest"])
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn latency() {
    if !docker_ready() {
        println!("echo latency: NOT RUN (no Docker engine or no bottle-test-agent image)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bottle.toml"),
        "[agents.test]\nimage = \"bottle-test-agent:latest\"\ncommand = [\"sh\"]\n\n[bottles.demo]\nagent = \"test\"\n",
    )
    .expect("config");
    let slug = format!("bench-echo-{}", std::process::id());
    let ours = |args: &[&str]| common::bottle_tui(dir.path(), args);
    ours(&["up", "demo", "--name", &slug]);
    let container = format!("bottle-{slug}-agent");
    let session = docker_attach(
        &container,
        &slug.parse().expect("slug"),
        "ctrl-q".parse().expect("key"),
    );
    let direct = AttachCommand {
        program: "docker".into(),
        args: ["exec", "-it", &container, "sh"].map(String::from).to_vec(),
    };
    let ours_ms = echo_latencies(&session).await;
    let direct_ms = echo_latencies(&direct).await;
    ours(&["kill", &slug]);
    let (p50, p99) = (percentile(&ours_ms, 0.5), percentile(&ours_ms, 0.99));
    let (d50, d99) = (percentile(&direct_ms, 0.5), percentile(&direct_ms, 0.99));
    println!("echo latency, {KEYS} keys (pane → docker exec → …):");
    println!("  through the session holder   p50 {p50:7.2} ms   p99 {p99:7.2} ms");
    println!("  docker exec -it sh (anchor)  p50 {d50:7.2} ms   p99 {d99:7.2} ms");
    println!(
        "  ratio ours/anchor            p50 {:.2}×   p99 {:.2}×",
        p50 / d50,
        p99 / d99
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = dir.path().join("corpus.txt");
    write_corpus(&corpus);
    let size = std::fs::metadata(&corpus).expect("corpus").len() as f64 / MB as f64;
    // With a holder built from an earlier commit, its default chain is measured in the same
    // rounds: the cost of a change to the session code, measured.
    let baseline = std::env::var("BOTTLE_BENCH_BASELINE_SIDECAR").ok();
    let (mut ours, mut parsed, mut lossless, mut alone, mut tmux) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut before = Vec::new();
    for n in 0..ROUNDS {
        let (took, received) = rt.block_on(ours_round(SIDECAR, &corpus, false));
        ours.push(size / took.as_secs_f64());
        parsed.push(received as f64 / MB as f64);
        if let Some(b) = &baseline {
            before.push(size / rt.block_on(ours_round(b, &corpus, false)).0.as_secs_f64());
        }
        lossless.push(
            size / rt
                .block_on(ours_round(SIDECAR, &corpus, true))
                .0
                .as_secs_f64(),
        );
        alone.push(size / rt.block_on(pane_alone_round(&corpus)).as_secs_f64());
        tmux.push(size / tmux_round(&corpus, n).as_secs_f64());
    }
    let (o, l, a, t) = (median(ours), median(lossless), median(alone), median(tmux));
    println!("throughput, {size:.0} MB mixed output into a 160×48 screen (median of {ROUNDS}):");
    println!(
        "  agent PTY → holder → attach → pane  {o:7.1} MB/s   {:.2}× tmux   (pane repainted when behind; it parsed {:.1} MB)",
        o / t,
        median(parsed)
    );
    println!(
        "  the same, --lossless                {l:7.1} MB/s   {:.2}× tmux   (every byte through both parsers)",
        l / t
    );
    println!(
        "  pane alone (file in the pane's PTY) {a:7.1} MB/s   {:.2}× tmux",
        a / t
    );
    println!("  tmux detached pane (anchor)         {t:7.1} MB/s");
    if !before.is_empty() {
        let b = median(before);
        println!(
            "  baseline sidecar, same rounds       {b:7.1} MB/s   {:.2}× tmux   (this build {:.2}× the baseline)",
            b / t,
            o / b
        );
    }
    rt.block_on(latency());
}
