//! Stopping a mount as a service is stopped. systemd, docker and Ctrl-C
//! send SIGTERM or SIGINT, and later SIGKILL; an unmount that fails because
//! a shell sits in the mount must not leave a process that never ends, nor
//! lose an upload in flight. So:
//!
//! - The first signal finishes what is in progress (the requests in flight,
//!   such as a `close` that is uploading, and the write-back uploads), then
//!   takes the mount off. If something still uses it (a working directory,
//!   an open file), it is detached lazily: gone from the directory tree at
//!   once, still served to what holds it. Files still open for writing are
//!   waited for, as their bytes are stored when they are closed; then the
//!   process exits, and whatever still holds the detached mount gets
//!   "Transport endpoint is not connected".
//! - A second SIGINT or SIGTERM stops waiting: the process exits at once and
//!   says what it left. Write-back spool entries stay for the next mount.
//! - SIGUSR1 (what `mediafs unmount` sends) stops as the first signal does,
//!   and never as a second one: asking twice loses nothing.
//!
//! The exit code, the last log line and a summary in the cache dir (which
//! `mediafs unmount` reads) say how it ended.

use std::fmt;
use std::future::Future;
use std::io::ErrorKind;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{sleep, timeout, Instant};
use tokio_util::task::TaskTracker;

use super::mounts::{self, MountEntry, UnmountError};
use crate::fs::Served;
use crate::fuse::FuseAdapter;

/// Exit codes besides 0 (everything stored, unmounted) and 2 (bad usage,
/// from clap); the most serious one that applies. docs/SEMANTICS.md lists them.
const EXIT_ERROR: u8 = 1;
const EXIT_DETACHED_IN_USE: u8 = 3;
const EXIT_UPLOADS_LEFT: u8 = 4;
const EXIT_STOPPED_AT_ONCE: u8 = 5;

/// The [`Summary`] a mount writes into its cache dir as it ends.
pub const SUMMARY_FILE: &str = "stopped.json";

/// How long a busy unmount is tried again before the mount is detached:
/// what uses it may be a program whose last request was just answered.
const BUSY_GRACE: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
const AGAIN: &str = "Ctrl-C or SIGTERM again stops at once (write-back uploads stay in the spool \
                     for the next mount; files still open for writing are lost)";

/// What asks a mount to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// SIGINT or SIGTERM: the first stops gracefully, the next at once.
    Signal(&'static str),
    /// SIGUSR1, from `mediafs unmount`: gracefully, however often.
    Unmount,
}

impl fmt::Display for Ask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ask::Signal(name) => f.write_str(name),
            Ask::Unmount => f.write_str("`mediafs unmount` (SIGUSR1)"),
        }
    }
}

/// The signals that stop a mount, listened for from before it is mounted:
/// from then on none of them kills the process and leaves the mount dead.
pub struct Signals {
    int: Signal,
    term: Signal,
    usr1: Signal,
}

impl Signals {
    pub fn listen() -> Result<Signals, String> {
        let listen =
            |kind| signal(kind).map_err(|e| format!("cannot listen for stop signals: {e}"));
        Ok(Signals {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
            usr1: listen(SignalKind::user_defined1())?,
        })
    }

    async fn next(&mut self) -> Ask {
        tokio::select! {
            _ = self.int.recv() => Ask::Signal("SIGINT"),
            _ = self.term.recv() => Ask::Signal("SIGTERM"),
            _ = self.usr1.recv() => Ask::Unmount,
        }
    }
}

/// The FUSE session's loop, on its own thread. fuser unmounts by path when
/// a session is dropped; this one never is, because this module unmounts,
/// and an unmount by path after that could take whatever is mounted there
/// by then (a new mount, or the one below).
struct SessionLoop(ManuallyDrop<fuser::BackgroundSession>);

impl SessionLoop {
    fn start<F: Served>(session: fuser::Session<FuseAdapter<F>>) -> Result<Self, String> {
        session
            .spawn()
            .map(|s| SessionLoop(ManuallyDrop::new(s)))
            .map_err(|e| format!("cannot start serving the mount: {e}"))
    }

    /// The kernel let go of the mount: unmounted, and nothing uses it.
    fn has_ended(&self) -> bool {
        self.0.guard.is_finished()
    }

    async fn ended(&self) {
        while !self.has_ended() {
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// How the loop ended, once it has.
    fn outcome(&mut self) -> std::io::Result<()> {
        // Join the finished thread; one with nothing to do stands in for it.
        let finished = std::mem::replace(&mut self.0.guard, std::thread::spawn(|| Ok(())));
        finished
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("its thread panicked")))
    }
}

