//! How the model stores what is written: at close (sync mode) or into the
//! pending set (write-back), rewrites as a new object then the old one
//! trashed, pending uploads, truncate without a handle.

use std::sync::Arc;

use crate::ops::P;
use crate::reference::*;
use crate::semantics::{tellable, Ctx, Res};

type R<T> = Result<T, Res>;

fn err(e: i32) -> Res {
    Res::Err(e)
}

fn res(r: Result<(), i32>) -> Res {
    r.map_or_else(Res::Err, |()| Res::Ok)
}

impl Model {
    pub fn set_dirty(&mut self, fid: Fid, dirty: bool) {
        self.files.get_mut(&fid).unwrap().dirty = dirty;
    }

    pub fn new_pend(&mut self, bytes: Vec<u8>, also: Vec<Key>) -> Pend {
        Pend {
            seq: self.bump(),
            queued: true,
            bytes: Arc::new(bytes),
            also,
        }
    }

    /// Whether a local file named `name` in `dir` with these bytes would be
    /// uploaded: in a server folder, not junk, not empty (a pending file is
    /// bound for the server whatever its name).
    pub fn uploadable(
        &self,
        dir: Dir,
        name: &str,
        bytes: &[u8],
        pending: bool,
        over: bool,
    ) -> Option<Option<Key>> {
        // A new file whose type cannot be told waits here for a name that
        // tells it, unless it takes the place of objects (then its upload
        // is tried, and refused).
        let waits = !tellable(name, bytes) && !over;
        match dir {
            Dir::Srv(folder) if pending || !junk(name) && !bytes.is_empty() && !waits => {
                Some(folder)
            }
            _ => None,
        }
    }

    /// Stores what a file holds if the server does not have it: `close`,
    /// `flush`, the first half of `fsync`.
    pub fn commit(&mut self, cx: &mut Ctx, fid: Fid) -> Res {
        let f = &self.files[&fid];
        if !f.dirty {
            return Res::Ok;
        }
        match f.place {
            None => {
                self.set_dirty(fid, false);
                Res::Ok
            }
            Some(Place::Loc(l)) => res(self.commit_local(cx, fid, l)),
            Some(Place::Obj(k)) => res(self.commit_obj(cx, fid, k)),
        }
    }

    fn commit_local(&mut self, cx: &mut Ctx, fid: Fid, l: LKey) -> Result<(), i32> {
        let local = &self.locals[&l];
        let pending = local.pend.is_some();
        let (name, bytes) = (local.name.clone(), local.bytes.clone());
        if bytes.is_empty() && pending {
            // Closed once, it will be stored: emptied, as a stored file.
            return Err(libc::EINVAL);
        }
        let over = !local.over.is_empty();
        let Some(folder) = self.uploadable(local.parent, &name, &bytes, pending, over) else {
            // Junk, in a local dir, empty, or waiting for a name: it stays
            // in this mount.
            self.set_dirty(fid, false);
            return Ok(());
        };
        self.store_local(cx, l, &name, folder, bytes, false)?;
        self.set_dirty(fid, false);
        Ok(())
    }

    /// Stores a local file's bytes as `name` in `folder`: uploaded now, or
    /// with write-back spooled (superseding an earlier spooled version).
    pub fn store_local(
        &mut self,
        cx: &mut Ctx,
        l: LKey,
        name: &str,
        folder: Option<Key>,
        bytes: Vec<u8>,
        typed: bool,
    ) -> Result<(), i32> {
        if self.wb {
            if !typed && !tellable(name, &bytes) {
                return Err(libc::EINVAL);
            }
            let pend = self.new_pend(bytes.clone(), Vec::new());
            let local = self.locals.get_mut(&l).unwrap();
            local.bytes = bytes;
            local.pend = Some(pend);
        } else {
            let n = self.s_upload(cx, name, folder, &bytes, typed)?;
            self.became_object(cx, Place::Loc(l), n);
        }
        Ok(())
    }

    fn commit_obj(&mut self, cx: &mut Ctx, fid: Fid, k: Key) -> Result<(), i32> {
        let bytes = self.fid_content(fid);
        if bytes.is_empty() {
            return Err(libc::EINVAL); // the library holds no empty files
        }
        let name = self.objs[k].name.clone();
        if self.wb {
            // A rewrite is typed by the version it replaces, if not by its
            // bytes or name.
            let also = self.pend_over.get(&k).map(|p| p.also.clone());
            let pend = self.new_pend(bytes, also.unwrap_or_default());
            self.pend_over.insert(k, pend);
            self.files.get_mut(&fid).unwrap().staged = None;
        } else {
            let n = self.s_upload(cx, &name, self.objs[k].parent, &bytes, true)?;
            self.replaced(cx, k, n);
        }
        self.set_dirty(fid, false);
        Ok(())
    }

