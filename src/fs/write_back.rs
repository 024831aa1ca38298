//! `--write-back`: `close` returns once the file is durably in the spool,
//! and uploads run several at a time in the background. `fsync` waits for
//! its file's upload; reads see spooled bytes; an upload that fails for good
//! stays in the spool, is logged, and is listed by `mediafs status`; what a
//! crash leaves in the spool is uploaded at the next mount.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

use super::spool::{Spool, SpoolRecord};
use super::staging::StagingCell;
use super::state::Ino;
use super::{Backend, Errno, FsResult, MediaFs};
use crate::api::limits::max_upload_bytes;
use crate::api::mime;

/// Where a spooled file goes.
struct Target {
    name: String,
    parent: Option<String>,
    replaces: Option<String>,
    owner: Option<Ino>,
}

/// The outcome of one spooled upload: `None` while it is pending.
type Outcome = Option<Result<(), Errno>>;

#[derive(Debug)]
pub(super) struct WriteBack {
    spool: Spool,
    queue: mpsc::UnboundedSender<String>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// The inode each entry belongs to, while this mount knows it.
    owners: Mutex<HashMap<String, Ino>>,
    /// Entries whose upload has begun, which can no longer be superseded.
    started: Mutex<HashSet<String>>,
    outcomes: Mutex<HashMap<String, watch::Sender<Outcome>>>,
    /// One upload at a time per inode, so that rewrites land in order.
    node_locks: Mutex<HashMap<Ino, Arc<tokio::sync::Mutex<()>>>>,
    pending: AtomicUsize,
    idle: Notify,
}

