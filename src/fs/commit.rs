//! Committing a file: what `close`, `fsync`, truncate, rename and unlink do
//! with the bytes a file holds that the server does not, through the
//! uploader's one set of checks and its one store-then-replace protocol.
//!
//! Locks, always in this order: a file's spool lock (one upload of the file
//! at a time), then its staging cell, then the namespace (never across an
//! await).

use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use super::namespace::{Base, FileState, Ino, Namespace, NodeKind, Spooled};
use super::uploader::{self, new_file_key, Bytes, Source, Staged, StagingCell, Upload, Verdict};
use super::{Backend, Errno, FsResult, MediaFs, Stale};
use crate::api::MediaObject;

/// Locks that keep a file's bytes from being stored meanwhile.
pub(super) struct UploadsHeld {
    _spool: Option<OwnedMutexGuard<()>>,
    cell: Option<OwnedMutexGuard<Staged>>,
}

/// What a commit stores.
struct Planned {
    upload: Upload,
    /// An earlier spool entry of the file, superseded by this one.
    earlier: Option<String>,
    /// The stored version the upload replaces, as it was planned.
    stored: Option<String>,
}

/// What a commit needs to know of a file, read under the namespace lock.
struct FileNow {
    dir: Ino,
    name: String,
    unlinked: bool,
    stored: Option<MediaObject>,
    /// Its pending spool entry, if any.
    spooled: Option<String>,
    /// Objects it was renamed over while open and never stored.
    renamed_over: Vec<String>,
    /// Its bytes live only here (a new file, or one of this mount only).
    only_here: bool,
}

impl FileNow {
    fn of(ns: &Namespace, ino: Ino) -> FsResult<FileNow> {
        let node = ns.node(ino).ok_or(Errno(libc::ENOENT))?;
        let state = node.file().ok_or(Errno(libc::EISDIR))?;
        let (renamed_over, only_here) = match state {
            FileState::Local(_) => (Vec::new(), true),
            FileState::Staged {
                over: Base::New,
                renamed_over,
                ..
            } => (renamed_over.clone(), true),
            _ => (Vec::new(), false),
        };
        Ok(FileNow {
            dir: node.parent,
            name: node.name.clone(),
            unlinked: node.unlinked,
            stored: state.stored().cloned(),
            spooled: state.spooled().map(|s| s.entry.clone()),
            renamed_over,
            only_here,
        })
    }
}

/// What a file holds that may need storing, read under the namespace lock.
struct Pending {
    cell: Arc<StagingCell>,
    /// The spool file key of its pending or earlier entries.
    file: Option<String>,
}

fn pending_of(ns: &Namespace, ino: Ino) -> Option<Pending> {
    let state = ns.node(ino)?.file()?;
    Some(Pending {
        cell: state.staging()?.clone(),
        file: state.spooled().map(|s| s.file.clone()),
    })
}

impl<B: Backend> MediaFs<B> {
    /// Stores what a file holds that the server does not: uploaded now, or
    /// with write-back moved into the spool for a background upload. With
    /// `to`, it goes there instead (a rename), replacing `replaces` too.
    /// True when it is stored or spooled; false when it stays in this mount
    /// (junk, a folder of this mount, a new empty file) or had nothing new.
    pub(super) async fn commit(
        &self,
        ino: Ino,
        to: Option<(Ino, &str)>,
        replaces: &[String],
    ) -> FsResult<bool> {
        self.commit_in_order(ino, to, replaces, None).await
    }

