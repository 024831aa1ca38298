//! Files waiting for a name. The library stores nothing without a type, and
//! `sed -i`, `perl -i`, gedit, LibreOffice and Python's tempfile save through
//! a temp name (`sedX2b9Qa`, `.goutputstream-TZ1Q`) that tells none, then
//! rename it over the real file. Such a file is not refused at `close`: it
//! stays in this mount, in staging, until the rename that names it uploads
//! it (and reports any failure).
//!
//! While it waits, its bytes are also hard-linked under `unnamed/` with a
//! record of its name, so that a crash keeps them. A file that never gets a
//! name is never dropped in silence: a warning names it
//! [`GRACE`] after its close, and at unmount, or at the next mount after a
//! crash, its bytes move to `unstored/` in the cache dir with an error that
//! says where.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fs::namespace::Ino;

/// How long after its close a file without a name is warned about.
pub const GRACE: Duration = Duration::from_secs(30);

const NEVER_NAMED: &str = "neither its bytes nor its name tell the type the library needs, \
     and it was never renamed to a name that does";
const NEVER_NAMED_EARLIER: &str = "an earlier mount ended before it was renamed to a name that \
     tells the type the library needs";
const UPLOAD_FAILED: &str = "it was written again, and that version could not be uploaded";

/// What a waiting file was, kept beside its bytes.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    name: String,
    /// The folder it is in, as the mount shows it.
    folder: String,
}

#[derive(Debug)]
struct Waiting {
    key: u64,
    name: String,
}

#[derive(Debug)]
pub struct Unnamed {
    dir: PathBuf,
    unstored: PathBuf,
    waiting: Mutex<HashMap<Ino, Waiting>>,
    next_key: AtomicU64,
}

impl Unnamed {
    /// Opens `unnamed/` in the cache dir; what an earlier mount left there
    /// (it crashed) moves to `unstored/`.
    pub fn open(cache_dir: &Path) -> std::io::Result<Unnamed> {
        let unnamed = Unnamed {
            dir: cache_dir.join("unnamed"),
            unstored: cache_dir.join("unstored"),
            waiting: Mutex::default(),
            next_key: AtomicU64::new(1),
        };
        std::fs::create_dir_all(&unnamed.dir)?;
        // Bytes whose record a crash cut short are kept too.
        let mut left = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&unnamed.dir)? {
            left.insert(entry?.path().with_extension(""));
        }
        for base in left {
            unnamed.keep(&base, NEVER_NAMED_EARLIER);
        }
        Ok(unnamed)
    }

    /// Records that the new file `ino`, whose bytes are at `data`, waits
    /// for a name; true when it did not wait under this name already.
    pub fn wait(&self, ino: Ino, data: &Path, name: &str, folder: &str) -> std::io::Result<bool> {
        let key = self.next_key.fetch_add(1, Ordering::SeqCst);
        let base = self.dir.join(key.to_string());
        // What waits must outlive a crash of the machine, too.
        std::fs::File::open(data)?.sync_data()?;
        std::fs::hard_link(data, base.with_extension("data"))?;
        let record = Record {
            name: name.to_owned(),
            folder: folder.to_owned(),
        };
        let json = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        if let Err(e) = crate::atomic_file::replace(&base.with_extension("json"), &json) {
            let _ = std::fs::remove_file(base.with_extension("data"));
            return Err(e);
        }
        let waiting = Waiting {
            key,
            name: name.to_owned(),
        };
        let earlier = self.waiting.lock().unwrap().insert(ino, waiting);
        let new_name = earlier.as_ref().is_none_or(|w| w.name != name);
        if let Some(earlier) = earlier {
            self.remove(earlier.key);
        }
        Ok(new_name)
    }

    /// The file is stored, spooled, unlinked, or stays here for good.
    pub fn done(&self, ino: Ino) {
        let earlier = self.waiting.lock().unwrap().remove(&ino);
        if let Some(earlier) = earlier {
            self.remove(earlier.key);
        }
    }

    /// A waiting file that could not be kept in the mount (written again,
    /// its upload failed, and it left no entry): its bytes go to
    /// `unstored/` now, with an error naming it.
    pub fn give_up(&self, ino: Ino) {
        let earlier = self.waiting.lock().unwrap().remove(&ino);
        if let Some(earlier) = earlier {
            self.keep(&self.dir.join(earlier.key.to_string()), UPLOAD_FAILED);
        }
    }

    /// The key of what `ino` waits as now, if it does.
    pub fn key(&self, ino: Ino) -> Option<u64> {
        self.waiting.lock().unwrap().get(&ino).map(|w| w.key)
    }

    /// At unmount: the files still waiting (as `live` says) move to
    /// `unstored/`, each with an error naming it; returns how many.
    pub fn keep_waiting(&self, live: impl Fn(Ino) -> bool) -> usize {
        let all: Vec<(Ino, Waiting)> = self.waiting.lock().unwrap().drain().collect();
        let mut kept = 0;
        for (ino, waiting) in all {
            if live(ino) {
                self.keep(&self.dir.join(waiting.key.to_string()), NEVER_NAMED);
                kept += 1;
            } else {
                self.remove(waiting.key);
            }
        }
        kept
    }

    /// Where the files that never got a name are kept.
    pub fn unstored_dir(&self) -> &Path {
        &self.unstored
    }

    fn remove(&self, key: u64) {
        let base = self.dir.join(key.to_string());
        let _ = std::fs::remove_file(base.with_extension("json"));
        let _ = std::fs::remove_file(base.with_extension("data"));
    }

    /// Moves a waiting file's bytes to `unstored/`, and says why.
    fn keep(&self, base: &Path, why: &str) {
        let record: Option<Record> = std::fs::read(base.with_extension("json"))
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok());
        let (name, folder) = record.map_or_else(
            || ("unnamed".to_owned(), "?".to_owned()),
            |r| (r.name, r.folder),
        );
        let data = base.with_extension("data");
        if !data.exists() {
            let _ = std::fs::remove_file(base.with_extension("json"));
            return;
        }
        let kept = std::fs::create_dir_all(&self.unstored).and_then(|()| {
            let to = free_path(&self.unstored, &name);
            std::fs::rename(&data, &to).map(|()| to)
        });
        match kept {
            Ok(to) => {
                log::error!(
                    "{name:?} in {folder} was never stored: {why}. Its bytes are kept in {}; copy it \
                     back under a name with an extension to upload it",
                    to.display()
                );
                let _ = std::fs::remove_file(base.with_extension("json"));
            }
            Err(e) => log::error!(
                "{name:?} in {folder} was never stored ({why}), and its bytes could not be moved \
                 from {} to {}: {e}",
                data.display(),
                self.unstored.display()
            ),
        }
    }
}

