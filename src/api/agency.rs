//! An agency's side of the service: the sub-accounts (locations) its app is
//! installed on, from `GET /oauth/installedLocations`, and a media client
//! for each, whose token is got with the agency's from
//! `POST /oauth/locationToken` (see [`TokenSource::from_agency`]).

use std::time::Duration;

use serde::Deserialize;

use super::client::API_VERSION;
use super::error::{ApiError, ApiResult};
use super::token::{AgencyLocation, TokenSource};
use super::{ClientConfig, MediaClient};

/// Locations asked for per page. The spec's default is 20 and it names no
/// maximum; a service that answers fewer is paged on by what it answered.
const PAGE: usize = 100;
/// Tries of a listing page that failed on the way (a 5xx, a network error).
const TRIES: u32 = 3;

/// Who the agency is, and how the clients of its locations are set up.
#[derive(Debug, Clone)]
pub struct AgencyConfig {
    pub company_id: String,
    /// The marketplace app whose installations are listed.
    pub app_id: String,
    /// For each location's client: its base URL, rate limit and the rest;
    /// the location id is each one's own.
    pub clients: ClientConfig,
}

/// A location the agency's app is installed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledLocation {
    pub id: String,
    /// Its name in HighLevel (the id when it has none).
    pub name: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    locations: Vec<Listed>,
    #[serde(default)]
    count: Option<f64>,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "isInstalled", default)]
    is_installed: Option<bool>,
}

#[derive(Debug)]
pub struct AgencyClient {
    http: reqwest::Client,
    config: AgencyConfig,
    /// The agency's own (Company) token.
    token: TokenSource,
}

impl AgencyClient {
    pub fn new(config: AgencyConfig, token: TokenSource) -> ApiResult<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mediafs/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.clients.request_timeout)
            .build()
            .map_err(|e| ApiError::Network {
                message: e.to_string(),
            })?;
        Ok(AgencyClient {
            http,
            config,
            token,
        })
    }

    pub fn config(&self) -> &AgencyConfig {
        &self.config
    }

    /// Every location the app is installed on, page by page.
    pub async fn installed_locations(&self) -> ApiResult<Vec<InstalledLocation>> {
        let mut found = Vec::new();
        let mut skip = 0;
        loop {
            let page = self.page_with_retries(skip).await?;
            let listed = page.locations.len();
            // A service that ignored `skip` would answer the same page forever.
            let repeats = page
                .locations
                .first()
                .is_some_and(|l| found.iter().any(|f: &InstalledLocation| f.id == l.id));
            if repeats {
                return Ok(found);
            }
            found.extend(
                page.locations
                    .into_iter()
                    // Asked for the installed ones only; a service that
                    // lists the others too says so of each.
                    .filter(|l| l.is_installed != Some(false))
                    .map(|l| InstalledLocation {
                        name: l
                            .name
                            .filter(|n| !n.trim().is_empty())
                            .unwrap_or(l.id.clone()),
                        id: l.id,
                    }),
            );
            skip += listed;
            let counted = page.count.map_or(usize::MAX, |c| c.max(0.0) as usize);
            if listed == 0 || skip >= counted {
                return Ok(found);
            }
        }
    }

    async fn page_with_retries(&self, skip: usize) -> ApiResult<Page> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.page(skip).await {
                Err(e) if e.is_transient() && tries < TRIES => {
                    let wait = Duration::from_millis(500 * u64::from(tries));
                    log::warn!("listing the agency's locations: {e}; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                done => return done,
            }
        }
    }

    /// One page; a refused token is renewed once and the page asked again.
    async fn page(&self, skip: usize) -> ApiResult<Page> {
        let (token, generation) = self.token.access_token(&self.http).await?;
        match self.ask_page(skip, token.expose()).await {
            Err(ApiError::Unauthorized { .. })
                if self.token.refresh(&self.http, generation).await? =>
            {
                let (token, _) = self.token.access_token(&self.http).await?;
                self.ask_page(skip, token.expose()).await
            }
            answer => answer,
        }
    }

    async fn ask_page(&self, skip: usize, token: &str) -> ApiResult<Page> {
        let network = |e: reqwest::Error| ApiError::Network {
            message: format!("listing the agency's locations: {e}"),
        };
        let (skip, limit) = (skip.to_string(), PAGE.to_string());
        let query = [
            ("companyId", self.config.company_id.as_str()),
            ("appId", self.config.app_id.as_str()),
            ("isInstalled", "true"),
            ("skip", &skip),
            ("limit", &limit),
        ];
        let answer = self
            .http
            .get(format!(
                "{}/oauth/installedLocations",
                self.config.clients.base_url
            ))
            .bearer_auth(token)
            .header("Version", API_VERSION)
            .query(&query)
            .send()
            .await
            .map_err(network)?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(network)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(ApiError::from_status(status.as_u16(), &text, None));
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Server {
            status: status.as_u16(),
            message: format!("the list of the agency's locations is not as expected: {e}"),
        })
    }

    /// A client of one of the agency's locations.
    pub fn location_client(&self, location_id: &str) -> ApiResult<MediaClient> {
        let mut config = self.config.clients.clone();
        config.location_id = location_id.to_owned();
        let token = TokenSource::from_agency(AgencyLocation {
            token_url: format!("{}/oauth/locationToken", config.base_url),
            company_id: self.config.company_id.clone(),
            location_id: location_id.to_owned(),
            agency: self.token.clone(),
        });
        MediaClient::new(config, token)
    }
}
