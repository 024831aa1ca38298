//! A mount that lives like a service: stopped by SIGTERM with a shell in it
//! or an upload in flight, stopped at once by a second signal, stopped from
//! another shell with `mediafs unmount`, and commands whose stdout is a
//! closed pipe. Each runs the real binary over an emulator process.

mod common;

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::mount::{is_mounted, ok, q, EmulatorProcess, Mounted, BIN};
use common::png_bytes;
use serde_json::json;

const UPLOAD_ROUTE: &str = "POST /medias/upload-file";

/// Waits up to `limit` for `done`, or fails saying `what`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn uploads_started(emu: &EmulatorProcess) -> u64 {
    emu.stats()["by_route"][UPLOAD_ROUTE].as_u64().unwrap_or(0)
}

/// `count` PNG files of `size` bytes in a temp dir, named f0.png, f1.png, ...
fn pngs(count: usize, size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..count {
        std::fs::write(
            dir.path().join(format!("f{i}.png")),
            png_bytes(size, i as u8),
        )
        .unwrap();
    }
    dir
}

/// `mediafs status` of a cache dir: (pending, failed).
fn spool_counts(cache_dir: &Path) -> (usize, usize) {
    let status = ok(&format!("{BIN} status --cache-dir {}", q(cache_dir)));
    let words: Vec<&str> = status.split_whitespace().collect();
    (words[0].parse().unwrap(), words[3].parse().unwrap())
}

fn mediafs(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file of `src` is in a fresh mount over `emu`, byte for byte.
fn all_stored(emu: &EmulatorProcess, src: &Path) {
    let fresh = Mounted::start(emu, &[]);
    for entry in std::fs::read_dir(src).unwrap() {
        let name = entry.unwrap().file_name();
        ok(&format!(
            "cmp {} {}",
            q(src.join(&name)),
            q(fresh.path().join(&name))
        ));
    }
}

#[test]
fn sigterm_with_a_shell_inside_detaches_the_mount_and_exits() {
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let mut m = Mounted::start(&emu, &[]);
    let mut inside = Command::new("sleep")
        .arg("600")
        .current_dir(m.path().join("Team"))
        .spawn()
        .unwrap();
    m.signal(libc::SIGTERM);
    let status = m.wait_exit(Duration::from_secs(30));
    assert!(!is_mounted(m.path()), "the mount is off the tree");
    let log = m.log();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("detached") && log.contains("Transport endpoint is not connected"),
        "{log}"
    );
    // What still held the detached mount now gets ENOTCONN.
    let err = std::fs::read_dir(format!("/proc/{}/cwd", inside.id())).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    inside.kill().unwrap();
    inside.wait().unwrap();
}

#[test]
fn sigterm_while_cp_uploads_stores_the_file_and_exits_0() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let mut m = Mounted::start(&emu, &[]);
    let src = pngs(1, 6 * 1024 * 1024);
    // 6 MiB at 2 MB/s: the upload, which cp's close waits for, takes a while.
    emu.set_faults(json!({"bandwidth": 2_000_000, "rate_limit": 0}));
    let mut cp = Command::new("cp")
        .arg(src.path().join("f0.png"))
        .arg(m.path())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the upload starts", || {
        uploads_started(&emu) > 0
    });
    m.signal(libc::SIGTERM);
    let status = m.wait_exit(Duration::from_secs(60));
    assert!(cp.wait().unwrap().success(), "cp's close succeeded");
    let log = m.log();
    assert!(log.contains("1 upload under way"), "{log}");
    assert!(log.contains("1 upload stored while stopping"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!is_mounted(m.path()));
    emu.set_faults(json!({"rate_limit": 0}));
    all_stored(&emu, src.path());
}

#[test]
fn sigterm_while_a_file_is_open_for_writing_stores_it_once_closed() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let mut m = Mounted::start(&emu, &[]);
    let src = pngs(1, 300_000);
    let mut open = std::fs::File::create(m.path().join("f0.png")).unwrap();
    open.write_all(&std::fs::read(src.path().join("f0.png")).unwrap())
        .unwrap();
    m.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(20), "the mount is detached", || {
        !is_mounted(m.path())
    });
    assert!(m.running(), "it waits for the file open for writing");
    // close(2) returns once the upload is stored, with its outcome.
    let closed = unsafe { libc::close(open.into_raw_fd()) };
    assert_eq!(closed, 0, "{}", std::io::Error::last_os_error());
    let status = m.wait_exit(Duration::from_secs(30));
    let log = m.log();
    assert!(log.contains("1 file open for writing"), "{log}");
    assert!(log.contains("1 upload stored while stopping"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    all_stored(&emu, src.path());
}

#[test]
fn a_second_sigterm_stops_at_once_and_the_spool_waits_for_the_next_mount() {
    // 20 kB/s: the write-back uploads take many seconds.
    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--bandwidth", "20000"]);
    let cache = tempfile::tempdir().unwrap();
    let mut m = Mounted::start_with_cache(&emu, cache.path(), &["--write-back"]);
    let src = pngs(3, 100_000);
    ok(&format!("cp {}/* {}", q(src.path()), m.at("")));
    m.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(20), "the stop begins", || {
        m.log().contains("SIGTERM: stopping")
    });
    m.signal(libc::SIGTERM);
    let status = m.wait_exit(Duration::from_secs(10));
    let log = m.log();
    assert_eq!(status.code(), Some(5), "{log}");
    assert!(
        log.contains("stopped at once") && log.contains("3 write-back uploads left in the spool"),
        "{log}"
    );
    assert!(!is_mounted(m.path()), "no dead mount is left behind");
    assert_eq!(spool_counts(cache.path()), (3, 0));

    emu.set_faults(json!({"rate_limit": 0}));
    let mut again = Mounted::start_with_cache(&emu, cache.path(), &[]);
    again.signal(libc::SIGTERM);
    let status = again.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", again.log());
    assert_eq!(spool_counts(cache.path()), (0, 0));
    all_stored(&emu, src.path());
}

