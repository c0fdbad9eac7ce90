//! One JSON object per line on stdout, each with a `daemon` field, so the TUI can split a
//! bundle's log by daemon.

use crate::wire::log::{EVENTS_FILE, EVENTS_FILE_MAX, EVENTS_FILE_OLD, LogLine};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

static STDOUT: Mutex<()> = Mutex::new(());
/// Where init keeps the lines the history needs (set by init only, so a daemon's line is kept
/// once: when init relays it).
static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();

/// The history file in the state dir the host mounts: bounded, one rotated copy.
struct Kept {
    dir: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
}

impl Kept {
    fn append(&mut self, line: &str) {
        let need = line.len() as u64 + 1;
        let current = self.dir.join(EVENTS_FILE);
        if self.size > 0 && self.size + need > EVENTS_FILE_MAX {
            // Full: it becomes the old copy (replacing the one before), and a new one starts.
            self.file = None;
            let _ = std::fs::rename(&current, self.dir.join(EVENTS_FILE_OLD));
            self.size = 0;
        }
        if self.file.is_none() {
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&current)
                .ok();
            self.size = std::fs::metadata(&current).map_or(0, |m| m.len());
        }
        if let Some(f) = &mut self.file
            && writeln!(f, "{line}").is_ok()
        {
            self.size += need;
        }
    }
}

/// Whether the history keeps this line. Allowed requests are most lines and never kept: they
/// are turned away before any parse.
fn worth_keeping(value: &Value) -> bool {
    value.get("decision").and_then(Value::as_str) != Some("allow")
        && LogLine::from_value(value).worth_keeping()
}

/// From now on, lines worth keeping also go to the history file in `dir` (init, when the
/// bundle has the folder mounted).
pub fn keep_events(dir: &Path) {
    let size = std::fs::metadata(dir.join(EVENTS_FILE)).map_or(0, |m| m.len());
    let _ = KEPT.set(Mutex::new(Kept {
        dir: dir.to_owned(),
        file: None,
        size,
    }));
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn write_line(value: &Value) {
    let text = value.to_string();
    {
        let _guard = STDOUT.lock();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
    if let Some(kept) = KEPT.get()
        && worth_keeping(value)
    {
        kept.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .append(&text);
    }
}

/// A line of our own.
pub fn event(daemon: &str, level: &str, msg: &str, fields: Value) {
    let mut obj = Map::new();
    obj.insert("time".into(), json!(now()));
    obj.insert("daemon".into(), json!(daemon));
    obj.insert("level".into(), json!(level));
    obj.insert("msg".into(), json!(msg));
    if let Value::Object(extra) = fields {
        obj.extend(extra);
    }
    write_line(&Value::Object(obj));
}

/// A line a daemon printed: JSON objects get the `daemon` field, anything else is wrapped.
pub fn relay(daemon: &str, stream: &str, line: &str) {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(mut obj)) => {
            obj.entry("daemon").or_insert_with(|| json!(daemon));
            obj.entry("time").or_insert_with(|| json!(now()));
            write_line(&Value::Object(obj));
        }
        _ => event(daemon, "info", line, json!({ "stream": stream })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_refusals_exits_approvals_and_pushes_and_nothing_else() {
        let kept = |v: Value| worth_keeping(&v);
        // A refusal, and (positive control for the fast path) the same line allowed.
        let deny =
            json!({"daemon": "gateway", "msg": "request", "decision": "deny", "host": "x.example"});
        assert!(kept(deny.clone()));
        let mut allow = deny;
        allow["decision"] = json!("allow");
        assert!(!kept(allow));
        assert!(kept(
            json!({"daemon": "init", "msg": "daemon exited", "target": "gateway", "code": 1})
        ));
        assert!(!kept(
            json!({"daemon": "init", "msg": "daemon started", "target": "gateway"})
        ));
        for msg in [
            "approval requested",
            "approval answered",
            "approval withdrawn",
        ] {
            assert!(
                kept(json!({"daemon": "supervise", "msg": msg, "id": "0a1b2c3d"})),
                "{msg}"
            );
        }
        assert!(!kept(json!({"daemon": "supervise", "msg": "listening"})));
        assert!(kept(
            json!({"daemon": "git-gate", "msg": "push denied", "repo": "web"})
        ));
        assert!(!kept(
            json!({"daemon": "git-gate", "msg": "fetch allowed", "repo": "web"})
        ));
        // The words matter only from the daemon that says them.
        assert!(!kept(
            json!({"daemon": "gateway", "msg": "approval requested", "id": "x"})
        ));
    }

    #[test]
    fn the_history_file_rotates_at_its_size_keeping_one_old_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut k = Kept {
            dir: dir.path().to_owned(),
            file: None,
            size: 0,
        };
        let line = "x".repeat(1000);
        let per_file = (EVENTS_FILE_MAX / 1001) as usize;
        for _ in 0..per_file * 3 {
            k.append(&line);
        }
        let size = |f: &str| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len());
        assert!(size(EVENTS_FILE) <= EVENTS_FILE_MAX && size(EVENTS_FILE) > 0);
        assert!(size(EVENTS_FILE_OLD) <= EVENTS_FILE_MAX);
        assert_eq!(
            size(EVENTS_FILE_OLD),
            per_file as u64 * 1001,
            "the old copy is a full file"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            2,
            "two files at most"
        );
    }
}
