//! Contents: open, create, read, write, flush, fsync, release, setattr, and
//! the extended attributes.
//!
//! A file being written is staged in a temp file and uploaded when a handle
//! that wrote it is flushed (on `close`) or fsynced; the program's `close`
//! gets the error if that upload fails. A rewrite is a new upload, and the
//! object it replaces is removed only once the new one is stored.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::content::{Remote, CHUNK};
use super::staging::{Staged, StagingCell};
use super::state::Ino;
use super::times::Times;
use super::{Attr, Backend, DirEntry, Errno, FileKind, FsResult, MediaFs, Opened, Stale};

/// Where an upload goes and what it replaces.
pub(super) struct UploadPlan {
    /// The library name to upload as.
    pub name: String,
    /// The name this mount shows, for log lines.
    pub shown: String,
    pub parent: Option<String>,
    pub old: Option<MediaObject>,
}
use crate::api::limits::{max_upload_bytes, MAX_FILE_BYTES};
use crate::api::MediaObject;

/// How far ahead sequential reads fetch, in chunks, at most.
const MAX_READ_AHEAD_CHUNKS: u64 = 8;

#[derive(Debug)]
pub(super) enum Handle {
    File {
        ino: Ino,
        write: bool,
        read_ahead: ReadAhead,
    },
    Dir {
        entries: Vec<DirEntry>,
    },
}

/// Grows while reads are sequential, falls back when they jump.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    next_offset: u64,
    window: u64,
    /// Chunks before this one have been asked for already.
    requested_until: u64,
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenMode {
    pub write: bool,
    pub truncate: bool,
}

/// Times to set; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
    /// chmod and chown: accepted, and without effect (the library keeps no owner or mode).
    pub mode_or_owner: bool,
}

/// Up to `len` bytes of a local file at `offset`.
fn read_file_at(path: &std::path::Path, offset: u64, len: usize) -> FsResult<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(Errno::from_io)?;
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let n = file
            .read_at(&mut buf[filled..], offset + filled as u64)
            .map_err(Errno::from_io)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

fn remote_of(object: &MediaObject) -> FsResult<Remote> {
    Ok(Remote {
        id: object.id.clone(),
        url: object.url.clone().ok_or(Errno(libc::EIO))?,
        size: object.size.unwrap_or(0),
    })
}

impl<B: Backend> MediaFs<B> {
    fn new_fh(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().unwrap().insert(fh, handle);
        fh
    }

    fn handle_ino(&self, fh: u64) -> FsResult<(Ino, bool)> {
        match self.handles.lock().unwrap().get(&fh) {
            Some(Handle::File { ino, write, .. }) => Ok((*ino, *write)),
            _ => Err(Errno(libc::EBADF)),
        }
    }

    fn new_staging(&self, loaded: bool, len: u64) -> FsResult<Arc<StagingCell>> {
        StagingCell::new(&self.staging_dir, loaded, len)
            .map(Arc::new)
            .map_err(|e| {
                log::error!(
                    "cannot create a staging file in {}: {e}",
                    self.staging_dir.display()
                );
                Errno::from_io(e)
            })
    }

    /// The inode's staging file, made if it has none.
    fn staging_for(&self, ino: Ino) -> FsResult<Arc<StagingCell>> {
        let mut st = self.state.lock().unwrap();
        let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
        if let Some(cell) = &node.staging {
            return Ok(cell.clone());
        }
        // Bytes not uploaded yet (spooled) come first, then the object's.
        let size = node
            .spooled
            .as_ref()
            .map(|(_, len)| *len)
            .or(node.object.as_ref().and_then(|o| o.size))
            .unwrap_or(0);
        let has_bytes = node.spooled.is_some() || node.object.is_some();
        let cell = self.new_staging(!has_bytes || size == 0, size)?;
        node.staging = Some(cell.clone());
        Ok(cell)
    }

