//! The Debian package, installed for real on this machine (hence root, as CI
//! runs): built by scripts/package.sh from the binary under test, installed
//! with dpkg, then mounted over an emulator process through
//! `mount -t fuse.mediafs` and through an /etc/fstab line with
//! `mount MOUNTPOINT`, files written and read back, and unmounted with
//! umount(8). /etc/fstab is restored however the test ends, and the package
//! removed unless it was installed before.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{run_to_end, DaemonMount};
use common::mount::{is_mounted, ok, q, sh, EmulatorProcess, BIN};
use common::{client_for, png_bytes, TOKEN};

/// A location of this test's own, so that its default cache dir is too.
const PKG_LOCATION: &str = "LocPackageTest77";

/// Panics with a clear message unless the tests run as root.
fn need_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "tests/package.rs needs root (euid 0, not {euid}): it installs the package with dpkg, \
         edits /etc/fstab and mounts with mount(8); run it as root, as CI does"
    );
}

/// Builds the package from the binary under test; returns the .deb's path.
fn build_package() -> PathBuf {
    assert!(
        Path::new(BIN).parent().unwrap().ends_with("release"),
        "the package holds the release binary: run the tests with --release"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/package.sh");
    let built = ok(&format!("{} --no-build", q(script)));
    let deb = PathBuf::from(built.lines().last().unwrap_or_default());
    assert!(deb.extension().is_some_and(|e| e == "deb"), "{built}");
    deb
}

/// The package holds the binary, the helper where mount(8) looks, the unit,
/// man pages and completions, and depends on fuse3.
fn check_contents(deb: &Path) {
    let listing = ok(&format!("dpkg-deb -c {}", q(deb)));
    for path in [
        "./usr/bin/mediafs",
        "./usr/sbin/mount.fuse.mediafs -> ../bin/mediafs",
        "./usr/lib/systemd/system/mediafs@.service",
        "./usr/share/man/man1/mediafs.1.gz",
        "./usr/share/man/man1/mediafs-mount.1.gz",
        "./usr/share/man/man8/mount.fuse.mediafs.8.gz",
        "./usr/share/bash-completion/completions/mediafs",
        "./usr/share/zsh/vendor-completions/_mediafs",
        "./usr/share/fish/vendor_completions.d/mediafs.fish",
    ] {
        assert!(listing.contains(path), "{path} in:\n{listing}");
    }
    let depends = ok(&format!("dpkg-deb -f {} Depends", q(deb)));
    assert!(
        depends.split(", ").any(|d| d.trim() == "fuse3"),
        "{depends}"
    );
}

/// The package, installed while this lives.
struct Installed {
    was_installed: bool,
}

impl Installed {
    fn install(deb: &Path) -> Installed {
        let query = sh("dpkg-query -W -f '${Status}' mediafs");
        let was_installed = String::from_utf8_lossy(&query.stdout).contains("ok installed");
        let installed = Installed { was_installed };
        ok(&format!("dpkg -i {}", q(deb)));
        installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.was_installed {
            let _ = sh("dpkg -r mediafs");
        }
    }
}

/// What the installed package offers besides the mount: the helper where
/// mount(8) finds it, a man page that lists the options, a completion that loads.
fn check_installed() {
    let helper = std::fs::canonicalize("/sbin/mount.fuse.mediafs").unwrap();
    assert_eq!(helper, std::fs::canonicalize("/usr/bin/mediafs").unwrap());
    let man = ok("zcat /usr/share/man/man8/mount.fuse.mediafs.8.gz");
    assert!(man.contains("token_file"), "{man}");
    ok("source /usr/share/bash-completion/completions/mediafs && complete -p mediafs");
}

/// An /etc/fstab with a few lines more, as it was once this is dropped.
struct FstabLines {
    original: Vec<u8>,
}

impl FstabLines {
    fn add(lines: &[String]) -> FstabLines {
        let original = std::fs::read("/etc/fstab").unwrap_or_default();
        let mut edited = original.clone();
        if !edited.is_empty() && !edited.ends_with(b"\n") {
            edited.push(b'\n');
        }
        edited.extend(b"# added by mediafs's tests/package.rs while it runs\n");
        for line in lines {
            edited.extend(format!("{line}\n").into_bytes());
        }
        std::fs::write("/etc/fstab", edited).unwrap();
        FstabLines { original }
    }
}

impl Drop for FstabLines {
    fn drop(&mut self) {
        std::fs::write("/etc/fstab", &self.original).unwrap();
    }
}

/// The mediafs options every mount of this test gives.
fn options(emu: &EmulatorProcess, token_file: &Path) -> String {
    format!(
        "token_file={},base_url={},rate_limit=0,metadata_ttl=1",
        token_file.display(),
        emu.base_url
    )
}

/// The mount's type in /proc/mounts.
fn mount_type(mountpoint: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == mountpoint.to_str());
    line.and_then(|l| l.split(' ').nth(2))
        .unwrap_or_default()
        .to_owned()
}

