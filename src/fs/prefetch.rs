//! Work done ahead of the requests that will want it: a listed folder's
//! subfolders get their listings fetched concurrently (a cold `ls -lR` costs
//! about one round trip per level instead of one per folder), and reading a
//! small file fetches its small siblings' bytes (see the reader).

use futures::StreamExt;

use super::namespace::{FileState, FolderKey, Ino};
use super::reader::{Remote, CHUNK};
use super::{Backend, MediaFs};

/// Listings fetched at once: API calls, which count against the rate limit.
const LISTINGS_AT_ONCE: usize = 8;

impl<B: Backend> MediaFs<B> {
    /// Fetches the file listings of a directory's subfolders, those not fresh.
    pub async fn prefetch_subfolders(&self, dir: Ino) {
        let Ok(Some(view)) = self.folder_view(dir).await else {
            return;
        };
        let keys: Vec<FolderKey> = {
            let mut ns = self.ns.lock().unwrap();
            view.entries
                .values()
                .filter(|o| o.is_folder())
                .map(|o| Some(o.id.clone()))
                .filter(|key| !ns.listings.listing_is_fresh(key))
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
            let ns = self.ns.lock().unwrap();
            match ns.node(ino) {
                Some(n) if matches!(n.file(), Some(FileState::Stored(o)) if o.size.is_some_and(|s| s <= CHUNK)) => {
                    n.parent
                }
                _ => return,
            }
        };
        if !self.reader.siblings_due(parent) {
            return;
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
            .collect();
        self.reader.fetch_small(&*self.backend, siblings).await;
    }
}