    pub async fn open(&self, ino: Ino, mode: OpenMode) -> FsResult<Opened> {
        if mode.write {
            self.writable()?;
        }
        let cell = if mode.write {
            Some(self.staging_for(ino)?)
        } else {
            None
        };
        if let (Some(cell), true) = (&cell, mode.truncate) {
            let mut staged = cell.file.lock().await;
            staged.set_len(0).map_err(Errno::from_io)?;
            staged.loaded = true;
            cell.len.store(0, Ordering::SeqCst);
            cell.refused.store(false, Ordering::SeqCst);
            cell.set_dirty(true);
        }
        let mut st = self.state.lock().unwrap();
        let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
        if node.kind == FileKind::Dir {
            return Err(Errno(libc::EISDIR));
        }
        node.open += 1;
        let id = node.id().map(str::to_owned);
        let keep_cache =
            !mode.write && node.staging.is_none() && id.is_some() && node.page_cache_id == id;
        node.page_cache_id = if mode.write { None } else { id };
        drop(st);
        let fh = self.new_fh(Handle::File {
            ino,
            write: mode.write,
            read_ahead: ReadAhead::default(),
        });
        Ok(Opened { fh, keep_cache })
    }

    pub async fn create(&self, dir: Ino, name: &str, exclusive: bool) -> FsResult<(Attr, Opened)> {
        self.writable()?;
        if let Some(entry) = self.resolve(dir, name).await? {
            if exclusive {
                return Err(Errno(libc::EEXIST));
            }
            let attr = self.enter(dir, name, &entry)?;
            let opened = self
                .open(
                    attr.ino,
                    OpenMode {
                        write: true,
                        truncate: true,
                    },
                )
                .await?;
            return Ok((self.getattr(attr.ino)?, opened));
        }
        let cell = self.new_staging(true, 0)?;
        cell.set_dirty(true);
        let ino = {
            let mut st = self.state.lock().unwrap();
            st.touch_dir(dir);
            let ino = st.add_local(dir, name, FileKind::File);
            let node = st.node_mut(ino).expect("just added");
            node.staging = Some(cell);
            node.lookups += 1;
            ino
        };
        let opened = self
            .open(
                ino,
                OpenMode {
                    write: true,
                    truncate: false,
                },
            )
            .await?;
        Ok((self.getattr(ino)?, opened))
    }

    /// Copies an object's bytes into its staging file before the first
    /// change that keeps any of them (a write into the middle, say).
    async fn load_existing(&self, ino: Ino, staged: &mut Staged) -> FsResult<()> {
        if staged.loaded {
            return Ok(());
        }
        if let Some(path) = self.spooled_path(ino) {
            let mut offset = 0;
            loop {
                let bytes = read_file_at(&path, offset, CHUNK as usize)?;
                if bytes.is_empty() {
                    break;
                }
                staged.write_at(offset, &bytes).map_err(Errno::from_io)?;
                offset += bytes.len() as u64;
            }
            staged.loaded = true;
            return Ok(());
        }
        let object = self.state.lock().unwrap().object_of(ino);
        if let Some(object) = object {
            let remote = remote_of(&object)?;
            let mut offset = 0;
            while offset < remote.size {
                let bytes = self
                    .content
                    .read(&*self.backend, &remote, offset, CHUNK)
                    .await?;
                staged.write_at(offset, &bytes).map_err(Errno::from_io)?;
                offset += bytes.len() as u64;
            }
        }
        staged.loaded = true;
        Ok(())
    }

