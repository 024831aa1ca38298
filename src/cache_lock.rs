//! One mount per cache dir. Two mounts sharing one (a location's default
//! cache dir is the same for every mount of it) would each take the other's
//! staging files, spool and waiting files for a crash's leftovers: wiping
//! staging under a file still open, uploading the spool twice. A mount
//! holds an exclusive lock on `CACHE_DIR/lock` for its whole life, and a
//! second one is refused with the first one's pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Held while the mount lives; the lock goes with the process.
pub struct CacheLock {
    _held: Flock<File>,
}

pub fn lock(dir: &Path) -> Result<CacheLock, String> {
    let shown = dir.display();
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| format!("cannot prepare the cache dir {shown}: {e}"))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            // Who holds it, for the message a second mount gets.
            let _ = locked
                .set_len(0)
                .and_then(|()| locked.rewind())
                .and_then(|()| writeln!(locked, "{}", std::process::id()));
            Ok(CacheLock { _held: locked })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(format!(
                "the cache dir {shown} is in use by another mediafs mount (pid {}); unmount it \
                 first, or give this mount its own --cache-dir",
                pid.trim()
            ))
        }
        Err((_, e)) => Err(format!("cannot lock the cache dir {shown}: {e}")),
    }
}
