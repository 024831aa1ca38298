//! The local content cache: an object's bytes never change (a new upload is
//! a new id), so chunks fetched once by ranged GETs of its URL are kept on
//! disk, keyed by id, and never go stale. Bounded by an LRU over objects.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::backend::Backend;
use super::Errno;
use crate::api::ByteRange;

/// Bytes fetched per ranged GET.
pub const CHUNK: u64 = 1024 * 1024;

/// Where an object's bytes are.
#[derive(Debug, Clone)]
pub struct Remote {
    pub id: String,
    pub url: String,
    pub size: u64,
}

impl Remote {
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(CHUNK)
    }
}

#[derive(Debug)]
struct Cached {
    size: u64,
    file: std::fs::File,
    path: PathBuf,
    present: Mutex<Vec<bool>>,
    fetching: Vec<tokio::sync::Mutex<()>>,
}

impl Drop for Cached {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug)]
pub struct ContentCache {
    dir: PathBuf,
    max_bytes: u64,
    objects: Mutex<(LruCache<String, Arc<Cached>>, u64)>,
}

impl ContentCache {
    /// Starts empty: chunks of an earlier run are not trusted and removed.
    pub fn new(dir: PathBuf, max_bytes: u64) -> std::io::Result<ContentCache> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(ContentCache {
            dir,
            max_bytes,
            objects: Mutex::new((LruCache::unbounded(), 0)),
        })
    }

    fn entry(&self, remote: &Remote) -> Result<Arc<Cached>, Errno> {
        let mut guard = self.objects.lock().unwrap();
        let (lru, total) = &mut *guard;
        if let Some(c) = lru.get(&remote.id) {
            return Ok(c.clone());
        }
        let path = self.dir.join(&remote.id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(Errno::from_io)?;
        let chunks = remote.chunks() as usize;
        let cached = Arc::new(Cached {
            size: remote.size,
            file,
            path,
            present: Mutex::new(vec![false; chunks]),
            fetching: (0..chunks).map(|_| tokio::sync::Mutex::new(())).collect(),
        });
        *total += remote.size;
        while *total > self.max_bytes && !lru.is_empty() {
            if let Some((_, old)) = lru.pop_lru() {
                *total -= old.size.min(*total);
            }
        }
        lru.put(remote.id.clone(), cached.clone());
        Ok(cached)
    }

    fn is_present(cached: &Cached, chunk: u64) -> bool {
        cached.present.lock().unwrap()[chunk as usize]
    }

    /// Makes sure one chunk is on disk, fetching it if need be; concurrent
    /// callers for the same chunk wait for one fetch.
    pub async fn ensure_chunk<B: Backend>(
        &self,
        backend: &B,
        remote: &Remote,
        chunk: u64,
    ) -> Result<(), Errno> {
        let cached = self.entry(remote)?;
        Self::fetch_into(&cached, backend, remote, chunk).await
    }

    async fn fetch_into<B: Backend>(
        cached: &Cached,
        backend: &B,
        remote: &Remote,
        chunk: u64,
    ) -> Result<(), Errno> {
        if chunk >= remote.chunks() || Self::is_present(cached, chunk) {
            return Ok(());
        }
        let _fetching = cached.fetching[chunk as usize].lock().await;
        if Self::is_present(cached, chunk) {
            return Ok(());
        }
        let offset = chunk * CHUNK;
        let len = CHUNK.min(remote.size - offset);
        let bytes = backend
            .read_range(&remote.url, ByteRange { offset, len })
            .await
            .map_err(|e| {
                log::warn!("reading {} failed: {e}", remote.id);
                Errno::from_api(&e)
            })?;
        if bytes.len() as u64 != len {
            log::warn!(
                "reading {}: asked for {len} bytes at {offset}, got {}; the object may have been removed",
                remote.id,
                bytes.len()
            );
            return Err(Errno(libc::EIO));
        }
        cached
            .file
            .write_all_at(&bytes, offset)
            .map_err(Errno::from_io)?;
        cached.present.lock().unwrap()[chunk as usize] = true;
        Ok(())
    }

    /// Reads up to `len` bytes at `offset`, fetching missing chunks.
    pub async fn read<B: Backend>(
        &self,
        backend: &B,
        remote: &Remote,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Errno> {
        let end = (offset + len).min(remote.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let first = offset / CHUNK;
        let last = (end - 1) / CHUNK;
        // One entry for the whole read, so an eviction meanwhile cannot
        // hand back a fresh, empty one.
        let cached = self.entry(remote)?;
        let fetches: Vec<_> = (first..=last)
            .map(|c| Self::fetch_into(&cached, backend, remote, c))
            .collect();
        for result in futures::future::join_all(fetches).await {
            result?;
        }
        let mut buf = vec![0; (end - offset) as usize];
        cached
            .file
            .read_exact_at(&mut buf, offset)
            .map_err(Errno::from_io)?;
        Ok(buf)
    }
}
