//! Reference-model test of the filesystem core.
//!
//! proptest generates sequences of operations (writes, handles, renames,
//! forgets, remounts and crashes, changes by another client, faults, the
//! clock passing the TTL, write-back uploads), runs them on the core
//! (`MediaFs`, no FUSE) over the real client and an in-process emulator,
//! and on an independent model of what SEMANTICS.md says. After every step
//! the answer, the server's state (read from the emulator's store) and a
//! full walk of the mount must match the model. The harness plays the
//! kernel: lookups counted and forgotten, READDIRPLUS in small pages.
//!
//! Knobs (environment): see `model/knobs.rs`. Shrunk failures are kept in
//! `tests/model.proptest-regressions` and run first.

mod common;

#[path = "model/backend.rs"]
mod backend;
#[path = "model/check.rs"]
mod check;
#[path = "model/exec.rs"]
mod exec;
#[path = "model/harness.rs"]
mod harness;
#[path = "model/knobs.rs"]
mod knobs;
#[path = "model/namespace.rs"]
mod namespace;
#[path = "model/ops.rs"]
mod ops;
#[path = "model/race.rs"]
mod race;
#[path = "model/reference.rs"]
mod reference;
#[path = "model/replay.rs"]
mod replay;
#[path = "model/semantics.rs"]
mod semantics;
#[path = "model/storage.rs"]
mod storage;
#[path = "model/store.rs"]
mod store;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};

use harness::Harness;
use knobs::Knobs;
use ops::Case;

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/model.rs");

fn run_case(case: &Case, knobs: &Knobs) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut h = Harness::start(case.wb, case.page, knobs.clone()).await;
        let mut outcome = Ok(());
        for (i, op) in case.ops.iter().enumerate() {
            if let Err(why) = h.step(i, op).await {
                let trace = h.trace.join("\n  ");
                outcome = Err(TestCaseError::fail(format!(
                    "{why}\n\nsteps (write-back at start: {}, pages of {}):\n  {trace}",
                    case.wb, case.page
                )));
                break;
            }
        }
        h.stop().await;
        outcome
    })
}

fn config(knobs: &Knobs, round: u64) -> Config {
    Config {
        cases: knobs.cases,
        source_file: Some(SOURCE),
        failure_persistence: Some(match &knobs.regressions {
            // A file of one's own, to hunt while known failures are kept elsewhere.
            Some(path) => Box::new(FileFailurePersistence::Direct(path.clone().leak())),
            None => Box::new(FileFailurePersistence::WithSource("proptest-regressions")),
        }),
        rng_seed: RngSeed::Fixed(knobs.seed.wrapping_add(round)),
        max_shrink_iters: knobs.shrink_iters,
        max_shrink_time: knobs.shrink_secs * 1000,
        ..Config::default()
    }
}

/// Temp dirs (emulator store, cache dirs) go to memory when it can be had:
/// the core and the store fsync, and a case makes a few hundred of them.
fn temp_in_memory() -> Option<TempRoot> {
    let shm = std::path::Path::new("/dev/shm");
    if std::env::var_os("MEDIAFS_MODEL_KEEP_TMPDIR").is_some() || !shm.is_dir() {
        return None;
    }
    let dir = shm.join(format!("mediafs-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    std::env::set_var("TMPDIR", &dir);
    Some(TempRoot(dir))
}

/// Removed when the test ends, however it ends.
struct TempRoot(std::path::PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_core_matches_the_model() {
    let _tmp = temp_in_memory();
    let knobs = Knobs::from_env();
    if let Some(file) = std::env::var_os("MEDIAFS_MODEL_REPLAY") {
        // One case, read from a file, instead of generated ones.
        let text = std::fs::read_to_string(&file).expect("MEDIAFS_MODEL_REPLAY names a file");
        let case = replay::parse(&text).unwrap_or_else(|e| panic!("cannot read the case: {e}"));
        if let Err(why) = run_case(&case, &knobs) {
            panic!("the core differs from the model\n{why}");
        }
        return;
    }
    // Shrunk failures of fixed bugs first, as they were found.
    let regressions = knobs
        .regressions
        .clone()
        .unwrap_or_else(|| SOURCE.replace(".rs", ".proptest-regressions"));
    for (name, case) in replay::kept_cases(&regressions) {
        if let Err(why) = run_case(&case, &knobs) {
            panic!("the core differs from the model in kept case {name}\n{why}");
        }
    }
    let started = Instant::now();
    let ran = AtomicUsize::new(0);
    let strategy = ops::case(&knobs);
    let mut round = 0;
    loop {
        let mut runner = TestRunner::new(config(&knobs, round));
        let result = runner.run(&strategy, |case| {
            ran.fetch_add(1, Ordering::Relaxed);
            run_case(&case, &knobs)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, case)) => {
                let ops: Vec<String> = case.ops.iter().map(|op| format!("{op:?}")).collect();
                panic!(
                    "the core differs from the model\n{why}\n\nminimal failing case \
                     (write-back at start: {}, pages of {}):\n  {}",
                    case.wb,
                    case.page,
                    ops.join("\n  ")
                )
            }
            Err(TestError::Abort(why)) => panic!("aborted: {why}"),
        }
        round += 1;
        let more = knobs.seconds.is_some_and(|s| started.elapsed() < s);
        if !more {
            break;
        }
    }
    // Straight to stderr: the test harness captures eprintln!, and CI should see this.
    let _ = writeln!(
        std::io::stderr(),
        "model: {} cases ran ({} rounds of {}, seed {}) in {:.1?}",
        ran.load(Ordering::Relaxed),
        round,
        knobs.cases,
        knobs.seed,
        started.elapsed()
    );
}
