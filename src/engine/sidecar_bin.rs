//! Finds the static `bottle-sidecar` that goes into the bundle image and every agent container.

use color_eyre::eyre::{Result, WrapErr, bail};
use std::path::{Path, PathBuf};

pub const ENV: &str = "BOTTLE_SIDECAR_BIN";

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
    if let Some(t) = target {
        for profile in ["sidecar", "release", "debug"] {
            candidates.push(
                t.join("x86_64-unknown-linux-gnu")
                    .join(profile)
                    .join("bottle-sidecar"),
            );
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
