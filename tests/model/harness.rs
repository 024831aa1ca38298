//! Drives the core as the kernel would: paths resolved by lookups (each
//! counted, as the kernel counts what it must forget), handles, forgets,
//! remounts over the same cache dir, and another client changing the
//! library behind the mount's back.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mediafs::api::{DeleteStatus, MediaClient};
use mediafs::emulator::Faults;
use mediafs::fs::{Attr, Clock, Errno, FileKind, FsConfig, MediaFs, OpenMode, ROOT};

use crate::backend::FaultyBackend;
use crate::common::{quiet, start_emulator, TestEmulator, LOCATION};
use crate::knobs::Knobs;
use crate::ops::P;
use crate::reference::Model;
use crate::semantics::Res;
use crate::store::Store;

pub const TTL: Duration = Duration::from_secs(10);
pub const ADVANCE: Duration = Duration::from_secs(11);
/// A core call that takes longer than this is taken to hang.
pub const HANG: Duration = Duration::from_secs(5);

pub type Core = MediaFs<FaultyBackend>;

type Pending<'a> = std::pin::Pin<Box<dyn Future<Output = mediafs::api::ApiResult<()>> + Send + 'a>>;

/// Why an operation stopped: an errno it answers, nothing to do, or a failure of the test.
#[derive(Debug)]
pub enum Stop {
    Errno(i32),
    Skip,
    Fail(String),
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Stop {
        Stop::Errno(e.0)
    }
}

pub type H<T> = Result<T, Stop>;

/// Awaits a core call, failing the test if it hangs.
pub async fn t<T>(what: &str, f: impl Future<Output = T>) -> H<T> {
    tokio::time::timeout(HANG, f)
        .await
        .map_err(|_| Stop::Fail(format!("{what} hung for {HANG:?}")))
}

pub fn fail<T>(why: impl Into<String>) -> H<T> {
    Err(Stop::Fail(why.into()))
}

pub struct Harness {
    pub emu: Option<TestEmulator>,
    pub dir: tempfile::TempDir,
    pub backend: Arc<FaultyBackend>,
    core: Option<Arc<Core>>,
    pub clock: Clock,
    pub other: MediaClient,
    pub store: Store,
    /// Kernel lookups per inode, as the kernel would have to forget them.
    pub counts: BTreeMap<u64, u64>,
    /// Open write handles (fh, ino), in the model's order.
    pub handles: Vec<(u64, u64)>,
    pub model: Model,
    pub knobs: Knobs,
    pub trace: Vec<String>,
    pub remote_files: usize,
    /// Entries per READDIRPLUS call in the walks.
    pub page: usize,
}

impl Harness {
    pub async fn start(wb: bool, page: usize, knobs: Knobs) -> Harness {
        let emu = start_emulator(false, quiet()).await;
        // The service's rate limit is off in the emulator: off in the clients too.
        let client = || emu.client_with(|c| c.rate_limit = None);
        let backend = Arc::new(FaultyBackend::new(client()));
        let store = Store::new(emu.base_url(), LOCATION);
        let mut h = Harness {
            other: client(),
            emu: Some(emu),
            dir: tempfile::tempdir().unwrap(),
            backend,
            core: None,
            clock: Clock::manual(),
            store,
            counts: BTreeMap::new(),
            handles: Vec::new(),
            model: Model::new(wb),
            knobs,
            trace: Vec::new(),
            remote_files: 0,
            page,
        };
        h.core = Some(h.new_core(wb));
        h
    }

    fn new_core(&self, wb: bool) -> Arc<Core> {
        let mut config = FsConfig::new(self.dir.path().join("cache"));
        config.metadata_ttl = TTL;
        config.clock = self.clock.clone();
        if self.knobs.on("evict") {
            config.listings_kept = 2;
            config.idle_nodes_kept = 3;
        }
        config.write_back = wb;
        Arc::new(MediaFs::new(self.backend.clone(), config).expect("a core"))
    }

    pub fn fs(&self) -> &Arc<Core> {
        self.core.as_ref().expect("a core")
    }

