//! The kernel's mount table, and unmounting: for a mount that takes itself
//! off when asked to stop, and for `mediafs unmount`, which must tell a
//! mediafs mount from anything else before it asks one to stop.
//!
//! A mount is unmounted by path, so the table is read first: only the mount
//! on top at the path is taken off, and only if it is the expected one.
//! Root unmounts directly; anyone else through the setuid `fusermount3`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One line of `/proc/self/mountinfo`, the part that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's device, `major:minor`: tells one mount from another at
    /// the same path.
    pub device: String,
    pub fstype: String,
    /// What was mounted: `mediafs:LOCATION` for a mediafs mount.
    pub source: String,
}

impl MountEntry {
    /// A mount made by mediafs: a FUSE mount (`fuse`, or `fuse.mediafs`
    /// when mounted through fusermount3) of `mediafs:LOCATION`.
    pub fn is_mediafs(&self) -> bool {
        self.fstype.starts_with("fuse") && self.source.starts_with("mediafs:")
    }
}

/// The mount on top at `path` (the last one mounted there), if any.
/// `path` must be absolute and free of symlinks, as the table is.
pub fn top_mount(path: &Path) -> io::Result<Option<MountEntry>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    let want = path.as_os_str().as_bytes();
    Ok(table
        .lines()
        .rev()
        .filter_map(parse_line)
        .find(|(at, _)| at.as_slice() == want)
        .map(|(_, entry)| entry))
}

/// `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...`
fn parse_line(line: &str) -> Option<(Vec<u8>, MountEntry)> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let device = (*fields.get(2)?).to_owned();
    let at = unescape(fields.get(4)?);
    let mut after = after.split(' ');
    let fstype = after.next()?.to_owned();
    let source = String::from_utf8_lossy(&unescape(after.next()?)).into_owned();
    Some((
        at,
        MountEntry {
            device,
            fstype,
            source,
        },
    ))
}

/// The table writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `path` made absolute and free of symlinks, without looking at the
/// directory itself: a mount's root may belong to a process that is gone
/// (every look at it fails) or to this very process.
pub fn absolute(path: &Path) -> io::Result<PathBuf> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(parent.canonicalize()?.join(name))
        }
        _ => path.canonicalize(),
    }
}

/// Why an unmount did not happen.
#[derive(Debug)]
pub enum UnmountError {
    /// Something uses the mount: a working directory, an open file.
    Busy,
    Other(String),
}

/// Unmounts what is at `path`; `lazy` detaches it even while in use (what
/// uses it keeps it until done with it).
pub fn unmount(path: &Path, lazy: bool) -> Result<(), UnmountError> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| UnmountError::Other("the path holds a NUL byte".into()))?;
    let flags = libc::UMOUNT_NOFOLLOW | if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path, and flags the call knows.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EBUSY) => Err(UnmountError::Busy),
        // Not root: the setuid helper unmounts the caller's own FUSE mounts.
        Some(libc::EPERM) => fusermount(path, lazy),
        _ => Err(UnmountError::Other(e.to_string())),
    }
}

fn fusermount(path: &Path, lazy: bool) -> Result<(), UnmountError> {
    let out = Command::new("fusermount3")
        .args(if lazy { &["-u", "-z"][..] } else { &["-u"][..] })
        .arg("--")
        .arg(path)
        .output()
        .map_err(|e| UnmountError::Other(format!("cannot run fusermount3: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if said.contains("busy") {
        Err(UnmountError::Busy)
    } else {
        Err(UnmountError::Other(said))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mountinfo_line_with_an_escaped_space() {
        let line = "51 27 0:48 / /tmp/my\\040media rw,nosuid shared:1 - fuse.mediafs mediafs:Loc rw,user_id=0";
        let (at, entry) = parse_line(line).unwrap();
        assert_eq!(at, b"/tmp/my media");
        assert_eq!(entry.device, "0:48");
        assert_eq!(entry.fstype, "fuse.mediafs");
        assert_eq!(entry.source, "mediafs:Loc");
        assert!(entry.is_mediafs());
    }

    #[test]
    fn finds_the_root_mount_and_none_where_there_is_none() {
        let root = top_mount(Path::new("/")).unwrap().unwrap();
        assert!(!root.fstype.is_empty());
        assert_eq!(top_mount(Path::new("/no/such/mount")).unwrap(), None);
    }
}
