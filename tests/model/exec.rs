//! Each operation on the core, the way a program and the kernel would do it.

use mediafs::fs::{FileKind, RenameFlags, SetAttr};

use crate::common::png_bytes;
use std::time::Duration;
use tokio::sync::oneshot;

use crate::harness::{fail, t, Harness, Stop, ADVANCE, H, HANG};
use crate::namespace::{is_prefix, RaceTarget};
use crate::ops::{Op, P};
use crate::semantics::Res;

fn errno(e: i32) -> Stop {
    Stop::Errno(e)
}

impl Harness {
    pub async fn exec(&mut self, op: &Op) -> H<Res> {
        match op {
            Op::WriteFile { path, len, seed } => {
                self.write_file(path.p(), &png_bytes(*len, *seed)).await
            }
            Op::Create { path, excl } => self.create(path.p(), *excl).await,
            Op::OpenWrite { path, trunc } => self.open_write(path.p(), *trunc).await,
            Op::Write { h, off, len, seed } => {
                let (_, fh) = self.handle(*h)?;
                let data = png_bytes(*len, *seed);
                let n = t("write", self.fs().write(fh, *off, &data)).await??;
                if n as usize != data.len() {
                    return fail(format!("write took {n} of {} bytes", data.len()));
                }
                Ok(Res::Ok)
            }
            Op::Flush { h } => {
                let (_, fh) = self.handle(*h)?;
                t("flush", self.fs().flush(fh)).await??;
                Ok(Res::Ok)
            }
            Op::Fsync { h } => {
                let (_, fh) = self.handle(*h)?;
                t("fsync", self.fs().fsync(fh)).await??;
                Ok(Res::Ok)
            }
            Op::Close { h } => {
                let (i, fh) = self.handle(*h)?;
                self.handles.remove(i);
                let flushed = t("flush", self.fs().flush(fh)).await?;
                self.fs().release(fh);
                flushed?;
                Ok(Res::Ok)
            }
            _ => self.exec_names(op).await,
        }
    }

    async fn exec_names(&mut self, op: &Op) -> H<Res> {
        match op {
            Op::Read { path } => {
                let attr = self.file_at(path.p()).await?;
                Ok(Res::Data(self.read_all(attr.ino, true).await?))
            }
            Op::Truncate { path, len } => {
                let attr = self.file_at(path.p()).await?;
                let change = SetAttr {
                    size: Some(*len),
                    ..SetAttr::default()
                };
                t("setattr", self.fs().setattr(attr.ino, change)).await??;
                Ok(Res::Ok)
            }
            Op::Rename {
                from,
                to,
                noreplace,
            } => self.rename(from.p(), to.p(), *noreplace).await,
            Op::Mkdir { path } => {
                let path = path.p();
                let (dir, leaf) = self.resolve(path).await?;
                if leaf.is_some() {
                    return Err(errno(libc::EEXIST));
                }
                let attr = t("mkdir", self.fs().mkdir(dir, path.leaf())).await??;
                self.count(attr.ino);
                Ok(Res::Ok)
            }
            Op::Rmdir { path } => {
                let path = path.p();
                let (dir, leaf) = self.resolve(path).await?;
                let attr = leaf.ok_or(errno(libc::ENOENT))?;
                if attr.kind != FileKind::Dir {
                    return Err(errno(libc::ENOTDIR));
                }
                t("rmdir", self.fs().rmdir(dir, path.leaf())).await??;
                Ok(Res::Ok)
            }
            Op::Unlink { path } => self.unlink(path.p()).await,
            Op::Readdir { path, page, plus } => {
                let ino = self.resolve_dir(&path.p().0).await?;
                let listed = self.list(ino, *page, *plus).await?;
                let mut names: Vec<_> = listed
                    .into_iter()
                    .map(|(n, k, _)| (n, crate::check::kind(k)))
                    .collect();
                names.sort();
                Ok(Res::Names(names))
            }
            _ => self.exec_around(op).await,
        }
    }

