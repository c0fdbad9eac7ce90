//! `cargo bench --bench launch`: `bottle-tui up` to "agent running and provisioned" and `kill`,
//! against the raw docker CLI doing the same topology and provisioning (benches/launch_raw.sh)
//! in the same run; and 8 bottles launched concurrently by one `up` against 8 `up`s one after
//! another. Prints medians and ratios. Needs a Docker engine, the bundle and test-agent images
//! and a static sidecar (scripts/test makes all three).
//!
//! With `BOTTLE_BENCH_BASELINE_TUI=PATH` (a `bottle-tui` built from an earlier commit), that
//! build's `up` and `kill` are measured in the same rounds, interleaved, with the same images
//! and static sidecar: the cost of a change to the host's engine, measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const FLEET: usize = 8;

fn run(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("run");
    let took = started.elapsed();
    if !out.status.success() {
        panic!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Bench {
    dir: tempfile::TempDir,
    bin: PathBuf,
    baseline: Option<PathBuf>,
    sidecar: PathBuf,
}

impl Bench {
    fn ours(&self, args: &[&str]) -> Command {
        self.with(&self.bin, args)
    }

    fn with(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args)
            .current_dir(self.dir.path())
            .env("BOTTLE_TUI_STATE_DIR", self.dir.path().join("state"))
            .env(bottle_tui::engine::sidecar_bin::ENV, &self.sidecar);
        c
    }

    fn raw(&self, action: &str, slug: &str) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/launch_raw.sh");
        let state = self.dir.path().join("state/bottles").join(slug);
        let mut c = Command::new(script);
        c.args([
            action,
            slug,
            &state.display().to_string(),
            &self.sidecar.display().to_string(),
        ]);
        c
    }
}

fn main() {
    // `cargo test --all-targets` runs this too, without `--bench`: don't launch 50 bottles then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("launch: run with `cargo bench --bench launch`");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config =
        String::from("[agents.test]\nimage = \"bottle-test-agent:latest\"\ncommand = [\"sh\"]\n\n");
    for i in 0..=FLEET {
        config.push_str(&format!(
            "[bottles.bench{i}]\nagent = \"test\"\nallow = [\"api.example.com\"]\n[bottles.bench{i}.supervise]\nenabled = false\n\n"
        ));
    }
    std::fs::write(dir.path().join("bottle.toml"), config).expect("config");
    let bench = Bench {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_bottle-tui")),
        baseline: std::env::var_os("BOTTLE_BENCH_BASELINE_TUI").map(PathBuf::from),
        sidecar: bottle_tui::engine::sidecar_bin::locate()
            .expect("static sidecar (scripts/build-sidecar.sh)"),
        dir,
    };

    // up/kill, alternating ours and raw so drift in the engine hits both alike.
    let (mut up_ours, mut up_raw, mut kill_ours, mut kill_raw) = (vec![], vec![], vec![], vec![]);
    let (mut up_base, mut kill_base) = (vec![], vec![]);
    for round in 0..ROUNDS {
        if let Some(base) = &bench.baseline {
            let slug = format!("bench0-base{round}");
            up_base.push(run(
                &mut bench.with(base, &["up", "bench0", "--name", &slug])
            ));
            kill_base.push(run(&mut bench.with(base, &["kill", &slug])));
        }
        let slug = format!("bench0-{round}");
        up_ours.push(run(&mut bench.ours(&["up", "bench0", "--name", &slug])));
        kill_ours.push(run(&mut bench.ours(&["kill", &slug])));
        // The raw run mounts the same rendered state dir (prepare is not part of its cost).
        let raw_slug = format!("bench0-raw{round}");
        run(&mut bench.ours(&["plan", "bench0", "--name", &raw_slug]));
        up_raw.push(run(&mut bench.raw("up", &raw_slug)));
        kill_raw.push(run(&mut bench.raw("kill", &raw_slug)));
    }

    // 8 at once from one `up`, against 8 `up`s in a row.
    let names: Vec<String> = (1..=FLEET).map(|i| format!("bench{i}")).collect();
    let mut concurrent = vec![];
    let mut sequential = vec![];
    for _ in 0..2 {
        let mut args = vec!["up"];
        args.extend(names.iter().map(String::as_str));
        concurrent.push(run(&mut bench.ours(&args)));
        let mut kill = vec!["kill"];
        kill.extend(names.iter().map(String::as_str));
        run(&mut bench.ours(&kill));

        let started = Instant::now();
        for n in &names {
            run(&mut bench.ours(&["up", n]));
        }
        sequential.push(started.elapsed());
        run(&mut bench.ours(&kill));
    }

    let (uo, ur, ko, kr) = (
        median(up_ours),
        median(up_raw),
        median(kill_ours),
        median(kill_raw),
    );
    let (c, s) = (median(concurrent), median(sequential));
    println!(
        "launch benchmark ({ROUNDS} rounds; medians; ratio = bottle-tui / anchor, lower is better)"
    );
    println!(
        "  up   bottle-tui {:>8.0} ms   raw docker CLI {:>8.0} ms   ratio {:.2}  (target <= 1.00)",
        ms(uo),
        ms(ur),
        ms(uo) / ms(ur)
    );
    println!(
        "  kill bottle-tui {:>8.0} ms   raw docker CLI {:>8.0} ms   ratio {:.2}  (target <= 1.00)",
        ms(ko),
        ms(kr),
        ms(ko) / ms(kr)
    );
    println!(
        "  {FLEET} bottles: one concurrent up {:>8.0} ms   {FLEET} ups in a row {:>8.0} ms   ratio {:.2}  (target <= 0.55)",
        ms(c),
        ms(s),
        ms(c) / ms(s)
    );
    if bench.baseline.is_some() {
        let (ub, kb) = (median(up_base), median(kill_base));
        println!(
            "  this build against the baseline build (same rounds, interleaved): up {:.0} ms vs {:.0} ms ({:.2}x), kill {:.0} ms vs {:.0} ms ({:.2}x)",
            ms(uo),
            ms(ub),
            ms(uo) / ms(ub),
            ms(ko),
            ms(kb),
            ms(ko) / ms(kb)
        );
    }
}
