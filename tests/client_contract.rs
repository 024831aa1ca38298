//! Contract tests of the API client against the emulator, endpoint by
//! endpoint, with the errors, quirks, rate limits and retries: what a live
//! service cannot be asked to do (faults, a restart, a server that changes
//! under a listing). The contract that can also run against a live location
//! is the suite in `tests/contract/`, run by `tests/live.rs`. Where a test
//! checks what the server holds, it asks the emulator's store
//! (`/_emulator/objects`), not the client under test.

mod common;

use std::collections::HashMap;

use common::*;
use mediafs::api::{ApiError, ByteRange, DeleteStatus, ListQuery, ObjectKind};
use mediafs::emulator::Faults;

#[tokio::test]
async fn lists_the_demo_library_tree_and_children() {
    let emu = start_emulator(true, quiet()).await;
    let client = emu.client();
    let tree = client.list_folder_tree().await.unwrap();
    let names: Vec<_> = tree.iter().map(|f| f.name.as_str()).collect();
    for expected in [
        "Brand Kit",
        "Logos",
        "Campaigns",
        "Black Friday 2026",
        "Spring Launch",
        "Team",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(tree.iter().all(|f| f.kind == ObjectKind::Folder));
    assert_eq!(
        emu.route_count("GET /medias/files").await,
        1,
        "one fetchAll call"
    );

    let root = client.list_children(None).await.unwrap();
    let mut root_names: Vec<_> = root.iter().map(|o| o.name.clone()).collect();
    root_names.sort();
    assert_eq!(root_names, ["Brand Kit", "Campaigns", "Team", "jingle.mp3"]);
    let jingle = root.iter().find(|o| o.name == "jingle.mp3").unwrap();
    assert_eq!(jingle.content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(jingle.parent_id, None);
    assert_eq!(jingle.id.len(), 24);

    let logos = tree.iter().find(|f| f.name == "Logos").unwrap();
    let files = client.list_children(Some(&logos.id)).await.unwrap();
    assert_eq!(files.len(), 2);
    for f in &files {
        assert_eq!(f.parent_id.as_deref(), Some(logos.id.as_str()));
        assert_eq!(f.content_type.as_deref(), Some("image/png"));
        let bytes = client
            .download(f.url.as_deref().unwrap(), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, f.size.unwrap());
        assert!(bytes.starts_with(b"\x89PNG"));
    }
}

#[tokio::test]
async fn pages_through_large_folders() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client_with(|c| c.page_size = 3);
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..10 {
        let path = write_file(tmp.path(), &format!("f{i}.png"), &png_bytes(10, i));
        client
            .upload_file(&path, &format!("f{i}.png"), None)
            .await
            .unwrap();
    }
    let before = emu.route_count("GET /medias/files").await;
    let all = client
        .list_all(ListQuery::children(ObjectKind::File, None, 3))
        .await
        .unwrap();
    let names: Vec<_> = all.iter().map(|o| o.name.clone()).collect();
    assert_eq!(
        names,
        (0..10).map(|i| format!("f{i}.png")).collect::<Vec<_>>(),
        "oldest first, no gaps"
    );
    assert_eq!(
        emu.route_count("GET /medias/files").await - before,
        5,
        "pages of 3 that overlap by one: 3 new objects, then 2 a page"
    );
}

/// `fetchAll` answers everything at once: one request, however many pages
/// the objects would fill.
#[tokio::test]
async fn fetch_all_is_one_request() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..7 {
        let path = write_file(tmp.path(), &format!("f{i}.png"), &png_bytes(10, i));
        client
            .upload_file(&path, &format!("f{i}.png"), None)
            .await
            .unwrap();
    }
    let before = emu.route_count("GET /medias/files").await;
    let mut q = ListQuery::children(ObjectKind::File, None, 3);
    q.fetch_all = true;
    assert_eq!(client.list_all(q).await.unwrap().len(), 7);
    assert_eq!(emu.route_count("GET /medias/files").await - before, 1);
}