/// `dir/name`, or `dir/name (2)` and so on when that is taken.
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let name = if name.is_empty() { "unnamed" } else { name };
    let mut path = dir.join(name);
    let mut n = 2;
    while path.symlink_metadata().is_ok() {
        path = dir.join(format!("{name} ({n})"));
        n += 1;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_what_waited_and_a_store_forgets_it() {
        let cache = tempfile::tempdir().unwrap();
        let staging = cache.path().join("sedAb12Cd");
        std::fs::write(&staging, b"edited\n").unwrap();
        let unnamed = Unnamed::open(cache.path()).unwrap();
        assert!(unnamed.wait(7, &staging, "sedAb12Cd", "/notes").unwrap());
        assert!(!unnamed.wait(7, &staging, "sedAb12Cd", "/notes").unwrap());
        let other = cache.path().join("other");
        std::fs::write(&other, b"stored\n").unwrap();
        unnamed.wait(8, &other, "tmp2", "/").unwrap();
        unnamed.done(8);
        // The staging file goes with the crashed mount; the link keeps it.
        std::fs::remove_file(&staging).unwrap();
        drop(unnamed);
        let _again = Unnamed::open(cache.path()).unwrap();
        let kept = cache.path().join("unstored/sedAb12Cd");
        assert_eq!(std::fs::read(&kept).unwrap(), b"edited\n");
        assert!(!cache.path().join("unstored/tmp2").exists());
        assert_eq!(
            std::fs::read_dir(cache.path().join("unnamed"))
                .unwrap()
                .count(),
            0
        );
        // Bytes whose record a crash cut short are kept as well.
        std::fs::write(cache.path().join("unnamed/9.data"), b"cut short").unwrap();
        drop(_again);
        let _third = Unnamed::open(cache.path()).unwrap();
        assert_eq!(
            std::fs::read(cache.path().join("unstored/unnamed")).unwrap(),
            b"cut short"
        );
    }

    #[test]
    fn unmount_keeps_only_the_files_still_waiting() {
        let cache = tempfile::tempdir().unwrap();
        let a = cache.path().join("a");
        std::fs::write(&a, b"a").unwrap();
        let unnamed = Unnamed::open(cache.path()).unwrap();
        unnamed.wait(1, &a, "tmpA", "/").unwrap();
        unnamed.wait(2, &a, "tmpB", "/").unwrap();
        assert_eq!(unnamed.keep_waiting(|ino| ino == 1), 1);
        assert!(cache.path().join("unstored/tmpA").exists());
        assert!(!cache.path().join("unstored/tmpB").exists());
        // A second file of the same name does not overwrite the first.
        unnamed.wait(3, &a, "tmpA", "/").unwrap();
        unnamed.keep_waiting(|_| true);
        assert!(cache.path().join("unstored/tmpA (2)").exists());
    }
}
