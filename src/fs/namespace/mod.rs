//! The namespace: inodes, the listings they come from, and the entries
//! that live only in this mount.
//!
//! The rule: one `Mutex<Namespace>` guards all of it, and it is never held
//! across an await. Every operation takes it, reads or changes what it
//! needs, and lets go before it talks to the server.
//!
//! Inodes are keyed by object id, so an inode stays the same object while
//! it exists. Entries of this mount only (junk files, empty new files, new
//! files not uploaded yet, folders of this mount) are keyed by their
//! folder's identity, never by an inode number: the kernel may forget the
//! folder's inode at any moment. How long a node lives is one rule,
//! [`Node::in_use`], applied by `forget` and by the pruning of idle nodes
//! alike.

mod listings;
mod node;
mod tree;
mod walks;

use std::collections::{BTreeMap, HashMap};

pub use listings::{Listings, View};
pub use node::{Base, DirKey, DirState, FileState, FolderKey, Ino, Node, NodeKind, Spooled, ROOT};

use crate::api::MediaObject;
use crate::fs::times::Times;
use crate::fs::uploader::Source;
use crate::fs::FsConfig;

/// What an upload's landing leaves for the uploader to do.
#[derive(Debug, Default)]
pub struct Landed {
    /// Times set on the file while its upload was pending, to keep for the new object.
    pub times: Option<Times>,
    /// A newer spool entry of the same file, which now replaces the new object.
    pub newer_entry: Option<String>,
}

/// A spool entry of an earlier mount that replaces an object.
#[derive(Debug)]
struct Adopted {
    spooled: Spooled,
    folder: FolderKey,
    /// The library name it is uploaded as, and the name it is shown under
    /// if it does not become the object's state.
    name: String,
    shown: String,
}

#[derive(Debug)]
pub struct Namespace {
    nodes: HashMap<Ino, Node>,
    by_id: HashMap<String, Ino>,
    next_ino: Ino,
    next_local_dir: u64,
    /// Entries of this mount only, by folder identity and name.
    local: HashMap<DirKey, BTreeMap<String, Ino>>,
    /// Files with bytes in the write-back spool, by the spool's file key.
    spooled_files: HashMap<String, Ino>,
    /// Spool entries of an earlier mount that replace an object no inode
    /// stands for yet, by its id: they become its state when it is looked
    /// up, if it still has their name and folder.
    adopted: HashMap<String, Adopted>,
    /// New files of an earlier mount's spool, by folder, until the folder
    /// has an inode to show them under.
    adopted_new: HashMap<String, Vec<(String, Spooled)>>,
    idle_nodes_kept: usize,
    /// How many nodes make the next pruning.
    prune_at: usize,
    pub listings: Listings,
}

impl Namespace {
    pub fn new(config: &FsConfig) -> Namespace {
        let mut root = Node::new(ROOT, "", NodeKind::Dir(DirState::Root));
        root.lookups = 1;
        Namespace {
            nodes: HashMap::from([(ROOT, root)]),
            by_id: HashMap::new(),
            next_ino: ROOT + 1,
            next_local_dir: 1,
            local: HashMap::new(),
            spooled_files: HashMap::new(),
            adopted: HashMap::new(),
            adopted_new: HashMap::new(),
            idle_nodes_kept: config.idle_nodes_kept,
            prune_at: 2 * config.idle_nodes_kept,
            listings: Listings::new(
                config.metadata_ttl,
                config.clock.clone(),
                config.listings_kept,
            ),
        }
    }

