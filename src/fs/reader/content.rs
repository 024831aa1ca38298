//! The content cache: an object's bytes never change (a new upload is a new
//! id), so chunks fetched by ranged GETs of its URL never go stale.
//!
//! Recently fetched chunks are kept in memory, so a sequential reader is
//! answered straight from the bytes its read-ahead fetched. Objects up to
//! [`DISK_CACHE_MAX_OBJECT`] (every image, PDF and sound; short videos) are
//! also kept on disk, keyed by id and bounded by an LRU over objects. Larger
//! ones (videos) stream through memory only, as in mountpoint-s3 and rclone's
//! default: copying hundreds of MiB through a cache file costs more CPU than
//! the download itself, and the kernel's page cache already serves re-reads.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use lru::LruCache;

use crate::api::{ByteRange, Segments};
use crate::fs::backend::Backend;
use crate::fs::Errno;

/// Bytes fetched per ranged GET.
pub const CHUNK: u64 = 1024 * 1024;

/// Objects larger than this are not kept on disk.
pub const DISK_CACHE_MAX_OBJECT: u64 = 32 * 1024 * 1024;

/// Chunks kept in memory (each up to [`CHUNK`] bytes): room for the
/// read-ahead of a few streams at once, within the mount's memory bound.
const MEMORY_CHUNKS: usize = 16;

/// Streamed (memory-only) objects whose fetch bookkeeping is kept.
const STREAMED_OBJECTS: usize = 64;

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

/// An object's chunks on disk: which are there, in one sparse file.
#[derive(Debug)]
struct DiskCopy {
    file: std::fs::File,
    path: PathBuf,
    present: Mutex<Vec<bool>>,
}

impl Drop for DiskCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug)]
struct Cached {
    id: String,
    size: u64,
    disk: Option<DiskCopy>,
    /// One lock per chunk, so concurrent readers of a chunk wait for a
    /// single fetch.
    fetching: Vec<tokio::sync::Mutex<()>>,
}

/// Where a chunk's bytes are once it is available.
enum Chunk {
    Memory(Arc<Segments>),
    Disk,
}

#[derive(Debug)]
struct Objects {
    on_disk: LruCache<String, Arc<Cached>>,
    disk_bytes: u64,
    streamed: LruCache<String, Arc<Cached>>,
}

#[derive(Debug)]
pub struct ContentCache {
    dir: PathBuf,
    max_bytes: u64,
    objects: Mutex<Objects>,
    memory: Mutex<LruCache<(String, u64), Arc<Segments>>>,
}