    pub async fn stop(&mut self) {
        self.core = None;
        if let Some(emu) = self.emu.take() {
            let stopped = tokio::time::timeout(HANG, emu.running.stop()).await;
            if stopped.is_err() {
                eprintln!("model: the emulator did not stop within {HANG:?}");
            }
        }
    }

    /// Drops the core (after a clean close, or as it is) and makes a new one.
    pub async fn remount(&mut self, crash: bool, wb: bool) -> H<Res> {
        if !crash {
            for (fh, _) in std::mem::take(&mut self.handles) {
                let _ = t("flush at unmount", self.fs().flush(fh)).await?;
                self.fs().release(fh);
            }
            t("finish_pending at unmount", self.fs().finish_pending()).await?;
        }
        self.handles.clear();
        self.counts.clear();
        let old = self.core.take().expect("a core");
        if Arc::strong_count(&old) != 1 {
            return fail("the old core is still referenced at remount");
        }
        drop(old);
        self.core = Some(self.new_core(wb));
        Ok(Res::Ok)
    }

    pub fn count(&mut self, ino: u64) {
        *self.counts.entry(ino).or_default() += 1;
    }

    pub async fn lookup(&mut self, dir: u64, name: &str) -> H<Attr> {
        let attr = t("lookup", self.fs().lookup(dir, name)).await??;
        self.count(attr.ino);
        Ok(attr)
    }

