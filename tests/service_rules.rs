//! The client against every reading of the service's rules that its
//! documents leave open, as the emulator offers them: the 25 MB upload
//! limit counted in MB or in MiB (`--size-unit`), and the rate limit's
//! window fixed or sliding (`--rate-window`). The server's state is read
//! from the emulator's own records (`/_emulator/objects`, `/_emulator/stats`),
//! never through the client under test.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::front_end::{CutRefusal, ResettingFrontEnd};
use common::mount::*;
use common::{client_for, png_bytes, start_emulator, write_file, LOCATION, TOKEN};
use mediafs::api::{ApiError, ListQuery, ObjectKind};
use mediafs::emulator::rules::{SizeUnit, WindowKind};
use mediafs::emulator::Faults;
use serde_json::Value;

/// PNG bytes past 25,000,000 and under 26,214,400: over the limit in one
/// reading of "25 MB", under it in the other.
fn between_the_readings(seed: u8) -> Vec<u8> {
    let bytes = png_bytes(25_600_000, seed);
    assert!(bytes.len() > 25_000_000 && bytes.len() < 26_214_400);
    bytes
}

/// PNG bytes past 26,214,400: over the limit in either reading.
fn over_both_readings() -> Vec<u8> {
    png_bytes(26_300_000, 9)
}

/// Every object the emulator holds, whatever its status.
fn server_objects(emu: &EmulatorProcess) -> Vec<Value> {
    emu.all_objects()
}

fn uploads_sent(emu: &EmulatorProcess) -> u64 {
    emu.stats()["by_route"]["POST /medias/upload-file"]
        .as_u64()
        .unwrap_or(0)
}

/// `cp` of `from` to `to` fails with "File too large".
fn cp_is_too_large(from: &std::path::Path, to: &str) {
    let out = sh(&format!("cp {} {to}", q(from)));
    assert!(
        !out.status.success(),
        "cp {} {to} succeeded",
        from.display()
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("File too large"), "cp said: {said}");
}

