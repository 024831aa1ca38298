//! Objects this mount replaced whose removal from the server has not been
//! confirmed yet. They are hidden, so that their name means their
//! replacement, and their removal is tried again; the list is kept in the
//! cache dir, so both hold across a remount or a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug)]
pub struct Removals {
    path: PathBuf,
    /// Object id, and its name for log lines.
    pending: Mutex<BTreeMap<String, String>>,
}

impl Removals {
    pub fn open(path: &Path) -> Removals {
        let pending = std::fs::read(path)
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default();
        Removals {
            path: path.to_path_buf(),
            pending: Mutex::new(pending),
        }
    }

    pub fn all(&self) -> Vec<(String, String)> {
        let pending = self.pending.lock().unwrap();
        pending
            .iter()
            .map(|(i, n)| (i.clone(), n.clone()))
            .collect()
    }

    pub fn add(&self, id: &str, name: &str) {
        let mut pending = self.pending.lock().unwrap();
        pending.insert(id.to_owned(), name.to_owned());
        self.save(&pending);
    }

    pub fn done(&self, id: &str) {
        let mut pending = self.pending.lock().unwrap();
        if pending.remove(id).is_some() {
            self.save(&pending);
        }
    }

    fn save(&self, pending: &BTreeMap<String, String>) {
        let json = serde_json::to_vec_pretty(pending).expect("a map of strings serializes");
        if let Err(e) = crate::atomic_file::replace(&self.path, &json) {
            log::warn!(
                "cannot record the replaced versions still to remove in {}: {e}; \
                 after a remount they may show beside their replacements",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_removals_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("removals.json");
        let removals = Removals::open(&path);
        removals.add("a1", "a.png");
        removals.add("b2", "b.png");
        removals.done("a1");
        assert_eq!(
            Removals::open(&path).all(),
            [("b2".to_owned(), "b.png".to_owned())]
        );
    }
}