    pub fn node(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn node_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// Whether a file anywhere below `dir` holds bytes the server does not
    /// have: being written, spooled, or of this mount only (junk aside).
    pub fn holds_unstored_below(&self, dir: Ino, is_junk: impl Fn(&str) -> bool) -> bool {
        self.nodes.iter().any(|(&ino, node)| {
            let unstored = match node.file() {
                None | Some(FileState::Stored(_)) => false,
                Some(FileState::Local(_)) => !is_junk(&node.name),
                Some(_) => true,
            };
            unstored && !node.unlinked && self.is_below(ino, dir)
        })
    }

    fn is_below(&self, mut ino: Ino, dir: Ino) -> bool {
        while let Some(node) = self.nodes.get(&ino) {
            if node.parent == dir {
                return true;
            }
            if ino == ROOT || node.parent == ino {
                return false;
            }
            ino = node.parent;
        }
        false
    }

    /// The path of the folder `ino` is in, as the mount shows it, for
    /// messages.
    pub fn folder_path(&self, ino: Ino) -> String {
        let mut parts = Vec::new();
        let mut at = self.node(ino).map(|n| n.parent);
        while let Some(dir) = at.filter(|&d| d != ROOT) {
            let Some(node) = self.node(dir) else { break };
            parts.push(node.name.as_str());
            at = Some(node.parent);
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Records that a directory's entries changed now (its mtime and ctime).
    pub fn touch_dir(&mut self, dir: Ino) {
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.entries_changed = Some(std::time::SystemTime::now());
        }
    }

    pub fn ino_of(&self, id: &str) -> Option<Ino> {
        self.by_id.get(id).copied()
    }

    // ---- making and dropping nodes ----

    fn add_node(&mut self, parent: Ino, name: &str, kind: NodeKind) -> Ino {
        // Counted first, so that the pruning below keeps the parent.
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children += 1;
        }
        if self.nodes.len() > self.prune_at {
            self.prune();
            // When most nodes are in use, do not prune again at every node.
            self.prune_at = (2 * self.idle_nodes_kept).max(2 * self.nodes.len());
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(parent, name, kind));
        ino
    }

    /// The inode of a listed object, made if need be, its metadata refreshed.
    pub fn intern(&mut self, parent: Ino, name: &str, object: &MediaObject) -> Ino {
        if let Some(ino) = self.by_id.get(&object.id).copied() {
            self.refresh(ino, parent, name, object);
            return ino;
        }
        // A leftover rewrite whose object was renamed or moved stays for
        // `settle_adopted` to show as a new file.
        let adopted = match self.adopted.get(&object.id) {
            Some(a) if a.name == object.name && a.folder == object.parent_id => {
                self.adopted.remove(&object.id)
            }
            _ => None,
        };
        let kind = if object.is_folder() {
            NodeKind::Dir(DirState::Folder(object.clone()))
        } else if let Some(adopted) = adopted {
            let mut spooled = adopted.spooled;
            spooled.stored = Some(object.clone());
            NodeKind::File(FileState::Spooled(spooled))
        } else {
            NodeKind::File(FileState::Stored(object.clone()))
        };
        let ino = self.add_node(parent, name, kind);
        self.by_id.insert(object.id.clone(), ino);
        if let Some(s) = self.node(ino).and_then(|n| n.file()?.spooled()) {
            self.spooled_files.insert(s.file.clone(), ino);
        }
        for (name, spooled) in self.adopted_new.remove(&object.id).unwrap_or_default() {
            self.add_adopted(ino, &name, spooled);
        }
        ino
    }

    /// A known node seen in a listing again: its name and metadata as listed.
    fn refresh(&mut self, ino: Ino, parent: Ino, name: &str, object: &MediaObject) {
        let moved = self.nodes.get(&ino).is_some_and(|n| n.parent != parent);
        if moved {
            self.relink(ino, parent);
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        name.clone_into(&mut node.name);
        if let Some(o) = node.object_mut().filter(|o| o.id == object.id) {
            *o = object.clone();
        }
    }

    /// An object this mount renamed on the server: its listings, and the
    /// inode that stands for it, name it anew.
    pub fn rename_object(&mut self, id: &str, name: &str) {
        self.listings.rename(id, name);
        if let Some(node) = self.by_id.get(id).and_then(|ino| self.nodes.get_mut(ino)) {
            name.clone_into(&mut node.name);
            if let Some(o) = node.object_mut().filter(|o| o.id == id) {
                name.clone_into(&mut o.name);
            }
        }
    }

    /// Moves a node under another parent, keeping the children counts true.
    fn relink(&mut self, ino: Ino, new_parent: Ino) {
        let Some(old_parent) = self.nodes.get(&ino).map(|n| n.parent) else {
            return;
        };
        if old_parent == new_parent {
            return;
        }
        if let Some(p) = self.nodes.get_mut(&new_parent) {
            p.children += 1;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.parent = new_parent;
        }
        if let Some(p) = self.nodes.get_mut(&old_parent) {
            p.children = p.children.saturating_sub(1);
        }
        self.drop_if_unused(old_parent);
    }

    /// Drops a node that nothing uses any more, then its parent if that
    /// was all that kept it.
    pub fn drop_if_unused(&mut self, mut ino: Ino) {
        while ino != ROOT && self.nodes.get(&ino).is_some_and(|n| !n.in_use()) {
            let node = self.nodes.remove(&ino).expect("just found");
            if let Some(id) = node.id() {
                if self.by_id.get(id) == Some(&ino) {
                    self.by_id.remove(id);
                }
            }
            match self.nodes.get_mut(&node.parent) {
                Some(parent) => parent.children = parent.children.saturating_sub(1),
                None => return,
            }
            ino = node.parent;
        }
    }

    /// The kernel drops `count` lookups of `ino`.
    pub fn forget(&mut self, ino: Ino, count: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(count);
            self.drop_if_unused(ino);
        }
    }

    /// Drops every node nothing uses (past `idle_nodes_kept` nodes).
    fn prune(&mut self) {
        let idle: Vec<Ino> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.in_use())
            .map(|(&ino, _)| ino)
            .collect();
        for ino in idle {
            self.drop_if_unused(ino);
        }
    }

