//! An inode and the one rule for how long it lives.
//!
//! What a node is, is one enum: a directory is the root, a folder on the
//! server, or a folder of this mount only; a file is stored, local, staged
//! (open handles write it) or spooled (its bytes wait in the write-back
//! spool). A node lives while the kernel or a handle knows it, while it holds
//! state nothing else holds (bytes not stored yet, an entry of this mount
//! only), and while a node below it lives. The kernel forgetting an inode
//! never takes anything else with it.

use std::sync::Arc;
use std::time::SystemTime;

use crate::api::MediaObject;
use crate::fs::times::Times;
use crate::fs::uploader::StagingCell;
use crate::fs::FileKind;

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// A folder as the service knows it: `None` is the root.
pub type FolderKey = Option<String>;

/// A directory's identity, which outlives any inode of it: a folder of the
/// server (by object id, `None` for the root), or a folder of this mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DirKey {
    Folder(FolderKey),
    Local(u64),
}

#[derive(Debug)]
pub enum DirState {
    Root,
    Folder(MediaObject),
    /// A folder of this mount only (a junk name, or inside another such).
    Local(u64),
}

/// A write-back spool entry holding a file's newest bytes.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// The entry's id in the spool.
    pub entry: String,
    /// Which file the entry belongs to, across rewrites and remounts.
    pub file: String,
    pub len: u64,
    /// The version on the server that the entry will replace, if any.
    pub stored: Option<MediaObject>,
}

/// What staged bytes are written over: where the file's bytes were before
/// a handle began writing, and what it goes back to if they are not kept.
#[derive(Debug, Clone)]
pub enum Base {
    /// Nothing stored: a new file, or one of this mount only.
    New,
    Stored(MediaObject),
    Spooled(Spooled),
}

impl Base {
    /// The version on the server, if any.
    pub fn stored(&self) -> Option<&MediaObject> {
        match self {
            Base::New => None,
            Base::Stored(o) => Some(o),
            Base::Spooled(s) => s.stored.as_ref(),
        }
    }
}

#[derive(Debug)]
pub enum FileState {
    /// On the server, with nothing pending.
    Stored(MediaObject),
    /// Only in this mount (a junk file, an empty new file, a file in a
    /// folder of this mount): its bytes live in the cell alone.
    Local(Arc<StagingCell>),
    /// Open handles write it: the bytes are in the cell, over `over`.
    Staged {
        cell: Arc<StagingCell>,
        over: Base,
        /// Objects it was renamed over while open, before it was ever
        /// stored: they go once it is.
        renamed_over: Vec<String>,
    },
    /// Closed with write-back: the bytes wait in the spool for upload.
    Spooled(Spooled),
}

impl FileState {
    /// The version on the server, if any.
    pub fn stored(&self) -> Option<&MediaObject> {
        match self {
            FileState::Stored(o) => Some(o),
            FileState::Local(_) => None,
            FileState::Staged { over, .. } => over.stored(),
            FileState::Spooled(s) => s.stored.as_ref(),
        }
    }

