//! An agency's sub-accounts side by side: the root lists one folder per
//! location the agency's app is installed on, and each folder is that
//! location's whole library, served by a [`MediaFs`] of its own: its own
//! client (so its own token and its own rate limit), its own cache dir
//! under the agency's (`CACHE_DIR/locations/ID`), its own uploads.
//!
//! The root holds no objects of the library. It is read-only: mkdir and
//! create there are `EPERM` (a location is made in HighLevel), rmdir of a
//! location folder is `EPERM` and unlink `EISDIR`, and renaming a location
//! folder or anything into the root is `EPERM`. A rename from one location
//! to another is `EXDEV`, as across filesystems: `mv` copies and removes.
//!
//! The list of locations is trusted for the metadata TTL, as a folder's
//! listing is: a location the app leaves is gone from the root within it,
//! with a log line, and the others go on.

mod inodes;
mod roster;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::served::Served;
use super::{
    api_failure, Attr, Backend, DirEntry, Errno, FileKind, FsConfig, FsResult, FsStats, Ino,
    MediaFs, OpenMode, Opened, RenameFlags, SetAttr, Stale, StaleReport, UploadCounts, ROOT,
};
use crate::api::{AgencyClient, ApiResult, InstalledLocation, MediaClient};
use inodes::{lift, lift_attr, lift_entry, lift_stale, split, Slot, AGENCY_ROOT};
use roster::{Roster, Standing};

/// The folder of an agency mount's cache dir that holds one cache dir per
/// location, by id.
pub const LOCATIONS_DIR: &str = "locations";

/// Where the agency's locations and their clients come from.
pub trait Locations: Send + Sync + 'static {
    type Backend: Backend;
    /// Every location the app is installed on now.
    fn installed(&self) -> impl Future<Output = ApiResult<Vec<InstalledLocation>>> + Send;
    /// A backend for one of them.
    fn backend(&self, location: &str) -> ApiResult<Self::Backend>;
}

impl Locations for AgencyClient {
    type Backend = MediaClient;

    fn installed(&self) -> impl Future<Output = ApiResult<Vec<InstalledLocation>>> + Send {
        self.installed_locations()
    }

    fn backend(&self, location: &str) -> ApiResult<MediaClient> {
        self.location_client(location)
    }
}

/// Libraries opened, as they are handed to the upload runner.
type OpenedLibraries<B> = mpsc::UnboundedReceiver<Arc<MediaFs<B>>>;

/// A location's library, and where it is in the agency mount.
type Routed<B> = (Slot, Arc<MediaFs<B>>, u64);

/// What an inode of the agency mount is.
enum At<B: Backend> {
    Root,
    /// A location's inode: its slot, its library, its own number there.
    Location(Routed<B>),
}

pub struct Agency<L: Locations> {
    locations: L,
    /// Each location's library is configured as this, in its own cache dir.
    config: FsConfig,
    /// The rule: never held across an await, nor while a location's
    /// library is being opened.
    roster: Mutex<Roster<L::Backend>>,
    /// One listing of the locations at a time.
    listing: tokio::sync::Mutex<()>,
    stale: Arc<OnceLock<StaleReport>>,
    /// Libraries opened, for [`Served::run_uploads`] to run their uploads.
    opened: mpsc::UnboundedSender<Arc<MediaFs<L::Backend>>>,
    opened_rx: Mutex<Option<OpenedLibraries<L::Backend>>>,
    /// Each location's cache dir is this mount's alone while it lives.
    locks: Mutex<Vec<crate::cache_lock::CacheLock>>,
    mounted_at: SystemTime,
}

impl<L: Locations> Agency<L> {
    /// An agency mount over `locations`; `config.cache_dir` holds one cache
    /// dir per location. [`Self::start`] lists the locations.
    pub fn new(locations: L, config: FsConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(config.cache_dir.join(LOCATIONS_DIR))?;
        let (opened, opened_rx) = mpsc::unbounded_channel();
        Ok(Agency {
            locations,
            config,
            roster: Mutex::new(Roster::default()),
            listing: tokio::sync::Mutex::new(()),
            stale: Arc::new(OnceLock::new()),
            opened,
            opened_rx: Mutex::new(Some(opened_rx)),
            locks: Mutex::new(Vec::new()),
            mounted_at: SystemTime::now(),
        })
    }