    // ---- entries of this mount only ----

    fn dir_key(&self, dir: Ino) -> Option<DirKey> {
        self.nodes.get(&dir)?.dir_key()
    }

    /// A node that lives only in this mount, for now or for good.
    pub fn add_local(&mut self, parent: Ino, name: &str, kind: NodeKind) -> Ino {
        let kind = match kind {
            NodeKind::Dir(_) => {
                self.next_local_dir += 1;
                NodeKind::Dir(DirState::Local(self.next_local_dir))
            }
            file => file,
        };
        let ino = self.add_node(parent, name, kind);
        if let Some(key) = self.dir_key(parent) {
            self.local
                .entry(key)
                .or_default()
                .insert(name.to_owned(), ino);
        }
        ino
    }

    pub fn local_child(&self, dir: Ino, name: &str) -> Option<Ino> {
        self.local.get(&self.dir_key(dir)?)?.get(name).copied()
    }

    pub fn local_children(&self, dir: Ino) -> Vec<(String, Ino)> {
        self.dir_key(dir)
            .and_then(|key| self.local.get(&key))
            .map(|m| m.iter().map(|(n, i)| (n.clone(), *i)).collect())
            .unwrap_or_default()
    }

    /// Takes a node out of its folder's local entries, unless another node
    /// has taken the name since.
    fn detach_local(&mut self, ino: Ino) {
        let Some((parent, name)) = self.nodes.get(&ino).map(|n| (n.parent, n.name.clone())) else {
            return;
        };
        let Some(key) = self.dir_key(parent) else {
            return;
        };
        if let Some(children) = self.local.get_mut(&key) {
            if children.get(&name) == Some(&ino) {
                children.remove(&name);
                if children.is_empty() {
                    self.local.remove(&key);
                }
            }
        }
    }

    /// Moves or renames a node among the local entries.
    pub fn move_local(&mut self, ino: Ino, new_parent: Ino, new_name: &str) {
        self.detach_local(ino);
        self.relink(ino, new_parent);
        if let Some(n) = self.nodes.get_mut(&ino) {
            new_name.clone_into(&mut n.name);
        }
        if let Some(key) = self.dir_key(new_parent) {
            self.local
                .entry(key)
                .or_default()
                .insert(new_name.to_owned(), ino);
        }
    }