/// Objects removed while a folder is paged through shift the later ones
/// toward the start: a listing still holds every object that stayed.
#[tokio::test]
async fn removals_while_paging_skip_nothing() {
    use std::sync::{Arc, Mutex};
    let objects: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({
                "_id": format!("{i:024x}"), "altId": LOCATION, "altType": "location",
                "name": format!("f{i}.png"), "type": "file", "parentId": null,
                "contentType": "image/png", "size": 10,
                "createdAt": format!("2025-12-17T18:08:{i:02}.000Z"),
                "updatedAt": format!("2025-12-17T18:08:{i:02}.000Z"),
            })
        })
        .collect();
    // Each time a page is served, another client removes the five oldest.
    let state = Arc::new(Mutex::new(objects));
    let served = state.clone();
    let app = axum::Router::new().route(
        "/medias/files",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| {
                let state = served.clone();
                async move {
                    let mut objects = state.lock().unwrap();
                    let offset: usize = q["offset"].parse().unwrap();
                    let limit: usize = q["limit"].parse().unwrap();
                    let page: Vec<_> = objects.iter().skip(offset).take(limit).cloned().collect();
                    let count = objects.len();
                    let removed = objects.len().min(5);
                    objects.drain(..removed);
                    axum::Json(serde_json::json!({"files": page, "count": count}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = client_for(&base, LOCATION, TOKEN, |c| c.rate_limit = None);
    let listed = client
        .list_all(ListQuery::children(ObjectKind::File, None, 10))
        .await
        .unwrap();
    let listed: std::collections::HashSet<_> = listed.into_iter().map(|o| o.name).collect();
    let stayed: Vec<_> = state
        .lock()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = stayed.iter().filter(|n| !listed.contains(*n)).collect();
    assert!(missing.is_empty(), "the listing skipped {missing:?}");
}

#[tokio::test]
async fn creates_folders_and_uploads_into_them() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let parent = client.create_folder("Brand Kit", None).await.unwrap();
    assert_eq!(parent.id.len(), 24);
    assert!(parent.is_folder());
    let child = client
        .create_folder("Logos", Some(&parent.id))
        .await
        .unwrap();
    assert_eq!(child.parent_id.as_deref(), Some(parent.id.as_str()));

    let tmp = tempfile::tempdir().unwrap();
    let bytes = png_bytes(5000, 7);
    // An rsync temp name: the type must come from the bytes.
    let path = write_file(tmp.path(), "x", &bytes);
    let uploaded = client
        .upload_file(&path, ".logo.png.Xa91f", Some(&child.id))
        .await
        .unwrap();
    assert_eq!(uploaded.content_type.as_deref(), Some("image/png"));
    assert_eq!(uploaded.size, Some(bytes.len() as u64));

    let listed = client.list_children(Some(&child.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, uploaded.id);
    assert_eq!(listed[0].name, ".logo.png.Xa91f");
    assert_eq!(listed[0].url, uploaded.url);
    // The upload's answer has no type or size: these are what the server keeps.
    assert_eq!(listed[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(listed[0].size, Some(bytes.len() as u64));

    let url = uploaded.url.unwrap();
    let whole = client
        .download(&url, None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&whole[..], &bytes[..]);
    let part = client
        .read_range(
            &url,
            ByteRange {
                offset: 100,
                len: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(&part.to_bytes()[..], &bytes[100..150]);
    let past = client
        .download(
            &url,
            Some(ByteRange {
                offset: 10_000_000,
                len: 1,
            }),
        )
        .await;
    assert!(matches!(
        past,
        Err(ApiError::InvalidRequest { status: 416, .. })
    ));
}

#[tokio::test]
async fn refuses_unknown_types_and_oversized_files_before_sending() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let blob = write_file(tmp.path(), "blob", b"\x00\x01\x02\x03 no known signature");
    let err = client
        .upload_file(&blob, "blob.bin", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TypeRefused { .. }), "{err}");
    assert!(err.to_string().contains("blob.bin"));

    let big = tmp.path().join("big.png");
    let f = std::fs::File::create(&big).unwrap();
    std::io::Write::write_all(&mut &f, &png_bytes(0, 0)).unwrap();
    f.set_len(26 * 1024 * 1024).unwrap();
    let err = client.upload_file(&big, "big.png", None).await.unwrap_err();
    assert!(matches!(err, ApiError::TooLarge { .. }), "{err}");
    assert_eq!(err.errno(), libc::EFBIG);
    assert_eq!(
        emu.route_count("POST /medias/upload-file").await,
        0,
        "nothing was sent"
    );
}

#[tokio::test]
async fn videos_may_be_larger_than_other_files() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clip.mp4");
    let mut head = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    head.resize(27 * 1024 * 1024, 0x42);
    std::fs::write(&path, &head).unwrap();
    let video = client.upload_file(&path, "clip.mp4", None).await.unwrap();
    // The client answers with what it sent: ask the server what it stored.
    let objects = emu.server_objects().await;
    let stored = objects
        .iter()
        .find(|o| o["_id"] == video.id.as_str())
        .unwrap();
    assert_eq!(stored["contentType"], "video/mp4");
    assert_eq!(stored["size"], 27 * 1024 * 1024);
}

#[tokio::test]
async fn renames_trashes_and_deletes() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let path = write_file(tmp.path(), "f.png", &png_bytes(10, i));
        ids.push(
            client
                .upload_file(&path, &format!("{i}.png"), None)
                .await
                .unwrap(),
        );
    }
    client.rename(&ids[0].id, "zero.png").await.unwrap();
    client
        .rename_many(&[
            (ids[1].id.clone(), "one.png".into()),
            (ids[2].id.clone(), "two.png".into()),
        ])
        .await
        .unwrap();
    let active_names = |objects: Vec<serde_json::Value>| {
        let mut n: Vec<String> = objects
            .into_iter()
            .filter(|o| o["status"] == "active")
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        active_names(emu.server_objects().await),
        ["3.png", "one.png", "two.png", "zero.png"]
    );

    client
        .delete_many(&[ids[0].id.clone()], DeleteStatus::Trashed)
        .await
        .unwrap();
    // Trashing again is harmless: a retry after a lost answer does just that.
    client
        .delete_many(&[ids[0].id.clone()], DeleteStatus::Trashed)
        .await
        .unwrap();
    client.delete(&ids[1].id).await.unwrap();
    let objects = emu.server_objects().await;
    let status = |id: &str| objects.iter().find(|o| o["_id"] == id).unwrap()["status"].clone();
    assert_eq!(status(&ids[0].id), "trashed");
    assert_eq!(status(&ids[1].id), "deleted");
    assert_eq!(active_names(objects.clone()), ["3.png", "two.png"]);
    let gone = client.download(ids[1].url.as_deref().unwrap(), None).await;
    assert!(
        matches!(gone, Err(ApiError::NotFound { .. })),
        "deleted bytes are gone"
    );

    let err = client.rename(&ids[1].id, "again.png").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err}");
    let err = client.delete("0123456789abcdef01234567").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn trashing_a_folder_hides_what_is_in_it() {
    let emu = start_emulator(true, quiet()).await;
    let client = emu.client();
    let tree = client.list_folder_tree().await.unwrap();
    let campaigns = tree.iter().find(|f| f.name == "Campaigns").unwrap();
    client
        .delete_many(std::slice::from_ref(&campaigns.id), DeleteStatus::Trashed)
        .await
        .unwrap();
    let names: Vec<_> = client
        .list_folder_tree()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "Campaigns" || n == "Black Friday 2026" || n == "Spring Launch"),
        "{names:?}"
    );
}

#[tokio::test]
async fn hosted_uploads_fetch_the_url() {
    let emu = start_emulator(true, quiet()).await;
    let client = emu.client();
    let jingle = client
        .list_children(None)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.name == "jingle.mp3")
        .unwrap();
    let copy = client
        .upload_hosted(jingle.url.as_deref().unwrap(), "copy.mp3", None)
        .await
        .unwrap();
    let a = client
        .download(jingle.url.as_deref().unwrap(), None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let b = client
        .download(&copy.url, None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(a, b);
}

#[tokio::test]
async fn auth_errors_say_what_is_wrong() {
    let emu = start_emulator(false, quiet()).await;
    let wrong = client_for(emu.base_url(), LOCATION, "pit-wrong", |_| {});
    let err = wrong.verify_access().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Unauthorized { ref message } if message.contains("Invalid token")),
        "{err}"
    );

    let other = client_for(emu.base_url(), LOCATION, OTHER_TOKEN, |_| {});
    let err = other.verify_access().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Unauthorized { ref message } if message.contains(&format!("grants access to location {OTHER_LOCATION}"))),
        "{err}"
    );

    let unknown = client_for(emu.base_url(), "NoSuchLocation", TOKEN, |_| {});
    let err = unknown.verify_access().await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err}");
    assert_eq!(err.errno(), libc::EACCES);

    emu.client().verify_access().await.unwrap();
}

