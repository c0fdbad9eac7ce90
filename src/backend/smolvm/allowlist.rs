//! Enforces the guest's TSI allowlist. `smolvm machine create --allow-cidr X --from P`
//! silently stores `allowed_cidrs: null`, but smolvm reads each machine's row of its state
//! database at `machine start` — so setting the field between create and start enforces it.
//! The row's `data` is JSON stored as a BLOB, and must be written back as a BLOB: TEXT
//! corrupts smolvm's later reads. Needed on macOS only.

use super::Platform;
use color_eyre::eyre::{Result, WrapErr, bail};
use ipnet::IpNet;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// Where smolvm keeps its state database on macOS.
pub fn default_db() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    home.join("Library/Application Support/smolvm/server/smolvm.db")
}

/// On macOS, sets `allowed_cidrs` of `machine` in `db`; elsewhere does nothing.
pub fn enforce(platform: Platform, db: &Path, machine: &str, cidrs: &[IpNet]) -> Result<()> {
    match platform {
        Platform::Linux => Ok(()),
        Platform::MacOs => force_allowlist(db, machine, cidrs),
    }
}

/// Sets `allowed_cidrs` in the machine's row, keeping the rest of its JSON as it was.
pub fn force_allowlist(db: &Path, machine: &str, cidrs: &[IpNet]) -> Result<()> {
    if !db.is_file() {
        bail!(
            "smolvm's state database {} does not exist; is smolvm installed, and did `machine create` run?",
            db.display()
        );
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .wrap_err_with(|| format!("cannot open smolvm's state database {}", db.display()))?;
    let data: Option<Vec<u8>> = conn
        .query_row(
            "SELECT data FROM vms WHERE name = ?1",
            params![machine],
            |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                    _ => Vec::new(),
                })
            },
        )
        .optional()
        .wrap_err_with(|| format!("cannot read machine {machine} from {}", db.display()))?;
    let Some(data) = data else {
        bail!(
            "machine {machine} has no row in {} (vms table)",
            db.display()
        );
    };
    let mut json: serde_json::Value = serde_json::from_slice(&data)
        .wrap_err_with(|| format!("machine {machine}'s row in {} is not JSON", db.display()))?;
    let Some(obj) = json.as_object_mut() else {
        bail!(
            "machine {machine}'s row in {} is not a JSON object",
            db.display()
        );
    };
    obj.insert(
        "allowed_cidrs".into(),
        serde_json::Value::from(cidrs.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    let bytes = serde_json::to_vec(&json).wrap_err("cannot encode the machine row")?;
    conn.execute(
        "UPDATE vms SET data = ?1 WHERE name = ?2",
        params![bytes, machine],
    )
    .wrap_err_with(|| format!("cannot update machine {machine} in {}", db.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database shaped like smolvm's: a `vms` table with a JSON BLOB in `data`.
    fn smolvm_db(dir: &Path) -> PathBuf {
        let db = dir.join("smolvm.db");
        let conn = Connection::open(&db).expect("create db");
        conn.execute_batch("CREATE TABLE vms (name TEXT PRIMARY KEY, data BLOB NOT NULL);")
            .expect("schema");
        let row = serde_json::json!({ "name": "bottle-demo", "cpus": 2, "allowed_cidrs": null, "env": ["A=1"] });
        conn.execute(
            "INSERT INTO vms (name, data) VALUES (?1, ?2)",
            params!["bottle-demo", serde_json::to_vec(&row).expect("json")],
        )
        .expect("insert");
        db
    }

    #[test]
    fn patches_allowed_cidrs_and_writes_back_a_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = smolvm_db(dir.path());
        let cidr: IpNet = "127.0.0.16/32".parse().expect("cidr");
        force_allowlist(&db, "bottle-demo", &[cidr]).expect("patch");

        let conn = Connection::open(&db).expect("open");
        let (kind, data): (String, Vec<u8>) = conn
            .query_row(
                "SELECT typeof(data), data FROM vms WHERE name = 'bottle-demo'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("row");
        assert_eq!(kind, "blob", "TEXT would corrupt smolvm's later reads");
        let json: serde_json::Value = serde_json::from_slice(&data).expect("json");
        assert_eq!(json["allowed_cidrs"], serde_json::json!(["127.0.0.16/32"]));
        assert_eq!(json["cpus"], 2, "the rest of the row is kept");
        assert_eq!(json["env"], serde_json::json!(["A=1"]));
    }

    #[test]
    fn a_missing_database_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("nope.db");
        let err = force_allowlist(&db, "bottle-demo", &[]).expect_err("no db");
        assert!(format!("{err}").contains("does not exist"), "{err}");
        assert!(!db.exists(), "the database must not be created");
    }

    #[test]
    fn a_missing_row_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = smolvm_db(dir.path());
        let err = force_allowlist(&db, "bottle-other", &[]).expect_err("no row");
        assert!(
            format!("{err}").contains("bottle-other has no row"),
            "{err}"
        );
    }

    #[test]
    fn linux_needs_no_patch() {
        let dir = tempfile::tempdir().expect("tempdir");
        enforce(Platform::Linux, &dir.path().join("absent.db"), "x", &[]).expect("no-op");
    }
}
