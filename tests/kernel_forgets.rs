//! What must hold when the kernel forgets inodes, as it does under memory
//! pressure: real mounts of the `mediafs` binary over the emulator, driven
//! with real tools, and the kernel made to forget with
//! `echo 2 > /proc/sys/vm/drop_caches` (hence root). Closed files are still
//! uploaded, large folders list whole, entries kept only in this mount stay,
//! and changes made elsewhere show within the metadata TTL.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::mount::{ok, q, sh, EmulatorProcess, Mounted, BIN};
use common::png_bytes;
use futures::StreamExt;
use mediafs::api::{DeleteStatus, MediaClient, MediaObject};
use serde_json::json;

/// Panics with a clear message unless the tests run as root, which they
/// need to make the kernel forget.
fn need_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the kernel_forgets tests need root (euid 0, not {euid}): they write to \
         /proc/sys/vm/drop_caches to make the kernel forget inodes; run them as root, as CI does"
    );
}

/// Makes the kernel drop its unused dentries and inodes, sending FORGET for
/// every inode of the mount that nothing holds, as memory pressure does.
fn drop_kernel_caches() {
    need_root();
    ok("sync; echo 2 > /proc/sys/vm/drop_caches");
}

/// Every active folder and file of the location, from the emulator's own store.
fn server_objects(emu: &EmulatorProcess) -> Vec<MediaObject> {
    emu.active_objects()
}

/// The bytes behind a public URL, fetched without the mount.
fn bytes_at(client: &MediaClient, rt: &tokio::runtime::Runtime, url: &str) -> Vec<u8> {
    rt.block_on(async {
        client
            .download(url, None)
            .await
            .unwrap_or_else(|e| panic!("cannot download {url}: {e}"))
            .bytes()
            .await
            .unwrap()
    })
    .to_vec()
}

/// `mediafs status --cache-dir DIR`: (pending, failed, the whole text).
fn spool_status(cache_dir: &Path) -> (usize, usize, String) {
    let text = ok(&format!("{BIN} status --cache-dir {}", q(cache_dir)));
    let words: Vec<&str> = text.split_whitespace().collect();
    // "N uploads pending, M failed, in DIR"
    let pending = words[0].parse().unwrap_or_else(|_| panic!("{text}"));
    let failed = words[3].parse().unwrap_or_else(|_| panic!("{text}"));
    (pending, failed, text)
}

