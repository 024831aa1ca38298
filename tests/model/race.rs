//! An unlink while the file's upload is in flight: the unlink waits for the
//! upload, then removes what it stored, so the file never comes back (its
//! new object ends trashed) and the unlink answers Ok.

use crate::namespace::RaceTarget;
use crate::reference::*;
use crate::semantics::{tellable, Ctx, Res};

impl Model {
    /// Where an upload of the bytes at `p` goes, if they would be uploaded.
    fn upload_target(&self, p: Place, bytes: &[u8]) -> Option<(String, Option<Key>)> {
        let (name, parent) = match p {
            Place::Loc(l) => {
                let local = &self.locals[&l];
                let pending = local.pend.is_some();
                let folder = self.uploadable(local.parent, &local.name, bytes, pending)?;
                (local.name.clone(), folder)
            }
            Place::Obj(k) => (self.objs[k].name.clone(), self.objs[k].parent),
        };
        (!bytes.is_empty() && tellable(&name, bytes)).then_some((name, parent))
    }

    /// What an unlink racing an upload picks: a pending upload (run by
    /// `finish_pending`), or in sync mode an open handle with unstored bytes
    /// (uploaded at its close). The upload held is the first of its name
    /// and folder: it must be the target's.
    pub fn race_target(&self, pick: usize) -> Option<RaceTarget> {
        let mut all = Vec::new();
        let pending: Vec<(Place, (String, Option<Key>))> = self
            .pending_places()
            .into_iter()
            .map(|p| (p, self.pending_target(p)))
            .collect();
        for (i, (p, target)) in pending.iter().enumerate() {
            let first = pending.iter().position(|(_, t)| t == target);
            if first == Some(i) {
                all.push((*p, target.clone(), None));
            }
        }
        if !self.wb {
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
        let dup =
            self.objs.iter().enumerate().any(|(k, o)| {
                o.active && o.name == name && o.parent == parent && !self.is_hidden(k)
            });
        if dup && self.no_race_dups {
            return None;
        }
        Some(RaceTarget {
            path: self.path_of(place)?,
            name,
            parent,
            handle,
        })
    }

    /// The upload lands (as its close or `finish_pending` stores it), then
    /// the unlink removes the object it stored.
    pub fn race_unlink(&mut self, cx: &mut Ctx, pick: usize) -> Res {
        let Some(t) = self.race_target(pick) else {
            return Res::Skip;
        };
        let stored = self.objs.len();
        match t.handle {
            Some(h) => {
                let _ = self.close_handle(cx, h);
            }
            None => self.run_pending(cx),
        }
        let landed = (stored..self.objs.len())
            .find(|&k| self.objs[k].name == t.name && self.objs[k].parent == t.parent);
        let Some(k) = landed else {
            return Res::Err(libc::ENOENT);
        };
        self.trash_tree(k);
        self.forget_object(k);
        Res::Ok
    }
}