    /// Lists the locations before the mount answers, and says of uploads an
    /// earlier mount left for a location no longer installed where they are.
    /// How many locations were listed, and how many of them are mounted.
    pub async fn start(&self) -> Result<(usize, usize), crate::api::ApiError> {
        let _one_at_a_time = self.listing.lock().await;
        let listed = self.locations.installed().await?;
        self.take_in(&listed);
        self.report_stranded_uploads(&listed);
        Ok((listed.len(), self.folders().len()))
    }

    fn location_cache_dir(&self, id: &str) -> PathBuf {
        self.config.cache_dir.join(LOCATIONS_DIR).join(id)
    }

    fn report_stranded_uploads(&self, listed: &[InstalledLocation]) {
        let Ok(dirs) = std::fs::read_dir(self.config.cache_dir.join(LOCATIONS_DIR)) else {
            return;
        };
        for dir in dirs.flatten() {
            let id = dir.file_name().to_string_lossy().into_owned();
            let pending = super::spool_status(&dir.path()).map_or(0, |r| r.len());
            if pending > 0 && !listed.iter().any(|l| l.id == id) {
                log::warn!(
                    "{pending} uploads for location {id} wait in {}, but the agency's app is no \
                     longer installed there: install it again and remount, or mount that \
                     location alone with --cache-dir {}",
                    dir.path().display(),
                    dir.path().display()
                );
            }
        }
    }

    fn listing_is_fresh(&self) -> bool {
        let roster = self.roster.lock().unwrap();
        roster
            .listed_at
            .is_some_and(|at| self.config.clock.since(at) < self.config.metadata_ttl)
    }

    /// Lists the locations again once the TTL has passed. A listing that
    /// fails leaves the locations as last listed, for another TTL: one
    /// failed call to the agency's endpoint never closes every location.
    async fn refresh(&self) -> FsResult<()> {
        if self.listing_is_fresh() {
            return Ok(());
        }
        let _one_at_a_time = self.listing.lock().await;
        if self.listing_is_fresh() {
            return Ok(());
        }
        match self.locations.installed().await {
            Ok(listed) => {
                self.take_in(&listed);
                Ok(())
            }
            Err(e) => {
                let known = {
                    let mut roster = self.roster.lock().unwrap();
                    roster.listed_at = Some(self.config.clock.now());
                    roster.places().count()
                };
                if known == 0 {
                    return Err(api_failure("listing the agency's locations", &e));
                }
                log::warn!(
                    "listing the agency's locations failed ({e}); the root shows them as last \
                     listed, and asks again in {:?}",
                    self.config.metadata_ttl
                );
                Ok(())
            }
        }
    }

    /// Opens a library for each new location, then updates the roster. A
    /// location whose library cannot be opened is left out, with an error
    /// that says why, and tried again at the next listing.
    fn take_in(&self, listed: &[InstalledLocation]) {
        let (new, first_slot) = {
            let roster = self.roster.lock().unwrap();
            let mut new: Vec<&str> = Vec::new();
            for l in listed {
                if !roster.knows(&l.id) && !new.contains(&l.id.as_str()) {
                    new.push(&l.id);
                }
            }
            (new, roster.places().count() + 1)
        };
        let share = listed.len().max(1);
        // The roster adds new locations in the order listed: slot by slot.
        let mut opened = HashMap::new();
        for id in new {
            match self.open_location(id, first_slot + opened.len(), share) {
                Ok(fs) => {
                    opened.insert(id.to_owned(), fs);
                }
                Err(why) => log::error!(
                    "location {id} is left out of the mount: {why}; it is tried again at the \
                     next listing"
                ),
            }
        }
        let libraries: Vec<_> = opened.values().cloned().collect();
        let listed: Vec<InstalledLocation> = listed
            .iter()
            .filter(|l| opened.contains_key(&l.id) || self.roster.lock().unwrap().knows(&l.id))
            .cloned()
            .collect();
        let changes = {
            let mut roster = self.roster.lock().unwrap();
            let changes = roster.apply(&listed, opened);
            roster.listed_at = Some(self.config.clock.now());
            changes
        };
        // In the roster now: their uploads run, and unmount drains them.
        for fs in libraries {
            let _ = self.opened.send(fs);
        }
        self.report(changes);
    }

