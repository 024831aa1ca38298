//! What the server lists, cached: the folder tree (one `fetchAll` listing of
//! every folder) and each folder's files, both trusted for the metadata TTL.
//!
//! This mount's own changes are applied to the caches at once, and kept
//! while a fetch that began before them is in flight: when such a fetch
//! lands, they are replayed over it, since it may predate them. A listing
//! whose fetch began after a change already reflects it, or a later change
//! made elsewhere, and wins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::tree::Tree;
use super::walks::Walks;
use super::FolderKey;
use crate::api::MediaObject;
use crate::fs::clock::Clock;
use crate::fs::names;

/// A change this mount made, replayed over listings that may predate it.
#[derive(Debug, Clone)]
enum OwnChange {
    Created(MediaObject),
    Removed(String),
    Renamed(String, String),
}

/// A folder's entries under their shown names.
#[derive(Debug, Default)]
pub struct View {
    pub entries: BTreeMap<String, MediaObject>,
}

/// Folder views kept built: enough for the folders in use at once, few
/// enough that a walk of a large library does not keep a second copy of it.
const VIEWS_KEPT: usize = 64;

#[derive(Debug)]
struct FileListing {
    files: Vec<MediaObject>,
    /// When its fetch began: a listing fetched from later replaces it.
    fetched: Instant,
    /// What its freshness is counted from.
    trusted_from: Instant,
    /// Whether the folder's subfolders were listed with it (what a tree
    /// listed folder by folder needs).
    with_subfolders: bool,
}

#[derive(Debug)]
pub struct Listings {
    ttl: Duration,
    clock: Clock,
    tree: Tree,
    files: LruCache<FolderKey, FileListing>,
    /// Views of the folders looked at last (each a copy of its listing).
    views: LruCache<FolderKey, Arc<View>>,
    own_changes: Vec<(Instant, OwnChange)>,
    /// When each fetch in flight began (a count per instant).
    fetching: BTreeMap<Instant, usize>,
    /// Objects this mount replaced or renamed over whose removal has not
    /// been confirmed: hidden, so that their name means the replacement.
    superseded: HashSet<String>,
    /// Whether to list every file at once (see [`Walks`]).
    pub walks: Walks,
}

impl Listings {
    pub fn new(ttl: Duration, clock: Clock, kept: usize) -> Listings {
        Listings {
            ttl,
            clock,
            tree: Tree::new(),
            files: LruCache::new(kept.max(1).try_into().expect("nonzero")),
            views: LruCache::new(VIEWS_KEPT.try_into().expect("nonzero")),
            own_changes: Vec::new(),
            fetching: BTreeMap::new(),
            superseded: HashSet::new(),
            walks: Walks::new(ttl),
        }
    }

    pub fn tree_is_fresh(&self) -> bool {
        self.tree.is_fresh(self.clock.now(), self.ttl)
    }

    /// Whether each folder's subfolders come with its own listing (see
    /// [`Tree`]).
    pub fn folders_per_folder(&self) -> bool {
        self.tree.is_per_folder()
    }

    /// The service does not answer every folder at once: list them folder
    /// by folder for a while.
    pub fn tree_unavailable(&mut self) {
        self.tree.set_per_folder(self.clock.now());
        self.views.clear();
    }

    pub fn listing_is_fresh(&mut self, key: &FolderKey) -> bool {
        let (ttl, clock) = (self.ttl, self.clock.clone());
        let per_folder = self.tree.is_per_folder();
        self.files.get(key).is_some_and(|l| {
            clock.since(l.trusted_from) < ttl && (l.with_subfolders || !per_folder)
        })
    }

    /// Forgets a folder's file listing and the tree, so that the next look
    /// fetches them.
    pub fn expire(&mut self, key: &FolderKey) {
        self.files.pop(key);
        self.views.pop(key);
        self.tree.forget();
    }

