//! The reference model: what the server holds, what this mount keeps for
//! itself, and the tree the mount must show, derived from both by the rules
//! of docs/SEMANTICS.md (reimplemented here, never taken from the core).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A server object in the model; an index into [`Model::objs`].
pub type Key = usize;
/// A local entry of this mount (junk, empty new files, what local dirs hold).
pub type LKey = u64;
/// A file this mount has open for writing (the inode, as far as writes go).
pub type Fid = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
}

#[derive(Clone, Debug)]
pub struct SObj {
    /// Learned from the store once the object exists there.
    pub id: Option<String>,
    /// `createdAt` as the store says (RFC 3339 with millis: sorts as time).
    pub created: Option<String>,
    pub name: String,
    pub parent: Option<Key>,
    pub kind: Kind,
    pub bytes: Option<Arc<Vec<u8>>>,
    pub active: bool,
}

/// A directory: a server folder (`None`: the root) or a local one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    Srv(Option<Key>),
    Loc(LKey),
}

/// What a name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Obj(Key),
    Loc(LKey),
}

/// Bytes closed in write-back mode, not uploaded yet.
#[derive(Clone, Debug)]
pub struct Pend {
    /// Spool order: uploads go oldest first.
    pub seq: u64,
    /// In the upload queue: `finish_pending` takes it (once: an upload of
    /// it that fails there is tried again by fsync and at the next mount).
    pub queued: bool,
    pub bytes: Arc<Vec<u8>>,
    /// A rewrite's other objects it replaces besides its own (a spooled new
    /// file renamed over several, adopted after a remount as the rewrite of
    /// the last): hidden until it is stored, then removed.
    pub also: Vec<Key>,
}

#[derive(Clone, Debug)]
pub struct Local {
    pub parent: Dir,
    pub name: String,
    pub kind: Kind,
    /// What reads see (a handle's writes included).
    pub bytes: Vec<u8>,
    /// A new file closed in write-back mode, waiting for its upload.
    pub pend: Option<Pend>,
    /// Objects it was renamed over before it was stored (while open, or
    /// spooled): hidden now, removed once it is stored.
    pub over: Vec<Key>,
}

/// A file open for writing: where it is, and what is written but not stored.
#[derive(Clone, Debug)]
pub struct FileState {
    /// `None` once unlinked: writes go nowhere.
    pub place: Option<Place>,
    /// The bytes a stored file shows while written (local files keep
    /// theirs in [`Local::bytes`]).
    pub staged: Option<Vec<u8>>,
    /// Holds bytes the server does not have.
    pub dirty: bool,
    pub open: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub objs: Vec<SObj>,
    pub locals: BTreeMap<LKey, Local>,
    /// Write-back rewrites of stored objects, not uploaded yet.
    pub pend_over: BTreeMap<Key, Pend>,
    /// Replaced objects whose removal failed: hidden, also by later mounts
    /// (`removals.json`), their removal retried by `finish_pending`.
    pub hidden: BTreeSet<Key>,
    /// Objects replaced by bytes not stored yet (or never: a new file whose
    /// close failed, or that was unlinked): hidden until the next mount.
    pub hidden_now: BTreeSet<Key>,
    pub files: BTreeMap<Fid, FileState>,
    /// The open write handles, in the harness's order.
    pub handles: Vec<Fid>,
    pub wb: bool,
    pub next: u64,
}

/// Junk names, as SEMANTICS.md lists them.
pub fn junk(name: &str) -> bool {
    const EXACT: &[&str] = &[
        ".DS_Store",
        ".Spotlight-V100",
        ".fseventsd",
        ".Trashes",
        ".TemporaryItems",
        ".localized",
        ".VolumeIcon.icns",
        ".apdisk",
        ".com.apple.timemachine.donotpresent",
        "Icon\r",
        "Thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        ".directory",
        ".hidden",
    ];
    EXACT.contains(&name) || name.starts_with("._") || name.starts_with(".Trash-")
}

/// `name` with `suffix` before its extension.
fn with_suffix(name: &str, suffix: &str) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{}{suffix}{}", &name[..i], &name[i..]),
        _ => format!("{name}{suffix}"),
    }
}

