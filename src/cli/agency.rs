//! `mediafs mount MNT --agency COMPANY_ID` and `mediafs demo --agency MNT`:
//! one mount for all of an agency's sub-accounts (see `fs::agency`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::api::{AgencyClient, AgencyConfig, ApiError, TokenSource};
use crate::emulator::{self, AgencyGrant, EmulatorConfig, Faults};
use crate::fs::Agency as AgencyFs;

use super::mount::{self, MountOptions, Mounted, OnReady};
use super::out;

/// Which agency to mount, and where its service is.
pub struct Agency<'a> {
    pub base_url: &'a str,
    pub company: &'a str,
    pub app_id: &'a str,
}

/// The demo agency's sub-accounts: (id, name).
const DEMO_LOCATIONS: [(&str, &str); 3] = [
    ("demo-acme", "Acme Bakery"),
    ("demo-bluefin", "Blue Fin Surf School"),
    ("demo-cedar", "Cedar Dental"),
];
const DEMO_AGENCY_TOKEN: &str = "demo-agency-token";
const DEMO_COMPANY: &str = "demo-company";
const DEMO_APP: &str = "demo-app";

/// Explains why the agency's locations could not be listed.
fn listing_problem(e: &ApiError, agency: &Agency) -> String {
    let (company, app) = (agency.company, agency.app_id);
    match e {
        ApiError::Unauthorized { message } => format!(
            "the service refused to list the locations of agency {company}: {}. Check that the \
             token is the agency's (a Company token, with the oauth.readonly scope) and not \
             expired",
            message.trim_end_matches('.')
        ),
        ApiError::InvalidRequest { message, .. } => format!(
            "the service refused to list the locations of agency {company} for app {app}: \
             {message}. Check --agency and --app-id"
        ),
        ApiError::Network { message } => {
            format!("cannot reach the service at {}: {message}", agency.base_url)
        }
        other => format!("cannot list the locations of agency {company}: {other}"),
    }
}

pub async fn mount_agency(
    agency: Agency<'_>,
    token: TokenSource,
    mountpoint: &Path,
    opts: &MountOptions,
    on_ready: OnReady,
) -> Result<ExitCode, String> {
    mount::prepare(mountpoint, opts)?;
    let config = AgencyConfig {
        company_id: agency.company.to_owned(),
        app_id: agency.app_id.to_owned(),
        clients: mount::client_config(agency.base_url, "", opts),
    };
    let client = AgencyClient::new(config, token).map_err(|e| e.to_string())?;
    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| mount::default_cache_dir(&format!("agency-{}", agency.company)));
    let _one_mount_per_cache_dir = crate::cache_lock::lock(&cache_dir)?;
    let fs = AgencyFs::new(client, mount::fs_config(opts, cache_dir.clone()))
        .map_err(|e| format!("cannot prepare the cache dir {}: {e}", cache_dir.display()))?;
    let (listed, count) = fs.start().await.map_err(|e| listing_problem(&e, &agency))?;
    if count == 0 && listed > 0 {
        return Err(format!(
            "none of the {listed} locations of agency {} could be mounted: the errors above \
             say why",
            agency.company
        ));
    }
    if count == 0 {
        // Most often a wrong --app-id: an empty mount would hide it.
        return Err(format!(
            "the service lists no location of agency {} with the app {} installed: check \
             --app-id (the app whose installations are listed) and --agency, and that the app \
             is installed on the sub-accounts to mount",
            agency.company, agency.app_id
        ));
    }
    let mounted = Mounted {
        fsname: format!("mediafs:agency:{}", agency.company),
        what: format!("agency {} ({count} locations)", agency.company),
    };
    mount::serve_mount(Arc::new(fs), mountpoint, opts, mounted, on_ready).await
}

/// The emulator for `mediafs demo --agency`: three sub-accounts, each with
/// the demo library, and an agency whose app is installed on all three.
fn demo_emulator(data_dir: &Path) -> EmulatorConfig {
    let ids: Vec<String> = DEMO_LOCATIONS
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    EmulatorConfig {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        data_dir: data_dir.to_path_buf(),
        tokens: Vec::new(),
        locations: ids.clone(),
        seed_demo: true,
        generate: None,
        public_url: None,
        oauth_clients: Vec::new(),
        refresh_tokens: Vec::new(),
        access_token_ttl: std::time::Duration::from_secs(86399),
        agencies: vec![AgencyGrant::new(
            DEMO_AGENCY_TOKEN,
            DEMO_COMPANY,
            DEMO_APP,
            ids,
        )],
        location_names: DEMO_LOCATIONS
            .iter()
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect(),
        faults: Faults::default(),
    }
}

/// `mediafs demo --agency`: the demo agency, mounted.
pub async fn run_demo(
    mountpoint: &Path,
    data_dir: &Path,
    opts: MountOptions,
    on_ready: OnReady,
) -> Result<ExitCode, String> {
    let emulator = emulator::start(demo_emulator(data_dir))
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))?;
    out::note(format_args!(
        "mediafs demo: emulator with an agency of three sub-accounts at {} (agency \
         {DEMO_COMPANY}, app {DEMO_APP}, agency token {DEMO_AGENCY_TOKEN}: other tools reach \
         it with MEDIAFS_TOKEN={DEMO_AGENCY_TOKEN} and --base-url {} --agency {DEMO_COMPANY} \
         --app-id {DEMO_APP})",
        emulator.base_url, emulator.base_url
    ));
    let agency = Agency {
        base_url: &emulator.base_url,
        company: DEMO_COMPANY,
        app_id: DEMO_APP,
    };
    let token = TokenSource::fixed(crate::api::Secret::new(DEMO_AGENCY_TOKEN));
    let result = mount_agency(agency, token, mountpoint, &opts, on_ready).await;
    emulator.stop().await;
    result
}