/// The default cache dir of a mount made without HOME: root's.
fn root_cache_dir() -> PathBuf {
    let home = ok("getent passwd 0 | cut -d: -f6");
    Path::new(home.trim())
        .join(".cache/mediafs")
        .join(PKG_LOCATION)
}

/// `mount -t fuse.mediafs` with no HOME (as at boot), writing a file.
fn mount_t(emu: &EmulatorProcess, token_file: &Path, content: &[u8]) {
    let cache = root_cache_dir();
    let _ = std::fs::remove_dir_all(&cache);
    let mount = DaemonMount::new();
    let ran = run_to_end(
        Command::new("mount")
            .args(["-t", "fuse.mediafs", PKG_LOCATION])
            .arg(mount.path())
            .arg("-o")
            .arg(format!("{},allow_other,_netdev", options(emu, token_file)))
            .env_remove("HOME")
            .env_remove("XDG_CACHE_HOME"),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(is_mounted(&mount.path()), "mounted when mount(8) returns");
    assert_eq!(mount_type(&mount.path()), "fuse.mediafs");
    let exe = std::fs::read_link(format!("/proc/{}/exe", mount.daemon())).unwrap();
    assert_eq!(exe, Path::new("/usr/bin/mediafs"), "the installed binary");
    assert!(
        cache.is_dir(),
        "the default cache dir is root's, not /tmp's"
    );

    std::fs::write(mount.path().join("from-mount.png"), content).unwrap();
    assert_eq!(
        std::fs::read(mount.path().join("from-mount.png")).unwrap(),
        content
    );
    mount.unmount_with("umount");
    std::fs::remove_dir_all(&cache).unwrap();
}

/// `mount MOUNTPOINT` of fstab lines: one that mounts, reading the file
/// written before and writing another, and one whose token is refused.
fn mount_from_fstab(emu: &EmulatorProcess, token_file: &Path, content: &[u8]) {
    let (good, bad) = (DaemonMount::new(), DaemonMount::new());
    let (cache, secrets) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wrong_token = secrets.path().join("wrong");
    std::fs::write(&wrong_token, "pit-wrong").unwrap();
    let line = |mountpoint: &Path, token_file: &Path| {
        format!(
            "{PKG_LOCATION} {} fuse.mediafs noauto,nofail,_netdev,x-systemd.automount,\
             x-systemd.mount-timeout=60,{},cache_dir={} 0 0",
            mountpoint.display(),
            options(emu, token_file),
            cache.path().display()
        )
    };
    let fstab = FstabLines::add(&[
        line(&good.path(), token_file),
        line(&bad.path(), &wrong_token),
    ]);

    let ran = run_to_end(Command::new("mount").arg(good.path()));
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(is_mounted(&good.path()));
    assert_eq!(
        std::fs::read(good.path().join("from-mount.png")).unwrap(),
        content
    );
    std::fs::write(good.path().join("from-fstab.png"), content).unwrap();
    good.unmount_with("umount");

    let refused = run_to_end(Command::new("mount").arg(bad.path()));
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("refused access"),
        "{}",
        refused.stderr
    );
    assert!(!is_mounted(&bad.path()));

    let edited = std::fs::read("/etc/fstab").unwrap();
    let original = fstab.original.clone();
    assert_ne!(edited, original);
    drop(fstab);
    assert_eq!(std::fs::read("/etc/fstab").unwrap(), original, "restored");
}

#[test]
fn the_package_installs_a_helper_that_mount_and_fstab_lines_use() {
    need_root();
    let deb = build_package();
    check_contents(&deb);
    let _installed = Installed::install(&deb);
    check_installed();

    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--location", PKG_LOCATION]);
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let content = png_bytes(40_000, 7);
    mount_t(&emu, &token_file, &content);
    mount_from_fstab(&emu, &token_file, &content);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client_for(&emu.base_url, PKG_LOCATION, TOKEN, |c| c.rate_limit = None);
    let mut names: Vec<_> = rt
        .block_on(client.list_children(None))
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["from-fstab.png", "from-mount.png"],
        "both on the server"
    );
}
