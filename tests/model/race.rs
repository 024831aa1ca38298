//! An unlink while the file's upload is in flight: the unlink waits for the
//! upload, then removes what it stored, so the file never comes back (its
//! new object ends trashed) and the unlink answers Ok.

use crate::namespace::RaceTarget;
use crate::reference::*;
use crate::semantics::{tellable, Ctx, Res};

/// Whether an upload of `bytes` from `p` has a type: a rewrite of an
/// object has its stored version's.
fn typed(p: Place, name: &str, bytes: &[u8]) -> bool {
    matches!(p, Place::Obj(_)) || tellable(name, bytes)
}

impl Model {
    /// Where an upload of the bytes at `p` goes, if they would be uploaded.
    fn upload_target(&self, p: Place, bytes: &[u8]) -> Option<(String, Option<Key>)> {
        let (name, parent) = match p {
            Place::Loc(l) => {
                let local = &self.locals[&l];
                let pending = local.pend.is_some();
                let over = !local.over.is_empty();
                let folder = self.uploadable(local.parent, &local.name, bytes, pending, over)?;
                (local.name.clone(), folder)
            }
            Place::Obj(k) => (self.objs[k].name.clone(), self.objs[k].parent),
        };
        (!bytes.is_empty() && typed(p, &name, bytes)).then_some((name, parent))
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
            let bytes = &self.pending(*p).unwrap().bytes;
            if first == Some(i) && typed(*p, &target.0, bytes) {
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
        Some(RaceTarget {
            place,
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

    /// What a close racing an upload of the same file picks: a queued
    /// upload, the only one of its name and folder, of a file not open.
    pub fn race_close_target(&self, pick: usize) -> Option<RaceTarget> {
        let queued: Vec<(Place, (String, Option<Key>))> = self
            .pending_places()
            .into_iter()
            .map(|p| (p, self.pending_target(p)))
            .collect();
        let all: Vec<&(Place, (String, Option<Key>))> = queued
            .iter()
            .filter(|(p, t)| {
                queued.iter().filter(|(_, u)| u == t).count() == 1
                    && self.fid_at(*p).is_none()
                    && typed(*p, &t.0, &self.pending(*p).unwrap().bytes)
            })
            .collect();
        let (place, (name, parent)) = *all.get(pick % all.len().max(1))?;
        Some(RaceTarget {
            place: *place,
            path: self.path_of(*place)?,
            name: name.clone(),
            parent: *parent,
            handle: None,
        })
    }

    /// `finish_pending` uploads the queue; when it holds the target's
    /// upload, the file is written again and closed: with write-back the
    /// new version is spooled and goes after the one in flight (which it
    /// then replaces); without, the close waits for it and uploads over it.
    pub fn race_close(&mut self, cx: &mut Ctx, pick: usize, data: &[u8]) -> Res {
        let Some(t) = self.race_close_target(pick) else {
            return Res::Skip;
        };
        let p = t.place;
        let fid = self.open_file(p, true);
        self.write(fid, 0, data);
        self.retry_removals(cx);
        self.upload_queue_until(cx, Some(p));
        let in_flight = self.pending(p).unwrap().clone();
        if let Some(pend) = self.pending_mut(p) {
            pend.queued = false;
        }
        let res = if self.wb {
            let res = self.close(cx, fid);
            self.land_in_flight(cx, p, &in_flight);
            res
        } else {
            let _ = self.upload_pending(cx, p);
            self.close(cx, fid)
        };
        self.upload_queue_until(cx, None);
        res
    }

    /// Uploads what is queued, oldest first, up to `stop`.
    pub fn upload_queue_until(&mut self, cx: &mut Ctx, stop: Option<Place>) {
        while let Some(&p) = self.pending_places().first() {
            if Some(p) == stop {
                return;
            }
            self.pending_mut(p).unwrap().queued = false;
            let _ = self.upload_pending(cx, p);
        }
    }

    /// The upload in flight lands while a newer version of the file is
    /// spooled: that one now replaces what landed.
    fn land_in_flight(&mut self, cx: &mut Ctx, p: Place, e1: &Pend) {
        if self.pending(p).is_some_and(|now| now.seq == e1.seq) {
            // Nothing newer was spooled: it lands as usual.
            let _ = self.upload_pending(cx, p);
            return;
        }
        let (name, parent) = self.pending_target(p);
        let typed = matches!(p, Place::Obj(_));
        let Ok(n1) = self.s_upload(cx, &name, parent, &e1.bytes, typed) else {
            return;
        };
        match p {
            Place::Loc(l) => {
                let over = std::mem::take(&mut self.locals.get_mut(&l).unwrap().over);
                for k in over {
                    self.remove_replaced(cx, k);
                }
                self.locals.get_mut(&l).unwrap().over = vec![n1];
                self.hidden_now.insert(n1);
            }
            Place::Obj(k) => {
                let e2 = self.pend_over.remove(&k).expect("a newer version");
                self.rebind(Place::Obj(k), n1);
                self.remove_replaced(cx, k);
                for &a in &e1.also {
                    self.remove_replaced(cx, a);
                }
                let e2 = Pend {
                    also: Vec::new(),
                    ..e2
                };
                self.pend_over.insert(n1, e2);
            }
        }
    }

    /// `finish_pending` uploads the queue; when it holds the target's
    /// upload, a handle on the file (written again or not) is fsynced: it
    /// waits for that upload, then stores what the handle wrote over it.
    pub fn race_fsync(&mut self, cx: &mut Ctx, pick: usize, data: Option<&[u8]>) -> Res {
        let Some(t) = self.race_close_target(pick) else {
            return Res::Skip;
        };
        let p = t.place;
        let fid = self.open_file(p, false);
        if let Some(data) = data {
            self.write(fid, 0, data);
        }
        self.retry_removals(cx);
        self.upload_queue_until(cx, Some(p));
        let in_flight = self.pending(p).unwrap().clone();
        self.pending_mut(p).unwrap().queued = false;
        let synced = if self.wb && self.files[&fid].dirty {
            // Spooled at once, after the version in flight, then uploaded.
            match self.commit(cx, fid) {
                Res::Ok => {
                    self.land_in_flight(cx, p, &in_flight);
                    match self.files[&fid].place {
                        Some(now) if self.pending(now).is_some() => {
                            if let Some(pend) = self.pending_mut(now) {
                                pend.queued = false;
                            }
                            self.upload_pending(cx, now)
                                .map_or_else(Res::Err, |()| Res::Ok)
                        }
                        _ => Res::Ok,
                    }
                }
                other => {
                    let _ = self.upload_pending(cx, p);
                    other
                }
            }
        } else {
            let _ = self.upload_pending(cx, p);
            self.fsync(cx, fid)
        };
        self.upload_queue_until(cx, None);
        let flushed = self.close(cx, fid);
        if synced != Res::Ok {
            return synced;
        }
        flushed
    }
}