    fn report(&self, changes: roster::Changes) {
        for (name, id) in changes.gone {
            let pending = super::spool_status(&self.location_cache_dir(&id)).map_or(0, |r| r.len());
            let uploads = match pending {
                0 => String::new(),
                n => format!(
                    "; {n} uploads for it stay in {}",
                    self.location_cache_dir(&id).display()
                ),
            };
            log::warn!(
                "location {name:?} ({id}) is no longer among those the agency's app is \
                 installed on: its folder is gone from the mount{uploads}"
            );
        }
        if let Some(report) = self.stale.get() {
            for name in changes.stale_folders {
                report(Stale::Entry {
                    parent: AGENCY_ROOT,
                    name,
                });
            }
        }
    }

    /// A library for location `id` in `slot`, in its own locked cache dir,
    /// with its `1/share` of the mount's memory and disk budgets.
    fn open_location(
        &self,
        id: &str,
        slot: Slot,
        share: usize,
    ) -> Result<Arc<MediaFs<L::Backend>>, String> {
        // The id names a directory: one that could climb out is refused.
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(format!(
                "the service gave it the id {id:?}, which is no usable name"
            ));
        }
        let backend = self.locations.backend(id).map_err(|e| e.to_string())?;
        let mut config = self.config.clone();
        config.cache_dir = self.location_cache_dir(id);
        let lock = crate::cache_lock::lock(&config.cache_dir)?;
        let share = share as u64;
        config.content_cache_bytes = (self.config.content_cache_bytes / share).max(64 << 20);
        config.idle_nodes_kept = (self.config.idle_nodes_kept / share as usize).max(1000);
        config.listings_kept = (self.config.listings_kept / share as usize).max(64);
        let fs = MediaFs::new(Arc::new(backend), config).map_err(|e| {
            format!(
                "cannot prepare its cache dir {}: {e}",
                self.location_cache_dir(id).display()
            )
        })?;
        self.locks.lock().unwrap().push(lock);
        let fs = Arc::new(fs);
        let stale = self.stale.clone();
        fs.on_stale(move |s| {
            if let Some(report) = stale.get() {
                report(lift_stale(slot, s));
            }
        });
        Ok(fs)
    }

    fn at(&self, ino: Ino) -> FsResult<At<L::Backend>> {
        match split(ino) {
            (0, local) if local == ROOT => Ok(At::Root),
            (0, _) => Err(Errno(libc::ENOENT)),
            (slot, local) => self.location(slot, local),
        }
    }

    fn location(&self, slot: Slot, local: u64) -> FsResult<At<L::Backend>> {
        let roster = self.roster.lock().unwrap();
        let place = roster.place(slot).ok_or(Errno(libc::ENOENT))?;
        Ok(At::Location((slot, place.fs.clone(), local)))
    }

    /// The library a handle belongs to; handles of slot 0 are the root's.
    fn handle(&self, fh: u64) -> FsResult<Routed<L::Backend>> {
        match self.at(fh)? {
            At::Location(routed) => Ok(routed),
            At::Root => Err(Errno(libc::EBADF)),
        }
    }

    fn root_attr(&self) -> Attr {
        Attr {
            ino: AGENCY_ROOT,
            kind: FileKind::Dir,
            size: 0,
            // Nothing is made or removed here, by anyone.
            perm: 0o555,
            nlink: 2,
            uid: self.config.uid,
            gid: self.config.gid,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            blksize: 128 * 1024,
        }
    }

    async fn lookup_location(&self, name: &str) -> FsResult<Attr> {
        self.refresh().await?;
        let (slot, fs) = {
            let roster = self.roster.lock().unwrap();
            let (slot, place) = roster.installed_at(name).ok_or(Errno(libc::ENOENT))?;
            (slot, place.fs.clone())
        };
        Ok(lift_attr(slot, fs.getattr(ROOT)?))
    }

    async fn open_root(&self) -> FsResult<Opened> {
        self.refresh().await?;
        let mut roster = self.roster.lock().unwrap();
        let entries = roster.root_entries();
        let fh = roster.next_root_fh;
        roster.next_root_fh += 1;
        roster.root_listings.insert(fh, entries);
        // A listing of the root is small: the kernel asks for it anew.
        Ok(Opened {
            fh: lift(0, fh),
            keep_cache: false,
        })
    }

    fn root_listing(&self, fh: u64, from: usize) -> FsResult<Vec<DirEntry>> {
        let roster = self.roster.lock().unwrap();
        let entries = roster.root_listings.get(&fh).ok_or(Errno(libc::EBADF))?;
        Ok(entries.iter().skip(from).cloned().collect())
    }

    /// What the root's xattrs and a location folder's say.
    fn own_xattrs(&self, ino: Ino) -> FsResult<Option<Vec<(&'static str, String)>>> {
        match self.at(ino)? {
            // What `mediafs unmount` asks of a mount's root.
            At::Root => Ok(Some(vec![
                ("user.mediafs.pid", std::process::id().to_string()),
                (
                    "user.mediafs.cache_dir",
                    self.config.cache_dir.display().to_string(),
                ),
            ])),
            At::Location((slot, _, local)) if local == ROOT => {
                let roster = self.roster.lock().unwrap();
                let place = roster.place(slot).ok_or(Errno(libc::ENOENT))?;
                Ok(Some(vec![
                    ("user.mediafs.id", place.id.clone()),
                    ("user.mediafs.name", place.name.clone()),
                ]))
            }
            At::Location(_) => Ok(None),
        }
    }

    fn libraries(&self) -> Vec<Arc<MediaFs<L::Backend>>> {
        let roster = self.roster.lock().unwrap();
        roster.places().map(|(_, p)| p.fs.clone()).collect()
    }

    /// The installed locations, by folder name: (folder, id).
    pub fn folders(&self) -> Vec<(String, String)> {
        let roster = self.roster.lock().unwrap();
        roster
            .places()
            .filter(|(_, p)| p.standing == Standing::Installed)
            .map(|(_, p)| (p.folder.clone(), p.id.clone()))
            .collect()
    }
}

