//! The reader: stored bytes, fetched by ranged GETs of an object's public
//! URL and kept in the content cache, read ahead for sequential readers,
//! and fetched ahead for the small siblings of a small file being read
//! (a cold `cat *`, `grep -r` or `rsync` out costs about one round trip per
//! batch rather than one per file).

mod content;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use content::ContentCache;
pub use content::{Remote, CHUNK};

use super::clock::Clock;
use super::namespace::Ino;
use super::{Backend, FsResult};

/// How far ahead sequential reads fetch, in chunks, at most.
const MAX_READ_AHEAD_CHUNKS: u64 = 8;
/// Downloads fetched at once ahead of reads: public URLs, which have no
/// rate limit.
const DOWNLOADS_AT_ONCE: usize = 32;
/// Siblings fetched ahead of one read, at most.
const MAX_SIBLINGS: usize = 256;

/// A handle's read-ahead: grows while reads are sequential, falls back
/// when they jump.
#[derive(Debug, Default)]
pub struct ReadAhead {
    next_offset: u64,
    window: u64,
    /// Chunks before this one have been asked for already.
    requested_until: u64,
}

impl ReadAhead {
    /// After a read of `len` bytes at `offset`: the chunks to fetch next.
    fn after_read(&mut self, remote: &Remote, offset: u64, len: u64) -> std::ops::Range<u64> {
        let next_chunk = (offset + len).div_ceil(CHUNK);
        if offset == self.next_offset && offset > 0 {
            self.window = (self.window * 2).clamp(1, MAX_READ_AHEAD_CHUNKS);
        } else {
            self.window = 0;
            self.requested_until = 0;
        }
        self.next_offset = offset + len;
        // Each chunk once: a read inside the window asks only for what the
        // window newly covers.
        let from = next_chunk.max(self.requested_until);
        let until = (next_chunk + self.window).min(remote.chunks());
        self.requested_until = self.requested_until.max(until);
        from..until
    }
}

#[derive(Debug)]
pub struct Reader {
    content: Arc<ContentCache>,
    clock: Clock,
    ttl: Duration,
    /// Folders whose small files were last fetched ahead, and when.
    siblings_fetched: Mutex<HashMap<Ino, Instant>>,
}

impl Reader {
    pub fn new(dir: PathBuf, max_bytes: u64, clock: Clock, ttl: Duration) -> std::io::Result<Self> {
        Ok(Reader {
            content: Arc::new(ContentCache::new(dir, max_bytes)?),
            clock,
            ttl,
            siblings_fetched: Mutex::default(),
        })
    }

    /// The bytes at `offset`, if they are all in memory already.
    pub fn read_ready(&self, remote: &Remote, offset: u64, len: u64) -> Option<Bytes> {
        self.content.read_ready(remote, offset, len)
    }

    pub async fn read<B: Backend>(
        &self,
        backend: &B,
        remote: &Remote,
        offset: u64,
        len: u64,
    ) -> FsResult<Bytes> {
        self.content.read(backend, remote, offset, len).await
    }

    /// After a read, fetches in the background the chunks a sequential
    /// reader will want next.
    pub fn read_ahead<B: Backend>(
        &self,
        backend: &Arc<B>,
        remote: &Remote,
        ahead: &mut ReadAhead,
        offset: u64,
        len: u64,
    ) {
        for chunk in ahead.after_read(remote, offset, len) {
            let (content, backend, remote) =
                (self.content.clone(), backend.clone(), remote.clone());
            tokio::spawn(async move {
                let _ = content.ensure_chunk(&*backend, &remote, chunk).await;
            });
        }
    }

    /// Whether the small files of a folder are due to be fetched ahead: at
    /// most once per metadata TTL.
    pub fn siblings_due(&self, folder: Ino) -> bool {
        let mut fetched = self.siblings_fetched.lock().unwrap();
        if fetched
            .get(&folder)
            .is_some_and(|t| self.clock.since(*t) < self.ttl)
        {
            return false;
        }
        fetched.insert(folder, self.clock.now());
        true
    }

    /// Fetches the small files of a folder into the content cache, many at
    /// a time.
    pub async fn fetch_small<B: Backend>(&self, backend: &B, files: Vec<Remote>) {
        futures::stream::iter(files.into_iter().take(MAX_SIBLINGS))
            .for_each_concurrent(DOWNLOADS_AT_ONCE, |remote| async move {
                let _ = self.content.ensure_chunk(backend, &remote, 0).await;
            })
            .await;
    }
}
