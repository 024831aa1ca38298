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
                self.s_mkdir(cx, path.leaf(), folder)
                    .map_err(|()| err(libc::EIO))?;
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
                self.pend_over.remove(&k);
                self.unlink_files(place);
                self.drop_locals_in(Dir::Srv(Some(k)));
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
        let src = match src {
            Place::Loc(l) if matches!(tdir, Dir::Srv(_)) && !junk(to.leaf()) => {
                self.store_first(cx, l)?
            }
            other => other,
        };
        match src {
            Place::Loc(l) => self.move_local(l, tdir, to.leaf()),
            Place::Obj(_) if sdir != tdir => return Err(err(libc::EXDEV)),
            Place::Obj(k) => self
                .s_rename(cx, k, to.leaf())
                .map_err(|()| err(libc::EIO))?,
        }
        if let Some(t) = tgt {
            // If this fails, both stay: nothing is lost.
            let _ = self.remove_place(cx, t);
        }
        Ok(Res::Ok)
    }

    /// A new file not stored yet, about to take a name that stays: stored
    /// first. Returns where it is now.
    fn store_first(&mut self, cx: &mut Ctx, l: LKey) -> R<Place> {
        if let Some(fid) = self.fid_at(Place::Loc(l)) {
            if self.files[&fid].dirty {
                let out = self.commit(cx, fid);
                if out != Res::Ok {
                    return Err(out);
                }
            }
        }
        if self.locals.get(&l).is_some_and(|loc| loc.pend.is_some()) {
            self.upload_pending(cx, Place::Loc(l)).map_err(err)?;
        }
        if self.locals.contains_key(&l) {
            Ok(Place::Loc(l))
        } else {
            Ok(Place::Obj(self.objs.len() - 1))
        }
    }

    fn move_local(&mut self, l: LKey, dir: Dir, name: &str) {
        let local = self.locals.get_mut(&l).unwrap();
        local.parent = dir;
        local.name = name.to_owned();
        if matches!(dir, Dir::Loc(_)) || junk(name) {
            local.pend = None;
        }
    }

    /// A new core: after closing every handle and draining (clean), or as
    /// the old one was (crash). What stays: the server, and pending uploads.
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
        for local in self.locals.values_mut() {
            let pend = local.pend.as_mut().unwrap();
            pend.failed = false;
            local.bytes = pend.bytes.to_vec();
        }
        for pend in self.pend_over.values_mut() {
            pend.failed = false;
        }
        self.hidden.clear();
        self.wb = wb;
        Res::Ok
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
        }
        Res::Ok
    }
}
