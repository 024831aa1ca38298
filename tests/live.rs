//! The client contract against a live location, and the same suite through
//! the same entry point ([`contract::run`]) against an emulator on every
//! run, so that the live path is exercised where nobody has an account.
//!
//! `live_location` runs against the location `MEDIAFS_LIVE_TOKEN` and
//! `MEDIAFS_LIVE_LOCATION` name (README, "Testing against your own
//! location"), and says on stderr that it was skipped when they are unset.
//! The other tests point those variables at an emulator they start, and
//! check the server's state through the emulator's `/_emulator/objects`.

mod common;
mod contract;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use common::*;
use contract::report::{Report, Severity, Status};
use contract::writes::ScratchFolder;
use contract::{Ctx, Target, BASE_URL_VAR, LOCATION_VAR, RATE_LIMIT_VAR, TOKEN_VAR, WRITE_VAR};
use futures::FutureExt;
use mediafs::emulator::Faults;
use serde_json::Value;

/// API requests the read checks may cost, and all of them with the writes.
const READ_BUDGET: u64 = 30;
const WRITE_BUDGET: u64 = 40;

#[tokio::test]
async fn live_location() {
    let Some(report) = contract::run(|name| std::env::var(name).ok()).await else {
        return contract::say_skipped();
    };
    report.print();
    let setup = report.findings(Severity::Setup);
    assert!(
        setup.is_empty(),
        "the run could not test the service, because of its setup: see the report above, \
         and run {}",
        report.check_command
    );
    let broken = report.findings(Severity::Broken);
    assert!(
        broken.is_empty(),
        "{} findings break what mediafs relies on: see the report above",
        broken.len()
    );
}

/// An emulator standing in for a user's location. Its token is tied to
/// the location, as a Private Integration token is.
async fn stand_in(seed_demo: bool, rate_limit: u32) -> TestEmulator {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults {
        rate_limit,
        ..Faults::default()
    };
    let mut config = config_in(dir.path(), seed_demo, faults);
    config.tokens[0].location = Some(LOCATION.into());
    let running = mediafs::emulator::start(config).await.unwrap();
    TestEmulator { running, dir }
}

