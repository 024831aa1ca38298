//! `mediafs unmount MOUNTPOINT`: stops a mount as its first SIGTERM would,
//! from any shell, waits for it to finish its uploads (the write-back spool
//! included), and says what was stored and what was left.
//!
//! The mount's root answers `user.mediafs.pid` and `user.mediafs.cache_dir`:
//! the process that serves it says who it is, so nothing can be stale, and
//! only those the mount lets in may ask (its owner, and others only if it
//! was mounted with allow_other or allow_root); the kernel then lets only
//! the same user or root signal it. The process is held by a pidfd from
//! before it is signalled until it has exited, so a reused pid is never
//! signalled or waited for. It gets SIGUSR1, which stops it as the first
//! SIGTERM does but never as a second one: asking twice loses nothing.
//! A process that is not the caller's child cannot be asked for its exit
//! code, so the mount writes a summary into its cache dir as it ends; this
//! prints it and exits with the mount's exit code.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::mounts;
use super::out;
use super::shutdown::{Summary, SUMMARY_FILE};

#[derive(Debug, Args)]
pub struct UnmountArgs {
    /// Where the mount is.
    mountpoint: PathBuf,
}

/// How often the wait says what is still pending.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub fn run_unmount(args: UnmountArgs) -> Result<ExitCode, String> {
    let mnt = mounts::absolute(&args.mountpoint)
        .map_err(|e| format!("cannot find {}: {e}", args.mountpoint.display()))?;
    check_mediafs_mount(&mnt)?;
    let pid = root_attribute(&mnt, "user.mediafs.pid")?;
    let pid: i32 = pid
        .parse()
        .map_err(|_| format!("{} names no process: {pid:?}", mnt.display()))?;
    let cache_dir = PathBuf::from(root_attribute(&mnt, "user.mediafs.cache_dir")?);
    let process = Process::open(pid, &mnt)?;
    process.ask_to_stop().map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => format!(
            "you may not stop the mount at {} (pid {pid} runs as another user): \
             run `mediafs unmount` as that user or as root",
            mnt.display()
        ),
        _ => format!("cannot signal mediafs (pid {pid}): {e}"),
    })?;
    out::note(format_args!(
        "asked mediafs (pid {pid}) to unmount {}; waiting for what it has in progress \
         ({} write-back uploads pending)",
        mnt.display(),
        pending(&cache_dir)
    ));
    while !process
        .exited_within(PROGRESS_EVERY)
        .map_err(|e| format!("cannot wait for mediafs (pid {pid}): {e}"))?
    {
        out::note(format_args!(
            "still waiting for mediafs (pid {pid}): {} write-back uploads pending",
            pending(&cache_dir)
        ));
    }
    if !cache_dir.exists() {
        // Only an orderly end removes a temporary cache (a demo's): a
        // killed process leaves it, and its summary with it, behind.
        out::note(format_args!(
            "mediafs (pid {pid}) unmounted {} and removed its temporary cache; its own \
             output says how it ended",
            mnt.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let summary = read_summary(&cache_dir, pid)?;
    out::note(&summary.message);
    Ok(ExitCode::from(summary.exit_code))
}

fn check_mediafs_mount(mnt: &Path) -> Result<(), String> {
    let shown = mnt.display();
    match mounts::top_mount(mnt) {
        Ok(Some(top)) if top.is_mediafs() => Ok(()),
        Ok(Some(top)) => Err(format!(
            "{shown} is not a mediafs mount (it is a {} mount); nothing to do",
            top.fstype
        )),
        Ok(None) if mnt.symlink_metadata().is_err() => {
            Err(format!("{shown} does not exist; nothing to do"))
        }
        Ok(None) => Err(format!(
            "{shown} is not a mount point, so not a mediafs mount; nothing to do"
        )),
        Err(e) => Err(format!("cannot read the mount table: {e}")),
    }
}

/// An extended attribute of the mount's root, in words that say what to
/// do when it cannot be read.
fn root_attribute(mnt: &Path, name: &str) -> Result<String, String> {
    let shown = mnt.display();
    let path = CString::new(mnt.as_os_str().as_bytes())
        .map_err(|_| format!("{shown} holds a NUL byte"))?;
    let c_name = CString::new(name).expect("a name without NUL");
    let mut value = vec![0u8; 4096];
    // SAFETY: NUL-terminated path and name, and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c_name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOTCONN) => format!(
                "the process that served {shown} is gone (it crashed or was killed), so nothing \
                 is uploading there; its write-back spool is uploaded at the next mount. Remove \
                 the dead mount with `fusermount3 -u {shown}`"
            ),
            Some(libc::EACCES) | Some(libc::EPERM) => format!(
                "{shown} is private to the user who mounted it: run `mediafs unmount` as that user \
                 (root may too, if it was mounted with -o allow_root or allow_other)"
            ),
            Some(libc::ENODATA) => format!(
                "{shown} does not say which process serves it (a mediafs older than `mediafs \
                 unmount`?): stop that process with Ctrl-C or SIGTERM"
            ),
            _ => format!("cannot ask {shown} which process serves it: {e}"),
        });
    }
    value.truncate(n as usize);
    String::from_utf8(value).map_err(|_| format!("{shown} answers {name} with something not UTF-8"))
}

