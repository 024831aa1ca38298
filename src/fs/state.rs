//! The inode table and the metadata caches behind it, guarded by one mutex
//! that is never held across an await.
//!
//! Inodes are keyed by object id, so an inode stays the same object while it
//! exists. Folders come from one `fetchAll` listing of the whole tree, files
//! from each folder's own listing; both are trusted for the metadata TTL.
//! Changes this mount makes are applied to the caches at once and replayed
//! over listings fetched in the next half minute, so they show before any
//! listing does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

use super::clock::Clock;
use super::names;
use super::staging::StagingCell;
use super::times::Times;
use super::FileKind;
use crate::api::MediaObject;

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// A folder as the service knows it: `None` is the root.
pub type FolderKey = Option<String>;

/// How long this mount's own changes are replayed over fresh listings.
const OWN_CHANGES_KEPT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Node {
    pub parent: Ino,
    pub name: String,
    pub kind: FileKind,
    /// The server object; `None` for the root and for local nodes.
    pub object: Option<MediaObject>,
    /// Lives only in this mount: a junk file, or a new file not uploaded yet.
    pub local: bool,
    pub lookups: u64,
    pub open: u32,
    pub unlinked: bool,
    pub staging: Option<Arc<StagingCell>>,
    /// Times of a local node, or set on a node whose upload is pending.
    pub pending_times: Option<Times>,
    /// The object whose bytes the kernel's page cache may hold for this inode.
    pub page_cache_id: Option<String>,
    pub created: SystemTime,
    /// When this mount last changed a directory's entries.
    pub entries_changed: Option<SystemTime>,
    /// With `--write-back`: the spool entry holding bytes not uploaded yet, and their length.
    pub spooled: Option<(String, u64)>,
    /// A directory's listing as the kernel last cached it, hashed.
    pub listing_fingerprint: Option<u64>,
}

impl Node {
    fn new(
        parent: Ino,
        name: String,
        kind: FileKind,
        object: Option<MediaObject>,
        local: bool,
    ) -> Node {
        Node {
            parent,
            name,
            kind,
            object,
            local,
            lookups: 0,
            open: 0,
            unlinked: false,
            staging: None,
            pending_times: None,
            page_cache_id: None,
            created: SystemTime::now(),
            entries_changed: None,
            spooled: None,
            listing_fingerprint: None,
        }
    }

    /// The folder this directory is on the server; `None` inside for the root.
    pub fn folder_key(&self, ino: Ino) -> Option<FolderKey> {
        if ino == ROOT {
            Some(None)
        } else {
            self.object
                .as_ref()
                .filter(|o| o.is_folder())
                .map(|o| Some(o.id.clone()))
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.object.as_ref().map(|o| o.id.as_str())
    }
}

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

#[derive(Debug)]
struct Listing {
    files: Vec<MediaObject>,
    fetched: Instant,
}

#[derive(Debug)]
pub struct State {
    ttl: Duration,
    clock: Clock,
    idle_nodes_kept: usize,
    nodes: HashMap<Ino, Node>,
    by_id: HashMap<String, Ino>,
    next_ino: Ino,
    folders: HashMap<String, MediaObject>,
    tree_fetched: Option<Instant>,
    listings: LruCache<FolderKey, Listing>,
    views: HashMap<FolderKey, Arc<View>>,
    local_children: HashMap<Ino, BTreeMap<String, Ino>>,
    own_changes: Vec<(Instant, OwnChange)>,
    /// Objects this mount replaced with a new upload whose removal has not
    /// been confirmed: hidden, so that their name means the replacement.
    superseded: HashSet<String>,
}

impl State {
    pub fn new(ttl: Duration, clock: Clock, listings_kept: usize, idle_nodes_kept: usize) -> State {
        let mut nodes = HashMap::new();
        let mut root = Node::new(ROOT, String::new(), FileKind::Dir, None, false);
        root.lookups = 1;
        nodes.insert(ROOT, root);
        State {
            ttl,
            clock,
            idle_nodes_kept,
            nodes,
            by_id: HashMap::new(),
            next_ino: ROOT + 1,
            folders: HashMap::new(),
            tree_fetched: None,
            listings: LruCache::new(listings_kept.max(1).try_into().expect("nonzero")),
            views: HashMap::new(),
            local_children: HashMap::new(),
            own_changes: Vec::new(),
            superseded: HashSet::new(),
        }
    }

