use std::path::{Path, PathBuf};

/// Resolves a path written in the config: `~` is the home folder, a relative path is relative
/// to the folder holding the config file.
pub fn resolve(dir: &Path, written: &str) -> PathBuf {
    if written == "~" {
        return home();
    }
    if let Some(rest) = written.strip_prefix("~/") {
        return home().join(rest);
    }
    let p = Path::new(written);
    if p.is_absolute() {
        p.to_owned()
    } else {
        dir.join(p)
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// Checks that a file can be opened for reading; the error says why not.
pub fn check_readable_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a file", path.display()));
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))
}

pub fn check_dir(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(format!("`{}` is not a folder", path.display()));
    }
    std::fs::read_dir(path)
        .map(drop)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