    /// Puts a node that stands for a server object under a new name or
    /// folder (a rename, or a new file stored under another name).
    pub fn place(&mut self, ino: Ino, parent: Ino, name: &str) {
        self.relink(ino, parent);
        if let Some(n) = self.nodes.get_mut(&ino) {
            name.clone_into(&mut n.name);
        }
    }

    /// Takes a directory's entries of this mount only out of sight, those
    /// below them too (a folder removed with only junk in it).
    pub fn unlink_local_tree(&mut self, dir: Ino) {
        for (_, ino) in self.local_children(dir) {
            self.unlink_local_tree(ino);
            self.unlink(ino);
        }
    }

    /// Takes a node out of sight: gone once nothing uses it.
    pub fn unlink(&mut self, ino: Ino) {
        self.detach_local(ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.unlinked = true;
            if let Some(s) = node.file().and_then(FileState::spooled) {
                let file = s.file.clone();
                self.spooled_files.remove(&file);
            }
        }
        self.drop_if_unused(ino);
    }

    /// A node now stands for a server object: its first upload, or a
    /// replacement with a new id. Its state is the caller's to set.
    pub fn bind(&mut self, ino: Ino, object: &MediaObject) {
        self.detach_local(ino);
        if let Some(old) = self.nodes.get(&ino).and_then(|n| n.id().map(str::to_owned)) {
            if self.by_id.get(&old) == Some(&ino) {
                self.by_id.remove(&old);
            }
        }
        self.by_id.insert(object.id.clone(), ino);
    }

    // ---- uploads ----

    /// An upload landed: `new` is stored in place of `replaced`, which are
    /// hidden at once. The node whose bytes it holds now stands for it.
    pub fn landed(&mut self, source: &Source, new: &MediaObject, replaced: &[String]) -> Landed {
        self.listings.add(new.clone());
        for id in replaced {
            self.listings.supersede(id);
        }
        self.listings.check_namesakes(new);
        let ino = match source {
            Source::Cell(ino) => Some(*ino),
            Source::Entry { file, .. } => self.spooled_file(file),
        };
        let Some((ino, node)) = ino.and_then(|ino| Some((ino, self.nodes.get_mut(&ino)?))) else {
            if let Source::Entry { file, .. } = source {
                self.forget_adopted(file);
            }
            return Landed::default();
        };
        let (landed, settled_file) = land_on(node, source, new);
        if let Some(file) = settled_file {
            self.spooled_files.remove(&file);
        }
        // The name means the new object now, even while newer bytes wait.
        self.bind(ino, new);
        landed
    }

    // ---- the write-back spool ----

    /// The node whose bytes a spool file key holds.
    pub fn spooled_file(&self, file: &str) -> Option<Ino> {
        self.spooled_files.get(file).copied()
    }

    pub fn set_spooled_file(&mut self, file: &str, ino: Option<Ino>) {
        match ino {
            Some(ino) => self.spooled_files.insert(file.to_owned(), ino),
            None => self.spooled_files.remove(file),
        };
    }

    /// A spool entry left by an earlier mount, shown at once: a new file
    /// becomes an entry of its folder (once the folder has an inode); one
    /// that replaces an object becomes that object's state when it is
    /// looked up, if the object still has its name (see
    /// [`Self::settle_adopted`]).
    pub fn adopt(
        &mut self,
        spooled: Spooled,
        folder: FolderKey,
        (name, shown): (&str, &str),
        replaces: Option<&str>,
    ) {
        match (replaces, folder) {
            (Some(id), folder) => {
                let adopted = Adopted {
                    spooled,
                    folder,
                    name: name.to_owned(),
                    shown: shown.to_owned(),
                };
                self.adopted.insert(id.to_owned(), adopted);
            }
            (None, None) => self.add_adopted(ROOT, shown, spooled),
            (None, Some(folder)) => match self.by_id.get(&folder).copied() {
                Some(dir) => self.add_adopted(dir, shown, spooled),
                None => self
                    .adopted_new
                    .entry(folder)
                    .or_default()
                    .push((shown.to_owned(), spooled)),
            },
        }
    }

