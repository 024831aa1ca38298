//! The filesystem core without a mount: driven call by call over the
//! emulator, and over a backend that fails on demand.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use mediafs::api::{
    ApiError, ApiResult, ByteRange, DeleteStatus, MediaClient, MediaObject, Segments,
};
use mediafs::fs::{Backend, Errno, FsConfig, MediaFs, OpenMode, RenameFlags, SetAttr, ROOT};

/// The real client, with uploads and removals that fail when told to.
struct Flaky {
    inner: MediaClient,
    fail_uploads: AtomicBool,
    fail_removes: AtomicBool,
    /// While held (closed), uploads wait.
    upload_gate: tokio::sync::RwLock<()>,
    /// Uploads under this name fail.
    failing_name: std::sync::Mutex<Option<String>>,
    /// Listings of every file at once fail.
    fail_all_files: AtomicBool,
    /// Listings asked for: of every file at once, and of one folder.
    all_files_calls: AtomicUsize,
    files_in_calls: AtomicUsize,
}

fn injected() -> ApiError {
    ApiError::Server {
        status: 500,
        message: "injected".into(),
    }
}

impl Backend for Flaky {
    async fn folder_tree(&self) -> ApiResult<Option<Vec<MediaObject>>> {
        self.inner.folder_tree().await
    }
    async fn folders_in(&self, folder: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        self.inner.folders_in(folder).await
    }
    async fn all_files(&self) -> ApiResult<Option<Vec<MediaObject>>> {
        self.all_files_calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_all_files.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.all_files().await
    }
    async fn files_in(&self, folder: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        self.files_in_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.files_in(folder).await
    }
    async fn has_children(&self, folder: &str) -> ApiResult<bool> {
        self.inner.has_children(folder).await
    }
    async fn create_folder(&self, name: &str, parent: Option<&str>) -> ApiResult<MediaObject> {
        Backend::create_folder(&self.inner, name, parent).await
    }
    async fn upload(
        &self,
        path: &Path,
        name: &str,
        parent: Option<&str>,
        content_type: Option<&str>,
    ) -> ApiResult<MediaObject> {
        let _open = self.upload_gate.read().await;
        let failing = self.failing_name.lock().unwrap().as_deref() == Some(name);
        if self.fail_uploads.load(Ordering::SeqCst) || failing {
            return Err(injected());
        }
        self.inner.upload(path, name, parent, content_type).await
    }
    async fn rename(&self, id: &str, name: &str) -> ApiResult<()> {
        Backend::rename(&self.inner, id, name).await
    }
    async fn remove(&self, id: &str, status: DeleteStatus) -> ApiResult<()> {
        if self.fail_removes.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.remove(id, status).await
    }
    async fn read_range(&self, url: &str, range: ByteRange) -> ApiResult<Segments> {
        Backend::read_range(&self.inner, url, range).await
    }
}

struct Fixture {
    emu: TestEmulator,
    fs: MediaFs<Flaky>,
    backend: Arc<Flaky>,
    _cache: tempfile::TempDir,
}

async fn fixture(seed: bool, ttl: Duration) -> Fixture {
    let emu = start_emulator(seed, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let fs_and_backend = mount_core(&emu, cache.path(), ttl);
    Fixture {
        emu,
        fs: fs_and_backend.0,
        backend: fs_and_backend.1,
        _cache: cache,
    }
}

/// A core over the emulator through a [`Flaky`] backend, its config
/// adjusted first.
fn core_with(
    emu: &TestEmulator,
    cache: &Path,
    adjust: impl FnOnce(&mut FsConfig),
) -> (MediaFs<Flaky>, Arc<Flaky>) {
    let backend = Arc::new(Flaky {
        inner: emu.client(),
        fail_uploads: AtomicBool::new(false),
        fail_removes: AtomicBool::new(false),
        upload_gate: tokio::sync::RwLock::new(()),
        failing_name: std::sync::Mutex::new(None),
        fail_all_files: AtomicBool::new(false),
        all_files_calls: AtomicUsize::new(0),
        files_in_calls: AtomicUsize::new(0),
    });
    let mut config = FsConfig::new(cache.to_path_buf());
    adjust(&mut config);
    (MediaFs::new(backend.clone(), config).unwrap(), backend)
}

fn mount_core(emu: &TestEmulator, cache: &Path, ttl: Duration) -> (MediaFs<Flaky>, Arc<Flaky>) {
    core_with(emu, cache, |c| c.metadata_ttl = ttl)
}

async fn write_file<B: Backend>(
    fs: &MediaFs<B>,
    dir: u64,
    name: &str,
    bytes: &[u8],
) -> Result<u64, Errno> {
    let (attr, opened) = fs.create(dir, name, false).await?;
    fs.write(opened.fh, 0, bytes).await?;
    let flushed = fs.flush(opened.fh).await;
    fs.release(opened.fh);
    flushed.map(|_| attr.ino)
}

/// The names a directory lists, in order.
async fn names_in<B: Backend>(fs: &MediaFs<B>, dir: u64) -> Vec<String> {
    fs.list_dir(dir)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// Rewrites a file whole (`O_TRUNC`, write, close): the result of its close.
async fn rewrite<B: Backend>(fs: &MediaFs<B>, ino: u64, bytes: &[u8]) -> Result<(), Errno> {
    let mode = OpenMode {
        write: true,
        truncate: true,
    };
    let opened = fs.open(ino, mode).await?;
    fs.write(opened.fh, 0, bytes).await?;
    let flushed = fs.flush(opened.fh).await;
    fs.release(opened.fh);
    flushed
}

async fn read_all<B: Backend>(fs: &MediaFs<B>, ino: u64) -> Vec<u8> {
    let opened = fs.open(ino, OpenMode::default()).await.unwrap();
    let mut out = Vec::new();
    loop {
        let chunk = fs
            .read(opened.fh, out.len() as u64, 128 * 1024)
            .await
            .unwrap();
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk);
    }
    fs.release(opened.fh);
    out
}

/// What the server holds at the root, from the emulator's own store.
async fn server_files(f: &Fixture) -> Vec<MediaObject> {
    server_files_of(&f.emu).await
}

#[tokio::test]
async fn writes_upload_on_flush_and_read_back() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let bytes = png_bytes(3 * 1024 * 1024, 5);
    let ino = write_file(&f.fs, ROOT, "big.png", &bytes).await.unwrap();
    let stored = server_files(&f).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].size, Some(bytes.len() as u64));
    assert_eq!(read_all(&f.fs, ino).await, bytes);
    assert_eq!(f.fs.getattr(ino).unwrap().size, bytes.len() as u64);
    let url = f.fs.getxattr(ino, "user.mediafs.url").unwrap();
    assert_eq!(
        String::from_utf8(url).unwrap(),
        stored[0].url.clone().unwrap()
    );
    assert_eq!(f.fs.getxattr(ino, "user.other"), Err(Errno(libc::ENODATA)));
    for unsupported in ["security.selinux", "system.posix_acl_access"] {
        assert_eq!(
            f.fs.getxattr(ino, unsupported),
            Err(Errno(libc::EOPNOTSUPP)),
            "{unsupported}: ls -l asks once per mount, not once per file"
        );
    }
}