/// What a mount serves, handed over for as long as it runs.
pub struct Serving<F: Served> {
    pub fs: Arc<F>,
    /// The requests in flight.
    pub tasks: TaskTracker,
    /// The background write-back uploads.
    pub uploads: tokio::task::JoinHandle<()>,
    pub mountpoint: PathBuf,
}

/// How the mount came off the directory tree.
#[derive(Debug)]
enum How {
    Clean,
    /// By `fusermount3 -u` or `umount`, not by this process.
    ByOthers,
    /// Lazily, while in use.
    Detached,
    /// Not at all; why.
    Failed(String),
}

/// What a second signal left undone.
#[derive(Debug)]
struct Left {
    requests: usize,
    uploads: usize,
    open_for_writing: usize,
}

#[derive(Debug)]
struct Ending {
    how: How,
    /// The process ends while the detached mount is still in use.
    cut_off: bool,
    at_once: Option<Left>,
    error: Option<String>,
}

/// How a mount ended: written to `CACHE_DIR/stopped.json` for `mediafs
/// unmount`, which waits for the process and cannot see its exit code.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The process that wrote it, to tell it from an earlier mount's.
    pub pid: u32,
    pub exit_code: u8,
    /// Uploads stored while stopping.
    pub stored: u64,
    /// Write-back uploads left in the spool for the next mount.
    pub left_in_spool: usize,
    /// The last log line.
    pub message: String,
}

/// Serves the mount until it is unmounted or asked to stop, then stops as
/// the module docs say.
pub async fn serve<F: Served>(
    session: fuser::Session<FuseAdapter<F>>,
    serving: Serving<F>,
    mut signals: Signals,
) -> Result<ExitCode, String> {
    let mountpoint = mounts::absolute(&serving.mountpoint).map_err(|e| {
        let shown = serving.mountpoint.display();
        format!("cannot resolve the mountpoint {shown}: {e}")
    })?;
    let mut stop = Stop {
        // Read before the loop runs: this mount is the one on top now.
        ours: mounts::top_mount(&mountpoint).ok().flatten(),
        session: SessionLoop::start(session)?,
        fs: serving.fs.clone(),
        tasks: serving.tasks.clone(),
        mountpoint,
        stored_before: 0,
    };
    let asked = tokio::select! {
        () = stop.session.ended() => None,
        ask = signals.next() => Some(ask),
    };
    stop.stored_before = stop.fs.upload_counts().stored;
    let ending = stop.run(asked, &mut signals).await;
    serving.uploads.abort();
    let summary = stop.summarize(ending);
    save(&summary, serving.fs.cache_dir());
    Ok(ExitCode::from(summary.exit_code))
}

struct Stop<F: Served> {
    fs: Arc<F>,
    tasks: TaskTracker,
    session: SessionLoop,
    mountpoint: PathBuf,
    /// The mount this process made, as the mount table shows it.
    ours: Option<MountEntry>,
    stored_before: u64,
}

impl<F: Served> Stop<F> {
    async fn run(&mut self, asked: Option<Ask>, signals: &mut Signals) -> Ending {
        let how = match self.take_off(asked, signals).await {
            Ok(how) => how,
            Err(stopped_at_once) => return stopped_at_once,
        };
        let owed = async {
            tokio::select! {
                () = self.session.ended() => {}
                () = writers_closed(&*self.fs) => {}
            }
            finish_in_flight(&*self.fs, &self.tasks).await;
        };
        if self.or_at_once(signals, owed).await.is_none() {
            return self.at_once(Some(how));
        }
        // What used a detached mount may be letting go this very moment.
        let _ = timeout(BUSY_GRACE, self.session.ended()).await;
        let cut_off = !self.session.has_ended();
        let error = if cut_off { None } else { self.loop_error() };
        Ending {
            how,
            cut_off,
            at_once: None,
            error,
        }
    }

    /// Finishes what is in flight and takes the mount off the tree, or
    /// learns that another did; `Err` when a second signal stopped it all.
    async fn take_off(&self, asked: Option<Ask>, signals: &mut Signals) -> Result<How, Ending> {
        let mnt = self.mountpoint.display();
        let Some(ask) = asked else {
            log::info!("{mnt} was unmounted; in progress: {}", self.progress());
            return Ok(How::ByOthers);
        };
        log::info!("{ask}: stopping; in progress: {}; {AGAIN}", self.progress());
        let in_flight = finish_in_flight(&*self.fs, &self.tasks);
        if self.or_at_once(signals, in_flight).await.is_none() {
            return Err(self.at_once(None));
        }
        match self.unmount().await {
            How::Failed(why) => {
                log::error!(
                    "cannot unmount {mnt}: {why}. It is still served; unmount it with \
                     `fusermount3 -u -z {mnt}`, or {AGAIN}"
                );
                match self.or_at_once(signals, self.session.ended()).await {
                    Some(()) => Ok(How::ByOthers),
                    None => Err(self.at_once(Some(How::Failed(why)))),
                }
            }
            How::Detached => {
                log::info!(
                    "{mnt} is in use (a working directory or an open file there): detached it; \
                     in progress: {}",
                    self.progress()
                );
                Ok(How::Detached)
            }
            how => Ok(how),
        }
    }

