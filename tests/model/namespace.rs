//! What the namespace operations do to the model: mkdir, rmdir, unlink,
//! rename (with the kernel's own checks), remote changes, remounts, and an
//! unlink racing an upload.

use std::sync::Arc;

use crate::common::png_bytes;
use crate::ops::{Remote, P};
use crate::reference::*;
use crate::semantics::{Ctx, Res};

type R<T> = Result<T, Res>;

fn err(e: i32) -> Res {
    Res::Err(e)
}

/// Whether path `a` is `b` or one of its ancestors.
pub fn is_prefix<S: AsRef<str>>(a: &P, b: &[S]) -> bool {
    b.len() >= a.0.len() && a.0.iter().zip(b).all(|(x, y)| x == y.as_ref())
}

/// What an unlink racing an upload is about.
#[derive(Debug, Clone)]
pub struct RaceTarget {
    pub place: Place,
    pub path: Vec<String>,
    /// The name and folder the upload goes to.
    pub name: String,
    pub parent: Option<Key>,
    /// Sync mode: the handle whose close uploads it.
    pub handle: Option<usize>,
}

impl Model {
    pub fn mkdir(&mut self, cx: &mut Ctx, path: &P) -> R<Res> {
        let dir = self.resolve_parent(path)?;
        if self.lookup(dir, path.leaf()).is_some() {
            return Err(err(libc::EEXIST));
        }
        match dir {
            Dir::Srv(folder) if !junk(path.leaf()) => {
                self.s_mkdir(cx, path.leaf(), folder).map_err(err)?;
            }
            _ => self.add_local_dir(dir, path.leaf()),
        }
        Ok(Res::Ok)
    }

    fn add_local_dir(&mut self, dir: Dir, name: &str) {
        let l = self.bump();
        let local = Local {
            parent: dir,
            name: name.to_owned(),
            kind: Kind::Dir,
            bytes: Vec::new(),
            pend: None,
            over: Vec::new(),
        };
        self.locals.insert(l, local);
    }

    /// Whether a directory holds anything on the server or a local entry
    /// that is not junk.
    pub fn nonempty(&self, p: Place) -> bool {
        let d = self.dir_of(p).expect("a directory");
        let on_server = match d {
            Dir::Srv(folder) => self.objs.iter().any(|o| o.active && o.parent == folder),
            Dir::Loc(_) => false,
        };
        on_server
            || self
                .locals
                .values()
                .any(|l| l.parent == d && !junk(&l.name))
    }

    pub fn rmdir(&mut self, cx: &mut Ctx, path: &P) -> R<Res> {
        let dir = self.resolve_parent(path)?;
        let place = self.lookup(dir, path.leaf()).ok_or(err(libc::ENOENT))?;
        if self.kind(place) != Kind::Dir {
            return Err(err(libc::ENOTDIR));
        }
        if self.nonempty(place) {
            return Err(err(libc::ENOTEMPTY));
        }
        self.remove_place(cx, place)?;
        Ok(Res::Ok)
    }

    /// Removes what a name stands for: trashed on the server, or dropped.
    fn remove_place(&mut self, cx: &mut Ctx, place: Place) -> R<()> {
        match place {
            Place::Obj(k) => {
                self.s_trash(cx, k).map_err(|()| err(libc::EIO))?;
                self.forget_object(k);
            }
            Place::Loc(l) => self.drop_local(l),
        }
        Ok(())
    }

    fn unlink_files(&mut self, p: Place) {
        for f in self.files.values_mut() {
            if f.place == Some(p) {
                f.place = None;
                f.dirty = false;
            }
        }
    }

    /// A local entry goes (its pending upload too); what it was renamed
    /// over stays hidden until the next mount.
    pub fn drop_local(&mut self, l: LKey) {
        self.drop_locals_in(Dir::Loc(l));
        self.unlink_files(Place::Loc(l));
        self.locals.remove(&l);
    }

    pub fn drop_locals_in(&mut self, d: Dir) {
        let inside: Vec<LKey> = self
            .locals
            .iter()
            .filter(|(_, l)| l.parent == d)
            .map(|(k, _)| *k)
            .collect();
        for l in inside {
            self.drop_local(l);
        }
    }

    pub fn unlink(&mut self, cx: &mut Ctx, path: &P) -> R<Res> {
        let dir = self.resolve_parent(path)?;
        let place = self.lookup(dir, path.leaf()).ok_or(err(libc::ENOENT))?;
        if self.kind(place) == Kind::Dir {
            return Err(err(libc::EISDIR));
        }
        self.remove_place(cx, place)?;
        Ok(Res::Ok)
    }