#[tokio::test]
async fn a_failed_upload_reports_eio_and_keeps_the_old_bytes() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let old = png_bytes(100, 1);
    let ino = write_file(&f.fs, ROOT, "a.png", &old).await.unwrap();
    f.backend.fail_uploads.store(true, Ordering::SeqCst);
    assert_eq!(
        rewrite(&f.fs, ino, &png_bytes(200, 2)).await,
        Err(Errno(libc::EIO))
    );
    f.backend.fail_uploads.store(false, Ordering::SeqCst);
    assert_eq!(read_all(&f.fs, ino).await, old);
    let stored = server_files(&f).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].size, Some(old.len() as u64));
}

#[tokio::test]
async fn a_failed_removal_after_a_rewrite_keeps_both() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let ino = write_file(&f.fs, ROOT, "a.png", &png_bytes(100, 1))
        .await
        .unwrap();
    f.backend.fail_removes.store(true, Ordering::SeqCst);
    let new = png_bytes(300, 3);
    assert_eq!(
        rewrite(&f.fs, ino, &new).await,
        Ok(()),
        "the new version is stored"
    );
    assert_eq!(read_all(&f.fs, ino).await, new);
    assert_eq!(
        server_files(&f).await.len(),
        2,
        "nothing was lost: the old one stays"
    );
}

#[tokio::test]
async fn renames_follow_the_library_rules() {
    let f = fixture(true, Duration::from_secs(1)).await;
    let brand = f.fs.lookup(ROOT, "Brand Kit").await.unwrap().ino;
    let team = f.fs.lookup(ROOT, "Team").await.unwrap().ino;
    let plain = RenameFlags::default();
    assert_eq!(
        f.fs.rename(brand, "brand-guidelines.pdf", team, "guide.pdf", plain)
            .await,
        Err(Errno(libc::EXDEV))
    );
    assert_eq!(
        f.fs.rename(
            ROOT,
            "jingle.mp3",
            ROOT,
            "Team",
            RenameFlags {
                no_replace: true,
                exchange: false
            }
        )
        .await,
        Err(Errno(libc::EEXIST))
    );
    assert_eq!(
        f.fs.rename(
            ROOT,
            "jingle.mp3",
            ROOT,
            "Team",
            RenameFlags {
                no_replace: false,
                exchange: true
            }
        )
        .await,
        Err(Errno(libc::EINVAL))
    );
    assert_eq!(
        f.fs.rename(ROOT, "jingle.mp3", ROOT, "Team", plain).await,
        Err(Errno(libc::EISDIR))
    );
    f.fs.rename(ROOT, "jingle.mp3", ROOT, "theme.mp3", plain)
        .await
        .unwrap();
    assert!(f.fs.lookup(ROOT, "theme.mp3").await.is_ok());
    assert_eq!(
        f.fs.lookup(ROOT, "jingle.mp3").await,
        Err(Errno(libc::ENOENT))
    );
}

#[tokio::test]
async fn own_changes_show_at_once_and_listings_are_cached() {
    let f = fixture(true, Duration::from_secs(60)).await;
    f.fs.lookup(ROOT, "Team").await.unwrap();
    let listings = f.emu.route_count("GET /medias/files").await;
    for _ in 0..20 {
        f.fs.lookup(ROOT, "Team").await.unwrap();
        assert_eq!(f.fs.lookup(ROOT, "nope").await, Err(Errno(libc::ENOENT)));
    }
    assert_eq!(
        f.emu.route_count("GET /medias/files").await,
        listings,
        "served from the cache"
    );
    f.fs.mkdir(ROOT, "New Folder").await.unwrap();
    write_file(&f.fs, ROOT, "new.png", &png_bytes(10, 1))
        .await
        .unwrap();
    f.fs.unlink(ROOT, "jingle.mp3").await.unwrap();
    let names = names_in(&f.fs, ROOT).await;
    assert!(
        names.contains(&"New Folder".to_owned()) && names.contains(&"new.png".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"jingle.mp3".to_owned()));
    assert_eq!(
        f.emu.route_count("GET /medias/files").await,
        listings,
        "no listing was needed"
    );
}

