//! An emulator of the HighLevel Media Storage API, quirks and limits
//! included, so that the demo, the tests and the benchmarks need no account.
//! API routes live in [`routes`], the public file URLs in [`files`], and what
//! stands in front of both (auth, rate limit, faults, stats) in [`gate`].
//! The service's rules are the emulator's own reading of its documentation
//! ([`rules`]), never the client's.

mod agency;
mod files;
mod gate;
mod oauth;
mod quota;
mod routes;
pub mod rules;
mod scopes;
mod seed;
pub mod store;
mod throttle;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use agency::AgencyGrant;
use gate::Stats;
pub use scopes::Scope;
use store::Store;
use throttle::Throttle;

/// A token the emulator accepts, for one location or for all of them,
/// with the scopes it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token: String,
    /// `None`: the token reaches every configured location.
    pub location: Option<String>,
    pub scopes: Vec<Scope>,
}

impl TokenGrant {
    /// A token with both media scopes, for one location or (`None`) all.
    pub fn new(token: impl Into<String>, location: Option<String>) -> Self {
        TokenGrant {
            token: token.into(),
            location,
            scopes: Scope::ALL.to_vec(),
        }
    }
}

impl std::str::FromStr for TokenGrant {
    type Err = String;

    /// `TOKEN` grants every location; `TOKEN:LOCATION` ties it to one;
    /// `TOKEN:LOCATION:SCOPE,...` gives its scopes (both media scopes
    /// otherwise; none when empty), with `*` as the location for all.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        let token = parts.next().unwrap_or_default();
        let location = parts.next().map(str::to_owned);
        let scopes = match parts.next() {
            Some(list) => scopes::parse_list(list)?,
            None => Scope::ALL.to_vec(),
        };
        if token.is_empty() || location.as_deref() == Some("") {
            return Err("expected TOKEN, TOKEN:LOCATION or TOKEN:LOCATION:SCOPE,...".into());
        }
        Ok(TokenGrant {
            token: token.to_owned(),
            location: location.filter(|l| l != "*"),
            scopes,
        })
    }
}

/// Failures and limits the emulator imposes; changeable while it runs
/// through `POST /_emulator/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every request, API or download.
    pub latency_ms: u64,
    /// Fraction of requests (0 to 1) that fail: a 500 or a dropped
    /// connection, some of them after the server has done the work.
    pub fail_rate: f64,
    /// Share (0 to 1) of the failures that strike after the work is done.
    pub fail_after_share: f64,
    /// Routes failures strike, as `"POST /medias/upload-file"`; empty: all.
    pub fail_routes: Vec<String>,
    /// API requests allowed per 10 s per app at a location, or per Private
    /// Integration token (429 past it); 0 turns it off.
    pub rate_limit: u32,
    /// How that limit counts: a fixed or a sliding window (the sources do
    /// not say; see [`rules::WindowKind`]).
    pub rate_window: rules::WindowKind,
    /// How the upload limits' "MB" is counted (the sources do not say; see
    /// [`rules::SizeUnit`]).
    pub size_unit: rules::SizeUnit,
    /// Cap on upload and download bytes per second, all transfers together.
    pub bandwidth: Option<u64>,
    /// Seeds the dice that decide which requests fail, so that a run with
    /// `fail_rate` can be replayed (exactly, for the same requests in the
    /// same order); `None`: a random seed, logged. Setting it reseeds.
    pub seed: Option<u64>,
    /// The most objects one `fetchAll` answer holds, its `count` still
    /// saying all: a service that caps such answers, which the sources
    /// neither promise nor rule out. `None`: no cap.
    pub fetch_all_max: Option<u64>,
    /// Requests a day allowed at a location (by id) where not the
    /// service's [`rules::DAILY_LIMIT`]: 0 stands for a day used up.
    pub daily_limits: HashMap<String, u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            fail_rate: 0.0,
            fail_after_share: 0.5,
            fail_routes: Vec::new(),
            rate_limit: rules::BURST_LIMIT,
            rate_window: rules::WindowKind::default(),
            size_unit: rules::SizeUnit::default(),
            bandwidth: None,
            seed: None,
            fetch_all_max: None,
            daily_limits: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tokens: Vec<TokenGrant>,
    pub locations: Vec<String>,
    /// Fill each empty location with a small demo library.
    pub seed_demo: bool,
    /// Fill each empty location with this many folders of this many small files.
    pub generate: Option<(usize, usize)>,
    /// Base of the public file URLs; by default `http://` and the listening address.
    pub public_url: Option<String>,
    pub faults: Faults,
    /// OAuth apps (client id, client secret) that may refresh tokens.
    pub oauth_clients: Vec<(String, String)>,
    /// Refresh tokens valid at start, each for one location.
    pub refresh_tokens: Vec<(String, String)>,
    /// Lifetime of the access tokens `/oauth/token` issues.
    pub access_token_ttl: std::time::Duration,
    /// Agency tokens, and the locations their app is installed on.
    pub agencies: Vec<AgencyGrant>,
    /// Names of locations (by id); a location without one is named by its id.
    pub location_names: HashMap<String, String>,
}

