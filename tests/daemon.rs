//! A mount that lives like a service: `mediafs mount --daemon` returns once
//! the mount answers, detached from its caller, or fails with the message the
//! foreground mount prints; the systemd unit's command tells systemd when the
//! mount is ready; and the log goes where --log-file, --log-level and the
//! journal want it.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Command, Stdio};

use common::daemon::{daemons_of, run_to_end, wait_until, DaemonMount, Ran, DEADLINE};
use common::mount::{is_mounted, EmulatorProcess, BIN};
use common::{png_bytes, LOCATION, TOKEN};

/// `mediafs mount` of a location over the emulator, with a token in the environment.
fn mount_of(emu: &EmulatorProcess, location: &str, mountpoint: &Path, cache: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("mount")
        .arg(mountpoint)
        .args(["--location", location, "--base-url", &emu.base_url])
        .args(["--rate-limit", "0", "--metadata-ttl", "1", "--cache-dir"])
        .arg(cache)
        .env("MEDIAFS_TOKEN", TOKEN);
    command
}

fn mount_command(emu: &EmulatorProcess, mountpoint: &Path, cache: &Path) -> Command {
    mount_of(emu, LOCATION, mountpoint, cache)
}

/// The `/proc/PID/stat` fields after the command name: state, ppid, pgrp, session.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').map(str::to_owned).collect()
}

fn link(pid: u32, what: &str) -> String {
    let target = std::fs::read_link(format!("/proc/{pid}/{what}")).unwrap();
    target.display().to_string()
}

#[test]
fn daemon_returns_once_mounted_detached_and_logging_to_its_file() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let mount = DaemonMount::new();
    let (cache, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = logs.path().join("mediafs.log");
    std::fs::write(&log, "an earlier line\n").unwrap();
    let ran = run_to_end(
        mount_command(&emu, &mount.path(), cache.path())
            .arg("--daemon")
            .arg("--log-file")
            .arg(&log)
            // --log-level wins over RUST_LOG.
            .args(["--log-level", "info"])
            .env("RUST_LOG", "off"),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(
        is_mounted(&mount.path()),
        "mounted when the command returns"
    );
    assert_eq!((ran.stdout.as_str(), ran.stderr.as_str()), ("", ""));

    // Detached: its own session (not its leader), no terminal, out of the
    // caller's directory, its streams on /dev/null and the log file.
    let daemon = mount.daemon();
    let fields = stat_fields(daemon);
    let own_session = stat_fields(std::process::id())[3].clone();
    assert_ne!(fields[3], own_session, "a new session");
    assert_ne!(fields[3], daemon.to_string(), "not the session leader");
    assert_eq!(fields[4], "0", "no controlling terminal");
    assert_eq!(link(daemon, "cwd"), "/");
    assert_eq!(link(daemon, "fd/0"), "/dev/null");
    assert_eq!(link(daemon, "fd/1"), "/dev/null");
    assert_eq!(link(daemon, "fd/2"), log.display().to_string());

    let bytes = png_bytes(70_000, 3);
    std::fs::write(mount.path().join("daemon.png"), &bytes).unwrap();
    assert_eq!(
        std::fs::read(mount.path().join("daemon.png")).unwrap(),
        bytes
    );
    let (rt, client) = emu.client();
    let root = rt.block_on(client.list_children(None)).unwrap();
    assert!(root.iter().any(|o| o.name == "daemon.png"), "uploaded");

    mount.unmount_with("fusermount3 -u");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.starts_with("an earlier line\n"),
        "appended: {logged}"
    );
    assert!(
        logged.contains(&format!(
            "{} is mounted and answers",
            mount.path().display()
        )),
        "{logged}"
    );
    assert!(!logged.contains(TOKEN));
}

/// The `mediafs: ` line a failed command printed.
fn error_line(ran: &Ran) -> String {
    assert!(!ran.status.success(), "it failed: {}", ran.stderr);
    let line = ran.stderr.lines().find(|l| l.starts_with("mediafs: "));
    line.unwrap_or_else(|| panic!("no error line in {:?}", ran.stderr))
        .to_owned()
}

#[test]
fn a_daemon_that_cannot_mount_fails_with_the_foreground_message() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let cache = tempfile::tempdir().unwrap();
    let mount = DaemonMount::new();
    let (mountpoint, missing) = (mount.path(), mount.path().join("missing"));
    let cases = [
        (
            "wrong token",
            "pit-wrong",
            LOCATION,
            &mountpoint,
            "refused access",
        ),
        (
            "unknown location",
            TOKEN,
            "LocNobodyHas0000",
            &mountpoint,
            "LocNobodyHas0000",
        ),
        (
            "no mountpoint",
            TOKEN,
            LOCATION,
            &missing,
            "cannot mount on",
        ),
    ];
    for (case, token, location, mountpoint, expected) in cases {
        let run = |daemon: bool| {
            let mut command = mount_of(&emu, location, mountpoint, cache.path());
            command.env("MEDIAFS_TOKEN", token);
            if daemon {
                command.arg("--daemon");
            }
            run_to_end(&mut command)
        };
        let foreground = error_line(&run(false));
        assert!(foreground.contains(expected), "{case}: {foreground}");
        let daemon = run(true);
        assert_eq!(error_line(&daemon), foreground, "{case}");
        assert_eq!(
            daemon.stderr,
            format!("{foreground}\n"),
            "{case}: only that"
        );
        assert!(!is_mounted(mountpoint), "{case}");
        wait_until("the daemon that failed exits", || {
            daemons_of(mountpoint).is_empty()
        });
    }
}