    /// What went wrong with the session's loop, once it has ended.
    fn loop_error(&mut self) -> Option<String> {
        match self.session.outcome() {
            Ok(()) => None,
            // The kernel aborts a detached mount's connection once its last
            // user lets go: the mount is gone, as it should be.
            Err(e) if e.kind() == ErrorKind::ConnectionAborted && self.check_ours().is_err() => {
                None
            }
            Err(e) => Some(format!("the mount ended with an error: {e}")),
        }
    }

    /// Runs `work` to its end, unless SIGINT or SIGTERM comes again
    /// (`None`); says every 10 s what the stop still waits for.
    async fn or_at_once<T>(
        &self,
        signals: &mut Signals,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        tokio::pin!(work);
        let mut progress =
            tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                ask = signals.next() => match ask {
                    Ask::Unmount => log::info!("{ask}: already stopping"),
                    Ask::Signal(name) => {
                        log::warn!("{name} while stopping: stopping at once");
                        return None;
                    }
                },
                _ = progress.tick() => log::info!("still stopping; in progress: {}; {AGAIN}", self.progress()),
            }
        }
    }

    /// What the stop waits for, in words.
    fn progress(&self) -> String {
        let counts = self.fs.upload_counts();
        listed(&[
            (self.tasks.len(), "request", "in flight"),
            (counts.running, "upload", "under way"),
            (counts.write_back_pending, "write-back upload", "pending"),
            (self.fs.open_for_writing(), "file", "open for writing"),
        ])
        .unwrap_or_else(|| "nothing".into())
    }

    /// Takes the mount off: plainly, tried again while busy for a moment,
    /// then lazily.
    async fn unmount(&self) -> How {
        if self.session.has_ended() {
            return How::ByOthers;
        }
        if let Err(how) = self.check_ours() {
            return how;
        }
        let deadline = Instant::now() + BUSY_GRACE;
        loop {
            match mounts::unmount(&self.mountpoint, false) {
                Ok(()) => return How::Clean,
                Err(UnmountError::Busy) if Instant::now() < deadline => {
                    sleep(Duration::from_millis(100)).await
                }
                Err(UnmountError::Busy) => return self.detach(),
                Err(UnmountError::Other(e)) => return How::Failed(e),
            }
        }
    }

    /// Takes the mount off without waiting: plainly, or lazily if in use.
    fn take_off_now(&self) -> How {
        if let Err(how) = self.check_ours() {
            return how;
        }
        match mounts::unmount(&self.mountpoint, false) {
            Ok(()) => How::Clean,
            Err(UnmountError::Busy) => self.detach(),
            Err(UnmountError::Other(e)) => How::Failed(e),
        }
    }

    fn detach(&self) -> How {
        match mounts::unmount(&self.mountpoint, true) {
            Ok(()) => How::Detached,
            Err(UnmountError::Busy) => How::Failed("busy".into()),
            Err(UnmountError::Other(e)) => How::Failed(e),
        }
    }

    /// Only the mount this process made is taken off: `Err` says what to
    /// report when the one on top at the mountpoint is not it.
    fn check_ours(&self) -> Result<(), How> {
        match mounts::top_mount(&self.mountpoint) {
            Ok(Some(top)) if self.ours.as_ref().is_none_or(|ours| *ours == top) => Ok(()),
            Ok(None) => Err(How::ByOthers),
            Ok(Some(_)) => Err(How::Failed("something else is mounted over it".into())),
            Err(e) => Err(How::Failed(format!("cannot read the mount table: {e}"))),
        }
    }

    /// Stops waiting: counts what is left, and takes the mount off if it is
    /// still on the tree, so that no dead mount stays behind.
    fn at_once(&self, how: Option<How>) -> Ending {
        let left = Left {
            requests: self.tasks.len(),
            uploads: self.fs.upload_counts().running,
            open_for_writing: self.fs.open_for_writing(),
        };
        let how = match how {
            Some(How::Failed(_)) | None => self.take_off_now(),
            Some(how) => how,
        };
        Ending {
            how,
            cut_off: !self.session.has_ended(),
            at_once: Some(left),
            error: None,
        }
    }

    fn summarize(&self, ending: Ending) -> Summary {
        let cache_dir = self.fs.cache_dir();
        let left_in_spool = crate::fs::spool_status(cache_dir).map_or_else(
            |e| {
                log::error!(
                    "cannot count the uploads left in {}: {e}",
                    cache_dir.display()
                );
                0
            },
            |r| r.len(),
        );
        let stored = self.fs.upload_counts().stored - self.stored_before;
        let exit_code = if ending.at_once.is_some() {
            EXIT_STOPPED_AT_ONCE
        } else if ending.error.is_some() {
            EXIT_ERROR
        } else if left_in_spool > 0 {
            EXIT_UPLOADS_LEFT
        } else if ending.cut_off {
            EXIT_DETACHED_IN_USE
        } else {
            0
        };
        let message = words(&self.mountpoint, cache_dir, &ending, stored, left_in_spool);
        Summary {
            pid: std::process::id(),
            exit_code,
            stored,
            left_in_spool,
            message,
        }
    }
}

