//! An unlink while the file's upload is in flight: the upload lands, and
//! the unlinked file must not come back (its new object ends trashed).

use crate::namespace::RaceTarget;
use crate::reference::*;
use crate::semantics::{tellable, Ctx, Res};

impl Model {
    /// Where an upload of the bytes at `p` goes, if they would be uploaded.
    fn upload_target(&self, p: Place, bytes: &[u8]) -> Option<(String, Option<Key>)> {
        let (name, parent) = match p {
            Place::Loc(l) => match self.locals[&l].parent {
                Dir::Srv(folder) if !junk(&self.locals[&l].name) => {
                    (self.locals[&l].name.clone(), folder)
                }
                _ => return None,
            },
            Place::Obj(k) => (self.objs[k].name.clone(), self.objs[k].parent),
        };
        (!bytes.is_empty() && tellable(&name, bytes)).then_some((name, parent))
    }

    /// What an unlink racing an upload picks: a pending upload (write-back),
    /// or an open handle with unstored bytes (sync mode, uploaded at close).
    pub fn race_target(&self, pick: usize) -> Option<RaceTarget> {
        let mut all = Vec::new();
        if self.wb {
            for p in self.pending_places() {
                let bytes = self.pending(p).unwrap().bytes.to_vec();
                all.extend(self.upload_target(p, &bytes).map(|t| (p, t, None)));
            }
        } else {
            for (h, fid) in self.handles.iter().enumerate() {
                let f = &self.files[fid];
                let Some(p) = f.place.filter(|_| f.dirty) else {
                    continue;
                };
                let target = self.upload_target(p, &self.fid_content(*fid));
                all.extend(target.map(|t| (p, t, Some(h))));
            }
        }
        if all.is_empty() {
            return None;
        }
        let (place, (name, parent), handle) = all[pick % all.len()].clone();
        // The pause holds the first upload of this name and folder: it must be this one.
        let first = all
            .iter()
            .position(|(_, t, _)| *t == (name.clone(), parent));
        if first != Some(pick % all.len()) {
            return None;
        }
        Some(RaceTarget {
            place,
            path: self.path_of(place)?,
            name,
            parent,
            handle,
        })
    }

    /// The upload of the target lands as a new object; the unlink takes the
    /// file away; the new object must end trashed.
    fn landed_then_unlinked(&mut self, t: &RaceTarget, bytes: Vec<u8>) {
        self.objs.push(SObj {
            id: None,
            created: None,
            name: t.name.clone(),
            parent: t.parent,
            kind: Kind::File,
            bytes: Some(std::sync::Arc::new(bytes)),
            active: false,
        });
        self.remove_now(t.place);
    }

    fn remove_now(&mut self, place: Place) {
        match place {
            Place::Obj(k) => {
                self.trash_tree(k);
                self.pend_over.remove(&k);
                for f in self.files.values_mut() {
                    if f.place == Some(place) {
                        f.place = None;
                        f.dirty = false;
                    }
                }
            }
            Place::Loc(l) => self.drop_local(l),
        }
    }

    pub fn race_unlink(&mut self, cx: &mut Ctx, pick: usize) -> Res {
        let Some(t) = self.race_target(pick) else {
            return Res::Skip;
        };
        if let Some(h) = t.handle {
            let fid = self.handles[h];
            let bytes = self.fid_content(fid);
            self.landed_then_unlinked(&t, bytes);
            self.release(fid);
            self.handles.remove(h);
            return Res::Ok;
        }
        for p in self.pending_places() {
            if p == t.place {
                let bytes = self.pending(p).unwrap().bytes.to_vec();
                self.landed_then_unlinked(&t, bytes);
            } else {
                let _ = self.upload_pending(cx, p);
            }
        }
        Res::Ok
    }
}
