//! What each operation does to the model: its result, the server calls it
//! makes (each may fail, as a [`Ctx`] says), and the state it leaves.
//! Content: open, write, commit (close, fsync), truncate, pending uploads.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::backend::Call;
use crate::common::png_bytes;
use crate::ops::{Op, P};
use crate::reference::*;

/// What an operation answered.
#[derive(Clone, PartialEq)]
pub enum Res {
    Ok,
    Err(i32),
    Data(Vec<u8>),
    Names(Vec<(String, Kind)>),
    /// Nothing to do (no handle open, no such target).
    Skip,
}

pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EXDEV => "EXDEV",
        libc::EINVAL => "EINVAL",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EFBIG => "EFBIG",
        libc::EAGAIN => "EAGAIN",
        _ => return format!("errno {e}"),
    };
    name.to_owned()
}

/// A short, stable picture of some bytes: length and a hash.
pub fn bytes_brief(b: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    format!("{} bytes #{:04x}", b.len(), h.finish() & 0xffff)
}

impl fmt::Debug for Res {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Res::Ok => write!(f, "Ok"),
            Res::Err(e) => write!(f, "{}", errno_name(*e)),
            Res::Data(d) => write!(f, "Data({})", bytes_brief(d)),
            Res::Names(n) => write!(f, "Names({n:?})"),
            Res::Skip => write!(f, "Skip"),
        }
    }
}

/// How a server call of the model goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Ok,
    /// Fails before the server does anything.
    Before,
    /// The server does it; the core gets an error.
    After,
}

/// Which server calls fail: the n-th call of a kind, before or after.
#[derive(Clone, Debug, Default)]
pub struct Ctx {
    fail: Vec<(Call, usize, bool)>,
    seen: BTreeMap<Call, usize>,
}

impl Ctx {
    pub fn failing(fail: Vec<(Call, usize, bool)>) -> Ctx {
        Ctx {
            fail,
            seen: BTreeMap::new(),
        }
    }

    pub fn step(&mut self, call: Call) -> Step {
        let n = self.seen.entry(call).or_default();
        let at = *n;
        *n += 1;
        match self.fail.iter().find(|f| f.0 == call && f.1 == at) {
            Some((_, _, true)) => Step::After,
            Some(_) => Step::Before,
            None => Step::Ok,
        }
    }

    /// How many calls of a kind the operation made.
    pub fn count(&self, call: Call) -> usize {
        self.seen.get(&call).copied().unwrap_or(0)
    }
}

/// Whether the service can tell the type of a file: by its bytes (a PNG
/// signature, as `infer` checks it) or by its name's extension.
pub fn tellable(name: &str, bytes: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    bytes.starts_with(b"\x89PNG") || [".png", ".jpg", ".jpeg"].iter().any(|e| lower.ends_with(e))
}

type R<T> = Result<T, Res>;

fn err(e: i32) -> Res {
    Res::Err(e)
}

impl Model {
    pub fn apply(&mut self, op: &Op, cx: &mut Ctx) -> Res {
        let out = match op {
            Op::WriteFile { path, len, seed } => {
                self.write_file(cx, path.p(), &png_bytes(*len, *seed))
            }
            Op::Create { path, excl } => self.create(path.p(), *excl),
            Op::OpenWrite { path, trunc } => self.open_write(path.p(), *trunc),
            Op::Write { h, off, len, seed } => self
                .handle(*h)
                .map(|fid| self.write(fid, *off, &png_bytes(*len, *seed))),
            Op::Flush { h } => self.handle(*h).map(|fid| self.commit(cx, fid)),
            Op::Fsync { h } => self.handle(*h).map(|fid| self.fsync(cx, fid)),
            Op::Close { h } => self.handle_index(*h).map(|i| self.close_handle(cx, i)),
            Op::Read { path } => self.read(path.p()),
            Op::Truncate { path, len } => self.truncate(cx, path.p(), *len as usize),
            Op::Rename {
                from,
                to,
                noreplace,
            } => self.rename(cx, from.p(), to.p(), *noreplace),
            Op::Mkdir { path } => self.mkdir(cx, path.p()),
            Op::Rmdir { path } => self.rmdir(cx, path.p()),
            Op::Unlink { path } => self.unlink(cx, path.p()),
            Op::Readdir { path, .. } => self.readdir(path.p()),
            Op::Forget { .. } | Op::ForgetAll | Op::Advance | Op::Arm { .. } => Ok(Res::Ok),
            Op::Remount { crash, wb } => Ok(self.remount(cx, *crash, *wb)),
            Op::Remote(r) => Ok(self.remote(r)),
            Op::RunPending => {
                self.run_pending(cx);
                Ok(Res::Ok)
            }
            Op::RaceUnlink { pick } => Ok(self.race_unlink(cx, *pick)),
            Op::RaceFsync {
                pick,
                write,
                len,
                seed,
            } => {
                let data = write.then(|| png_bytes(*len, *seed));
                Ok(self.race_fsync(cx, *pick, data.as_deref()))
            }
            Op::RaceClose { pick, len, seed } => {
                Ok(self.race_close(cx, *pick, &png_bytes(*len, *seed)))
            }
        };
        out.unwrap_or_else(|res| res)
    }