    /// The kernel's checks of a rename, then the filesystem's.
    pub fn rename(&mut self, cx: &mut Ctx, from: &P, to: &P, noreplace: bool) -> R<Res> {
        let sdir = self.resolve_parent(from)?;
        let tdir = self.resolve_parent(to)?;
        let src = self.lookup(sdir, from.leaf()).ok_or(err(libc::ENOENT))?;
        let tgt = self.lookup(tdir, to.leaf());
        if noreplace && tgt.is_some() {
            return Err(err(libc::EEXIST));
        }
        if from.0.len() < to.0.len() && is_prefix(from, to.parent()) {
            return Err(err(libc::EINVAL));
        }
        if let Some(t) = tgt {
            if to.0.len() < from.0.len() && is_prefix(to, from.parent()) {
                return Err(err(libc::ENOTEMPTY));
            }
            if t == src {
                return Ok(Res::Ok);
            }
            match (self.kind(src), self.kind(t)) {
                (Kind::Dir, Kind::File) => return Err(err(libc::ENOTDIR)),
                (Kind::File, Kind::Dir) => return Err(err(libc::EISDIR)),
                (Kind::Dir, Kind::Dir) if self.nonempty(t) => return Err(err(libc::ENOTEMPTY)),
                _ => {}
            }
        }
        let replaced = match tgt {
            Some(Place::Obj(k)) => Some(k),
            _ => None,
        };
        let taken_care_of = match src {
            Place::Obj(k) => {
                if sdir != tdir {
                    return Err(err(libc::EXDEV));
                }
                // Bytes written or pending go first, so the name moves with them.
                let k = self.store_now(cx, k)?;
                self.s_rename(cx, k, to.leaf())
                    .map_err(|()| err(libc::EIO))?;
                false
            }
            Place::Loc(l) => self.move_local_file(cx, l, tdir, to.leaf(), replaced)?,
        };
        if let Some(t) = tgt {
            self.replace_target(cx, t, taken_care_of);
        }
        Ok(Res::Ok)
    }

    /// A stored object's pending bytes, stored before it is renamed: what
    /// handles wrote, then its pending version (uploaded now, also with
    /// write-back). Returns the object that holds them.
    fn store_now(&mut self, cx: &mut Ctx, mut k: Key) -> R<Key> {
        if let Some(fid) = self.fid_at(Place::Obj(k)) {
            let out = self.commit(cx, fid);
            if out != Res::Ok {
                return Err(out);
            }
            if let Some(Place::Obj(n)) = self.files[&fid].place {
                k = n;
            }
        }
        if self.pend_over.contains_key(&k) {
            let new = self.objs.len();
            self.upload_pending(cx, Place::Obj(k)).map_err(err)?;
            k = new;
        }
        Ok(k)
    }

    /// Gives a file or directory of this mount only its new name: `Ok(true)`
    /// when it was stored (or spooled) replacing `replaced`, which is then
    /// taken care of.
    fn move_local_file(
        &mut self,
        cx: &mut Ctx,
        l: LKey,
        tdir: Dir,
        name: &str,
        replaced: Option<Key>,
    ) -> R<bool> {
        let local = &self.locals[&l];
        let kind = local.kind;
        let pending = local.pend.is_some();
        let fid = self.fid_at(Place::Loc(l));
        let dirty = fid.is_some_and(|f| self.files[&f].dirty);
        let bytes = local.bytes.clone();
        let over = replaced.is_some() || !local.over.is_empty();
        let uploadable = self.uploadable(tdir, name, &bytes, pending, over);
        if kind == Kind::Dir {
            self.move_local(l, tdir, name);
            return Ok(false);
        }
        if pending {
            // Its bytes are bound for the server: they cannot become local.
            let Some(folder) = uploadable.filter(|_| !junk(name)) else {
                return Err(err(libc::EXDEV));
            };
            if dirty {
                // New bytes written over a spooled file: stored under the new name.
                self.store_moved(cx, l, tdir, name, folder, replaced)?;
                self.set_dirty(fid.unwrap(), false);
                return Ok(true);
            }
            if !crate::semantics::tellable(name, &bytes) {
                // The checks an upload makes hold for what is spooled.
                return Err(err(libc::EINVAL));
            }
            // Only where its record says it goes changes.
            self.move_over(l, tdir, name, replaced);
            return Ok(true);
        }
        if dirty {
            // A new file open with bytes not flushed yet just moves; it is
            // stored at close. One flushed is stored now, as if closed.
            self.move_over(l, tdir, name, replaced);
            return Ok(true);
        }
        let untyped = !crate::semantics::tellable(name, &bytes) && replaced.is_none();
        if untyped && !bytes.is_empty() && !junk(name) && matches!(tdir, Dir::Srv(_)) {
            // A rename gives the file its final name; one that tells no
            // type (and replaces no object to take one from) is refused.
            return Err(err(libc::EINVAL));
        }
        match uploadable {
            Some(folder) => {
                self.store_moved(cx, l, tdir, name, folder, replaced)?;
                Ok(true)
            }
            None => {
                self.move_local(l, tdir, name);
                Ok(false)
            }
        }
    }