    /// A place's open files now stand for object `n`.
    pub fn rebind(&mut self, from: Place, n: Key) {
        let live = self.content(from);
        for f in self.files.values_mut() {
            if f.place == Some(from) {
                f.place = Some(Place::Obj(n));
                f.staged = f.dirty.then(|| live.clone());
            }
        }
    }

    /// A local file was uploaded as object `n`: what it was renamed over goes.
    pub fn became_object(&mut self, cx: &mut Ctx, from: Place, n: Key) {
        self.rebind(from, n);
        if let Place::Loc(l) = from {
            let local = self.locals.remove(&l).unwrap();
            for k in local.over {
                self.remove_replaced(cx, k);
            }
        }
    }

    /// Object `k` was rewritten as `n`: `k` is trashed, or hidden if that
    /// fails; so are the others its pending version replaced.
    pub fn replaced(&mut self, cx: &mut Ctx, k: Key, n: Key) {
        self.rebind(Place::Obj(k), n);
        let also = self.pend_over.remove(&k).map(|p| p.also);
        self.remove_replaced(cx, k);
        for a in also.unwrap_or_default() {
            self.remove_replaced(cx, a);
        }
    }

    /// A replaced object is removed; if that fails, it stays on the server,
    /// hidden by this mount and the next ones until a retry removes it.
    pub fn remove_replaced(&mut self, cx: &mut Ctx, k: Key) {
        self.hidden_now.remove(&k);
        if self.s_trash(cx, k).is_err() {
            self.hidden.insert(k);
        } else {
            self.hidden.remove(&k);
        }
    }

    /// The last handle of a file goes: what could not be stored is dropped.
    pub fn release(&mut self, fid: Fid) {
        let f = self.files.get_mut(&fid).unwrap();
        f.open -= 1;
        if f.open > 0 {
            return;
        }
        let f = self.files.remove(&fid).unwrap();
        let Some(Place::Loc(l)) = f.place else {
            return;
        };
        let local = self.locals.get_mut(&l).unwrap();
        if f.dirty {
            match &local.pend {
                // A pending file keeps what was closed before.
                Some(pend) => local.bytes = pend.bytes.to_vec(),
                // A new file that could not be stored leaves no entry; what
                // it was renamed over stays hidden until the next mount.
                None => {
                    self.drop_local(l);
                    return;
                }
            }
        }
        if local.pend.is_none() {
            // Not stored: what it was renamed over stays hidden (until the
            // next mount) and is not removed when it is stored later.
            local.over.clear();
        }
    }

    /// flush, then release.
    pub fn close(&mut self, cx: &mut Ctx, fid: Fid) -> Res {
        let out = self.commit(cx, fid);
        self.release(fid);
        out
    }

    /// Closes the open handle at index `i`.
    pub fn close_handle(&mut self, cx: &mut Ctx, i: usize) -> Res {
        let fid = self.handles.remove(i);
        self.close(cx, fid)
    }

    /// `fsync`: stores the file, and uploads its pending version now (also
    /// one whose upload failed before).
    pub fn fsync(&mut self, cx: &mut Ctx, fid: Fid) -> Res {
        let out = self.commit(cx, fid);
        if out != Res::Ok {
            return out;
        }
        match self.files[&fid].place {
            Some(p) if self.pending(p).is_some() => res(self.upload_pending(cx, p)),
            _ => Res::Ok,
        }
    }

    pub fn pending(&self, p: Place) -> Option<&Pend> {
        match p {
            Place::Loc(l) => self.locals.get(&l)?.pend.as_ref(),
            Place::Obj(k) => self.pend_over.get(&k),
        }
    }

    pub fn pending_mut(&mut self, p: Place) -> Option<&mut Pend> {
        match p {
            Place::Loc(l) => self.locals.get_mut(&l)?.pend.as_mut(),
            Place::Obj(k) => self.pend_over.get_mut(&k),
        }
    }

    /// Where a pending upload goes: its name and folder.
    pub fn pending_target(&self, p: Place) -> (String, Option<Key>) {
        match p {
            Place::Loc(l) => match self.locals[&l].parent {
                Dir::Srv(folder) => (self.locals[&l].name.clone(), folder),
                Dir::Loc(_) => unreachable!("nothing in a local dir is pending"),
            },
            Place::Obj(k) => (self.objs[k].name.clone(), self.objs[k].parent),
        }
    }