    /// A fetch begins now; its answer goes to [`Self::set_tree`] or
    /// [`Self::set_files`], or to [`Self::end_fetch`] if it fails.
    pub fn begin_fetch(&mut self) -> Instant {
        let started = self.clock.now();
        *self.fetching.entry(started).or_default() += 1;
        started
    }

    pub fn end_fetch(&mut self, started: Instant) {
        if let Some(count) = self.fetching.get_mut(&started) {
            *count -= 1;
            if *count == 0 {
                self.fetching.remove(&started);
            }
        }
        // Changes no fetch in flight can predate are reflected by any
        // listing from now on.
        match self.fetching.keys().next().copied() {
            Some(oldest) => self.own_changes.retain(|(at, _)| *at >= oldest),
            None => self.own_changes.clear(),
        }
    }

    /// This mount's changes that a fetch begun at `started` may predate.
    fn changes_since(&self, started: Instant) -> Vec<OwnChange> {
        self.own_changes
            .iter()
            .filter(|(at, _)| *at >= started)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn remember(&mut self, change: OwnChange) {
        if !self.fetching.is_empty() {
            self.own_changes.push((self.clock.now(), change));
        }
    }

    /// The folder tree as fetched from `started`, this mount's later
    /// changes replayed over it, trusted from now.
    pub fn set_tree(&mut self, folders: Vec<MediaObject>, started: Instant) {
        let map = self.replayed_folders(folders, started, |_| true);
        self.tree.set_whole(map, self.clock.now());
        self.views.clear();
        self.end_fetch(started);
    }

    /// Folders as fetched from `started`, with this mount's later changes
    /// to those `belongs` takes replayed over them, hidden ones left out.
    fn replayed_folders(
        &self,
        folders: Vec<MediaObject>,
        started: Instant,
        belongs: impl Fn(&MediaObject) -> bool,
    ) -> HashMap<String, MediaObject> {
        let mut map: HashMap<String, MediaObject> =
            folders.into_iter().map(|f| (f.id.clone(), f)).collect();
        for change in self.changes_since(started) {
            match change {
                OwnChange::Created(o) if o.is_folder() && belongs(&o) => {
                    map.entry(o.id.clone()).or_insert(o);
                }
                OwnChange::Removed(id) => {
                    map.remove(&id);
                }
                OwnChange::Renamed(id, name) => {
                    if let Some(f) = map.get_mut(&id) {
                        f.name = name;
                    }
                }
                OwnChange::Created(_) => {}
            }
        }
        map.retain(|id, _| !self.superseded.contains(id));
        map
    }

    /// A folder's files as fetched from `started`, this mount's later
    /// changes replayed over them.
    pub fn set_files(&mut self, key: FolderKey, files: Vec<MediaObject>, started: Instant) {
        self.install_files(key, files, started, false);
        self.end_fetch(started);
    }

    /// A folder's files and subfolders as fetched from `started` (folders
    /// listed folder by folder), this mount's later changes replayed over
    /// them.
    pub fn set_files_and_subfolders(
        &mut self,
        key: FolderKey,
        files: Vec<MediaObject>,
        subfolders: Vec<MediaObject>,
        started: Instant,
    ) {
        let newer = self.files.peek(&key).is_some_and(|l| l.fetched > started);
        if !newer {
            let map = self.replayed_folders(subfolders, started, |o| o.parent_id == key);
            self.tree.set_subfolders(&key, map.into_values().collect());
            self.install_files(key, files, started, true);
        }
        self.end_fetch(started);
    }

    /// Every file of the library as fetched from `started`, each folder of
    /// the tree given its own (none, for those that hold none). Files of a
    /// folder the tree does not know wait for the folder's own listing.
    pub fn set_every_file(&mut self, files: Vec<MediaObject>, started: Instant) {
        let mut by_folder: HashMap<FolderKey, Vec<MediaObject>> = self
            .tree
            .folders
            .keys()
            .map(|id| (Some(id.clone()), Vec::new()))
            .chain([(None, Vec::new())])
            .collect();
        for file in files {
            if let Some(folder) = by_folder.get_mut(&file.parent_id) {
                folder.push(file);
            }
        }
        // Every folder's listing stays: a walk is under way, and one
        // evicted would be fetched again on its own.
        if let Some(needed) = std::num::NonZeroUsize::new(by_folder.len()) {
            if needed > self.files.cap() {
                self.files.resize(needed);
            }
        }
        for (key, files) in by_folder {
            self.install_files(key, files, started, false);
        }
        self.end_fetch(started);
    }

    /// A folder's files as fetched from `started`, unless a listing
    /// fetched since is there already. Its freshness counts from now, when
    /// it arrived: a large answer may take seconds, and would otherwise be
    /// stale before it was used.
    fn install_files(
        &mut self,
        key: FolderKey,
        mut files: Vec<MediaObject>,
        started: Instant,
        with_subfolders: bool,
    ) {
        if self.files.peek(&key).is_some_and(|l| l.fetched > started) {
            return;
        }
        for change in self.changes_since(started) {
            match change {
                OwnChange::Created(o) if !o.is_folder() && o.parent_id == key => {
                    if !files.iter().any(|f| f.id == o.id) {
                        files.push(o);
                    }
                }
                OwnChange::Removed(id) => files.retain(|f| f.id != id),
                OwnChange::Renamed(id, name) => {
                    if let Some(f) = files.iter_mut().find(|f| f.id == id) {
                        f.name = name;
                    }
                }
                OwnChange::Created(_) => {}
            }
        }
        files.retain(|f| !self.superseded.contains(&f.id));
        self.views.pop(&key);
        let listing = FileListing {
            files,
            fetched: started,
            trusted_from: self.clock.now(),
            with_subfolders,
        };
        if let Some((evicted, _)) = self.files.push(key.clone(), listing) {
            if evicted != key {
                self.views.pop(&evicted);
            }
        }
    }

    /// The type a file that tells none may take in folder `key`: that of
    /// an object it replaces, or of its editor backup (`NAME~`: vim and
    /// emacs rename the original so before writing the new file).
    pub fn lent_type(&self, key: &FolderKey, name: &str, replaces: &[String]) -> Option<String> {
        let files = &self.files.peek(key)?.files;
        let backup = format!("{name}~");
        let replaced = files.iter().filter(|f| replaces.contains(&f.id));
        let backups = files.iter().filter(|f| f.name == backup);
        replaced.chain(backups).find_map(|f| f.content_type.clone())
    }

    /// A folder this mount just made: known to be empty.
    pub fn set_empty(&mut self, key: FolderKey) {
        let started = self.begin_fetch();
        self.install_files(key, Vec::new(), started, true);
        self.end_fetch(started);
    }

    /// The folder's entries under their shown names; `None` until both the
    /// tree and the folder's files are cached.
    pub fn view(&mut self, key: &FolderKey) -> Option<Arc<View>> {
        if let Some(v) = self.views.get(key) {
            return Some(v.clone());
        }
        if !self.tree.is_known() {
            return None;
        }
        let per_folder = self.tree.is_per_folder();
        let listing = self.files.get(key)?;
        if per_folder && !listing.with_subfolders {
            // Its subfolders are not known yet.
            return None;
        }
        let files = &listing.files;
        let mut objects: Vec<MediaObject> = self.tree.children(key).cloned().collect();
        objects.extend(files.iter().cloned());
        let shown = names::entry_names(&objects);
        let view = Arc::new(View {
            entries: shown.into_iter().zip(objects).collect(),
        });
        self.views.put(key.clone(), view.clone());
        Some(view)
    }

    /// A new object on the server, made by this mount.
    pub fn add(&mut self, object: MediaObject) {
        let key = object.parent_id.clone();
        if object.is_folder() {
            self.tree.folders.insert(object.id.clone(), object.clone());
        } else if let Some(listing) = self.files.get_mut(&key) {
            listing.files.retain(|f| f.id != object.id);
            listing.files.push(object.clone());
        }
        self.views.pop(&key);
        self.remember(OwnChange::Created(object));
    }

    /// An object this mount made whose name another visible object of its
    /// folder has too: which of them gets the plain name goes by their
    /// creation times, and the service does not say when it made this one
    /// (an upload answers its id and URL only). The folder is fetched
    /// again at its next look, so that every listing and every machine
    /// name them alike.
    pub fn check_namesakes(&mut self, object: &MediaObject) {
        let key = &object.parent_id;
        let namesake = |o: &MediaObject| {
            o.id != object.id && o.name == object.name && !self.superseded.contains(&o.id)
        };
        if object.is_folder() {
            if self.tree.children(key).any(namesake) {
                // The tree, or (folder by folder) the parent's listing.
                self.tree.forget();
                self.files.pop(key);
                self.views.clear();
            }
        } else if self
            .files
            .peek(key)
            .is_some_and(|l| l.files.iter().any(namesake))
        {
            self.files.pop(key);
            self.views.pop(key);
        }
    }

    /// An object this mount removed on the server.
    pub fn remove(&mut self, id: &str) {
        let parent = match self.tree.folders.remove(id) {
            Some(f) => Some(f.parent_id),
            None => self.files.iter_mut().find_map(|(key, l)| {
                let before = l.files.len();
                l.files.retain(|f| f.id != id);
                (l.files.len() != before).then(|| key.clone())
            }),
        };
        if let Some(key) = parent {
            self.views.pop(&key);
        }
        self.remember(OwnChange::Removed(id.to_owned()));
    }

    /// An object this mount replaced: hidden at once and until its removal
    /// is confirmed, however many listings still show it.
    pub fn supersede(&mut self, id: &str) {
        self.superseded.insert(id.to_owned());
        self.remove(id);
    }

    /// The replaced object is gone from the server too.
    pub fn superseded_removed(&mut self, id: &str) {
        self.superseded.remove(id);
    }

    pub fn rename(&mut self, id: &str, name: &str) {
        let mut parent = None;
        if let Some(f) = self.tree.folders.get_mut(id) {
            f.name = name.to_owned();
            parent = Some(f.parent_id.clone());
        } else {
            for (key, l) in self.files.iter_mut() {
                if let Some(f) = l.files.iter_mut().find(|f| f.id == id) {
                    f.name = name.to_owned();
                    parent = Some(key.clone());
                }
            }
        }
        if let Some(key) = parent {
            self.views.pop(&key);
        }
        self.remember(OwnChange::Renamed(id.to_owned(), name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectKind;

    fn file(id: &str, name: &str) -> MediaObject {
        MediaObject {
            id: id.into(),
            name: name.into(),
            kind: ObjectKind::File,
            parent_id: None,
            content_type: Some("image/png".into()),
            size: Some(1),
            path: None,
            url: None,
            created_at: None,
            updated_at: None,
        }
    }

    fn names(l: &mut Listings) -> Vec<String> {
        l.view(&None).unwrap().entries.keys().cloned().collect()
    }

    #[test]
    fn own_changes_replay_only_over_listings_that_may_predate_them() {
        let clock = Clock::manual();
        let mut l = Listings::new(Duration::from_secs(5), clock.clone(), 8);
        let started = l.begin_fetch();
        l.set_tree(Vec::new(), started);
        let before = l.begin_fetch();
        clock.advance(Duration::from_millis(1));
        l.rename("a1", "b.png");
        // The fetch began before the rename: its answer may not show it.
        l.set_files(None, vec![file("a1", "a.png")], before);
        assert_eq!(names(&mut l), ["b.png"]);
        // A fetch begun after the rename shows a later change made elsewhere.
        clock.advance(Duration::from_secs(6));
        let after = l.begin_fetch();
        l.set_files(None, vec![file("a1", "c.png")], after);
        assert_eq!(names(&mut l), ["c.png"]);
        assert!(l.own_changes.is_empty(), "nothing in flight predates it");
    }
}