    async fn exec_around(&mut self, op: &Op) -> H<Res> {
        match op {
            Op::Forget { pick } => Ok(self.forget(*pick)),
            Op::ForgetAll => Ok(self.forget_all()),
            Op::Remount { crash, wb } => self.remount(*crash, *wb).await,
            Op::Remote(r) => self.remote(r).await,
            Op::Advance => {
                self.clock.advance(ADVANCE);
                Ok(Res::Ok)
            }
            Op::Arm { call, after } => {
                self.backend.arm(*call, *after);
                Ok(Res::Ok)
            }
            Op::RunPending => {
                t("finish_pending", self.fs().finish_pending()).await?;
                Ok(Res::Ok)
            }
            Op::RaceUnlink { pick } => self.race(*pick).await,
            Op::RaceFsync {
                pick,
                write,
                len,
                seed,
            } => {
                let data = write.then(|| png_bytes(*len, *seed));
                self.race_fsync(*pick, data.as_deref()).await
            }
            Op::RaceClose { pick, len, seed } => {
                self.race_close(*pick, &png_bytes(*len, *seed)).await
            }
            _ => unreachable!("every op is handled"),
        }
    }

    /// The file at a path: ENOENT, EISDIR.
    async fn file_at(&mut self, path: &P) -> H<mediafs::fs::Attr> {
        let (_, leaf) = self.resolve(path).await?;
        let attr = leaf.ok_or(errno(libc::ENOENT))?;
        if attr.kind == FileKind::Dir {
            return Err(errno(libc::EISDIR));
        }
        Ok(attr)
    }

    async fn write_file(&mut self, path: &P, data: &[u8]) -> H<Res> {
        let (dir, leaf) = self.resolve(path).await?;
        let fh = match leaf {
            Some(a) if a.kind == FileKind::Dir => return Err(errno(libc::EISDIR)),
            Some(a) => self.open(a.ino, true, true).await?,
            None => {
                let (attr, opened) =
                    t("create", self.fs().create(dir, path.leaf(), false)).await??;
                self.count(attr.ino);
                opened.fh
            }
        };
        let written = t("write", self.fs().write(fh, 0, data)).await?;
        let flushed = t("flush", self.fs().flush(fh)).await?;
        self.fs().release(fh);
        written?;
        flushed?;
        Ok(Res::Ok)
    }

    async fn create(&mut self, path: &P, excl: bool) -> H<Res> {
        if self.handles.len() >= 3 {
            return Err(Stop::Skip);
        }
        let dir = self.resolve_dir(path.parent()).await?;
        let (attr, opened) = t("create", self.fs().create(dir, path.leaf(), excl)).await??;
        self.count(attr.ino);
        self.handles.push((opened.fh, attr.ino));
        Ok(Res::Ok)
    }

    async fn open_write(&mut self, path: &P, trunc: bool) -> H<Res> {
        if self.handles.len() >= 3 {
            return Err(Stop::Skip);
        }
        let attr = self.file_at(path).await?;
        let fh = self.open(attr.ino, true, trunc).await?;
        self.handles.push((fh, attr.ino));
        Ok(Res::Ok)
    }

    pub async fn unlink(&mut self, path: &P) -> H<Res> {
        let (dir, leaf) = self.resolve(path).await?;
        let attr = leaf.ok_or(errno(libc::ENOENT))?;
        if attr.kind == FileKind::Dir {
            return Err(errno(libc::EISDIR));
        }
        t("unlink", self.fs().unlink(dir, path.leaf())).await??;
        Ok(Res::Ok)
    }

    /// The kernel's checks (do_renameat2, vfs_rename), then the core's rename.
    async fn rename(&mut self, from: &P, to: &P, noreplace: bool) -> H<Res> {
        let sdir = self.resolve_dir(from.parent()).await?;
        let tdir = self.resolve_dir(to.parent()).await?;
        let src = self.lookup(sdir, from.leaf()).await?;
        let tgt = self.lookup_opt(tdir, to.leaf()).await?;
        if noreplace && tgt.is_some() {
            return Err(errno(libc::EEXIST));
        }
        if from.0.len() < to.0.len() && is_prefix(from, to.parent()) {
            return Err(errno(libc::EINVAL));
        }
        if let Some(tgt) = tgt {
            if to.0.len() < from.0.len() && is_prefix(to, from.parent()) {
                return Err(errno(libc::ENOTEMPTY));
            }
            if tgt.ino == src.ino {
                return Ok(Res::Ok);
            }
            match (src.kind, tgt.kind) {
                (FileKind::Dir, FileKind::File) => return Err(errno(libc::ENOTDIR)),
                (FileKind::File, FileKind::Dir) => return Err(errno(libc::EISDIR)),
                _ => {}
            }
        }
        let flags = RenameFlags {
            no_replace: noreplace,
            exchange: false,
        };
        let renamed = self.fs().rename(sdir, from.leaf(), tdir, to.leaf(), flags);
        t("rename", renamed).await??;
        Ok(Res::Ok)
    }

