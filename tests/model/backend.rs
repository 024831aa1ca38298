//! The real client to the emulator, with failures on demand: an armed fault
//! strikes the next call of its kind once, before the call (nothing happens
//! on the server) or after it (the work is done, the core gets an error).
//! Checks run with `bypass` set, so they never consume a fault.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use mediafs::api::{
    ApiError, ApiResult, ByteRange, DeleteStatus, MediaClient, MediaObject, Segments,
};
use mediafs::fs::Backend;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    FolderTree,
    AllFiles,
    FoldersIn,
    FilesIn,
    HasChildren,
    CreateFolder,
    Upload,
    Rename,
    Remove,
    ReadRange,
}

impl Call {
    pub const ALL: &'static [Call] = &[
        Call::FolderTree,
        Call::AllFiles,
        Call::FoldersIn,
        Call::FilesIn,
        Call::HasChildren,
        Call::CreateFolder,
        Call::Upload,
        Call::Upload,
        Call::Rename,
        Call::Remove,
        Call::Remove,
        Call::ReadRange,
    ];

    /// Calls that change the server: the model counts them step by step.
    pub fn changes_server(self) -> bool {
        matches!(
            self,
            Call::CreateFolder | Call::Upload | Call::Rename | Call::Remove
        )
    }
}

/// A fault that struck: which call, and whether after its work.
pub type Fired = (Call, bool);

/// Holds the upload of one name until the harness lets it go.
struct Pause {
    name: String,
    parent: Option<String>,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

pub struct FaultyBackend {
    inner: MediaClient,
    armed: Mutex<BTreeMap<Call, bool>>,
    fired: Mutex<Vec<Fired>>,
    pub bypass: AtomicBool,
    pause: Mutex<Option<Pause>>,
}

fn injected() -> ApiError {
    ApiError::Server {
        status: 500,
        message: "injected by the model test".into(),
    }
}

impl FaultyBackend {
    pub fn new(inner: MediaClient) -> FaultyBackend {
        FaultyBackend {
            inner,
            armed: Mutex::new(BTreeMap::new()),
            fired: Mutex::new(Vec::new()),
            bypass: AtomicBool::new(false),
            pause: Mutex::new(None),
        }
    }

    pub fn arm(&self, call: Call, after: bool) {
        self.armed.lock().unwrap().insert(call, after);
    }

    pub fn take_fired(&self) -> Vec<Fired> {
        std::mem::take(&mut *self.fired.lock().unwrap())
    }

    pub fn set_bypass(&self, on: bool) {
        self.bypass.store(on, Ordering::SeqCst);
    }

    /// Holds the next upload named `name`: `reached` fires when it is held,
    /// and it goes on once `release` fires (or is dropped).
    pub fn pause_upload(
        &self,
        name: &str,
        parent: Option<String>,
    ) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.pause.lock().unwrap() = Some(Pause {
            name: name.to_owned(),
            parent,
            reached: reached_tx,
            release: release_rx,
        });
        (reached_rx, release_tx)
    }

    pub fn clear_pause(&self) {
        self.pause.lock().unwrap().take();
    }

    fn strike(&self, call: Call) -> Option<bool> {
        if self.bypass.load(Ordering::SeqCst) {
            return None;
        }
        let after = self.armed.lock().unwrap().remove(&call)?;
        self.fired.lock().unwrap().push((call, after));
        Some(after)
    }

    async fn guard<T>(
        &self,
        call: Call,
        work: impl std::future::Future<Output = ApiResult<T>>,
    ) -> ApiResult<T> {
        match self.strike(call) {
            None => work.await,
            Some(false) => Err(injected()),
            Some(true) => {
                let _ = work.await;
                Err(injected())
            }
        }
    }

    pub fn disarm_all(&self) {
        self.armed.lock().unwrap().clear();
    }

    async fn maybe_pause(&self, name: &str, parent: Option<&str>) {
        let pause = {
            let mut slot = self.pause.lock().unwrap();
            match slot.as_ref() {
                Some(p) if p.name == name && p.parent.as_deref() == parent => slot.take(),
                _ => None,
            }
        };
        if let Some(p) = pause {
            let _ = p.reached.send(());
            let _ = p.release.await;
        }
    }
}

impl Backend for FaultyBackend {
    async fn folder_tree(&self) -> ApiResult<Option<Vec<MediaObject>>> {
        self.guard(Call::FolderTree, self.inner.folder_tree()).await
    }

    async fn folders_in(&self, folder: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        self.guard(Call::FoldersIn, self.inner.folders_in(folder))
            .await
    }

    async fn all_files(&self) -> ApiResult<Option<Vec<MediaObject>>> {
        self.guard(Call::AllFiles, self.inner.all_files()).await
    }

    async fn files_in(&self, folder: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        self.guard(Call::FilesIn, self.inner.files_in(folder)).await
    }

    async fn has_children(&self, folder: &str) -> ApiResult<bool> {
        self.guard(Call::HasChildren, self.inner.has_children(folder))
            .await
    }

    async fn create_folder(&self, name: &str, parent: Option<&str>) -> ApiResult<MediaObject> {
        let work = Backend::create_folder(&self.inner, name, parent);
        self.guard(Call::CreateFolder, work).await
    }

    async fn upload(
        &self,
        path: &Path,
        name: &str,
        parent: Option<&str>,
        content_type: Option<&str>,
    ) -> ApiResult<MediaObject> {
        self.maybe_pause(name, parent).await;
        self.guard(
            Call::Upload,
            self.inner.upload(path, name, parent, content_type),
        )
        .await
    }

    async fn rename(&self, id: &str, name: &str) -> ApiResult<()> {
        self.guard(Call::Rename, Backend::rename(&self.inner, id, name))
            .await
    }

    async fn remove(&self, id: &str, status: DeleteStatus) -> ApiResult<()> {
        self.guard(Call::Remove, self.inner.remove(id, status))
            .await
    }

    async fn read_range(&self, url: &str, range: ByteRange) -> ApiResult<Segments> {
        let work = Backend::read_range(&self.inner, url, range);
        self.guard(Call::ReadRange, work).await
    }
}