/// Waits for a failed new file to leave the mount.
fn gone_from_the_mount(m: &Mounted, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.path().join(name).exists() {
        assert!(Instant::now() < deadline, "{name} stays in the mount");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn when_the_service_counts_mb_a_file_past_25_000_000_bytes_gets_efbig_at_close() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--size-unit", "mb"]);
    let m = Mounted::start(&emu, &["--metadata-ttl", "60"]);
    let tmp = tempfile::tempdir().unwrap();
    let keep = write_file(tmp.path(), "keep.png", &png_bytes(1000, 1));
    let between = write_file(tmp.path(), "between.png", &between_the_readings(2));
    let over = write_file(tmp.path(), "over.png", &over_both_readings());
    ok(&format!("cp {} {}", q(&keep), m.at("keep.png")));

    cp_is_too_large(&between, &m.at("between.png"));
    gone_from_the_mount(&m, "between.png");
    // Over a stored file: the stored one stays as it was.
    cp_is_too_large(&between, &m.at("keep.png"));
    ok(&format!("cmp {} {}", q(&keep), m.at("keep.png")));
    cp_is_too_large(&over, &m.at("over.png"));
    gone_from_the_mount(&m, "over.png");

    let objects = server_objects(&emu);
    assert_eq!(objects.len(), 1, "nothing but keep.png: {objects:#?}");
    assert_eq!(objects[0]["name"], "keep.png");
    assert_eq!(objects[0]["status"], "active");
    assert_eq!(objects[0]["size"], keep.metadata().unwrap().len());
    // keep.png, and each refused file once: the refusal is not retried,
    // and the file past both readings is refused before it is sent.
    assert_eq!(uploads_sent(&emu), 3);
    assert!(
        m.log()
            .contains("Its limit is 25 MB for a file that is not a video"),
        "the log says the service's limit:\n{}",
        m.log()
    );
}

#[test]
fn when_the_service_counts_mib_a_file_under_26_214_400_bytes_is_stored() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0", "--size-unit", "mib"]);
    let m = Mounted::start(&emu, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let between = write_file(tmp.path(), "between.png", &between_the_readings(3));
    let over = write_file(tmp.path(), "over.png", &over_both_readings());

    ok(&format!("cp {} {}", q(&between), m.at("between.png")));
    cp_is_too_large(&over, &m.at("over.png"));
    gone_from_the_mount(&m, "over.png");

    let objects = server_objects(&emu);
    assert_eq!(objects.len(), 1, "only between.png: {objects:#?}");
    let stored = &objects[0];
    assert_eq!(stored["name"], "between.png");
    assert_eq!(stored["status"], "active");
    assert_eq!(stored["size"], between.metadata().unwrap().len());
    let copy = tmp.path().join("from-server.png");
    ok(&format!(
        "curl -sf -o {} {}",
        q(&copy),
        q(stored["url"].as_str().unwrap())
    ));
    ok(&format!("cmp {} {}", q(&between), q(&copy)));
    assert_eq!(
        uploads_sent(&emu),
        1,
        "the file past both readings is never sent"
    );
}

/// The emulator (counting MB) behind a front end whose reset overtakes
/// its 413: the client sees its connection broken off, never the answer.
#[tokio::test]
async fn a_size_refusal_seen_only_as_a_reset_is_efbig_and_not_sent_again() {
    let emu = start_emulator(
        false,
        Faults {
            rate_limit: 0,
            size_unit: SizeUnit::Mb,
            ..Faults::default()
        },
    )
    .await;
    let front = ResettingFrontEnd::start(emu.running.addr).await;
    let client = client_for(&front.base_url, LOCATION, TOKEN, |_| {});
    let tmp = tempfile::tempdir().unwrap();
    let small = write_file(tmp.path(), "small.png", &png_bytes(1000, 4));
    let between = write_file(tmp.path(), "between.png", &between_the_readings(5));

    client.upload_file(&small, "small.png", None).await.unwrap();
    let err = client
        .upload_file(&between, "between.png", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TooLarge { .. }), "{err}");
    assert_eq!(err.errno(), libc::EFBIG);
    assert!(err.to_string().contains("25 MB"), "{err}");
    assert_eq!(emu.route_count("POST /medias/upload-file").await, 2);
    let objects: Value = reqwest::get(format!(
        "{}/_emulator/objects?location={LOCATION}",
        emu.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let names: Vec<&str> = objects["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["small.png"]);
}

#[tokio::test]
async fn a_413_whose_words_are_cut_off_is_still_a_size_refusal() {
    let server = CutRefusal::start().await;
    let client = client_for(&server.base_url, LOCATION, TOKEN, |_| {});
    let tmp = tempfile::tempdir().unwrap();
    let small = write_file(tmp.path(), "small.png", &png_bytes(1000, 6));
    let err = client
        .upload_file(&small, "small.png", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TooLarge { .. }), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "not sent again");
}

/// A burst of concurrent listings, more than two windows' worth, from a
/// client left at its defaults (100 per 10 s) while the service allows a
/// trial token's 25: the client learns the limit from the first answer
/// and keeps under it, whichever way the service counts.
async fn a_burst_draws_no_429(window: WindowKind) {
    let emu = start_emulator(
        false,
        Faults {
            rate_limit: 25,
            rate_window: window,
            latency_ms: 50,
            ..Faults::default()
        },
    )
    .await;
    let client = Arc::new(emu.client());
    let burst = (0..60).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .list_page(&ListQuery::children(ObjectKind::Folder, None, 10))
                .await
        })
    });
    for listing in futures::future::join_all(burst).await {
        listing.unwrap().unwrap();
    }
    let stats = emu.stats().await;
    assert_eq!(stats["rate_limited"], 0, "{stats}");
    assert_eq!(stats["by_route"]["GET /medias/files"], 60, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_draws_no_429_from_a_fixed_window() {
    a_burst_draws_no_429(WindowKind::Fixed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_draws_no_429_from_a_sliding_window() {
    a_burst_draws_no_429(WindowKind::Sliding).await;
}

/// The emulator itself: each unit refuses one byte past its own limit,
/// and each window refuses past its limit with the headers saying so.
#[tokio::test]
async fn the_emulator_enforces_each_reading() {
    for (unit, limit) in [(SizeUnit::Mb, 25_000_000), (SizeUnit::Mib, 26_214_400)] {
        let emu = start_emulator(
            false,
            Faults {
                rate_limit: 0,
                size_unit: unit,
                ..Faults::default()
            },
        )
        .await;
        assert_eq!(raw_upload(emu.base_url(), limit).await, 200, "{unit:?}");
        assert_eq!(raw_upload(emu.base_url(), limit + 1).await, 413, "{unit:?}");
    }
    for window in [WindowKind::Fixed, WindowKind::Sliding] {
        let emu = start_emulator(
            false,
            Faults {
                rate_limit: 3,
                rate_window: window,
                ..Faults::default()
            },
        )
        .await;
        let http = reqwest::Client::new();
        let mut remaining = Vec::new();
        for _ in 0..4 {
            let resp = authed(http.get(format!(
                "{}/medias/files?altType=location&altId={LOCATION}&type=file",
                emu.base_url()
            )))
            .send()
            .await
            .unwrap();
            assert_eq!(resp.headers()["x-ratelimit-max"], "3");
            assert_eq!(resp.headers()["x-ratelimit-interval-milliseconds"], "10000");
            remaining.push((
                resp.status().as_u16(),
                resp.headers()["x-ratelimit-remaining"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
        let expected: Vec<(u16, String)> = [(200, "2"), (200, "1"), (200, "0"), (429, "0")]
            .map(|(s, r)| (s, r.to_owned()))
            .into();
        assert_eq!(remaining, expected, "{window:?}");
        assert_eq!(emu.stats().await["rate_limited"], 1);
    }
}

fn authed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.bearer_auth(TOKEN)
        .header("Version", "2021-07-28")
        .header("User-Agent", "service-rules-test")
}

/// Uploads a PNG part of exactly `len` bytes, with no client in between;
/// its status.
async fn raw_upload(base: &str, len: usize) -> u16 {
    let mut bytes = png_bytes(0, 7);
    bytes.resize(len, 7);
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("exact.png")
        .mime_str("image/png")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("altId", LOCATION)
        .text("altType", "location")
        .part("file", part);
    authed(reqwest::Client::new().post(format!("{base}/medias/upload-file")))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The emulator is an independent reading of the service: no file of it
/// uses the client's modules, so that a wrong assumption cannot hide on
/// both sides.
#[test]
fn the_emulator_uses_none_of_the_clients_rules() {
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/emulator")];
    let mut borrowing = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if [
                "crate::api",
                "crate::fs",
                "mediafs::api",
                "super::super::api",
            ]
            .iter()
            .any(|m| text.contains(m))
            {
                borrowing.push(path.display().to_string());
            }
        }
    }
    assert!(
        borrowing.is_empty(),
        "these use the client's modules: {borrowing:?}"
    );
}
