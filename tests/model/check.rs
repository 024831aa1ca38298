//! One step of a case: the op on the core and on the model, then the
//! checks: the answer, the server's state (the store: the truth), and a
//! full walk of the mount against the tree the model derives.
//!
//! When a fault fired during the op, the model offers every outcome the
//! semantics allow (each failing server call it makes, before or after its
//! work; the op failing with EIO with nothing changed); the store decides
//! which one happened, and the walk is checked against that one.

use std::collections::{BTreeMap, BTreeSet};

use mediafs::fs::{FileKind, ROOT};

use crate::backend::{Call, Fired};
use crate::harness::{Harness, Stop, ADVANCE, H};
use crate::ops::Op;
use crate::reference::{Kind, Model};
use crate::semantics::{bytes_brief, Ctx, Res};

pub fn kind(k: FileKind) -> Kind {
    match k {
        FileKind::Dir => Kind::Dir,
        FileKind::File => Kind::File,
    }
}

type Tree = BTreeMap<String, (Kind, Option<Vec<u8>>)>;

/// Ways of failing the server calls that fired: one per call of that kind
/// the op makes in the model.
fn combos(fired: &[Fired], normal: &Ctx) -> Vec<Vec<(Call, usize, bool)>> {
    let mut all = vec![Vec::new()];
    for &(call, after) in fired {
        let n = normal.count(call).max(1);
        all = all
            .into_iter()
            .flat_map(|c| {
                (0..n).map(move |i| {
                    let mut c = c.clone();
                    c.push((call, i, after));
                    c
                })
            })
            .collect();
    }
    all
}

/// The outcomes the model allows for `op`, given the faults that fired.
pub fn candidates(before: &Model, op: &Op, fired: &[Fired]) -> Vec<(String, Model, Res)> {
    let mut normal = before.clone();
    let mut cx = Ctx::default();
    let res = normal.apply(op, &mut cx);
    if fired.is_empty() {
        return vec![("as planned".into(), normal, res)];
    }
    let server: Vec<Fired> = fired
        .iter()
        .filter(|f| f.0.changes_server())
        .copied()
        .collect();
    let mut out = Vec::new();
    for combo in combos(&server, &cx) {
        let mut m = before.clone();
        let r = m.apply(op, &mut Ctx::failing(combo.clone()));
        let label = if combo.is_empty() {
            "fault ignored".to_owned()
        } else {
            format!("failing {combo:?}")
        };
        out.push((label, m, r));
    }
    if fired.iter().any(|f| !f.0.changes_server()) {
        out.push((
            "nothing done, EIO".into(),
            before.clone(),
            Res::Err(libc::EIO),
        ));
    }
    out
}

fn diff(expected: &Tree, got: &Tree) -> Vec<String> {
    let brief = |e: &(Kind, Option<Vec<u8>>)| match e {
        (Kind::Dir, _) => "dir".to_owned(),
        (Kind::File, b) => format!("file, {}", bytes_brief(b.as_deref().unwrap_or_default())),
    };
    let paths: BTreeSet<&String> = expected.keys().chain(got.keys()).collect();
    paths
        .into_iter()
        .filter_map(|p| match (expected.get(p), got.get(p)) {
            (Some(e), None) => Some(format!("missing {p:?} (expected {})", brief(e))),
            (None, Some(g)) => Some(format!("unexpected {p:?} ({})", brief(g))),
            (Some(e), Some(g)) if e != g => {
                Some(format!("{p:?}: expected {}, got {}", brief(e), brief(g)))
            }
            _ => None,
        })
        .collect()
}

impl Harness {
    async fn run_op(&mut self, op: &Op) -> Result<Res, String> {
        match self.exec(op).await {
            Ok(r) => Ok(r),
            Err(Stop::Errno(e)) => Ok(Res::Err(e)),
            Err(Stop::Skip) => Ok(Res::Skip),
            Err(Stop::Fail(why)) => Err(why),
        }
    }

    /// Runs one op and checks everything after it.
    pub async fn step(&mut self, i: usize, op: &Op) -> Result<(), String> {
        self.backend.take_fired();
        let started = std::time::Instant::now();
        let op = &self.model.concrete(op);
        let before = self.model.clone();
        let got = self
            .run_op(op)
            .await
            .map_err(|e| format!("#{i} {op:?}: {e}"))?;
        let fired = self.backend.take_fired();
        let line = format!(
            "#{i} {op:?} -> {got:?}{}",
            if fired.is_empty() {
                String::new()
            } else {
                format!(" [fired {fired:?}]")
            }
        );
        let ran = started.elapsed();
        self.trace.push(line.clone());
        if matches!(op, Op::Remote(_)) || !fired.is_empty() {
            // Changes made behind the core's back show once the TTL passed.
            self.clock.advance(ADVANCE);
        }
        self.check_server(i, op, &before, &got, &fired).await?;
        let checked = started.elapsed();
        let walked = self.check_walk(i).await;
        if self.knobs.verbose {
            eprintln!(
                "{line}  ({ran:.0?}, server {:.0?}, walk {:.0?})",
                checked - ran,
                started.elapsed() - checked
            );
        }
        walked
    }