#[tokio::test]
async fn parent_must_exist() {
    let emu = start_emulator(false, quiet()).await;
    let err = emu
        .client()
        .create_folder("x", Some("0123456789abcdef01234567"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn stays_under_the_rate_limit_without_a_single_429() {
    let emu = start_emulator(
        true,
        Faults {
            rate_limit: 10,
            ..quiet()
        },
    )
    .await;
    let client = emu.client_with(|c| c.rate_limit = Some((10, std::time::Duration::from_secs(10))));
    let started = std::time::Instant::now();
    for _ in 0..12 {
        client.list_folder_tree().await.unwrap();
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(9),
        "the client waited for the window"
    );
    assert_eq!(
        emu.route_count("GET /medias/files").await,
        12,
        "no request was refused and retried"
    );
}

#[tokio::test]
async fn retries_after_429_until_the_burst_gets_through() {
    let emu = start_emulator(
        true,
        Faults {
            rate_limit: 5,
            ..quiet()
        },
    )
    .await;
    let client = emu.client_with(|c| {
        c.rate_limit = None;
        c.max_retries = 10;
        c.retry_max = std::time::Duration::from_secs(4);
    });
    let calls: Vec<_> = (0..8).map(|_| client.list_folder_tree()).collect();
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().len(), 6);
    }
    assert!(
        emu.route_count("GET /medias/files").await > 8,
        "some requests were refused with 429 and retried"
    );
}

/// With a third of all requests failing, some after the server acted, every
/// upload and folder creation that reports success is there exactly once
/// with the right bytes, and nothing is ever there twice.
#[tokio::test]
async fn faults_never_duplicate_or_corrupt() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client_with(|c| c.max_retries = 12);
    let parent = client.create_folder("uploads", None).await.unwrap();
    emu.set_faults(Faults {
        fail_rate: 0.3,
        ..quiet()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut folders_made = Vec::new();
    for i in 0..20u8 {
        let name = format!("asset-{i}.png");
        let bytes = png_bytes(3000 + i as usize, i);
        let path = write_file(tmp.path(), &name, &bytes);
        if client
            .upload_file(&path, &name, Some(&parent.id))
            .await
            .is_ok()
        {
            expected.insert(name, bytes);
        }
        let folder = format!("folder-{i}");
        if client
            .create_folder(&folder, Some(&parent.id))
            .await
            .is_ok()
        {
            folders_made.push(folder);
        }
    }
    emu.set_faults(quiet()).await;
    let stored: Vec<_> = emu
        .server_objects()
        .await
        .into_iter()
        .filter(|o| o["parentId"] == parent.id.as_str() && o["status"] == "active")
        .collect();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for o in &stored {
        *seen.entry(o["name"].as_str().unwrap()).or_default() += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    for (name, bytes) in &expected {
        let o = stored
            .iter()
            .find(|o| o["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing"));
        let got = reqwest::get(o["url"].as_str().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], &bytes[..], "{name} has the wrong bytes");
    }
    for folder in &folders_made {
        assert_eq!(seen.get(folder.as_str()), Some(&1), "{folder}");
    }
    assert!(
        expected.len() >= 18 && folders_made.len() >= 18,
        "retries got nearly everything through"
    );
}

#[tokio::test]
async fn objects_survive_an_emulator_restart() {
    let dir = tempfile::tempdir().unwrap();
    let running = mediafs::emulator::start(config_in(dir.path(), false, quiet()))
        .await
        .unwrap();
    let client = client_for(&running.base_url, LOCATION, TOKEN, |_| {});
    let tmp = tempfile::tempdir().unwrap();
    let bytes = png_bytes(4096, 3);
    let path = write_file(tmp.path(), "keep.png", &bytes);
    let folder = client.create_folder("kept", None).await.unwrap();
    client
        .upload_file(&path, "keep.png", Some(&folder.id))
        .await
        .unwrap();
    running.stop().await;

    let running = mediafs::emulator::start(config_in(dir.path(), false, quiet()))
        .await
        .unwrap();
    let stored: Vec<_> = server_objects_at(&running.base_url)
        .await
        .into_iter()
        .filter(|o| o["parentId"] == folder.id.as_str())
        .collect();
    assert_eq!(stored.len(), 1);
    let got = reqwest::get(stored[0]["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &bytes[..]);
    running.stop().await;
}

#[tokio::test]
async fn same_names_live_side_by_side() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let a = client.create_folder("dup", None).await.unwrap();
    let b = client.create_folder("dup", None).await.unwrap();
    assert_ne!(a.id, b.id);
    let found = client
        .find_by_name(ObjectKind::Folder, None, "dup")
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
}

/// The library holds any name; one with line breaks or quotes still uploads,
/// under exactly that name.
#[tokio::test]
async fn names_with_control_characters_upload_as_they_are() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"hello\n").unwrap();
    for name in [
        "a\nb.txt",
        "c\r\nd.txt",
        "quote\".txt",
        "tab\tand\\slash.txt",
    ] {
        let stored = client.upload_file(&path, name, None).await.unwrap();
        assert_eq!(stored.name, name);
        let found = client
            .find_by_name(ObjectKind::File, None, name)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{name:?}");
    }
}

/// A redirect could carry the token to another host: the client follows none.
#[tokio::test]
async fn redirects_are_refused_and_the_token_goes_nowhere_else() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let elsewhere = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "{}" }
    });
    let other = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let other_url = format!("http://{}", other.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(other, elsewhere).await });
    let target = other_url.clone();
    let redirecting = axum::Router::new().fallback(move || async move {
        axum::response::Redirect::temporary(&format!("{target}/medias/files"))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await });

    let err = client_for(&base, LOCATION, TOKEN, |_| {})
        .verify_access()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::InvalidRequest { status: 307, ref message } if message.contains("redirect")),
        "{err}"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the other host was never contacted"
    );
}