impl WriteBack {
    pub(super) fn open(dir: &std::path::Path) -> std::io::Result<WriteBack> {
        let (queue, receiver) = mpsc::unbounded_channel();
        Ok(WriteBack {
            spool: Spool::open(dir)?,
            queue,
            receiver: Mutex::new(Some(receiver)),
            owners: Mutex::new(HashMap::new()),
            started: Mutex::new(HashSet::new()),
            outcomes: Mutex::new(HashMap::new()),
            node_locks: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    fn enqueue(&self, id: String) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let _ = self.queue.send(id);
    }

    fn node_lock(&self, ino: Ino) -> Arc<tokio::sync::Mutex<()>> {
        self.node_locks
            .lock()
            .unwrap()
            .entry(ino)
            .or_default()
            .clone()
    }
}

impl<B: Backend> MediaFs<B> {
    fn write_back(&self) -> &WriteBack {
        self.write_back.as_ref().expect("write-back mode")
    }

    /// `close` in write-back mode: moves the staged bytes into the spool and
    /// queues their upload, after the checks an upload would make.
    pub(super) async fn spool_node(&self, ino: Ino, cell: Arc<StagingCell>) -> FsResult<()> {
        let wb = self.write_back();
        let mut staged = cell.file.lock().await;
        let Some(plan) = self.upload_plan(ino, &cell)? else {
            return Ok(());
        };
        let content_type = mime::detect_file(staged.path(), &plan.name)
            .map_err(Errno::from_io)?
            .ok_or_else(|| {
                log::warn!("cannot tell the type of {:?} from its bytes or its name; the library refuses it", plan.name);
                Errno(libc::EINVAL)
            })?;
        let size = cell.len();
        if size > max_upload_bytes(&content_type) {
            return Err(Errno(libc::EFBIG));
        }
        let record = SpoolRecord {
            name: plan.name.clone(),
            parent: plan.parent,
            replaces: plan.old.map(|o| o.id),
            size,
            spooled_at: Utc::now(),
            failed: None,
        };
        let fresh = tempfile::Builder::new()
            .prefix("staging-")
            .tempfile_in(&self.staging_dir)
            .map_err(Errno::from_io)?;
        let temp = std::mem::replace(&mut staged.temp, fresh);
        let id = wb.spool.add(temp, &record).map_err(|e| {
            log::error!("cannot spool {:?}: {e}", plan.name);
            Errno::from_io(e)
        })?;
        cell.set_dirty(false);
        let superseded = {
            let mut st = self.state.lock().unwrap();
            let node = st.node_mut(ino).ok_or(Errno(libc::ENOENT))?;
            // The bytes now live in the spool; a later write starts anew from them.
            node.staging = None;
            node.spooled.replace((id.clone(), size))
        };
        wb.owners.lock().unwrap().insert(id.clone(), ino);
        if let Some((older, _)) = superseded {
            if !wb.started.lock().unwrap().contains(&older) {
                wb.spool.remove(&older);
            }
        }
        wb.enqueue(id);
        Ok(())
    }

    /// Runs the background uploads: first what an earlier mount left in the
    /// spool, then each file as it is closed. Returns when the mount ends.
    pub async fn run_uploads(self: Arc<Self>) {
        let Some(wb) = self.write_back.as_ref() else {
            return;
        };
        let Some(mut receiver) = wb.receiver.lock().unwrap().take() else {
            return;
        };
        match wb.spool.records() {
            Ok(records) => {
                let waiting: Vec<_> = records
                    .into_iter()
                    .filter(|(_, r)| r.failed.is_none())
                    .collect();
                if !waiting.is_empty() {
                    log::info!(
                        "uploading {} files left in the write-back spool by an earlier mount",
                        waiting.len()
                    );
                }
                for (id, _) in waiting {
                    wb.enqueue(id);
                }
            }
            Err(e) => log::error!("cannot read the write-back spool: {e}"),
        }
        let slots = Arc::new(Semaphore::new(self.config.parallel_uploads.max(1)));
        while let Some(id) = receiver.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let fs = self.clone();
            tokio::spawn(async move {
                fs.upload_spooled(&id).await;
                drop(slot);
            });
        }
    }

    /// Uploads everything queued, one at a time, in this task: for a core
    /// that runs no background worker. Returns when the queue is empty.
    pub async fn finish_pending(&self) {
        let Some(wb) = self.write_back.as_ref() else {
            return;
        };
        let Some(mut receiver) = wb.receiver.lock().unwrap().take() else {
            return;
        };
        while let Ok(id) = receiver.try_recv() {
            self.upload_spooled(&id).await;
        }
        *wb.receiver.lock().unwrap() = Some(receiver);
    }

    /// Where an entry goes: from its inode while this mount has it, else
    /// from its record. `None` when it no longer goes anywhere.
    fn spooled_target(&self, id: &str, record: &SpoolRecord) -> Option<Target> {
        let owner = self.write_back().owners.lock().unwrap().get(id).copied();
        let Some(ino) = owner else {
            return Some(Target {
                name: record.name.clone(),
                parent: record.parent.clone(),
                replaces: record.replaces.clone(),
                owner: None,
            });
        };
        let st = self.state.lock().unwrap();
        let node = st.node(ino)?;
        if node.unlinked
            || node
                .spooled
                .as_ref()
                .is_none_or(|(current, _)| current != id)
        {
            return None;
        }
        Some(Target {
            name: node
                .object
                .as_ref()
                .map_or(node.name.clone(), |o| o.name.clone()),
            parent: st
                .node(node.parent)
                .and_then(|p| p.folder_key(node.parent))?,
            replaces: node.object.as_ref().map(|o| o.id.clone()),
            owner: Some(ino),
        })
    }

    async fn upload_spooled(&self, id: &str) {
        let wb = self.write_back();
        let owner = wb.owners.lock().unwrap().get(id).copied();
        let lock = owner.map(|ino| wb.node_lock(ino));
        let _in_order = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let outcome = match wb.spool.record(id) {
            None => Ok(()),
            Some(record) => {
                wb.started.lock().unwrap().insert(id.to_owned());
                self.upload_record(id, record).await
            }
        };
        wb.started.lock().unwrap().remove(id);
        wb.owners.lock().unwrap().remove(id);
        let mut outcomes = wb.outcomes.lock().unwrap();
        if let Some(sender) = outcomes.remove(id) {
            let _ = sender.send(Some(outcome));
        }
        drop(outcomes);
        if wb.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            wb.idle.notify_waiters();
        }
    }

