//! Finds the static `bottle-sidecar` that goes into the bundle image and every agent container.

use color_eyre::eyre::{Result, WrapErr, bail};
use std::path::{Path, PathBuf};

pub const ENV: &str = "BOTTLE_SIDECAR_BIN";
/// The target the static sidecar is built for: this machine's, glibc linked statically.
fn triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}
/// The source this executable was built from: `cargo run` and `cargo install` both leave it
/// on disk, so the sidecar can be built from the same code when it is missing.
const SOURCE: &str = env!("CARGO_MANIFEST_DIR");

/// Where [`build`] puts a sidecar built for a binary whose source folder is not writable
/// (`cargo install`): the user's cache.
fn built_target_dir() -> PathBuf {
    crate::engine::claude_code::cache_dir()
        .parent()
        .map_or_else(
            || PathBuf::from("sidecar-target"),
            |p| p.join("sidecar-target"),
        )
}

/// Builds the static sidecar from this executable's own source with cargo, reporting cargo's
/// progress lines; returns its path. Takes minutes the first time.
pub async fn build(progress: &mut (dyn FnMut(&str) + Send)) -> Result<PathBuf> {
    let source = Path::new(SOURCE);
    if !source.join("Cargo.toml").is_file() {
        bail!(
            "no static bottle-sidecar, and the source this binary was built from ({SOURCE}) is gone, so it cannot be built here; \
             build one with scripts/build-sidecar.sh in a checkout and set {ENV} to it"
        );
    }
    let writable = tempfile_probe(&source.join("target"));
    let target_dir = if writable {
        source.join("target")
    } else {
        built_target_dir()
    };
    progress(&format!(
        "building the static bottle-sidecar from {SOURCE} with cargo (a few minutes the first time)"
    ));
    let mut child =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--profile",
                "sidecar",
                "--target",
                &triple(),
                "--bin",
                "bottle-sidecar",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(source)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .wrap_err("cannot run cargo to build the sidecar (is cargo on PATH?)")?;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim().to_owned();
            if line.is_empty() {
                continue;
            }
            progress(&line);
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().await.wrap_err("cargo did not finish")?;
    if !status.success() {
        bail!(
            "building the sidecar failed ({status}):\n{}",
            tail.join("\n")
        );
    }
    let path = target_dir
        .join(triple())
        .join("sidecar")
        .join("bottle-sidecar");
    check_static(&path)?;
    Ok(path)
}

/// True when a file can be created in `dir` (made if missing).
fn tempfile_probe(dir: &Path) -> bool {
    let probe = dir.join(".bottle-tui-write-probe");
    let ok = std::fs::create_dir_all(dir).is_ok() && std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// `$BOTTLE_SIDECAR_BIN`, else the newest static build next to this executable
/// (`target/x86_64-unknown-linux-gnu/{release,debug}/` from scripts/build-sidecar.sh, or a
/// sibling `bottle-sidecar`). A dynamically linked binary is refused: it would not run in an
/// arbitrary agent image.
pub fn locate() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV) {
        let p = PathBuf::from(p);
        check_static(&p).wrap_err_with(|| format!("{ENV}={}", p.display()))?;
        return Ok(p);
    }
    let exe = std::env::current_exe().wrap_err("cannot find this executable")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    // Test binaries live one level deeper (target/debug/deps).
    let target = dir
        .ancestors()
        .find(|d| d.file_name().is_some_and(|n| n == "target"));
    let mut candidates = vec![dir.join("bottle-sidecar")];
    let mut targets: Vec<PathBuf> = target.map(Path::to_owned).into_iter().collect();
    targets.push(built_target_dir());
    for t in targets {
        for profile in ["sidecar", "release", "debug"] {
            candidates.push(t.join(triple()).join(profile).join("bottle-sidecar"));
        }
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = candidates
        .iter()
        .filter(|p| check_static(p).is_ok())
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p.clone())))
        .collect();
    found.sort();
    match found.pop() {
        Some((_, p)) => Ok(p),
        None => bail!(
            "no static bottle-sidecar found (looked at {}); build one with scripts/build-sidecar.sh or set {ENV}",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Errors unless `path` is an x86-64 ELF executable without a program interpreter.
pub fn check_static(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 8]| u64::from_le_bytes(b) as usize)
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        bail!("{} is not a 64-bit ELF executable", path.display());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("{} has a truncated ELF header", path.display());
    };
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize) == Some(PT_INTERP) {
            bail!(
                "{} is dynamically linked; build a static one with scripts/build-sidecar.sh",
                path.display()
            );
        }
    }
    Ok(())
}