    /// [`Self::commit`], with the file's spool lock already held when the
    /// caller has waited for it.
    pub(super) async fn commit_in_order(
        &self,
        ino: Ino,
        to: Option<(Ino, &str)>,
        replaces: &[String],
        held: Option<OwnedMutexGuard<()>>,
    ) -> FsResult<bool> {
        let Some(pending) = pending_of(&self.ns.lock().unwrap(), ino) else {
            return Ok(false);
        };
        // An earlier entry of the file still queued is superseded by these
        // bytes, which needs its lock. With write-back, `close` does not
        // wait for an upload of it in flight: these bytes go after it.
        let file_lock = pending.file.as_ref().map(|f| self.uploader.file_lock(f));
        let in_order = match (held, file_lock) {
            (Some(held), _) => Some(held),
            (None, Some(lock)) if self.config.write_back => lock.try_lock_owned().ok(),
            (None, Some(lock)) => Some(lock.lock_owned().await),
            (None, None) => None,
        };
        let cell = pending.cell;
        let mut staged = cell.file.lock().await;
        let Some(Planned {
            upload,
            earlier,
            stored,
        }) = self.plan(ino, &cell, &staged, to, replaces, in_order.is_some())?
        else {
            return Ok(false);
        };
        log::debug!(
            "storing inode {ino} as {:?} in {:?} ({} bytes, replacing {:?})",
            upload.name,
            upload.parent,
            upload.len,
            upload.replaces
        );
        // The earlier entry goes only once these bytes are safe: stored,
        // or in the spool in its place.
        if self.config.write_back {
            let file = pending.file.unwrap_or_else(new_file_key);
            self.spool_cell(ino, &cell, &mut staged, &file, &upload, stored.as_ref())?;
            if let Some(earlier) = earlier {
                self.uploader.discard(&earlier);
            }
            self.unnamed.done(ino);
            let mut ns = self.ns.lock().unwrap();
            for id in replaces {
                // Shown no more: these bytes take its place once stored.
                ns.listings.supersede(id);
            }
            if let Some((dir, name)) = to {
                ns.move_local(ino, dir, name);
            }
            return Ok(true);
        }
        self.uploader
            .store(&upload, staged.path(), &Source::Cell(ino))
            .await
            .map_err(|(_, errno)| errno)?;
        if let Some(earlier) = earlier {
            self.uploader.discard(&earlier);
        }
        cell.set_dirty(false);
        self.unnamed.done(ino);
        if let Some((dir, name)) = to {
            self.ns.lock().unwrap().place(ino, dir, name);
        }
        Ok(true)
    }

