//! For tests of mounts that run as daemons (`--daemon`, the mount helper):
//! commands run to their end as a script would run them, the daemon found
//! by its mountpoint, and a guard that never leaves a mount or a daemon behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::mount::{is_mounted, q, sh};

/// Generous: a machine running the whole suite can be slow.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// What a command said and how it ended.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command with its output piped, as `$(...)` in a script would: it
/// must exit and close both pipes within [`DEADLINE`] (a daemon still holding
/// them would keep its caller waiting for ever).
pub fn run_to_end(command: &mut Command) -> Ran {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        rx
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + DEADLINE;
    let closed = |rx: mpsc::Receiver<String>| {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left)
            .unwrap_or_else(|_| panic!("{command:?} kept its output open past the deadline"))
    };
    let (stdout, stderr) = (closed(stdout), closed(stderr));
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{command:?} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    Ran {
        status,
        stdout,
        stderr,
    }
}

/// Waits for `what` to hold, up to [`DEADLINE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "still waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The mediafs processes (by their executable) with `mountpoint` among
/// their arguments.
pub fn daemons_of(mountpoint: &Path) -> Vec<u32> {
    let wanted = mountpoint.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            exe.file_name().is_some_and(|n| n == "mediafs")
                && args.split(|b| *b == 0).any(|a| a == wanted)
        })
        .collect()
}

/// A mountpoint whose mount and daemon are gone when this is dropped,
/// however the test ended.
pub struct DaemonMount {
    pub dir: tempfile::TempDir,
}

impl DaemonMount {
    pub fn new() -> DaemonMount {
        DaemonMount {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The one daemon serving this mount.
    pub fn daemon(&self) -> u32 {
        let pids = daemons_of(self.dir.path());
        assert_eq!(pids.len(), 1, "one daemon for {:?}: {pids:?}", self.dir);
        pids[0]
    }

    /// Unmounts with `command` (a shell line, given the quoted mountpoint)
    /// and waits for the daemon to exit.
    pub fn unmount_with(&self, command: &str) {
        let line = format!("{command} {}", q(self.dir.path()));
        wait_until(&format!("`{line}` succeeds"), || sh(&line).status.success());
        wait_until("the daemon exits once unmounted", || {
            daemons_of(self.dir.path()).is_empty()
        });
        assert!(!is_mounted(self.dir.path()));
    }
}

impl Drop for DaemonMount {
    fn drop(&mut self) {
        if is_mounted(self.dir.path()) {
            let _ = sh(&format!("fusermount3 -uz {}", q(self.dir.path())));
        }
        for pid in daemons_of(self.dir.path()) {
            // SAFETY: kill has no memory-safety preconditions; the pid is a
            // daemon this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}