    /// Uploads a pending file now, whether or not it failed before.
    pub fn upload_pending(&mut self, cx: &mut Ctx, p: Place) -> Result<(), i32> {
        let pend = self.pending(p).expect("pending").clone();
        let (name, parent) = self.pending_target(p);
        let typed = matches!(p, Place::Obj(_));
        match self.s_upload(cx, &name, parent, &pend.bytes, typed) {
            Ok(n) => {
                match p {
                    Place::Loc(_) => self.became_object(cx, p, n),
                    Place::Obj(k) => self.replaced(cx, k, n),
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Every pending upload in the queue, oldest first.
    pub fn pending_places(&self) -> Vec<Place> {
        let mut all: Vec<(u64, Place)> = self
            .locals
            .iter()
            .filter_map(|(l, loc)| Some((loc.pend.as_ref()?, Place::Loc(*l))))
            .chain(self.pend_over.iter().map(|(k, p)| (p, Place::Obj(*k))))
            .filter(|(p, _)| p.queued)
            .map(|(p, place)| (p.seq, place))
            .collect();
        all.sort();
        all.into_iter().map(|(_, p)| p).collect()
    }

    /// `finish_pending`: removals that failed are tried again, then the
    /// queued uploads run, oldest first.
    pub fn run_pending(&mut self, cx: &mut Ctx) {
        self.retry_removals(cx);
        self.upload_queue_until(cx, None);
    }

    pub fn retry_removals(&mut self, cx: &mut Ctx) {
        for k in self.hidden.clone() {
            if self.s_trash(cx, k).is_ok() {
                self.hidden.remove(&k);
            }
        }
    }

    /// truncate(2): with a handle open, the staged bytes change; without,
    /// the result is stored at once (or pending, in write-back mode).
    pub fn truncate(&mut self, cx: &mut Ctx, path: &P, len: usize) -> R<Res> {
        let dir = self.resolve_parent(path)?;
        let place = self.lookup(dir, path.leaf()).ok_or(err(libc::ENOENT))?;
        if self.kind(place) == Kind::Dir {
            return Err(err(libc::EISDIR));
        }
        let mut bytes = self.content(place);
        if let Some(fid) = self.fid_at(place) {
            bytes.resize(len, 0);
            self.set_staged(fid, bytes);
            return Ok(Res::Ok);
        }
        if bytes.len() == len {
            return Ok(Res::Ok);
        }
        bytes.resize(len, 0);
        Ok(res(match place {
            Place::Loc(l) => self.truncate_local(cx, l, bytes),
            Place::Obj(k) => self.truncate_obj(cx, k, bytes),
        }))
    }

    fn set_staged(&mut self, fid: Fid, bytes: Vec<u8>) {
        match self.files[&fid].place {
            Some(Place::Loc(l)) => self.locals.get_mut(&l).unwrap().bytes = bytes,
            _ => self.files.get_mut(&fid).unwrap().staged = Some(bytes),
        }
        self.set_dirty(fid, true);
    }

    fn truncate_local(&mut self, cx: &mut Ctx, l: LKey, bytes: Vec<u8>) -> Result<(), i32> {
        let local = &self.locals[&l];
        let pending = local.pend.is_some();
        let name = local.name.clone();
        if bytes.is_empty() && pending {
            return Err(libc::EINVAL);
        }
        let over = !local.over.is_empty();
        let Some(folder) = self.uploadable(local.parent, &name, &bytes, pending, over) else {
            self.locals.get_mut(&l).unwrap().bytes = bytes;
            return Ok(());
        };
        self.store_local(cx, l, &name, folder, bytes, false)
    }

    fn truncate_obj(&mut self, cx: &mut Ctx, k: Key, bytes: Vec<u8>) -> Result<(), i32> {
        if bytes.is_empty() {
            return Err(libc::EINVAL);
        }
        let name = self.objs[k].name.clone();
        if self.wb {
            // A rewrite is typed by the version it replaces, if not by its
            // bytes or name.
            let also = self.pend_over.get(&k).map(|p| p.also.clone());
            let pend = self.new_pend(bytes, also.unwrap_or_default());
            self.pend_over.insert(k, pend);
            return Ok(());
        }
        let n = self.s_upload(cx, &name, self.objs[k].parent, &bytes, true)?;
        self.replaced(cx, k, n);
        Ok(())
    }
}