    pub fn node(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn node_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// Records that a directory's entries changed now (its mtime and ctime).
    pub fn touch_dir(&mut self, dir: Ino) {
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.entries_changed = Some(SystemTime::now());
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    // ---- freshness ----

    pub fn tree_is_fresh(&self) -> bool {
        self.tree_fetched
            .is_some_and(|t| self.clock.since(t) < self.ttl)
    }

    pub fn listing_is_fresh(&mut self, key: &FolderKey) -> bool {
        let (ttl, clock) = (self.ttl, self.clock.clone());
        self.listings
            .get(key)
            .is_some_and(|l| clock.since(l.fetched) < ttl)
    }

    /// Forgets a folder's file listing, so that the next look fetches it.
    pub fn expire_listing(&mut self, key: &FolderKey) {
        self.listings.pop(key);
        self.views.remove(key);
        self.tree_fetched = None;
    }

    fn recent_changes(&mut self) -> Vec<OwnChange> {
        let clock = self.clock.clone();
        self.own_changes
            .retain(|(t, _)| clock.since(*t) < OWN_CHANGES_KEPT);
        self.own_changes.iter().map(|(_, c)| c.clone()).collect()
    }

    fn remember(&mut self, change: OwnChange) {
        self.own_changes.push((self.clock.now(), change));
    }

    /// Replaces the folder tree with a fresh listing, this mount's recent
    /// changes replayed over it.
    pub fn set_tree(&mut self, folders: Vec<MediaObject>, fetched: Instant) {
        let mut map: HashMap<String, MediaObject> =
            folders.into_iter().map(|f| (f.id.clone(), f)).collect();
        for change in self.recent_changes() {
            match change {
                OwnChange::Created(o) if o.is_folder() => {
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
        self.folders = map;
        self.tree_fetched = Some(fetched);
        self.views.clear();
    }

    pub fn set_listing(&mut self, key: FolderKey, mut files: Vec<MediaObject>, fetched: Instant) {
        for change in self.recent_changes() {
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
        self.views.remove(&key);
        if let Some((evicted, _)) = self.listings.push(key.clone(), Listing { files, fetched }) {
            if evicted != key {
                self.views.remove(&evicted);
            }
        }
    }

    /// The folder's entries under their shown names; `None` until both the
    /// tree and the folder's listing are cached.
    pub fn view(&mut self, key: &FolderKey) -> Option<Arc<View>> {
        if let Some(v) = self.views.get(key) {
            return Some(v.clone());
        }
        self.tree_fetched?;
        let files = &self.listings.get(key)?.files;
        let mut objects: Vec<MediaObject> = self
            .folders
            .values()
            .filter(|f| &f.parent_id == key)
            .cloned()
            .collect();
        objects.extend(files.iter().cloned());
        let shown = names::entry_names(&objects);
        let view = Arc::new(View {
            entries: shown.into_iter().zip(objects).collect(),
        });
        self.views.insert(key.clone(), view.clone());
        Some(view)
    }

    // ---- this mount's own changes ----

    /// A new object on the server, made by this mount.
    pub fn add_object(&mut self, object: MediaObject) {
        let key = object.parent_id.clone();
        if object.is_folder() {
            self.folders.insert(object.id.clone(), object.clone());
        } else if let Some(listing) = self.listings.get_mut(&key) {
            listing.files.retain(|f| f.id != object.id);
            listing.files.push(object.clone());
        }
        self.views.remove(&key);
        self.remember(OwnChange::Created(object));
    }

    /// An object this mount just replaced: hidden at once and until its
    /// removal is confirmed, however many listings still show it.
    pub fn supersede(&mut self, id: &str) {
        self.superseded.insert(id.to_owned());
        self.remove_object(id);
    }

    /// The replaced object is gone from the server too.
    pub fn superseded_removed(&mut self, id: &str) {
        self.superseded.remove(id);
    }

    /// An object this mount removed (or replaced) on the server.
    pub fn remove_object(&mut self, id: &str) {
        let parent = match self.folders.remove(id) {
            Some(f) => Some(f.parent_id),
            None => self.listings.iter_mut().find_map(|(key, l)| {
                let before = l.files.len();
                l.files.retain(|f| f.id != id);
                (l.files.len() != before).then(|| key.clone())
            }),
        };
        if let Some(key) = parent {
            self.views.remove(&key);
        }
        self.remember(OwnChange::Removed(id.to_owned()));
    }

    pub fn rename_object(&mut self, id: &str, name: &str) {
        let mut parent = None;
        if let Some(f) = self.folders.get_mut(id) {
            f.name = name.to_owned();
            parent = Some(f.parent_id.clone());
        } else {
            for (key, l) in self.listings.iter_mut() {
                if let Some(f) = l.files.iter_mut().find(|f| f.id == id) {
                    f.name = name.to_owned();
                    parent = Some(key.clone());
                }
            }
        }
        if let Some(key) = parent {
            self.views.remove(&key);
        }
        if let Some(ino) = self.by_id.get(id).copied() {
            if let Some(node) = self.nodes.get_mut(&ino) {
                if let Some(o) = node.object.as_mut() {
                    o.name = name.to_owned();
                }
            }
        }
        self.remember(OwnChange::Renamed(id.to_owned(), name.to_owned()));
    }

    // ---- inodes ----

    /// The inode of a listed object, made if need be, its metadata refreshed
    /// unless it holds bytes not uploaded yet.
    pub fn intern(&mut self, parent: Ino, name: &str, object: &MediaObject) -> Ino {
        let kind = if object.is_folder() {
            FileKind::Dir
        } else {
            FileKind::File
        };
        if let Some(&ino) = self.by_id.get(&object.id) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = parent;
                node.name = name.to_owned();
                node.object = Some(object.clone());
                return ino;
            }
        }
        let ino = self.alloc(Node::new(
            parent,
            name.to_owned(),
            kind,
            Some(object.clone()),
            false,
        ));
        self.by_id.insert(object.id.clone(), ino);
        ino
    }

    fn alloc(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        if self.nodes.len() > 2 * self.idle_nodes_kept {
            self.prune();
        }
        ino
    }

    /// A node that lives only in this mount, for now or for good.
    pub fn add_local(&mut self, parent: Ino, name: &str, kind: FileKind) -> Ino {
        let ino = self.alloc(Node::new(parent, name.to_owned(), kind, None, true));
        self.local_children
            .entry(parent)
            .or_default()
            .insert(name.to_owned(), ino);
        ino
    }

    /// The server object an inode stands for, if any.
    pub fn object_of(&self, ino: Ino) -> Option<MediaObject> {
        self.nodes.get(&ino)?.object.clone()
    }

    pub fn intern_if_known(&self, id: &str) -> Option<Ino> {
        self.by_id.get(id).copied()
    }

    pub fn local_child(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.local_children.get(&parent)?.get(name).copied()
    }

    pub fn local_children(&self, parent: Ino) -> Vec<(String, Ino)> {
        self.local_children
            .get(&parent)
            .map(|m| m.iter().map(|(n, i)| (n.clone(), *i)).collect())
            .unwrap_or_default()
    }

    /// Detaches a local node from its folder (unlink, or its upload landed),
    /// unless another node has taken the name since.
    pub fn drop_local_entry(&mut self, parent: Ino, name: &str, ino: Ino) {
        if let Some(children) = self.local_children.get_mut(&parent) {
            if children.get(name) == Some(&ino) {
                children.remove(name);
            }
        }
    }

    /// Moves or renames a local node among the local entries.
    pub fn move_local(&mut self, ino: Ino, new_parent: Ino, new_name: &str) {
        let (old_parent, old_name) = match self.nodes.get(&ino) {
            Some(n) => (n.parent, n.name.clone()),
            None => return,
        };
        self.drop_local_entry(old_parent, &old_name, ino);
        self.local_children
            .entry(new_parent)
            .or_default()
            .insert(new_name.to_owned(), ino);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.parent = new_parent;
            n.name = new_name.to_owned();
        }
    }

    /// A node now stands for a server object: its first upload, or a
    /// replacement with a new id.
    pub fn bind_object(&mut self, ino: Ino, object: MediaObject) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        if let Some(old) = node.object.take() {
            self.by_id.remove(&old.id);
        }
        if node.local {
            node.local = false;
            let (parent, name) = (node.parent, node.name.clone());
            self.drop_local_entry(parent, &name, ino);
        }
        let node = self.nodes.get_mut(&ino).expect("checked above");
        node.object = Some(object.clone());
        self.by_id.insert(object.id.clone(), ino);
    }

    pub fn forget(&mut self, ino: Ino, count: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(count);
            if ino != ROOT && node.lookups == 0 && node.open == 0 && (!node.local || node.unlinked)
            {
                self.remove_node(ino);
            }
        }
    }

    fn remove_node(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.remove(&ino) {
            if let Some(id) = node.id() {
                if self.by_id.get(id) == Some(&ino) {
                    self.by_id.remove(id);
                }
            }
        }
    }

    /// Drops inodes that neither the kernel nor a handle references.
    fn prune(&mut self) {
        let idle: Vec<Ino> = self
            .nodes
            .iter()
            .filter(|(&ino, n)| {
                ino != ROOT && n.lookups == 0 && n.open == 0 && !n.local && n.staging.is_none()
            })
            .map(|(&ino, _)| ino)
            .collect();
        for ino in idle {
            self.remove_node(ino);
        }
    }
}
