//! Work done ahead of the requests that will want it: a listed folder's
//! subfolders get their listings fetched concurrently (a cold `ls -lR` costs
//! about one round trip per level instead of one per folder), and reading a
//! small file fetches its small siblings' bytes, 32 at a time, (a cold
//! `cat *`, `grep -r` or `rsync` out costs about one round trip per batch).

use futures::StreamExt;

use super::content::{Remote, CHUNK};
use super::state::{FolderKey, Ino};
use super::{Backend, FileKind, MediaFs};

/// Listings fetched at once: API calls, which count against the rate limit.
const LISTINGS_AT_ONCE: usize = 8;
/// Downloads fetched at once: public URLs, which have no rate limit.
const DOWNLOADS_AT_ONCE: usize = 32;
/// Siblings fetched ahead of one read, at most.
const MAX_SIBLINGS: usize = 256;

impl<B: Backend> MediaFs<B> {
    /// Fetches the file listings of a directory's subfolders, those not fresh.
    pub async fn prefetch_subfolders(&self, dir: Ino) {
        let Ok(Some(view)) = self.folder_view(dir).await else {
            return;
        };
        let keys: Vec<FolderKey> = {
            let mut st = self.state.lock().unwrap();
            view.entries
                .values()
                .filter(|o| o.is_folder())
                .map(|o| Some(o.id.clone()))
                .filter(|key| !st.listing_is_fresh(key))
                .collect()
        };
        futures::stream::iter(keys)
            .for_each_concurrent(LISTINGS_AT_ONCE, |key| async move {
                let _ = self.refresh_listing(&key).await;
            })
            .await;
    }

    /// After a small file is opened for reading, fetches the other small
    /// files of its folder, once per metadata TTL.
    pub async fn prefetch_small_siblings(&self, ino: Ino) {
        let parent = {
            let st = self.state.lock().unwrap();
            match st.node(ino) {
                Some(n)
                    if n.kind == FileKind::File
                        && n.object
                            .as_ref()
                            .and_then(|o| o.size)
                            .is_some_and(|s| s <= CHUNK) =>
                {
                    n.parent
                }
                _ => return,
            }
        };
        {
            let mut done = self.siblings_prefetched.lock().unwrap();
            if done
                .get(&parent)
                .is_some_and(|t| self.config.clock.since(*t) < self.config.metadata_ttl)
            {
                return;
            }
            done.insert(parent, self.config.clock.now());
        }
        let Ok(Some(view)) = self.folder_view(parent).await else {
            return;
        };
        let siblings: Vec<Remote> = view
            .entries
            .values()
            .filter(|o| !o.is_folder() && o.size.is_some_and(|s| s > 0 && s <= CHUNK))
            .filter_map(|o| {
                Some(Remote {
                    id: o.id.clone(),
                    url: o.url.clone()?,
                    size: o.size?,
                })
            })
            .take(MAX_SIBLINGS)
            .collect();
        futures::stream::iter(siblings)
            .for_each_concurrent(DOWNLOADS_AT_ONCE, |remote| async move {
                let _ = self.content.ensure_chunk(&*self.backend, &remote, 0).await;
            })
            .await;
    }
}
