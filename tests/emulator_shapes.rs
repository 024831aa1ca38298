//! The emulator's answers, checked against the shapes and quirks documented
//! in `shared/api/HIGHLEVEL-MEDIA.md`, with a plain HTTP client.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn api(emu: &TestEmulator) -> (Client, String) {
    (
        Client::builder()
            .user_agent("shape-test/1")
            .build()
            .unwrap(),
        emu.base_url().to_owned(),
    )
}

fn authed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .header("Accept", "application/json")
}

fn is_object_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn list(client: &Client, base: &str, query: &str) -> (StatusCode, Value) {
    let url = format!("{base}/medias/files?altType=location&altId={LOCATION}&{query}");
    let resp = authed(client.get(url)).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn listing_has_files_count_and_trace_id() {
    let emu = start_emulator(true, quiet()).await;
    let (client, base) = api(&emu);
    let (status, body) = list(&client, &base, "type=file&fetchAll=true").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["traceId"].is_string());
    let files = body["files"].as_array().unwrap();
    assert_eq!(body["count"].as_u64(), Some(files.len() as u64));
    for f in files {
        assert!(is_object_id(&f["_id"]), "{f}");
        assert!(f.get("id").is_none(), "the real service says _id, not id");
        assert_eq!(f["type"], "file");
        assert_eq!(f["altType"], "location");
        for key in [
            "name",
            "contentType",
            "path",
            "url",
            "createdAt",
            "updatedAt",
        ] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
        assert!(f["size"].is_u64());
        let created = f["createdAt"].as_str().unwrap();
        assert!(
            created.ends_with('Z') && created.contains('.'),
            "ISO time with millis: {created}"
        );
        assert!(f["url"]
            .as_str()
            .unwrap()
            .ends_with(f["path"].as_str().unwrap()));
    }
    let root_file = files.iter().find(|f| f["name"] == "jingle.mp3").unwrap();
    assert!(
        root_file.get("parentId").is_none(),
        "files at the root carry no parentId"
    );

    let (_, folders) = list(&client, &base, "type=folder").await;
    let root_folder = &folders["files"][0];
    assert!(
        root_folder["parentId"].is_null(),
        "folders at the root carry parentId null"
    );
    assert!(root_folder.get("url").is_none() && root_folder.get("size").is_none());
}

#[tokio::test]
async fn listing_rules() {
    let emu = start_emulator(true, quiet()).await;
    let (client, base) = api(&emu);
    let (status, body) = list(&client, &base, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"].is_array(),
        "422 carries a message array: {body}"
    );

    let (status, body) = list(&client, &base, "type=file&sortBy=size").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (_, by_name) = list(
        &client,
        &base,
        "type=folder&fetchAll=true&sortBy=name&sortOrder=asc",
    )
    .await;
    let names: Vec<_> = by_name["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let (_, page) = list(
        &client,
        &base,
        "type=folder&fetchAll=true&sortBy=name&sortOrder=asc&offset=1&limit=2",
    )
    .await;
    assert_eq!(
        page["files"].as_array().unwrap().len(),
        6,
        "fetchAll answers everything"
    );
    let (_, page) = list(
        &client,
        &base,
        "type=folder&sortBy=name&sortOrder=asc&offset=1&limit=1",
    )
    .await;
    assert_eq!(page["files"].as_array().unwrap().len(), 1);
    assert_eq!(page["files"][0]["name"], "Campaigns");
    assert_eq!(page["count"], 3, "count is the total, not the page");

    let (_, found) = list(&client, &base, "type=file&fetchAll=true&query=LOGO").await;
    assert_eq!(
        found["files"].as_array().unwrap().len(),
        2,
        "name search, any case: {found}"
    );
}

