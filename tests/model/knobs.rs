//! What a run does, from the environment:
//!
//! - `MEDIAFS_MODEL_CASES=N`: run N cases (default [`DEFAULT_CASES`]).
//! - `MEDIAFS_MODEL_SECONDS=S`: keep generating new cases for S seconds.
//! - `MEDIAFS_MODEL_SEED=N`: the seed of the first round (default fixed, so
//!   that CI runs the same cases every time; a failure's seed is also kept in
//!   `tests/model.proptest-regressions`).
//! - `MEDIAFS_MODEL_OFF=a,b,..`: switch off op kinds or features, to validate
//!   the model on what works: `write`, `handles`, `fsync`, `truncate`,
//!   `rename`, `mkdir`, `rmdir`, `unlink`, `read`, `readdir`, `forget`,
//!   `remount`, `crash`, `writeback`, `remote`, `advance`, `faults`,
//!   `pending`, `race`, `paging` (the walk lists with READDIRPLUS in
//!   small pages; off: plain readdir, whole) and `evict` (tiny caches: 2
//!   listings kept, 3 idle inodes; off: the defaults), `junkobj` (renames
//!   may give a junk name to a server object; off: they never do),
//!   `trunclocal` (truncate(2) of local files; off: read instead),
//!   `forgetdir` (forgets of directory inodes; off: files only), `replay`
//!   (remote changes are checked once the TTL has passed; off: once 31 s
//!   have, past the time the core replays its own changes), `forgetwb`
//!   (forgets while write-back uploads are pending; off: none then),
//!   `inline` (fsync and renames of pending files upload in write-back
//!   mode; off: fsync is a flush, such renames are reads), `leftover`
//!   (a remount may leave failed uploads in the spool; off: no fault strikes
//!   the drain, and no remount happens while a failed upload waits),
//!   `emptypending` (O_TRUNC and truncate to 0 of pending files; off: never),
//!   `unlinkopen` (unlinks of pending files open for writing; off: never),
//!   `truncopen` (write-back truncate(2) of files open for writing; off: never).
//!   `known` stands for every knob in [`KNOWN`]: what passes on today's core.
//! - `MEDIAFS_MODEL_OPS=MIN..MAX`: ops per case (default 20..60).
//! - `MEDIAFS_MODEL_VERBOSE=1`: print every step.
//! - `MEDIAFS_MODEL_SHRINK=N`: shrink a failure at most N times (default 1000),
//!   `MEDIAFS_MODEL_SHRINK_SECONDS=S` for at most S seconds (default 60).

use std::collections::BTreeSet;
use std::time::Duration;

/// What `MEDIAFS_MODEL_OFF=known` switches off: each knob steers clear of
/// one discrepancy the model finds in today's core, so that the rest can be
/// checked while those are being fixed.
pub const KNOWN: &[&str] = &[
    "evict",        // a node interned is pruned at once: ENOENT
    "paging",       // READDIRPLUS skips an entry whose undone lookup drops its node
    "forgetdir",    // local entries vanish with their parent dir's inode
    "forgetwb",     // a forget drops a spooled upload
    "replay",       // own changes replayed 30 s hide remote renames and trashes
    "crash",        // spool entries left by a crash are invisible and not uploaded
    "leftover",     // same for uploads that failed in an earlier mount
    "race",         // unlink during an upload resurrects the file
    "inline",       // fsync and renames of pending files hang without the worker
    "trunclocal",   // truncate of a local file, then any release, drops it
    "junkobj",      // rewrites of a server object with a junk name are dropped
    "emptypending", // emptying a pending file answers Ok and uploads the old bytes
    "unlinkopen",   // writes to an open unlinked pending file fail with ENOENT
    "truncopen",    // write-back truncate with a handle open stores at once
];

/// Cases CI runs by default (each a fresh emulator and a few dozen ops).
pub const DEFAULT_CASES: u32 = 256;
const DEFAULT_SEED: u64 = 0x6d65_6469_6166_7301;

#[derive(Debug, Clone)]
pub struct Knobs {
    pub cases: u32,
    pub seconds: Option<Duration>,
    pub seed: u64,
    pub off: BTreeSet<String>,
    pub min_ops: usize,
    pub max_ops: usize,
    pub verbose: bool,
    pub shrink_iters: u32,
    pub shrink_secs: u32,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Knobs {
    pub fn from_env() -> Knobs {
        let (min_ops, max_ops) = var("MEDIAFS_MODEL_OPS")
            .and_then(|v| {
                let (a, b) = v.split_once("..")?;
                Some((a.parse().ok()?, b.trim_start_matches('=').parse().ok()?))
            })
            .unwrap_or((20, 60));
        Knobs {
            cases: var("MEDIAFS_MODEL_CASES").map_or(DEFAULT_CASES, |v| {
                v.parse().expect("MEDIAFS_MODEL_CASES is a number")
            }),
            seconds: var("MEDIAFS_MODEL_SECONDS").map(|v| {
                Duration::from_secs(v.parse().expect("MEDIAFS_MODEL_SECONDS is a number"))
            }),
            seed: var("MEDIAFS_MODEL_SEED").map_or(DEFAULT_SEED, |v| {
                v.parse().expect("MEDIAFS_MODEL_SEED is a number")
            }),
            off: var("MEDIAFS_MODEL_OFF")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .flat_map(|s| match s {
                    "known" => KNOWN.to_vec(),
                    s => vec![s],
                })
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            min_ops,
            max_ops: max_ops.max(min_ops),
            verbose: var("MEDIAFS_MODEL_VERBOSE").is_some(),
            shrink_iters: var("MEDIAFS_MODEL_SHRINK").map_or(1000, |v| {
                v.parse().expect("MEDIAFS_MODEL_SHRINK is a number")
            }),
            shrink_secs: var("MEDIAFS_MODEL_SHRINK_SECONDS").map_or(60, |v| {
                v.parse().expect("MEDIAFS_MODEL_SHRINK_SECONDS is a number")
            }),
        }
    }

    pub fn on(&self, what: &str) -> bool {
        !self.off.contains(what)
    }

    /// A weight, or 0 when the kind is off.
    pub fn w(&self, what: &str, weight: u32) -> u32 {
        if self.on(what) {
            weight
        } else {
            0
        }
    }

    /// A group's weight: 0 when every kind in it is off.
    pub fn any(&self, kinds: &[&str], weight: u32) -> u32 {
        if kinds.iter().any(|k| self.on(k)) {
            weight
        } else {
            0
        }
    }
}
