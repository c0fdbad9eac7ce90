//! One JSON object per line on stdout, each with a `daemon` field, so the TUI can split a
//! bundle's log by daemon.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;

static STDOUT: Mutex<()> = Mutex::new(());

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn write_line(value: &Value) {
    let _guard = STDOUT.lock();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
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
