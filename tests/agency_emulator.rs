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
    config.agencies = vec![AgencyGrant::new(
        AGENCY_TOKEN,
        COMPANY,
        APP,
        vec![LOCATION.into(), OTHER_LOCATION.into()],
    )];
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

/// The app is installed on `location` (again).
async fn install(emu: &TestEmulator, location: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/install", emu.base_url()))
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
    let base = format!("companyId={COMPANY}&appId={APP}");
    let (_, left) = installed(&emu, &format!("{base}&isInstalled=true")).await;
    assert_eq!(names(&left), ["Bright Smiles"]);
    let (_, all) = installed(&emu, &base).await;
    assert_eq!(names(&all), ["Bright Smiles", "Acme Dental"]);
    assert_eq!(all["locations"][1]["isInstalled"], false);
    assert_eq!(location_token(&emu, COMPANY, LOCATION).await.0, 400);
    install(&emu, LOCATION).await;
    assert_eq!(location_token(&emu, COMPANY, LOCATION).await.0, 200);
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

/// The client pages the installed locations (the service's pages may be
/// smaller than asked) and leaves out those the app left.
#[tokio::test]
async fn the_agency_client_lists_every_installed_location() {
    use mediafs::api::{AgencyClient, AgencyConfig, ClientConfig, Secret, TokenSource};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), false, Faults::default());
    let many: Vec<String> = (0..230).map(|i| format!("Loc{i:04}")).collect();
    config.locations.extend(many.iter().cloned());
    config.agencies = vec![AgencyGrant::new(AGENCY_TOKEN, COMPANY, APP, many.clone())];
    let emu = TestEmulator {
        running: mediafs::emulator::start(config).await.unwrap(),
        dir,
    };
    let agency = AgencyClient::new(
        AgencyConfig {
            company_id: COMPANY.into(),
            app_id: APP.into(),
            clients: ClientConfig::new(emu.base_url(), ""),
        },
        TokenSource::fixed(Secret::new(AGENCY_TOKEN)),
    )
    .unwrap();
    let listed = agency.installed_locations().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, many);
    assert_eq!(
        listed[7].name, "Loc0007",
        "a location without a name is named by its id"
    );
    uninstall(&emu, "Loc0100").await;
    let listed = agency.installed_locations().await.unwrap();
    assert_eq!(listed.len(), 229);
    assert!(listed.iter().all(|l| l.id != "Loc0100"));
}

/// An agency's own token is renewed with its refresh token
/// (`user_type=Company`); the renewed token lists the locations.
#[tokio::test]
async fn an_agency_token_is_refreshed_as_a_company_token() {
    use mediafs::api::token::{OAuthConfig, UserType};
    use mediafs::api::{AgencyClient, AgencyConfig, ClientConfig, Secret, TokenSource};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path(), false, Faults::default());
    let mut grant = AgencyGrant::new(AGENCY_TOKEN, COMPANY, APP, vec![LOCATION.into()]);
    grant.refresh_token = Some("rt-agency-1".into());
    config.agencies = vec![grant];
    config.oauth_clients = vec![("client-1".into(), "secret-1".into())];
    let emu = TestEmulator {
        running: mediafs::emulator::start(config).await.unwrap(),
        dir,
    };
    let refresh_file = emu.dir.path().join("agency-refresh-token");
    std::fs::write(&refresh_file, "rt-agency-1\n").unwrap();
    let oauth = OAuthConfig {
        token_url: format!("{}/oauth/token", emu.base_url()),
        client_id: "client-1".into(),
        client_secret: Secret::new("secret-1"),
        refresh_token_file: refresh_file.clone(),
        user_type: UserType::Company,
    };
    // Starts with a stale token: the first page is refused, then renewed.
    let token = TokenSource::oauth(oauth, Some(Secret::new("agency-expired")));
    let agency = AgencyClient::new(
        AgencyConfig {
            company_id: COMPANY.into(),
            app_id: APP.into(),
            clients: ClientConfig::new(emu.base_url(), ""),
        },
        token.clone(),
    )
    .unwrap();
    let listed = agency.installed_locations().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(token.refreshes(), 1);
    let saved = std::fs::read_to_string(&refresh_file).unwrap();
    assert!(
        saved.starts_with("rt-") && saved.trim() != "rt-agency-1",
        "{saved}"
    );
    // The new agency token gets location tokens too.
    let client = agency.location_client(LOCATION).unwrap();
    assert!(client.list_folder_tree().await.unwrap().is_empty());
}

/// A location that has used its day of requests is refused at once, with
/// words that say so and EDQUOT; another location of the same app goes on.
#[tokio::test]
async fn a_day_used_up_stops_one_location_only() {
    let emu = agency_emulator().await;
    let acme = agency_client(&emu, LOCATION);
    let bright = agency_client(&emu, OTHER_LOCATION);
    assert!(acme.list_folder_tree().await.is_ok());
    emu.set_faults(Faults {
        daily_limits: [(LOCATION.to_owned(), 0)].into(),
        ..Faults::default()
    })
    .await;
    let started = std::time::Instant::now();
    let err = acme.list_folder_tree().await.unwrap_err();
    assert!(
        matches!(err, mediafs::api::ApiError::DailyLimit { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(LOCATION), "{err}");
    assert_eq!(err.errno(), libc::EDQUOT);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "no retries are spent on a day used up"
    );
    assert!(bright.list_folder_tree().await.unwrap().is_empty());
}
