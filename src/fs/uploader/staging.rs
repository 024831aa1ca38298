//! Write staging: a file being written lives in a private temp file (0600,
//! under the cache dir) until its handle is flushed, when it is uploaded or
//! spooled.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::api::mime;

/// The staged bytes of one inode, shared by every handle that writes it.
#[derive(Debug)]
pub struct StagingCell {
    /// Held while the bytes change or are being stored.
    pub file: Arc<Mutex<Staged>>,
    /// Its length, readable without waiting for an upload in progress.
    pub len: AtomicU64,
    /// Holds bytes the server does not have yet.
    pub dirty: AtomicBool,
    /// A write was refused (the file outgrew the service's limit): what is
    /// staged is incomplete and must never be uploaded.
    pub refused: AtomicBool,
}

#[derive(Debug)]
pub struct Staged {
    pub temp: tempfile::NamedTempFile,
    /// Whether the object's existing bytes have been copied in; until then
    /// only a truncation to zero or a whole rewrite may skip fetching them.
    pub loaded: bool,
}

impl StagingCell {
    /// A new staging file; `loaded` says whether it already holds all it should.
    pub fn new(dir: &Path, loaded: bool, len: u64) -> io::Result<StagingCell> {
        let temp = tempfile::Builder::new()
            .prefix("staging-")
            .tempfile_in(dir)?;
        temp.as_file().set_len(len)?;
        Ok(StagingCell {
            file: Arc::new(Mutex::new(Staged { temp, loaded })),
            len: AtomicU64::new(len),
            dirty: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        })
    }

    pub fn len(&self) -> u64 {
        self.len.load(Ordering::SeqCst)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    pub fn set_dirty(&self, dirty: bool) {
        self.dirty.store(dirty, Ordering::SeqCst);
    }
}

impl Staged {
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.temp.as_file().write_all_at(data, offset)
    }

    pub fn read_at(&self, offset: u64, len: usize, file_len: u64) -> io::Result<Vec<u8>> {
        let end = (offset + len as u64).min(file_len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; (end - offset) as usize];
        self.temp.as_file().read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.temp.as_file().set_len(len)
    }

    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The MIME type the staged bytes will be uploaded as, if it can be told.
    pub fn content_type(&self, name: &str) -> Option<String> {
        let mut head = vec![0; mime::SNIFF_LEN];
        let n = self.temp.as_file().read_at(&mut head, 0).unwrap_or(0);
        mime::detect(&head[..n], name)
    }
}
