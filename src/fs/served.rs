//! What a mount serves, as the FUSE adapter and the mount's stop see it:
//! one location's library ([`MediaFs`]), or an agency's locations side by
//! side ([`super::Agency`]). Both answer the same operations; neither the
//! adapter nor the stop knows which it has.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{
    Attr, Backend, DirEntry, FsResult, FsStats, Ino, MediaFs, OpenMode, Opened, RenameFlags,
    SetAttr, StaleReport, UploadCounts,
};

/// The operations of a mounted filesystem. Futures are `Send`: the adapter
/// runs each request as a task of its own.
pub trait Served: Send + Sync + 'static {
    /// How long the kernel may trust entries and attributes.
    fn ttl(&self) -> Duration;
    fn lookup(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<Attr>> + Send;
    /// The kernel drops `count` lookups of `ino`.
    fn forget(&self, ino: Ino, count: u64);
    fn getattr(&self, ino: Ino) -> FsResult<Attr>;
    fn setattr(&self, ino: Ino, change: SetAttr) -> impl Future<Output = FsResult<Attr>> + Send;
    fn mkdir(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<Attr>> + Send;
    fn unlink(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<()>> + Send;
    fn rmdir(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<()>> + Send;
    fn rename(
        &self,
        dir: Ino,
        name: &str,
        new_dir: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> impl Future<Output = FsResult<()>> + Send;
    fn open(&self, ino: Ino, mode: OpenMode) -> impl Future<Output = FsResult<Opened>> + Send;
    fn create(
        &self,
        dir: Ino,
        name: &str,
        exclusive: bool,
    ) -> impl Future<Output = FsResult<(Attr, Opened)>> + Send;
    /// Bytes that can be answered without waiting, if all of them can.
    fn read_ready(&self, fh: u64, offset: u64, size: u32) -> Option<Bytes>;
    fn read(&self, fh: u64, offset: u64, size: u32)
        -> impl Future<Output = FsResult<Bytes>> + Send;
    fn write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = FsResult<u32>> + Send;
    fn flush(&self, fh: u64) -> impl Future<Output = FsResult<()>> + Send;
    fn fsync(&self, fh: u64) -> impl Future<Output = FsResult<()>> + Send;
    fn release(&self, fh: u64);
    fn opendir(&self, ino: Ino) -> impl Future<Output = FsResult<Opened>> + Send;
    fn readdir(&self, fh: u64, offset: usize) -> FsResult<Vec<DirEntry>>;
    /// Entries with attributes from `from` on, each counted as a lookup,
    /// until `add` answers that one did not fit.
    fn readdirplus(
        &self,
        fh: u64,
        from: usize,
        add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> FsResult<()>;
    fn releasedir(&self, fh: u64);
    fn statfs(&self) -> FsStats;
    fn getxattr(&self, ino: Ino, name: &str) -> FsResult<Vec<u8>>;
    fn listxattr(&self, ino: Ino) -> FsResult<Vec<&'static str>>;
    /// After a file is opened for reading: fetch its small neighbours.
    fn prefetch_small_siblings(&self, ino: Ino) -> impl Future<Output = ()> + Send;
    /// After a folder is opened: list its subfolders ahead of a walk.
    fn prefetch_subfolders(&self, dir: Ino) -> impl Future<Output = ()> + Send;
    /// Sets how stale kernel caches are reported.
    fn on_stale(&self, report: StaleReport);

    /// Runs the background uploads until the mount ends.
    fn run_uploads(self: Arc<Self>) -> impl Future<Output = ()> + Send;
    /// At unmount: waits for every queued upload.
    fn drain_uploads(&self) -> impl Future<Output = ()> + Send;
    fn upload_counts(&self) -> UploadCounts;
    fn open_for_writing(&self) -> usize;
    /// Where the mount keeps its cache, spool and stop summary.
    fn cache_dir(&self) -> &Path;
}

impl<B: Backend> Served for MediaFs<B> {
    fn ttl(&self) -> Duration {
        self.config.metadata_ttl
    }

    fn lookup(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<Attr>> + Send {
        MediaFs::lookup(self, dir, name)
    }

    fn forget(&self, ino: Ino, count: u64) {
        MediaFs::forget(self, ino, count)
    }

    fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        MediaFs::getattr(self, ino)
    }

    fn setattr(&self, ino: Ino, change: SetAttr) -> impl Future<Output = FsResult<Attr>> + Send {
        MediaFs::setattr(self, ino, change)
    }

    fn mkdir(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<Attr>> + Send {
        MediaFs::mkdir(self, dir, name)
    }

    fn unlink(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<()>> + Send {
        MediaFs::unlink(self, dir, name)
    }

    fn rmdir(&self, dir: Ino, name: &str) -> impl Future<Output = FsResult<()>> + Send {
        MediaFs::rmdir(self, dir, name)
    }

    fn rename(
        &self,
        dir: Ino,
        name: &str,
        new_dir: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> impl Future<Output = FsResult<()>> + Send {
        MediaFs::rename(self, dir, name, new_dir, new_name, flags)
    }

    fn open(&self, ino: Ino, mode: OpenMode) -> impl Future<Output = FsResult<Opened>> + Send {
        MediaFs::open(self, ino, mode)
    }

    fn create(
        &self,
        dir: Ino,
        name: &str,
        exclusive: bool,
    ) -> impl Future<Output = FsResult<(Attr, Opened)>> + Send {
        MediaFs::create(self, dir, name, exclusive)
    }

    fn read_ready(&self, fh: u64, offset: u64, size: u32) -> Option<Bytes> {
        MediaFs::read_ready(self, fh, offset, size)
    }

    fn read(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> impl Future<Output = FsResult<Bytes>> + Send {
        MediaFs::read(self, fh, offset, size)
    }

    fn write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = FsResult<u32>> + Send {
        MediaFs::write(self, fh, offset, data)
    }

    fn flush(&self, fh: u64) -> impl Future<Output = FsResult<()>> + Send {
        MediaFs::flush(self, fh)
    }

    fn fsync(&self, fh: u64) -> impl Future<Output = FsResult<()>> + Send {
        MediaFs::fsync(self, fh)
    }

    fn release(&self, fh: u64) {
        MediaFs::release(self, fh)
    }

    fn opendir(&self, ino: Ino) -> impl Future<Output = FsResult<Opened>> + Send {
        MediaFs::opendir(self, ino)
    }

    fn readdir(&self, fh: u64, offset: usize) -> FsResult<Vec<DirEntry>> {
        MediaFs::readdir(self, fh, offset)
    }

    fn readdirplus(
        &self,
        fh: u64,
        from: usize,
        add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> FsResult<()> {
        MediaFs::readdirplus(self, fh, from, add)
    }

    fn releasedir(&self, fh: u64) {
        MediaFs::releasedir(self, fh)
    }

    fn statfs(&self) -> FsStats {
        MediaFs::statfs(self)
    }

    fn getxattr(&self, ino: Ino, name: &str) -> FsResult<Vec<u8>> {
        MediaFs::getxattr(self, ino, name)
    }

    fn listxattr(&self, ino: Ino) -> FsResult<Vec<&'static str>> {
        MediaFs::listxattr(self, ino)
    }

    fn prefetch_small_siblings(&self, ino: Ino) -> impl Future<Output = ()> + Send {
        MediaFs::prefetch_small_siblings(self, ino)
    }

    fn prefetch_subfolders(&self, dir: Ino) -> impl Future<Output = ()> + Send {
        MediaFs::prefetch_subfolders(self, dir)
    }

    fn on_stale(&self, report: StaleReport) {
        MediaFs::on_stale(self, report)
    }

    fn run_uploads(self: Arc<Self>) -> impl Future<Output = ()> + Send {
        MediaFs::run_uploads(self)
    }

    fn drain_uploads(&self) -> impl Future<Output = ()> + Send {
        MediaFs::drain_uploads(self)
    }

    fn upload_counts(&self) -> UploadCounts {
        MediaFs::upload_counts(self)
    }

    fn open_for_writing(&self) -> usize {
        MediaFs::open_for_writing(self)
    }

    fn cache_dir(&self) -> &Path {
        &self.config.cache_dir
    }
}
