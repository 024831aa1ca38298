//! Contents: open, create, read, write, flush, fsync, release, setattr,
//! directory handles, and the extended attributes.
//!
//! A file being written is staged in a temp file; a handle's `close` (the
//! kernel's flush) or `fsync` commits it (see `commit`), and the program
//! gets the error if that fails. A rewrite is a new upload, and the object
//! it replaces is removed only once the new one is stored.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::dir_ops::Listed;
use super::namespace::{Base, FileState, Ino, NodeKind, ROOT};
use super::reader::{ReadAhead, Remote, CHUNK};
use super::times::Times;
use super::uploader::{Staged, StagingCell};
use super::{Attr, Backend, DirEntry, Errno, FileKind, FsResult, MediaFs, Opened};
use crate::api::limits::{limit_words, max_upload_bytes, MAX_FILE_BYTES};
use crate::api::MediaObject;

#[derive(Debug)]
pub(super) enum Handle {
    File {
        ino: Ino,
        write: bool,
        read_ahead: ReadAhead,
    },
    Dir {
        dir: Ino,
        entries: Vec<Listed>,
    },
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

/// Where a file's settled bytes are, for a read.
enum ReadFrom {
    Cell(Arc<StagingCell>),
    Spool(std::path::PathBuf),
    Object(Remote),
    Nothing,
}

/// Up to `len` bytes of a local file at `offset`.
fn read_file_at(path: &std::path::Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
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

    pub(super) fn new_staging(&self, loaded: bool, len: u64) -> FsResult<Arc<StagingCell>> {
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

    /// The file's staging cell, the file turned staged if it was not.
    fn staging_for(&self, ino: Ino) -> FsResult<Arc<StagingCell>> {
        let mut ns = self.ns.lock().unwrap();
        let node = ns.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
        let NodeKind::File(state) = &mut node.kind else {
            return Err(Errno(libc::EISDIR));
        };
        let (cell, over) = match state {
            FileState::Staged { cell, .. } => return Ok(cell.clone()),
            FileState::Local(cell) => (cell.clone(), Base::New),
            FileState::Stored(o) => {
                let len = o.size.unwrap_or(0);
                (self.new_staging(len == 0, len)?, Base::Stored(o.clone()))
            }
            FileState::Spooled(s) => (
                self.new_staging(s.len == 0, s.len)?,
                Base::Spooled(s.clone()),
            ),
        };
        *state = FileState::Staged {
            cell: cell.clone(),
            over,
            renamed_over: Vec::new(),
        };
        Ok(cell)
    }

    pub async fn open(&self, ino: Ino, mode: OpenMode) -> FsResult<Opened> {
        if mode.write {
            self.writable()?;
        }
        // Counted before anything awaits: the release of another handle
        // meanwhile must not settle the file under this one.
        let keep_cache = {
            let mut ns = self.ns.lock().unwrap();
            let node = ns.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            if node.file_kind() == FileKind::Dir {
                return Err(Errno(libc::EISDIR));
            }
            node.open += 1;
            let id = node.id().map(str::to_owned);
            let settled = matches!(node.file(), Some(FileState::Stored(_)));
            let keep_cache = !mode.write && settled && id.is_some() && node.page_cache_id == id;
            node.page_cache_id = if mode.write { None } else { id };
            keep_cache
        };
        if mode.write {
            if let Err(e) = self.prepare_write(ino, mode.truncate).await {
                self.closed(ino);
                return Err(e);
            }
        }
        let fh = self.new_fh(Handle::File {
            ino,
            write: mode.write,
            read_ahead: ReadAhead::default(),
        });
        Ok(Opened { fh, keep_cache })
    }

    /// Stages a file opened for writing, emptied with `O_TRUNC`.
    async fn prepare_write(&self, ino: Ino, truncate: bool) -> FsResult<()> {
        let cell = self.staging_for(ino)?;
        if truncate {
            let mut staged = cell.file.lock().await;
            staged.set_len(0).map_err(Errno::from_io)?;
            staged.loaded = true;
            cell.len.store(0, Ordering::SeqCst);
            cell.refused.store(false, Ordering::SeqCst);
            cell.set_dirty(true);
        }
        Ok(())
    }

    /// One user of a file fewer (a handle released, or an operation that
    /// held it done): the last one settles it.
    fn closed(&self, ino: Ino) {
        if let Some(node) = self.ns.lock().unwrap().node_mut(ino) {
            node.open = node.open.saturating_sub(1);
        }
        self.settle(ino);
        self.ns.lock().unwrap().drop_if_unused(ino);
    }

    pub async fn create(&self, dir: Ino, name: &str, exclusive: bool) -> FsResult<(Attr, Opened)> {
        self.writable()?;
        let existing = self.resolve(dir, name).await?;
        log::debug!("create {name:?} in {dir}: {existing:?}");
        if let Some(entry) = existing {
            if exclusive {
                return Err(Errno(libc::EEXIST));
            }
            let attr = self.enter(dir, name, &entry)?;
            let mode = OpenMode {
                write: true,
                truncate: true,
            };
            let opened = self.open(attr.ino, mode).await?;
            return Ok((self.getattr(attr.ino)?, opened));
        }
        let cell = self.new_staging(true, 0)?;
        cell.set_dirty(true);
        let ino = {
            let mut ns = self.ns.lock().unwrap();
            ns.touch_dir(dir);
            let state = FileState::Staged {
                cell,
                over: Base::New,
                renamed_over: Vec::new(),
            };
            let ino = ns.add_local(dir, name, NodeKind::File(state));
            ns.node_mut(ino).expect("just added").lookups += 1;
            ino
        };
        let mode = OpenMode {
            write: true,
            truncate: false,
        };
        let opened = self.open(ino, mode).await?;
        Ok((self.getattr(ino)?, opened))
    }

    /// Where a file's bytes are: its staging cell (where what handles wrote
    /// is), or with `settled`, the bytes the cell is over.
    fn read_source(&self, ino: Ino, settled: bool) -> FsResult<ReadFrom> {
        let ns = self.ns.lock().unwrap();
        let state = ns
            .node(ino)
            .and_then(|n| n.file())
            .ok_or(Errno(libc::ENOENT))?;
        Ok(match state {
            FileState::Local(cell) => ReadFrom::Cell(cell.clone()),
            FileState::Staged { cell, .. } if !settled => ReadFrom::Cell(cell.clone()),
            FileState::Staged {
                over: Base::New, ..
            } => ReadFrom::Nothing,
            FileState::Spooled(s)
            | FileState::Staged {
                over: Base::Spooled(s),
                ..
            } => ReadFrom::Spool(self.uploader.data_path(&s.entry)),
            FileState::Stored(o)
            | FileState::Staged {
                over: Base::Stored(o),
                ..
            } => ReadFrom::Object(remote_of(o)?),
        })
    }

    /// Reads a file's bytes from where [`Self::read_source`] found them.
    async fn read_from(&self, ino: Ino, from: ReadFrom, offset: u64, len: u64) -> FsResult<Bytes> {
        let from = match from {
            ReadFrom::Cell(cell) => {
                let staged = cell.file.lock().await;
                if staged.loaded || cell.is_dirty() {
                    return staged
                        .read_at(offset, len as usize, cell.len())
                        .map(Bytes::from)
                        .map_err(Errno::from_io);
                }
                drop(staged);
                self.read_source(ino, true)?
            }
            other => other,
        };
        self.read_settled(ino, from, offset, len).await
    }

    /// Reads bytes that are not in a staging cell. A spool entry stored
    /// meanwhile is read again from the object.
    async fn read_settled(
        &self,
        ino: Ino,
        from: ReadFrom,
        offset: u64,
        len: u64,
    ) -> FsResult<Bytes> {
        let from = match from {
            ReadFrom::Spool(path) => match read_file_at(&path, offset, len as usize) {
                Ok(bytes) => return Ok(Bytes::from(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.read_source(ino, true)?
                }
                Err(e) => return Err(Errno::from_io(e)),
            },
            other => other,
        };
        match from {
            ReadFrom::Object(remote) => {
                self.reader.read(&*self.backend, &remote, offset, len).await
            }
            ReadFrom::Nothing => Ok(Bytes::new()),
            ReadFrom::Cell(_) | ReadFrom::Spool(_) => Err(Errno(libc::EIO)),
        }
    }

    /// Copies the file's settled bytes into its staging cell before the
    /// first change that keeps any of them (a write into the middle, say).
    pub(super) async fn load_existing(
        &self,
        ino: Ino,
        cell: &StagingCell,
        staged: &mut Staged,
    ) -> FsResult<()> {
        if staged.loaded {
            return Ok(());
        }
        let len = cell.len();
        let mut offset = 0;
        while offset < len {
            let from = self.read_source(ino, true)?;
            let bytes = self
                .read_settled(ino, from, offset, CHUNK.min(len - offset))
                .await?;
            if bytes.is_empty() {
                break;
            }
            staged.write_at(offset, &bytes).map_err(Errno::from_io)?;
            offset += bytes.len() as u64;
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
            let ns = self.ns.lock().unwrap();
            match ns.node(ino)?.file()? {
                FileState::Stored(o) => o.clone(),
                _ => return None,
            }
        };
        let remote = remote_of(&object).ok()?;
        let data = self.reader.read_ready(&remote, offset, size as u64)?;
        self.read_ahead(fh, &remote, offset, data.len() as u64);
        Some(data)
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let (ino, _) = self.handle_ino(fh)?;
        let from = self.read_source(ino, false)?;
        let remote = match &from {
            ReadFrom::Object(remote) => Some(remote.clone()),
            _ => None,
        };
        let data = self.read_from(ino, from, offset, size as u64).await?;
        if let Some(remote) = remote {
            self.read_ahead(fh, &remote, offset, data.len() as u64);
        }
        Ok(data)
    }

    fn read_ahead(&self, fh: u64, remote: &Remote, offset: u64, len: u64) {
        let mut handles = self.handles.lock().unwrap();
        if let Some(Handle::File { read_ahead, .. }) = handles.get_mut(&fh) {
            self.reader
                .read_ahead(&self.backend, remote, read_ahead, offset, len);
        }
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (ino, write) = self.handle_ino(fh)?;
        if !write {
            return Err(Errno(libc::EBADF));
        }
        let cell = self.staging_for(ino)?;
        let name = self
            .ns
            .lock()
            .unwrap()
            .node(ino)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let mut staged = cell.file.lock().await;
        self.load_existing(ino, &cell, &mut staged).await?;
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
                log::warn!(
                    "{name:?} would grow to {new_len} bytes, over the library's limit of {}",
                    limit_words(head_type.as_deref().unwrap_or_default())
                );
                cell.refused.store(true, Ordering::SeqCst);
                return Err(Errno(libc::EFBIG));
            }
        }
        staged.write_at(offset, data).map_err(Errno::from_io)?;
        cell.len.store(new_len, Ordering::SeqCst);
        cell.set_dirty(true);
        Ok(data.len() as u32)
    }

    /// `close` of a handle: stores what it wrote.
    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        let (ino, write) = self.handle_ino(fh)?;
        if write {
            self.commit(ino, None, &[]).await?;
        }
        Ok(())
    }