/// Runs `op` on the location an inode is in, its answer's inode lifted;
/// the root gets `at_root`.
macro_rules! in_location {
    ($self:ident, $ino:expr, $at_root:expr, |$fs:ident, $local:ident, $slot:ident| $op:expr) => {
        match $self.at($ino)? {
            At::Root => $at_root,
            At::Location(($slot, $fs, $local)) => $op,
        }
    };
}

impl<L: Locations> Served for Agency<L> {
    fn ttl(&self) -> Duration {
        self.config.metadata_ttl
    }

    async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        in_location!(
            self,
            dir,
            self.lookup_location(name).await,
            |fs, local, slot| { fs.lookup(local, name).await.map(|a| lift_attr(slot, a)) }
        )
    }

    fn forget(&self, ino: Ino, count: u64) {
        // A location folder stays for the mount: only its insides go.
        if let Ok(At::Location((_, fs, local))) = self.at(ino) {
            if local != ROOT {
                fs.forget(local, count);
            }
        }
    }

    fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        in_location!(self, ino, Ok(self.root_attr()), |fs, local, slot| fs
            .getattr(local)
            .map(|a| lift_attr(slot, a)))
    }

    async fn setattr(&self, ino: Ino, change: SetAttr) -> FsResult<Attr> {
        in_location!(self, ino, Err(Errno(libc::EPERM)), |fs, local, slot| {
            fs.setattr(local, change).await.map(|a| lift_attr(slot, a))
        })
    }

    async fn mkdir(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        in_location!(self, dir, Err(Errno(libc::EPERM)), |fs, local, slot| {
            fs.mkdir(local, name).await.map(|a| lift_attr(slot, a))
        })
    }

    async fn unlink(&self, dir: Ino, name: &str) -> FsResult<()> {
        in_location!(
            self,
            dir,
            self.refuse_at_root(name, libc::EISDIR).await,
            |fs, local, _slot| { fs.unlink(local, name).await }
        )
    }

    async fn rmdir(&self, dir: Ino, name: &str) -> FsResult<()> {
        in_location!(
            self,
            dir,
            self.refuse_at_root(name, libc::EPERM).await,
            |fs, local, _slot| { fs.rmdir(local, name).await }
        )
    }

    async fn rename(
        &self,
        dir: Ino,
        name: &str,
        new_dir: Ino,
        new_name: &str,
        flags: RenameFlags,
    ) -> FsResult<()> {
        match (self.at(dir)?, self.at(new_dir)?) {
            (At::Root, _) | (_, At::Root) => Err(Errno(libc::EPERM)),
            (At::Location((a, fs, from)), At::Location((b, _, to))) if a == b => {
                fs.rename(from, name, to, new_name, flags).await
            }
            // Two libraries: a move is a copy and a removal, which `mv` does.
            _ => Err(Errno(libc::EXDEV)),
        }
    }

    async fn open(&self, ino: Ino, mode: OpenMode) -> FsResult<Opened> {
        in_location!(self, ino, Err(Errno(libc::EISDIR)), |fs, local, slot| {
            fs.open(local, mode).await.map(|o| lift_opened(slot, o))
        })
    }

    async fn create(&self, dir: Ino, name: &str, exclusive: bool) -> FsResult<(Attr, Opened)> {
        in_location!(self, dir, Err(Errno(libc::EPERM)), |fs, local, slot| {
            let (attr, opened) = fs.create(local, name, exclusive).await?;
            Ok((lift_attr(slot, attr), lift_opened(slot, opened)))
        })
    }

    fn read_ready(&self, fh: u64, offset: u64, size: u32) -> Option<Bytes> {
        let (_, fs, local) = self.handle(fh).ok()?;
        fs.read_ready(local, offset, size)
    }

    async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let (_, fs, local) = self.handle(fh)?;
        fs.read(local, offset, size).await
    }

    async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (_, fs, local) = self.handle(fh)?;
        fs.write(local, offset, data).await
    }

    async fn flush(&self, fh: u64) -> FsResult<()> {
        let (_, fs, local) = self.handle(fh)?;
        fs.flush(local).await
    }

    async fn fsync(&self, fh: u64) -> FsResult<()> {
        let (_, fs, local) = self.handle(fh)?;
        fs.fsync(local).await
    }

    fn release(&self, fh: u64) {
        if let Ok((_, fs, local)) = self.handle(fh) {
            fs.release(local);
        }
    }

    async fn opendir(&self, ino: Ino) -> FsResult<Opened> {
        in_location!(self, ino, self.open_root().await, |fs, local, slot| {
            fs.opendir(local).await.map(|o| lift_opened(slot, o))
        })
    }

    fn readdir(&self, fh: u64, offset: usize) -> FsResult<Vec<DirEntry>> {
        match split(fh) {
            (0, root_fh) => self.root_listing(root_fh, offset),
            _ => {
                let (slot, fs, local) = self.handle(fh)?;
                let entries = fs.readdir(local, offset)?;
                Ok(entries.into_iter().map(|e| lift_entry(slot, e)).collect())
            }
        }
    }

    fn readdirplus(
        &self,
        fh: u64,
        from: usize,
        mut add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> FsResult<()> {
        if let (0, root_fh) = split(fh) {
            for entry in self.root_listing(root_fh, from)? {
                // A folder listed is never forgotten: no lookup to count.
                let Ok(attr) = self.getattr(entry.ino) else {
                    continue;
                };
                if add(&entry, &attr) {
                    break;
                }
            }
            return Ok(());
        }
        let (slot, fs, local) = self.handle(fh)?;
        fs.readdirplus(local, from, |entry, attr| {
            add(&lift_entry(slot, entry.clone()), &lift_attr(slot, *attr))
        })
    }

    fn releasedir(&self, fh: u64) {
        match split(fh) {
            (0, root_fh) => {
                self.roster.lock().unwrap().root_listings.remove(&root_fh);
            }
            _ => {
                if let Ok((_, fs, local)) = self.handle(fh) {
                    fs.releasedir(local);
                }
            }
        }
    }

    fn statfs(&self) -> FsStats {
        let libraries = self.libraries();
        let mut stats = match libraries.first() {
            Some(fs) => fs.statfs(),
            None => FsStats {
                blocks: 1 << 40,
                bfree: 1 << 39,
                files: 1 << 20,
                ffree: 1 << 20,
                bsize: 4096,
                namelen: super::names::NAME_MAX as u32,
            },
        };
        // Each library counts its inodes and a room of free ones: the
        // rooms are not added up, or `df -i` would fill with them.
        let used: u64 = libraries
            .iter()
            .map(|fs| {
                let s = fs.statfs();
                s.files - s.ffree
            })
            .sum();
        stats.files = used + 1 + stats.ffree;
        stats
    }

    fn getxattr(&self, ino: Ino, name: &str) -> FsResult<Vec<u8>> {
        match self.own_xattrs(ino)? {
            Some(attrs) if name.starts_with("user.") => attrs
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.into_bytes())
                .ok_or(Errno(libc::ENODATA)),
            // Only the `user.` namespace exists (see `MediaFs::getxattr`).
            Some(_) => Err(Errno(libc::EOPNOTSUPP)),
            None => in_location!(self, ino, Err(Errno(libc::ENODATA)), |fs, local, _slot| fs
                .getxattr(local, name)),
        }
    }

    fn listxattr(&self, ino: Ino) -> FsResult<Vec<&'static str>> {
        match self.own_xattrs(ino)? {
            Some(attrs) => Ok(attrs.into_iter().map(|(n, _)| n).collect()),
            None => in_location!(self, ino, Ok(Vec::new()), |fs, local, _slot| fs
                .listxattr(local)),
        }
    }

    async fn prefetch_small_siblings(&self, ino: Ino) {
        if let Ok(At::Location((_, fs, local))) = self.at(ino) {
            fs.prefetch_small_siblings(local).await;
        }
    }

    async fn prefetch_subfolders(&self, dir: Ino) {
        if let Ok(At::Location((_, fs, local))) = self.at(dir) {
            fs.prefetch_subfolders(local).await;
        }
    }

    fn on_stale(&self, report: StaleReport) {
        let _ = self.stale.set(report);
    }

    async fn run_uploads(self: Arc<Self>) {
        let Some(mut opened) = self.opened_rx.lock().unwrap().take() else {
            return;
        };
        // Dropped with this future: the mount's end stops every location's.
        let mut running = tokio::task::JoinSet::new();
        while let Some(fs) = opened.recv().await {
            running.spawn(fs.run_uploads());
        }
    }

    async fn drain_uploads(&self) {
        let draining = self.libraries();
        futures::future::join_all(draining.iter().map(|fs| fs.drain_uploads())).await;
    }

    fn upload_counts(&self) -> UploadCounts {
        self.libraries().iter().map(|fs| fs.upload_counts()).fold(
            UploadCounts::default(),
            |sum, c| UploadCounts {
                stored: sum.stored + c.stored,
                running: sum.running + c.running,
                write_back_pending: sum.write_back_pending + c.write_back_pending,
            },
        )
    }

    fn open_for_writing(&self) -> usize {
        self.libraries()
            .iter()
            .map(|fs| fs.open_for_writing())
            .sum()
    }

    fn cache_dir(&self) -> &Path {
        &self.config.cache_dir
    }
}

impl<L: Locations> Agency<L> {
    /// The refusal of an unlink or rmdir at the root: `errno` for a
    /// location folder, ENOENT for a name that is none.
    async fn refuse_at_root(&self, name: &str, errno: i32) -> FsResult<()> {
        self.lookup_location(name).await?;
        Err(Errno(errno))
    }
}

fn lift_opened(slot: Slot, opened: Opened) -> Opened {
    Opened {
        fh: lift(slot, opened.fh),
        ..opened
    }
}
