//! Access and modification times set by `touch`, `cp -p` or `rsync -a`. The
//! service keeps none, so they live in a small SQLite file under the cache
//! dir, keyed by object id: they survive a remount, and a second `rsync -a`
//! of an unchanged tree finds every time equal and transfers nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub atime: SystemTime,
    pub mtime: SystemTime,
}

#[derive(Debug)]
pub struct TimeStore {
    db: Mutex<Connection>,
    cache: Mutex<HashMap<String, Times>>,
}

fn to_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn from_ns(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

impl TimeStore {
    pub fn open(path: &Path) -> rusqlite::Result<TimeStore> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS times (id TEXT PRIMARY KEY, atime_ns INTEGER, mtime_ns INTEGER);",
        )?;
        let cache = {
            let mut stmt = db.prepare("SELECT id, atime_ns, mtime_ns FROM times")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Times {
                        atime: from_ns(r.get(1)?),
                        mtime: from_ns(r.get(2)?),
                    },
                ))
            })?;
            rows.collect::<rusqlite::Result<HashMap<_, _>>>()?
        };
        Ok(TimeStore {
            db: Mutex::new(db),
            cache: Mutex::new(cache),
        })
    }

    pub fn get(&self, id: &str) -> Option<Times> {
        self.cache.lock().unwrap().get(id).copied()
    }

    pub fn set(&self, id: &str, times: Times) {
        self.cache.lock().unwrap().insert(id.to_owned(), times);
        let result = self.db.lock().unwrap().execute(
            "INSERT OR REPLACE INTO times (id, atime_ns, mtime_ns) VALUES (?1, ?2, ?3)",
            params![id, to_ns(times.atime), to_ns(times.mtime)],
        );
        if let Err(e) = result {
            log::warn!("could not record the times of {id}: {e}; they will not survive a remount");
        }
    }

    pub fn forget(&self, id: &str) {
        self.cache.lock().unwrap().remove(id);
        let _ = self
            .db
            .lock()
            .unwrap()
            .execute("DELETE FROM times WHERE id = ?1", [id]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("times.sqlite");
        let t = Times {
            atime: UNIX_EPOCH + Duration::from_nanos(1_600_000_000_123_456_789),
            mtime: UNIX_EPOCH + Duration::from_secs(1_500_000_000),
        };
        TimeStore::open(&path).unwrap().set("abc", t);
        assert_eq!(TimeStore::open(&path).unwrap().get("abc"), Some(t));
    }
}