    /// A read answered at once, when the bytes are already in memory and
    /// nothing needs waiting for; `None` sends it down [`Self::read`]. Most
    /// reads of a sequential stream land here, thanks to the read-ahead, and
    /// skip a trip through the task scheduler.
    pub fn read_ready(&self, fh: u64, offset: u64, size: u32) -> Option<Bytes> {
        let (ino, _) = self.handle_ino(fh).ok()?;
        let object = {
            let st = self.state.lock().unwrap();
            let node = st.node(ino)?;
            if node.staging.is_some() || node.spooled.is_some() {
                return None;
            }
            node.object.clone()?
        };
        let remote = remote_of(&object).ok()?;
        let data = self.content.read_ready(&remote, offset, size as u64)?;
        self.read_ahead(fh, &remote, offset, data.len() as u64);
        Some(data)
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let (ino, _) = self.handle_ino(fh)?;
        let (staging, object) = {
            let st = self.state.lock().unwrap();
            let node = st.node(ino).ok_or(Errno(libc::ENOENT))?;
            (node.staging.clone(), node.object.clone())
        };
        if let Some(cell) = staging {
            let staged = cell.file.lock().await;
            if staged.loaded || cell.is_dirty() {
                return staged
                    .read_at(offset, size as usize, cell.len())
                    .map(Bytes::from)
                    .map_err(Errno::from_io);
            }
        }
        if let Some(path) = self.spooled_path(ino) {
            return read_file_at(&path, offset, size as usize).map(Bytes::from);
        }
        let Some(object) = object else {
            return Ok(Bytes::new());
        };
        let remote = remote_of(&object)?;
        let data = self
            .content
            .read(&*self.backend, &remote, offset, size as u64)
            .await?;
        self.read_ahead(fh, &remote, offset, data.len() as u64);
        Ok(data)
    }

    /// After a read, fetches the chunks a sequential reader will want next.
    fn read_ahead(&self, fh: u64, remote: &Remote, offset: u64, len: u64) {
        let next_chunk = (offset + len).div_ceil(CHUNK);
        let wanted = {
            let mut handles = self.handles.lock().unwrap();
            let Some(Handle::File { read_ahead, .. }) = handles.get_mut(&fh) else {
                return;
            };
            if offset == read_ahead.next_offset && offset > 0 {
                read_ahead.window = (read_ahead.window * 2).clamp(1, MAX_READ_AHEAD_CHUNKS);
            } else {
                read_ahead.window = 0;
                read_ahead.requested_until = 0;
            }
            read_ahead.next_offset = offset + len;
            // Each chunk once: a read inside the window asks only for what
            // the window newly covers.
            let from = next_chunk.max(read_ahead.requested_until);
            let until = (next_chunk + read_ahead.window).min(remote.chunks());
            read_ahead.requested_until = read_ahead.requested_until.max(until);
            from..until
        };
        for chunk in wanted {
            let (content, backend, remote) =
                (self.content.clone(), self.backend.clone(), remote.clone());
            tokio::spawn(async move {
                let _ = content.ensure_chunk(&*backend, &remote, chunk).await;
            });
        }
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (ino, write) = self.handle_ino(fh)?;
        if !write {
            return Err(Errno(libc::EBADF));
        }
        let cell = self.staging_for(ino)?;
        let name = self
            .state
            .lock()
            .unwrap()
            .node(ino)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let mut staged = cell.file.lock().await;
        self.load_existing(ino, &mut staged).await?;
        let end = offset + data.len() as u64;
        let new_len = end.max(cell.len());
        if new_len > MAX_FILE_BYTES && !self.is_junk(&name) {
            let head_type = if offset == 0 {
                crate::api::mime::detect(data, &name)
            } else {
                staged.content_type(&name)
            };
            let limit = head_type
                .as_deref()
                .map_or(MAX_FILE_BYTES, max_upload_bytes);
            if new_len > limit {
                log::warn!("{name:?} would grow to {new_len} bytes; the library takes at most {limit} for its type");
                cell.refused.store(true, Ordering::SeqCst);
                return Err(Errno(libc::EFBIG));
            }
        }
        staged.write_at(offset, data).map_err(Errno::from_io)?;
        cell.len.store(new_len, Ordering::SeqCst);
        cell.set_dirty(true);
        Ok(data.len() as u32)
    }

