//! The agency's locations as the mount knows them: one slot per location
//! ever listed while mounted (slots are never reused, so inode numbers stay
//! valid), each with its own [`MediaFs`], whether the app is still
//! installed there, and the folder name it shows at the root.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::inodes::Slot;
use crate::api::InstalledLocation;
use crate::fs::names::{distinct_names, Named};
use crate::fs::{Backend, DirEntry, FileKind, MediaFs, ROOT};

/// Whether the app is installed on a location, as last listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Installed,
    /// No longer listed: its folder is gone from the root; its library
    /// stays open for inodes the kernel still holds and uploads it has.
    Gone,
}

pub struct Place<B: Backend> {
    pub id: String,
    /// Its name in HighLevel.
    pub name: String,
    /// Its entry name at the root.
    pub folder: String,
    pub standing: Standing,
    pub fs: Arc<MediaFs<B>>,
}

/// What a new listing changed, for the log and the kernel's caches.
#[derive(Debug, Default)]
pub struct Changes {
    /// Entry names at the root the kernel may hold that no longer are.
    pub stale_folders: Vec<String>,
    /// Locations newly gone: (name, id).
    pub gone: Vec<(String, String)>,
}

pub struct Roster<B: Backend> {
    /// Slot `n` is at index `n - 1`.
    places: Vec<Place<B>>,
    by_id: HashMap<String, Slot>,
    pub listed_at: Option<Instant>,
    /// Open listings of the root, by handle.
    pub root_listings: HashMap<u64, Vec<DirEntry>>,
    pub next_root_fh: u64,
}

impl<B: Backend> Default for Roster<B> {
    fn default() -> Self {
        Roster {
            places: Vec::new(),
            by_id: HashMap::new(),
            listed_at: None,
            root_listings: HashMap::new(),
            next_root_fh: 1,
        }
    }
}

impl<B: Backend> Roster<B> {
    pub fn place(&self, slot: Slot) -> Option<&Place<B>> {
        slot.checked_sub(1).and_then(|i| self.places.get(i))
    }

    pub fn places(&self) -> impl Iterator<Item = (Slot, &Place<B>)> {
        self.places.iter().enumerate().map(|(i, p)| (i + 1, p))
    }

    pub fn knows(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The installed location shown as `folder` at the root.
    pub fn installed_at(&self, folder: &str) -> Option<(Slot, &Place<B>)> {
        self.places()
            .find(|(_, p)| p.standing == Standing::Installed && p.folder == folder)
    }

    /// The root's entries, by name.
    pub fn root_entries(&self) -> Vec<DirEntry> {
        let mut entries: Vec<DirEntry> = self
            .places()
            .filter(|(_, p)| p.standing == Standing::Installed)
            .map(|(slot, p)| DirEntry {
                ino: super::inodes::lift(slot, ROOT),
                name: p.folder.clone(),
                kind: FileKind::Dir,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// Takes in a new listing; `opened` holds a library for each location
    /// the roster did not know.
    pub fn apply(
        &mut self,
        listed: &[InstalledLocation],
        mut opened: HashMap<String, Arc<MediaFs<B>>>,
    ) -> Changes {
        let mut changes = Changes::default();
        let before: Vec<(Standing, String)> = self
            .places
            .iter()
            .map(|p| (p.standing, p.folder.clone()))
            .collect();
        let listed_ids: HashMap<&str, &InstalledLocation> =
            listed.iter().map(|l| (l.id.as_str(), l)).collect();
        for place in &mut self.places {
            match listed_ids.get(place.id.as_str()) {
                Some(l) => {
                    place.standing = Standing::Installed;
                    place.name = l.name.clone();
                }
                None => place.standing = Standing::Gone,
            }
        }
        for l in listed {
            if let Some(fs) = opened.remove(&l.id) {
                self.places.push(Place {
                    id: l.id.clone(),
                    name: l.name.clone(),
                    folder: String::new(),
                    standing: Standing::Installed,
                    fs,
                });
                self.by_id.insert(l.id.clone(), self.places.len());
            }
        }
        self.name_folders();
        for (place, (was, folder)) in self.places.iter().zip(before) {
            if was != Standing::Installed {
                continue;
            }
            if place.standing == Standing::Gone {
                changes.gone.push((place.name.clone(), place.id.clone()));
            }
            if place.standing == Standing::Gone || place.folder != folder {
                changes.stale_folders.push(folder);
            }
        }
        changes
    }

    /// Folder names for the installed locations: their names, escaped,
    /// and told apart by id where two coincide (the lowest id keeps the
    /// plain name, whatever order they are listed in).
    fn name_folders(&mut self) {
        let installed: Vec<usize> = (0..self.places.len())
            .filter(|&i| self.places[i].standing == Standing::Installed)
            .collect();
        let named: Vec<Named> = installed
            .iter()
            .map(|&i| Named {
                name: &self.places[i].name,
                id: &self.places[i].id,
                created: None,
            })
            .collect();
        let folders = distinct_names(&named);
        for (i, folder) in installed.into_iter().zip(folders) {
            self.places[i].folder = folder;
        }
    }
}
