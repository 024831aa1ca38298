//! The operations a case is made of, and how proptest generates them.
//!
//! Paths come from a small pool of names so that operations collide: `d1`,
//! `d2` and `.Trashes` (junk: local only) as folders, `a.png`, `b.png`,
//! `c.jpg` and `.DS_Store` (junk) as files. Whatever an operation picks by
//! index (a handle, an inode, a server object) is taken modulo what exists
//! when it runs.

use std::fmt;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::{NewTree, ValueTree};
use proptest::test_runner::TestRunner;

use crate::backend::Call;
use crate::knobs::Knobs;

/// A path below the mount's root, as components.
#[derive(Clone, PartialEq, Eq)]
pub struct P(pub Vec<String>);

impl P {
    pub fn parent(&self) -> &[String] {
        &self.0[..self.0.len() - 1]
    }

    pub fn leaf(&self) -> &str {
        &self.0[self.0.len() - 1]
    }
}

impl fmt::Debug for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.join("/"))
    }
}

/// Where a path op goes: a path of pool names, an existing entry, or a
/// pool name in an existing directory (picked when the op runs, among what
/// the model shows then, so that most ops meet something).
#[derive(Clone, PartialEq, Eq)]
pub enum Path {
    At(P),
    Entry(usize),
    In(usize, &'static str),
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::At(p) => write!(f, "{p:?}"),
            Path::Entry(i) => write!(f, "entry#{i}"),
            Path::In(i, leaf) => write!(f, "dir#{i}/{leaf}"),
        }
    }
}