    // ---- server calls ----

    fn push_obj(
        &mut self,
        name: &str,
        parent: Option<Key>,
        kind: Kind,
        bytes: Option<Arc<Vec<u8>>>,
    ) -> Key {
        self.objs.push(SObj {
            id: None,
            created: None,
            name: name.to_owned(),
            parent,
            kind,
            bytes,
            active: true,
        });
        self.objs.len() - 1
    }

    /// A server call that makes an object: made unless it fails before.
    fn s_make(
        &mut self,
        cx: &mut Ctx,
        call: Call,
        name: &str,
        parent: Option<Key>,
        bytes: Option<Arc<Vec<u8>>>,
    ) -> Result<Key, i32> {
        let kind = if bytes.is_some() {
            Kind::File
        } else {
            Kind::Dir
        };
        let step = cx.step(call);
        if parent.is_some_and(|p| !self.objs[p].active) {
            // The service refuses a parent folder that is gone.
            return Err(if step == Step::Ok {
                libc::ENOENT
            } else {
                libc::EIO
            });
        }
        match step {
            Step::Ok => Ok(self.push_obj(name, parent, kind, bytes)),
            Step::Before => Err(libc::EIO),
            Step::After => {
                self.push_obj(name, parent, kind, bytes);
                Err(libc::EIO)
            }
        }
    }

    /// An upload, after the checks the client makes: EINVAL for a type it
    /// cannot tell (`typed`: a rewrite has its stored version's), EIO
    /// when it fails.
    pub fn s_upload(
        &mut self,
        cx: &mut Ctx,
        name: &str,
        parent: Option<Key>,
        bytes: &[u8],
        typed: bool,
    ) -> Result<Key, i32> {
        if !typed && !tellable(name, bytes) {
            return Err(match cx.step(Call::Upload) {
                Step::Ok => libc::EINVAL,
                _ => libc::EIO,
            });
        }
        self.s_make(
            cx,
            Call::Upload,
            name,
            parent,
            Some(Arc::new(bytes.to_vec())),
        )
    }

    pub fn s_mkdir(&mut self, cx: &mut Ctx, name: &str, parent: Option<Key>) -> Result<Key, i32> {
        self.s_make(cx, Call::CreateFolder, name, parent, None)
    }

    pub fn s_rename(&mut self, cx: &mut Ctx, k: Key, name: &str) -> Result<(), ()> {
        let step = cx.step(Call::Rename);
        if step != Step::Before {
            self.objs[k].name = name.to_owned();
        }
        if step == Step::Ok {
            Ok(())
        } else {
            Err(())
        }
    }

    pub fn s_trash(&mut self, cx: &mut Ctx, k: Key) -> Result<(), ()> {
        let step = cx.step(Call::Remove);
        if step != Step::Before {
            self.trash_tree(k);
        }
        if step == Step::Ok {
            Ok(())
        } else {
            Err(())
        }
    }

    /// Trashes an object and, for a folder, all it holds (as the store does).
    pub fn trash_tree(&mut self, k: Key) {
        let mut doomed = vec![k];
        while let Some(d) = doomed.pop() {
            self.objs[d].active = false;
            for (c, o) in self.objs.iter().enumerate() {
                if o.parent == Some(d) && o.active {
                    doomed.push(c);
                }
            }
        }
    }

    // ---- handles and files ----

    fn handle_index(&self, h: usize) -> R<usize> {
        if self.handles.is_empty() {
            return Err(Res::Skip);
        }
        Ok(h % self.handles.len())
    }

    fn handle(&self, h: usize) -> R<Fid> {
        self.handle_index(h).map(|i| self.handles[i])
    }