/// Entry names of the objects of one folder: among those of one name, the
/// oldest (createdAt, then id) keeps it; each other gets ` ~` and the last 8
/// hex digits of its id before the extension (the whole id if that is taken).
pub fn entry_names(objs: &[(Key, &SObj)]) -> Vec<(String, Key)> {
    let mut groups: BTreeMap<&str, Vec<(Key, &SObj)>> = BTreeMap::new();
    for (k, o) in objs {
        groups.entry(o.name.as_str()).or_default().push((*k, o));
    }
    let mut taken: BTreeSet<String> = groups.keys().map(|n| n.to_string()).collect();
    let mut out = Vec::new();
    let mut losers = Vec::new();
    for (name, mut members) in groups {
        members.sort_by(|a, b| (&a.1.created, &a.1.id).cmp(&(&b.1.created, &b.1.id)));
        out.push((name.to_owned(), members[0].0));
        losers.extend(members.into_iter().skip(1));
    }
    losers.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    for (k, o) in losers {
        let id = o.id.clone().unwrap_or_default();
        let short = with_suffix(&o.name, &format!(" ~{}", &id[id.len().saturating_sub(8)..]));
        let name = if taken.contains(&short) {
            with_suffix(&o.name, &format!(" ~{id}"))
        } else {
            short
        };
        taken.insert(name.clone());
        out.push((name, k));
    }
    out
}

impl Model {
    pub fn new(wb: bool) -> Model {
        Model {
            wb,
            ..Model::default()
        }
    }

    pub fn bump(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn kind(&self, p: Place) -> Kind {
        match p {
            Place::Obj(k) => self.objs[k].kind,
            Place::Loc(l) => self.locals[&l].kind,
        }
    }

    /// The directory a place is, if it is one.
    pub fn dir_of(&self, p: Place) -> Option<Dir> {
        match (p, self.kind(p)) {
            (Place::Obj(k), Kind::Dir) => Some(Dir::Srv(Some(k))),
            (Place::Loc(l), Kind::Dir) => Some(Dir::Loc(l)),
            _ => None,
        }
    }

    /// Whether this mount hides a server object (replaced, its removal
    /// pending or failed).
    pub fn is_hidden(&self, k: Key) -> bool {
        self.hidden.contains(&k) || self.hidden_now.contains(&k)
    }

    /// A directory's entries, as the mount must list them.
    pub fn entries(&self, d: Dir) -> BTreeMap<String, Place> {
        let mut out = BTreeMap::new();
        if let Dir::Srv(folder) = d {
            let members: Vec<(Key, &SObj)> = self
                .objs
                .iter()
                .enumerate()
                .filter(|(k, o)| o.active && o.parent == folder && !self.is_hidden(*k))
                .collect();
            for (name, k) in entry_names(&members) {
                out.insert(name, Place::Obj(k));
            }
        }
        for (l, local) in &self.locals {
            if local.parent == d {
                out.insert(local.name.clone(), Place::Loc(*l));
            }
        }
        out
    }

    pub fn lookup(&self, d: Dir, name: &str) -> Option<Place> {
        self.entries(d).get(name).copied()
    }

    /// The directory at a path: ENOENT or ENOTDIR on the way.
    pub fn resolve_dir<S: AsRef<str>>(&self, comps: &[S]) -> Result<Dir, i32> {
        let mut dir = Dir::Srv(None);
        for c in comps {
            let p = self.lookup(dir, c.as_ref()).ok_or(libc::ENOENT)?;
            dir = self.dir_of(p).ok_or(libc::ENOTDIR)?;
        }
        Ok(dir)
    }

    /// The open file at a place, if any.
    pub fn fid_at(&self, p: Place) -> Option<Fid> {
        self.files
            .iter()
            .find(|(_, f)| f.place == Some(p))
            .map(|(fid, _)| *fid)
    }

    /// What a read of the file at `p` returns.
    pub fn content(&self, p: Place) -> Vec<u8> {
        if let Some(staged) = self
            .fid_at(p)
            .and_then(|fid| self.files[&fid].staged.clone())
        {
            return staged;
        }
        match p {
            Place::Loc(l) => self.locals[&l].bytes.clone(),
            Place::Obj(k) => match self.pend_over.get(&k) {
                Some(pend) => pend.bytes.to_vec(),
                None => self.objs[k].bytes.as_deref().cloned().unwrap_or_default(),
            },
        }
    }

    /// Every path the mount must show, with its kind and (files) bytes.
    pub fn tree(&self) -> BTreeMap<String, (Kind, Option<Vec<u8>>)> {
        let mut out = BTreeMap::new();
        self.tree_into(Dir::Srv(None), "", &mut out);
        out
    }

    fn tree_into(&self, d: Dir, prefix: &str, out: &mut BTreeMap<String, (Kind, Option<Vec<u8>>)>) {
        for (name, p) in self.entries(d) {
            let path = format!("{prefix}{name}");
            match self.dir_of(p) {
                Some(sub) => {
                    out.insert(path.clone(), (Kind::Dir, None));
                    self.tree_into(sub, &format!("{path}/"), out);
                }
                None => {
                    out.insert(path, (Kind::File, Some(self.content(p))));
                }
            }
        }
    }

    /// The path a place shows at, if it shows.
    pub fn path_of(&self, target: Place) -> Option<Vec<String>> {
        fn find(m: &Model, d: Dir, target: Place, at: &mut Vec<String>) -> bool {
            for (name, p) in m.entries(d) {
                at.push(name);
                if p == target {
                    return true;
                }
                if let Some(sub) = m.dir_of(p) {
                    if find(m, sub, target, at) {
                        return true;
                    }
                }
                at.pop();
            }
            false
        }
        let mut at = Vec::new();
        find(self, Dir::Srv(None), target, &mut at).then_some(at)
    }

    /// The directories a place sits in, innermost first.
    pub fn ancestors(&self, p: Place) -> Vec<Dir> {
        let mut out = Vec::new();
        let mut dir = match p {
            Place::Obj(k) => Dir::Srv(self.objs[k].parent),
            Place::Loc(l) => self.locals[&l].parent,
        };
        loop {
            out.push(dir);
            dir = match dir {
                Dir::Srv(None) => return out,
                Dir::Srv(Some(k)) => Dir::Srv(self.objs[k].parent),
                Dir::Loc(l) => self.locals[&l].parent,
            };
        }
    }
}

impl Model {
    /// A path op's target, made concrete against what the model shows.
    pub fn concrete_path(&self, path: &crate::ops::Path, want: Option<Kind>) -> crate::ops::Path {
        use crate::ops::{Path, P};
        let tree = self.tree();
        let split = |p: &String| P(p.split('/').map(str::to_owned).collect());
        match path {
            Path::At(_) => path.clone(),
            Path::Entry(i) => {
                let of_kind: Vec<&String> = tree
                    .iter()
                    .filter(|(_, (k, _))| want.is_none_or(|w| w == *k))
                    .map(|(p, _)| p)
                    .collect();
                let all: Vec<&String> = tree.keys().collect();
                let pool = if of_kind.is_empty() { all } else { of_kind };
                match pool.get(i % pool.len().max(1)) {
                    Some(p) => Path::At(split(p)),
                    None => Path::At(P(vec!["a.png".to_owned()])),
                }
            }
            Path::In(i, leaf) => {
                let mut dirs: Vec<Vec<String>> = vec![Vec::new()];
                dirs.extend(
                    tree.iter()
                        .filter(|(_, (k, _))| *k == Kind::Dir)
                        .map(|(p, _)| split(p).0),
                );
                let mut comps = dirs[i % dirs.len()].clone();
                comps.push(leaf.to_string());
                Path::At(P(comps))
            }
        }
    }