    /// Stores the file now, and with `--write-back` waits for its upload.
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let (ino, _) = self.handle_ino(fh)?;
        self.store_now(ino).await
    }

    /// Files open for writing: what they wrote is stored only when closed.
    pub fn open_for_writing(&self) -> usize {
        let handles = self.handles.lock().unwrap();
        handles
            .values()
            .filter(|h| matches!(h, Handle::File { write: true, .. }))
            .count()
    }

    pub fn release(&self, fh: u64) {
        let Some(handle) = self.handles.lock().unwrap().remove(&fh) else {
            return;
        };
        let ino = match handle {
            Handle::File { ino, .. } | Handle::Dir { dir: ino, .. } => ino,
        };
        self.closed(ino);
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
            let mut ns = self.ns.lock().unwrap();
            let node = ns.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            // Times belong to the stored object, unless bytes not stored
            // yet will replace it: then they go with those.
            let settled = match node.file() {
                None | Some(FileState::Stored(_)) => true,
                Some(FileState::Staged {
                    cell,
                    over: Base::Stored(_),
                    ..
                }) => !cell.is_dirty(),
                Some(_) => false,
            };
            match node.id().map(str::to_owned) {
                Some(id) if settled => self.times.set(&id, times),
                _ => node.pending_times = Some(times),
            }
        }
        self.getattr(ino)
    }

    async fn truncate(&self, ino: Ino, size: u64) -> FsResult<()> {
        // Held like a handle while it works, so that a release meanwhile
        // does not settle the file under it.
        let (others_open, current, staged) = {
            let mut ns = self.ns.lock().unwrap();
            let node = ns.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            let Some(state) = node.file() else {
                return Err(Errno(libc::EISDIR));
            };
            let (current, staged) = (state.len(), matches!(state, FileState::Staged { .. }));
            node.open += 1;
            (node.open > 1, current, staged)
        };
        let result = if staged || size != current {
            self.truncate_held(ino, size, others_open).await
        } else {
            Ok(())
        };
        self.closed(ino);
        result
    }

    async fn truncate_held(&self, ino: Ino, size: u64, others_open: bool) -> FsResult<()> {
        // A closed file of this mount only is its cell: truncated in a
        // copy, so that it stays as it was if the result cannot be stored.
        let before = if others_open {
            None
        } else {
            self.copy_local(ino).await?
        };
        let result = self.truncate_staged(ino, size, others_open).await;
        if let (Err(_), Some(before)) = (&result, before) {
            // Unless a handle opened meanwhile writes on the copy.
            let mut ns = self.ns.lock().unwrap();
            if let Some(node) = ns.node_mut(ino).filter(|n| n.open == 1) {
                if let NodeKind::File(
                    state @ FileState::Staged {
                        over: Base::New, ..
                    },
                ) = &mut node.kind
                {
                    *state = FileState::Local(before);
                }
            }
        }
        result
    }

    /// Gives a closed local file a copy of its cell, and returns the
    /// original; `None` for any other file.
    async fn copy_local(&self, ino: Ino) -> FsResult<Option<Arc<StagingCell>>> {
        let original = match self.ns.lock().unwrap().node(ino).and_then(|n| n.file()) {
            Some(FileState::Local(cell)) => cell.clone(),
            _ => return Ok(None),
        };
        let copy = self.new_staging(true, 0)?;
        {
            let from = original.file.lock().await;
            let to = copy.file.lock().await;
            std::fs::copy(from.path(), to.path()).map_err(Errno::from_io)?;
            copy.len.store(original.len(), Ordering::SeqCst);
            copy.set_dirty(original.is_dirty());
        }
        let mut ns = self.ns.lock().unwrap();
        match ns.node_mut(ino).map(|n| &mut n.kind) {
            Some(NodeKind::File(state @ FileState::Local(_))) => *state = FileState::Local(copy),
            _ => return Ok(None),
        }
        Ok(Some(original))
    }

    async fn truncate_staged(&self, ino: Ino, size: u64, others_open: bool) -> FsResult<()> {
        let cell = self.staging_for(ino)?;
        {
            let mut staged = cell.file.lock().await;
            if size > 0 {
                self.load_existing(ino, &cell, &mut staged).await?;
            }
            staged.set_len(size).map_err(Errno::from_io)?;
            staged.loaded = true;
            cell.len.store(size, Ordering::SeqCst);
            cell.set_dirty(true);
        }
        if !others_open {
            // truncate(2) with no open handle: store the result now.
            self.commit(ino, None, &[]).await?;
        }
        Ok(())
    }

    // ---- directories as handles ----

    /// Opens a directory; `keep_cache` says the kernel may serve this
    /// listing from what it cached last time, as nothing in it changed.
    pub async fn opendir(&self, ino: Ino) -> FsResult<Opened> {
        use std::hash::{Hash, Hasher};
        let entries = self.list_entries(ino).await?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for e in &entries {
            let id = match &e.entry {
                super::dir_ops::Entry::Object(o) => o.id.clone(),
                super::dir_ops::Entry::Local(ino) => ino.to_string(),
            };
            (id, &e.name, e.kind == FileKind::Dir).hash(&mut hasher);
        }
        let fingerprint = hasher.finish();
        let keep_cache = {
            let mut ns = self.ns.lock().unwrap();
            let node = ns.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            node.open += 1;
            node.listing_fingerprint.replace(fingerprint) == Some(fingerprint)
        };
        Ok(Opened {
            fh: self.new_fh(Handle::Dir { dir: ino, entries }),
            keep_cache,
        })
    }

    /// The entries of an open directory from `offset` on, as listed when
    /// it was opened.
    fn listed_from(&self, fh: u64, offset: usize) -> FsResult<(Ino, Vec<Listed>)> {
        match self.handles.lock().unwrap().get(&fh) {
            Some(Handle::Dir { dir, entries }) => {
                Ok((*dir, entries.iter().skip(offset).cloned().collect()))
            }
            _ => Err(Errno(libc::EBADF)),
        }
    }

    /// Entries from `offset` on, as listed when the directory was opened.
    pub fn readdir(&self, fh: u64, offset: usize) -> FsResult<Vec<DirEntry>> {
        let (dir, listed) = self.listed_from(fh, offset)?;
        let mut ns = self.ns.lock().unwrap();
        Ok(listed
            .iter()
            .filter_map(|l| Self::dir_entry(&mut ns, dir, l))
            .collect())
    }

    /// Entries from `from` on with their attributes, each counted as a
    /// kernel lookup, handed to `add` until it answers that one did not fit
    /// (READDIRPLUS fills a buffer of the kernel's choosing). An entry whose
    /// inode went since the directory was opened gets one again; one that
    /// did not fit keeps its inode for the next call.
    pub fn readdirplus(
        &self,
        fh: u64,
        from: usize,
        mut add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> FsResult<()> {
        let (dir, listed) = self.listed_from(fh, from)?;
        for l in &listed {
            let Ok(attr) = self.enter(dir, &l.name, &l.entry) else {
                log::debug!("{:?} was removed after its folder was listed", l.name);
                continue;
            };
            let entry = DirEntry {
                ino: attr.ino,
                name: l.name.clone(),
                kind: l.kind,
            };
            if add(&entry, &attr) {
                self.unenter(attr.ino);
                break;
            }
        }
        Ok(())
    }

    pub fn releasedir(&self, fh: u64) {
        self.release(fh);
    }

    // ---- extended attributes ----

    fn xattrs(&self, ino: Ino) -> FsResult<Vec<(&'static str, String)>> {
        let ns = self.ns.lock().unwrap();
        let node = ns.node(ino).ok_or(Errno(libc::ENOENT))?;
        let mut attrs = Vec::new();
        if ino == ROOT {
            // Which process serves this mount, and where its cache dir is:
            // what `mediafs unmount` needs, answered by the process itself
            // so that it is never stale, and only to those the mount lets in.
            attrs.push(("user.mediafs.pid", std::process::id().to_string()));
            let cache_dir = self.config.cache_dir.display().to_string();
            attrs.push(("user.mediafs.cache_dir", cache_dir));
        }
        if let Some(o) = node.object() {
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
