//! The thin FUSE adapter: each kernel request becomes a task on the tokio
//! runtime that awaits the core and replies, so that a slow upload never
//! holds up a listing or a read elsewhere in the mount.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio_util::task::TaskTracker;

use crate::fs::{Attr, Errno, FileKind, OpenMode, RenameFlags, Served, SetAttr};

pub struct FuseAdapter<F: Served> {
    fs: Arc<F>,
    runtime: tokio::runtime::Handle,
    /// Requests being served; waited for before the process exits.
    tasks: TaskTracker,
    /// How long the kernel may trust entries and attributes.
    ttl: Duration,
}

impl<F: Served> FuseAdapter<F> {
    pub fn new(fs: Arc<F>, runtime: tokio::runtime::Handle, tasks: TaskTracker) -> Self {
        let ttl = fs.ttl();
        FuseAdapter {
            fs,
            runtime,
            tasks,
            ttl,
        }
    }

    fn spawn<T: std::future::Future<Output = ()> + Send + 'static>(&self, task: T) {
        let _guard = self.runtime.enter();
        self.tasks.spawn(task);
    }
}

fn errno(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.0)
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: match a.kind {
            FileKind::Dir => FileType::Directory,
            FileKind::File => FileType::RegularFile,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: a.blksize,
        flags: 0,
    }
}

/// Names the library holds are UTF-8; others cannot exist there.
fn utf8(name: &OsStr) -> Result<String, fuser::Errno> {
    name.to_str().map(str::to_owned).ok_or(fuser::Errno::EINVAL)
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn open_flags(fs: &FopenFlags, keep_cache: bool) -> FopenFlags {
    if keep_cache {
        *fs | FopenFlags::FOPEN_KEEP_CACHE
    } else {
        *fs
    }
}

impl<F: Served> Filesystem for FuseAdapter<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // O_TRUNC arrives with open, so a rewrite is one upload, not an
        // emptying followed by a rewrite.
        let _ = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Listings carry attributes: `ls -l` needs no lookup per entry.
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        let _ = config.set_max_background(64);
        // Big sequential reads arrive in fewer, larger requests.
        let _ = config.set_max_readahead(1024 * 1024);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        let Ok(name) = utf8(name) else {
            return reply.error(fuser::Errno::ENOENT);
        };
        self.spawn(async move {
            match fs.lookup(parent.0, &name).await {
                Ok(attr) => reply.entry(&ttl, &file_attr(&attr), Generation(0)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(attr) => reply.attr(&self.ttl, &file_attr(&attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        let change = SetAttr {
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
            mode_or_owner: mode.is_some() || uid.is_some() || gid.is_some(),
        };
        self.spawn(async move {
            match fs.setattr(ino.0, change).await {
                Ok(attr) => reply.attr(&ttl, &file_attr(&attr)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        let name = match utf8(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        self.spawn(async move {
            match fs.mkdir(parent.0, &name).await {
                Ok(attr) => reply.entry(&ttl, &file_attr(&attr), Generation(0)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let Ok(name) = utf8(name) else {
            return reply.error(fuser::Errno::ENOENT);
        };
        self.spawn(async move {
            match fs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let Ok(name) = utf8(name) else {
            return reply.error(fuser::Errno::ENOENT);
        };
        self.spawn(async move {
            match fs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let (name, newname) = match (utf8(name), utf8(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return reply.error(fuser::Errno::EINVAL),
        };
        let flags = RenameFlags {
            no_replace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
        };
        self.spawn(async move {
            match fs
                .rename(parent.0, &name, newparent.0, &newname, flags)
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let mode = OpenMode {
            write: flags.acc_mode() != OpenAccMode::O_RDONLY,
            truncate: flags.0 & libc::O_TRUNC != 0,
        };
        self.spawn(async move {
            match fs.open(ino.0, mode).await {
                Ok(o) => {
                    reply.opened(
                        FileHandle(o.fh),
                        open_flags(&FopenFlags::empty(), o.keep_cache),
                    );
                    if !mode.write {
                        fs.prefetch_small_siblings(ino.0).await;
                    }
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        let name = match utf8(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        self.spawn(async move {
            match fs.create(parent.0, &name, flags & libc::O_EXCL != 0).await {
                Ok((attr, o)) => reply.created(
                    &ttl,
                    &file_attr(&attr),
                    Generation(0),
                    FileHandle(o.fh),
                    open_flags(&FopenFlags::empty(), o.keep_cache),
                ),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Read-ahead started from here spawns its fetches on the runtime.
        let ready = {
            let _runtime = self.runtime.enter();
            self.fs.read_ready(fh.0, offset, size)
        };
        if let Some(data) = ready {
            return reply.data(&data);
        }
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let fs = self.fs.clone();
        let data = data.to_vec();
        self.spawn(async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            fs.release(fh.0);
            reply.ok();
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.fsync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.opendir(ino.0).await {
                Ok(o) => {
                    // The kernel caches listings; it keeps them only while unchanged.
                    reply.opened(
                        FileHandle(o.fh),
                        open_flags(&FopenFlags::FOPEN_CACHE_DIR, o.keep_cache),
                    );
                    fs.prefetch_subfolders(ino.0).await;
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.fs.readdir(fh.0, offset.saturating_sub(2) as usize) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let mut next = offset;
        if next == 0 {
            if reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            next = 1;
        }
        if next == 1 {
            // The parent's inode is not needed by the kernel for "..".
            if reply.add(INodeNo(1), 2, FileType::Directory, "..") {
                return reply.ok();
            }
            next = 2;
        }
        for entry in entries {
            next += 1;
            let kind = match entry.kind {
                FileKind::Dir => FileType::Directory,
                FileKind::File => FileType::RegularFile,
            };
            if reply.add(INodeNo(entry.ino), next, kind, &entry.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let dir_attr = match self.fs.getattr(ino.0) {
            Ok(attr) => file_attr(&attr),
            Err(e) => return reply.error(errno(e)),
        };
        // The kernel makes no entries of "." and "..", and counts no lookup.
        for (next, name) in [(1, "."), (2, "..")] {
            if offset < next && reply.add(ino, next, name, &self.ttl, &dir_attr, Generation(0)) {
                return reply.ok();
            }
        }
        let from = offset.saturating_sub(2) as usize;
        let mut next = offset.max(2);
        let listed = self.fs.readdirplus(fh.0, from, |entry, attr| {
            next += 1;
            reply.add(
                INodeNo(entry.ino),
                next,
                &entry.name,
                &self.ttl,
                &file_attr(attr),
                Generation(0),
            )
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bfree, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = match self.fs.getxattr(ino.0, &name.to_string_lossy()) {
            Ok(v) => v,
            Err(e) => return reply.error(errno(e)),
        };
        reply_xattr(reply, size, &value);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = match self.fs.listxattr(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(errno(e)),
        };
        let mut list = Vec::new();
        for n in names {
            list.extend_from_slice(n.as_bytes());
            list.push(0);
        }
        reply_xattr(reply, size, &list);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(fuser::Errno::ENOTSUP);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(fuser::Errno::ENOTSUP);
    }
}

/// A size query (size 0) gets the length; otherwise the bytes, if they fit.
fn reply_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(fuser::Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