/// The names `ls -A` shows in a directory of the mount.
fn ls_a(dir: &str) -> BTreeSet<String> {
    ok(&format!("ls -A {dir}"))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The regular files `ls -l` shows in a directory of the mount (names
/// without spaces).
fn ls_l_files(dir: &str) -> BTreeSet<String> {
    ok(&format!("ls -l {dir}"))
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect()
}

fn count(script: &str) -> usize {
    ok(script).trim().parse().unwrap()
}

/// Bug 1: with --write-back, `close` returned 0 for every file, so every
/// file must reach the server, even when the kernel forgets the inodes (or
/// the new folder) of files whose upload has not begun yet.
#[test]
fn write_back_uploads_every_closed_file_after_the_kernel_forgets_them() {
    need_root();
    // Slow requests: most uploads are still queued when the kernel forgets.
    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--latency-ms", "1500"]);
    let (rt, client) = emu.client();
    let seed = tempfile::tempdir().unwrap();
    let old: Vec<(MediaObject, Vec<u8>)> =
        rt.block_on(futures::future::join_all((0..8).map(|i| {
            let bytes = png_bytes(500 + i, 1);
            let path = common::write_file(seed.path(), &format!("s{i}"), &bytes);
            let client = &client;
            async move {
                let o = client
                    .upload_file(&path, &format!("photo-{i}.png"), None)
                    .await
                    .unwrap();
                (o, bytes)
            }
        })));

    // The new bytes, as local files to copy in.
    let src = tempfile::tempdir().unwrap();
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    std::fs::create_dir(src.path().join("fresh")).unwrap();
    for i in 0..8 {
        let name = format!("photo-{i}.png");
        let bytes = png_bytes(3000 + i * 7, 100 + i as u8);
        common::write_file(src.path(), &name, &bytes);
        expected.insert(name, bytes);
        let name = format!("fresh/new-{i}.png");
        let bytes = png_bytes(4000 + i * 11, 200 + i as u8);
        common::write_file(src.path(), &name, &bytes);
        expected.insert(name, bytes);
    }

    // A long TTL: the copies are answered from the caches and finish
    // long before the uploads, which run four at a time at 1.5 s a request.
    let cache = tempfile::tempdir().unwrap();
    let m = Mounted::start_with_cache(
        &emu,
        cache.path(),
        &["--write-back", "--metadata-ttl", "30"],
    );
    ok(&format!(
        "cp {}/photo-*.png {}/ && mkdir {} && cp {}/fresh/new-*.png {}/",
        q(src.path()),
        m.at(""),
        m.at("fresh"),
        q(src.path()),
        m.at("fresh")
    ));
    let (queued, _, text) = spool_status(&m.cache_dir);
    eprintln!(
        "when the kernel forgets: {}",
        text.lines().next().unwrap_or_default()
    );
    assert!(
        queued > 4,
        "the test needs uploads still queued when the kernel forgets: {text}"
    );
    drop_kernel_caches();

    let deadline = Instant::now() + Duration::from_secs(120);
    let drained = loop {
        let (pending, _, text) = spool_status(&m.cache_dir);
        if pending == 0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the spool did not drain in 2 minutes: {text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // Unmounting waits for the uploads in flight too.
    assert!(m.unmount().success(), "the mount ended badly");
    // What was to be tested is done: read the server back without the latency.
    emu.set_faults(json!({"rate_limit": 0}));

    let objects = server_objects(&emu);
    let fresh = objects
        .iter()
        .find(|o| o.is_folder() && o.name == "fresh")
        .expect("the new folder is on the server");
    let (mut missing, mut still_old, mut wrong) = (Vec::new(), Vec::new(), Vec::new());
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    for path in names {
        let (parent, name) = match path.split_once('/') {
            Some((_, name)) => (Some(fresh.id.as_str()), name),
            None => (None, path.as_str()),
        };
        let stored: Vec<&MediaObject> = objects
            .iter()
            .filter(|o| !o.is_folder() && o.name == name && o.parent_id.as_deref() == parent)
            .collect();
        match stored[..] {
            [] => missing.push(path.clone()),
            [one] if old.iter().any(|(o, _)| o.id == one.id) => still_old.push(path.clone()),
            [one] if bytes_at(&client, &rt, one.url.as_deref().unwrap()) == expected[path] => {}
            _ => wrong.push(format!("{path} ({} objects)", stored.len())),
        }
    }
    let lost = missing.len() + still_old.len() + wrong.len();
    assert!(
        lost == 0,
        "every close returned 0, yet once the spool drained (`mediafs status`: {:?}) {lost} of {} \
         files are not on the server with their new bytes: never stored: {missing:?}; \
         still the old version: {still_old:?}; wrong or duplicated: {wrong:?}",
        drained.trim(),
        expected.len()
    );
    for (o, bytes) in &old {
        assert!(
            !objects.iter().any(|s| s.id == o.id),
            "the old version of {} is still in the library",
            o.name
        );
        // Trashed, not deleted: its public URL still answers.
        assert_eq!(
            &bytes_at(&client, &rt, o.url.as_deref().unwrap()),
            bytes,
            "the old version of {} was trashed, not deleted",
            o.name
        );
    }
    let (pending, failed, text) = spool_status(cache.path());
    assert!(
        pending == 0 && failed == 0,
        "nothing is left in the spool: {text}"
    );
}

/// Bug 2: a folder of 2,000 files lists whole with every tool, however many
/// READDIRPLUS replies the kernel needs, and again after it forgets.
#[test]
fn a_folder_of_2000_files_lists_and_copies_whole() {
    need_root();
    const FILES: usize = 2000;
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let (rt, client) = emu.client();
    let folder = rt.block_on(client.create_folder("big", None)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_file(tmp.path(), "one.png", &png_bytes(40, 7));
    let expected: BTreeSet<String> = (0..FILES).map(|i| format!("f{i:04}.png")).collect();
    rt.block_on(
        futures::stream::iter(expected.iter())
            .map(|name| client.upload_file(&path, name, Some(&folder.id)))
            .buffer_unordered(16)
            .for_each(|r| {
                r.unwrap();
                futures::future::ready(())
            }),
    );

    let m = Mounted::start(&emu, &[]);
    let dir = m.at("big");
    let first = ls_l_files(&dir);
    let ls_a = ls_a(&dir).len();
    let find = count(&format!("find {dir} -type f | wc -l"));
    let out = tempfile::tempdir().unwrap();
    ok(&format!("rsync -a {dir}/ {}/", q(out.path())));
    let rsync = std::fs::read_dir(out.path()).unwrap().count();
    drop_kernel_caches();
    let again = ls_l_files(&dir);
    let counts = [
        ("ls -l", first.len()),
        ("ls -A", ls_a),
        ("find -type f", find),
        ("rsync -a, files copied", rsync),
        ("ls -l after the kernel forgot", again.len()),
    ];
    assert!(
        counts.iter().all(|&(_, n)| n == FILES),
        "{FILES} files in the folder, but: {counts:?}; missing from the first `ls -l`: {:?}, \
         from the last: {:?}",
        expected.difference(&first).collect::<Vec<_>>(),
        expected.difference(&again).collect::<Vec<_>>()
    );
}

/// Bug 3: a junk file and a new empty file live in the mount's memory until
/// unmount, even after the kernel forgets their folder: at the root, in a
/// folder made through the mount, and in a folder made elsewhere.
#[test]
fn local_entries_stay_after_the_kernel_forgets_their_folder() {
    need_root();
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let (rt, client) = emu.client();
    let seeded = rt.block_on(client.create_folder("seeded", None)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_file(tmp.path(), "a.png", &png_bytes(100, 3));
    rt.block_on(client.upload_file(&path, "a.png", Some(&seeded.id)))
        .unwrap();

    let m = Mounted::start(&emu, &[]);
    ok(&format!("mkdir {}", m.at("made")));
    let places = [("the root", ""), ("made", "made/"), ("seeded", "seeded/")];
    for (place, dir) in places {
        ok(&format!(
            "touch {} && echo j > {}",
            m.at(&format!("{dir}empty.png")),
            m.at(&format!("{dir}.DS_Store"))
        ));
        let shown = ls_a(&m.at(dir));
        assert!(
            shown.contains("empty.png") && shown.contains(".DS_Store"),
            "{place}, before the kernel forgot: {shown:?}"
        );
    }
    drop_kernel_caches();

    let mut lost = Vec::new();
    for (place, dir) in places {
        let shown = ls_a(&m.at(dir));
        let junk = sh(&format!("cat {}", m.at(&format!("{dir}.DS_Store"))));
        let empty = sh(&format!("stat -c %s {}", m.at(&format!("{dir}empty.png"))));
        let junk_ok = junk.status.success() && junk.stdout == b"j\n";
        let empty_ok = empty.status.success() && empty.stdout == b"0\n";
        if !(shown.contains("empty.png") && shown.contains(".DS_Store") && junk_ok && empty_ok) {
            lost.push(format!(
                "{place}: `ls -A` shows {shown:?}; `cat .DS_Store`: {:?} {:?}; \
                 `stat empty.png`: {:?} {:?}",
                String::from_utf8_lossy(&junk.stdout),
                String::from_utf8_lossy(&junk.stderr).trim(),
                String::from_utf8_lossy(&empty.stdout).trim(),
                String::from_utf8_lossy(&empty.stderr).trim()
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "entries kept only in this mount vanished when the kernel forgot:\n{}",
        lost.join("\n")
    );
    assert!(
        ls_a(&m.at("seeded")).contains("a.png"),
        "the stored file still shows"
    );
}

const TTL: u64 = 1;

/// Past the metadata TTL, with a margin.
fn past_the_ttl() {
    std::thread::sleep(Duration::from_secs(TTL + 2));
}

/// Bug 4a: a folder this mount made, then trashed elsewhere, is gone from
/// the mount within the TTL.
#[test]
fn a_folder_made_here_and_deleted_elsewhere_goes_within_the_ttl() {
    need_root();
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let m = Mounted::start(&emu, &["--metadata-ttl", &TTL.to_string()]);
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_file(tmp.path(), "x.png", &png_bytes(100, 5));
    ok(&format!(
        "mkdir {} && cp {} {}",
        m.at("doomed"),
        q(&path),
        m.at("doomed/x.png")
    ));
    assert!(ls_a(&m.at("")).contains("doomed"));

    let (rt, client) = emu.client();
    let folder = rt
        .block_on(client.list_folder_tree())
        .unwrap()
        .into_iter()
        .find(|f| f.name == "doomed")
        .expect("the folder is on the server");
    rt.block_on(client.delete_many(&[folder.id], DeleteStatus::Trashed))
        .unwrap();
    past_the_ttl();

    let root = ls_a(&m.at(""));
    let inside = sh(&format!("ls {}", m.at("doomed")));
    assert!(
        !root.contains("doomed") && !inside.status.success(),
        "{}s after the folder was trashed elsewhere (TTL {TTL}s), the root shows {root:?} \
         and `ls doomed` gives {:?} {:?}",
        TTL + 2,
        String::from_utf8_lossy(&inside.stdout).trim(),
        String::from_utf8_lossy(&inside.stderr).trim()
    );
}

/// Bug 4b: a file this mount renamed, renamed again elsewhere, shows under
/// the newer name within the TTL.
#[test]
fn a_rename_elsewhere_after_a_rename_here_shows_within_the_ttl() {
    need_root();
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let (rt, client) = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = png_bytes(100, 6);
    let path = common::write_file(tmp.path(), "a.png", &bytes);
    let a = rt
        .block_on(client.upload_file(&path, "a.png", None))
        .unwrap();

    let m = Mounted::start(&emu, &["--metadata-ttl", &TTL.to_string()]);
    ok(&format!("mv {} {}", m.at("a.png"), m.at("b.png")));
    let shown = ls_a(&m.at(""));
    assert!(
        shown.contains("b.png") && !shown.contains("a.png"),
        "{shown:?}"
    );
    rt.block_on(client.rename(&a.id, "c.png")).unwrap();
    past_the_ttl();

    let shown = ls_a(&m.at(""));
    assert_eq!(
        shown,
        BTreeSet::from(["c.png".to_owned()]),
        "{}s after the file was renamed to c.png elsewhere (TTL {TTL}s)",
        TTL + 2
    );
    assert_eq!(std::fs::read(m.path().join("c.png")).unwrap(), bytes);
}