    /// Once a folder's listing is known: an adopted entry whose object is
    /// gone from it or renamed meanwhile (elsewhere, or by this file's own
    /// renames before the crash) is a new file under its own name, and the
    /// object stays hidden until the upload replaces it. True when any
    /// such entry changed the listing.
    pub fn settle_adopted(&mut self, dir: Ino, key: &FolderKey, view: &View) -> bool {
        // An entry's object listed in another folder than the entry's own
        // (the file was moved before the crash, its bytes still spooled)
        // is hidden here at once: the entry replaces it, and shows in its
        // own folder once that is listed.
        let elsewhere: Vec<String> = self
            .adopted
            .iter()
            .filter(|(id, a)| &a.folder != key && view.entries.values().any(|o| &o.id == *id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &elsewhere {
            self.listings.supersede(id);
        }
        let mut astray: Vec<(String, String)> = self
            .adopted
            .iter()
            .filter(|(id, a)| {
                &a.folder == key
                    && !view
                        .entries
                        .values()
                        .any(|o| &o.id == *id && o.name == a.name)
            })
            .map(|(id, a)| (a.spooled.entry.clone(), id.clone()))
            .collect();
        // Oldest first: a name already taken by another file of this mount
        // keeps it, and the other stays out of sight until it is uploaded.
        astray.sort();
        for (_, id) in &astray {
            let adopted = self.adopted.remove(id).expect("just found");
            self.listings.supersede(id);
            if self.local_child(dir, &adopted.shown).is_none() {
                self.add_adopted(dir, &adopted.shown, adopted.spooled);
            }
        }
        !astray.is_empty() || !elsewhere.is_empty()
    }

    fn add_adopted(&mut self, dir: Ino, name: &str, spooled: Spooled) {
        let file = spooled.file.clone();
        let ino = self.add_local(dir, name, NodeKind::File(FileState::Spooled(spooled)));
        self.spooled_files.insert(file, ino);
    }

    /// An adopted entry whose upload landed before any inode showed it.
    pub fn forget_adopted(&mut self, file: &str) {
        self.adopted.retain(|_, a| a.spooled.file != file);
        for entries in self.adopted_new.values_mut() {
            entries.retain(|(_, s)| s.file != file);
        }
    }
}

/// What a node becomes when an upload of its bytes lands as `new`, and the
/// spool file key it no longer has pending, if any.
fn land_on(node: &mut Node, source: &Source, new: &MediaObject) -> (Landed, Option<String>) {
    let mut landed = Landed::default();
    let NodeKind::File(state) = &mut node.kind else {
        return (landed, None);
    };
    let mut settled_file = None;
    match (state, source) {
        (FileState::Spooled(s), Source::Entry { entry, .. })
        | (
            FileState::Staged {
                over: Base::Spooled(s),
                ..
            },
            Source::Entry { entry, .. },
        ) if &s.entry != entry => {
            // A newer entry of the file is pending: it replaces this one,
            // and takes the times set meanwhile.
            s.stored = Some(new.clone());
            landed.newer_entry = Some(s.entry.clone());
            return (landed, None);
        }
        (
            FileState::Staged {
                over, renamed_over, ..
            },
            _,
        ) => {
            if let Base::Spooled(s) = over {
                settled_file = Some(s.file.clone());
            }
            *over = Base::Stored(new.clone());
            renamed_over.clear();
        }
        (state, _) => {
            if let FileState::Spooled(s) = state {
                settled_file = Some(s.file.clone());
            }
            *state = FileState::Stored(new.clone());
        }
    }
    landed.times = node.pending_times.take();
    (landed, settled_file)
}
