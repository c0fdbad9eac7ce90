//! Per-bottle random placeholders: what the agent holds instead of each real credential. The
//! gateway swaps a placeholder for the token only on its route's host, and treats it seen
//! anywhere else as a leak attempt.

use crate::fsutil;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::collections::BTreeMap;
use std::path::Path;

pub const PREFIX: &str = "bottle-placeholder-";

/// Loads `placeholders.json` and adds a fresh value for every variable it lacks, keeping the
/// ones a running bottle already uses.
pub fn ensure(file: &Path, vars: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut map: BTreeMap<String, String> = match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).wrap_err_with(|| {
            format!(
                "{} is corrupt; delete it to make new placeholders (running bottles of this slug must be relaunched)",
                file.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot read {}", file.display())),
    };
    map.retain(|k, _| vars.contains(&k.as_str()));
    for var in vars {
        if !map.contains_key(*var) {
            map.insert((*var).to_owned(), fresh()?);
        }
    }
    let json = serde_json::to_vec_pretty(&map).wrap_err("cannot encode placeholders")?;
    fsutil::write(file, &json, fsutil::SECRET)?;
    Ok(map)
}

fn fresh() -> Result<String> {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| eyre!("the system random generator failed"))?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}
