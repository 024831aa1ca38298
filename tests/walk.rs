//! Walks of a whole library (`ls -lR`, `find`, `du`, `rsync` out) through a
//! real mount: each lists every file, as the server holds them, in a
//! handful of API calls (one `fetchAll` listing instead of one listing per
//! folder), and still lists every file when the service does not answer
//! everything at once. The server's state is read from the emulator's own
//! `/_emulator/objects`, never through the client under test.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::mount::{ok, q, EmulatorProcess, Mounted};
use common::{png_bytes, start_emulator, write_file, LOCATION};
use mediafs::api::{AtOnce, ObjectKind};
use mediafs::emulator::Faults;

/// Folders and files per folder of the generated library.
const FOLDERS: usize = 40;
const FILES: usize = 10;

fn generated_library(extra: &[&str]) -> EmulatorProcess {
    let generate = format!("{FOLDERS}x{FILES}");
    let mut args = vec!["--generate", generate.as_str()];
    if !extra.contains(&"--latency-ms") {
        args.extend(["--latency-ms", "5"]);
    }
    args.extend_from_slice(extra);
    EmulatorProcess::start(&args)
}

/// Every active file as `folder/name`, from the emulator's own store.
fn server_files(emu: &EmulatorProcess) -> BTreeSet<String> {
    let objects = &emu.all_objects();
    let active = |o: &&serde_json::Value| o["status"] == "active";
    let folder_name = |id: &serde_json::Value| {
        objects
            .iter()
            .find(|f| f["_id"] == *id)
            .map(|f| f["name"].as_str().unwrap().to_owned())
    };
    objects
        .iter()
        .filter(active)
        .filter(|o| o["type"] == "file")
        .map(|o| {
            let name = o["name"].as_str().unwrap();
            match folder_name(&o["parentId"]) {
                Some(folder) => format!("{folder}/{name}"),
                None => name.to_owned(),
            }
        })
        .collect()
}