    pub fn resolve_parent(&self, p: &P) -> R<Dir> {
        self.resolve_dir(p.parent()).map_err(err)
    }

    /// The file at a path (ENOENT, EISDIR).
    fn file_at(&self, p: &P) -> R<Place> {
        let dir = self.resolve_parent(p)?;
        let place = self.lookup(dir, p.leaf()).ok_or(err(libc::ENOENT))?;
        if self.kind(place) == Kind::Dir {
            return Err(err(libc::EISDIR));
        }
        Ok(place)
    }

    /// Opens the file at `p` for writing: one more handle on its [`Fid`].
    pub fn open_file(&mut self, p: Place, trunc: bool) -> Fid {
        let fid = self.fid_at(p).unwrap_or_else(|| {
            let fid = self.bump();
            let state = FileState {
                place: Some(p),
                staged: None,
                dirty: false,
                open: 0,
            };
            self.files.insert(fid, state);
            fid
        });
        self.files.get_mut(&fid).unwrap().open += 1;
        if trunc {
            self.set_content(fid, Vec::new());
            self.files.get_mut(&fid).unwrap().dirty = true;
        }
        fid
    }

    fn create_new(&mut self, dir: Dir, name: &str) -> Fid {
        let l = self.bump();
        let local = Local {
            parent: dir,
            name: name.to_owned(),
            kind: Kind::File,
            bytes: Vec::new(),
            pend: None,
            over: Vec::new(),
        };
        self.locals.insert(l, local);
        let fid = self.open_file(Place::Loc(l), false);
        self.files.get_mut(&fid).unwrap().dirty = true;
        fid
    }

    pub fn fid_content(&self, fid: Fid) -> Vec<u8> {
        let f = &self.files[&fid];
        match f.place {
            Some(p) => self.content(p),
            None => f.staged.clone().unwrap_or_default(),
        }
    }

    fn set_content(&mut self, fid: Fid, bytes: Vec<u8>) {
        let f = self.files.get_mut(&fid).unwrap();
        match f.place {
            Some(Place::Loc(l)) => self.locals.get_mut(&l).unwrap().bytes = bytes,
            _ => f.staged = Some(bytes),
        }
    }

    fn write_file(&mut self, cx: &mut Ctx, path: &P, data: &[u8]) -> R<Res> {
        let dir = self.resolve_parent(path)?;
        let fid = match self.lookup(dir, path.leaf()) {
            Some(p) if self.kind(p) == Kind::Dir => return Err(err(libc::EISDIR)),
            Some(p) => self.open_file(p, true),
            None => self.create_new(dir, path.leaf()),
        };
        self.write(fid, 0, data);
        Ok(self.close(cx, fid))
    }

    fn create(&mut self, path: &P, excl: bool) -> R<Res> {
        if self.handles.len() >= 3 {
            return Err(Res::Skip);
        }
        let dir = self.resolve_parent(path)?;
        let fid = match self.lookup(dir, path.leaf()) {
            Some(_) if excl => return Err(err(libc::EEXIST)),
            Some(p) if self.kind(p) == Kind::Dir => return Err(err(libc::EISDIR)),
            Some(p) => self.open_file(p, true),
            None => self.create_new(dir, path.leaf()),
        };
        self.handles.push(fid);
        Ok(Res::Ok)
    }

    fn open_write(&mut self, path: &P, trunc: bool) -> R<Res> {
        if self.handles.len() >= 3 {
            return Err(Res::Skip);
        }
        let place = self.file_at(path)?;
        let fid = self.open_file(place, trunc);
        self.handles.push(fid);
        Ok(Res::Ok)
    }

    pub fn write(&mut self, fid: Fid, off: u64, data: &[u8]) -> Res {
        if self.files[&fid].place.is_none() {
            return Res::Ok; // unlinked: what it writes is discarded
        }
        let mut bytes = self.fid_content(fid);
        let end = off as usize + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[off as usize..end].copy_from_slice(data);
        self.set_content(fid, bytes);
        self.files.get_mut(&fid).unwrap().dirty = true;
        Res::Ok
    }

    fn read(&self, path: &P) -> R<Res> {
        let place = self.file_at(path)?;
        Ok(Res::Data(self.content(place)))
    }

    fn readdir(&self, path: &P) -> R<Res> {
        let dir = self.resolve_dir(&path.0).map_err(err)?;
        let names = self
            .entries(dir)
            .into_iter()
            .map(|(n, p)| (n, self.kind(p)))
            .collect();
        Ok(Res::Names(names))
    }
}
