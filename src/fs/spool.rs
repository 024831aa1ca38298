//! The write-back spool: with `--write-back`, `close` returns once a file's
//! bytes are durably here, and uploads run in the background. Each entry is
//! `ID.data` (the bytes, fsynced) and `ID.json` (what to do with them, written
//! after the bytes and renamed into place), so a crash or `kill -9` leaves
//! either a whole entry or none; the next mount uploads what is left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a spooled file is, and where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// The library name to upload it as.
    pub name: String,
    /// The folder to upload it into; `None` is the root.
    pub parent: Option<String>,
    /// The object it replaces, removed once it is stored.
    pub replaces: Option<String>,
    pub size: u64,
    pub spooled_at: DateTime<Utc>,
    /// Why it could not be uploaded, once it failed for good.
    #[serde(default)]
    pub failed: Option<String>,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
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
        })
    }

    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Moves a staged file into the spool with its record; when this
    /// returns, both survive a crash.
    pub fn add(
        &self,
        staged: tempfile::NamedTempFile,
        record: &SpoolRecord,
    ) -> std::io::Result<String> {
        let id = format!(
            "{}-{:06}",
            Utc::now().format("%Y%m%dT%H%M%S%.6f"),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        staged.as_file().sync_all()?;
        staged.persist(self.data_path(&id)).map_err(|e| e.error)?;
        self.write_record(&id, record)?;
        Ok(id)
    }

    pub fn write_record(&self, id: &str, record: &SpoolRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        crate::atomic_file::replace(&self.record_path(id), &json)
    }

    pub fn record(&self, id: &str) -> Option<SpoolRecord> {
        let text = std::fs::read(self.record_path(id)).ok()?;
        serde_json::from_slice(&text).ok()
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
            name: name.into(),
            parent: None,
            replaces: None,
            size: 3,
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
        let id = spool.add(staged, &record("a.png")).unwrap();
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
}