/// Files under the mount, as `find` lists them, relative to it.
fn files_found(mount: &Mounted) -> BTreeSet<String> {
    ok(&format!(
        "cd {} && find . -type f | sed 's|^\\./||'",
        q(mount.path())
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

fn listing_calls(emu: &EmulatorProcess) -> u64 {
    emu.stats()["by_route"]["GET /medias/files"]
        .as_u64()
        .unwrap_or(0)
}

/// A tool's walk of a mount, and the files it names.
type Walk = fn(&Mounted) -> BTreeSet<String>;

/// Each tool walks a fresh mount of 400 files in 40 folders, at the
/// service's rate limit: every file is there, in at most 5 API calls.
#[test]
fn a_cold_walk_lists_every_file_in_a_handful_of_calls() {
    let emu = generated_library(&[]);
    let expected = server_files(&emu);
    assert_eq!(expected.len(), FOLDERS * FILES);
    let walks: [(&str, Walk); 4] = [
        ("find", files_found),
        ("ls -lR", |m| {
            let out = ok(&format!("ls -lR {}", q(m.path())));
            files_in_ls_lr(&out, m)
        }),
        ("du -a", |m| {
            let out = ok(&format!("cd {} && du -a .", q(m.path())));
            out.lines()
                .filter_map(|l| l.split_once("./").map(|(_, p)| p.to_owned()))
                .filter(|p| p.ends_with(".png"))
                .collect()
        }),
        ("rsync --list-only", |m| {
            let out = ok(&format!("rsync -r --list-only {}/", q(m.path())));
            out.lines()
                .filter(|l| l.starts_with('-'))
                .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
                .collect()
        }),
    ];
    for (tool, walk) in walks {
        let mount = Mounted::start(&emu, &["--metadata-ttl", "60"]);
        emu.reset_stats();
        let found = walk(&mount);
        let calls = listing_calls(&emu);
        assert_eq!(found, expected, "{tool} lists every file of the library");
        assert!(
            calls <= 5,
            "a cold {tool} of {FOLDERS} folders made {calls} listing calls"
        );
        mount.unmount();
    }
}

/// The files an `ls -lR` output names, as `folder/name`.
fn files_in_ls_lr(out: &str, mount: &Mounted) -> BTreeSet<String> {
    let root = format!("{}/", mount.path().display());
    let mut folder = String::new();
    let mut files = BTreeSet::new();
    for line in out.lines() {
        if let Some(header) = line.strip_suffix(':') {
            folder = header.strip_prefix(&root).unwrap_or("").to_owned();
        } else if line.starts_with('-') {
            let name = line.split_whitespace().last().unwrap();
            files.insert(match folder.as_str() {
                "" => name.to_owned(),
                f => format!("{f}/{name}"),
            });
        }
    }
    files
}

/// What a walk listed stays listed when the kernel forgets every inode and
/// dentry: the second walk is whole, and asks the service nothing.
#[test]
fn a_walk_after_the_kernel_forgets_is_whole_and_asks_nothing() {
    let emu = generated_library(&[]);
    let expected = server_files(&emu);
    let mount = Mounted::start(&emu, &["--metadata-ttl", "60"]);
    assert_eq!(files_found(&mount), expected);
    ok("sync; echo 2 > /proc/sys/vm/drop_caches");
    emu.reset_stats();
    assert_eq!(files_found(&mount), expected);
    assert_eq!(
        listing_calls(&emu),
        0,
        "within the TTL, nothing is listed again"
    );
    mount.unmount();
}

/// A service whose `fetchAll` answers hold fewer objects than they count
/// is listed folder by folder (the folder tree too): slower, never short.
#[test]
fn a_service_that_caps_fetch_all_answers_is_listed_folder_by_folder() {
    let emu = generated_library(&["--fetch-all-max", "25", "--rate-limit", "0"]);
    let expected = server_files(&emu);
    let mount = Mounted::start(&emu, &["--metadata-ttl", "60", "--rate-limit", "0"]);
    emu.reset_stats();
    assert_eq!(
        files_found(&mount),
        expected,
        "every file, not the first 25"
    );
    let calls = listing_calls(&emu);
    assert!(
        calls > FOLDERS as u64,
        "folder by folder: {calls} listing calls"
    );
    let log = mount.log();
    assert!(
        log.contains("listing folders folder by folder") && log.contains("it counts 40"),
        "the log says why the walk is slower:\n{log}"
    );
    mount.unmount();
}

/// With `fetchAll` capped below the number of folders, at the service's
/// rate limit and a real round trip, one folder looked at on a fresh mount
/// costs its own listings and its parents', not a walk of the whole tree.
#[test]
fn one_folder_of_a_capped_service_is_listed_without_walking_the_tree() {
    let emu = generated_library(&["--fetch-all-max", "25", "--latency-ms", "100"]);
    let mount = Mounted::start(&emu, &[]);
    emu.reset_stats();
    let names = ok(&format!("ls {}", q(mount.path().join("folder-0001"))));
    assert_eq!(names.lines().count(), FILES, "{names}");
    let calls = listing_calls(&emu);
    // The tree asked at once twice (both short) while the root's files are
    // listed beside it; then, folder by folder, the root's files and
    // subfolders and the folder's.
    assert!(calls <= 7, "one folder cost {calls} listing calls");
    ok(&format!("ls {}", q(mount.path().join("folder-0002"))));
    let more = listing_calls(&emu) - calls;
    assert_eq!(more, 2, "the next folder: its files and its subfolders");
    mount.unmount();
}

/// Changes made elsewhere after a walk show once the TTL has passed, in
/// the folders the walk listed at once.
#[test]
fn changes_elsewhere_show_after_a_walk_within_the_ttl() {
    let emu = generated_library(&[]);
    let mount = Mounted::start(&emu, &["--metadata-ttl", "1"]);
    let before = files_found(&mount);
    assert_eq!(before.len(), FOLDERS * FILES);
    let (rt, client) = emu.client();
    let tree = rt.block_on(client.list_folder_tree()).unwrap();
    let folder = |name: &str| tree.iter().find(|f| f.name == name).unwrap().id.clone();
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(tmp.path(), "new.png", &png_bytes(64, 7));
    rt.block_on(client.upload_file(&path, "new.png", Some(&folder("folder-0007"))))
        .unwrap();
    let gone = rt
        .block_on(client.find_by_name(
            ObjectKind::File,
            Some(&folder("folder-0003")),
            "image-0002.png",
        ))
        .unwrap();
    rt.block_on(client.delete(&gone[0].id)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let after = files_found(&mount);
    let mut expected = before;
    expected.insert("folder-0007/new.png".into());
    expected.remove("folder-0003/image-0002.png");
    assert_eq!(after, expected);
    mount.unmount();
}

/// The client's one-call listing is whole when its answer holds all it
/// counts, and says so when it does not.
#[tokio::test]
async fn fetch_all_answers_are_checked_against_their_count() {
    let emu = start_emulator(true, common::quiet()).await;
    let client = emu.client();
    match client.list_at_once(ObjectKind::File).await.unwrap() {
        AtOnce::Whole(files) => assert_eq!(files.len(), 7, "the demo library's files"),
        partial => panic!("expected every file, got {partial:?}"),
    }
    emu.set_faults(Faults {
        fetch_all_max: Some(3),
        ..common::quiet()
    })
    .await;
    let capped = emu.client();
    match capped.list_at_once(ObjectKind::File).await.unwrap() {
        AtOnce::Partial { got: 3, count } => assert_eq!(count, Some(7)),
        other => panic!("expected a short answer, got {other:?}"),
    }
    assert!(capped.at_once_falls_short(ObjectKind::File));
    let err = capped.list_folder_tree().await.unwrap_err();
    assert!(
        err.to_string().contains("held 3 objects of 6"),
        "a short tree is an error, never a tree that lacks folders: {err}"
    );
}

/// A front end to an emulator whose first `fetchAll` answer lacks its last
/// object, its count still whole: an answer whose count and objects came
/// from two looks at a library that changed between them.
async fn short_once_in_front_of(upstream: &str) -> String {
    use axum::response::IntoResponse;
    let upstream = upstream.to_owned();
    let shorted = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::new();
    let relay = move |req: axum::extract::Request| {
        let (upstream, shorted, http) = (upstream.clone(), shorted.clone(), http.clone());
        async move {
            let target = req.uri().path_and_query().unwrap().as_str().to_owned();
            let mut out = http.request(req.method().clone(), format!("{upstream}{target}"));
            for (name, value) in req.headers().iter().filter(|(n, _)| *n != "host") {
                out = out.header(name, value);
            }
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let answer = out.body(body).send().await.unwrap();
            let status = answer.status();
            let mut bytes = answer.bytes().await.unwrap().to_vec();
            if target.contains("fetchAll=true") && !shorted.swap(true, Ordering::SeqCst) {
                let mut page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                page["files"].as_array_mut().unwrap().pop();
                bytes = serde_json::to_vec(&page).unwrap();
            }
            (status, [("content-type", "application/json")], bytes).into_response()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(relay);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base_url
}

/// One short answer is asked for again at once, and a whole second one is
/// used: the one-call listings stay on.
#[tokio::test]
async fn one_short_fetch_all_answer_is_asked_again_at_once() {
    let emu = start_emulator(true, common::quiet()).await;
    let front = short_once_in_front_of(emu.base_url()).await;
    let client = common::client_for(&front, LOCATION, common::TOKEN, |_| {});
    emu.reset_stats().await;
    let tree = client.list_folder_tree().await.unwrap();
    assert_eq!(tree.len(), 6, "the demo library's folders");
    assert_eq!(emu.route_count("GET /medias/files").await, 2);
    assert!(!client.at_once_falls_short(ObjectKind::Folder));
}