/// With half of all downloads failing (a 500, or a connection dropped before
/// or partway through the bytes), every ranged read still returns exactly
/// the bytes asked for: a piece of a broken answer is never kept.
#[tokio::test]
async fn ranged_reads_survive_failed_downloads() {
    let emu = start_emulator(false, quiet()).await;
    let client = emu.client_with(|c| c.max_retries = 12);
    let tmp = tempfile::tempdir().unwrap();
    let bytes = mp4_bytes(3 * 1024 * 1024, 251);
    let path = write_file(tmp.path(), "promo.mp4", &bytes);
    let uploaded = client.upload_file(&path, "promo.mp4", None).await.unwrap();
    let url = uploaded.url.unwrap();
    emu.set_faults(Faults {
        fail_rate: 0.5,
        fail_after_share: 0.5,
        fail_routes: vec!["GET /msgsndr".into()],
        ..quiet()
    })
    .await;
    // Enough reads that some fail, but for one chance in 100,000.
    let mut ranges: Vec<(u64, u64)> = (0..14).map(|i| (i * 200_000, 350_000)).collect();
    ranges.extend([(0, 1 << 20), (2 << 20, 1 << 20), (17, 1)]);
    for &(offset, len) in &ranges {
        let got = client
            .read_range(&url, ByteRange { offset, len })
            .await
            .unwrap();
        let want = &bytes[offset as usize..(offset + len) as usize];
        assert_eq!(got.len(), want.len());
        assert!(got.to_bytes()[..] == *want, "wrong bytes at {offset}");
    }
    let downloads = emu.stats().await["download_requests"].as_u64().unwrap();
    assert!(
        downloads > ranges.len() as u64,
        "some downloads failed and were retried ({downloads} made)"
    );
}