/// Variables looked up in `set`, as a user would have set them.
fn lookup(set: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = set
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// The variables a user sets, pointed at `emu`, and `more`.
fn vars_for(emu: &TestEmulator, more: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut set = vec![
        (TOKEN_VAR, TOKEN),
        (LOCATION_VAR, LOCATION),
        (BASE_URL_VAR, emu.base_url()),
    ];
    set.extend_from_slice(more);
    lookup(&set)
}

/// Adds to the demo library a folder of ten files, so that the paging
/// checks have something to page through.
async fn fill_out(emu: &TestEmulator) {
    let client = emu.client();
    let folder = client.create_folder("Many", None).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..10u8 {
        let name = format!("many-{i}.png");
        let path = write_file(tmp.path(), &name, &png_bytes(100, i));
        client
            .upload_file(&path, &name, Some(&folder.id))
            .await
            .unwrap();
    }
}

/// Every check passes against the emulator: a live run's findings are
/// then exactly how the service differs from it.
fn assert_no_findings(report: &Report) {
    let found = report.findings(Severity::Broken).len() + report.findings(Severity::Differs).len();
    assert_eq!(found, 0, "{}", report.render());
}

fn not_passed(report: &Report) -> Vec<&str> {
    report.checks_where(|s| !matches!(s, Status::Passed(_)))
}

#[tokio::test]
async fn the_read_checks_pass_against_the_emulator_through_the_live_entry_point() {
    let emu = stand_in(true, 100).await;
    fill_out(&emu).await;
    let before = emu.server_objects().await;
    emu.reset_stats().await;
    let report = contract::run(vars_for(&emu, &[]))
        .await
        .expect("the variables name the emulator");
    assert_no_findings(&report);
    assert_eq!(
        not_passed(&report),
        ["the write checks"],
        "{}",
        report.render()
    );
    assert_eq!(
        emu.server_objects().await,
        before,
        "the read checks changed nothing"
    );
    let requests = emu.stats().await["api_requests"].as_u64().unwrap();
    assert!(
        requests <= READ_BUDGET,
        "the read checks cost {requests} API requests"
    );
}

#[tokio::test]
async fn the_write_checks_pass_and_trash_everything_they_make() {
    let emu = stand_in(true, 100).await;
    fill_out(&emu).await;
    let before = emu.server_objects().await;
    emu.reset_stats().await;
    let report = contract::run(vars_for(&emu, &[(WRITE_VAR, "1")]))
        .await
        .unwrap();
    assert_no_findings(&report);
    assert!(not_passed(&report).is_empty(), "{}", report.render());
    let requests = emu.stats().await["api_requests"].as_u64().unwrap();
    assert!(
        requests <= READ_BUDGET + WRITE_BUDGET,
        "the suite cost {requests} API requests"
    );

    let after = emu.server_objects().await;
    for object in &before {
        assert!(after.contains(object), "the suite changed {object}");
    }
    let made: Vec<&Value> = after.iter().filter(|o| !before.contains(o)).collect();
    let scratch = made
        .iter()
        .find(|o| o["name"].as_str().unwrap().starts_with("mediafs-contract-"))
        .expect("a scratch folder was made");
    assert_eq!(scratch["parentId"], Value::Null, "at the root");
    assert!(
        made.len() >= 9,
        "the scratch folder and what was made in it: {made:?}"
    );
    for object in &made {
        assert!(
            within(object, scratch, &after),
            "made outside the scratch folder: {object}"
        );
        assert_ne!(object["status"], "active", "left in the library: {object}");
    }
}

/// Whether `object` is `folder` or lies somewhere inside it.
fn within(object: &Value, folder: &Value, all: &[Value]) -> bool {
    let mut at = object;
    loop {
        if at["_id"] == folder["_id"] {
            return true;
        }
        match all.iter().find(|o| o["_id"] == at["parentId"]) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
}

#[tokio::test]
async fn an_empty_library_at_a_trial_accounts_rate_limit() {
    let emu = stand_in(false, 25).await;
    // The suite learns the lower limit from the service's headers.
    let report = contract::run(vars_for(&emu, &[(WRITE_VAR, "1")]))
        .await
        .unwrap();
    assert_no_findings(&report);
    let empty = report.checks_where(|s| matches!(s, Status::NothingToLookAt(_)));
    assert_eq!(
        empty,
        [
            "listed folders have the shapes mediafs expects",
            "fetchAll of folders is complete (its count matches what it holds)",
            "listed files have the shapes mediafs expects",
            "fetchAll of files is complete (its count matches what it holds)",
            "every listed object's parent is a listed folder",
            "each folder's own listing agrees with fetchAll",
            "pages of 3 leave no gaps or duplicates and carry the listing's count",
            "the client's paged listing (pages of 4) holds every object once",
            "a public url downloads without the token and honours Range",
        ],
        "{}",
        report.render()
    );
    assert_eq!(not_passed(&report), empty, "{}", report.render());
}

#[tokio::test]
async fn the_scratch_folder_is_trashed_even_when_a_check_panics() {
    let emu = stand_in(false, 100).await;
    let target = Target::from_vars(vars_for(&emu, &[(WRITE_VAR, "1")]))
        .unwrap()
        .unwrap();
    let mut report = Report::new("the emulator".into(), "mediafs check".into(), TOKEN);
    let (ctx, _) = Ctx::connect(target).await;
    let failing = async |scratch: &ScratchFolder, _: &mut Report| {
        let inside = ctx
            .client
            .create_folder("inside", Some(&scratch.id))
            .await
            .unwrap();
        scratch.made(&inside.id, &scratch.id);
        panic!("a write check failed");
    };
    let outcome = AssertUnwindSafe(contract::writes::in_scratch_folder(
        &ctx,
        &mut report,
        failing,
    ))
    .catch_unwind()
    .await;
    assert!(
        outcome.is_err(),
        "the panic goes on once the folder is trashed"
    );
    let objects = emu.server_objects().await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(
        objects.iter().all(|o| o["status"] == "trashed"),
        "{objects:?}"
    );
}

#[test]
fn the_variables_name_a_location_or_none() {
    assert!(Target::from_vars(lookup(&[])).unwrap().is_none());
    let half = Target::from_vars(lookup(&[(TOKEN_VAR, "pit-x")])).unwrap_err();
    assert!(half.contains(LOCATION_VAR), "{half}");
    let both = [(TOKEN_VAR, " pit-x\n"), (LOCATION_VAR, "Loc1")];
    let target = Target::from_vars(lookup(&both)).unwrap().unwrap();
    assert_eq!(target.base_url, mediafs::api::client::DEFAULT_BASE_URL);
    assert_eq!(target.token.expose(), "pit-x");
    assert!(!target.write);
    assert_eq!(target.rate_limit, 100);

    let more = [
        (BASE_URL_VAR, "http://127.0.0.1:9/"),
        (WRITE_VAR, "1"),
        (RATE_LIMIT_VAR, "25"),
    ];
    let target = Target::from_vars(lookup(&[&both[..], &more].concat()))
        .unwrap()
        .unwrap();
    assert_eq!(target.base_url, "http://127.0.0.1:9");
    assert!(target.write);
    assert_eq!(target.rate_limit, 25);
    for bad in [
        (WRITE_VAR, "yes"),
        (RATE_LIMIT_VAR, "0"),
        (RATE_LIMIT_VAR, "lots"),
    ] {
        let err = Target::from_vars(lookup(&[&both[..], &[bad]].concat())).unwrap_err();
        assert!(err.contains(bad.0), "{err}");
    }
}

/// A stand-in for a service unlike the emulator: before the emulator it
/// serves, it puts a `count` that is the page's length, `parentId: null` on
/// files at the root, a 422 that quotes the caller's token, and public URLs
/// that ignore `Range`. The answer: the emulator and the service's base URL.
async fn a_service_unlike_the_emulator() -> (TestEmulator, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), true, Faults::default());
    config.tokens[0].location = Some(LOCATION.into());
    config.public_url = Some(base.clone());
    let running = mediafs::emulator::start(config).await.unwrap();
    let upstream = running.base_url.clone();
    let app = axum::Router::new().fallback(move |req| unlike_the_emulator(upstream.clone(), req));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (TestEmulator { running, dir }, base)
}