#[tokio::test]
async fn auth_and_headers() {
    let emu = start_emulator(false, mediafs::emulator::Faults::default()).await;
    let (client, base) = api(&emu);
    let url = format!("{base}/medias/files?altType=location&altId={LOCATION}&type=file");

    let resp = client
        .get(&url)
        .header("Version", "2021-07-28")
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["statusCode"], 401);
    assert_eq!(body["message"], "Invalid token: access token is invalid");
    assert_eq!(body["error"], "Unauthorized");

    let resp = client
        .get(format!(
            "{base}/medias/files?altType=location&altId={LOCATION}&type=file"
        ))
        .header("Version", "2021-07-28")
        .bearer_auth(OTHER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"],
        format!("Your token grants access to location {OTHER_LOCATION} but you're requesting {LOCATION}")
    );

    let bare = Client::builder().build().unwrap();
    let resp = authed(bare.get(&url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no User-Agent");

    let resp = authed(client.get(&url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for h in [
        "x-ratelimit-max",
        "x-ratelimit-remaining",
        "x-ratelimit-interval-milliseconds",
        "x-ratelimit-limit-daily",
        "x-ratelimit-daily-remaining",
    ] {
        assert!(resp.headers().contains_key(h), "{h}");
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let emu = start_emulator(
        false,
        mediafs::emulator::Faults {
            rate_limit: 3,
            ..quiet()
        },
    )
    .await;
    let (client, base) = api(&emu);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (s, _) = list(&client, &base, "type=file").await;
        statuses.push(s);
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    let resp = authed(client.get(format!(
        "{base}/medias/files?altType=location&altId={LOCATION}&type=file"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(resp.headers()["x-ratelimit-max"], "3");
}

#[tokio::test]
async fn folder_creation_answers_201_with_id() {
    let emu = start_emulator(false, quiet()).await;
    let (client, base) = api(&emu);
    let resp = authed(client.post(format!("{base}/medias/folder")))
        .json(&json!({"altId": LOCATION, "altType": "location", "name": "New Folder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert!(is_object_id(&body["_id"]));
    assert_eq!(body["name"], "New Folder");
    assert_eq!(body["type"], "folder");

    let resp = authed(client.post(format!("{base}/medias/folder")))
        .json(&json!({"altId": LOCATION, "altType": "location"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn upload(
    client: &Client,
    base: &str,
    bytes: Vec<u8>,
    mime: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("f")
        .mime_str(mime)
        .unwrap();
    let mut form = reqwest::multipart::Form::new()
        .text("altId", LOCATION)
        .text("altType", "location")
        .part("file", part);
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let resp = authed(client.post(format!("{base}/medias/upload-file")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn upload_rules() {
    let emu = start_emulator(false, quiet()).await;
    let (client, base) = api(&emu);
    let (status, body) = upload(
        &client,
        &base,
        png_bytes(10, 0),
        "image/png",
        &[("name", "a.png")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(is_object_id(&body["fileId"]));
    assert!(body["url"].as_str().unwrap().starts_with("http"));

    let (status, body) = upload(
        &client,
        &base,
        png_bytes(10, 0),
        "application/octet-stream",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("INVALID_FILE_TYPE"));
    let (status, _) = upload(&client, &base, vec![0; 10], "audio/mp4", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = upload(
        &client,
        &base,
        // One byte past 25 MB as the emulator counts by default: refused
        // as the body ends, so the answer is read before the connection closes.
        vec![7; 25_000_001],
        "image/png",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let (status, _) = upload(
        &client,
        &base,
        png_bytes(10, 0),
        "image/png",
        &[("parentId", "0123456789abcdef01234567")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Without parentId, uploads land at the root.
    let (_, root) = list(&client, &base, "type=file").await;
    assert_eq!(root["count"], 1);
}

#[tokio::test]
async fn updates_rename_only_and_deletes_hide() {
    let emu = start_emulator(true, quiet()).await;
    let (client, base) = api(&emu);
    let (_, root) = list(&client, &base, "type=folder&sortBy=name&sortOrder=asc").await;
    let brand = root["files"][0]["_id"].as_str().unwrap().to_owned();
    let team = root["files"][2]["_id"].as_str().unwrap().to_owned();

    let resp = authed(client.post(format!("{base}/medias/{brand}")))
        .json(&json!({"name": "Brand", "altType": "location", "altId": LOCATION}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["updated"], true);
    assert!(body["traceId"].is_string());

    let resp = authed(client.post(format!("{base}/medias/{brand}")))
        .json(&json!({"name": "Brand", "altType": "location", "altId": LOCATION, "parentId": team}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "no moves");

    let resp = authed(client.put(format!("{base}/medias/update-files")))
        .json(&json!({"altId": LOCATION, "altType": "location", "filesToBeUpdated": [{"id": team, "name": "People"}]}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!([{"updated": true, "id": team}]));

    let resp = authed(client.put(format!("{base}/medias/delete-files")))
        .json(&json!({"altId": LOCATION, "altType": "location", "status": "trashed", "filesToBeDeleted": [{"_id": team}]}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!([{"deleted": true, "id": team}]));
    let (_, root) = list(&client, &base, "type=folder&sortBy=name&sortOrder=asc").await;
    let names: Vec<_> = root["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Brand", "Campaigns"]);

    // The store's own view keeps what listings hide, with its status.
    let all: Value = client
        .get(format!("{base}/_emulator/objects?location={LOCATION}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_of = |id: &str| {
        all["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["_id"] == id)
            .map(|o| o["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of(&team).as_deref(), Some("trashed"));
    assert_eq!(status_of(&brand).as_deref(), Some("active"));

    let resp = authed(client.put(format!("{base}/medias/delete-files")))
        .json(&json!({"altId": LOCATION, "altType": "location", "status": "gone", "filesToBeDeleted": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn file_urls_serve_bytes_with_ranges_and_no_token() {
    let emu = start_emulator(true, quiet()).await;
    let (client, base) = api(&emu);
    let (_, files) = list(&client, &base, "type=file&fetchAll=true&query=promo").await;
    let promo = &files["files"][0];
    let url = promo["url"].as_str().unwrap();
    let size = promo["size"].as_u64().unwrap();

    let whole = client.get(url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(whole.headers()["content-length"], size.to_string().as_str());
    assert_eq!(whole.bytes().await.unwrap().len() as u64, size);

    let part = client
        .get(url)
        .header("Range", "bytes=4-11")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 4-11/{size}").as_str()
    );
    assert_eq!(&part.bytes().await.unwrap()[..], b"ftypisom");

    let past = client
        .get(url)
        .header("Range", format!("bytes={}-", size + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let stats: Value = emu.stats().await;
    assert!(stats["api_requests"].as_u64().unwrap() >= 1);
    assert_eq!(stats["download_requests"], 3);
    assert!(stats["by_route"]["GET /medias/files"].as_u64().unwrap() >= 1);
}

/// Which requests fail is drawn from a seed: the same seed fails the same
/// requests of the same sequence, so a failing run can be replayed. Fault
/// changes touch only the fields given.
#[tokio::test]
async fn seeded_faults_replay_and_fault_changes_keep_other_fields() {
    let emu = start_emulator(
        false,
        mediafs::emulator::Faults {
            fail_rate: 0.5,
            fail_after_share: 0.0,
            seed: Some(7),
            ..quiet()
        },
    )
    .await;
    let (client, base) = api(&emu);
    let statuses = || async {
        let mut got = Vec::new();
        for _ in 0..40 {
            let sent = authed(client.get(format!(
                "{base}/medias/files?type=file&altType=location&altId={LOCATION}"
            )))
            .send()
            .await;
            got.push(sent.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        got
    };
    let first = statuses().await;
    assert!(
        first.contains(&200) && first.iter().any(|&s| s != 200),
        "{first:?}"
    );
    let set = |body: Value| {
        let url = format!("{base}/_emulator/faults");
        let client = client.clone();
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    set(json!({"seed": 7})).await;
    assert_eq!(
        statuses().await,
        first,
        "the same seed fails the same requests"
    );
    set(json!({"seed": 8})).await;
    assert_ne!(statuses().await, first, "another seed, other requests");
    let now = set(json!({"latency_ms": 1})).await;
    assert_eq!(
        now["fail_rate"], 0.5,
        "a change keeps the fields it does not name: {now}"
    );
    assert_eq!(now["rate_limit"], quiet().rate_limit);
}

/// One request of each route, with `token`: the statuses it gets, by route.
async fn status_by_route(client: &Client, base: &str, token: &str, file: &str) -> Vec<u16> {
    let with = |req: reqwest::RequestBuilder| {
        req.bearer_auth(token)
            .header("Version", "2021-07-28")
            .header("Accept", "application/json")
    };
    let alt = json!({"altId": LOCATION, "altType": "location"});
    let part = reqwest::multipart::Part::bytes(png_bytes(10, 1))
        .file_name("s.png")
        .mime_str("image/png")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("altId", LOCATION)
        .text("altType", "location")
        .text("name", "s.png")
        .part("file", part);
    let requests = [
        with(client.get(format!(
            "{base}/medias/files?altType=location&altId={LOCATION}&type=file"
        ))),
        with(client.post(format!("{base}/medias/upload-file"))).multipart(form),
        with(client.post(format!("{base}/medias/folder")))
            .json(&json!({"altId": LOCATION, "altType": "location", "name": "F"})),
        with(client.post(format!("{base}/medias/{file}")))
            .json(&json!({"altId": LOCATION, "altType": "location", "name": "renamed.png"})),
        with(client.put(format!("{base}/medias/update-files"))).json(
            &json!({"altId": LOCATION, "altType": "location", "filesToBeUpdated": [{"id": file, "name": "r.png"}]}),
        ),
        with(client.put(format!("{base}/medias/delete-files"))).json(
            &json!({"altId": LOCATION, "altType": "location", "status": "trashed", "filesToBeDeleted": [{"_id": file}]}),
        ),
        with(client.delete(format!("{base}/medias/{file}"))).query(&alt),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 401 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                (&body["statusCode"], &body["message"], &body["error"]),
                (
                    &json!(401),
                    &json!("The token is not authorized for this scope."),
                    &json!("Unauthorized")
                ),
                "{body}"
            );
        }
        statuses.push(status);
    }
    statuses
}

#[tokio::test]
async fn scopes_are_enforced_by_route_and_neither_implies_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), true, quiet());
    for grant in [
        "pit-read:LocTestAAAA1111:medias.readonly",
        "pit-write:*:medias.write",
        "pit-none:LocTestAAAA1111:",
    ] {
        config.tokens.push(grant.parse().unwrap());
    }
    let emu = TestEmulator {
        running: mediafs::emulator::start(config).await.unwrap(),
        dir,
    };
    let (client, base) = api(&emu);
    let objects = || async {
        let all: Value = reqwest::get(format!("{base}/_emulator/objects?location={LOCATION}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all
    };
    let before = objects().await;
    let file = before["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "file")
        .unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // list, upload, folder, rename, rename many, delete many, delete
    assert_eq!(
        status_by_route(&client, &base, "pit-read", &file).await,
        [200, 401, 401, 401, 401, 401, 401]
    );
    assert_eq!(
        status_by_route(&client, &base, "pit-none", &file).await,
        [401; 7]
    );
    assert_eq!(objects().await, before, "refused writes changed nothing");
    assert_eq!(
        status_by_route(&client, &base, "pit-write", &file).await,
        [401, 200, 201, 200, 200, 200, 200]
    );
    // Tokens with both scopes (the old forms) still do everything.
    assert_eq!(
        status_by_route(&client, &base, TOKEN, "000000000000000000000000").await,
        [200, 200, 201, 404, 200, 200, 404]
    );
}
