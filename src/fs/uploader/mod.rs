//! The uploader: the checks before an upload and the protocol that stores
//! a file, written once for `close`, `fsync`, truncate, rename and the
//! write-back spool alike, and the spool's queue of background uploads.
//!
//! The protocol: upload the new object; then hide the objects it replaces,
//! so that the name means the new bytes at once; then remove them. Nothing
//! stored is removed before its replacement is stored, and a removal that
//! fails is kept in a list and tried again, also after a remount.
//!
//! With `--write-back`, a closed file's bytes move into the spool with a
//! record that alone says where they go (folder, name, what they replace),
//! whatever this mount still knows of the file. A record goes only when its
//! upload is stored, or on a positive signal: the file was unlinked here, or
//! a newer entry of the same file superseded it. Uploads of one file run one
//! at a time, in order.

mod removals;
mod spool;
mod staging;
mod unnamed;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use removals::Removals;
pub use spool::{new_file_key, Spool, SpoolRecord};
pub use staging::{Staged, StagingCell};
pub use unnamed::{Unnamed, GRACE};

use super::namespace::{FolderKey, Ino, Namespace, Spooled};
use super::times::TimeStore;
use super::{api_failure, junk, names, Backend, Errno, FsResult};
use crate::api::limits;
use crate::api::{mime, ApiError, DeleteStatus, MediaObject};

/// What an upload stores, and what it replaces.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The library name to upload as.
    pub name: String,
    pub parent: FolderKey,
    /// Removed once the new object is stored.
    pub replaces: Vec<String>,
    pub len: u64,
    /// The type to upload as; `None` (a spool entry of an older version)
    /// is told from the bytes and the name at upload.
    pub content_type: Option<String>,
}

/// Where an upload's bytes come from, so that its landing changes the
/// right node.
#[derive(Debug, Clone)]
pub enum Source {
    /// A node's staging cell, uploaded while the caller waits.
    Cell(Ino),
    /// A write-back spool entry.
    Entry { file: String, entry: String },
}

/// Where a file's bytes would go.
#[derive(Debug)]
pub struct Destination {
    pub name: String,
    /// The server folder; `None` when the file is in a folder of this mount
    /// only, or unlinked: it is then never uploaded.
    pub folder: Option<FolderKey>,
    /// A junk name (`.DS_Store`, ...), kept in this mount only.
    pub junk: bool,
    /// The type to upload as when neither the bytes nor the name tell one:
    /// an object's it replaces, or its editor backup's.
    pub lent_type: Option<String>,
}

/// The bytes an upload would store.
pub struct Bytes<'a> {
    pub path: &'a Path,
    pub len: u64,
    /// Part of them never made it into staging (see [`StagingCell::refused`]).
    pub refused: bool,
}