    /// Keeps a new file whose type cannot be told yet until a rename names
    /// it (see [`uploader::Unnamed`]), and warns if none does in time.
    fn await_name(&self, ino: Ino, data: &std::path::Path, name: &str) -> FsResult<()> {
        let folder = self.ns.lock().unwrap().folder_path(ino);
        let new = self
            .unnamed
            .wait(ino, data, name, &folder)
            .map_err(Errno::from_io)?;
        if new {
            log::debug!("{name:?} in {folder} waits for a rename to a name that tells its type");
        }
        // The warning goes with the newest wait: an earlier one stays silent.
        let (unnamed, key) = (self.unnamed.clone(), self.unnamed.key(ino));
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(uploader::GRACE).await;
            if unnamed.key(ino) == key {
                log::warn!(
                    "{name:?} in {folder} is not stored: neither its bytes nor its name tell the type \
                     the library needs. Rename it to a name with an extension (say {name}.txt) to \
                     upload it; until then it lives only in this mount, and at unmount it is kept in {}",
                    unnamed.unstored_dir().display()
                );
            }
        });
        Ok(())
    }

    /// The upload a commit makes, and the older spool entry of the file it
    /// supersedes; `None` when there is nothing to store.
    fn plan(
        &self,
        ino: Ino,
        cell: &StagingCell,
        staged: &Staged,
        to: Option<(Ino, &str)>,
        replaces: &[String],
        file_locked: bool,
    ) -> FsResult<Option<Planned>> {
        let (node, dest) = {
            let ns = self.ns.lock().unwrap();
            let node = FileNow::of(&ns, ino)?;
            let (dir, name) = to.map_or((node.dir, node.name.as_str()), |(d, n)| (d, n));
            let mut dest = self.destination(&ns, dir, name, node.unlinked);
            let over: Vec<String> = replaces.iter().chain(&node.renamed_over).cloned().collect();
            dest.lent_type = dest
                .folder
                .as_ref()
                .and_then(|key| ns.listings.lent_type(key, name, &over));
            (node, dest)
        };
        // New bytes are stored; a rename also moves bytes that live only here.
        if !(cell.is_dirty() || to.is_some() && node.only_here) {
            return Ok(None);
        }
        let verdict = uploader::check(
            &dest,
            node.stored.as_ref(),
            node.spooled.is_some(),
            &Bytes::staged(cell, staged.path()),
        )?;
        let Some(mut upload) =
            self.settle_verdict(ino, verdict, &dest, staged, to.is_some(), &node)?
        else {
            cell.set_dirty(false);
            return Ok(None);
        };
        let earlier = node.spooled.filter(|_| file_locked);
        let earlier_replaces = earlier
            .as_ref()
            .and_then(|e| self.uploader.record(e))
            .map(|r| r.replaces)
            .unwrap_or_default();
        // What the earlier entry would have replaced goes too.
        for id in earlier_replaces
            .iter()
            .chain(&node.renamed_over)
            .chain(replaces)
        {
            if !upload.replaces.contains(id) {
                upload.replaces.push(id.clone());
            }
        }
        Ok(Some(Planned {
            upload,
            earlier,
            stored: node.stored.map(|o| o.id),
        }))
    }

    /// What a commit does with the checks' verdict: the upload to make, or
    /// `None` when the bytes stay here (waiting for a name, maybe).
    fn settle_verdict(
        &self,
        ino: Ino,
        verdict: Verdict,
        dest: &uploader::Destination,
        staged: &Staged,
        renaming: bool,
        node: &FileNow,
    ) -> FsResult<Option<Upload>> {
        match verdict {
            Verdict::Upload(upload) => Ok(Some(upload)),
            Verdict::StaysHere => {
                self.unnamed.done(ino);
                Ok(None)
            }
            // A rename gives the file its final name (rsync's `.LICENSE.Xa91f`
            // becomes `LICENSE`), and one over stored objects would have them
            // go once it is stored, which it cannot be: the rename fails.
            Verdict::AwaitsName if renaming || !node.renamed_over.is_empty() => {
                log::warn!(
                    "cannot tell the type of {:?} from its bytes or its name; the library refuses it",
                    dest.name
                );
                Err(Errno(libc::EINVAL))
            }
            Verdict::AwaitsName => {
                self.await_name(ino, staged.path(), &dest.name)?;
                Ok(None)
            }
        }
    }

    /// Moves a cell's bytes into the spool and makes the node show them
    /// from there; the cell starts afresh, to be loaded from the spool.
    fn spool_cell(
        &self,
        ino: Ino,
        cell: &StagingCell,
        staged: &mut Staged,
        file: &str,
        upload: &Upload,
        stored_then: Option<&String>,
    ) -> FsResult<()> {
        let fresh = tempfile::Builder::new()
            .prefix("staging-")
            .tempfile_in(&self.staging_dir)
            .map_err(Errno::from_io)?;
        let bytes = std::mem::replace(&mut staged.temp, fresh);
        let entry = match self.uploader.spool(file, bytes, upload) {
            Ok(entry) => entry,
            Err((errno, back)) => {
                if let Some(back) = back {
                    staged.temp = back;
                }
                return Err(errno);
            }
        };
        staged.loaded = false;
        cell.set_dirty(false);
        let stored_now = self.show_spooled(ino, file, &entry, upload.len);
        if let Some(now) = stored_now.filter(|now| Some(&now.id) != stored_then) {
            // An earlier upload of the file landed meanwhile: this entry
            // replaces what that stored.
            let then: Vec<String> = stored_then.cloned().into_iter().collect();
            self.uploader.now_replaces(&entry, &then, &now.id);
        }
        self.uploader.enqueue(entry);
        Ok(())
    }

    /// Makes a node show its bytes from a spool entry; returns the stored
    /// version the entry replaces, as the node knows it now.
    fn show_spooled(&self, ino: Ino, file: &str, entry: &str, len: u64) -> Option<MediaObject> {
        let mut ns = self.ns.lock().unwrap();
        let node = ns.node_mut(ino)?;
        let stored = node.object().cloned();
        let spooled = Spooled {
            entry: entry.to_owned(),
            file: file.to_owned(),
            len,
            stored: stored.clone(),
        };
        match &mut node.kind {
            NodeKind::File(FileState::Staged {
                over, renamed_over, ..
            }) => {
                *over = Base::Spooled(spooled);
                renamed_over.clear();
            }
            NodeKind::File(state) => *state = FileState::Spooled(spooled),
            NodeKind::Dir(_) => return None,
        }
        ns.set_spooled_file(file, Some(ino));
        stored
    }

    /// Stores a file's bytes now, whatever is pending: what handles wrote,
    /// then its spool entry, waiting for an upload of it in flight.
    pub(super) async fn store_now(&self, ino: Ino) -> FsResult<()> {
        self.commit(ino, None, &[]).await?;
        let entry = {
            let ns = self.ns.lock().unwrap();
            ns.node(ino)
                .and_then(|n| n.file()?.spooled())
                .map(|s| s.entry.clone())
        };
        match entry {
            Some(entry) => self.uploader.upload_entry(&entry).await,
            None => Ok(()),
        }
    }

    /// Waits for any upload of the node's bytes in flight, and keeps new
    /// ones from starting while the guard lives.
    pub(super) async fn hold_uploads(&self, ino: Ino) -> UploadsHeld {
        let locks_of = |ns: &Namespace| {
            let state = ns.node(ino).and_then(|n| n.file());
            (
                state.and_then(|f| f.staging().cloned()),
                state.and_then(|f| f.spooled().map(|s| s.file.clone())),
            )
        };
        loop {
            let (cell, file) = locks_of(&self.ns.lock().unwrap());
            let spool = match &file {
                Some(file) => Some(self.uploader.file_lock(file).lock_owned().await),
                None => None,
            };
            let held_cell = match &cell {
                Some(cell) => Some(cell.file.clone().lock_owned().await),
                None => None,
            };
            // A close may have spooled the file or begun a new staging
            // meanwhile: then hold those instead.
            let (cell_now, file_now) = locks_of(&self.ns.lock().unwrap());
            let same_cell = match (&cell, &cell_now) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same_cell && file == file_now {
                return UploadsHeld {
                    _spool: spool,
                    cell: held_cell,
                };
            }
        }
    }

    /// Drops the node's pending spool entry: the file was unlinked, with
    /// its uploads held. Handles still open on it read (and write) on from
    /// a copy of the entry's bytes.
    pub(super) async fn discard_spooled(&self, ino: Ino, held: &mut UploadsHeld) -> FsResult<()> {
        let (entry, open) = {
            let ns = self.ns.lock().unwrap();
            let Some(node) = ns.node(ino) else {
                return Ok(());
            };
            let entry = node
                .file()
                .and_then(FileState::spooled)
                .map(|s| s.entry.clone());
            (entry, node.open > 0)
        };
        let Some(entry) = entry else {
            return Ok(());
        };
        if open {
            self.copy_spooled_to_cell(ino, held).await?;
        }
        self.uploader.discard(&entry);
        Ok(())
    }

    /// Gives a file whose spool entry is about to go a staging cell with
    /// its bytes.
    async fn copy_spooled_to_cell(&self, ino: Ino, held: &mut UploadsHeld) -> FsResult<()> {
        let cell = match held.cell.as_mut() {
            Some(staged) => {
                let cell = {
                    let ns = self.ns.lock().unwrap();
                    ns.node(ino).and_then(|n| n.file()?.staging().cloned())
                };
                if let Some(cell) = cell {
                    self.load_existing(ino, &cell, staged).await?;
                }
                None
            }
            None => {
                let len = {
                    let ns = self.ns.lock().unwrap();
                    ns.node(ino)
                        .and_then(|n| n.file())
                        .map_or(0, FileState::len)
                };
                let cell = self.new_staging(false, len)?;
                let mut staged = cell.file.lock().await;
                self.load_existing(ino, &cell, &mut staged).await?;
                drop(staged);
                Some(cell)
            }
        };
        let mut ns = self.ns.lock().unwrap();
        if let Some(NodeKind::File(state)) = ns.node_mut(ino).map(|n| &mut n.kind) {
            match (state, cell) {
                (FileState::Staged { over, .. }, _) => *over = Base::New,
                (state, Some(cell)) => *state = FileState::Local(cell),
                _ => {}
            }
        }
        Ok(())
    }

    /// After the last handle of a file is released: what handles wrote is
    /// kept (stored, spooled, or local), or given up if it could not be
    /// stored, and the file is what it was before.
    pub(super) fn settle(&self, ino: Ino) {
        let mut ns = self.ns.lock().unwrap();
        let Some(node) = ns.node_mut(ino).filter(|n| n.open == 0) else {
            return;
        };
        let NodeKind::File(state) = &mut node.kind else {
            return;
        };
        let FileState::Staged { cell, over, .. } = state else {
            return;
        };
        let failed = cell.is_dirty() && !node.unlinked;
        if failed && cell.len() == 0 && over.stored().is_some() {
            log::error!(
                "{:?} was emptied, but the library cannot hold empty files; it keeps its previous content",
                node.name
            );
        } else if failed && matches!(over, Base::New) {
            log::error!(
                "{:?} was closed but could not be stored (its close reported the error); \
                 it is not in the library, so keep what it was written from",
                node.name
            );
        } else if failed {
            log::error!(
                "{:?} was closed with changes that could not be stored (its close reported the error); \
                 the library keeps its previous version",
                node.name
            );
        }
        let vanishes = failed && matches!(over, Base::New);
        *state = match std::mem::replace(over, Base::New) {
            Base::New => FileState::Local(cell.clone()),
            Base::Stored(o) => FileState::Stored(o),
            Base::Spooled(s) => FileState::Spooled(s),
        };
        let (parent, name) = (node.parent, node.name.clone());
        if vanishes {
            // A new file that could not be stored leaves no entry behind;
            // if it waited for a name before, its bytes are kept.
            self.unnamed.give_up(ino);
            ns.unlink(ino);
            drop(ns);
            self.report_stale(Stale::Entry { parent, name });
        } else {
            ns.drop_if_unused(ino);
            drop(ns);
        }
        if failed {
            self.report_stale(Stale::Attributes(ino));
        }
    }
}
