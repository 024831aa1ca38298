//! Names: lookup, attributes, directory listings, mkdir, unlink, rmdir, rename.

use std::sync::Arc;
use std::time::SystemTime;

use super::state::{FolderKey, Ino, Node, View, ROOT};
use super::{Attr, Backend, DirEntry, Errno, FileKind, FsResult, MediaFs};
use crate::api::{ApiError, MediaObject};

/// What a name in a folder stands for.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    /// A node that lives only in this mount.
    Local(Ino),
    /// An object on the server.
    Object(MediaObject),
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

impl<B: Backend> MediaFs<B> {
    /// Logs a failed call in words a user can act on and gives its errno.
    pub(super) fn api_failure(&self, what: &str, e: &ApiError) -> Errno {
        match e {
            ApiError::Unauthorized { .. } => log::error!(
                "{what}: {e}. The token may have expired or been revoked, or it does not reach this location; \
                 mount again with a valid token"
            ),
            ApiError::TooLarge { .. } | ApiError::TypeRefused { .. } | ApiError::NotFound { .. } => {
                log::warn!("{what}: {e}")
            }
            _ => log::error!("{what}: {e}"),
        }
        Errno::from_api(e)
    }

    pub(super) fn attr_of(&self, ino: Ino, node: &Node) -> Attr {
        let object = node.object.as_ref();
        let kind = node.kind;
        let size = match kind {
            FileKind::Dir => 0,
            FileKind::File => node
                .staging
                .as_ref()
                .map(|s| s.len())
                .or(node.spooled.as_ref().map(|(_, len)| *len))
                .or_else(|| object.and_then(|o| o.size))
                .unwrap_or(0),
        };
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
        let writing = node.staging.as_ref().is_some_and(|s| s.is_dirty());
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

    /// An entry handed to the kernel with its attributes (readdirplus):
    /// counted as a lookup, as the kernel will `forget` it.
    pub fn enter_listed(&self, ino: Ino) -> FsResult<Attr> {
        let mut st = self.state.lock().unwrap();
        let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
        node.lookups += 1;
        let node = st.node(ino).expect("just found");
        Ok(self.attr_of(ino, node))
    }

    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        let st = self.state.lock().unwrap();
        let node = st.node(ino).ok_or(Errno(libc::ENOENT))?;
        Ok(self.attr_of(ino, node))
    }

    async fn refresh_tree(&self) -> FsResult<()> {
        if self.state.lock().unwrap().tree_is_fresh() {
            return Ok(());
        }
        let _one_at_a_time = self.tree_refresh.lock().await;
        if self.state.lock().unwrap().tree_is_fresh() {
            return Ok(());
        }
        let started = self.config.clock.now();
        let folders = self
            .backend
            .folder_tree()
            .await
            .map_err(|e| self.api_failure("listing the folder tree", &e))?;
        self.state.lock().unwrap().set_tree(folders, started);
        Ok(())
    }

    pub(super) async fn refresh_listing(&self, key: &FolderKey) -> FsResult<()> {
        if self.state.lock().unwrap().listing_is_fresh(key) {
            return Ok(());
        }
        let lock = self
            .listing_refresh
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if self.state.lock().unwrap().listing_is_fresh(key) {
            return Ok(());
        }
        let started = self.config.clock.now();
        let files = self
            .backend
            .files_in(key.as_deref())
            .await
            .map_err(|e| self.api_failure("listing a folder", &e))?;
        self.state
            .lock()
            .unwrap()
            .set_listing(key.clone(), files, started);
        Ok(())
    }