    /// A local file stored under a new name by a rename: uploaded now (it
    /// fails with nothing moved), or spooled there.
    fn store_moved(
        &mut self,
        cx: &mut Ctx,
        l: LKey,
        tdir: Dir,
        name: &str,
        folder: Option<Key>,
        replaced: Option<Key>,
    ) -> R<()> {
        let bytes = self.locals[&l].bytes.clone();
        // An object it replaces lends its type.
        let typed = replaced.is_some();
        if bytes.is_empty() || self.wb && !typed && !crate::semantics::tellable(name, &bytes) {
            // Emptied bytes of a spooled file, or a type that cannot be told.
            return Err(err(libc::EINVAL));
        }
        let old = self.locals[&l].clone();
        self.move_over(l, tdir, name, replaced);
        if let Err(e) = self.store_local(cx, l, name, folder, bytes, typed) {
            // Nothing moved.
            self.locals.insert(l, old);
            if let Some(k) = replaced {
                self.hidden_now.remove(&k);
            }
            return Err(err(e));
        }
        Ok(())
    }

    /// A local file takes a new name over `replaced`, which is hidden now
    /// and removed once the file is stored.
    fn move_over(&mut self, l: LKey, dir: Dir, name: &str, replaced: Option<Key>) {
        self.move_local(l, dir, name);
        if let Some(k) = replaced {
            self.locals.get_mut(&l).unwrap().over.push(k);
            self.hidden_now.insert(k);
        }
    }

    /// What a rename replaced goes: removed now, or (when the source's
    /// storing takes care of it) hidden until then.
    fn replace_target(&mut self, cx: &mut Ctx, t: Place, taken_care_of: bool) {
        match t {
            Place::Obj(k) => {
                if !taken_care_of {
                    self.remove_replaced(cx, k);
                }
                self.forget_object(k);
            }
            Place::Loc(l) => self.drop_local(l),
        }
    }

    /// An object removed from this mount's sight (unlinked, replaced): its
    /// pending bytes are dropped, its open files unlinked, local entries in it gone.
    pub fn forget_object(&mut self, k: Key) {
        if let Some(pend) = self.pend_over.remove(&k) {
            self.hidden_now.extend(pend.also);
        }
        self.unlink_files(Place::Obj(k));
        self.drop_locals_in(Dir::Srv(Some(k)));
    }

    fn move_local(&mut self, l: LKey, dir: Dir, name: &str) {
        let local = self.locals.get_mut(&l).unwrap();
        local.parent = dir;
        local.name = name.to_owned();
    }

    /// A new core: after closing every handle and draining (clean), or as
    /// the old one was (crash). What stays: the server, pending uploads,
    /// and the replaced objects whose removal failed (hidden).
    pub fn remount(&mut self, cx: &mut Ctx, crash: bool, wb: bool) -> Res {
        if !crash {
            while !self.handles.is_empty() {
                let _ = self.close_handle(cx, 0);
            }
            self.run_pending(cx);
        }
        self.handles.clear();
        self.files.clear();
        self.locals.retain(|_, l| l.pend.is_some());
        self.hidden_now.clear();
        for l in self.locals.keys().copied().collect::<Vec<_>>() {
            let local = self.locals.get_mut(&l).unwrap();
            let pend = local.pend.as_mut().unwrap();
            pend.queued = true;
            local.bytes = pend.bytes.to_vec();
            self.adopt_over(l);
        }
        // Every spooled version is queued again, an orphan's too (even one
        // whose last attempt failed): the next mount uploads them all.
        for pend in self.pend_over.values_mut() {
            pend.queued = true;
        }
        self.adopt_orphans();
        for local in self.locals.values() {
            self.hidden_now.extend(local.over.iter().copied());
        }
        for pend in self.pend_over.values() {
            self.hidden_now.extend(pend.also.iter().copied());
        }
        self.wb = wb;
        Res::Ok
    }

