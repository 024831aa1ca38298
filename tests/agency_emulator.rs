//! The emulator's agency endpoints, read against the shapes of
//! `highlevel-oauth.openapi.json`: an agency token lists the locations its
//! app is installed on, page by page, and turns into a location token that
//! reaches that location's media library and no other; uninstalling the app
//! from a location drops it from the list and ends its tokens.

mod common;

use common::*;
use mediafs::emulator::{AgencyGrant, Faults};
use serde_json::Value;

const AGENCY_TOKEN: &str = "agency-token-1";
const COMPANY: &str = "CompanyAAAA1111";
const APP: &str = "app-mediafs";

async fn agency_emulator() -> TestEmulator {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), false, Faults::default());
    config.agencies = vec![AgencyGrant {
        token: AGENCY_TOKEN.into(),
        company: COMPANY.into(),
        app: APP.into(),
        installed: vec![LOCATION.into(), OTHER_LOCATION.into()],
    }];
    config.location_names = [
        (LOCATION.to_owned(), "Acme Dental".to_owned()),
        (OTHER_LOCATION.to_owned(), "Bright Smiles".to_owned()),
    ]
    .into();
    let running = mediafs::emulator::start(config).await.unwrap();
    TestEmulator { running, dir }
}

/// `GET /oauth/installedLocations?QUERY` with the agency token: its status and body.
async fn installed(emu: &TestEmulator, query: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/oauth/installedLocations?{query}",
            emu.base_url()
        ))
        .bearer_auth(AGENCY_TOKEN)
        .header("Version", "2021-07-28")
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn location_token(emu: &TestEmulator, company: &str, location: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}/oauth/locationToken", emu.base_url()))
        .bearer_auth(AGENCY_TOKEN)
        .header("Version", "2021-07-28")
        .form(&[("companyId", company), ("locationId", location)])
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// The status of a one-folder listing of `location` with `token`.
async fn lists(emu: &TestEmulator, token: &str, location: &str) -> u16 {
    reqwest::Client::new()
        .get(format!(
            "{}/medias/files?altType=location&altId={location}&type=folder&limit=1",
            emu.base_url()
        ))
        .bearer_auth(token)
        .header("Version", "2021-07-28")
        .header("User-Agent", "agency-test")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The app leaves `location`.
async fn uninstall(emu: &TestEmulator, location: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/uninstall", emu.base_url()))
        .json(&serde_json::json!({"company": COMPANY, "location": location}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
}

fn names(body: &Value) -> Vec<&str> {
    body["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn installed_locations_are_listed_by_name_and_paged() {
    let emu = agency_emulator().await;
    let base = format!("companyId={COMPANY}&appId={APP}");
    let (status, all) = installed(&emu, &base).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(names(&all), ["Acme Dental", "Bright Smiles"]);
    assert_eq!(all["count"], 2);
    assert_eq!(all["locations"][0]["_id"], LOCATION);
    let (_, second) = installed(&emu, &format!("{base}&skip=1&limit=1")).await;
    assert_eq!(names(&second), ["Bright Smiles"]);
    assert_eq!(
        second["count"], 2,
        "the count is of every match, not the page"
    );
    let (_, found) = installed(&emu, &format!("{base}&query=acme")).await;
    assert_eq!(names(&found), ["Acme Dental"]);

    let (status, body) = installed(&emu, &format!("companyId={COMPANY}")).await;
    assert_eq!(status, 422, "appId is required: {body}");
    assert!(body["message"].is_array());
    let (status, _) = installed(&emu, &format!("companyId=SomeoneElse&appId={APP}")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_location_token_reaches_its_location_only_until_the_app_is_uninstalled() {
    let emu = agency_emulator().await;
    let (status, body) = location_token(&emu, COMPANY, LOCATION).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locationId"], LOCATION);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_f64().unwrap() > 0.0);
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(lists(&emu, &token, LOCATION).await, 200);
    assert_eq!(lists(&emu, &token, OTHER_LOCATION).await, 401);
    assert_eq!(
        lists(&emu, AGENCY_TOKEN, LOCATION).await,
        401,
        "the agency token itself reaches no media library"
    );
    assert_eq!(location_token(&emu, "SomeoneElse", LOCATION).await.0, 401);
    assert_eq!(
        location_token(&emu, COMPANY, "LocNotInstalled").await.0,
        400
    );

    uninstall(&emu, LOCATION).await;
    assert_eq!(lists(&emu, &token, LOCATION).await, 401, "its token ended");
    let (_, left) = installed(&emu, &format!("companyId={COMPANY}&appId={APP}")).await;
    assert_eq!(names(&left), ["Bright Smiles"]);
    assert_eq!(location_token(&emu, COMPANY, LOCATION).await.0, 400);
}

#[tokio::test]
async fn the_agency_endpoints_want_the_version_header_and_a_known_token() {
    let emu = agency_emulator().await;
    let url = format!(
        "{}/oauth/installedLocations?companyId={COMPANY}&appId={APP}",
        emu.base_url()
    );
    let http = reqwest::Client::new();
    let no_version = http
        .get(&url)
        .bearer_auth(AGENCY_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let wrong = http
        .get(&url)
        .bearer_auth("not-an-agency-token")
        .header("Version", "2021-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

/// A client of `location` whose token comes from the agency's.
fn agency_client(emu: &TestEmulator, location: &str) -> mediafs::api::MediaClient {
    use mediafs::api::{AgencyLocation, ClientConfig, MediaClient, Secret, TokenSource};
    let token = TokenSource::from_agency(AgencyLocation {
        token_url: format!("{}/oauth/locationToken", emu.base_url()),
        company_id: COMPANY.into(),
        location_id: location.into(),
        agency: TokenSource::fixed(Secret::new(AGENCY_TOKEN)),
    });
    MediaClient::new(ClientConfig::new(emu.base_url(), location), token).unwrap()
}

/// The client gets each location's token from the agency's on first use;
/// when the app leaves a location, that location's requests fail with
/// words that say so, and the others' go on.
#[tokio::test]
async fn the_client_gets_location_tokens_from_the_agency_token() {
    let emu = agency_emulator().await;
    let acme = agency_client(&emu, LOCATION);
    let bright = agency_client(&emu, OTHER_LOCATION);
    acme.create_folder("Brand", None).await.unwrap();
    assert_eq!(acme.list_folder_tree().await.unwrap().len(), 1);
    assert!(bright.list_folder_tree().await.unwrap().is_empty());

    uninstall(&emu, LOCATION).await;
    let err = acme.list_folder_tree().await.unwrap_err();
    assert!(
        matches!(err, mediafs::api::ApiError::Unauthorized { .. })
            && err.to_string().contains("no longer be installed"),
        "{err}"
    );
    assert!(bright.list_folder_tree().await.unwrap().is_empty());
}
