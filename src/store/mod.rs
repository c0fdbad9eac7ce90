//! The SQLite history: launch/kill events and the approvals audit trail. It is history, not
//! truth — what runs is what the backend says. Migrations are versioned with `user_version`;
//! a corrupt db or one from a newer bottle-tui is an error naming the file, never recreated.

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Each entry moves the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the event log.
    "CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        time    TEXT NOT NULL,
        slug    TEXT NOT NULL,
        kind    TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_slug ON events(slug, id);",
    // 2: the approvals audit trail. One row per answered request; the unique key makes
    // recording idempotent (the host records human answers at once and supervise's own —
    // timeouts, withdrawals — when it next reads the queue).
    "CREATE TABLE decisions (
        id          INTEGER PRIMARY KEY,
        slug        TEXT NOT NULL,
        request_id  TEXT NOT NULL,
        requested   TEXT NOT NULL,
        action      TEXT NOT NULL,
        details     TEXT NOT NULL,
        decision    TEXT NOT NULL,
        reason      TEXT,
        by          TEXT NOT NULL,
        decided     TEXT NOT NULL,
        UNIQUE (slug, request_id, requested)
    );
    CREATE INDEX decisions_slug ON decisions(slug, id);",
    // 3: events read from a bundle's log (a daemon exiting) carry the log line's own time; a
    // dashboard reading the same log again records each once.
    "CREATE UNIQUE INDEX events_from_logs ON events(slug, kind, time, detail)
        WHERE kind = 'daemon';",
    // 4: … and blocked requests too.
    "DROP INDEX events_from_logs;
    CREATE UNIQUE INDEX events_from_logs ON events(slug, kind, time, detail)
        WHERE kind IN ('daemon', 'blocked');",
    // 5: … and what is read from the bundle's kept file and the agent's log (approvals,
    // pushes, status changes), which every process may read again.
    "DROP INDEX events_from_logs;
    CREATE UNIQUE INDEX events_from_logs ON events(slug, kind, time, detail)
        WHERE kind IN ('daemon', 'blocked', 'approval', 'push', 'status', 'ended');",
];

pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// One answered request in the audit trail: who asked what, who answered, when, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    pub slug: String,
    pub request_id: String,
    pub requested: String,
    pub action: String,
    pub details: String,
    pub decision: String,
    pub reason: Option<String>,
    pub by: String,
    pub decided: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: i64,
    pub time: String,
    pub slug: String,
    pub kind: String,
    pub detail: serde_json::Value,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            crate::fsutil::private_dir(dir)?;
        }
        let conn = Connection::open(path)
            .wrap_err_with(|| format!("cannot open the state database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .wrap_err("cannot configure the state database")?;
        let mut store = Self {
            conn,
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, e: rusqlite::Error) -> color_eyre::Report {
        eyre!(
            "the state database {} is unreadable ({e}); move it aside to start a fresh history",
            self.path.display()
        )
    }

    fn migrate(&mut self) -> Result<()> {
        let version: u32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.corrupt(e))?;
        // A garbage file passes `PRAGMA user_version` on some SQLite builds; touch the schema.
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| self.corrupt(e))?;
        if version > SCHEMA_VERSION {
            bail!(
                "the state database {} has schema version {version}, newer than this bottle-tui understands ({SCHEMA_VERSION}); upgrade bottle-tui or use another --state-dir",
                self.path.display()
            );
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        // One writer at a time, and the version read again inside: two processes (or two
        // tasks of the dashboard) opening an old db at once must not both migrate it.
        let path = self.path.display().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .wrap_err_with(|| format!("cannot start migrating {path}"))?;
        let version: u32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .wrap_err_with(|| format!("cannot read the schema version of {path}"))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", i as u32 + 1))
                .wrap_err_with(|| format!("cannot migrate {path} to schema version {}", i + 1))?;
        }
        tx.commit()
            .wrap_err_with(|| format!("cannot finish migrating {path}"))
    }

    pub fn schema_version(&self) -> Result<u32> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .wrap_err("cannot read the schema version")
    }

    pub fn record(&self, slug: &str, kind: &str, detail: &serde_json::Value) -> Result<i64> {
        let time = fixed_time(time::OffsetDateTime::now_utc());
        self.conn
            .execute(
                "INSERT INTO events (time, slug, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![time, slug, kind, detail.to_string()],
            )
            .wrap_err_with(|| format!("cannot record a {kind} event in {}", self.path.display()))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records an event that happened at `time` (RFC 3339) unless it is recorded already, or
    /// the bottle has `per_minute` of this kind in that minute already; true when it was new.
    /// Only kinds with a uniqueness index (`daemon`, `blocked`) are deduplicated.
    pub fn record_at(
        &self,
        slug: &str,
        kind: &str,
        time: &str,
        detail: &serde_json::Value,
        per_minute: usize,
    ) -> Result<bool> {
        let at = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
            .wrap_err_with(|| format!("`{time}` is not an RFC 3339 time"))?;
        let time = fixed_time(at);
        // The minute is the first 16 characters of the fixed-width time.
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO events (time, slug, kind, detail)
                 SELECT ?1, ?2, ?3, ?4
                 WHERE (SELECT count(*) FROM events WHERE slug = ?2 AND kind = ?3
                        AND substr(time, 1, 16) = substr(?1, 1, 16)) < ?5",
                params![time, slug, kind, detail.to_string(), per_minute as i64],
            )
            .wrap_err_with(|| format!("cannot record a {kind} event in {}", self.path.display()))?;
        Ok(n == 1)
    }

    pub fn events(&self, slug: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, time, slug, kind, detail FROM events
                 WHERE ?1 IS NULL OR slug = ?1 ORDER BY time DESC, id DESC LIMIT ?2",
            )
            .wrap_err("cannot query events")?;
        let rows = stmt
            .query_map(params![slug, limit as i64], |r| {
                let detail: String = r.get(4)?;
                Ok(Event {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    slug: r.get(2)?,
                    kind: r.get(3)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .wrap_err("cannot query events")?;
        rows.collect::<Result<_, _>>()
            .wrap_err("cannot read events")
    }
}

/// Times as the events table keeps them: UTC, always nine fractional digits, so the text sorts
/// as the time does (RFC 3339 as `time` writes it drops the fraction on a whole second).
pub fn fixed_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

impl Store {
    /// Keeps a bottle's newest `keep` events: a daemon crash-looping for days under a watching
    /// dashboard must not grow the history without end.
    pub fn prune_events(&self, slug: &str, keep: usize) -> Result<usize> {
        self.conn
            .execute(
                "DELETE FROM events WHERE slug = ?1 AND id NOT IN
                   (SELECT id FROM events WHERE slug = ?1 ORDER BY time DESC, id DESC LIMIT ?2)",
                params![slug, keep as i64],
            )
            .wrap_err_with(|| format!("cannot prune the history in {}", self.path.display()))
    }

    /// Records an answered request; false when it was recorded already.
    pub fn record_decision(&self, d: &DecisionRecord) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO decisions
                 (slug, request_id, requested, action, details, decision, reason, by, decided)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    d.slug,
                    d.request_id,
                    d.requested,
                    d.action,
                    d.details,
                    d.decision,
                    d.reason,
                    d.by,
                    d.decided
                ],
            )
            .wrap_err_with(|| {
                format!(
                    "cannot record the answer to {} in {}",
                    d.request_id,
                    self.path.display()
                )
            })?;
        Ok(n > 0)
    }

    /// The newest `limit` decisions, newest first.
    pub fn decisions(&self, slug: Option<&str>, limit: usize) -> Result<Vec<DecisionRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT slug, request_id, requested, action, details, decision, reason, by, decided
                 FROM decisions WHERE ?1 IS NULL OR slug = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .wrap_err("cannot query the audit trail")?;
        let rows = stmt
            .query_map(params![slug, limit as i64], |r| {
                Ok(DecisionRecord {
                    slug: r.get(0)?,
                    request_id: r.get(1)?,
                    requested: r.get(2)?,
                    action: r.get(3)?,
                    details: r.get(4)?,
                    decision: r.get(5)?,
                    reason: r.get(6)?,
                    by: r.get(7)?,
                    decided: r.get(8)?,
                })
            })
            .wrap_err("cannot query the audit trail")?;
        rows.collect::<Result<_, _>>()
            .wrap_err("cannot read the audit trail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_opening_a_fresh_db_at_once_all_succeed() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.db");
        let opened: Vec<Result<u32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Store::open(&path).and_then(|st| st.schema_version())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(eyre!("panicked"))))
                .collect()
        });
        for o in opened {
            assert_eq!(o?, SCHEMA_VERSION);
        }
        Ok(())
    }

    #[test]
    fn events_read_newest_first_by_their_time_and_are_pruned_per_bottle() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = Store::open(&dir.path().join("state.db"))?;
        s.record("demo", "launch", &serde_json::json!({}))?;
        // Read from a log later, but it happened before: it sorts older.
        let none = serde_json::json!({});
        assert!(s.record_at("demo", "daemon", "2020-01-01T00:00:00Z", &none, 9)?);
        assert!(s.record_at("demo", "daemon", "bad time", &none, 9).is_err());
        let kinds: Vec<String> = s
            .events(Some("demo"), 10)?
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["launch", "daemon"]);
        // At most `per_minute` of a kind in one minute of the events' own time.
        for sec in 0..5 {
            let t = format!("2020-01-01T00:01:0{sec}Z");
            let detail = serde_json::json!({ "sec": sec });
            assert_eq!(
                s.record_at("demo", "blocked", &t, &detail, 3)?,
                sec < 3,
                "{t}"
            );
        }
        assert!(s.record_at("demo", "blocked", "2020-01-01T00:02:00Z", &none, 3)?);
        for i in 0..10 {
            s.record("demo", "health", &serde_json::json!({ "i": i }))?;
            s.record("other", "health", &serde_json::json!({ "i": i }))?;
        }
        assert_eq!(s.prune_events("demo", 3)?, 13);
        let left = s.events(Some("demo"), 100)?;
        assert_eq!(left.len(), 3);
        assert_eq!(left[0].detail["i"], 9, "the newest are kept");
        assert_eq!(
            s.events(Some("other"), 100)?.len(),
            10,
            "other bottles untouched"
        );
        Ok(())
    }

    #[test]
    fn fixed_times_sort_as_text() {
        let whole = time::OffsetDateTime::from_unix_timestamp(1_795_831_200).expect("time");
        let later = whole + time::Duration::milliseconds(100);
        assert_eq!(fixed_time(whole), "2026-11-28T02:00:00.000000000Z");
        assert!(fixed_time(whole) < fixed_time(later));
    }

    #[test]
    fn migrates_records_and_reopens() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.db");
        {
            let s = Store::open(&path)?;
            assert_eq!(s.schema_version()?, SCHEMA_VERSION);
            s.record("demo", "prepare", &serde_json::json!({"bottle": "demo"}))?;
        }
        let s = Store::open(&path)?;
        let events = s.events(Some("demo"), 10)?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "prepare");
        assert_eq!(events[0].detail["bottle"], "demo");
        Ok(())
    }

    #[test]
    fn decisions_are_recorded_once_and_listed_newest_first() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = Store::open(&dir.path().join("state.db"))?;
        let mut d = DecisionRecord {
            slug: "demo".into(),
            request_id: "0123abcd".into(),
            requested: "2026-11-28T00:00:00Z".into(),
            action: "push".into(),
            details: String::new(),
            decision: "approved".into(),
            reason: None,
            by: "me@host".into(),
            decided: "2026-11-28T00:00:05Z".into(),
        };
        assert!(s.record_decision(&d)?);
        assert!(!s.record_decision(&d)?, "the same answer twice is one row");
        d.request_id = "4567cdef".into();
        d.decision = "denied".into();
        assert!(s.record_decision(&d)?);
        let all = s.decisions(None, 10)?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].request_id, "4567cdef");
        assert_eq!(s.decisions(Some("other"), 10)?.len(), 0);
        Ok(())
    }

    #[test]
    fn a_version_1_db_migrates_to_the_audit_trail() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path)?;
            c.execute_batch(MIGRATIONS[0])?;
            c.pragma_update(None, "user_version", 1)?;
            c.execute(
                "INSERT INTO events (time, slug, kind) VALUES ('t', 'old', 'up')",
                [],
            )?;
        }
        let s = Store::open(&path)?;
        assert_eq!(s.schema_version()?, SCHEMA_VERSION);
        assert_eq!(s.events(Some("old"), 10)?.len(), 1, "history is kept");
        assert!(s.decisions(None, 10)?.is_empty());
        Ok(())
    }

    #[test]
    fn newer_schema_is_a_clear_error_and_the_file_is_kept() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path)?;
            c.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")?;
        }
        let err = Store::open(&path)
            .err()
            .ok_or_else(|| eyre!("opened a newer db"))?;
        let msg = format!("{err:#}");
        assert!(msg.contains("schema version 99"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        let c = Connection::open(&path)?;
        let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(v, 99, "the newer db must not be touched");
        Ok(())
    }

    #[test]
    fn corrupt_db_is_a_clear_error_and_not_recreated() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.db");
        let garbage =
            b"this is not a database, it is a grocery list: eggs, milk, bread\n".repeat(100);
        std::fs::write(&path, &garbage)?;
        let err = Store::open(&path)
            .err()
            .ok_or_else(|| eyre!("opened garbage"))?;
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("unreadable"), "{msg}");
        assert_eq!(
            std::fs::read(&path)?,
            garbage,
            "the file must be left as it was"
        );
        Ok(())
    }
}
