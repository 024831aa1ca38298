//! A desktop's "Move to Trash" (`gio trash`, Nautilus, Dolphin): following
//! the freedesktop.org trash spec, it writes `.Trash-UID/info/NAME.trashinfo`
//! at the top of the mount, then renames the file into `.Trash-UID/files/`.
//! That folder is local to this mount (a junk name), and a server object
//! cannot become local, so the rename failed "across filesystem
//! boundaries". Such a rename now sends the object to the library's own
//! trash, where the web app restores it, whatever `--delete-mode` says, and
//! drops its `.trashinfo`: the mount's trash folder holds only what was
//! local all along.

use super::dir_ops::Entry;
use super::namespace::{DirState, Ino, Namespace, NodeKind, ROOT};
use super::{Backend, Errno, FileKind, FsResult, MediaFs};
use crate::api::DeleteStatus;

/// The `info` folder beside `files` when `dir` is the `files` folder of a
/// `.Trash-UID` at the top of the mount.
fn trash_info_dir(ns: &Namespace, dir: Ino) -> Option<Ino> {
    let is_local_dir = |ino: Ino, name: &str| {
        ns.node(ino)
            .filter(|n| n.name == name && matches!(n.kind, NodeKind::Dir(DirState::Local(_))))
    };
    let files = ns.node(dir)?;
    is_local_dir(dir, "files")?;
    let top = ns.node(files.parent)?;
    let uid = top.name.strip_prefix(".Trash-")?;
    let trash_dir = uid.chars().all(|c| c.is_ascii_digit())
        && top.parent == ROOT
        && matches!(top.kind, NodeKind::Dir(DirState::Local(_)));
    if !trash_dir {
        return None;
    }
    ns.local_child(files.parent, "info")
}

impl<B: Backend> MediaFs<B> {
    /// A rename into a desktop trash folder: `Some` with its outcome when
    /// it moved an object of the server to the library's trash, `None` when
    /// it is an ordinary rename.
    pub(super) async fn rename_into_trash(
        &self,
        dir: Ino,
        name: &str,
        new_dir: Ino,
        new_name: &str,
    ) -> Option<FsResult<()>> {
        let info_dir = trash_info_dir(&self.ns.lock().unwrap(), new_dir)?;
        let entry = match self.resolve(dir, name).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Some(Err(Errno(libc::ENOENT))),
            Err(e) => return Some(Err(e)),
        };
        if let Some(ino) = self.node_of(&entry) {
            // The trash gets the newest bytes, and a file that was never
            // stored gets stored first: only what the server holds can go
            // to its trash.
            if let Err(e) = self.store_now(ino).await {
                return Some(Err(e));
            }
        }
        let object = match self.resolve(dir, name).await {
            Ok(Some(Entry::Object(object))) => object,
            // A file of this mount only moves into the trash folder as
            // any local file moves.
            Ok(Some(Entry::Local(_))) => return None,
            Ok(None) => return Some(Err(Errno(libc::ENOENT))),
            Err(e) => return Some(Err(e)),
        };
        let result = self.trash_object(dir, name, &object).await;
        if result.is_ok() {
            log::info!("{name:?} moved to the library's trash (restore it in the web app)");
            let info = format!("{new_name}.trashinfo");
            let _ = self.unlink(info_dir, &info).await;
        }
        Some(result)
    }

    async fn trash_object(
        &self,
        dir: Ino,
        name: &str,
        object: &crate::api::MediaObject,
    ) -> FsResult<()> {
        let entry = Entry::Object(object.clone());
        if self.entry_kind(&entry) == FileKind::File {
            return self.unlink_as(dir, name, DeleteStatus::Trashed).await;
        }
        // A folder goes whole, with what is in it, unless this mount holds
        // something below it that is not stored yet (whose node keeps the
        // folder's alive).
        let ino = self.node_of(&entry);
        let pending = ino.is_some_and(|ino| {
            let ns = self.ns.lock().unwrap();
            ns.holds_unstored_below(ino, |n| self.is_junk(n))
        });
        if pending {
            return Err(Errno(libc::ENOTEMPTY));
        }
        self.remove_on_server(object, DeleteStatus::Trashed).await?;
        self.mark_unlinked(dir, &entry);
        Ok(())
    }
}