impl<'a> Bytes<'a> {
    /// What a staging cell holds, in the file at `path`.
    pub fn staged(cell: &StagingCell, path: &'a Path) -> Bytes<'a> {
        Bytes {
            path,
            len: cell.len(),
            refused: cell.refused.load(Ordering::SeqCst),
        }
    }
}

/// What the checks before an upload decide.
#[derive(Debug)]
pub enum Verdict {
    /// Store these bytes.
    Upload(Upload),
    /// They stay in this mount: junk, a folder of this mount, a new empty
    /// file.
    StaysHere,
    /// A new file whose type neither its bytes nor its name tell: it waits
    /// here for the rename that names it (editors and `sed -i` save through
    /// such temp names), and is uploaded then.
    AwaitsName,
}

/// The checks before an upload, the same for every path: what storing the
/// staged bytes at `dest` would be, or the error the program that wrote
/// them gets. `stored` is the version they replace, and `spooled` says an
/// earlier version of them is bound for the server: then they are too,
/// whatever the name.
pub fn check(
    dest: &Destination,
    stored: Option<&MediaObject>,
    spooled: bool,
    bytes: &Bytes,
) -> FsResult<Verdict> {
    let name = dest.name.as_str();
    if bytes.refused {
        // Part of the file never made it into staging: uploading the rest
        // would store a truncated file.
        return Err(Errno(libc::EFBIG));
    }
    let bound = stored.is_some() || spooled;
    let Some(parent) = dest.folder.clone().filter(|_| bound || !dest.junk) else {
        return Ok(Verdict::StaysHere);
    };
    let len = bytes.len;
    if len == 0 {
        // The library holds no empty files: a new one stays local until it
        // gets content, and a stored one keeps its content (the caller says
        // so to the user, once the handle is closed).
        return if bound {
            Err(Errno(libc::EINVAL))
        } else {
            Ok(Verdict::StaysHere)
        };
    }
    let Some(content_type) = upload_type(bytes.path, name, stored, dest.lent_type.as_deref())?
    else {
        let refused = mime::refused_by_name(name);
        if !bound && refused.is_none() {
            return Ok(Verdict::AwaitsName);
        }
        match refused {
            Some(said) => log::warn!(
                "cannot tell the type of {name:?} from its bytes, and its name says {said}, which the \
                 library refuses"
            ),
            None => log::warn!(
                "cannot tell the type of {name:?} from its bytes or its name; the library refuses it"
            ),
        }
        return Err(Errno(libc::EINVAL));
    };
    if len > limits::max_upload_bytes(&content_type) {
        log::warn!(
            "{name:?} is {len} bytes, over the library's limit of {}",
            limits::limit_words(&content_type)
        );
        return Err(Errno(libc::EFBIG));
    }
    Ok(Verdict::Upload(Upload {
        // A replacement keeps the library's own name (which may hold a `/`).
        name: stored.map_or(name.to_owned(), |o| o.name.clone()),
        parent,
        replaces: stored.map(|o| o.id.clone()).into_iter().collect(),
        len,
        content_type: Some(content_type),
    }))
}

/// The type to upload bytes as: told by the bytes, then by the name, then,
/// for a rewrite, the type of the version it replaces (`README` rewritten
/// is still text), then the type the destination lends.
fn upload_type(
    path: &Path,
    name: &str,
    stored: Option<&MediaObject>,
    lent: Option<&str>,
) -> FsResult<Option<String>> {
    // An editor's swap file is no `.txt` for being named `.notes.txt.swp`:
    // a junk name (uploaded with --upload-junk) tells no type.
    let type_name = if junk::is_junk(name) { "" } else { name };
    let told = mime::detect_file(path, type_name).map_err(Errno::from_io)?;
    let known = stored.and_then(|o| o.content_type.as_deref()).or(lent);
    Ok(told.or_else(|| {
        known
            .filter(|t| !limits::is_refused_type(t))
            .map(str::to_owned)
    }))
}

/// What the uploads have done and have left: what a mount that stops
/// waits for and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadCounts {
    /// Uploads stored since the mount began.
    pub stored: u64,
    /// Uploads under way, of closed files and of the write-back spool.
    pub running: usize,
    /// Write-back spool entries queued or uploading.
    pub write_back_pending: usize,
}

/// Counts an upload as under way for as long as it lives, even if its
/// task is dropped.
struct UnderWay<'a>(&'a AtomicUsize);

impl<'a> UnderWay<'a> {
    fn start(running: &'a AtomicUsize) -> Self {
        running.fetch_add(1, Ordering::SeqCst);
        UnderWay(running)
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Spool entries waiting for the background, oldest first.
    waiting: VecDeque<String>,
    /// Entries queued or being uploaded.
    pending: usize,
    /// One upload at a time per file (by spool file key).
    files: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

pub struct Uploader<B> {
    backend: Arc<B>,
    ns: Arc<Mutex<Namespace>>,
    times: Arc<TimeStore>,
    spool: Spool,
    removals: Removals,
    delete_mode: DeleteStatus,
    parallel: usize,
    queue: Mutex<Queue>,
    changed: Notify,
    stored: AtomicU64,
    running: AtomicUsize,
}

impl<B> std::fmt::Debug for Uploader<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("spool", &self.spool)
            .finish()
    }
}

impl<B: Backend> Uploader<B> {
    pub fn new(
        backend: Arc<B>,
        ns: Arc<Mutex<Namespace>>,
        times: Arc<TimeStore>,
        cache_dir: &Path,
        delete_mode: DeleteStatus,
        parallel: usize,
    ) -> std::io::Result<Uploader<B>> {
        Ok(Uploader {
            backend,
            ns,
            times,
            spool: Spool::open(&cache_dir.join("spool"))?,
            removals: Removals::open(&cache_dir.join("removals.json")),
            delete_mode,
            parallel: parallel.max(1),
            queue: Mutex::default(),
            changed: Notify::new(),
            stored: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        })
    }

    /// Where a spool entry's bytes are.
    pub fn data_path(&self, entry: &str) -> std::path::PathBuf {
        self.spool.data_path(entry)
    }

