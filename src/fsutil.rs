//! File writes with explicit modes: secrets are created 0600 (never chmod-ed down afterwards, so
//! there is no window where they are readable), folders 0700, and every write is atomic.

use color_eyre::eyre::{Result, WrapErr};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const SECRET: u32 = 0o600;
pub const PUBLIC: u32 = 0o644;
pub const EXECUTABLE: u32 = 0o755;
pub const PRIVATE_DIR: u32 = 0o700;

/// Creates `dir` (and missing parents) 0700 from creation. A folder that already exists keeps
/// its mode: `--state-dir ~` must not chmod the user's home.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
        .wrap_err_with(|| format!("cannot create folder {}", dir.display()))
}

/// Writes `contents` to `path` atomically (temp file + rename) with `mode` from creation.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| color_eyre::eyre::eyre!("{} has no parent folder", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .wrap_err_with(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
    // The umask may have narrowed `mode`; a public file must stay readable by the container.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .wrap_err_with(|| format!("cannot set mode on {}", tmp.display()))?;
    fs::rename(&tmp, path).wrap_err_with(|| format!("cannot move {} into place", path.display()))
}

pub fn mode_of(path: &Path) -> Result<u32> {
    Ok(fs::metadata(path)
        .wrap_err_with(|| format!("cannot stat {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_are_made_0700_and_existing_folders_keep_their_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let made = tmp.path().join("a/b");
        private_dir(&made).expect("create");
        assert_eq!(mode_of(&made).expect("mode") & 0o777, 0o700);
        let home = tmp.path().join("home");
        fs::create_dir(&home).expect("mkdir");
        fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&home).expect("exists");
        assert_eq!(
            mode_of(&home).expect("mode") & 0o777,
            0o755,
            "an existing folder was chmod-ed"
        );
    }
}