/// Resolves once nothing is in flight and the write-back queue is empty.
async fn finish_in_flight<F: Served>(fs: &F, tasks: &TaskTracker) {
    // `wait` resolves once the tracker is closed and empty; new requests
    // may still be spawned on it, and it is reopened for the next wait.
    tasks.close();
    tasks.wait().await;
    tasks.reopen();
    fs.drain_uploads().await;
}

/// Resolves once no file is open for writing.
async fn writers_closed<F: Served>(fs: &F) {
    while fs.open_for_writing() > 0 {
        sleep(Duration::from_millis(100)).await;
    }
}

/// The last log line: how the mount came off, what was stored, what is left.
fn words(
    mountpoint: &Path,
    cache_dir: &Path,
    ending: &Ending,
    stored: u64,
    spool: usize,
) -> String {
    let mnt = mountpoint.display();
    let mut said = vec![match (&ending.how, ending.cut_off) {
        (How::Clean, _) => format!("unmounted {mnt}"),
        (How::ByOthers, _) => format!("{mnt} was unmounted"),
        (How::Detached, false) => {
            format!("unmounted {mnt} (detached while in use, until its last user let go)")
        }
        (How::Detached, true) => format!(
            "detached {mnt} while still in use (a working directory or an open file there): \
             what uses it now gets \"Transport endpoint is not connected\""
        ),
        (How::Failed(why), _) => {
            format!("could not unmount {mnt} ({why}): it is left dead; run `fusermount3 -u {mnt}`")
        }
    }];
    if let Some(left) = &ending.at_once {
        let abandoned = listed(&[
            (left.requests, "request", "in flight"),
            (left.uploads, "upload", "under way"),
            (left.open_for_writing, "file", "open for writing (lost)"),
        ]);
        said.push(match abandoned {
            Some(abandoned) => format!("stopped at once, abandoning {abandoned}"),
            None => "stopped at once".into(),
        });
    }
    if let Some(e) = &ending.error {
        said.push(e.clone());
    }
    said.push(format!("{} stored while stopping", count(stored, "upload")));
    let dir = cache_dir.display();
    said.push(match spool {
        0 => "nothing left to upload".into(),
        n => format!(
            "{} left in the spool: the next mount uploads them \
             (`mediafs status --cache-dir {dir}` lists them)",
            count(n, "write-back upload")
        ),
    });
    said.join("; ")
}

/// "1 request in flight, 2 uploads under way", leaving out what is none.
fn listed(counts: &[(usize, &str, &str)]) -> Option<String> {
    let said: Vec<String> = counts
        .iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, noun, what)| format!("{} {what}", count(*n, noun)))
        .collect();
    (!said.is_empty()).then(|| said.join(", "))
}

/// "1 upload", "2 uploads".
fn count(n: impl TryInto<u64>, noun: &str) -> String {
    match n.try_into().unwrap_or(u64::MAX) {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Logs the summary and writes it for `mediafs unmount`.
fn save(summary: &Summary, cache_dir: &Path) {
    if summary.exit_code == 0 {
        log::info!("{}", summary.message);
    } else {
        log::warn!("{} (exit code {})", summary.message, summary.exit_code);
    }
    let written = serde_json::to_vec(summary)
        .map_err(std::io::Error::other)
        .and_then(|json| crate::atomic_file::replace(&cache_dir.join(SUMMARY_FILE), &json));
    if let Err(e) = written {
        log::error!("cannot write the summary into {}: {e}", cache_dir.display());
    }
}