    /// Unlinks a file while its upload is held in flight: the unlink waits
    /// for the upload, so it runs as a task of its own, and the upload is let
    /// go once it had time to reach that wait.
    async fn race(&mut self, pick: usize) -> H<Res> {
        self.backend.disarm_all();
        let Some(target) = self.model.race_target(pick) else {
            return Err(Stop::Skip);
        };
        // The path is resolved before any upload: one landing may change
        // what names its folders show under.
        let path = P(target.path.clone());
        let resolved = self.resolve(&path).await;
        let (reached, release) = self.pause_upload_of(&target);
        let fs = self.fs().clone();
        let mut upload = match target.handle {
            Some(h) => {
                let (fh, _) = self.handles.remove(h);
                tokio::spawn(async move {
                    let flushed = fs.flush(fh).await;
                    fs.release(fh);
                    flushed.map(drop)
                })
            }
            None => tokio::spawn(async move {
                fs.finish_pending().await;
                Ok(())
            }),
        };
        let held = tokio::select! {
            r = reached => r.is_ok(),
            _ = &mut upload => false,
            _ = tokio::time::sleep(HANG) => false,
        };
        if !held {
            self.backend.clear_pause();
        }
        let unlinked = match resolved {
            Ok((_, None)) => Err(errno(libc::ENOENT)),
            Ok((_, Some(attr))) if attr.kind == FileKind::Dir => Err(errno(libc::EISDIR)),
            Ok((dir, Some(_))) => {
                let fs = self.fs().clone();
                let leaf = path.leaf().to_owned();
                let mut unlink = tokio::spawn(async move { fs.unlink(dir, &leaf).await });
                // Time for the unlink to reach its wait for the upload.
                let early = tokio::select! {
                    r = &mut unlink => Some(r),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => None,
                };
                drop(release);
                match early {
                    Some(r) => Ok(r),
                    None => match tokio::time::timeout(HANG, unlink).await {
                        Ok(r) => Ok(r),
                        Err(_) => return fail("the unlink raced with an upload hung"),
                    },
                }
            }
            Err(e) => {
                drop(release);
                Err(e)
            }
        };
        if !upload.is_finished() {
            match tokio::time::timeout(HANG, &mut upload).await {
                Err(_) => return fail("the upload raced by an unlink hung"),
                Ok(joined) => joined
                    .map_err(|e| Stop::Fail(format!("upload task: {e}")))?
                    .ok(),
            };
        }
        match unlinked? {
            Ok(r) => r.map_err(Stop::from)?,
            Err(e) => return fail(format!("unlink task: {e}")),
        }
        if !held {
            return fail("the upload to race was never made");
        }
        Ok(Res::Ok)
    }

    /// Writes a pending file again while its earlier upload is held: with
    /// write-back the close does not wait for it; without, it does.
    async fn race_close(&mut self, pick: usize, data: &[u8]) -> H<Res> {
        self.backend.disarm_all();
        let Some(target) = self.model.race_close_target(pick) else {
            return Err(Stop::Skip);
        };
        // Opened and written before any upload: one landing may change what
        // names its folders show under.
        let written = self.race_close_write(&P(target.path.clone()), data).await;
        let Some((pending, release)) = self.finish_pending_paused(&target).await else {
            return fail("the upload to race was never made");
        };
        let closed = match written {
            Ok(fh) => {
                let fs = self.fs().clone();
                let mut close = tokio::spawn(async move {
                    let flushed = fs.flush(fh).await;
                    fs.release(fh);
                    flushed
                });
                // With write-back the close must end while the upload is
                // held (one that waits for it would never end: given all of
                // HANG, a busy machine cannot fail it). Without, the close
                // gets a moment to reach its wait for the upload.
                let budget = if self.model.wb {
                    HANG
                } else {
                    Duration::from_millis(20)
                };
                let early = tokio::select! {
                    r = &mut close => Some(r),
                    _ = tokio::time::sleep(budget) => None,
                };
                if self.model.wb && early.is_none() {
                    drop(release);
                    return fail("with write-back, a close waited for an upload of the file");
                }
                drop(release);
                match early {
                    Some(r) => r,
                    None => match tokio::time::timeout(HANG, close).await {
                        Ok(r) => r,
                        Err(_) => return fail("a close waiting for an upload hung"),
                    },
                }
                .map_err(|e| Stop::Fail(format!("close task: {e}")))?
                .map_err(Stop::from)
            }
            Err(e) => {
                drop(release);
                Err(e)
            }
        };
        match tokio::time::timeout(HANG, pending).await {
            Err(_) => return fail("finish_pending raced by a close hung"),
            Ok(joined) => joined.map_err(|e| Stop::Fail(format!("finish_pending task: {e}")))?,
        }
        closed.map(|()| Res::Ok)
    }