#[tokio::test]
async fn junk_and_empty_files_stay_local() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let ino = write_file(&f.fs, ROOT, ".DS_Store", b"finder state")
        .await
        .unwrap();
    assert_eq!(read_all(&f.fs, ino).await, b"finder state");
    let (_, opened) = f.fs.create(ROOT, "empty.png", false).await.unwrap();
    f.fs.flush(opened.fh).await.unwrap();
    f.fs.release(opened.fh);
    assert!(server_files(&f).await.is_empty());
    let names = names_in(&f.fs, ROOT).await;
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn set_times_survive_a_remount() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    {
        let (fs, _) = mount_core(&emu, cache.path(), Duration::from_secs(1));
        let ino = write_file(&fs, ROOT, "a.png", &png_bytes(10, 1))
            .await
            .unwrap();
        fs.setattr(
            ino,
            SetAttr {
                mtime: Some(mtime),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    }
    let (fs, _) = mount_core(&emu, cache.path(), Duration::from_secs(1));
    assert_eq!(fs.lookup(ROOT, "a.png").await.unwrap().mtime, mtime);
}

#[tokio::test]
async fn truncate_without_an_open_file_stores_the_shorter_file() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let bytes = png_bytes(5000, 7);
    let ino = write_file(&f.fs, ROOT, "a.png", &bytes).await.unwrap();
    f.fs.setattr(
        ino,
        SetAttr {
            size: Some(1000),
            ..SetAttr::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(read_all(&f.fs, ino).await, &bytes[..1000]);
    let stored = server_files(&f).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].size, Some(1000));
}

#[tokio::test]
async fn rmdir_checks_the_server() {
    let f = fixture(true, Duration::from_secs(60)).await;
    let campaigns = f.fs.lookup(ROOT, "Campaigns").await.unwrap().ino;
    f.fs.lookup(campaigns, "Spring Launch").await.unwrap();
    let spring = f
        .emu
        .client()
        .find_by_name(mediafs::api::ObjectKind::Folder, None, "Spring Launch")
        .await
        .unwrap();
    assert!(spring.is_empty(), "not at the root");
    let tree = f.emu.client().list_folder_tree().await.unwrap();
    let spring = tree.iter().find(|o| o.name == "Spring Launch").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_file(tmp.path(), "a.png", &png_bytes(10, 1));
    f.emu
        .client()
        .upload_file(&path, "made-elsewhere.png", Some(&spring.id))
        .await
        .unwrap();
    assert_eq!(
        f.fs.rmdir(campaigns, "Spring Launch").await,
        Err(Errno(libc::ENOTEMPTY))
    );
    assert_eq!(
        f.fs.rmdir(ROOT, "Campaigns").await,
        Err(Errno(libc::ENOTEMPTY))
    );
}

#[tokio::test]
async fn listing_a_folder_fetches_its_subfolders_listings_ahead() {
    let f = fixture(true, Duration::from_secs(60)).await;
    let campaigns = f.fs.lookup(ROOT, "Campaigns").await.unwrap().ino;
    f.fs.prefetch_subfolders(campaigns).await;
    let listings = f.emu.route_count("GET /medias/files").await;
    let friday =
        f.fs.lookup(campaigns, "Black Friday 2026")
            .await
            .unwrap()
            .ino;
    f.fs.lookup(friday, "promo.mp4").await.unwrap();
    let spring = f.fs.lookup(campaigns, "Spring Launch").await.unwrap().ino;
    assert!(f.fs.list_dir(spring).await.unwrap().is_empty());
    assert_eq!(
        f.emu.route_count("GET /medias/files").await,
        listings,
        "already fetched"
    );
}

#[tokio::test]
async fn reading_a_small_file_fetches_its_small_siblings_ahead() {
    let f = fixture(false, Duration::from_secs(60)).await;
    let mut inos = Vec::new();
    for i in 0..12u8 {
        inos.push(
            write_file(&f.fs, ROOT, &format!("s{i}.png"), &png_bytes(3000, i))
                .await
                .unwrap(),
        );
    }
    let downloads = || async { f.emu.stats().await["download_requests"].as_u64().unwrap() };
    let before = downloads().await;
    let opened = f.fs.open(inos[0], OpenMode::default()).await.unwrap();
    f.fs.prefetch_small_siblings(inos[0]).await;
    let after_prefetch = downloads().await;
    assert_eq!(
        after_prefetch - before,
        12,
        "every small file, fetched once"
    );
    for (i, ino) in inos.iter().enumerate() {
        assert_eq!(read_all(&f.fs, *ino).await, png_bytes(3000, i as u8));
    }
    f.fs.release(opened.fh);
    assert_eq!(
        downloads().await,
        after_prefetch,
        "the reads were served from the content cache"
    );
}

