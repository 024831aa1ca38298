//! Names: lookup, attributes, directory listings, mkdir, unlink, rmdir, rename.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::namespace::{
    DirState, FileState, FolderKey, Ino, Namespace, Node, NodeKind, View, ROOT,
};
use super::uploader::Destination;
use super::{api_failure, Attr, Backend, DirEntry, Errno, FileKind, FsResult, MediaFs};
use crate::api::{ApiError, DeleteStatus, MediaObject};

/// What a name in a folder stands for.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    /// A node that lives only in this mount.
    Local(Ino),
    /// An object on the server.
    Object(MediaObject),
}

/// One entry of a directory as it was when the directory was opened: by
/// identity, so that it can be answered even if its inode went meanwhile.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub name: String,
    pub kind: FileKind,
    pub entry: Entry,
}

/// Renames the kernel may ask for (`renameat2` flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct RenameFlags {
    pub no_replace: bool,
    pub exchange: bool,
}

fn system_time(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<SystemTime> {
    t.map(SystemTime::from)
}

/// Ends a listing fetch in the namespace's books even if its task is
/// dropped halfway, so that the changes it might predate are let go.
struct Fetching<'a> {
    ns: &'a std::sync::Mutex<Namespace>,
    started: Instant,
    done: bool,
}

impl<'a> Fetching<'a> {
    fn begin(ns: &'a std::sync::Mutex<Namespace>) -> Self {
        let started = ns.lock().unwrap().listings.begin_fetch();
        Fetching {
            ns,
            started,
            done: false,
        }
    }
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ns.lock().unwrap().listings.end_fetch(self.started);
        }
    }
}