#[derive(Debug)]
struct AppState {
    store: Store,
    grants: Vec<TokenGrant>,
    locations: Vec<String>,
    public_base: String,
    faults: RwLock<Faults>,
    /// The dice of injected failures (see [`Faults::seed`]).
    dice: Mutex<rand::rngs::StdRng>,
    quotas: quota::Quotas,
    stats: Stats,
    throttle: Throttle,
    oauth_clients: Vec<(String, String)>,
    refresh_tokens: Mutex<HashMap<String, oauth::Holder>>,
    issued: Mutex<HashMap<String, oauth::Issued>>,
    /// Agency access tokens issued by `/oauth/token`: their company, and
    /// when they expire.
    agency_tokens: Mutex<HashMap<String, (String, std::time::Instant)>>,
    revoked: Mutex<std::collections::HashSet<String>>,
    access_token_ttl: std::time::Duration,
    agencies: Mutex<Vec<AgencyGrant>>,
    location_names: HashMap<String, String>,
    /// Fetches `fileUrl` for hosted uploads.
    http: reqwest::Client,
}

type SharedState = Arc<AppState>;

impl AppState {
    /// A location's name, or its id when it was given none.
    fn location_name(&self, id: &str) -> String {
        self.location_names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// The locations an agency's app is installed on now.
    fn installed_of(&self, company: &str) -> Vec<String> {
        self.agencies
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.company == company)
            .flat_map(|a| a.installed.clone())
            .collect()
    }
}