#[tokio::test]
async fn posix_details_long_names_unlinked_links_and_folder_times() {
    let f = fixture(false, Duration::from_secs(60)).await;
    let long = "x".repeat(256);
    assert_eq!(
        f.fs.lookup(ROOT, &long).await,
        Err(Errno(libc::ENAMETOOLONG))
    );
    assert_eq!(
        f.fs.mkdir(ROOT, &long).await,
        Err(Errno(libc::ENAMETOOLONG))
    );
    assert!(f
        .fs
        .lookup(ROOT, &"y".repeat(255))
        .await
        .is_err_and(|e| e == Errno(libc::ENOENT)));

    let before = f.fs.getattr(ROOT).unwrap().mtime;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let ino = write_file(&f.fs, ROOT, "a.png", &png_bytes(10, 1))
        .await
        .unwrap();
    let after_create = f.fs.getattr(ROOT).unwrap();
    assert!(
        after_create.mtime > before && after_create.ctime > before,
        "creating changes the folder's times"
    );

    let opened = f.fs.open(ino, OpenMode::default()).await.unwrap();
    f.fs.unlink(ROOT, "a.png").await.unwrap();
    assert_eq!(f.fs.getattr(ino).unwrap().nlink, 0, "unlinked while open");
    assert_eq!(
        f.fs.read(opened.fh, 0, 100).await.unwrap(),
        png_bytes(10, 1)[..].to_vec(),
        "still readable"
    );
    f.fs.release(opened.fh);
    assert!(f.fs.getattr(ROOT).unwrap().mtime >= after_create.mtime);
}

fn write_back_core(emu: &TestEmulator, cache: &Path) -> (Arc<MediaFs<Flaky>>, Arc<Flaky>) {
    let (fs, backend) = core_with(emu, cache, |c| c.write_back = true);
    let fs = Arc::new(fs);
    tokio::spawn(fs.clone().run_uploads());
    (fs, backend)
}

#[tokio::test]
async fn write_back_closes_at_once_reads_the_spool_and_fsync_waits() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, backend) = write_back_core(&emu, cache.path());
    let held = backend.upload_gate.write().await;
    let bytes = png_bytes(50_000, 4);
    let ino = write_file(&*fs, ROOT, "later.png", &bytes).await.unwrap();
    assert!(
        emu.client().list_children(None).await.unwrap().is_empty(),
        "close did not wait for the upload"
    );
    assert_eq!(
        read_all(&*fs, ino).await,
        bytes,
        "reads see the spooled bytes"
    );
    let pending = mediafs::fs::spool_status(cache.path()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.name, "later.png");

    let opened = fs.open(ino, OpenMode::default()).await.unwrap();
    let fsync = tokio::spawn({
        let fs = fs.clone();
        async move { fs.fsync(opened.fh).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!fsync.is_finished(), "fsync waits for the upload");
    drop(held);
    assert_eq!(fsync.await.unwrap(), Ok(()));
    fs.release(opened.fh);
    let stored = emu.client().list_children(None).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].size, Some(bytes.len() as u64));
    assert!(mediafs::fs::spool_status(cache.path()).unwrap().is_empty());
    assert_eq!(read_all(&*fs, ino).await, bytes);
}

#[tokio::test]
async fn write_back_keeps_what_fails_in_the_spool_and_says_so() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, backend) = write_back_core(&emu, cache.path());
    backend.fail_uploads.store(true, Ordering::SeqCst);
    let bytes = png_bytes(1000, 2);
    let ino = write_file(&*fs, ROOT, "doomed.png", &bytes).await.unwrap();
    let opened = fs.open(ino, OpenMode::default()).await.unwrap();
    assert_eq!(fs.fsync(opened.fh).await, Err(Errno(libc::EIO)));
    fs.release(opened.fh);
    let status = mediafs::fs::spool_status(cache.path()).unwrap();
    assert_eq!(status.len(), 1);
    assert!(status[0].1.failed.as_deref().unwrap().contains("injected"));
    assert_eq!(read_all(&*fs, ino).await, bytes, "the bytes are still here");
    assert!(emu.client().list_children(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn write_back_overwrites_replace_only_once_stored() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, _) = write_back_core(&emu, cache.path());
    let ino = write_file(&*fs, ROOT, "a.png", &png_bytes(100, 1))
        .await
        .unwrap();
    fs.drain_uploads().await;
    let opened = fs
        .open(
            ino,
            OpenMode {
                write: true,
                truncate: true,
            },
        )
        .await
        .unwrap();
    let new = png_bytes(200, 2);
    fs.write(opened.fh, 0, &new).await.unwrap();
    fs.fsync(opened.fh).await.unwrap();
    fs.release(opened.fh);
    let stored = emu.client().list_children(None).await.unwrap();
    assert_eq!(
        stored.len(),
        1,
        "the old version was removed after the new one landed"
    );
    assert_eq!(stored[0].size, Some(new.len() as u64));
    assert_eq!(read_all(&*fs, ino).await, new);
}

#[tokio::test]
async fn unchanged_listings_may_be_served_from_the_kernels_cache() {
    let f = fixture(true, Duration::from_secs(60)).await;
    let first = f.fs.opendir(ROOT).await.unwrap();
    assert!(!first.keep_cache, "nothing cached yet");
    let again = f.fs.opendir(ROOT).await.unwrap();
    assert!(again.keep_cache, "the same listing");
    f.fs.mkdir(ROOT, "New").await.unwrap();
    assert!(
        !f.fs.opendir(ROOT).await.unwrap().keep_cache,
        "a new entry drops the kernel's copy"
    );
    for o in [first, again] {
        f.fs.releasedir(o.fh);
    }
}

