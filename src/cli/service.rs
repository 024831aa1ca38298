//! A mount that lives like a service: `--daemon` returns only once the mount
//! answers, and a foreground mount under systemd (`Type=notify`) says so too.
//!
//! The daemon is forked before the runtime or any other thread exists (a
//! fork copies only the calling thread, so forking later would leave a
//! runtime without its workers). The parent waits on a pipe for the daemon's
//! word, "ready" or the error that kept it from mounting, and exits with it:
//! mount(8) and scripts see the outcome, never a mount still on its way. The
//! daemon starts a new session and forks once more, so it is no session
//! leader and can never get a controlling terminal; it leaves the directory
//! it was started in (the command line's paths were made absolute) and its
//! standard streams go to /dev/null, standard error to the log file if one
//! is given.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use nix::unistd::{fork, ForkResult};

use super::mount::OnReady;

/// What the daemon writes to its parent once the mount answers.
const READY: &str = "ready";

/// Which side of the fork returned.
pub enum Forked {
    /// The command that was run: it exits with this code once the daemon has
    /// mounted (0) or given up (1, its error printed).
    Parent(ExitCode),
    /// The daemon, which tells its parent through this.
    Daemon(Readiness),
}

/// Tells whoever waits for the mount that it is ready, or why it failed:
/// a daemon's parent (through the pipe, once) and systemd (NOTIFY_SOCKET).
#[derive(Clone)]
pub struct Readiness {
    pipe: Arc<Mutex<Option<File>>>,
}

impl Readiness {
    /// A foreground command: nobody waits on a pipe.
    pub fn foreground() -> Readiness {
        Readiness {
            pipe: Arc::new(Mutex::new(None)),
        }
    }

    /// The hook the mount calls once it answers.
    pub fn hook(&self) -> OnReady {
        let readiness = self.clone();
        Box::new(move |mountpoint| {
            log::info!("{} is mounted and answers", mountpoint.display());
            notify_systemd();
            readiness.tell(READY);
        })
    }

    /// Tells a daemon's parent why the mount failed, if it still waits.
    pub fn failed(&self, message: &str) {
        self.tell(message);
    }

    /// Writes to the parent and closes the pipe, so that it stops waiting.
    fn tell(&self, word: &str) {
        let pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut pipe) = pipe {
            // A parent that is gone (killed while waiting) has nothing to learn.
            let _ = pipe.write_all(word.as_bytes());
        }
    }
}

/// Forks the daemon; returns in both the parent and the daemon.
pub fn daemonize(log_file: Option<&File>) -> Result<Forked, String> {
    // Close-on-exec: no program the daemon runs (fusermount3) holds the pipe
    // open and keeps the parent waiting after the daemon is gone.
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe to the daemon: {e}"))?;
    // SAFETY: no other thread exists yet (the runtime starts after this), so
    // the child is a complete copy of the process.
    match unsafe { fork() }.map_err(|e| format!("cannot start the daemon: {e}"))? {
        ForkResult::Parent { child } => {
            drop(write);
            // The first child exits as soon as it has forked the daemon.
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(Forked::Parent(wait_for_daemon(read)))
        }
        ForkResult::Child => {
            drop(read);
            let mut pipe = File::from(write);
            match detach(log_file) {
                Ok(()) => Ok(Forked::Daemon(Readiness {
                    pipe: Arc::new(Mutex::new(Some(pipe))),
                })),
                Err(message) => {
                    let _ = pipe.write_all(message.as_bytes());
                    // SAFETY: _exit ends this process at once: nothing of
                    // the parent's (buffers, destructors) runs twice.
                    unsafe { libc::_exit(1) }
                }
            }
        }
    }
}

/// In the first child: a new session, then the daemon, detached from the
/// terminal, the working directory and the caller's standard streams.
fn detach(log_file: Option<&File>) -> Result<(), String> {
    nix::unistd::setsid().map_err(|e| format!("cannot start a session: {e}"))?;
    // SAFETY: still the only thread.
    match unsafe { fork() }.map_err(|e| format!("cannot start the daemon: {e}"))? {
        // SAFETY: as above; the daemon carries on alone.
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    nix::unistd::chdir("/").map_err(|e| format!("cannot change to /: {e}"))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let stderr: OwnedFd = match log_file {
        Some(file) => file.try_clone(),
        None => null.try_clone(),
    }
    .map_err(|e| format!("cannot copy a file descriptor: {e}"))?
    .into();
    nix::unistd::dup2_stdin(null.as_fd())
        .and_then(|()| nix::unistd::dup2_stdout(null.as_fd()))
        .and_then(|()| nix::unistd::dup2_stderr(stderr.as_fd()))
        .map_err(|e| format!("cannot redirect the standard streams: {e}"))
}

/// In the parent: the daemon's word, as an exit code (an error is printed).
fn wait_for_daemon(read: OwnedFd) -> ExitCode {
    let mut word = String::new();
    let outcome = File::from(read).read_to_string(&mut word);
    match outcome {
        Ok(_) if word == READY => ExitCode::SUCCESS,
        Ok(_) if word.is_empty() => super::failed(
            "the daemon ended before the mount was ready (its log, if --log-file was given, says why)",
        ),
        Ok(_) => super::failed(&word),
        Err(e) => super::failed(&format!("cannot hear from the daemon: {e}")),
    }
}

/// Tells systemd the service is ready, when it runs us as `Type=notify`.
fn notify_systemd() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    // A name starting with @ is in the abstract namespace.
    let addr = match path.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(b"READY=1", &addr));
    if let Err(e) = sent {
        log::warn!("cannot tell systemd the mount is ready: {e}");
    }
}