    async fn upload_record(&self, id: &str, mut record: SpoolRecord) -> Result<(), Errno> {
        let wb = self.write_back();
        let Some(Target {
            name,
            parent,
            replaces,
            owner,
        }) = self.spooled_target(id, &record)
        else {
            // Unlinked, moved into a folder of this mount only, or rewritten since.
            wb.spool.remove(id);
            return Ok(());
        };
        let new = match self
            .backend
            .upload(&wb.spool.data_path(id), &name, parent.as_deref())
            .await
        {
            Ok(new) => new,
            Err(e) => {
                log::error!(
                    "uploading {name:?} failed: {e}. It stays in the write-back spool ({}); \
                     `mediafs status` lists it, and the next mount tries again",
                    wb.spool.data_path(id).display()
                );
                record.failed = Some(e.to_string());
                if let Err(e) = wb.spool.write_record(id, &record) {
                    log::error!("cannot record the failure of {name:?} in the spool: {e}");
                }
                return Err(Errno::from_api(&e));
            }
        };
        let pending_times = {
            let mut st = self.state.lock().unwrap();
            st.add_object(new.clone());
            if let Some(old) = &replaces {
                st.supersede(old);
            }
            owner.and_then(|ino| {
                let node = st.node_mut(ino)?;
                let unlinked = node.unlinked;
                if node
                    .spooled
                    .as_ref()
                    .is_some_and(|(current, _)| current == id)
                {
                    node.spooled = None;
                }
                let times = node.pending_times.take();
                st.bind_object(ino, new.clone());
                if unlinked {
                    st.remove_object(&new.id);
                }
                (!unlinked).then_some(times).flatten()
            })
        };
        if let Some(times) = pending_times {
            self.times.set(&new.id, times);
        }
        if let Some(old) = replaces {
            match self.backend.remove(&old, self.config.delete_mode).await {
                Ok(()) => {
                    self.state.lock().unwrap().superseded_removed(&old);
                    self.times.forget(&old);
                }
                Err(e) => log::warn!("{name:?} was replaced, but removing its previous version failed ({e}); both are in the library"),
            }
        }
        wb.spool.remove(id);
        Ok(())
    }

    /// Waits until the inode's spooled bytes are on the server.
    pub(super) async fn wait_uploaded(&self, ino: Ino) -> FsResult<()> {
        let Some(wb) = self.write_back.as_ref() else {
            return Ok(());
        };
        loop {
            let mut receiver = {
                let mut outcomes = wb.outcomes.lock().unwrap();
                let spooled = self
                    .state
                    .lock()
                    .unwrap()
                    .node(ino)
                    .and_then(|n| n.spooled.clone());
                let Some((id, _)) = spooled else {
                    return Ok(());
                };
                if wb.spool.record(&id).is_some_and(|r| r.failed.is_some()) {
                    return Err(Errno(libc::EIO));
                }
                outcomes
                    .entry(id)
                    .or_insert_with(|| watch::channel(None).0)
                    .subscribe()
            };
            let outcome = receiver.wait_for(Option::is_some).await.map(|o| *o);
            if let Ok(Some(Err(e))) = outcome {
                return Err(e);
            }
        }
    }

    /// Waits for every queued upload to finish (at unmount).
    pub async fn drain_uploads(&self) {
        let Some(wb) = self.write_back.as_ref() else {
            return;
        };
        loop {
            let idle = wb.idle.notified();
            let pending = wb.pending.load(Ordering::SeqCst);
            if pending == 0 {
                return;
            }
            log::info!("waiting for {pending} write-back uploads");
            idle.await;
        }
    }

    /// The spooled bytes of an inode, if it has any not uploaded yet.
    pub(super) fn spooled_path(&self, ino: Ino) -> Option<std::path::PathBuf> {
        let wb = self.write_back.as_ref()?;
        let st = self.state.lock().unwrap();
        let (id, _) = st.node(ino)?.spooled.as_ref()?;
        Some(wb.spool.data_path(id))
    }
}

/// `mediafs status`: what a cache dir's spool holds.
pub fn spool_status(cache_dir: &std::path::Path) -> std::io::Result<Vec<(String, SpoolRecord)>> {
    let dir = cache_dir.join("spool");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Spool::open(&dir)?.records()
}