async fn unlike_the_emulator(
    upstream: String,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let mut headers = parts.headers.clone();
    headers.remove("host");
    if path.starts_with("/msgsndr/") {
        headers.remove("range");
    }
    let token = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let resp = reqwest::Client::new()
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let mut headers = resp.headers().clone();
    headers.remove("content-length");
    let mut body: Vec<u8> = resp.bytes().await.unwrap().into();
    if status == 422 {
        body = serde_json::to_vec(
            &serde_json::json!({"statusCode": 422, "message": format!("no type for {token:?}")}),
        )
        .unwrap();
    } else if path.starts_with("/medias/files?") && status == 200 {
        let mut answer: Value = serde_json::from_slice(&body).unwrap();
        let files = answer["files"].as_array_mut().unwrap();
        for file in files
            .iter_mut()
            .filter(|o| o["type"] == "file" && o.get("parentId").is_none())
        {
            file["parentId"] = Value::Null;
        }
        answer["count"] = files.len().into();
        body = serde_json::to_vec(&answer).unwrap();
    }
    let mut answer = axum::response::Response::new(axum::body::Body::from(body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// The suite can fail: run against a service unlike the emulator, it
/// reports each difference, the JSON as the service sent it, and no token.
#[tokio::test]
async fn the_suite_reports_how_a_service_differs_from_the_emulator() {
    let (emu, base) = a_service_unlike_the_emulator().await;
    fill_out(&emu).await;
    let vars = lookup(&[
        (TOKEN_VAR, TOKEN),
        (LOCATION_VAR, LOCATION),
        (BASE_URL_VAR, &base),
    ]);
    let report = contract::run(vars).await.unwrap();
    let text = report.render();
    let found = |severity| -> Vec<String> {
        report
            .findings(severity)
            .iter()
            .map(|f| f.check.clone())
            .collect()
    };
    assert_eq!(
        found(Severity::Broken),
        [
            "pages of 3 leave no gaps or duplicates and carry the listing's count",
            "a public url downloads without the token and honours Range",
        ],
        "{text}"
    );
    assert_eq!(
        found(Severity::Differs),
        [
            "listed files have the shapes mediafs expects",
            "a public url downloads without the token and honours Range",
            "a listing without `type` gets 422 with `message` as an array",
        ],
        "{text}"
    );
    assert!(
        text.contains(r#""name":"jingle.mp3","parentId":null"#),
        "the JSON as sent: {text}"
    );
    assert!(
        text.contains("Bearer <token>") && !text.contains(TOKEN),
        "{text}"
    );
}

/// The setup findings of a run, and its text.
async fn setup_of(vars: impl Fn(&str) -> Option<String>) -> (Vec<String>, String) {
    let report = contract::run(vars).await.unwrap();
    let text = report.render();
    let differences =
        report.findings(Severity::Broken).len() + report.findings(Severity::Differs).len();
    assert_eq!(differences, 0, "a setup mistake is no difference: {text}");
    let setup = report.findings(Severity::Setup);
    (setup.iter().map(|f| f.detail.clone()).collect(), text)
}

/// A wrong token, another location's token, an address where nothing
/// answers, and writes asked of a read-only token are the setup's
/// mistakes: the report says so, and which `mediafs check` to run.
#[tokio::test]
async fn setup_mistakes_are_reported_as_the_setup_not_as_differences() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), true, Faults::default());
    config.tokens.push(mediafs::emulator::TokenGrant {
        token: "pit-read-only".into(),
        location: Some(LOCATION.into()),
        scopes: vec![mediafs::emulator::Scope::MediasReadonly],
    });
    let emu = TestEmulator {
        running: mediafs::emulator::start(config).await.unwrap(),
        dir,
    };
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // Each mistake: its name, the variables it sets, what the report says.
    type Mistake<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let mistakes: [Mistake; 4] = [
        ("wrong token", vec![(TOKEN_VAR, "pit-wrong")], "refused"),
        ("other location", vec![(TOKEN_VAR, OTHER_TOKEN)], "refused"),
        (
            "closed port",
            vec![(BASE_URL_VAR, &closed)],
            "got no answer",
        ),
        (
            "read-only token, writes asked",
            vec![(TOKEN_VAR, "pit-read-only"), (WRITE_VAR, "1")],
            "may lack medias.write",
        ),
    ];
    for (mistake, vars, says) in mistakes {
        let (setup, text) = setup_of(vars_for(&emu, &vars)).await;
        assert_eq!(setup.len(), 1, "{mistake}: {text}");
        assert!(setup[0].contains(says), "{mistake}: {text}");
        assert!(
            text.contains("because of its setup") && text.contains("mediafs check --location"),
            "{mistake}: {text}"
        );
        assert!(!text.contains("BREAKS MEDIAFS"), "{mistake}: {text}");
    }
}
