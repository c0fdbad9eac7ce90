//! `cargo bench --bench dashboard`: the dashboard against oxker (a Rust Docker TUI, `cargo
//! install oxker`) with 20 running bottles, same run, each in a 160×48 tmux pane: time to first
//! frame, own CPU over 30 s idle, the engine's extra CPU (dockerd + containerd over the same 30 s,
//! minus a 30 s baseline with no TUI) and resident memory. Needs a Docker engine and what
//! `scripts/test` builds; says NOT RUN for oxker when it is not installed. With
//! `BOTTLE_BENCH_BASELINE_TUI=PATH` (a `bottle-tui` built from an earlier commit) that build is
//! measured too, on the same bottles in the same run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::BIN;
const BOTTLES: usize = 20;
const IDLE: Duration = Duration::from_secs(30);

fn ticks_per_sec() -> f64 {
    // Linux reports process times in USER_HZ, 100 on every architecture we run on.
    100.0
}

/// utime + stime of a process and its threads, in seconds.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / ticks_per_sec()
}

fn pids_named(name: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-x", name])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn engine_cpu() -> f64 {
    [
        "dockerd",
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v2",
    ]
    .iter()
    .flat_map(|n| pids_named(n))
    .map(cpu_of)
    .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

struct Figures {
    first_frame: Duration,
    cpu_pct: f64,
    engine_pct: f64,
    rss_mib: f64,
}

/// A process and its children (the dashboard's preview runs a `docker exec` client).
fn tree_cpu(pid: u32) -> f64 {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .expect("pgrep");
    cpu_of(pid)
        + String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .map(tree_cpu)
            .sum::<f64>()
}

/// Starts `cmd` in a fresh tmux pane, waits for `ready` on screen (the first frame), then
/// measures 30 s of idling of the process called `process` and its children.
fn measure(
    name: &str,
    cmd: &str,
    process: &str,
    cwd: &Path,
    ready: &str,
    baseline_engine: f64,
) -> Figures {
    let tmux = Tmux {
        socket: format!("bottle-bench-{name}-{}", std::process::id()),
    };
    let start = Instant::now();
    tmux.run(&[
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
        "-c",
        &cwd.display().to_string(),
        cmd,
    ]);
    let first_frame = loop {
        if tmux.run(&["capture-pane", "-p", "-t", "b"]).contains(ready) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name} never drew {ready:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let pid = *pids_named(process)
        .iter()
        .max()
        .unwrap_or_else(|| panic!("no {process} process"));
    // Let start-up work settle before measuring idle.
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, eng0) = (tree_cpu(pid), engine_cpu());
    std::thread::sleep(IDLE);
    let (cpu1, eng1) = (tree_cpu(pid), engine_cpu());
    let secs = IDLE.as_secs_f64();
    Figures {
        first_frame,
        cpu_pct: (cpu1 - cpu0) / secs * 100.0,
        engine_pct: ((eng1 - eng0) / secs - baseline_engine) * 100.0,
        rss_mib: rss_kib(pid) as f64 / 1024.0,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config =
        String::from("[agents.test]\nimage = \"bottle-test-agent:latest\"\ncommand = [\"sh\"]\n");
    let names: Vec<String> = (0..BOTTLES).map(|i| format!("bench{i:02}")).collect();
    for n in &names {
        config.push_str(&format!("\n[bottles.{n}]\nagent = \"test\"\n"));
    }
    std::fs::write(dir.path().join("bottle.toml"), config).expect("config");
    let ours = |args: &[&str]| common::bottle_tui(dir.path(), args);
    let _cleanup = Cleanup {
        bin: BIN,
        dir: dir.path().to_owned(),
        names: names.clone(),
    };
    let mut up = vec!["up"];
    up.extend(names.iter().map(String::as_str));
    let t = Instant::now();
    ours(&up);
    println!("{BOTTLES} bottles up in {:.1} s", t.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(5));

    let e0 = engine_cpu();
    std::thread::sleep(IDLE);
    let baseline = (engine_cpu() - e0) / IDLE.as_secs_f64();
    println!(
        "engine baseline (no TUI): {:.2}% of a core",
        baseline * 100.0
    );

    let cmd = format!(
        "env BOTTLE_TUI_STATE_DIR={} {BIN}",
        dir.path().join("state").display()
    );
    let mine = measure("ours", &cmd, "bottle-tui", dir.path(), "bench19", baseline);
    let before = std::env::var("BOTTLE_BENCH_BASELINE_TUI").ok().map(|bin| {
        let cmd = format!(
            "env BOTTLE_TUI_STATE_DIR={} {bin}",
            dir.path().join("state").display()
        );
        measure(
            "baseline",
            &cmd,
            "bottle-tui",
            dir.path(),
            "bench19",
            baseline,
        )
    });
    // oxker's container list is a third of the screen: any bottle container is its first frame.
    let oxker =
        which("oxker").map(|o| measure("oxker", &o, "oxker", dir.path(), "bottle-bench", baseline));

    println!(
        "dashboard with {BOTTLES} running bottles, 160×48, idle {} s:",
        IDLE.as_secs()
    );
    println!("| measure | bottle-tui | oxker | target |");
    println!("|---|---|---|---|");
    let o = |f: &dyn Fn(&Figures) -> String| oxker.as_ref().map_or_else(|| "NOT RUN".to_owned(), f);
    println!(
        "| time to first frame | {:.0} ms | {} | ≤ 100 ms |",
        mine.first_frame.as_secs_f64() * 1000.0,
        o(&|f| format!("{:.0} ms", f.first_frame.as_secs_f64() * 1000.0))
    );
    println!(
        "| own CPU, idle | {:.2}% | {} | ≤ 0.5% |",
        mine.cpu_pct,
        o(&|f| format!("{:.2}%", f.cpu_pct))
    );
    println!(
        "| engine's extra CPU | {:+.2}% | {} | ≤ +1% |",
        mine.engine_pct,
        o(&|f| format!("{:+.2}%", f.engine_pct))
    );
    println!(
        "| resident memory | {:.1} MiB | {} | ≤ 30 MB |",
        mine.rss_mib,
        o(&|f| format!("{:.1} MiB", f.rss_mib))
    );
    if let Some(b) = before {
        println!(
            "this build against the baseline build, same run: first frame {:.0} vs {:.0} ms, own CPU {:.2}% vs {:.2}%, engine {:+.2}% vs {:+.2}%, memory {:.1} vs {:.1} MiB",
            mine.first_frame.as_secs_f64() * 1000.0,
            b.first_frame.as_secs_f64() * 1000.0,
            mine.cpu_pct,
            b.cpu_pct,
            mine.engine_pct,
            b.engine_pct,
            mine.rss_mib,
            b.rss_mib
        );
    }
}

/// Kills the bench's bottles however the bench ends.
struct Cleanup {
    bin: &'static str,
    dir: std::path::PathBuf,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(self.bin)
            .arg("kill")
            .args(&self.names)
            .current_dir(&self.dir)
            .env("BOTTLE_TUI_STATE_DIR", self.dir.join("state"))
            .output();
    }
}

fn which(program: &str) -> Option<String> {
    let home = std::env::var("HOME").unwrap_or_default();
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(std::path::PathBuf::from)
        .chain([Path::new(&home).join(".cargo/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