/// A running emulator; dropping it does not stop it, [`RunningEmulator::stop`] does.
#[derive(Debug)]
pub struct RunningEmulator {
    pub addr: SocketAddr,
    /// The API base URL to give clients.
    pub base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningEmulator {
    /// Stops accepting requests and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }

    /// Serves until the server fails or is stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the data dir: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot seed the demo library: {0}")]
    Seed(String),
    #[error("{0}")]
    Config(String),
}

/// Starts the emulator on `config.listen` (port 0 picks a free one).
/// Refuses a configuration no request could use.
fn check_config(config: &EmulatorConfig) -> Result<(), EmulatorError> {
    let no_tokens =
        config.tokens.is_empty() && config.refresh_tokens.is_empty() && config.agencies.is_empty();
    if no_tokens || config.locations.is_empty() {
        return Err(EmulatorError::Config(
            "give at least one --location, and a --token, a --refresh-token or an --agency".into(),
        ));
    }
    for grant in &config.tokens {
        if let Some(loc) = &grant.location {
            if !config.locations.contains(loc) {
                return Err(EmulatorError::Config(format!(
                    "a token is tied to location {loc}, which is not among the --location values"
                )));
            }
        }
    }
    Ok(())
}

/// Who each refresh token valid at start was issued to.
fn refresh_holders(
    locations: &[(String, String)],
    agencies: &[AgencyGrant],
) -> HashMap<String, oauth::Holder> {
    let of_locations = locations
        .iter()
        .map(|(token, location)| (token.clone(), oauth::Holder::Location(location.clone())));
    let of_agencies = agencies.iter().filter_map(|a| {
        let token = a.refresh_token.clone()?;
        Some((token, oauth::Holder::Company(a.company.clone())))
    });
    of_locations.chain(of_agencies).collect()
}

/// Fills each empty location as the configuration asks.
async fn seed(store: &Store, config: &EmulatorConfig) -> Result<(), EmulatorError> {
    for location in &config.locations {
        let seeded = match (config.seed_demo, config.generate) {
            (true, _) => seed::seed_demo(store, location).await,
            (false, Some((folders, files))) => {
                seed::generate(store, location, folders, files).await
            }
            (false, None) => Ok(()),
        };
        seeded.map_err(|e| EmulatorError::Seed(e.to_string()))?;
    }
    Ok(())
}

pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    check_config(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Listen {
            addr: config.listen,
            source,
        })?;
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), addr.port())
    } else {
        addr
    };
    let base_url = format!("http://{host}");
    let store = Store::open(&config.data_dir)?;
    seed(&store, &config).await?;
    let state = Arc::new(AppState {
        store,
        grants: config.tokens,
        locations: config.locations,
        public_base: config
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| base_url.clone()),
        throttle: Throttle::new(config.faults.bandwidth),
        dice: Mutex::new(gate::dice(&config.faults)),
        faults: RwLock::new(config.faults),
        quotas: quota::Quotas::default(),
        stats: Stats::default(),
        oauth_clients: config.oauth_clients,
        refresh_tokens: Mutex::new(refresh_holders(&config.refresh_tokens, &config.agencies)),
        issued: Mutex::new(HashMap::new()),
        agency_tokens: Mutex::new(HashMap::new()),
        revoked: Mutex::new(Default::default()),
        access_token_ttl: config.access_token_ttl,
        agencies: Mutex::new(config.agencies),
        location_names: config.location_names,
        // Hosted uploads fetch a URL a caller gave: follow no redirect it may lead to.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EmulatorError::Config(e.to_string()))?,
    });
    let app = router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Bodies stream after their headers: without TCP_NODELAY, Nagle and
        // the client's delayed ACK stall each answer on a reused connection by 40 ms.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    log::info!("emulator listening on {base_url}");
    Ok(RunningEmulator {
        addr,
        base_url,
        shutdown: Some(tx),
        task,
    })
}

fn router(state: SharedState) -> Router {
    let api = Router::new()
        .route("/medias/files", get(routes::list_files))
        .route("/medias/upload-file", post(routes::upload_file))
        .route("/medias/folder", post(routes::create_folder))
        .route("/medias/update-files", put(routes::update_many))
        .route("/medias/delete-files", put(routes::delete_many))
        .route(
            "/medias/{id}",
            post(routes::update_one).delete(routes::delete_one),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::api_gate,
        ))
        // Uploads are streamed to disk and size-checked there.
        .layer(DefaultBodyLimit::disable());
    let storage = Router::new()
        .route("/msgsndr/{location}/media/{file}", get(files::serve))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::download_gate,
        ));
    let control = Router::new()
        .route(
            "/_emulator/stats",
            get(gate::stats).delete(gate::reset_stats),
        )
        .route(
            "/_emulator/faults",
            get(gate::get_faults).post(gate::set_faults),
        )
        .route("/_emulator/objects", get(gate::objects))
        .route("/_emulator/revoke", post(oauth::revoke))
        .route("/_emulator/uninstall", post(agency::uninstall))
        .route("/_emulator/install", post(agency::install))
        .route("/oauth/token", post(oauth::token))
        .route(
            "/oauth/installedLocations",
            get(agency::installed_locations),
        )
        .route("/oauth/locationToken", post(agency::location_token));
    api.merge(storage).merge(control).with_state(state)
}