    /// Holds the upload of `target` where it reaches the server.
    fn pause_upload_of(&self, target: &RaceTarget) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let parent = target
            .parent
            .map(|k| self.model.objs[k].id.clone().expect("known"));
        self.backend.pause_upload(&target.name, parent)
    }

    /// Runs `finish_pending` as a task, with the upload of `target` held
    /// where it reaches the server: the task and what lets the upload go,
    /// or `None` if that upload was never made.
    async fn finish_pending_paused(
        &self,
        target: &RaceTarget,
    ) -> Option<(tokio::task::JoinHandle<()>, oneshot::Sender<()>)> {
        let (reached, release) = self.pause_upload_of(target);
        let fs = self.fs().clone();
        let mut pending = tokio::spawn(async move { fs.finish_pending().await });
        let held = tokio::select! {
            r = reached => r.is_ok(),
            _ = &mut pending => false,
            _ = tokio::time::sleep(HANG) => false,
        };
        if !held {
            self.backend.clear_pause();
            return None;
        }
        Some((pending, release))
    }

    /// Opens the file at `path` with O_TRUNC and writes `data`: the handle.
    async fn race_close_write(&mut self, path: &P, data: &[u8]) -> H<u64> {
        let attr = self.file_at(path).await?;
        let fh = self.open(attr.ino, true, true).await?;
        match t("write", self.fs().write(fh, 0, data)).await? {
            Ok(_) => Ok(fh),
            Err(e) => {
                self.fs().release(fh);
                Err(Stop::from(e))
            }
        }
    }

    /// fsync while an upload of the same file is held: it must wait for it.
    async fn race_fsync(&mut self, pick: usize, data: Option<&[u8]>) -> H<Res> {
        self.backend.disarm_all();
        let Some(target) = self.model.race_close_target(pick) else {
            return Err(Stop::Skip);
        };
        let attr = self.file_at(&P(target.path.clone())).await?;
        let fh = self.open(attr.ino, true, false).await?;
        if let Some(data) = data {
            if let Err(e) = t("write", self.fs().write(fh, 0, data)).await? {
                self.fs().release(fh);
                return Err(Stop::from(e));
            }
        }
        let Some((pending, release)) = self.finish_pending_paused(&target).await else {
            self.fs().release(fh);
            return fail("the upload to race was never made");
        };
        let fs = self.fs().clone();
        let mut fsync = tokio::spawn(async move { fs.fsync(fh).await });
        let early = tokio::select! {
            r = &mut fsync => Some(r),
            _ = tokio::time::sleep(Duration::from_millis(20)) => None,
        };
        drop(release);
        if early.is_some() {
            return fail("fsync did not wait for the upload of its file in flight");
        }
        let synced = match tokio::time::timeout(HANG, fsync).await {
            Ok(r) => r.map_err(|e| Stop::Fail(format!("fsync task: {e}")))?,
            Err(_) => return fail("an fsync waiting for an upload hung"),
        };
        match tokio::time::timeout(HANG, pending).await {
            Err(_) => return fail("finish_pending raced by an fsync hung"),
            Ok(joined) => joined.map_err(|e| Stop::Fail(format!("finish_pending task: {e}")))?,
        }
        // The handle goes without storing anything more (fsync did).
        let flushed = t("flush", self.fs().flush(fh)).await?;
        self.fs().release(fh);
        synced.map_err(Stop::from)?;
        flushed.map_err(Stop::from)?;
        Ok(Res::Ok)
    }
}