/// Where the service unit's `KEY=` setting says.
fn unit_setting(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    let line = unit.lines().find(|l| l.starts_with(&prefix));
    line.unwrap_or_else(|| panic!("no {key}= in the unit"))[prefix.len()..].to_owned()
}

#[test]
fn the_service_units_command_tells_systemd_once_the_mount_answers() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/mediafs@.service"
    ))
    .unwrap();
    assert_eq!(unit_setting(&unit, "Type"), "notify");
    assert_eq!(unit_setting(&unit, "KillMode"), "mixed");
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let conf = tempfile::tempdir().unwrap();
    let token_file = conf.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    // Both kinds of NOTIFY_SOCKET: a path, and a name in the abstract namespace.
    let abstract_name = format!("mediafs-test-{}", std::process::id());
    let sockets = [
        (
            conf.path().join("notify").display().to_string(),
            UnixDatagram::bind(conf.path().join("notify")).unwrap(),
        ),
        (format!("@{abstract_name}"), {
            let addr = SocketAddr::from_abstract_name(&abstract_name).unwrap();
            UnixDatagram::bind_addr(&addr).unwrap()
        }),
    ];
    for (notify_socket, socket) in sockets {
        let mount = DaemonMount::new();
        // As systemd would run it, $MEDIAFS_ARGS split into words.
        let mediafs_args = format!("--base-url {} --rate-limit 0", emu.base_url);
        let words: Vec<String> = unit_setting(&unit, "ExecStart")
            .split_whitespace()
            .flat_map(|word| match word {
                "/usr/bin/mediafs" => vec![BIN.to_owned()],
                "${MOUNTPOINT}" => vec![mount.path().display().to_string()],
                "${LOCATION}" => vec![LOCATION.to_owned()],
                "${TOKEN_FILE}" => vec![token_file.display().to_string()],
                "$MEDIAFS_ARGS" => mediafs_args.split(' ').map(str::to_owned).collect(),
                cache if cache.starts_with("%C/") => vec![cache
                    .replace("%C", &conf.path().display().to_string())
                    .replace("%i", "test")],
                other => vec![other.to_owned()],
            })
            .collect();
        let mut service = Command::new(&words[0])
            .args(&words[1..])
            .env("NOTIFY_SOCKET", &notify_socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut message = [0u8; 64];
        let len = socket
            .recv(&mut message)
            .expect("READY=1 within the deadline");
        assert_eq!(&message[..len], b"READY=1", "{notify_socket}");
        assert!(is_mounted(&mount.path()), "mounted when it says so");
        assert!(std::fs::read_dir(mount.path()).is_ok());
        mount.unmount_with("fusermount3 -u");
        assert!(service.wait().unwrap().success());
    }
}

#[test]
fn under_the_journal_log_lines_carry_a_priority_and_no_timestamp() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let (cache, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mount = DaemonMount::new();
    let stderr_file = logs.path().join("stderr");
    let run = |journal_stream: &str| {
        let stderr = std::fs::File::create(&stderr_file).unwrap();
        let journal_stream = match journal_stream {
            "this file" => {
                let meta = stderr.metadata().unwrap();
                format!("{}:{}", meta.dev(), meta.ino())
            }
            other => other.to_owned(),
        };
        let status = mount_command(&emu, &mount.path(), cache.path())
            .env("MEDIAFS_TOKEN", "pit-wrong")
            .env("JOURNAL_STREAM", journal_stream)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .unwrap();
        assert!(!status.success());
        std::fs::read_to_string(&stderr_file).unwrap()
    };
    let journal = run("this file");
    assert!(
        journal
            .lines()
            .any(|l| l.starts_with("<3>mediafs::cli: the service refused access")),
        "{journal}"
    );
    assert!(
        !journal.contains("ERROR"),
        "no timestamp or level: {journal}"
    );
    // A JOURNAL_STREAM that is not our standard error (a parent's): as on
    // a terminal, the error once, plainly.
    let elsewhere = run("1:1");
    let said: Vec<&str> = elsewhere
        .lines()
        .filter(|l| l.contains("the service refused access"))
        .collect();
    assert_eq!(said.len(), 1, "{elsewhere}");
    assert!(said[0].starts_with("mediafs: "), "{elsewhere}");
    assert!(!elsewhere.contains("<3>"), "{elsewhere}");
}

/// README shows the systemd unit: the copy there is the file's own.
#[test]
fn readme_shows_the_unit_as_it_is() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("packaging/mediafs@.service")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let body = &unit[unit.find("[Unit]").unwrap()..];
    assert!(
        readme.contains(body),
        "README.md's copy of the unit is stale"
    );
}