#[test]
fn mediafs_unmount_waits_for_the_write_back_spool_and_says_what_was_stored() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let mut m = Mounted::start(&emu, &["--write-back"]);
    let src = pngs(3, 60_000);
    // 50 kB/s: the three uploads take seconds after cp returns.
    emu.set_faults(json!({"bandwidth": 50_000, "rate_limit": 0}));
    ok(&format!("cp {}/* {}", q(src.path()), m.at("")));
    assert_eq!(spool_counts(&m.cache_dir), (3, 0));
    let out = mediafs(&["unmount", m.path().to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}{}",
        text(&out.stderr),
        m.log()
    );
    assert!(
        said.contains("3 uploads stored while stopping") && said.contains("nothing left to upload"),
        "{said}"
    );
    // The command returned once the mount process had exited.
    assert_eq!(m.wait_exit(Duration::from_secs(1)).code(), Some(0));
    assert!(!is_mounted(m.path()));
    assert_eq!(spool_counts(&m.cache_dir), (0, 0));
    emu.set_faults(json!({"rate_limit": 0}));
    all_stored(&emu, src.path());
}

/// `mediafs demo`'s cache is a temporary dir it removes as it ends, its
/// summary with it: `mediafs unmount` says the demo ended, exit 0.
#[test]
fn mediafs_unmount_stops_a_demo_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("demo");
    let mut demo = Command::new(BIN)
        .arg("demo")
        .arg(&mnt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "the demo mount", || {
        is_mounted(&mnt) && mnt.join("Team").exists()
    });
    let out = mediafs(&["unmount", mnt.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("removed its temporary cache"), "{said}");
    assert_eq!(demo.wait().unwrap().code(), Some(0));
    assert!(!is_mounted(&mnt));
}

#[test]
fn mediafs_unmount_refuses_what_is_not_a_live_mediafs_mount() {
    let plain = tempfile::tempdir().unwrap();
    let out = mediafs(&["unmount", plain.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains("is not a mount point, so not a mediafs mount"),
        "{said}"
    );

    let gone = plain.path().join("gone");
    let out = mediafs(&["unmount", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does not exist"));

    let out = mediafs(&["unmount", "/proc"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains("/proc is not a mediafs mount (it is a proc mount)"),
        "{said}"
    );

    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let mut m = Mounted::start(&emu, &[]);
    m.kill9();
    let out = mediafs(&["unmount", m.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains("is gone") && said.contains("fusermount3 -u"),
        "{said}"
    );
}

/// A pipe whose reading end is closed already: every write to it fails
/// with EPIPE, at once and every time.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

#[test]
fn commands_whose_stdout_is_a_closed_pipe_do_not_panic() {
    // As `mediafs status | head -1` once head has exited.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["status", "--cache-dir", cache.path().to_str().unwrap()])
        .stdout(closed_pipe())
        .output()
        .unwrap();
    let said = text(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert!(out.status.success(), "{said}");

    // A mount started with its stdout closed serves, and stops cleanly.
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut mount = Command::new(BIN)
        .arg("mount")
        .arg(dir.path())
        .args(["--location", common::LOCATION, "--base-url", &emu.base_url])
        .arg("--cache-dir")
        .arg(cache.path())
        .env("MEDIAFS_TOKEN", common::TOKEN)
        .stdout(closed_pipe())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "the mount appears", || {
        is_mounted(dir.path())
    });
    unsafe { libc::kill(mount.id() as i32, libc::SIGTERM) };
    let status = mount.wait().unwrap();
    let left_mounted = is_mounted(dir.path());
    if left_mounted {
        ok(&format!("fusermount3 -uz {}", q(dir.path())));
    }
    let said = std::fs::read_to_string(log.path()).unwrap();
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(!left_mounted);
}