    /// The server side of a directory's entries; `None` for a local directory.
    pub(super) async fn folder_view(&self, dir: Ino) -> FsResult<Option<Arc<View>>> {
        let key = {
            let st = self.state.lock().unwrap();
            let node = st.node(dir).ok_or(Errno(libc::ENOENT))?;
            if node.kind != FileKind::Dir {
                return Err(Errno(libc::ENOTDIR));
            }
            if node.unlinked {
                return Err(Errno(libc::ENOENT));
            }
            node.folder_key(dir)
        };
        let Some(key) = key else { return Ok(None) };
        for _ in 0..3 {
            tokio::try_join!(self.refresh_tree(), self.refresh_listing(&key))?;
            if let Some(view) = self.state.lock().unwrap().view(&key) {
                return Ok(Some(view));
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
        if let Some(ino) = self.state.lock().unwrap().local_child(dir, name) {
            return Ok(Some(Entry::Local(ino)));
        }
        Ok(view
            .and_then(|v| v.entries.get(name).cloned())
            .map(Entry::Object))
    }

    /// The inode of an entry, counted as one more kernel lookup.
    pub(super) fn enter(&self, dir: Ino, name: &str, entry: &Entry) -> FsResult<Attr> {
        let mut st = self.state.lock().unwrap();
        let ino = match entry {
            Entry::Local(ino) => *ino,
            Entry::Object(o) => st.intern(dir, name, o),
        };
        let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
        node.lookups += 1;
        let node = st.node(ino).expect("just found");
        Ok(self.attr_of(ino, node))
    }

    pub async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        match self.resolve(dir, name).await? {
            Some(entry) => self.enter(dir, name, &entry),
            None => Err(Errno(libc::ENOENT)),
        }
    }

    /// Every entry of a directory, for one pass of `readdir`.
    pub async fn list_dir(&self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let view = self.folder_view(dir).await?;
        let mut st = self.state.lock().unwrap();
        let mut entries = Vec::new();
        let locals = st.local_children(dir);
        for (name, ino) in &locals {
            if let Some(node) = st.node(*ino) {
                entries.push(DirEntry {
                    ino: *ino,
                    name: name.clone(),
                    kind: node.kind,
                });
            }
        }
        if let Some(view) = view {
            for (name, object) in &view.entries {
                if locals.iter().any(|(n, _)| n == name) {
                    continue;
                }
                let ino = st.intern(dir, name, object);
                let kind = if object.is_folder() {
                    FileKind::Dir
                } else {
                    FileKind::File
                };
                entries.push(DirEntry {
                    ino,
                    name: name.clone(),
                    kind,
                });
            }
        }
        Ok(entries)
    }

    fn folder_of(&self, dir: Ino) -> FsResult<Option<FolderKey>> {
        let st = self.state.lock().unwrap();
        Ok(st.node(dir).ok_or(Errno(libc::ENOENT))?.folder_key(dir))
    }

    pub async fn mkdir(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        self.writable()?;
        if self.resolve(dir, name).await?.is_some() {
            return Err(Errno(libc::EEXIST));
        }
        let key = self.folder_of(dir)?;
        let entry = match key {
            Some(parent) if !self.is_junk(name) => {
                let folder = self
                    .backend
                    .create_folder(name, parent.as_deref())
                    .await
                    .map_err(|e| self.api_failure(&format!("creating folder {name:?}"), &e))?;
                {
                    let mut st = self.state.lock().unwrap();
                    st.add_object(folder.clone());
                    // A folder just made is empty: no need to ask.
                    st.set_listing(Some(folder.id.clone()), Vec::new(), self.config.clock.now());
                }
                Entry::Object(folder)
            }
            _ => Entry::Local(
                self.state
                    .lock()
                    .unwrap()
                    .add_local(dir, name, FileKind::Dir),
            ),
        };
        self.state.lock().unwrap().touch_dir(dir);
        self.enter(dir, name, &entry)
    }

    /// Takes an entry's node out of sight: unlinked, gone once forgotten.
    fn mark_unlinked(&self, dir: Ino, name: &str, entry: &Entry) {
        let mut st = self.state.lock().unwrap();
        st.touch_dir(dir);
        let ino = match entry {
            Entry::Local(ino) => {
                st.drop_local_entry(dir, name, *ino);
                Some(*ino)
            }
            Entry::Object(o) => {
                st.remove_object(&o.id);
                self.times.forget(&o.id);
                st.intern_if_known(&o.id)
            }
        };
        if let Some(node) = ino.and_then(|i| st.node_mut(i)) {
            node.unlinked = true;
        }
    }

    async fn remove_on_server(&self, object: &MediaObject) -> FsResult<()> {
        self.backend
            .remove(&object.id, self.config.delete_mode)
            .await
            .map_err(|e| self.api_failure(&format!("removing {:?}", object.name), &e))
    }

    pub async fn unlink(&self, dir: Ino, name: &str) -> FsResult<()> {
        self.writable()?;
        let entry = self.resolve(dir, name).await?.ok_or(Errno(libc::ENOENT))?;
        if self.entry_kind(&entry) == FileKind::Dir {
            return Err(Errno(libc::EISDIR));
        }
        if let Entry::Object(o) = &entry {
            self.remove_on_server(o).await?;
        }
        self.mark_unlinked(dir, name, &entry);
        Ok(())
    }

    pub(super) fn entry_kind(&self, entry: &Entry) -> FileKind {
        match entry {
            Entry::Object(o) if o.is_folder() => FileKind::Dir,
            Entry::Object(_) => FileKind::File,
            Entry::Local(ino) => self
                .state
                .lock()
                .unwrap()
                .node(*ino)
                .map_or(FileKind::File, |n| n.kind),
        }
    }

    /// Whether a directory holds anything but junk: asked of the server
    /// itself for a server folder, so a change made elsewhere counts.
    async fn has_entries(&self, entry: &Entry) -> FsResult<bool> {
        let ino = match entry {
            Entry::Local(ino) => Some(*ino),
            Entry::Object(o) => self.state.lock().unwrap().intern_if_known(&o.id),
        };
        if let Some(ino) = ino {
            let st = self.state.lock().unwrap();
            if st.local_children(ino).iter().any(|(n, _)| !self.is_junk(n)) {
                return Ok(true);
            }
        }
        let Entry::Object(o) = entry else {
            return Ok(false);
        };
        let full = self.backend.has_children(&o.id).await.map_err(|e| {
            self.api_failure(&format!("checking whether {:?} is empty", o.name), &e)
        })?;
        if full {
            // Whatever filled it elsewhere shows at the next listing.
            self.state
                .lock()
                .unwrap()
                .expire_listing(&Some(o.id.clone()));
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
            self.remove_on_server(o).await?;
        }
        self.mark_unlinked(dir, name, &entry);
        Ok(())
    }

    pub async fn rename(
        &self,
        dir: Ino,
        name: &str,
        new_dir: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.writable()?;
        if flags.exchange {
            // The library cannot swap two names in one step.
            return Err(Errno(libc::EINVAL));
        }
        let mut source = self.resolve(dir, name).await?.ok_or(Errno(libc::ENOENT))?;
        let target = self.resolve(new_dir, new_name).await?;
        if let Some(target) = &target {
            if flags.no_replace {
                return Err(Errno(libc::EEXIST));
            }
            let same = match (&source, target) {
                (Entry::Local(a), Entry::Local(b)) => a == b,
                (Entry::Object(a), Entry::Object(b)) => a.id == b.id,
                _ => false,
            };
            if same {
                return Ok(());
            }
            match (self.entry_kind(&source), self.entry_kind(target)) {
                (FileKind::Dir, FileKind::File) => return Err(Errno(libc::ENOTDIR)),
                (FileKind::File, FileKind::Dir) => return Err(Errno(libc::EISDIR)),
                (FileKind::Dir, FileKind::Dir) if self.has_entries(target).await? => {
                    return Err(Errno(libc::ENOTEMPTY))
                }
                _ => {}
            }
        }
        // A new file not uploaded yet, taking a name that will stay: store it
        // first, so that what it replaces is only removed once it is safe.
        if let Entry::Local(ino) = source {
            if !self.is_junk(new_name)
                && self.folder_of(new_dir)?.is_some()
                && self.upload_if_pending(ino).await?
            {
                let object = self.state.lock().unwrap().object_of(ino);
                source = object.map(Entry::Object).unwrap_or(Entry::Local(ino));
            }
        }
        match &source {
            Entry::Local(ino) => {
                self.state
                    .lock()
                    .unwrap()
                    .move_local(*ino, new_dir, new_name);
            }
            Entry::Object(object) => {
                if dir != new_dir {
                    // The service cannot move an object to another folder:
                    // `mv` and file managers copy and delete instead.
                    return Err(Errno(libc::EXDEV));
                }
                self.backend
                    .rename(&object.id, new_name)
                    .await
                    .map_err(|e| {
                        self.api_failure(&format!("renaming {name:?} to {new_name:?}"), &e)
                    })?;
                let mut st = self.state.lock().unwrap();
                st.rename_object(&object.id, new_name);
                if let Some(ino) = st.intern_if_known(&object.id) {
                    if let Some(node) = st.node_mut(ino) {
                        node.name = new_name.to_owned();
                    }
                }
            }
        }
        {
            let mut st = self.state.lock().unwrap();
            st.touch_dir(dir);
            st.touch_dir(new_dir);
        }
        if let Some(target) = target {
            if let Entry::Object(old) = &target {
                // The renamed object is stored under the name already; if this
                // removal fails, both stay and nothing is lost.
                if let Err(e) = self.remove_on_server(old).await {
                    log::warn!("{new_name:?} was replaced, but its previous version stays in the library ({e:?})");
                    return Ok(());
                }
            }
            self.mark_unlinked(new_dir, new_name, &target);
        }
        Ok(())
    }
}