    async fn check_server(
        &mut self,
        i: usize,
        op: &Op,
        before: &Model,
        got: &Res,
        fired: &[Fired],
    ) -> Result<(), String> {
        let store = self.store.objects().await?;
        let mut why = Vec::new();
        for (label, mut m, res) in candidates(before, op, fired) {
            if res != *got {
                why.push(format!("{label}: the model answers {res:?}"));
                continue;
            }
            match m.reconcile(&store, &self.store.bytes) {
                Ok(()) => {
                    self.model = m;
                    return Ok(());
                }
                Err(e) => why.push(format!(
                    "{label}: answers {res:?}, but the server differs:\n    {e}"
                )),
            }
        }
        Err(format!(
            "#{i} {op:?}: the core answered {got:?}; no outcome the model allows matches:\n  {}",
            why.join("\n  ")
        ))
    }

    async fn check_walk(&mut self, i: usize) -> Result<(), String> {
        self.backend.set_bypass(true);
        let walked = self.walk().await;
        self.backend.set_bypass(false);
        let got = match walked {
            Ok(tree) => tree,
            Err(Stop::Fail(why)) => return Err(format!("after #{i}, walking the mount: {why}")),
            Err(e) => return Err(format!("after #{i}, walking the mount: {e:?}")),
        };
        let expected = self.model.tree();
        let differences = diff(&expected, &got);
        if differences.is_empty() {
            return Ok(());
        }
        let m = &self.model;
        let objs: Vec<String> = (0..m.objs.len())
            .map(|k| {
                let o = &m.objs[k];
                format!(
                    "{}{:?} {:?} in {:?}, created {}{}",
                    if o.active { "" } else { "(trashed) " },
                    o.id.as_deref().unwrap_or("?"),
                    o.name,
                    o.parent,
                    o.created.as_deref().unwrap_or("?"),
                    if m.is_hidden(k) { ", hidden" } else { "" }
                )
            })
            .collect();
        Err(format!(
            "after #{i}, the mount differs from the model:\n  {}\n  (on the server: {})",
            differences.join("\n  "),
            objs.join("; ")
        ))
    }

    /// Lists every directory and reads every file, as `ls -lR` and `cat` would.
    async fn walk(&mut self) -> H<Tree> {
        let (page, plus) = if self.knobs.on("paging") {
            (self.page, true)
        } else {
            (usize::MAX, false)
        };
        let mut tree = Tree::new();
        let mut dirs = vec![(ROOT, String::new())];
        while let Some((ino, prefix)) = dirs.pop() {
            let entries = self
                .list(ino, page, plus)
                .await
                .map_err(|e| Stop::Fail(format!("listing {prefix:?}: {e:?}")))?;
            let mut seen = BTreeSet::new();
            for (name, k, listed_ino) in entries {
                let path = format!("{prefix}{name}");
                if !seen.insert(name.clone()) {
                    return Err(Stop::Fail(format!("{path:?} is listed twice")));
                }
                let attr = self.lookup(ino, &name).await.map_err(|e| {
                    Stop::Fail(format!("{path:?} is listed, but its lookup answers {e:?}"))
                })?;
                if attr.ino != listed_ino || attr.kind != k {
                    return Err(Stop::Fail(format!(
                        "{path:?} is listed as inode {listed_ino} ({k:?}), looked up as {} ({:?})",
                        attr.ino, attr.kind
                    )));
                }
                if k == FileKind::Dir {
                    tree.insert(path.clone(), (Kind::Dir, None));
                    dirs.push((attr.ino, format!("{path}/")));
                    continue;
                }
                let data = self
                    .read_all(attr.ino, false)
                    .await
                    .map_err(|e| Stop::Fail(format!("reading {path:?}: {e:?}")))?;
                if attr.size != data.len() as u64 {
                    return Err(Stop::Fail(format!(
                        "{path:?} has size {} but reads {} bytes",
                        attr.size,
                        data.len()
                    )));
                }
                tree.insert(path, (Kind::File, Some(data)));
            }
        }
        Ok(tree)
    }
}