    /// `close` of a handle: uploads what it wrote.
    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        let (ino, write) = self.handle_ino(fh)?;
        if write {
            self.commit_staged(ino).await?;
        }
        Ok(())
    }

    /// Uploads what the handle wrote and, with `--write-back`, waits for it.
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        self.flush(fh).await?;
        let (ino, _) = self.handle_ino(fh)?;
        self.wait_uploaded(ino).await
    }

    pub fn release(&self, fh: u64) {
        let Some(handle) = self.handles.lock().unwrap().remove(&fh) else {
            return;
        };
        let Handle::File { ino, .. } = handle else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        let Some(node) = st.node_mut(ino) else { return };
        node.open = node.open.saturating_sub(1);
        if node.open > 0 {
            return;
        }
        if let Some(cell) = node.staging.clone() {
            let dirty = cell.is_dirty();
            let failed = dirty && !node.unlinked;
            if failed {
                log::error!(
                    "{:?} was closed with changes that could not be uploaded (its close reported the error); \
                     the library keeps its previous version",
                    node.name
                );
            }
            // A local node's bytes live only in its staging file: keep it.
            if !node.local || node.unlinked || dirty {
                node.staging = None;
            }
            if failed {
                drop(st);
                self.forget_failed_local(ino);
                self.report_stale(Stale::Attributes(ino));
                st = self.state.lock().unwrap();
            }
        }
        if st.node(ino).is_some_and(|n| n.lookups == 0) {
            st.forget(ino, 0);
        }
    }

    /// A new file that could not be stored leaves no entry behind.
    fn forget_failed_local(&self, ino: Ino) {
        let gone = {
            let mut st = self.state.lock().unwrap();
            let Some(node) = st.node_mut(ino).filter(|n| n.local && !n.unlinked) else {
                return;
            };
            node.unlinked = true;
            let (parent, name) = (node.parent, node.name.clone());
            st.drop_local_entry(parent, &name, ino);
            (parent, name)
        };
        self.report_stale(Stale::Entry {
            parent: gone.0,
            name: gone.1,
        });
    }

    /// Uploads a new file that is still only local, so that a rename can
    /// put it in place of a stored one. True when it is now on the server.
    pub(super) async fn upload_if_pending(&self, ino: Ino) -> FsResult<bool> {
        self.commit_staged(ino).await?;
        self.wait_uploaded(ino).await?;
        Ok(self
            .state
            .lock()
            .unwrap()
            .node(ino)
            .is_some_and(|n| n.object.is_some()))
    }

    /// Uploads an inode's staged bytes if they are not on the server yet,
    /// then removes the object they replace.
    /// What an upload of an inode's staged bytes would be: `None` when they
    /// stay in this mount (junk, unlinked, empty, or in a local folder).
    pub(super) fn upload_plan(&self, ino: Ino, cell: &StagingCell) -> FsResult<Option<UploadPlan>> {
        if !cell.is_dirty() {
            return Ok(None);
        }
        if cell.refused.load(Ordering::SeqCst) {
            // Part of the file never made it into staging: uploading the
            // rest would store a truncated file. A new file goes at once.
            self.forget_failed_local(ino);
            return Err(Errno(libc::EFBIG));
        }
        let (name, parent, old, unlinked) = {
            let st = self.state.lock().unwrap();
            let node = st.node(ino).ok_or(Errno(libc::ENOENT))?;
            let parent = st.node(node.parent).and_then(|p| p.folder_key(node.parent));
            (
                node.name.clone(),
                parent,
                node.object.clone(),
                node.unlinked,
            )
        };
        let Some(parent) = parent.filter(|_| !unlinked && !self.is_junk(&name)) else {
            cell.set_dirty(false);
            return Ok(None);
        };
        if cell.len() == 0 {
            if old.is_none() {
                // The library holds no empty files: a new one stays local
                // until it gets content.
                cell.set_dirty(false);
                return Ok(None);
            }
            log::warn!("{name:?} was emptied, but the library cannot hold empty files; it keeps its previous content");
            return Err(Errno(libc::EINVAL));
        }
        Ok(Some(UploadPlan {
            // A replacement keeps the library's own name (which may hold a `/`).
            name: old.as_ref().map_or(name.clone(), |o| o.name.clone()),
            shown: name,
            parent,
            old,
        }))
    }

    /// Stores what an inode has staged: uploaded now, or with `--write-back`,
    /// spooled for a background upload.
    pub(super) async fn commit_staged(&self, ino: Ino) -> FsResult<()> {
        let Some(cell) = self
            .state
            .lock()
            .unwrap()
            .node(ino)
            .and_then(|n| n.staging.clone())
        else {
            return Ok(());
        };
        if self.write_back.is_some() {
            return self.spool_node(ino, cell).await;
        }
        let staged = cell.file.lock().await;
        let Some(plan) = self.upload_plan(ino, &cell)? else {
            return Ok(());
        };
        let UploadPlan {
            name: server_name,
            shown: name,
            parent,
            old,
        } = plan;
        let new = self
            .backend
            .upload(staged.path(), &server_name, parent.as_deref())
            .await
            .map_err(|e| self.api_failure(&format!("uploading {name:?}"), &e))?;
        cell.set_dirty(false);
        let pending_times = {
            let mut st = self.state.lock().unwrap();
            st.bind_object(ino, new.clone());
            st.add_object(new.clone());
            if let Some(old) = &old {
                st.supersede(&old.id);
            }
            st.node_mut(ino).and_then(|n| n.pending_times.take())
        };
        if let Some(times) = pending_times {
            self.times.set(&new.id, times);
        }
        if let Some(old) = old {
            match self.backend.remove(&old.id, self.config.delete_mode).await {
                Ok(()) => {
                    self.state.lock().unwrap().superseded_removed(&old.id);
                    self.times.forget(&old.id);
                }
                Err(e) => log::warn!(
                    "{name:?} was replaced, but removing its previous version failed ({e}); both are in the library"
                ),
            }
        }
        Ok(())
    }

    pub async fn setattr(&self, ino: Ino, change: SetAttr) -> FsResult<Attr> {
        let changes_anything = change.size.is_some()
            || change.atime.is_some()
            || change.mtime.is_some()
            || change.mode_or_owner;
        if changes_anything {
            self.writable()?;
        }
        if let Some(size) = change.size {
            self.truncate(ino, size).await?;
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let current = self.getattr(ino)?;
            let times = Times {
                atime: change.atime.unwrap_or(current.atime),
                mtime: change.mtime.unwrap_or(current.mtime),
            };
            let mut st = self.state.lock().unwrap();
            let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            let pending = node.local || node.staging.as_ref().is_some_and(|s| s.is_dirty());
            match node.id().map(str::to_owned) {
                Some(id) if !pending => self.times.set(&id, times),
                _ => node.pending_times = Some(times),
            }
        }
        self.getattr(ino)
    }

    async fn truncate(&self, ino: Ino, size: u64) -> FsResult<()> {
        let (kind, had_staging, current) = {
            let st = self.state.lock().unwrap();
            let node = st.node(ino).ok_or(Errno(libc::ENOENT))?;
            let current = node
                .staging
                .as_ref()
                .map(|s| s.len())
                .or(node.spooled.as_ref().map(|(_, len)| *len))
                .or(node.object.as_ref().and_then(|o| o.size));
            (node.kind, node.staging.is_some(), current.unwrap_or(0))
        };
        if kind == FileKind::Dir {
            return Err(Errno(libc::EISDIR));
        }
        if !had_staging && size == current {
            return Ok(());
        }
        let cell = self.staging_for(ino)?;
        {
            let mut staged = cell.file.lock().await;
            if size > 0 {
                self.load_existing(ino, &mut staged).await?;
            }
            staged.set_len(size).map_err(Errno::from_io)?;
            staged.loaded = true;
            cell.len.store(size, Ordering::SeqCst);
            cell.set_dirty(true);
        }
        if !had_staging {
            // truncate(2) with no open writer: store the result now.
            let result = self.commit_staged(ino).await;
            let mut st = self.state.lock().unwrap();
            if let Some(node) = st.node_mut(ino) {
                if node.open == 0 {
                    node.staging = None;
                }
            }
            result?;
        }
        Ok(())
    }

    // ---- directories as handles ----

    /// Opens a directory; `keep_cache` says the kernel may serve this
    /// listing from what it cached last time, as nothing in it changed.
    pub async fn opendir(&self, ino: Ino) -> FsResult<Opened> {
        use std::hash::{Hash, Hasher};
        let entries = self.list_dir(ino).await?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for e in &entries {
            (e.ino, &e.name, e.kind == FileKind::Dir).hash(&mut hasher);
        }
        let fingerprint = hasher.finish();
        let keep_cache = {
            let mut st = self.state.lock().unwrap();
            let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            node.listing_fingerprint.replace(fingerprint) == Some(fingerprint)
        };
        Ok(Opened {
            fh: self.new_fh(Handle::Dir { entries }),
            keep_cache,
        })
    }

    /// Entries from `offset` on, as listed when the directory was opened.
    pub fn readdir(&self, fh: u64, offset: usize) -> FsResult<Vec<DirEntry>> {
        match self.handles.lock().unwrap().get(&fh) {
            Some(Handle::Dir { entries }) => Ok(entries.iter().skip(offset).cloned().collect()),
            _ => Err(Errno(libc::EBADF)),
        }
    }

    /// Entries from `from` on with their attributes, each counted as a
    /// kernel lookup, handed to `add` until it answers that one did not fit
    /// (READDIRPLUS fills a buffer of the kernel's choosing).
    pub fn readdirplus(
        &self,
        fh: u64,
        from: usize,
        mut add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> FsResult<()> {
        for entry in self.readdir(fh, from)? {
            let Ok(attr) = self.enter_listed(entry.ino) else {
                continue;
            };
            if add(&entry, &attr) {
                // It did not fit: the kernel will not know it, so no lookup.
                self.forget(entry.ino, 1);
                break;
            }
        }
        Ok(())
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.lock().unwrap().remove(&fh);
    }

    // ---- extended attributes ----

    fn xattrs(&self, ino: Ino) -> FsResult<Vec<(&'static str, String)>> {
        let st = self.state.lock().unwrap();
        let node = st.node(ino).ok_or(Errno(libc::ENOENT))?;
        let mut attrs = Vec::new();
        if let Some(o) = &node.object {
            if let Some(url) = &o.url {
                attrs.push(("user.mediafs.url", url.clone()));
            }
            attrs.push(("user.mediafs.id", o.id.clone()));
            if let Some(ct) = &o.content_type {
                attrs.push(("user.mediafs.content_type", ct.clone()));
            }
        }
        Ok(attrs)
    }

    /// Only the `user.` namespace exists here. Any other (ACLs, security
    /// labels) answers "not supported" rather than "no such attribute", so
    /// that `ls -l` and friends stop asking for the whole mount after the
    /// first file instead of paying a round trip per file.
    pub fn getxattr(&self, ino: Ino, name: &str) -> FsResult<Vec<u8>> {
        let attrs = self.xattrs(ino)?;
        if !name.starts_with("user.") {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        attrs
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.into_bytes())
            .ok_or(Errno(libc::ENODATA))
    }

    pub fn listxattr(&self, ino: Ino) -> FsResult<Vec<&'static str>> {
        Ok(self.xattrs(ino)?.into_iter().map(|(n, _)| n).collect())
    }
}