    /// Shows what an earlier mount left, and queues it: spool entries (the
    /// newest of each file; older ones are superseded) and replaced
    /// versions still to remove, which stay hidden.
    pub fn adopt_leftovers(&self) {
        let records = match self.spool.records() {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot read the write-back spool: {e}");
                Vec::new()
            }
        };
        let mut newest: HashMap<String, (String, SpoolRecord)> = HashMap::new();
        for (entry, record) in records {
            if let Some((older, _)) = newest.insert(record.file.clone(), (entry, record)) {
                self.spool.remove(&older);
            }
        }
        if !newest.is_empty() {
            log::info!(
                "{} files left in the write-back spool by an earlier mount are shown now and uploaded",
                newest.len()
            );
        }
        let mut ns = self.ns.lock().unwrap();
        for (id, _) in self.removals.all() {
            ns.listings.supersede(&id);
        }
        let mut entries: Vec<_> = newest.into_values().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (entry, record) in entries {
            let spooled = Spooled {
                entry: entry.clone(),
                file: record.file.clone(),
                len: record.size,
                stored: None,
            };
            let (over, hidden) = record
                .replaces
                .split_last()
                .map_or((None, &[][..]), |(l, r)| (Some(l), r));
            for id in hidden {
                ns.listings.supersede(id);
            }
            let shown = names::escape(&record.name, &entry);
            ns.adopt(
                spooled,
                record.parent.clone(),
                (&record.name, &shown),
                over.map(String::as_str),
            );
            self.enqueue(entry);
        }
    }

    /// Moves staged bytes into the spool; when this returns, they survive a
    /// crash. [`Self::enqueue`] then queues them for upload. On failure the
    /// staged file is handed back, unless it was lost.
    pub fn spool(
        &self,
        file: &str,
        staged: tempfile::NamedTempFile,
        upload: &Upload,
    ) -> Result<String, (Errno, Option<tempfile::NamedTempFile>)> {
        let record = SpoolRecord {
            file: file.to_owned(),
            name: upload.name.clone(),
            parent: upload.parent.clone(),
            replaces: upload.replaces.clone(),
            size: upload.len,
            content_type: upload.content_type.clone(),
            spooled_at: chrono::Utc::now(),
            failed: None,
        };
        self.spool.add(staged, &record).map_err(|(e, back)| {
            log::error!("cannot spool {:?}: {e}", upload.name);
            (Errno::from_io(e), back)
        })
    }

    /// Queues a spool entry for a background upload.
    pub fn enqueue(&self, entry: String) {
        let mut queue = self.queue.lock().unwrap();
        queue.pending += 1;
        queue.waiting.push_back(entry);
        drop(queue);
        self.changed.notify_waiters();
    }

    /// The lock that keeps one file's uploads in order.
    pub fn file_lock(&self, file: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut queue = self.queue.lock().unwrap();
        queue.files.entry(file.to_owned()).or_default().clone()
    }

    /// Drops a spool entry on a positive signal: its file was unlinked here,
    /// or a newer version superseded it. Hold the file's lock.
    pub fn discard(&self, entry: &str) {
        self.spool.remove(entry);
    }

    /// Changes where a pending entry goes. Hold the file's lock.
    pub fn rewrite_record(&self, entry: &str, record: &SpoolRecord) -> FsResult<()> {
        self.spool.write_record(entry, record).map_err(|e| {
            log::error!("cannot update the spool record of {:?}: {e}", record.name);
            Errno::from_io(e)
        })
    }

    /// The spool record of an entry still pending.
    pub fn record(&self, entry: &str) -> Option<SpoolRecord> {
        self.spool.record(entry)
    }

    /// Uploads a spool entry now, unless it is stored or gone already;
    /// waits for an upload of the same file in flight first.
    pub async fn upload_entry(&self, entry: &str) -> FsResult<()> {
        let Some(record) = self.spool.record(entry) else {
            return Ok(());
        };
        let lock = self.file_lock(&record.file);
        let _in_order = lock.lock().await;
        // Stored, unlinked or superseded while this waited.
        let Some(mut record) = self.spool.record(entry) else {
            return Ok(());
        };
        let upload = Upload {
            name: record.name.clone(),
            parent: record.parent.clone(),
            replaces: record.replaces.clone(),
            len: record.size,
            content_type: record.content_type.clone(),
        };
        let source = Source::Entry {
            file: record.file.clone(),
            entry: entry.to_owned(),
        };
        match self
            .store(&upload, &self.spool.data_path(entry), &source)
            .await
        {
            Ok(_) => {
                self.spool.remove(entry);
                Ok(())
            }
            Err((e, errno)) => {
                log::error!(
                    "uploading {:?} failed: {e}. It stays in the write-back spool ({}); \
                     `mediafs status` lists it, and fsync or the next mount tries again",
                    record.name,
                    self.spool.data_path(entry).display()
                );
                record.failed = Some(e.to_string());
                if let Err(e) = self.spool.write_record(entry, &record) {
                    log::error!(
                        "cannot record the failure of {:?} in the spool: {e}",
                        record.name
                    );
                }
                Err(errno)
            }
        }
    }

    /// The protocol, the one way anything is stored: upload the new object,
    /// let the namespace show it in place of what it replaces, then remove
    /// those. Returns the new object, or the failure and its errno.
    pub async fn store(
        &self,
        upload: &Upload,
        data: &Path,
        source: &Source,
    ) -> Result<MediaObject, (ApiError, Errno)> {
        let _under_way = UnderWay::start(&self.running);
        let new = self
            .backend
            .upload(
                data,
                &upload.name,
                upload.parent.as_deref(),
                upload.content_type.as_deref(),
            )
            .await
            .map_err(|e| {
                let errno = api_failure(&format!("uploading {:?}", upload.name), &e);
                (e, errno)
            })?;
        log::debug!("stored {:?} as {} (from {source:?})", upload.name, new.id);
        let landed = self
            .ns
            .lock()
            .unwrap()
            .landed(source, &new, &upload.replaces);
        if let Some(times) = landed.times {
            self.times.set(&new.id, times);
        }
        if let Some(newer) = landed.newer_entry {
            self.now_replaces(&newer, &upload.replaces, &new.id);
        }
        self.stored.fetch_add(1, Ordering::SeqCst);
        for old in &upload.replaces {
            self.remove_replaced(old, &upload.name).await;
        }
        Ok(new)
    }

    pub fn counts(&self) -> UploadCounts {
        UploadCounts {
            stored: self.stored.load(Ordering::SeqCst),
            running: self.running.load(Ordering::SeqCst),
            write_back_pending: self.queue.lock().unwrap().pending,
        }
    }

    /// A newer spool entry of a file whose older one just landed replaces
    /// the landed object, not what the older one replaced.
    pub fn now_replaces(&self, entry: &str, landed_replaced: &[String], landed: &str) {
        let Some(mut record) = self.spool.record(entry) else {
            return;
        };
        record.replaces.retain(|id| !landed_replaced.contains(id));
        record.replaces.insert(0, landed.to_owned());
        if let Err(e) = self.spool.write_record(entry, &record) {
            log::error!(
                "cannot update the spool record of {:?}: {e}; once stored, its previous version may stay beside it",
                record.name
            );
        }
    }

    /// Removes a replaced object, or keeps it hidden and listed for another
    /// try when the removal fails.
    pub async fn remove_replaced(&self, id: &str, name: &str) {
        match self.backend.remove(id, self.delete_mode).await {
            Ok(()) | Err(ApiError::NotFound { .. }) => {
                self.ns.lock().unwrap().listings.superseded_removed(id);
                self.times.forget(id);
                self.removals.done(id);
            }
            Err(e) => {
                log::warn!(
                    "{name:?} was replaced, but removing its previous version failed ({e}); \
                     it stays hidden here and its removal is tried again"
                );
                self.ns.lock().unwrap().listings.supersede(id);
                self.removals.add(id, name);
            }
        }
    }

    /// Tries again the removals that failed before.
    async fn retry_removals(&self) {
        for (id, name) in self.removals.all() {
            self.remove_replaced(&id, &name).await;
        }
    }

    fn next_waiting(&self) -> Option<String> {
        self.queue.lock().unwrap().waiting.pop_front()
    }

    fn finished_one(&self) {
        let mut queue = self.queue.lock().unwrap();
        queue.pending = queue.pending.saturating_sub(1);
        // Locks nobody holds or waits for are dropped with the last upload.
        if queue.pending == 0 {
            queue.files.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        drop(queue);
        self.changed.notify_waiters();
    }

    /// Runs the background uploads, `parallel` at a time, until the mount
    /// ends (the task is aborted).
    pub async fn run(self: Arc<Self>) {
        let removals = self.clone();
        tokio::spawn(async move { removals.retry_removals().await });
        let slots = Arc::new(Semaphore::new(self.parallel));
        loop {
            let changed = self.changed.notified();
            let Some(entry) = self.next_waiting() else {
                changed.await;
                continue;
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let uploader = self.clone();
            tokio::spawn(async move {
                let _ = uploader.upload_entry(&entry).await;
                uploader.finished_one();
                drop(slot);
            });
        }
    }

    /// Uploads everything queued, one at a time, in this task, and tries
    /// failed removals again: for a core that runs no background worker.
    pub async fn finish_pending(&self) {
        self.retry_removals().await;
        while let Some(entry) = self.next_waiting() {
            let _ = self.upload_entry(&entry).await;
            self.finished_one();
        }
    }

    /// Waits until nothing is queued or uploading (at unmount).
    pub async fn drain(&self) {
        let mut said = false;
        loop {
            let changed = self.changed.notified();
            let pending = self.queue.lock().unwrap().pending;
            if pending == 0 {
                return;
            }
            if !said {
                log::info!("waiting for {pending} write-back uploads");
                said = true;
            }
            changed.await;
        }
    }
}
