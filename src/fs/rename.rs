//! rename: within a folder the object keeps its id; a file that lives only
//! here (new, junk, spooled) moves anywhere, and is stored under its new
//! name when that is somewhere files are uploaded; whatever the rename
//! replaces is removed only once the source is stored under the name.

use super::dir_ops::Entry;
use super::namespace::{Base, FileState, Ino, NodeKind};
use super::uploader::{self, Bytes};
use super::{api_failure, Backend, Errno, FileKind, FsResult, MediaFs, RenameFlags};
use crate::api::MediaObject;

/// A spooled new file's pending entry, if that is what a node is, also
/// while a handle has it open again.
fn spooled_new(state: Option<&FileState>) -> Option<String> {
    state?
        .spooled()
        .filter(|s| s.stored.is_none())
        .map(|s| s.entry.clone())
}

impl<B: Backend> MediaFs<B> {
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
        if let Some(trashed) = self.rename_into_trash(dir, name, new_dir, new_name).await {
            return trashed;
        }
        // A file stored meanwhile by an upload in flight is looked at again.
        for _ in 0..3 {
            let source = self.resolve(dir, name).await?.ok_or(Errno(libc::ENOENT))?;
            let target = self.resolve(new_dir, new_name).await?;
            if let Some(target) = &target {
                if self.refuse_replacing(&source, target, flags).await? {
                    return Ok(());
                }
            }
            log::debug!(
                "rename {name:?} in {dir} to {new_name:?} in {new_dir}: {source:?} over {target:?}"
            );
            let replaced = match &target {
                Some(Entry::Object(o)) => Some(o.clone()),
                _ => None,
            };
            let Some(stored_over) = self
                .move_source(&source, dir, new_dir, new_name, replaced.as_ref())
                .await?
            else {
                continue;
            };
            {
                let mut ns = self.ns.lock().unwrap();
                ns.touch_dir(dir);
                ns.touch_dir(new_dir);
            }
            if let Some(target) = target {
                self.replace_target(new_dir, new_name, &target, stored_over)
                    .await;
            }
            return Ok(());
        }
        Err(Errno(libc::EAGAIN))
    }

    /// Checks a rename over an existing entry: `Ok(true)` when there is
    /// nothing to do (the same entry), an error when it may not replace it.
    async fn refuse_replacing(
        &self,
        source: &Entry,
        target: &Entry,
        flags: RenameFlags,
    ) -> FsResult<bool> {
        if flags.no_replace {
            return Err(Errno(libc::EEXIST));
        }
        let same = match (source, target) {
            (Entry::Local(a), Entry::Local(b)) => a == b,
            (Entry::Object(a), Entry::Object(b)) => a.id == b.id,
            _ => false,
        };
        if same {
            return Ok(true);
        }
        match (self.entry_kind(source), self.entry_kind(target)) {
            (FileKind::Dir, FileKind::File) => Err(Errno(libc::ENOTDIR)),
            (FileKind::File, FileKind::Dir) => Err(Errno(libc::EISDIR)),
            (FileKind::Dir, FileKind::Dir) if self.has_entries(target).await? => {
                Err(Errno(libc::ENOTEMPTY))
            }
            _ => Ok(false),
        }
    }

    /// Gives the source its new name. `Some(true)` when the source was
    /// stored (or spooled) replacing `replaced`, which is then taken care
    /// of; `None` when the source changed meanwhile and must be looked at
    /// again.
    async fn move_source(
        &self,
        source: &Entry,
        dir: Ino,
        new_dir: Ino,
        new_name: &str,
        replaced: Option<&MediaObject>,
    ) -> FsResult<Option<bool>> {
        let replaces: Vec<String> = replaced.map(|o| o.id.clone()).into_iter().collect();
        match source {
            Entry::Object(object) => {
                if dir != new_dir {
                    // The service cannot move an object to another folder:
                    // `mv` and file managers copy and delete instead.
                    return Err(Errno(libc::EXDEV));
                }
                self.rename_object(object, new_name).await?;
                Ok(Some(false))
            }
            Entry::Local(ino) => {
                if self.move_open_new(*ino, new_dir, new_name, &replaces) {
                    return Ok(Some(true));
                }
                let spooled =
                    spooled_new(self.ns.lock().unwrap().node(*ino).and_then(|n| n.file()));
                if let Some(entry) = spooled {
                    return self
                        .move_spooled(*ino, &entry, new_dir, new_name, &replaces)
                        .await;
                }
                if self
                    .commit(*ino, Some((new_dir, new_name)), &replaces)
                    .await?
                {
                    return Ok(Some(true));
                }
                self.ns.lock().unwrap().move_local(*ino, new_dir, new_name);
                Ok(Some(false))
            }
        }
    }

    /// A new file still open with bytes written since its last flush just
    /// moves: it is stored under its new name when it is closed, and what
    /// it was renamed over is hidden now and removed then. False when the
    /// file is not such a one: then the rename stores it now. One whose
    /// handle was flushed is stored now also while still open, because
    /// the kernel may send the handle's release after the rename and no
    /// flush with it (Python's tempfile, closed then `os.replace`d).
    fn move_open_new(&self, ino: Ino, new_dir: Ino, new_name: &str, replaces: &[String]) -> bool {
        let mut ns = self.ns.lock().unwrap();
        let Some(node) = ns.node_mut(ino).filter(|n| n.open > 0) else {
            return false;
        };
        let NodeKind::File(FileState::Staged {
            cell,
            over: Base::New,
            renamed_over,
        }) = &mut node.kind
        else {
            return false;
        };
        if !cell.is_dirty() {
            return false;
        }
        renamed_over.extend(replaces.iter().cloned());
        for id in replaces {
            ns.listings.supersede(id);
        }
        ns.move_local(ino, new_dir, new_name);
        true
    }

    /// Renames a stored object, after storing what is pending for it.
    async fn rename_object(&self, object: &MediaObject, new_name: &str) -> FsResult<()> {
        let ino = self.ns.lock().unwrap().ino_of(&object.id);
        let mut current = object.clone();
        if let Some(ino) = ino {
            // Bytes written or spooled go first, so the name moves with them.
            self.store_now(ino).await?;
            if let Some(o) = self
                .ns
                .lock()
                .unwrap()
                .node(ino)
                .and_then(|n| n.object().cloned())
            {
                current = o;
            }
        }
        self.backend
            .rename(&current.id, new_name)
            .await
            .map_err(|e| {
                api_failure(&format!("renaming {:?} to {new_name:?}", current.name), &e)
            })?;
        self.ns.lock().unwrap().rename_object(&current.id, new_name);
        Ok(())
    }

    /// A spooled new file takes its new name in its spool record: uploaded
    /// under it later, replacing what it was renamed over; what a handle
    /// wrote over it since is stored under the new name now. Its bytes are
    /// bound for the server: a move where nothing is uploaded (a junk name,
    /// a folder of this mount) is refused like a move across folders.
    async fn move_spooled(
        &self,
        ino: Ino,
        entry: &str,
        new_dir: Ino,
        new_name: &str,
        replaces: &[String],
    ) -> FsResult<Option<bool>> {
        let dest = {
            let ns = self.ns.lock().unwrap();
            self.destination(&ns, new_dir, new_name, false)
        };
        if dest.folder.is_none() || dest.junk {
            // Its bytes are bound for the server: they cannot become local.
            return Err(Errno(libc::EXDEV));
        }
        let Some(record) = self.uploader.record(entry) else {
            return Ok(None);
        };
        // An upload of it in flight lands first: under its old name, and
        // the file is a stored one, renamed as such, when this looks again.
        let in_order = self.uploader.file_lock(&record.file).lock_owned().await;
        let Some(mut record) = self.uploader.record(entry) else {
            return Ok(None);
        };
        let written = {
            let ns = self.ns.lock().unwrap();
            ns.node(ino)
                .and_then(|n| n.file()?.staging())
                .is_some_and(|cell| cell.is_dirty())
        };
        if written {
            let to = Some((new_dir, new_name));
            let stored = self
                .commit_in_order(ino, to, replaces, Some(in_order))
                .await?;
            return Ok(stored.then_some(true));
        }
        // The same checks as any upload: its type must still be told.
        let data = self.uploader.data_path(entry);
        let bytes = Bytes {
            path: &data,
            len: record.size,
            refused: false,
        };
        let uploader::Verdict::Upload(upload) = uploader::check(&dest, None, true, &bytes)? else {
            return Err(Errno(libc::EXDEV));
        };
        record.name = upload.name;
        record.parent = upload.parent;
        record.content_type = upload.content_type;
        record.replaces.extend(replaces.iter().cloned());
        self.uploader.rewrite_record(entry, &record)?;
        let mut ns = self.ns.lock().unwrap();
        for id in replaces {
            // Shown no more: the renamed file takes its place.
            ns.listings.supersede(id);
        }
        ns.move_local(ino, new_dir, new_name);
        Ok(Some(true))
    }

    /// The entry the source was renamed over goes: its pending bytes are
    /// dropped, it is removed on the server unless the source's upload
    /// takes care of it (a failed removal is kept, hidden, and tried
    /// again), and it is gone from this mount.
    async fn replace_target(
        &self,
        new_dir: Ino,
        new_name: &str,
        target: &Entry,
        taken_care_of: bool,
    ) {
        let ino = self.node_of(target);
        let mut held = match ino {
            Some(ino) => Some(self.hold_uploads(ino).await),
            None => None,
        };
        let mut old: Vec<String> = match target {
            Entry::Object(o) if !taken_care_of => vec![o.id.clone()],
            _ => Vec::new(),
        };
        if let (Some(ino), Some(held)) = (ino, held.as_mut()) {
            // An upload of it that was in flight stored a version the
            // source's upload does not know of: that one goes too.
            let now = self
                .ns
                .lock()
                .unwrap()
                .node(ino)
                .and_then(|n| n.id().map(str::to_owned));
            let known = match target {
                Entry::Object(o) => Some(&o.id),
                Entry::Local(_) => None,
            };
            old.extend(now.filter(|id| Some(id) != known));
            if let Err(e) = self.discard_spooled(ino, held).await {
                log::warn!(
                    "{new_name:?} was replaced, but its handles still open cannot read on: {e:?}"
                );
            }
        }
        for id in &old {
            // The renamed file holds the name already: if this removal
            // fails, both stay on the server and nothing is lost.
            self.ns.lock().unwrap().listings.supersede(id);
            self.uploader.remove_replaced(id, new_name).await;
        }
        self.mark_unlinked(new_dir, target);
        if let (Entry::Object(_), Some(ino)) = (target, ino) {
            // Bound to a newer version meanwhile, its node goes as well.
            self.mark_unlinked(new_dir, &Entry::Local(ino));
        }
    }
}