    /// The op with every path made concrete.
    pub fn concrete(&self, op: &crate::ops::Op) -> crate::ops::Op {
        use crate::ops::Op;
        let file = |p| self.concrete_path(p, Some(Kind::File));
        let dir = |p| self.concrete_path(p, Some(Kind::Dir));
        match op.clone() {
            Op::WriteFile { path, len, seed } => Op::WriteFile {
                path: file(&path),
                len,
                seed,
            },
            Op::Create { path, excl } => Op::Create {
                path: file(&path),
                excl,
            },
            Op::OpenWrite { path, trunc } => Op::OpenWrite {
                path: file(&path),
                trunc,
            },
            Op::Read { path } => Op::Read { path: file(&path) },
            Op::Truncate { path, len } => Op::Truncate {
                path: file(&path),
                len,
            },
            Op::Unlink { path } => Op::Unlink { path: file(&path) },
            Op::Mkdir { path } => Op::Mkdir { path: dir(&path) },
            Op::Rmdir { path } => Op::Rmdir { path: dir(&path) },
            Op::Readdir { path, page, plus } => Op::Readdir {
                path: dir(&path),
                page,
                plus,
            },
            Op::Rename {
                from,
                to,
                noreplace,
            } => Op::Rename {
                from: self.concrete_path(&from, None),
                to: self.concrete_path(&to, None),
                noreplace,
            },
            other => other,
        }
    }
}
