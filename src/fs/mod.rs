//! The filesystem core: inodes, metadata caches, handles, write staging and
//! reads, over a [`Backend`]. It knows nothing of FUSE; `crate::fuse` is a
//! thin adapter over it, and tests drive it directly.

pub mod backend;
mod clock;
mod content;
mod dir_ops;
mod file_ops;
pub mod junk;
pub mod names;
mod prefetch;
mod spool;
mod staging;
mod state;
mod times;
mod write_back;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
pub use write_back::spool_status;

pub use backend::Backend;
pub use clock::Clock;
use content::ContentCache;
pub use dir_ops::RenameFlags;
pub use file_ops::{OpenMode, SetAttr};
use state::State;
pub use state::{Ino, ROOT};
use times::TimeStore;

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

type StaleReport = Box<dyn Fn(Stale) + Send + Sync>;

/// The filesystem over one location's library.
pub struct MediaFs<B: Backend> {
    backend: Arc<B>,
    config: FsConfig,
    state: Mutex<State>,
    content: Arc<ContentCache>,
    times: TimeStore,
    staging_dir: PathBuf,
    handles: Mutex<std::collections::HashMap<u64, file_ops::Handle>>,
    next_fh: AtomicU64,
    /// One refresh of the folder tree at a time, and of each folder's files.
    tree_refresh: tokio::sync::Mutex<()>,
    listing_refresh:
        Mutex<std::collections::HashMap<state::FolderKey, Arc<tokio::sync::Mutex<()>>>>,
    mounted_at: SystemTime,
    /// The spool and the background uploads of `--write-back`.
    write_back: Option<write_back::WriteBack>,
    /// Folders whose small files were last fetched ahead, and when.
    siblings_prefetched: Mutex<std::collections::HashMap<Ino, std::time::Instant>>,
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
    /// Prepares the cache dir (0700) and the stores in it.
    pub fn new(backend: Arc<B>, config: FsConfig) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&config.cache_dir)?;
        std::fs::set_permissions(&config.cache_dir, std::fs::Permissions::from_mode(0o700))?;
        let staging_dir = config.cache_dir.join("staging");
        std::fs::create_dir_all(&staging_dir)?;
        let times = TimeStore::open(&config.cache_dir.join("times.sqlite"))
            .map_err(std::io::Error::other)?;
        let content =
            ContentCache::new(config.cache_dir.join("content"), config.content_cache_bytes)?;
        let write_back = if config.write_back {
            Some(write_back::WriteBack::open(
                &config.cache_dir.join("spool"),
            )?)
        } else {
            None
        };
        Ok(MediaFs {
            backend,
            state: Mutex::new(State::new(
                config.metadata_ttl,
                config.clock.clone(),
                config.listings_kept,
                config.idle_nodes_kept,
            )),
            content: Arc::new(content),
            times,
            staging_dir,
            handles: Mutex::new(Default::default()),
            next_fh: AtomicU64::new(1),
            tree_refresh: tokio::sync::Mutex::new(()),
            listing_refresh: Mutex::new(Default::default()),
            mounted_at: SystemTime::now(),
            stale: std::sync::OnceLock::new(),
            siblings_prefetched: Mutex::new(Default::default()),
            write_back,
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
        self.state.lock().unwrap().forget(ino, count);
    }

    pub fn statfs(&self) -> FsStats {
        let nodes = self.state.lock().unwrap().node_count() as u64;
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