impl Path {
    /// The path itself, once made concrete.
    pub fn p(&self) -> &P {
        match self {
            Path::At(p) => p,
            _ => panic!("{self:?} is not concrete: Op::concrete first"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// Another client uploads a file into a folder (picked among the server's).
    Upload {
        dir: usize,
        name: &'static str,
        len: usize,
        seed: u8,
    },
    /// Another client renames an object.
    Rename { pick: usize, name: &'static str },
    /// Another client trashes an object (a folder with all it holds).
    Trash { pick: usize },
    /// The service starts answering `fetchAll` listings with at most `max`
    /// objects (their count still whole), or stops (0): the mount must
    /// list folder by folder, never short.
    Cap { max: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// create or O_TRUNC open, one write, close (flush + release).
    WriteFile {
        path: Path,
        len: usize,
        seed: u8,
    },
    /// `create` with or without O_EXCL: a handle stays open.
    Create {
        path: Path,
        excl: bool,
    },
    /// An existing file opened for writing: a handle stays open.
    OpenWrite {
        path: Path,
        trunc: bool,
    },
    Write {
        h: usize,
        off: u64,
        len: usize,
        seed: u8,
    },
    Flush {
        h: usize,
    },
    Fsync {
        h: usize,
    },
    /// flush, then release.
    Close {
        h: usize,
    },
    /// open for reading, read it all, release.
    Read {
        path: Path,
    },
    /// truncate(2): setattr of the size, no handle.
    Truncate {
        path: Path,
        len: u64,
    },
    Rename {
        from: Path,
        to: Path,
        noreplace: bool,
    },
    Mkdir {
        path: Path,
    },
    Rmdir {
        path: Path,
    },
    Unlink {
        path: Path,
    },
    /// opendir and a listing in pages of `page` entries.
    Readdir {
        path: Path,
        page: usize,
        plus: bool,
    },
    /// The kernel drops every lookup of one inode it holds.
    Forget {
        pick: usize,
    },
    /// `echo 2 > /proc/sys/vm/drop_caches`: every inode without an open handle.
    ForgetAll,
    /// A new core over the same cache dir: after closing everything and
    /// draining (clean), or as the old one was (crash).
    Remount {
        crash: bool,
        wb: bool,
    },
    Remote(Remote),
    /// The clock passes the metadata TTL.
    Advance,
    /// The next backend call of this kind fails, before or after its work.
    Arm {
        call: Call,
        after: bool,
    },
    /// `finish_pending`: the write-back uploads queued, one at a time.
    RunPending,
    /// Unlinks a file while its upload is in flight (a close in sync mode,
    /// `finish_pending` in write-back mode).
    RaceUnlink {
        pick: usize,
    },
    /// Writes a pending file again (O_TRUNC, a write, close) while its
    /// earlier version's upload (`finish_pending`) is in flight.
    RaceClose {
        pick: usize,
        len: usize,
        seed: u8,
    },
    /// fsync of a pending file (written again through the handle or not)
    /// while its earlier version's upload is in flight: it waits for it.
    RaceFsync {
        pick: usize,
        write: bool,
        len: usize,
        seed: u8,
    },
}

/// One generated case: the write-back mode of the first core, and the ops.
#[derive(Clone, Debug)]
pub struct Case {
    pub wb: bool,
    /// Entries per READDIRPLUS call in the walks.
    pub page: usize,
    pub ops: Vec<Op>,
}

const DIRS: &[&str] = &["d1", "d1", "d1", "d2", "d2", ".Trashes"];
const FILE_LEAVES: &[&str] = &[
    "a.png",
    "a.png",
    "a.png",
    "b.png",
    "b.png",
    "c.jpg",
    ".DS_Store",
];
const DIR_LEAVES: &[&str] = &["d1", "d1", "d2", "d2", ".Trashes", "a.png"];
const ANY_LEAVES: &[&str] = &[
    "a.png",
    "a.png",
    "b.png",
    "c.jpg",
    ".DS_Store",
    "d1",
    "d2",
    ".Trashes",
];
/// Another client may give a junk name too: a stored object with one is
/// still the server's (rewrites of it are uploaded).
pub const REMOTE_NAMES: &[&str] = &["a.png", "a.png", "b.png", "c.jpg", "d1", "d2", ".DS_Store"];

fn path_with(leaves: &'static [&'static str]) -> impl Strategy<Value = P> {
    let depth = prop_oneof![6 => Just(0usize), 4 => Just(1usize), 2 => Just(2usize)];
    (depth, select(DIRS), select(DIRS), select(leaves)).prop_map(|(depth, a, b, leaf)| {
        let mut comps = vec![a.to_owned(), b.to_owned()];
        comps.truncate(depth);
        comps.push(leaf.to_owned());
        P(comps)
    })
}

fn pick(leaves: &'static [&'static str]) -> impl Strategy<Value = Path> {
    prop_oneof![
        2 => path_with(leaves).prop_map(Path::At),
        4 => (0..64usize).prop_map(Path::Entry),
        4 => (0..64usize, select(leaves)).prop_map(|(i, leaf)| Path::In(i, leaf)),
    ]
}

fn file_path() -> impl Strategy<Value = Path> {
    pick(FILE_LEAVES)
}

fn dir_path() -> impl Strategy<Value = Path> {
    pick(DIR_LEAVES)
}

fn any_path() -> impl Strategy<Value = Path> {
    pick(ANY_LEAVES)
}

fn len() -> impl Strategy<Value = usize> {
    select(&[0usize, 1, 7, 20, 64][..])
}

fn call() -> impl Strategy<Value = Call> {
    select(Call::ALL)
}

fn remote() -> impl Strategy<Value = Remote> {
    prop_oneof![
        3 => (0..8usize, select(REMOTE_NAMES), len(), any::<u8>())
            .prop_map(|(dir, name, len, seed)| Remote::Upload { dir, name, len, seed }),
        2 => (0..16usize, select(REMOTE_NAMES)).prop_map(|(pick, name)| Remote::Rename { pick, name }),
        2 => (0..16usize).prop_map(|pick| Remote::Trash { pick }),
        1 => (0..3u64).prop_map(|max| Remote::Cap { max }),
    ]
}

/// Write-side operations.
fn writes(k: &Knobs) -> impl Strategy<Value = Op> {
    let h = 0..4usize;
    prop_oneof![
        k.w("write", 14) => (file_path(), len(), any::<u8>())
            .prop_map(|(path, len, seed)| Op::WriteFile { path, len, seed }),
        k.w("handles", 4) => (file_path(), any::<bool>()).prop_map(|(path, excl)| Op::Create { path, excl }),
        k.w("handles", 4) => (file_path(), any::<bool>()).prop_map(|(path, trunc)| Op::OpenWrite { path, trunc }),
        k.w("handles", 8) => (h.clone(), select(&[0u64, 0, 3, 10, 40][..]), len(), any::<u8>())
            .prop_map(|(h, off, len, seed)| Op::Write { h, off, len, seed }),
        k.w("handles", 2) => h.clone().prop_map(|h| Op::Flush { h }),
        k.w("fsync", 3) => h.clone().prop_map(|h| Op::Fsync { h }),
        k.w("handles", 6) => h.prop_map(|h| Op::Close { h }),
        k.w("truncate", 4) => (file_path(), select(&[0u64, 5, 20, 40, 100][..]))
            .prop_map(|(path, len)| Op::Truncate { path, len }),
    ]
}

/// Namespace operations and reads.
fn names(k: &Knobs) -> impl Strategy<Value = Op> {
    prop_oneof![
        k.w("rename", 8) => (any_path(), any_path(), prop::bool::weighted(0.2))
            .prop_map(|(from, to, noreplace)| Op::Rename { from, to, noreplace }),
        k.w("mkdir", 7) => dir_path().prop_map(|path| Op::Mkdir { path }),
        k.w("rmdir", 3) => dir_path().prop_map(|path| Op::Rmdir { path }),
        k.w("unlink", 5) => file_path().prop_map(|path| Op::Unlink { path }),
        k.w("read", 3) => file_path().prop_map(|path| Op::Read { path }),
        k.w("readdir", 2) => (dir_path(), 1..5usize, any::<bool>())
            .prop_map(|(path, page, plus)| Op::Readdir { path, page, plus }),
    ]
}

/// Everything around: the kernel, remounts, other clients, time, faults.
fn around(k: &Knobs) -> impl Strategy<Value = Op> {
    let wb = if k.on("writeback") {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    let crash = if k.on("crash") {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    prop_oneof![
        k.w("forget", 5) => (0..64usize).prop_map(|pick| Op::Forget { pick }),
        k.w("forget", 2) => Just(Op::ForgetAll),
        k.w("remount", 3) => (crash, wb).prop_map(|(crash, wb)| Op::Remount { crash, wb }),
        k.w("remote", 6) => remote().prop_map(Op::Remote),
        k.w("advance", 3) => Just(Op::Advance),
        k.w("faults", 6) => (call(), any::<bool>()).prop_map(|(call, after)| Op::Arm { call, after }),
        k.w("pending", 4) => Just(Op::RunPending),
        k.w("race", 2) => (0..8usize).prop_map(|pick| Op::RaceUnlink { pick }),
        k.w("race", 2) => (0..8usize, len(), any::<u8>())
            .prop_map(|(pick, len, seed)| Op::RaceClose { pick, len, seed }),
        k.w("race", 1) => (0..8usize, any::<bool>(), len(), any::<u8>())
            .prop_map(|(pick, write, len, seed)| Op::RaceFsync { pick, write, len, seed }),
    ]
}

pub fn op(k: &Knobs) -> impl Strategy<Value = Op> {
    let writes_on = ["write", "handles", "fsync", "truncate"];
    let names_on = ["rename", "mkdir", "rmdir", "unlink", "read", "readdir"];
    let around_on = [
        "forget", "remount", "remote", "advance", "faults", "pending", "race",
    ];
    prop_oneof![
        k.any(&writes_on, 5) => writes(k),
        k.any(&names_on, 4) => names(k),
        k.any(&around_on, 3) => around(k),
    ]
}

pub fn case(k: &Knobs) -> impl Strategy<Value = Case> {
    let wb = if k.on("writeback") {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    // Ops shrink to nothing one by one, below the minimum length too.
    let ops = prop::collection::vec(Droppable(op(k)), k.min_ops..=k.max_ops);
    (wb, 1..4usize, ops).prop_map(|(wb, page, ops)| Case {
        wb,
        page,
        ops: ops.into_iter().flatten().collect(),
    })
}

/// An element of a case that shrinks by being dropped (and not otherwise:
/// a smaller op is seldom a simpler case, and shrinking is costly here).
#[derive(Debug)]
struct Droppable<S>(S);

struct DropTree<T> {
    inner: T,
    /// 0: kept, 1: dropped (being tried), 2: kept for good.
    state: u8,
}

impl<S: Strategy> Strategy for Droppable<S> {
    type Tree = DropTree<S::Tree>;
    type Value = Option<S::Value>;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        Ok(DropTree {
            inner: self.0.new_tree(runner)?,
            state: 0,
        })
    }
}

impl<T: ValueTree> ValueTree for DropTree<T> {
    type Value = Option<T::Value>;

    fn current(&self) -> Option<T::Value> {
        (self.state != 1).then(|| self.inner.current())
    }

    fn simplify(&mut self) -> bool {
        if self.state == 0 {
            self.state = 1;
            return true;
        }
        false
    }

    fn complicate(&mut self) -> bool {
        if self.state == 1 {
            self.state = 2;
            return true;
        }
        false
    }
}
