//! Pending work, run in the background or on demand: the write-back
//! spool's uploads (what this mount closed with `--write-back`, and what an
//! earlier mount left), and removals of replaced versions that failed.

use std::sync::Arc;

use super::uploader::{Spool, SpoolRecord, UploadCounts};
use super::{Backend, MediaFs};

impl<B: Backend> MediaFs<B> {
    /// Runs the background uploads until the mount ends.
    pub async fn run_uploads(self: Arc<Self>) {
        self.uploader.clone().run().await;
    }

    /// Uploads everything queued, one at a time, in this task, and tries
    /// failed removals again: for a core that runs no background worker.
    pub async fn finish_pending(&self) {
        self.uploader.finish_pending().await;
    }

    /// At unmount: waits for every queued upload to finish, and keeps the
    /// bytes of new files that never got a name the library can store.
    pub async fn drain_uploads(&self) {
        self.uploader.drain().await;
        let ns = self.ns.lock().unwrap();
        self.unnamed
            .keep_waiting(|ino| ns.node(ino).is_some_and(|n| !n.unlinked));
    }

    /// What the uploads have stored and have under way (for a stop's report).
    pub fn upload_counts(&self) -> UploadCounts {
        self.uploader.counts()
    }
}

/// `mediafs status`: what a cache dir's spool holds, and for an agency
/// mount's, those of its locations (their ids before the entries' keys).
pub fn spool_status(cache_dir: &std::path::Path) -> std::io::Result<Vec<(String, SpoolRecord)>> {
    let mut records = own_spool(cache_dir)?;
    let locations = cache_dir.join(super::agency::LOCATIONS_DIR);
    if let Ok(dirs) = std::fs::read_dir(&locations) {
        for dir in dirs {
            let dir = dir?;
            let id = dir.file_name().to_string_lossy().into_owned();
            let theirs = own_spool(&dir.path())?;
            records.extend(
                theirs
                    .into_iter()
                    .map(|(key, r)| (format!("{id}/{key}"), r)),
            );
        }
    }
    Ok(records)
}

fn own_spool(cache_dir: &std::path::Path) -> std::io::Result<Vec<(String, SpoolRecord)>> {
    let dir = cache_dir.join("spool");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    // A running mount may be adding an entry (its bytes before its record):
    // look only, so as to take nothing from it.
    Spool::peek(&dir).records()
}