/// Between a rewrite's upload and the old object's removal (or if the
/// removal fails), fresh listings show both; the name must still mean the
/// new one, never the old bytes.
#[tokio::test]
async fn after_a_rewrite_the_name_means_the_new_object_even_before_the_old_goes() {
    let f = fixture(false, Duration::from_millis(200)).await;
    let ino = write_file(&f.fs, ROOT, "a.png", &png_bytes(300, 1))
        .await
        .unwrap();
    f.backend.fail_removes.store(true, Ordering::SeqCst);
    let new = png_bytes(20, 2);
    rewrite(&f.fs, ino, &new).await.unwrap();
    assert_eq!(
        server_files(&f).await.len(),
        2,
        "the old one could not be removed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names = names_in(&f.fs, ROOT).await;
    assert_eq!(names, ["a.png"], "the replaced object stays hidden");
    let attr = f.fs.lookup(ROOT, "a.png").await.unwrap();
    assert_eq!(read_all(&f.fs, attr.ino).await, new);
}

/// A video larger than the disk cache's object limit streams through
/// memory: every byte right, reads across chunk boundaries included, and
/// nothing of it left in the cache dir; smaller objects are kept on disk.
#[tokio::test]
async fn big_videos_stream_through_memory_and_small_files_stay_on_disk() {
    let f = fixture(false, Duration::from_secs(60)).await;
    let video = mp4_bytes(34 * 1024 * 1024, 251);
    let video_ino = write_file(&f.fs, ROOT, "clip.mp4", &video).await.unwrap();
    let image_ino = write_file(&f.fs, ROOT, "a.png", &png_bytes(3 * 1024 * 1024, 7))
        .await
        .unwrap();
    assert_eq!(read_all(&f.fs, video_ino).await, video);
    assert_eq!(
        read_all(&f.fs, image_ino).await,
        png_bytes(3 * 1024 * 1024, 7)
    );

    let opened = f.fs.open(video_ino, OpenMode::default()).await.unwrap();
    let chunk = 1024 * 1024;
    for (offset, len) in [
        (chunk - 100, 300),
        (5 * chunk - 7, 3 * chunk as u32),
        (0, 10),
    ] {
        let got = f.fs.read(opened.fh, offset, len).await.unwrap();
        let end = (offset as usize + len as usize).min(video.len());
        assert_eq!(got, video[offset as usize..end], "at {offset}");
    }
    f.fs.release(opened.fh);

    let id_of = |ino| String::from_utf8(f.fs.getxattr(ino, "user.mediafs.id").unwrap()).unwrap();
    let cached: Vec<String> = std::fs::read_dir(f._cache.path().join("content"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cached.contains(&id_of(image_ino)), "{cached:?}");
    assert!(!cached.contains(&id_of(video_ino)), "{cached:?}");
}

/// The FUSE adapter answers a read on the spot when its bytes are in memory
/// and takes the async path otherwise: a sequential reader gets the same
/// bytes either way, most of its reads are answered on the spot, and a file
/// with unflushed writes always takes the async path.
#[tokio::test]
async fn reads_in_memory_are_answered_at_once_with_the_same_bytes() {
    let f = fixture(false, Duration::from_secs(60)).await;
    let video = mp4_bytes(6 * 1024 * 1024, 253);
    let ino = write_file(&f.fs, ROOT, "reel.mp4", &video).await.unwrap();

    let opened = f.fs.open(ino, OpenMode::default()).await.unwrap();
    assert_eq!(
        f.fs.read_ready(opened.fh, 0, 4096),
        None,
        "nothing fetched yet"
    );
    let (mut out, mut reads, mut ready) = (Vec::new(), 0, 0);
    loop {
        let offset = out.len() as u64;
        let piece = match f.fs.read_ready(opened.fh, offset, 256 * 1024) {
            Some(bytes) => {
                ready += 1;
                bytes
            }
            None => f.fs.read(opened.fh, offset, 256 * 1024).await.unwrap(),
        };
        if piece.is_empty() {
            break;
        }
        reads += 1;
        out.extend_from_slice(&piece);
    }
    f.fs.release(opened.fh);
    assert_eq!(out, video);
    assert!(
        ready * 2 > reads,
        "{ready} of {reads} reads answered at once"
    );

    let opened =
        f.fs.open(
            ino,
            OpenMode {
                write: true,
                truncate: false,
            },
        )
        .await
        .unwrap();
    f.fs.write(opened.fh, 0, b"\0\0\0\x18ftypisom")
        .await
        .unwrap();
    assert_eq!(f.fs.read_ready(opened.fh, 0, 16), None);
    let staged = f.fs.read(opened.fh, 0, 16).await.unwrap();
    assert_eq!(&staged[..12], b"\0\0\0\x18ftypisom");
    f.fs.flush(opened.fh).await.unwrap();
    f.fs.release(opened.fh);
}

/// A core that runs no background uploads (the test says when), and
/// keeps as few idle inodes as it can.
fn write_back_manual(
    emu: &TestEmulator,
    cache: &Path,
    write_back: bool,
) -> (MediaFs<Flaky>, Arc<Flaky>) {
    core_with(emu, cache, |c| {
        c.write_back = write_back;
        c.idle_nodes_kept = 1;
    })
}

/// Every name a directory lists, READDIRPLUS style: `page` entries per
/// call, the next one refused as if the buffer were full.
fn list_in_pages<B: Backend>(fs: &MediaFs<B>, page: usize, opened: u64) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let mut added = 0;
        fs.readdirplus(opened, names.len(), |entry, _| {
            if added == page {
                return true;
            }
            names.push(entry.name.clone());
            added += 1;
            false
        })
        .unwrap();
        if added == 0 {
            return names;
        }
    }
}