    pub async fn lookup_opt(&mut self, dir: u64, name: &str) -> H<Option<Attr>> {
        match self.lookup(dir, name).await {
            Ok(a) => Ok(Some(a)),
            Err(Stop::Errno(libc::ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The kernel's path walk: ENOENT, or ENOTDIR for a file on the way.
    pub async fn resolve_dir<S: AsRef<str>>(&mut self, comps: &[S]) -> H<u64> {
        let mut ino = ROOT;
        for c in comps {
            let attr = self.lookup(ino, c.as_ref()).await?;
            if attr.kind != FileKind::Dir {
                return Err(Stop::Errno(libc::ENOTDIR));
            }
            ino = attr.ino;
        }
        Ok(ino)
    }

    /// The parent dir of a path and the leaf's attributes, if it exists.
    pub async fn resolve(&mut self, p: &P) -> H<(u64, Option<Attr>)> {
        let dir = self.resolve_dir(p.parent()).await?;
        let leaf = self.lookup_opt(dir, p.leaf()).await?;
        Ok((dir, leaf))
    }

    pub fn handle(&self, h: usize) -> H<(usize, u64)> {
        if self.handles.is_empty() {
            return Err(Stop::Skip);
        }
        let i = h % self.handles.len();
        Ok((i, self.handles[i].0))
    }

    pub async fn open(&mut self, ino: u64, write: bool, truncate: bool) -> H<u64> {
        let mode = OpenMode { write, truncate };
        Ok(t("open", self.fs().open(ino, mode)).await??.fh)
    }

    /// Reads a file whole through a read handle.
    pub async fn read_all(&mut self, ino: u64, prefetch: bool) -> H<Vec<u8>> {
        let fh = self.open(ino, false, false).await?;
        if prefetch {
            t(
                "prefetch_small_siblings",
                self.fs().prefetch_small_siblings(ino),
            )
            .await?;
        }
        let mut out = Vec::new();
        let result = loop {
            let offset = out.len() as u64;
            let piece = match self.fs().read_ready(fh, offset, 64 * 1024) {
                Some(bytes) => Ok(bytes),
                None => t("read", self.fs().read(fh, offset, 64 * 1024)).await?,
            };
            match piece {
                Ok(bytes) if bytes.is_empty() => break Ok(out),
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => break Err(Stop::from(e)),
            }
        };
        self.fs().release(fh);
        result
    }

    /// A directory's entries: READDIRPLUS in pages of `page` entries (each
    /// entry taken counts a lookup; the one that does not fit is refused),
    /// or plain readdir.
    pub async fn list(
        &mut self,
        ino: u64,
        page: usize,
        plus: bool,
    ) -> H<Vec<(String, FileKind, u64)>> {
        let opened = t("opendir", self.fs().opendir(ino)).await??;
        t("prefetch_subfolders", self.fs().prefetch_subfolders(ino)).await?;
        let mut out = Vec::new();
        let result = loop {
            let mut got = Vec::new();
            let listed = if plus {
                self.fs().readdirplus(opened.fh, out.len(), |e, _| {
                    if got.len() == page {
                        return true;
                    }
                    got.push((e.name.clone(), e.kind, e.ino));
                    false
                })
            } else {
                self.fs().readdir(opened.fh, out.len()).map(|all| {
                    got.extend(all.into_iter().take(page).map(|e| (e.name, e.kind, e.ino)));
                })
            };
            if let Err(e) = listed {
                break Err(Stop::from(e));
            }
            if got.is_empty() {
                break Ok(());
            }
            if plus {
                for (_, _, ino) in &got {
                    self.count(*ino);
                }
            }
            out.extend(got);
        };
        self.fs().releasedir(opened.fh);
        result.map(|()| out)
    }

    /// Another client's change, then the clock past the TTL.
    pub async fn remote(&mut self, r: &crate::ops::Remote) -> H<Res> {
        use crate::ops::Remote;
        let m = &self.model;
        let id_of = |k: usize| m.objs[k].id.clone().expect("known objects have ids");
        let outcome = match r {
            Remote::Upload {
                dir,
                name,
                len,
                seed,
            } => {
                let folders = m.remote_folders();
                let parent = folders[dir % folders.len()].map(id_of);
                self.remote_files += 1;
                let path = self
                    .dir
                    .path()
                    .join(format!("remote-{}", self.remote_files));
                std::fs::write(&path, crate::common::png_bytes(*len, *seed)).unwrap();
                let other = &self.other;
                Box::pin(async move {
                    other
                        .upload_file(&path, name, parent.as_deref())
                        .await
                        .map(drop)
                }) as Pending<'_>
            }
            Remote::Rename { pick, name } => {
                let targets = m.remote_targets();
                let Some(k) = targets.get(pick % targets.len().max(1)) else {
                    return Err(Stop::Skip);
                };
                let id = id_of(*k);
                let other = &self.other;
                Box::pin(async move { other.rename(&id, name).await }) as Pending<'_>
            }
            Remote::Trash { pick } => {
                let targets = m.remote_targets();
                let Some(k) = targets.get(pick % targets.len().max(1)) else {
                    return Err(Stop::Skip);
                };
                let id = id_of(*k);
                let other = &self.other;
                Box::pin(async move { other.delete_many(&[id], DeleteStatus::Trashed).await })
                    as Pending<'_>
            }
            Remote::Cap { max } => {
                let emu = self.emu.as_ref().expect("an emulator");
                let faults = Faults {
                    fetch_all_max: (*max > 0).then_some(*max),
                    ..quiet()
                };
                Box::pin(async move {
                    emu.set_faults(faults).await;
                    Ok(())
                }) as Pending<'_>
            }
        };
        t("the other client", outcome)
            .await?
            .map_err(|e| Stop::Fail(format!("the other client failed: {e}")))?;
        Ok(Res::Ok)
    }

    /// Forgets every lookup of one inode the kernel holds, any inode.
    pub fn forget(&mut self, pick: usize) -> Res {
        let live: Vec<(u64, u64)> = self.counts.iter().map(|(i, n)| (*i, *n)).collect();
        if let Some((ino, n)) = live.get(pick % live.len().max(1)) {
            self.fs().forget(*ino, *n);
            self.counts.remove(ino);
        }
        Res::Ok
    }

    /// Forgets every inode but those with an open handle.
    pub fn forget_all(&mut self) -> Res {
        let open: Vec<u64> = self.handles.iter().map(|(_, ino)| *ino).collect();
        let all: Vec<(u64, u64)> = self.counts.iter().map(|(i, n)| (*i, *n)).collect();
        for (ino, n) in all {
            if !open.contains(&ino) {
                self.fs().forget(ino, n);
                self.counts.remove(&ino);
            }
        }
        Res::Ok
    }
}