    /// The spool entry holding the newest settled bytes, if any.
    pub fn spooled(&self) -> Option<&Spooled> {
        match self {
            FileState::Spooled(s)
            | FileState::Staged {
                over: Base::Spooled(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    pub fn staging(&self) -> Option<&Arc<StagingCell>> {
        match self {
            FileState::Local(cell) | FileState::Staged { cell, .. } => Some(cell),
            _ => None,
        }
    }

    /// The length a `stat` shows.
    pub fn len(&self) -> u64 {
        match self {
            FileState::Stored(o) => o.size.unwrap_or(0),
            FileState::Local(cell) | FileState::Staged { cell, .. } => cell.len(),
            FileState::Spooled(s) => s.len,
        }
    }

    /// Whether it holds bytes or an entry that nothing but this node holds.
    fn holds_state(&self) -> bool {
        !matches!(self, FileState::Stored(_))
    }
}

#[derive(Debug)]
pub enum NodeKind {
    Dir(DirState),
    File(FileState),
}

#[derive(Debug)]
pub struct Node {
    /// The directory it is in; a live node keeps its parent alive.
    pub parent: Ino,
    pub name: String,
    pub kind: NodeKind,
    /// Removed from its directory; it lives on while open or known.
    pub unlinked: bool,
    /// Lookups the kernel holds.
    pub lookups: u64,
    /// Open file handles.
    pub open: u32,
    /// Live nodes whose parent this is.
    pub children: u32,
    /// Times set on a node whose upload is pending, or a local one.
    pub pending_times: Option<Times>,
    /// The object whose bytes the kernel's page cache may hold for this inode.
    pub page_cache_id: Option<String>,
    pub created: SystemTime,
    /// When this mount last changed a directory's entries.
    pub entries_changed: Option<SystemTime>,
    /// A directory's listing as the kernel last cached it, hashed.
    pub listing_fingerprint: Option<u64>,
}

impl Node {
    pub fn new(parent: Ino, name: &str, kind: NodeKind) -> Node {
        Node {
            parent,
            name: name.to_owned(),
            kind,
            unlinked: false,
            lookups: 0,
            open: 0,
            children: 0,
            pending_times: None,
            page_cache_id: None,
            created: SystemTime::now(),
            entries_changed: None,
            listing_fingerprint: None,
        }
    }

    /// The one rule for how long a node lives: while the kernel or a handle
    /// knows it, while it holds state that nothing else holds, and while a
    /// node below it lives.
    pub fn in_use(&self) -> bool {
        let holds_state = match &self.kind {
            NodeKind::Dir(DirState::Folder(_)) => false,
            NodeKind::Dir(DirState::Root | DirState::Local(_)) => true,
            NodeKind::File(f) => f.holds_state(),
        };
        self.lookups > 0 || self.open > 0 || self.children > 0 || (holds_state && !self.unlinked)
    }

    pub fn file_kind(&self) -> FileKind {
        match self.kind {
            NodeKind::Dir(_) => FileKind::Dir,
            NodeKind::File(_) => FileKind::File,
        }
    }

    /// The server object it stands for: a folder, or a file's stored version.
    pub fn object(&self) -> Option<&MediaObject> {
        match &self.kind {
            NodeKind::Dir(DirState::Folder(o)) => Some(o),
            NodeKind::Dir(_) => None,
            NodeKind::File(f) => f.stored(),
        }
    }

    /// The node's copy of the server object it stands for, to update.
    pub fn object_mut(&mut self) -> Option<&mut MediaObject> {
        match &mut self.kind {
            NodeKind::Dir(DirState::Folder(o)) => Some(o),
            NodeKind::Dir(_) => None,
            NodeKind::File(f) => match f {
                FileState::Stored(o)
                | FileState::Staged {
                    over: Base::Stored(o),
                    ..
                } => Some(o),
                FileState::Spooled(s)
                | FileState::Staged {
                    over: Base::Spooled(s),
                    ..
                } => s.stored.as_mut(),
                FileState::Local(_) | FileState::Staged { .. } => None,
            },
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.object().map(|o| o.id.as_str())
    }

    pub fn file(&self) -> Option<&FileState> {
        match &self.kind {
            NodeKind::File(f) => Some(f),
            NodeKind::Dir(_) => None,
        }
    }

    /// A directory's identity; `None` for a file.
    pub fn dir_key(&self) -> Option<DirKey> {
        match &self.kind {
            NodeKind::Dir(DirState::Root) => Some(DirKey::Folder(None)),
            NodeKind::Dir(DirState::Folder(o)) => Some(DirKey::Folder(Some(o.id.clone()))),
            NodeKind::Dir(DirState::Local(serial)) => Some(DirKey::Local(*serial)),
            NodeKind::File(_) => None,
        }
    }

    /// The server folder a directory is; `None` for a local one or a file.
    pub fn folder_key(&self) -> Option<FolderKey> {
        match self.dir_key()? {
            DirKey::Folder(key) => Some(key),
            DirKey::Local(_) => None,
        }
    }
}