#[tokio::test]
async fn readdirplus_in_small_pages_lists_every_entry_even_when_inodes_go() {
    let f = fixture(false, Duration::from_secs(60)).await;
    for i in 0..7u8 {
        write_file(&f.fs, ROOT, &format!("f{i}.png"), &png_bytes(10, i))
            .await
            .unwrap();
    }
    let opened = f.fs.opendir(ROOT).await.unwrap();
    let mut names = Vec::new();
    loop {
        let mut added = Vec::new();
        f.fs.readdirplus(opened.fh, names.len(), |entry, attr| {
            if added.len() == 2 {
                return true;
            }
            added.push((entry.name.clone(), attr.ino));
            false
        })
        .unwrap();
        if added.is_empty() {
            break;
        }
        // The kernel forgets what it was given, as under memory pressure.
        for (name, ino) in added {
            f.fs.forget(ino, 1);
            names.push(name);
        }
    }
    f.fs.releasedir(opened.fh);
    let want: Vec<String> = (0..7).map(|i| format!("f{i}.png")).collect();
    assert_eq!(names, want);
    let again = f.fs.opendir(ROOT).await.unwrap();
    assert_eq!(list_in_pages(&f.fs, 1, again.fh), want);
    f.fs.releasedir(again.fh);
}

#[tokio::test]
async fn spooled_files_and_local_entries_outlive_every_forget() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, _) = write_back_manual(&emu, cache.path(), true);
    let dir = fs.mkdir(ROOT, "fresh").await.unwrap().ino;
    let bytes = png_bytes(500, 3);
    let file = write_file(&fs, dir, "new.png", &bytes).await.unwrap();
    write_file(&fs, dir, ".DS_Store", b"finder").await.unwrap();
    let (_, opened) = fs.create(dir, "empty.png", false).await.unwrap();
    fs.flush(opened.fh).await.unwrap();
    fs.release(opened.fh);
    let empty = fs.lookup(dir, "empty.png").await.unwrap().ino;
    // The kernel forgets everything: the files, then their folder.
    for ino in [file, empty, dir] {
        fs.forget(ino, u64::MAX);
    }
    let dir = fs.lookup(ROOT, "fresh").await.unwrap().ino;
    let mut names = names_in(&fs, dir).await;
    names.sort();
    assert_eq!(names, [".DS_Store", "empty.png", "new.png"]);
    let attr = fs.lookup(dir, "new.png").await.unwrap();
    assert_eq!(read_all(&fs, attr.ino).await, bytes, "read from the spool");
    fs.finish_pending().await;
    let stored = emu.client().list_folder_tree().await.unwrap();
    let folder = stored.iter().find(|o| o.name == "fresh").unwrap();
    let files = emu.client().list_children(Some(&folder.id)).await.unwrap();
    assert_eq!(files.len(), 1, "only the real file is uploaded");
    assert_eq!(files[0].name, "new.png");
    assert_eq!(files[0].size, Some(bytes.len() as u64));
    assert!(mediafs::fs::spool_status(cache.path()).unwrap().is_empty());
}

#[tokio::test]
async fn after_a_crash_the_next_mount_shows_the_spool_and_uploads_it() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let old = png_bytes(100, 1);
    let (fs, _) = write_back_manual(&emu, cache.path(), true);
    let ino = write_file(&fs, ROOT, "a.png", &old).await.unwrap();
    fs.finish_pending().await;
    let new = png_bytes(200, 2);
    rewrite(&fs, ino, &new).await.unwrap();
    let fresh = png_bytes(300, 4);
    write_file(&fs, ROOT, "b.png", &fresh).await.unwrap();
    drop(fs); // a crash: nothing drained

    // The next mount, without write-back, shows both at once.
    let (fs, _) = write_back_manual(&emu, cache.path(), false);
    let a = fs.lookup(ROOT, "a.png").await.unwrap();
    assert_eq!(read_all(&fs, a.ino).await, new);
    let b = fs.lookup(ROOT, "b.png").await.unwrap();
    assert_eq!(read_all(&fs, b.ino).await, fresh);
    fs.finish_pending().await;
    let mut stored: Vec<(String, Option<u64>)> = server_files_of(&emu)
        .await
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("a.png".to_owned(), Some(new.len() as u64)),
            ("b.png".to_owned(), Some(fresh.len() as u64))
        ]
    );
    assert_eq!(read_all(&fs, a.ino).await, new);
}

async fn server_files_of(emu: &TestEmulator) -> Vec<MediaObject> {
    let all = emu.server_objects().await;
    let mut root: Vec<MediaObject> = common::active_objects(&all)
        .into_iter()
        .filter(|o| o.parent_id.is_none())
        .collect();
    // Folders first, as a listing of the root gives them.
    root.sort_by_key(|o| !o.is_folder());
    root
}

