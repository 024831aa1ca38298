//! What a run does, from the environment:
//!
//! - `MEDIAFS_MODEL_CASES=N`: run N cases (default [`DEFAULT_CASES`]).
//! - `MEDIAFS_MODEL_SECONDS=S`: keep generating new cases for S seconds.
//! - `MEDIAFS_MODEL_SEED=N`: the seed of the first round (default fixed, so
//!   that CI runs the same cases every time; a failure's seed is also kept in
//!   `tests/model.proptest-regressions`).
//! - `MEDIAFS_MODEL_OFF=a,b,..`: switch off op kinds or features, to narrow
//!   a failure down: `write`, `handles`, `fsync`, `truncate`, `rename`,
//!   `mkdir`, `rmdir`, `unlink`, `read`, `readdir`, `forget`, `remount`,
//!   `crash`, `writeback`, `remote`, `advance`, `faults`, `pending`, `race`,
//!   `paging` (the walk lists with READDIRPLUS in small pages; off: plain
//!   readdir, whole) and `evict` (tiny caches: 2 listings kept, 3 idle
//!   inodes; off: the defaults). Everything is on by default.
//! - `MEDIAFS_MODEL_REGRESSIONS=PATH`: read and write shrunk failures in
//!   PATH instead of `tests/model.proptest-regressions`.
//! - `MEDIAFS_MODEL_REPLAY=FILE`: run the one case in FILE (see `replay.rs`).
//! - `MEDIAFS_MODEL_OPS=MIN..MAX`: ops per case (default 20..60).
//! - `MEDIAFS_MODEL_VERBOSE=1`: print every step.
//! - `MEDIAFS_MODEL_SHRINK=N`: shrink a failure at most N times (default 1000),
//!   `MEDIAFS_MODEL_SHRINK_SECONDS=S` for at most S seconds (default 60).

use std::collections::BTreeSet;
use std::time::Duration;

/// Cases CI runs by default (each a fresh emulator and a few dozen ops).
pub const DEFAULT_CASES: u32 = 1024;
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
    pub regressions: Option<String>,
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
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            min_ops,
            max_ops: max_ops.max(min_ops),
            verbose: var("MEDIAFS_MODEL_VERBOSE").is_some(),
            shrink_iters: var("MEDIAFS_MODEL_SHRINK").map_or(1000, |v| {
                v.parse().expect("MEDIAFS_MODEL_SHRINK is a number")
            }),
            regressions: var("MEDIAFS_MODEL_REGRESSIONS"),
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