/// A process held by a pidfd: the pid cannot be reused while it is held.
struct Process {
    fd: OwnedFd,
}

impl Process {
    fn open(pid: i32, mnt: &Path) -> Result<Process, String> {
        // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(format!("cannot reach mediafs (pid {pid}): {e}"));
        }
        // SAFETY: a new fd, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let process = Process { fd };
        // The pid is the one the serving process sees; from another PID
        // namespace (a container) it would name another process.
        if !comm(&pid.to_string()).is_some_and(|name| is_mediafs(&name)) {
            return Err(format!(
                "pid {pid}, which {} names as the process serving it, is not mediafs here: is \
                 the mount served from another PID namespace, such as a container? Stop it there",
                mnt.display()
            ));
        }
        Ok(process)
    }

    fn ask_to_stop(&self) -> io::Result<()> {
        // SAFETY: a pidfd, a signal number, no siginfo, no flags.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                libc::SIGUSR1,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit.
    fn exited_within(&self, limit: Duration) -> io::Result<bool> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, and its count.
        match unsafe { libc::poll(&mut poll, 1, limit.as_millis() as i32) } {
            n if n > 0 => Ok(true),
            0 => Ok(false),
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => Ok(false),
                e => Err(e),
            },
        }
    }
}

fn comm(pid: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim_end().to_owned())
}

/// A process name of this binary: as `mediafs`, or as the mount helper
/// (the kernel keeps 15 bytes of a name: `mount.fuse.medi`).
fn is_mediafs(name: &str) -> bool {
    let helper = &super::helper::NAME[..super::helper::NAME.len().min(15)];
    name == "mediafs" || name == helper || comm("self").as_deref() == Some(name)
}

/// Write-back uploads waiting in a cache dir's spool.
fn pending(cache_dir: &Path) -> usize {
    crate::fs::spool_status(cache_dir).map_or(0, |records| records.len())
}

/// The summary the mount wrote as it ended, if this process wrote it.
fn read_summary(cache_dir: &Path, pid: i32) -> Result<Summary, String> {
    let path = cache_dir.join(SUMMARY_FILE);
    let summary = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Summary>(&bytes).ok())
        .filter(|s| i64::from(s.pid) == i64::from(pid));
    summary.ok_or_else(|| {
        format!(
            "mediafs (pid {pid}) ended without saying how (was it killed?); what it left in the \
             write-back spool is uploaded at the next mount: `mediafs status --cache-dir {}` \
             lists it",
            cache_dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mount_helper_is_mediafs_too() {
        assert!(super::is_mediafs("mediafs"));
        assert!(super::is_mediafs("mount.fuse.medi"));
        assert!(!super::is_mediafs("bash"));
    }
}