impl ContentCache {
    /// Starts empty: chunks of an earlier run are not trusted and removed.
    pub fn new(dir: PathBuf, max_bytes: u64) -> std::io::Result<ContentCache> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(ContentCache {
            dir,
            max_bytes,
            objects: Mutex::new(Objects {
                on_disk: LruCache::unbounded(),
                disk_bytes: 0,
                streamed: LruCache::new(STREAMED_OBJECTS.try_into().unwrap()),
            }),
            memory: Mutex::new(LruCache::new(MEMORY_CHUNKS.try_into().unwrap())),
        })
    }

    fn entry(&self, remote: &Remote) -> Result<Arc<Cached>, Errno> {
        let mut objects = self.objects.lock().unwrap();
        if let Some(c) = objects.on_disk.get(&remote.id) {
            return Ok(c.clone());
        }
        if let Some(c) = objects.streamed.get(&remote.id) {
            return Ok(c.clone());
        }
        let chunks = remote.chunks() as usize;
        let on_disk = remote.size <= DISK_CACHE_MAX_OBJECT.min(self.max_bytes);
        let disk = if on_disk {
            let path = self.dir.join(&remote.id);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(Errno::from_io)?;
            Some(DiskCopy {
                file,
                path,
                present: Mutex::new(vec![false; chunks]),
            })
        } else {
            None
        };
        let cached = Arc::new(Cached {
            id: remote.id.clone(),
            size: remote.size,
            disk,
            fetching: (0..chunks).map(|_| tokio::sync::Mutex::new(())).collect(),
        });
        if on_disk {
            objects.disk_bytes += remote.size;
            while objects.disk_bytes > self.max_bytes && !objects.on_disk.is_empty() {
                if let Some((_, old)) = objects.on_disk.pop_lru() {
                    objects.disk_bytes -= old.size.min(objects.disk_bytes);
                }
            }
            objects.on_disk.put(remote.id.clone(), cached.clone());
        } else {
            objects.streamed.put(remote.id.clone(), cached.clone());
        }
        Ok(cached)
    }

    fn in_memory(&self, id: &str, chunk: u64) -> Option<Arc<Segments>> {
        self.memory
            .lock()
            .unwrap()
            .get(&(id.to_string(), chunk))
            .cloned()
    }

    /// Where the chunk is, if it is here already.
    fn available(&self, cached: &Cached, chunk: u64) -> Option<Chunk> {
        if let Some(bytes) = self.in_memory(&cached.id, chunk) {
            return Some(Chunk::Memory(bytes));
        }
        let disk = cached.disk.as_ref()?;
        disk.present.lock().unwrap()[chunk as usize].then_some(Chunk::Disk)
    }

    /// Makes sure one chunk is here, fetching it if need be.
    pub async fn ensure_chunk<B: Backend>(
        &self,
        backend: &B,
        remote: &Remote,
        chunk: u64,
    ) -> Result<(), Errno> {
        if chunk >= remote.chunks() {
            return Ok(());
        }
        let cached = self.entry(remote)?;
        self.fetch(&cached, backend, remote, chunk).await.map(drop)
    }

    async fn fetch<B: Backend>(
        &self,
        cached: &Cached,
        backend: &B,
        remote: &Remote,
        chunk: u64,
    ) -> Result<Chunk, Errno> {
        if let Some(found) = self.available(cached, chunk) {
            return Ok(found);
        }
        let _fetching = cached.fetching[chunk as usize].lock().await;
        if let Some(found) = self.available(cached, chunk) {
            return Ok(found);
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
        if let Some(disk) = &cached.disk {
            let mut at = offset;
            for piece in bytes.pieces() {
                disk.file.write_all_at(piece, at).map_err(Errno::from_io)?;
                at += piece.len() as u64;
            }
            disk.present.lock().unwrap()[chunk as usize] = true;
        }
        let bytes = Arc::new(bytes);
        self.memory
            .lock()
            .unwrap()
            .put((remote.id.clone(), chunk), bytes.clone());
        Ok(Chunk::Memory(bytes))
    }

    /// The bytes at `offset`, if every chunk they span is in memory.
    pub fn read_ready(&self, remote: &Remote, offset: u64, len: u64) -> Option<Bytes> {
        let end = (offset + len).min(remote.size);
        if offset >= end {
            return Some(Bytes::new());
        }
        let found: Option<Vec<Chunk>> = (offset / CHUNK..=(end - 1) / CHUNK)
            .map(|c| self.in_memory(&remote.id, c).map(Chunk::Memory))
            .collect();
        assemble(None, offset, end, found?).ok()
    }

    /// Reads up to `len` bytes at `offset`, fetching missing chunks. A read
    /// within one piece of a chunk held in memory is a slice of it, no copy.
    pub async fn read<B: Backend>(
        &self,
        backend: &B,
        remote: &Remote,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, Errno> {
        let end = (offset + len).min(remote.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let first = offset / CHUNK;
        let last = (end - 1) / CHUNK;
        // One entry for the whole read, so an eviction meanwhile cannot
        // hand back a fresh, empty one.
        let cached = self.entry(remote)?;
        let fetches: Vec<_> = (first..=last)
            .map(|c| self.fetch(&cached, backend, remote, c))
            .collect();
        let chunks = futures::future::try_join_all(fetches).await?;
        assemble(cached.disk.as_ref(), offset, end, chunks)
    }
}

/// The bytes `offset..end` out of the chunks they span, in order. Within one
/// piece of a chunk held in memory (as it came off the wire) they are a
/// slice of it, with no copy.
fn assemble(
    disk: Option<&DiskCopy>,
    offset: u64,
    end: u64,
    chunks: Vec<Chunk>,
) -> Result<Bytes, Errno> {
    let first = offset / CHUNK;
    let single = chunks.len() == 1;
    let mut out = BytesMut::new();
    for (chunk, found) in (first..).zip(chunks) {
        let base = chunk * CHUNK;
        let from = offset.max(base);
        let to = end.min(base + CHUNK);
        let part = match found {
            Chunk::Memory(body) => body.slice((from - base) as usize..(to - base) as usize),
            Chunk::Disk => {
                let disk = disk.expect("a disk chunk has a disk copy");
                let mut buf = vec![0; (to - from) as usize];
                disk.file
                    .read_exact_at(&mut buf, from)
                    .map_err(Errno::from_io)?;
                Bytes::from(buf)
            }
        };
        if single {
            return Ok(part);
        }
        out.extend_from_slice(&part);
    }
    Ok(out.freeze())
}