#[tokio::test]
async fn a_failed_removal_stays_hidden_after_a_remount_and_is_retried() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, backend) = write_back_manual(&emu, cache.path(), false);
    let ino = write_file(&fs, ROOT, "a.png", &png_bytes(100, 1))
        .await
        .unwrap();
    backend.fail_removes.store(true, Ordering::SeqCst);
    let new = png_bytes(50, 2);
    rewrite(&fs, ino, &new).await.unwrap();
    drop(fs);
    assert_eq!(server_files_of(&emu).await.len(), 2, "both stay");

    let (fs, _) = write_back_manual(&emu, cache.path(), false);
    let names = names_in(&fs, ROOT).await;
    assert_eq!(names, ["a.png"], "the replaced version stays hidden");
    let a = fs.lookup(ROOT, "a.png").await.unwrap();
    assert_eq!(read_all(&fs, a.ino).await, new);
    fs.finish_pending().await;
    let stored = server_files_of(&emu).await;
    assert_eq!(stored.len(), 1, "removed at the next mount");
    assert_eq!(stored[0].size, Some(new.len() as u64));
}

#[tokio::test]
async fn write_back_rm_and_mv_of_spooled_files() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, _) = write_back_manual(&emu, cache.path(), true);
    write_file(&fs, ROOT, "target.png", &png_bytes(10, 1))
        .await
        .unwrap();
    fs.finish_pending().await;
    write_file(&fs, ROOT, "gone.png", &png_bytes(20, 2))
        .await
        .unwrap();
    fs.unlink(ROOT, "gone.png").await.unwrap();
    let moved = png_bytes(30, 3);
    write_file(&fs, ROOT, ".tmp-target.png.x1", &moved)
        .await
        .unwrap();
    fs.rename(
        ROOT,
        ".tmp-target.png.x1",
        ROOT,
        "target.png",
        RenameFlags::default(),
    )
    .await
    .unwrap();
    let names = names_in(&fs, ROOT).await;
    assert_eq!(names, ["target.png"]);
    let target = fs.lookup(ROOT, "target.png").await.unwrap();
    assert_eq!(read_all(&fs, target.ino).await, moved);
    assert_eq!(server_files_of(&emu).await.len(), 1, "nothing uploaded yet");
    fs.finish_pending().await;
    let stored = server_files_of(&emu).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].name, "target.png");
    assert_eq!(stored[0].size, Some(moved.len() as u64));
}

/// The kernel keeps an inode across a rename without looking it up again:
/// a rewrite through it afterwards is stored under the new name.
#[tokio::test]
async fn a_rewrite_after_a_rename_keeps_the_new_name() {
    let f = fixture(false, Duration::from_secs(60)).await;
    let ino = write_file(&f.fs, ROOT, "a.png", &png_bytes(10, 1))
        .await
        .unwrap();
    f.fs.rename(ROOT, "a.png", ROOT, "b.png", RenameFlags::default())
        .await
        .unwrap();
    let new = png_bytes(20, 2);
    rewrite(&f.fs, ino, &new).await.unwrap();
    let stored = server_files(&f).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].name, "b.png");
    assert_eq!(stored[0].size, Some(new.len() as u64));
}

/// A spooled new file, written again through an open handle, renamed while
/// its earlier version uploads: the rename waits for that upload, and the
/// file keeps its new name from then on, with the bytes written last.
#[tokio::test]
async fn a_rename_while_an_earlier_version_uploads_keeps_the_new_name() {
    let emu = start_emulator(false, quiet()).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, backend) = write_back_manual(&emu, cache.path(), true);
    let fs = Arc::new(fs);
    let ino = write_file(&fs, ROOT, "a.png", &png_bytes(10, 1))
        .await
        .unwrap();
    let mode = OpenMode {
        write: true,
        truncate: true,
    };
    let opened = fs.open(ino, mode).await.unwrap();
    let newest = png_bytes(20, 2);
    fs.write(opened.fh, 0, &newest).await.unwrap();

    // Nothing reaches the server under the new name by an upload.
    *backend.failing_name.lock().unwrap() = Some("b.png".into());
    let gate = backend.upload_gate.write().await;
    let uploading = tokio::spawn({
        let fs = fs.clone();
        async move { fs.finish_pending().await }
    });
    // The earlier version's upload is under way, held at the gate.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let renaming = tokio::spawn({
        let fs = fs.clone();
        async move {
            fs.rename(ROOT, "a.png", ROOT, "b.png", RenameFlags::default())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(gate);
    uploading.await.unwrap();
    renaming.await.unwrap().unwrap();
    assert_eq!(names_in(&fs, ROOT).await, ["b.png"]);
    fs.flush(opened.fh).await.unwrap();
    fs.release(opened.fh);
    fs.finish_pending().await;
    assert_eq!(names_in(&fs, ROOT).await, ["b.png"]);
    *backend.failing_name.lock().unwrap() = None;
    let b = fs.lookup(ROOT, "b.png").await.unwrap();
    assert_eq!(read_all(&fs, b.ino).await, newest);
    let stored = server_files_of(&emu).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].name, "b.png");
    assert_eq!(stored[0].size, Some(newest.len() as u64));
}

