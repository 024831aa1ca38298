//! The filesystem core: the operations on inodes, handles and the
//! library, over a [`Backend`]. It knows nothing of FUSE; `crate::fuse` is
//! a thin adapter over it, and tests drive it directly.
//!
//! Three components, each with its own types, and data flowing one way:
//! the [`namespace`] (inodes, listings, names, entries of this mount only),
//! the [`reader`] (content cache, read-ahead), and the [`uploader`]
//! (staging, the checks and the store-then-replace protocol, the write-back
//! spool). The operations here tie them together.

pub mod agency;
pub mod backend;
mod clock;
mod commit;
mod dir_ops;
mod file_ops;
pub mod junk;
pub mod names;
mod namespace;
mod prefetch;
mod reader;
mod rename;
mod served;
mod times;
mod trash;
mod uploader;
mod write_back;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
pub use write_back::spool_status;

pub use agency::{Agency, Locations};
pub use backend::Backend;
pub use clock::Clock;
pub use dir_ops::RenameFlags;
pub use file_ops::{OpenMode, SetAttr};
use namespace::{FolderKey, Namespace};
pub use namespace::{Ino, ROOT};
use reader::Reader;
pub use served::Served;
use times::TimeStore;
pub use uploader::UploadCounts;
use uploader::{Unnamed, Uploader};

use crate::api::{ApiError, DeleteStatus};

/// An errno, as the core reports failures to whatever serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub fn from_api(e: &ApiError) -> Errno {
        Errno(e.errno())
    }

    pub fn from_io(e: std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

pub type FsResult<T> = Result<T, Errno>;

/// Logs a failed call in words a user can act on and gives its errno.
pub(crate) fn api_failure(what: &str, e: &ApiError) -> Errno {
    match e {
        ApiError::Unauthorized { message } if message.contains("scope") => log::error!(
            "{what}: {}: the token lacks a scope this needs (changes need medias.write, \
             listings and reads medias.readonly); make a token with both, or mount with \
             --read-only to only read",
            e.to_string().trim_end_matches('.')
        ),
        ApiError::Unauthorized { .. } => log::error!(
            "{what}: {}. The token may have expired or been revoked, or it does not reach this \
             location; mount again with a valid token",
            e.to_string().trim_end_matches('.')
        ),
        ApiError::TooLarge { .. } | ApiError::TypeRefused { .. } | ApiError::NotFound { .. } => {
            log::warn!("{what}: {e}")
        }
        _ => log::error!("{what}: {e}"),
    }
    Errno::from_api(e)
}

#[derive(Debug, Clone)]
pub struct FsConfig {
    /// How long listings are trusted before the service is asked again.
    pub metadata_ttl: Duration,
    pub read_only: bool,
    /// What `unlink` and `rmdir` do on the server.
    pub delete_mode: DeleteStatus,
    /// Staging files, cached content and the times store live here.
    pub cache_dir: PathBuf,
    /// Keep `.DS_Store` and the like in memory instead of uploading them.
    pub filter_junk: bool,
    /// Upper bound of the content cache on disk.
    pub content_cache_bytes: u64,
    /// `close` returns once the file is spooled; uploads run in the background.
    pub write_back: bool,
    pub uid: u32,
    pub gid: u32,
    /// What the TTL and this mount's own changes are timed by.
    pub clock: Clock,
    /// Folders whose file listings are kept; older ones are fetched again.
    pub listings_kept: usize,
    /// Inodes nothing references any more are dropped past this many.
    pub idle_nodes_kept: usize,
    /// Write-back uploads running at once.
    pub parallel_uploads: usize,
}

impl FsConfig {
    pub fn new(cache_dir: PathBuf) -> Self {
        FsConfig {
            metadata_ttl: Duration::from_secs(5),
            read_only: false,
            delete_mode: DeleteStatus::Trashed,
            cache_dir,
            filter_junk: true,
            content_cache_bytes: 2 * 1024 * 1024 * 1024,
            write_back: false,
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            clock: Clock::system(),
            listings_kept: 4096,
            idle_nodes_kept: 50_000,
            parallel_uploads: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
}

/// What `stat` shows of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    pub blksize: u32,
}

/// One directory entry, as `readdir` lists it.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: Ino,
    pub name: String,
    pub kind: FileKind,
}

/// What `statfs` answers.
#[derive(Debug, Clone, Copy)]
pub struct FsStats {
    pub blocks: u64,
    pub bfree: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// How an open file may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// The kernel may keep this file's cached pages: the bytes are those of
    /// the same object as last time, and an object's bytes never change.
    pub keep_cache: bool,
}

/// Something the kernel caches that changed outside a request about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// A name in a folder is gone (a new file whose upload failed).
    Entry { parent: Ino, name: String },
    /// An inode's attributes are not what the kernel was last told (a
    /// rewrite that could not be stored leaves the old size).
    Attributes(Ino),
}

