//! The write-back spool: with `--write-back`, `close` returns once a file's
//! bytes are durably here, and uploads run in the background. Each entry is
//! `ID.data` (the bytes, fsynced) and `ID.json` (what to do with them, written
//! after the bytes and renamed into place), so a crash or `kill -9` leaves
//! either a whole entry or none; the next mount uploads what is left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a spooled file is, and where it goes: enough on its own to upload
/// it, whatever this mount (or the next) still knows of the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// Which file the entry belongs to: a newer entry of the same file
    /// supersedes it.
    #[serde(default = "new_file_key")]
    pub file: String,
    /// The library name to upload it as.
    pub name: String,
    /// The folder to upload it into; `None` is the root.
    pub parent: Option<String>,
    /// The objects it replaces (the version it rewrites, a file it was
    /// renamed over), removed once it is stored.
    #[serde(default, deserialize_with = "one_or_many")]
    pub replaces: Vec<String>,
    pub size: u64,
    /// The type to upload it as (absent in records of older versions).
    #[serde(default)]
    pub content_type: Option<String>,
    pub spooled_at: DateTime<Utc>,
    /// Why it could not be uploaded, once it failed for good.
    #[serde(default)]
    pub failed: Option<String>,
}

/// A key for a file's entries in the spool.
pub fn new_file_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `replaces` as earlier versions wrote it (one id or null), or a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Option<String>),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => one.into_iter().collect(),
        OneOrMany::Many(many) => many,
    })
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Opened by `mediafs status`, beside a running mount.
    read_only: bool,
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (or makes, 0700) the spool dir and drops bytes whose record was
    /// never written: their `close` never returned success.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let orphan = path.extension().is_some_and(|e| e == "data")
                && !path.with_extension("json").exists();
            let unfinished = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".tmp"));
            if orphan || unfinished {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            read_only: false,
        })
    }

    /// Looks at a spool another process (a running mount) may be writing:
    /// nothing is removed or rewritten.
    pub fn peek(dir: &Path) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
            read_only: true,
        }
    }

    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Moves a staged file into the spool with its record; when this
    /// returns, both survive a crash.
    /// On failure the staged file is handed back, unless it was lost.
    pub fn add(
        &self,
        staged: tempfile::NamedTempFile,
        record: &SpoolRecord,
    ) -> Result<String, (std::io::Error, Option<tempfile::NamedTempFile>)> {
        let id = format!(
            "{}-{:06}",
            Utc::now().format("%Y%m%dT%H%M%S%.6f"),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = staged.as_file().sync_all() {
            return Err((e, Some(staged)));
        }
        let data = self.data_path(&id);
        let file = staged.persist(&data).map_err(|e| (e.error, Some(e.file)))?;
        if let Err(e) = self.write_record(&id, record) {
            // Back where it was, as a temp file again.
            let back = tempfile::TempPath::try_from_path(&data).ok();
            let handed = back.map(|path| tempfile::NamedTempFile::from_parts(file, path));
            return Err((e, handed));
        }
        Ok(id)
    }

    pub fn write_record(&self, id: &str, record: &SpoolRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        crate::atomic_file::replace(&self.record_path(id), &json)
    }

    pub fn record(&self, id: &str) -> Option<SpoolRecord> {
        let text = std::fs::read(self.record_path(id)).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
        let keyed = value.get("file").is_some();
        let record: SpoolRecord = serde_json::from_value(value).ok()?;
        if !keyed && !self.read_only {
            // Written by an earlier version: keep the key just made up, so
            // that every later read names the same file.
            let _ = self.write_record(id, &record);
        }
        Some(record)
    }

    /// Every entry, oldest first.
    pub fn records(&self) -> std::io::Result<Vec<(String, SpoolRecord)>> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let id = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if let Some(record) = self.record(&id) {
                    all.push((id, record));
                }
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Forgets an entry: its upload landed, or it was superseded or unlinked.
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_file(self.record_path(id));
        let _ = std::fs::remove_file(self.data_path(id));
        let _ = sync_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn record(name: &str) -> SpoolRecord {
        SpoolRecord {
            file: new_file_key(),
            name: name.into(),
            parent: None,
            replaces: Vec::new(),
            size: 3,
            content_type: None,
            spooled_at: Utc::now(),
            failed: None,
        }
    }

    #[test]
    fn entries_survive_reopening_and_orphans_go() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut staged = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        staged.write_all(b"abc").unwrap();
        let id = spool
            .add(staged, &record("a.png"))
            .map_err(|e| e.0)
            .unwrap();
        std::fs::write(dir.path().join("lost.data"), b"never closed").unwrap();

        let spool = Spool::open(dir.path()).unwrap();
        let records = spool.records().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].0, id);
        assert_eq!(std::fs::read(spool.data_path(&id)).unwrap(), b"abc");
        assert!(!dir.path().join("lost.data").exists());
        spool.remove(&id);
        assert!(spool.records().unwrap().is_empty());
    }

    #[test]
    fn records_of_earlier_versions_still_read() {
        let old = r#"{"name": "a.png", "parent": null, "replaces": "64af50c42d567a3b4f5989e0",
                      "size": 3, "spooled_at": "2026-11-20T10:00:00Z", "failed": null}"#;
        let record: SpoolRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.replaces, ["64af50c42d567a3b4f5989e0"]);
        assert!(!record.file.is_empty());
    }
}
