//! The library's folders, as listed. The service can answer every folder
//! of the location in one `fetchAll` listing, trusted for the metadata TTL.
//! When it does not answer them all at once (an answer short of its own
//! count), waiting for every folder's listing at each refresh would cost
//! one request per folder every TTL; instead each folder's subfolders are
//! then listed with its files, when it is looked at, and a whole listing
//! is tried again after a while.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::FolderKey;
use crate::api::MediaObject;

/// How long folders are listed folder by folder before a listing of every
/// folder at once is tried again.
const PER_FOLDER_FOR: Duration = Duration::from_secs(600);

#[derive(Debug)]
enum Source {
    /// Nothing listed yet.
    Unknown,
    /// One listing of every folder, its freshness counted from
    /// `trusted_from` (its arrival).
    Whole { trusted_from: Instant },
    /// Each folder's subfolders come with its own listing, until `until`.
    PerFolder { until: Instant },
}

#[derive(Debug)]
pub struct Tree {
    /// Every folder known, by id.
    pub folders: HashMap<String, MediaObject>,
    source: Source,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            folders: HashMap::new(),
            source: Source::Unknown,
        }
    }

    /// Whether no listing of every folder is wanted at `now`.
    pub fn is_fresh(&self, now: Instant, ttl: Duration) -> bool {
        match self.source {
            Source::Unknown => false,
            Source::Whole { trusted_from } => now.duration_since(trusted_from) < ttl,
            Source::PerFolder { until } => now < until,
        }
    }

    /// Whether folders can be told from it (they may be stale).
    pub fn is_known(&self) -> bool {
        !matches!(self.source, Source::Unknown)
    }

    /// Whether each folder's subfolders come with its own listing.
    pub fn is_per_folder(&self) -> bool {
        matches!(self.source, Source::PerFolder { .. })
    }

    /// Every folder, as one listing that arrived at `now`.
    pub fn set_whole(&mut self, folders: HashMap<String, MediaObject>, now: Instant) {
        self.folders = folders;
        self.source = Source::Whole { trusted_from: now };
    }

    /// The service does not answer every folder at once, as of `now`.
    pub fn set_per_folder(&mut self, now: Instant) {
        self.source = Source::PerFolder {
            until: now + PER_FOLDER_FOR,
        };
    }

    /// A folder's subfolders as its own listing gave them.
    pub fn set_subfolders(&mut self, key: &FolderKey, subfolders: Vec<MediaObject>) {
        self.folders.retain(|_, f| &f.parent_id != key);
        self.folders
            .extend(subfolders.into_iter().map(|f| (f.id.clone(), f)));
    }

    /// The next look lists every folder again (a whole tree only: folder
    /// by folder, each listing brings its own).
    pub fn forget(&mut self) {
        if matches!(self.source, Source::Whole { .. }) {
            self.source = Source::Unknown;
        }
    }

    /// The folders directly in `key`.
    pub fn children<'a>(&'a self, key: &'a FolderKey) -> impl Iterator<Item = &'a MediaObject> {
        self.folders.values().filter(move |f| &f.parent_id == key)
    }
}
