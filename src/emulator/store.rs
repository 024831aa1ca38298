//! The emulator's storage: metadata in SQLite (WAL, one transaction per
//! change, so a crash never leaves it half-written) and file bytes on disk
//! under the data dir, written in full before their row exists. A killed or
//! crashed emulator loses nothing (both live in the page cache until the
//! kernel writes them); only a power loss could, which is not what an
//! emulator is for, and fsyncs would make it the bottleneck of benchmarks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Folder,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Folder => "folder",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "file" => Some(Kind::File),
            "folder" => Some(Kind::Folder),
            _ => None,
        }
    }
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: String,
    pub location: String,
    pub name: String,
    pub kind: Kind,
    pub parent_id: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    /// File name extension of its storage path (`png` in `LOC/media/ID.png`).
    pub ext: Option<String>,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Object {
    /// A new active object, created now, with a fresh id.
    pub fn new(location: &str, name: &str, kind: Kind, parent_id: Option<String>) -> Object {
        let now = Utc::now();
        Object {
            id: new_object_id(),
            location: location.to_owned(),
            name: name.to_owned(),
            kind,
            parent_id,
            content_type: None,
            size: None,
            ext: None,
            status: Status::Active,
            created_at: now,
            updated_at: now,
        }
    }

    /// Its storage path, as the service shows in `path` and at the end of `url`.
    pub fn storage_path(&self) -> String {
        match &self.ext {
            Some(ext) => format!("{}/media/{}.{}", self.location, self.id, ext),
            None => format!("{}/media/{}", self.location, self.id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Trashed,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Trashed => "trashed",
            Status::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "trashed" => Status::Trashed,
            "deleted" => Status::Deleted,
            _ => Status::Active,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    UpdatedAt,
    Name,
}

/// A listing request, already validated.
#[derive(Debug, Clone)]
pub struct Listing {
    pub location: String,
    pub kind: Kind,
    /// `None` with `fetch_all` false means the root.
    pub parent_id: Option<String>,
    pub fetch_all: bool,
    pub query: Option<String>,
    pub sort: SortColumn,
    pub descending: bool,
    pub offset: u64,
    pub limit: Option<u64>,
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Mutex<Connection>>,
    blobs: PathBuf,
    incoming: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("blobs", &self.blobs).finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_id TEXT,
    content_type TEXT,
    size INTEGER,
    ext TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_parent
    ON objects (location, kind, status, parent_id, created_at);
CREATE INDEX IF NOT EXISTS objects_by_kind
    ON objects (location, kind, status, created_at);
CREATE INDEX IF NOT EXISTS objects_children ON objects (parent_id);
";

const COLUMNS: &str =
    "id, location, name, kind, parent_id, content_type, size, ext, status, created_at, updated_at";

fn row_to_object(row: &rusqlite::Row<'_>) -> rusqlite::Result<Object> {
    let millis = |i| -> rusqlite::Result<DateTime<Utc>> {
        let ms: i64 = row.get(i)?;
        Ok(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
    };
    Ok(Object {
        id: row.get(0)?,
        location: row.get(1)?,
        name: row.get(2)?,
        kind: Kind::parse(&row.get::<_, String>(3)?).unwrap_or(Kind::File),
        parent_id: row.get(4)?,
        content_type: row.get(5)?,
        size: row.get::<_, Option<i64>>(6)?.map(|s| s as u64),
        ext: row.get(7)?,
        status: Status::parse(&row.get::<_, String>(8)?),
        created_at: millis(9)?,
        updated_at: millis(10)?,
    })
}

static ID_COUNTER: AtomicU32 = AtomicU32::new(0);
static PROCESS_RANDOM: OnceLock<[u8; 5]> = OnceLock::new();

/// A new 24-hex-character id shaped like a Mongo ObjectId: creation second,
/// a per-process random part, then a counter, so that ids sort by age (ties
/// within one millisecond of `createdAt` fall back to the id, and must keep
/// the order in which the objects were made, as the service's do).
pub fn new_object_id() -> String {
    let secs = Utc::now().timestamp() as u32;
    let random = PROCESS_RANDOM.get_or_init(rand::random);
    let count = ID_COUNTER.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    let mut id = format!("{secs:08x}");
    for b in random {
        id.push_str(&format!("{b:02x}"));
    }
    id.push_str(&format!("{count:06x}"));
    id
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let blobs = data_dir.join("blobs");
        let incoming = data_dir.join("incoming");
        std::fs::create_dir_all(&blobs)?;
        // Partial uploads from before a crash are never referenced: drop them.
        let _ = std::fs::remove_dir_all(&incoming);
        std::fs::create_dir_all(&incoming)?;
        let conn = Connection::open(data_dir.join("emulator.sqlite"))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            db: Arc::new(Mutex::new(conn)),
            blobs,
            incoming,
        })
    }

    /// Runs a query on a blocking thread, off the async workers.
    pub async fn with_db<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&mut db.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .expect("database task panicked")
    }

    pub fn blob_path(&self, id: &str) -> PathBuf {
        self.blobs.join(&id[id.len().saturating_sub(2)..]).join(id)
    }

    /// A fresh path for an upload in progress.
    pub fn incoming_path(&self) -> PathBuf {
        self.incoming.join(format!("{}.part", uuid::Uuid::new_v4()))
    }

    /// Moves a complete upload into place under its id.
    pub fn commit_blob(&self, incoming: &Path, id: &str) -> std::io::Result<()> {
        let dest = self.blob_path(id);
        std::fs::create_dir_all(dest.parent().expect("blob paths have a parent"))?;
        std::fs::rename(incoming, &dest)
    }

    pub async fn get(&self, id: &str) -> rusqlite::Result<Option<Object>> {
        let id = id.to_owned();
        self.with_db(move |db| {
            db.query_row(
                &format!("SELECT {COLUMNS} FROM objects WHERE id = ?1"),
                [id],
                row_to_object,
            )
            .optional()
        })
        .await
    }

    pub async fn insert(&self, object: Object) -> rusqlite::Result<()> {
        self.insert_many(vec![object]).await
    }

    /// Inserts objects in one transaction.
    pub async fn insert_many(&self, objects: Vec<Object>) -> rusqlite::Result<()> {
        self.with_db(move |db| {
            let tx = db.transaction()?;
            {
                let mut stmt = tx.prepare(&format!(
                    "INSERT INTO objects ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))?;
                for o in objects {
                    stmt.execute(params![
                        o.id,
                        o.location,
                        o.name,
                        o.kind.as_str(),
                        o.parent_id,
                        o.content_type,
                        o.size.map(|s| s as i64),
                        o.ext,
                        o.status.as_str(),
                        o.created_at.timestamp_millis(),
                        o.updated_at.timestamp_millis(),
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// One page of a listing and the total number of matches.
    pub async fn list(&self, l: Listing) -> rusqlite::Result<(Vec<Object>, u64)> {
        self.with_db(move |db| {
            let mut filter = String::from("location = ?1 AND kind = ?2 AND status = 'active'");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> =
                vec![Box::new(l.location.clone()), Box::new(l.kind.as_str())];
            if !l.fetch_all {
                match &l.parent_id {
                    Some(p) => {
                        args.push(Box::new(p.clone()));
                        filter.push_str(&format!(" AND parent_id = ?{}", args.len()));
                    }
                    None => filter.push_str(" AND parent_id IS NULL"),
                }
            }
            if let Some(q) = &l.query {
                let escaped = q
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                args.push(Box::new(format!("%{escaped}%")));
                filter.push_str(&format!(" AND name LIKE ?{} ESCAPE '\\'", args.len()));
            }
            let arg_refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            let total: i64 = db.query_row(
                &format!("SELECT COUNT(*) FROM objects WHERE {filter}"),
                arg_refs.as_slice(),
                |r| r.get(0),
            )?;
            let column = match l.sort {
                SortColumn::CreatedAt => "created_at",
                SortColumn::UpdatedAt => "updated_at",
                SortColumn::Name => "name",
            };
            let dir = if l.descending { "DESC" } else { "ASC" };
            let limit = l.limit.map_or(-1, |n| n as i64);
            let sql = format!(
                "SELECT {COLUMNS} FROM objects WHERE {filter} ORDER BY {column} {dir}, id {dir} \
                 LIMIT {limit} OFFSET {}",
                l.offset
            );
            let mut stmt = db.prepare_cached(&sql)?;
            let rows = stmt.query_map(arg_refs.as_slice(), row_to_object)?;
            Ok((rows.collect::<rusqlite::Result<Vec<_>>>()?, total as u64))
        })
        .await
    }

    /// Every object of a location, whatever its status, oldest first: the
    /// store's own view, for tests to check the server state against.
    pub async fn all_objects(&self, location: &str) -> rusqlite::Result<Vec<Object>> {
        let location = location.to_owned();
        self.with_db(move |db| {
            let mut stmt = db.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM objects WHERE location = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([location], row_to_object)?;
            rows.collect()
        })
        .await
    }

    /// Renames an active object; false when there is none with that id.
    pub async fn rename(&self, location: &str, id: &str, name: &str) -> rusqlite::Result<bool> {
        let (location, id, name) = (location.to_owned(), id.to_owned(), name.to_owned());
        self.with_db(move |db| {
            let changed = db.execute(
                "UPDATE objects SET name = ?1, updated_at = ?2 \
                 WHERE id = ?3 AND location = ?4 AND status = 'active'",
                params![name, Utc::now().timestamp_millis(), id, location],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Trashes or deletes an object and everything under it. Returns whether
    /// the object exists (already trashed counts, for idempotent retries) and
    /// the ids of files whose bytes are now gone for good.
    pub async fn set_status(
        &self,
        location: &str,
        id: &str,
        status: Status,
    ) -> rusqlite::Result<(bool, Vec<String>)> {
        let (location, id) = (location.to_owned(), id.to_owned());
        self.with_db(move |db| {
            let tx = db.transaction()?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT status FROM objects WHERE id = ?1 AND location = ?2",
                    params![id, location],
                    |r| r.get(0),
                )
                .optional()?;
            let existed = match current.as_deref().map(Status::parse) {
                None | Some(Status::Deleted) => false,
                Some(Status::Trashed) => true,
                Some(Status::Active) => true,
            };
            if !existed {
                return Ok((false, Vec::new()));
            }
            let subtree = "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL \
                           SELECT o.id FROM objects o JOIN sub ON o.parent_id = sub.id)";
            let gone: Vec<String> = if status == Status::Deleted {
                let mut stmt = tx.prepare(&format!(
                    "{subtree} SELECT id FROM objects WHERE id IN sub AND kind = 'file' AND status != 'deleted'"
                ))?;
                let ids = stmt.query_map([&id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
                ids
            } else {
                Vec::new()
            };
            tx.execute(
                &format!(
                    "{subtree} UPDATE objects SET status = ?2, updated_at = ?3 \
                     WHERE id IN sub AND status != 'deleted' AND status != ?2"
                ),
                params![id, status.as_str(), Utc::now().timestamp_millis()],
            )?;
            tx.commit()?;
            Ok((true, gone))
        })
        .await
    }

    /// Whether the location holds any object at all (active or not).
    pub async fn location_is_empty(&self, location: &str) -> rusqlite::Result<bool> {
        let location = location.to_owned();
        self.with_db(move |db| {
            db.query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM objects WHERE location = ?1)",
                [location],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Removes the bytes of files deleted for good.
    pub fn remove_blobs(&self, ids: &[String]) {
        for id in ids {
            if let Err(e) = std::fs::remove_file(self.blob_path(id)) {
                log::warn!("emulator: could not remove the bytes of {id}: {e}");
            }
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}