impl<B: Backend> MediaFs<B> {
    pub(super) fn attr_of(&self, ino: Ino, node: &Node) -> Attr {
        let object = node.object();
        let kind = node.file_kind();
        let size = node.file().map_or(0, FileState::len);
        let server_time =
            object.and_then(|o| system_time(o.updated_at).or(system_time(o.created_at)));
        let created = object.and_then(|o| system_time(o.created_at));
        let default_time = if ino == ROOT {
            self.mounted_at
        } else {
            server_time.unwrap_or(node.created)
        };
        let set = node
            .pending_times
            .or_else(|| node.id().and_then(|id| self.times.get(id)));
        let writing =
            matches!(node.file(), Some(FileState::Staged { cell, .. }) if cell.is_dirty());
        let mtime = match (set, writing) {
            (Some(t), _) => t.mtime,
            (None, true) => SystemTime::now(),
            (None, false) => default_time,
        };
        let mtime = node
            .entries_changed
            .map_or(mtime, |changed| changed.max(mtime));
        let write_bits = if self.config.read_only { 0 } else { 0o200 };
        Attr {
            ino,
            kind,
            size,
            perm: match kind {
                FileKind::Dir => 0o555 | write_bits,
                FileKind::File => 0o444 | write_bits,
            },
            nlink: match kind {
                FileKind::Dir => 2,
                FileKind::File if node.unlinked => 0,
                FileKind::File => 1,
            },
            uid: self.config.uid,
            gid: self.config.gid,
            atime: set.map_or(mtime, |t| t.atime),
            mtime,
            ctime: mtime,
            crtime: created.unwrap_or(mtime),
            blksize: 128 * 1024,
        }
    }

    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        let ns = self.ns.lock().unwrap();
        let node = ns.node(ino).ok_or(Errno(libc::ENOENT))?;
        Ok(self.attr_of(ino, node))
    }

    async fn refresh_tree(&self) -> FsResult<()> {
        if self.ns.lock().unwrap().listings.tree_is_fresh() {
            return Ok(());
        }
        let _one_at_a_time = self.tree_refresh.lock().await;
        if self.ns.lock().unwrap().listings.tree_is_fresh() {
            return Ok(());
        }
        let mut fetching = Fetching::begin(&self.ns);
        let folders = self
            .backend
            .folder_tree()
            .await
            .map_err(|e| api_failure("listing the folder tree", &e))?;
        let mut ns = self.ns.lock().unwrap();
        match folders {
            Some(folders) => {
                fetching.done = true;
                ns.listings.set_tree(folders, fetching.started);
            }
            None => ns.listings.tree_unavailable(),
        }
        // Before `fetching`, whose drop takes the lock to end a fetch
        // that did not land.
        drop(ns);
        Ok(())
    }

    pub(super) async fn refresh_listing(&self, key: &FolderKey) -> FsResult<()> {
        let walk = {
            let mut ns = self.ns.lock().unwrap();
            if ns.listings.listing_is_fresh(key) {
                return Ok(());
            }
            let now = self.config.clock.now();
            // Folder by folder, a listing of every file brings no subfolders.
            !ns.listings.folders_per_folder() && ns.listings.walks.cold_listing(now, key)
        };
        if walk {
            self.list_every_file(key).await;
            if self.ns.lock().unwrap().listings.listing_is_fresh(key) {
                return Ok(());
            }
        }
        let lock = self
            .listing_refresh
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if self.ns.lock().unwrap().listings.listing_is_fresh(key) {
            return Ok(());
        }
        let per_folder = self.ns.lock().unwrap().listings.folders_per_folder();
        let mut fetching = Fetching::begin(&self.ns);
        let failed = |e: ApiError| api_failure("listing a folder", &e);
        let folder = key.as_deref();
        if per_folder {
            let (files, subfolders) = tokio::try_join!(
                self.backend.files_in(folder),
                self.backend.folders_in(folder)
            )
            .map_err(failed)?;
            fetching.done = true;
            let mut ns = self.ns.lock().unwrap();
            ns.listings
                .set_files_and_subfolders(key.clone(), files, subfolders, fetching.started);
        } else {
            let files = self.backend.files_in(folder).await.map_err(failed)?;
            fetching.done = true;
            let mut ns = self.ns.lock().unwrap();
            ns.listings.set_files(key.clone(), files, fetching.started);
        }
        Ok(())
    }

    /// Lists every file of the library at once, for a walk that needs
    /// `key`'s listing, unless another one did while this one waited. A
    /// failure is left for the folder's own listing to meet and report.
    async fn list_every_file(&self, key: &FolderKey) {
        let _one_at_a_time = self.every_file_refresh.lock().await;
        {
            let mut ns = self.ns.lock().unwrap();
            let due = ns.listings.walks.at_once_due(self.config.clock.now());
            if !due || ns.listings.listing_is_fresh(key) {
                return;
            }
        }
        if self.refresh_tree().await.is_err() {
            return;
        }
        let mut fetching = Fetching::begin(&self.ns);
        let answer = self.backend.all_files().await;
        let started = fetching.started;
        let arrived = self.config.clock.now();
        let mut ns = self.ns.lock().unwrap();
        let walks = &mut ns.listings.walks;
        match answer {
            Ok(Some(files)) => {
                fetching.done = true;
                log::debug!("listed all {} files of the library at once", files.len());
                walks.tried_at_once(started, arrived - started);
                ns.listings.set_every_file(files, started);
            }
            Ok(None) => walks.at_once_unavailable(arrived),
            Err(e) if e.is_transient() => {
                log::warn!("listing every file at once: {e}; listing folder by folder meanwhile");
                walks.tried_at_once(started, arrived - started);
            }
            Err(e) => {
                log::warn!(
                    "listing every file at once: {e}; listing folder by folder for ten minutes"
                );
                walks.at_once_unavailable(arrived);
            }
        }
        // Before `fetching`, whose drop takes the lock to end a failed fetch.
        drop(ns);
    }

    /// The server side of a directory's entries; `None` for a local directory.
    pub(super) async fn folder_view(&self, dir: Ino) -> FsResult<Option<Arc<View>>> {
        let key = {
            let ns = self.ns.lock().unwrap();
            let node = ns.node(dir).ok_or(Errno(libc::ENOENT))?;
            if node.file_kind() != FileKind::Dir {
                return Err(Errno(libc::ENOTDIR));
            }
            if node.unlinked {
                return Err(Errno(libc::ENOENT));
            }
            node.folder_key()
        };
        let Some(key) = key else { return Ok(None) };
        for _ in 0..3 {
            tokio::try_join!(self.refresh_tree(), self.refresh_listing(&key))?;
            let mut ns = self.ns.lock().unwrap();
            if let Some(view) = ns.listings.view(&key) {
                if !ns.settle_adopted(dir, &key, &view) {
                    return Ok(Some(view));
                }
                if let Some(view) = ns.listings.view(&key) {
                    return Ok(Some(view));
                }
            }
        }
        Err(Errno(libc::EIO))
    }

    /// What `name` in `dir` stands for, if anything.
    pub(super) async fn resolve(&self, dir: Ino, name: &str) -> FsResult<Option<Entry>> {
        if name.len() > super::names::NAME_MAX {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        let view = self.folder_view(dir).await?;
        if let Some(ino) = self.ns.lock().unwrap().local_child(dir, name) {
            return Ok(Some(Entry::Local(ino)));
        }
        Ok(view
            .and_then(|v| v.entries.get(name).cloned())
            .map(Entry::Object))
    }

    /// The inode of an entry, made if need be (by object id), without
    /// counting a lookup.
    fn inode_of(ns: &mut Namespace, dir: Ino, name: &str, entry: &Entry) -> FsResult<Ino> {
        match entry {
            Entry::Local(ino) => ns
                .node(*ino)
                .filter(|n| !n.unlinked)
                .map(|_| *ino)
                .ok_or(Errno(libc::ENOENT)),
            Entry::Object(o) => Ok(ns.intern(dir, name, o)),
        }
    }

    /// The inode of an entry, counted as one more kernel lookup.
    pub(super) fn enter(&self, dir: Ino, name: &str, entry: &Entry) -> FsResult<Attr> {
        let mut ns = self.ns.lock().unwrap();
        let ino = Self::inode_of(&mut ns, dir, name, entry)?;
        let node = ns.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
        node.lookups += 1;
        Ok(self.attr_of(ino, node))
    }

    /// Undoes [`Self::enter`] for an entry the kernel was not given: one
    /// lookup fewer, and the node stays for the next try.
    pub(super) fn unenter(&self, ino: Ino) {
        if let Some(node) = self.ns.lock().unwrap().node_mut(ino) {
            node.lookups = node.lookups.saturating_sub(1);
        }
    }

    pub async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        match self.resolve(dir, name).await? {
            Some(entry) => self.enter(dir, name, &entry),
            None => Err(Errno(libc::ENOENT)),
        }
    }

    /// Every entry of a directory, for one pass of `readdir`.
    pub(super) async fn list_entries(&self, dir: Ino) -> FsResult<Vec<Listed>> {
        let view = self.folder_view(dir).await?;
        let ns = self.ns.lock().unwrap();
        let locals = ns.local_children(dir);
        let mut entries: Vec<Listed> = locals
            .iter()
            .filter_map(|(name, ino)| {
                Some(Listed {
                    name: name.clone(),
                    kind: ns.node(*ino)?.file_kind(),
                    entry: Entry::Local(*ino),
                })
            })
            .collect();
        for (name, object) in view.iter().flat_map(|v| &v.entries) {
            if locals.iter().any(|(n, _)| n == name) {
                continue;
            }
            entries.push(Listed {
                name: name.clone(),
                kind: if object.is_folder() {
                    FileKind::Dir
                } else {
                    FileKind::File
                },
                entry: Entry::Object(object.clone()),
            });
        }
        Ok(entries)
    }

    /// Every entry of a directory with its inode, as `readdir` lists them.
    pub async fn list_dir(&self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let listed = self.list_entries(dir).await?;
        let mut ns = self.ns.lock().unwrap();
        Ok(listed
            .iter()
            .filter_map(|l| Self::dir_entry(&mut ns, dir, l))
            .collect())
    }

    /// A listed entry with its inode, made again by object id if it went;
    /// `None` for an entry of this mount removed since it was listed.
    pub(super) fn dir_entry(ns: &mut Namespace, dir: Ino, listed: &Listed) -> Option<DirEntry> {
        match Self::inode_of(ns, dir, &listed.name, &listed.entry) {
            Ok(ino) => Some(DirEntry {
                ino,
                name: listed.name.clone(),
                kind: listed.kind,
            }),
            Err(_) => {
                log::debug!("{:?} was removed after its folder was listed", listed.name);
                None
            }
        }
    }

    fn folder_of(&self, dir: Ino) -> FsResult<Option<FolderKey>> {
        let ns = self.ns.lock().unwrap();
        Ok(ns.node(dir).ok_or(Errno(libc::ENOENT))?.folder_key())
    }

    /// Where a file named `name` in `dir` would be uploaded.
    /// Where a file named `name` in `dir` would be uploaded.
    pub(super) fn destination(
        &self,
        ns: &Namespace,
        dir: Ino,
        name: &str,
        unlinked: bool,
    ) -> Destination {
        Destination {
            name: name.to_owned(),
            folder: ns
                .node(dir)
                .and_then(Node::folder_key)
                .filter(|_| !unlinked),
            junk: self.is_junk(name),
            lent_type: None,
        }
    }

    pub async fn mkdir(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        self.writable()?;
        if self.resolve(dir, name).await?.is_some() {
            return Err(Errno(libc::EEXIST));
        }
        let entry = match self.folder_of(dir)? {
            Some(parent) if !self.is_junk(name) => {
                let folder = self
                    .backend
                    .create_folder(name, parent.as_deref())
                    .await
                    .map_err(|e| api_failure(&format!("creating folder {name:?}"), &e))?;
                let mut ns = self.ns.lock().unwrap();
                ns.listings.add(folder.clone());
                ns.listings.check_namesakes(&folder);
                // A folder just made is empty: no need to ask.
                ns.listings.set_empty(Some(folder.id.clone()));
                Entry::Object(folder)
            }
            _ => {
                let mut ns = self.ns.lock().unwrap();
                Entry::Local(ns.add_local(dir, name, NodeKind::Dir(DirState::Local(0))))
            }
        };
        self.ns.lock().unwrap().touch_dir(dir);
        self.enter(dir, name, &entry)
    }

    /// Takes an entry out of sight: unlinked, gone once nothing uses it.
    pub(super) fn mark_unlinked(&self, dir: Ino, entry: &Entry) {
        let mut ns = self.ns.lock().unwrap();
        ns.touch_dir(dir);
        let ino = match entry {
            Entry::Local(ino) => Some(*ino),
            Entry::Object(o) => {
                ns.listings.remove(&o.id);
                self.times.forget(&o.id);
                ns.ino_of(&o.id)
            }
        };
        if let Some(ino) = ino {
            self.unnamed.done(ino);
            ns.unlink_local_tree(ino);
            ns.unlink(ino);
        }
    }

    pub(super) async fn remove_on_server(
        &self,
        object: &MediaObject,
        status: DeleteStatus,
    ) -> FsResult<()> {
        match self.backend.remove(&object.id, status).await {
            // Removed elsewhere already: what was asked for holds.
            Ok(()) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(api_failure(&format!("removing {:?}", object.name), &e)),
        }
    }

    pub async fn unlink(&self, dir: Ino, name: &str) -> FsResult<()> {
        self.unlink_as(dir, name, self.config.delete_mode).await
    }

    /// Unlinks, removing the stored version as `status` says.
    pub(super) async fn unlink_as(
        &self,
        dir: Ino,
        name: &str,
        status: DeleteStatus,
    ) -> FsResult<()> {
        self.writable()?;
        // The uploads of the file the name means are held, then the name is
        // looked at again: if it means another file by then, once more.
        for _ in 0..3 {
            let entry = self.resolve(dir, name).await?.ok_or(Errno(libc::ENOENT))?;
            if self.entry_kind(&entry) == FileKind::Dir {
                return Err(Errno(libc::EISDIR));
            }
            let Some(ino) = self.node_of(&entry) else {
                // An object with no inode: nothing of it is pending here.
                log::debug!("unlink {name:?} in {dir}: {entry:?}");
                if let Entry::Object(o) = &entry {
                    self.remove_on_server(o, status).await?;
                }
                self.mark_unlinked(dir, &entry);
                return Ok(());
            };
            let mut held = self.hold_uploads(ino).await;
            // An upload in flight may have stored the file meanwhile: what
            // it stored goes, whatever name the server gives it.
            let still = {
                let ns = self.ns.lock().unwrap();
                ns.node(ino)
                    .is_some_and(|n| !n.unlinked && n.parent == dir && n.name == name)
            };
            if !still
                && self
                    .resolve(dir, name)
                    .await?
                    .and_then(|e| self.node_of(&e))
                    != Some(ino)
            {
                continue;
            }
            self.unlink_held(dir, name, ino, status, &mut held).await?;
            return Ok(());
        }
        Err(Errno(libc::EAGAIN))
    }

    /// Unlinks a file whose uploads are held: its stored version removed,
    /// its pending bytes dropped, its entry gone.
    async fn unlink_held(
        &self,
        dir: Ino,
        name: &str,
        ino: Ino,
        status: DeleteStatus,
        held: &mut super::commit::UploadsHeld,
    ) -> FsResult<()> {
        let stored = self
            .ns
            .lock()
            .unwrap()
            .node(ino)
            .and_then(|n| n.object().cloned());
        log::debug!("unlink {name:?} in {dir}: inode {ino}, stored as {stored:?}");
        if let Some(o) = &stored {
            self.remove_on_server(o, status).await?;
        }
        self.discard_spooled(ino, held).await?;
        if let Some(o) = stored {
            self.mark_unlinked(dir, &Entry::Object(o));
        }
        self.mark_unlinked(dir, &Entry::Local(ino));
        Ok(())
    }

    /// The inode an entry has now, if any.
    pub(super) fn node_of(&self, entry: &Entry) -> Option<Ino> {
        match entry {
            Entry::Local(ino) => Some(*ino),
            Entry::Object(o) => self.ns.lock().unwrap().ino_of(&o.id),
        }
    }

    pub(super) fn entry_kind(&self, entry: &Entry) -> FileKind {
        match entry {
            Entry::Object(o) if o.is_folder() => FileKind::Dir,
            Entry::Object(_) => FileKind::File,
            Entry::Local(ino) => self
                .ns
                .lock()
                .unwrap()
                .node(*ino)
                .map_or(FileKind::File, |n| n.file_kind()),
        }
    }

    /// Whether a directory holds anything but junk: asked of the server
    /// itself for a server folder, so a change made elsewhere counts.
    pub(super) async fn has_entries(&self, entry: &Entry) -> FsResult<bool> {
        if let Some(ino) = self.node_of(entry) {
            let ns = self.ns.lock().unwrap();
            if ns.local_children(ino).iter().any(|(n, _)| !self.is_junk(n)) {
                return Ok(true);
            }
        }
        let Entry::Object(o) = entry else {
            return Ok(false);
        };
        let full = self
            .backend
            .has_children(&o.id)
            .await
            .map_err(|e| api_failure(&format!("checking whether {:?} is empty", o.name), &e))?;
        if full {
            // Whatever filled it elsewhere shows at the next listing.
            self.ns.lock().unwrap().listings.expire(&Some(o.id.clone()));
        }
        Ok(full)
    }

    pub async fn rmdir(&self, dir: Ino, name: &str) -> FsResult<()> {
        self.writable()?;
        let entry = self.resolve(dir, name).await?.ok_or(Errno(libc::ENOENT))?;
        if self.entry_kind(&entry) != FileKind::Dir {
            return Err(Errno(libc::ENOTDIR));
        }
        if self.has_entries(&entry).await? {
            return Err(Errno(libc::ENOTEMPTY));
        }
        if let Entry::Object(o) = &entry {
            self.remove_on_server(o, self.config.delete_mode).await?;
        }
        self.mark_unlinked(dir, &entry);
        Ok(())
    }
}