/// A file waiting for a name, written again with bytes whose upload then
/// fails, leaves no entry (its close said EIO) but loses nothing: its
/// bytes go to `unstored/`. One renamed to a typed name is uploaded by the
/// rename, which reports a failure and keeps the file waiting.
#[tokio::test]
async fn a_file_waiting_for_a_name_is_never_dropped() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let ino = write_file(&f.fs, ROOT, "tmpA", b"plain text")
        .await
        .unwrap();
    assert!(server_files(&f).await.is_empty(), "it waits for a name");
    f.backend.fail_uploads.store(true, Ordering::SeqCst);
    let plain = RenameFlags {
        no_replace: false,
        exchange: false,
    };
    assert_eq!(
        f.fs.rename(ROOT, "tmpA", ROOT, "notes.txt", plain).await,
        Err(Errno(libc::EIO))
    );
    assert_eq!(names_in(&f.fs, ROOT).await, ["tmpA"], "still waiting");
    assert_eq!(read_all(&f.fs, ino).await, b"plain text");

    let png = png_bytes(50, 3);
    assert_eq!(rewrite(&f.fs, ino, &png).await, Err(Errno(libc::EIO)));
    assert!(names_in(&f.fs, ROOT).await.is_empty());
    let kept = f._cache.path().join("unstored/tmpA");
    assert_eq!(std::fs::read(kept).unwrap(), png);

    f.backend.fail_uploads.store(false, Ordering::SeqCst);
    write_file(&f.fs, ROOT, "tmpB", b"more text").await.unwrap();
    f.fs.rename(ROOT, "tmpB", ROOT, "more.txt", plain)
        .await
        .unwrap();
    let stored = server_files(&f).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "more.txt");
    assert_eq!(stored[0].content_type.as_deref(), Some("text/plain"));
    f.fs.drain_uploads().await;
    assert!(!f._cache.path().join("unstored/tmpB").exists());
    assert!(!f._cache.path().join("unstored/more.txt").exists());
}

/// The kernel may send a handle's release after a rename that follows its
/// close (Python's tempfile closed, then `os.replace`d): the rename finds
/// the file still open but flushed, and must store it then, as no flush
/// will come.
#[tokio::test]
async fn a_flushed_file_renamed_before_its_release_is_stored_by_the_rename() {
    let f = fixture(false, Duration::from_secs(1)).await;
    let plain = RenameFlags {
        no_replace: false,
        exchange: false,
    };
    for (temp, bytes) in [("tmp1x_k", &b"plain text"[..]), (".DS_Store", &b"junk"[..])] {
        let (_, opened) = f.fs.create(ROOT, temp, false).await.unwrap();
        f.fs.write(opened.fh, 0, bytes).await.unwrap();
        f.fs.flush(opened.fh).await.unwrap();
        let target = format!("from {temp}.txt");
        f.fs.rename(ROOT, temp, ROOT, &target, plain).await.unwrap();
        f.fs.release(opened.fh);
        let stored = server_files(&f).await;
        assert!(
            stored.iter().any(|o| o.name == target),
            "{target} stored: {stored:?}"
        );
        assert!(names_in(&f.fs, ROOT).await.contains(&target));
    }
}

/// An emulator holding a generated library of `folders` folders of two
/// files each.
async fn generated(folders: usize) -> TestEmulator {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), false, quiet());
    config.generate = Some((folders, 2));
    let running = mediafs::emulator::start(config).await.unwrap();
    TestEmulator { running, dir }
}

/// Walks the core as `find` does: every folder opened, its subfolders
/// fetched ahead as the FUSE adapter does, then listed; the files found.
async fn walk<B: Backend>(fs: &MediaFs<B>) -> usize {
    let (mut dirs, mut files) = (vec![ROOT], 0);
    while let Some(dir) = dirs.pop() {
        fs.prefetch_subfolders(dir).await;
        for entry in fs.list_dir(dir).await.unwrap() {
            match entry.kind {
                mediafs::fs::FileKind::Dir => dirs.push(entry.ino),
                mediafs::fs::FileKind::File => files += 1,
            }
        }
    }
    files
}

/// A listing of every file that fails is not asked for again by each
/// folder of the walk: the walk goes on folder by folder, whole.
#[tokio::test]
async fn a_failing_listing_of_every_file_is_not_asked_again_for_each_folder() {
    let emu = generated(40).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, backend) = mount_core(&emu, cache.path(), Duration::from_secs(60));
    backend.fail_all_files.store(true, Ordering::SeqCst);
    assert_eq!(walk(&fs).await, 80, "every file, folder by folder");
    assert_eq!(backend.all_files_calls.load(Ordering::SeqCst), 1);
}

/// A walk of more folders than the listings kept lists each folder once:
/// the listing of every file does not evict itself.
#[tokio::test]
async fn a_walk_of_more_folders_than_listings_kept_lists_each_once() {
    let emu = generated(40).await;
    let cache = tempfile::tempdir().unwrap();
    let (fs, backend) = core_with(&emu, cache.path(), |c| {
        c.metadata_ttl = Duration::from_secs(60);
        c.listings_kept = 10;
    });
    assert_eq!(walk(&fs).await, 80);
    let per_folder = backend.files_in_calls.load(Ordering::SeqCst);
    assert_eq!(backend.all_files_calls.load(Ordering::SeqCst), 1);
    assert!(per_folder <= 3, "{per_folder} folders listed on their own");
    assert_eq!(walk(&fs).await, 80);
    assert_eq!(
        backend.files_in_calls.load(Ordering::SeqCst),
        per_folder,
        "a second walk within the TTL asks nothing"
    );
}
