//! Faults, crashes, bad input and security, through real mounts: nothing a
//! program was told is stored may be missing or wrong, nothing partial may
//! be stored, and no token may leak.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::mount::{ok, q, sh, EmulatorProcess, Mounted};
use common::{png_bytes, write_file, LOCATION, TOKEN};
use mediafs::api::{ListQuery, MediaObject, ObjectKind};
use serde_json::json;

fn all_files(emu: &EmulatorProcess) -> Vec<MediaObject> {
    let (rt, client) = emu.client();
    let mut q = ListQuery::children(ObjectKind::File, None, 100);
    q.fetch_all = true;
    rt.block_on(client.list_all(q)).unwrap()
}

fn bytes_of(emu: &EmulatorProcess, object: &MediaObject) -> Vec<u8> {
    let (rt, client) = emu.client();
    rt.block_on(async {
        client
            .download(object.url.as_deref().unwrap(), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    })
    .to_vec()
}

/// Files `f000.png`... with distinct contents, in a new temp dir.
fn numbered_files(count: usize) -> (tempfile::TempDir, HashMap<String, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = HashMap::new();
    for i in 0..count {
        let name = format!("f{i:03}.png");
        let bytes = png_bytes(2000 + i * 37, i as u8);
        std::fs::write(dir.path().join(&name), &bytes).unwrap();
        files.insert(name, bytes);
    }
    (dir, files)
}

/// Copies each file with its own `cp`; returns the names whose `cp` succeeded.
fn copy_one_by_one(src: &Path, dest: &str) -> Vec<String> {
    let log = ok(&format!(
        "cd {} && for f in *.png; do if cp \"$f\" {dest}/ 2>/dev/null; then echo \"ok $f\"; else echo \"fail $f\"; fi; done",
        q(src)
    ));
    log.lines()
        .filter_map(|l| l.strip_prefix("ok ").map(str::to_owned))
        .collect()
}

/// Every object on the server is one of ours, whole, and there at most once;
/// every copy that reported success is there.
fn check_no_loss_no_partial(
    emu: &EmulatorProcess,
    files: &HashMap<String, Vec<u8>>,
    succeeded: &[String],
) {
    let stored = all_files(emu);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for o in &stored {
        *seen.entry(o.name.as_str()).or_default() += 1;
        let expected = files
            .get(&o.name)
            .unwrap_or_else(|| panic!("unexpected object {}", o.name));
        assert_eq!(
            &bytes_of(emu, o),
            expected,
            "{} is stored with the wrong bytes",
            o.name
        );
    }
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    for name in succeeded {
        assert!(
            seen.contains_key(name.as_str()),
            "{name} was reported stored but is missing"
        );
    }
}

#[test]
fn fifteen_percent_failures_with_latency_and_the_real_rate_limit_lose_nothing() {
    let emu = EmulatorProcess::start(&[
        "--fail-rate",
        "0.15",
        "--latency-ms",
        "20",
        "--rate-limit",
        "100",
    ]);
    let m = Mounted::start(&emu, &[]);
    let (src, files) = numbered_files(150);
    let succeeded = copy_one_by_one(src.path(), &m.at(""));
    assert!(
        succeeded.len() >= 145,
        "retries got nearly all through: {}",
        succeeded.len()
    );
    emu.set_faults(json!({"rate_limit": 100}));
    check_no_loss_no_partial(&emu, &files, &succeeded);
    // The mount still works.
    ok(&format!(
        "ls {} > /dev/null && cp {} {}",
        m.at(""),
        q(src.path().join("f000.png")),
        m.at("again.png")
    ));
}

#[test]
fn a_burst_past_the_rate_limit_completes_without_errors() {
    let emu = EmulatorProcess::start(&["--rate-limit", "20"]);
    let m = Mounted::start(&emu, &[]);
    let (src, files) = numbered_files(30);
    for i in 0..10 {
        ok(&format!("mkdir {}", m.at(&format!("d{i}"))));
    }
    // Thirty copies in parallel and listings between them: far more than 20 requests in 10 s.
    ok(&format!(
        "cd {} && ls *.png | xargs -P 8 -I{{}} cp {{}} {}/ && ls -lR {} > /dev/null",
        q(src.path()),
        m.at(""),
        m.at("")
    ));
    let succeeded: Vec<String> = files.keys().cloned().collect();
    check_no_loss_no_partial(&emu, &files, &succeeded);
}

#[test]
fn the_mount_recovers_by_itself_when_the_emulator_comes_back() {
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!("ls {}", m.at("Team")));
    let mut emu = emu;
    emu.kill();
    std::thread::sleep(Duration::from_millis(1200));
    let down = sh(&format!("ls {}", m.at("Campaigns")));
    assert!(
        !down.status.success(),
        "nothing to list while the service is down"
    );
    let emu = emu.restart(&["--rate-limit", "0"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sh(&format!("ls {}", m.at("Campaigns"))).status.success() {
        assert!(Instant::now() < deadline, "the mount did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&format!(
        "cp {} {}",
        m.at("Team/team-photo.jpg"),
        m.at("Team/copy.jpg")
    ));
    assert_eq!(
        all_files(&emu)
            .iter()
            .filter(|o| o.name == "copy.jpg")
            .count(),
        1
    );
}

#[test]
fn kill_9_mid_copy_keeps_every_reported_copy_and_nothing_partial() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--bandwidth", "4000000"]);
    let m = Mounted::start(&emu, &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut files = HashMap::new();
    for i in 0..40 {
        let name = format!("f{i:03}.png");
        let bytes = png_bytes(300_000 + i * 1000, i as u8);
        std::fs::write(dir.path().join(&name), &bytes).unwrap();
        files.insert(name, bytes);
    }
    let log = dir.path().join("copied.log");
    let mut copier = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "cd {} && for f in *.png; do if cp \"$f\" {}/ 2>/dev/null; then echo \"ok $f\" >> {}; fi; done",
            q(dir.path()),
            m.at(""),
            q(&log)
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 5
    {
        assert!(Instant::now() < deadline, "the copy did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut m = m;
    m.kill9();
    // The copies still to come fail on the dead mount.
    copier.wait().unwrap();
    let m = m.remount(&emu, &[]);
    let succeeded: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("ok ").map(str::to_owned))
        .collect();
    assert!(succeeded.len() < files.len(), "the kill came mid-copy");
    emu.set_faults(json!({"rate_limit": 0}));
    check_no_loss_no_partial(&emu, &files, &succeeded);
    for name in &succeeded {
        ok(&format!("cmp {} {}", q(dir.path().join(name)), m.at(name)));
    }
    ok(&format!(
        "cp {} {}",
        q(dir.path().join("f039.png")),
        m.at("after.png")
    ));
}

#[test]
fn changes_on_the_server_never_show_another_objects_bytes() {
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let m = Mounted::start(&emu, &[]);
    let path = m.path().join("Brand Kit/Logos/logo.png");
    let original = std::fs::read(&path).unwrap();
    let mut open_old = std::fs::File::open(&path).unwrap();
    // In the web app: the logo is replaced (a new upload, the old one trashed)
    // and the dark logo is trashed.
    let (rt, client) = emu.client();
    let logos = all_files(&emu);
    let old = logos.iter().find(|o| o.name == "logo.png").unwrap();
    let dark = logos.iter().find(|o| o.name == "logo-dark.png").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let new_bytes = png_bytes(4321, 9);
    let new_path = common::write_file(tmp.path(), "new.png", &new_bytes);
    rt.block_on(client.upload_file(&new_path, "logo.png", old.parent_id.as_deref()))
        .unwrap();
    rt.block_on(client.delete_many(
        &[old.id.clone(), dark.id.clone()],
        mediafs::api::DeleteStatus::Trashed,
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        new_bytes,
        "the name now means the new object"
    );
    assert!(!m.path().join("Brand Kit/Logos/logo-dark.png").exists());
    let mut still_old = Vec::new();
    std::io::Read::read_to_end(&mut open_old, &mut still_old).unwrap();
    assert_eq!(
        still_old, original,
        "an open file keeps reading the object it opened"
    );
}

/// A token without `medias.write`: a copy in fails with EACCES, and the log
/// says which scope is missing and that `--read-only` would do, not that
/// the token expired.
#[test]
fn a_token_without_write_scope_gives_eacces_and_names_the_scope() {
    let read_only = "pit-read-only-token";
    let grant = format!("{read_only}:{LOCATION}:medias.readonly");
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0", "--token", &grant]);
    let cache = tempfile::tempdir().unwrap();
    let m = Mounted::try_start(&emu, cache.path(), read_only, &[]).unwrap();
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "new.png", &png_bytes(64, 3));
    let out = sh(&format!("cp {} {}", q(&path), m.at("Team/new.png")));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    let log = m.log();
    assert!(
        log.contains("lacks a scope") && log.contains("--read-only"),
        "{log}"
    );
    assert!(!log.contains("expired") && !log.contains(".."), "{log}");
    assert!(!log.contains(read_only));
}

#[test]
fn a_revoked_token_gives_eacces_and_a_log_line() {
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!("ls {}", m.at("")));
    ok(&format!(
        "curl -sf -X POST -H 'Content-Type: application/json' -d '{{\"token\": \"{TOKEN}\"}}' {}/_emulator/revoke",
        emu.base_url
    ));
    std::thread::sleep(Duration::from_millis(1100));
    let out = sh(&format!("ls {}", m.at("Team")));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    let log = m.log();
    assert!(
        log.contains("The token may have expired or been revoked"),
        "{log}"
    );
    assert!(!log.contains(TOKEN));
}

#[test]
fn oauth_tokens_are_refreshed_and_the_new_refresh_token_is_saved() {
    let emu = EmulatorProcess::start(&[
        "--seed",
        "demo",
        "--oauth-client",
        "client-1:secret-1",
        "--refresh-token",
        "rt-first:LocTestAAAA1111",
        "--access-token-ttl",
        "61.5",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let refresh_file = dir.path().join("refresh-token");
    std::fs::write(&refresh_file, "rt-first\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let file_arg = refresh_file.to_str().unwrap();
    let m = Mounted::try_start(
        &emu,
        cache.path(),
        "",
        &[
            "--oauth-client-id",
            "client-1",
            "--oauth-client-secret",
            "secret-1",
            "--refresh-token-file",
            file_arg,
        ],
    )
    .unwrap();
    ok(&format!("ls {}", m.at("Team")));
    let first = std::fs::read_to_string(&refresh_file).unwrap();
    assert_ne!(
        first.trim(),
        "rt-first",
        "the used refresh token was replaced"
    );
    // Tokens live 61.5 s and are renewed 60 s before they expire: every
    // request past 1.5 s needs a refresh.
    std::thread::sleep(Duration::from_millis(2000));
    ok(&format!(
        "cp {} {}",
        m.at("jingle.mp3"),
        m.at("Team/jingle-copy.mp3")
    ));
    let second = std::fs::read_to_string(&refresh_file).unwrap();
    assert_ne!(second, first, "refreshed again");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&refresh_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(!m.log().contains(second.trim()), "no token in the log");
}

#[test]
fn bad_input_gets_the_right_errno_and_touches_nothing() {
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let cache = tempfile::tempdir().unwrap();
    // A location the token does not reach.
    let other = sh(&format!(
        "MEDIAFS_TOKEN={TOKEN} {} mount {} --location NoSuchLocation --base-url {}",
        common::mount::BIN,
        q(cache.path()),
        emu.base_url
    ));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && err.contains("location NoSuchLocation"),
        "{err}"
    );

    let m = Mounted::start(&emu, &[]);
    let before = all_files(&emu).len();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("blob.bin"), b"\x00\x01\x02 no known type").unwrap();
    let out = sh(&format!(
        "cp {} {}",
        q(tmp.path().join("blob.bin")),
        m.at("blob.bin")
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Invalid argument"),
        "{out:?}"
    );
    let out = sh(&format!("truncate -s 0 {}", m.at("jingle.mp3")));
    assert!(!out.status.success());
    let out = sh(&format!("rmdir {}", m.at("Team")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Directory not empty"));
    assert_eq!(all_files(&emu).len(), before, "nothing stored was touched");
    assert!(
        m.log().contains("cannot tell the type of \"blob.bin\""),
        "the log says why"
    );
}

#[test]
fn private_files_and_no_token_in_trace_logs() {
    use std::os::unix::fs::PermissionsExt;
    let emu =
        EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0", "--fail-rate", "0.2"]);
    let m = Mounted::start(&emu, &["-o", "allow_other", "RUST_LOG=trace"]);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(m.path().to_str().unwrap()))
        .unwrap();
    assert!(
        line.contains("default_permissions") && line.contains("allow_other"),
        "{line}"
    );
    assert_eq!(
        std::fs::metadata(&m.cache_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // A file held open for writing has its staging file in the cache dir.
    let mut writer = std::fs::File::create(m.path().join("held.png")).unwrap();
    std::io::Write::write_all(&mut writer, &png_bytes(100, 1)).unwrap();
    let staged: Vec<_> = std::fs::read_dir(m.cache_dir.join("staging"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert!(!staged.is_empty());
    for entry in staged {
        assert_eq!(
            entry.metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    drop(writer);
    for _ in 0..5 {
        let _ = sh(&format!(
            "ls -lR {} > /dev/null; cat {} > /dev/null",
            m.at(""),
            m.at("jingle.mp3")
        ));
    }
    assert!(
        m.log().contains("DEBUG") || m.log().contains("WARN"),
        "the log was written"
    );
    // Nothing under the cache dir is open to others: cached content,
    // times, the spool and their folders included.
    let listed = ok(&format!("find {} -perm /077", q(&m.cache_dir)));
    assert!(listed.trim().is_empty(), "open to others:\n{listed}");
    assert!(!m.log().contains(TOKEN), "the token leaked into the log");
}

/// fsx (crates.io) drives one file through the mount with thousands of
/// random reads, writes, truncates, mmap reads and writes, fsyncs and
/// close-reopens, checking every byte against its own model.
#[test]
fn fsx_finds_the_file_equal_to_its_model() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let m = Mounted::start(&emu, &[]);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("fsx.toml");
    std::fs::write(
        &config,
        "flen = 262144\n[weights]\nclose_open = 1\nread = 10\nwrite = 10\ntruncate = 2\n\
         mapread = 2\nmapwrite = 2\nfsync = 0.5\nfdatasync = 0.5\n",
    )
    .unwrap();
    let out = sh(&format!(
        "fsx -f {} -N 3000 -S 20261123 -P {} {}",
        q(&config),
        q(work.path()),
        m.at("exercised.png")
    ));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("All operations completed A-OK"),
        "fsx failed (is it installed? scripts/setup.sh installs it):\n{text}"
    );
    let stored = all_files(&emu);
    assert_eq!(stored.len(), 1, "one object, however many rewrites");
    assert_eq!(
        bytes_of(&emu, &stored[0]),
        std::fs::read(m.path().join("exercised.png")).unwrap()
    );
}

/// With --write-back, cp returns once a file is spooled; a kill -9 before the
/// uploads leaves them in the spool, `mediafs status` lists them, and the
/// next mount uploads every one.
#[test]
fn write_back_spool_survives_kill_9_and_is_uploaded_at_the_next_mount() {
    // Slow uploads: the kill comes while most are still spooled.
    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--bandwidth", "20000"]);
    let mut m = Mounted::start(&emu, &["--write-back"]);
    let (src, files) = numbered_files(12);
    let started = Instant::now();
    let succeeded = copy_one_by_one(src.path(), &m.at(""));
    assert_eq!(succeeded.len(), 12);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cp did not wait for the uploads"
    );
    ok(&format!(
        "cmp {} {}",
        q(src.path().join("f011.png")),
        m.at("f011.png")
    ));
    m.kill9();
    let status = ok(&format!(
        "{} status --cache-dir {}",
        common::mount::BIN,
        q(&m.cache_dir)
    ));
    let pending: usize = status.split_whitespace().next().unwrap().parse().unwrap();
    assert!(pending > 0, "{status}");
    assert!(all_files(&emu).len() < 12);

    emu.set_faults(json!({"rate_limit": 0}));
    let m = m.remount(&emu, &["--write-back"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while all_files(&emu).len() < 12 {
        assert!(
            Instant::now() < deadline,
            "the spool was not uploaded: {}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    check_no_loss_no_partial(&emu, &files, &succeeded);
    let status = ok(&format!(
        "{} status --cache-dir {}",
        common::mount::BIN,
        q(&m.cache_dir)
    ));
    assert!(
        status.starts_with("0 uploads pending, 0 failed"),
        "{status}"
    );
}

#[test]
fn a_token_file_others_can_read_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let m = Mounted::try_start(
        &emu,
        cache.path(),
        "",
        &["--token-file", token_file.to_str().unwrap()],
    )
    .unwrap();
    ok(&format!("ls {}", m.at("")));
    let log = m.log();
    assert!(
        log.contains("can be read by other users") && log.contains("chmod 600"),
        "{log}"
    );
    assert!(!log.contains(TOKEN));
}

/// Two mounts sharing a cache dir would take each other's staging, spool
/// and waiting files for a crash's leftovers: the second is refused, and
/// the first loses nothing. Once the first is gone, the dir is free.
#[test]
fn a_second_mount_of_one_cache_dir_is_refused() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let cache = tempfile::tempdir().unwrap();
    let first = Mounted::start_with_cache(&emu, cache.path(), &["--write-back"]);
    let mut open = std::fs::File::create(first.path().join("open.txt")).unwrap();
    std::io::Write::write_all(&mut open, b"still open\n").unwrap();
    let err = match Mounted::try_start(&emu, cache.path(), TOKEN, &[]) {
        Ok(_) => panic!("a second mount of the same cache dir started"),
        Err(e) => e,
    };
    assert!(err.contains("in use by another mediafs mount"), "{err}");
    drop(open);
    ok(&format!("sync {}", first.at("open.txt")));
    assert_eq!(
        std::fs::read(first.path().join("open.txt")).unwrap(),
        b"still open\n"
    );
    assert!(first.unmount().success());
    let again = Mounted::start_with_cache(&emu, cache.path(), &[]);
    assert_eq!(
        std::fs::read(again.path().join("open.txt")).unwrap(),
        b"still open\n"
    );
}

/// A second mount on a mountpoint mediafs already serves would hide the
/// first: it is refused, and the first goes on serving.
#[test]
fn a_mount_on_top_of_a_mediafs_mount_is_refused() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let first = Mounted::start(&emu, &[]);
    let other_cache = tempfile::tempdir().unwrap();
    let out = sh(&format!(
        "MEDIAFS_TOKEN={TOKEN} timeout 20 {} mount {} --location {} --base-url {} --cache-dir {}",
        common::mount::BIN,
        q(first.path()),
        common::LOCATION,
        emu.base_url,
        q(other_cache.path())
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is already a mediafs mount"), "{err}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let here = first.path().to_str().unwrap();
    assert_eq!(mounts.lines().filter(|l| l.contains(here)).count(), 1);
    ok(&format!("echo hi > {}", first.at("still.txt")));
}

/// `mediafs status` for a location no mount has used says so, rather than
/// "0 uploads pending" (a mistyped location would read as reassurance).
#[test]
fn status_of_a_cache_dir_no_mount_used_says_so() {
    let home = tempfile::tempdir().unwrap();
    let out = sh(&format!(
        "XDG_CACHE_HOME={} {} status --location NoSuchLocation",
        q(home.path()),
        common::mount::BIN
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no mount has used it"), "{err}");
}