    /// A pending rewrite of an object gone meanwhile (an unlink whose
    /// answer was lost removed it) shows, in the next mount, as a new file
    /// under the object's name, to be uploaded there.
    fn adopt_orphans(&mut self) {
        let mut gone: Vec<(u64, Key)> = self
            .pend_over
            .iter()
            .filter(|(k, _)| !self.objs[**k].active)
            .map(|(k, p)| (p.seq, *k))
            .collect();
        // Oldest first; a name another file of this mount holds stays its.
        gone.sort();
        for (_, k) in gone {
            let (parent, name) = (self.objs[k].parent, self.objs[k].name.clone());
            let taken = self
                .locals
                .values()
                .any(|l| l.parent == Dir::Srv(parent) && l.name == name);
            if taken {
                continue;
            }
            let mut pend = self.pend_over.remove(&k).unwrap();
            let mut over = std::mem::take(&mut pend.also);
            over.push(k);
            let l = self.bump();
            let local = Local {
                parent: Dir::Srv(parent),
                name,
                kind: Kind::File,
                bytes: pend.bytes.to_vec(),
                pend: Some(pend),
                over,
            };
            self.locals.insert(l, local);
        }
    }

    /// A spooled new file renamed over objects shows, in the next mount,
    /// over the last of them: as its pending rewrite, the others hidden.
    fn adopt_over(&mut self, l: LKey) {
        let local = &self.locals[&l];
        let Some(&last) = local.over.last() else {
            return;
        };
        let o = &self.objs[last];
        if !(o.active && o.name == local.name && local.parent == Dir::Srv(o.parent)) {
            return;
        }
        let local = self.locals.remove(&l).unwrap();
        let mut pend = local.pend.unwrap();
        pend.also = local.over[..local.over.len() - 1].to_vec();
        self.pend_over.insert(last, pend);
    }

    /// Server folders another client may upload into: the root, then each.
    pub fn remote_folders(&self) -> Vec<Option<Key>> {
        let folders = self
            .objs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.active && o.kind == Kind::Dir)
            .map(|(k, _)| Some(k));
        std::iter::once(None).chain(folders).collect()
    }

    /// Whether this mount holds unstored bytes at or below a place.
    fn busy(&self, p: Place) -> bool {
        let dir = self.dir_of(p);
        let under = |q: Place| q == p || dir.is_some_and(|d| self.ancestors(q).contains(&d));
        let pending = self
            .locals
            .iter()
            .filter(|(_, l)| l.pend.is_some())
            .map(|(l, _)| Place::Loc(*l))
            .chain(self.pend_over.keys().map(|k| Place::Obj(*k)));
        let open = self.files.values().filter_map(|f| f.place);
        pending.chain(open).any(under)
    }

    /// Server objects another client may rename or trash: those this mount
    /// holds no unstored bytes at or below.
    pub fn remote_targets(&self) -> Vec<Key> {
        (0..self.objs.len())
            .filter(|k| self.objs[*k].active && !self.busy(Place::Obj(*k)))
            .collect()
    }

    pub fn remote(&mut self, r: &Remote) -> Res {
        match r {
            Remote::Upload {
                dir,
                name,
                len,
                seed,
            } => {
                let folders = self.remote_folders();
                let parent = folders[dir % folders.len()];
                let bytes = Arc::new(png_bytes(*len, *seed));
                self.objs.push(SObj {
                    id: None,
                    created: None,
                    name: name.to_string(),
                    parent,
                    kind: Kind::File,
                    bytes: Some(bytes),
                    active: true,
                });
            }
            Remote::Rename { pick, name } => {
                let targets = self.remote_targets();
                let Some(k) = targets.get(pick % targets.len().max(1)) else {
                    return Res::Skip;
                };
                self.objs[*k].name = name.to_string();
            }
            Remote::Trash { pick } => {
                let targets = self.remote_targets();
                let Some(&k) = targets.get(pick % targets.len().max(1)) else {
                    return Res::Skip;
                };
                self.trash_tree(k);
            }
            // How the service answers, not what it holds.
            Remote::Cap { .. } => {}
        }
        Res::Ok
    }
}