/// How stale kernel caches are reported (see [`Served::on_stale`]).
pub type StaleReport = Box<dyn Fn(Stale) + Send + Sync>;

/// The filesystem over one location's library.
pub struct MediaFs<B: Backend> {
    backend: Arc<B>,
    config: FsConfig,
    /// The rule: never held across an await (see [`namespace`]).
    ns: Arc<Mutex<Namespace>>,
    reader: Reader,
    uploader: Arc<Uploader<B>>,
    /// New files waiting for a name that tells their type.
    unnamed: Arc<Unnamed>,
    times: Arc<TimeStore>,
    staging_dir: PathBuf,
    handles: Mutex<std::collections::HashMap<u64, file_ops::Handle>>,
    next_fh: AtomicU64,
    /// One refresh of the folder tree at a time, and of each folder's files.
    tree_refresh: tokio::sync::Mutex<()>,
    /// Held while every file is listed at once (see `namespace::walks`).
    every_file_refresh: tokio::sync::Mutex<()>,
    listing_refresh: Mutex<std::collections::HashMap<FolderKey, Arc<tokio::sync::Mutex<()>>>>,
    mounted_at: SystemTime,
    /// Tells the kernel to drop what it caches that went stale.
    stale: std::sync::OnceLock<StaleReport>,
}

impl<B: Backend> std::fmt::Debug for MediaFs<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaFs")
            .field("config", &self.config)
            .finish()
    }
}

impl<B: Backend> MediaFs<B> {
    /// Prepares the cache dir (0700) and the stores in it, and shows what
    /// an earlier mount left pending (uploaded by [`Self::run_uploads`] or
    /// [`Self::finish_pending`]).
    pub fn new(backend: Arc<B>, config: FsConfig) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&config.cache_dir)?;
        std::fs::set_permissions(&config.cache_dir, std::fs::Permissions::from_mode(0o700))?;
        let staging_dir = config.cache_dir.join("staging");
        // Staging files of an earlier run belong to no file any more.
        let _ = std::fs::remove_dir_all(&staging_dir);
        std::fs::create_dir_all(&staging_dir)?;
        let times = Arc::new(
            TimeStore::open(&config.cache_dir.join("times.sqlite"))
                .map_err(std::io::Error::other)?,
        );
        let reader = Reader::new(
            config.cache_dir.join("content"),
            config.content_cache_bytes,
            config.clock.clone(),
            config.metadata_ttl,
        )?;
        let ns = Arc::new(Mutex::new(Namespace::new(&config)));
        let uploader = Arc::new(Uploader::new(
            backend.clone(),
            ns.clone(),
            times.clone(),
            &config.cache_dir,
            config.delete_mode,
            config.parallel_uploads,
        )?);
        uploader.adopt_leftovers();
        let unnamed = Arc::new(Unnamed::open(&config.cache_dir)?);
        Ok(MediaFs {
            backend,
            ns,
            reader,
            uploader,
            unnamed,
            times,
            staging_dir,
            handles: Mutex::new(Default::default()),
            next_fh: AtomicU64::new(1),
            tree_refresh: tokio::sync::Mutex::new(()),
            every_file_refresh: tokio::sync::Mutex::new(()),
            listing_refresh: Mutex::new(Default::default()),
            mounted_at: SystemTime::now(),
            stale: std::sync::OnceLock::new(),
            config,
        })
    }

    /// Sets how stale kernel caches are reported.
    pub fn on_stale(&self, report: impl Fn(Stale) + Send + Sync + 'static) {
        let _ = self.stale.set(Box::new(report));
    }

    fn report_stale(&self, stale: Stale) {
        if let Some(report) = self.stale.get() {
            report(stale);
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    fn writable(&self) -> FsResult<()> {
        if self.config.read_only {
            Err(Errno(libc::EROFS))
        } else {
            Ok(())
        }
    }

    fn is_junk(&self, name: &str) -> bool {
        self.config.filter_junk && junk::is_junk(name)
    }

    /// The kernel tells how many lookups of `ino` it drops.
    pub fn forget(&self, ino: Ino, count: u64) {
        self.ns.lock().unwrap().forget(ino, count);
    }

    pub fn statfs(&self) -> FsStats {
        let nodes = self.ns.lock().unwrap().node_count() as u64;
        // The library has no fixed capacity: report plenty, so that `df`,
        // `cp` and file managers never refuse a copy for want of room.
        FsStats {
            blocks: 1 << 40,
            bfree: 1 << 39,
            files: nodes + (1 << 20),
            ffree: 1 << 20,
            bsize: 4096,
            namelen: names::NAME_MAX as u32,
        }
    }
}
