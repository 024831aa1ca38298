use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::emulator::rules::{SizeUnit, WindowKind};
use crate::emulator::{self, AgencyGrant, EmulatorConfig, Faults, TokenGrant};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Seed {
    /// A few folders with real PNG and JPEG images, a PDF, a short MP4 and an MP3.
    Demo,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Where objects and their bytes are kept; they survive restarts.
    #[arg(long)]
    data_dir: PathBuf,
    /// A token to accept: TOKEN reaches every --location, TOKEN:LOCATION only that one,
    /// TOKEN:LOCATION:SCOPE,... carries only those scopes (medias.readonly, medias.write;
    /// both otherwise; LOCATION `*` for every location). Repeatable.
    #[arg(long = "token")]
    tokens: Vec<TokenGrant>,
    /// An OAuth app allowed to refresh tokens at /oauth/token, as CLIENT_ID:CLIENT_SECRET. Repeatable.
    #[arg(long = "oauth-client", value_parser = pair)]
    oauth_clients: Vec<(String, String)>,
    /// A refresh token valid at start, as REFRESH_TOKEN:LOCATION. Each works once. Repeatable.
    #[arg(long = "refresh-token", value_parser = pair)]
    refresh_tokens: Vec<(String, String)>,
    /// Seconds an access token from /oauth/token stays valid.
    #[arg(long, default_value_t = 86399.0)]
    access_token_ttl: f64,
    /// A location id to serve. Repeatable.
    #[arg(long = "location", required = true)]
    locations: Vec<String>,
    /// A location's name, as LOCATION=NAME (otherwise its id). Repeatable.
    #[arg(long = "location-name", value_name = "LOCATION=NAME", value_parser = named)]
    location_names: Vec<(String, String)>,
    /// An agency (Company) token whose app is installed on every --location,
    /// as TOKEN:COMPANY_ID:APP_ID: /oauth/installedLocations lists them and
    /// /oauth/locationToken gives a token for each. Repeatable.
    #[arg(long = "agency", value_name = "TOKEN:COMPANY:APP", value_parser = agency)]
    agencies: Vec<(String, String, String)>,
    /// An agency's refresh token valid at start (for /oauth/token with
    /// user_type=Company and an --oauth-client), as REFRESH_TOKEN:COMPANY.
    #[arg(long = "agency-refresh-token", value_name = "REFRESH_TOKEN:COMPANY", value_parser = pair)]
    agency_refresh_tokens: Vec<(String, String)>,
    /// Fill each empty location with a sample library.
    #[arg(long, value_enum)]
    seed: Option<Seed>,
    /// Delay added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of requests (0 to 1) that fail with a 500 or a dropped connection.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Seeds which requests fail, so that a failing run can be replayed
    /// (for the same requests in the same order) [default: random, logged].
    #[arg(long)]
    fault_seed: Option<u64>,
    /// API requests allowed per token per 10 seconds, as the real service; 0 turns the limit off.
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    /// How that limit counts, which the service's docs leave open.
    #[arg(long, value_enum, default_value_t = WindowKind::default())]
    rate_window: WindowKind,
    /// How the upload limits' "MB" (25 MB per file, 500 MB per video) is
    /// counted, which the service's docs leave open. Past the limit the
    /// answer is a 413, sent at once while the client is still sending.
    #[arg(long, value_enum, default_value_t = SizeUnit::default())]
    size_unit: SizeUnit,
    /// Cap on transfer bytes per second, all transfers together.
    #[arg(long)]
    bandwidth: Option<u64>,
    /// The most objects one fetchAll listing answers (its count still says
    /// all), as a service that caps such answers would [default: no cap].
    #[arg(long)]
    fetch_all_max: Option<u64>,
    /// Fill each empty location with a generated library of FOLDERS
    /// folders of FILES small PNG files each (for scale tests and benchmarks).
    #[arg(long, value_name = "FOLDERSxFILES", value_parser = folders_by_files)]
    generate: Option<(usize, usize)>,
    /// Base of the public file URLs, when clients reach the emulator by another address.
    #[arg(long, value_parser = super::http_url)]
    public_url: Option<String>,
}

fn folders_by_files(s: &str) -> Result<(usize, usize), String> {
    let bad = || "expected FOLDERSxFILES, as 400x10".to_owned();
    let (folders, files) = s.split_once('x').ok_or_else(bad)?;
    Ok((
        folders.parse().map_err(|_| bad())?,
        files.parse().map_err(|_| bad())?,
    ))
}

fn named(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, name)) if !id.is_empty() && !name.is_empty() => Ok((id.into(), name.into())),
        _ => Err(format!("{s:?} is not LOCATION=NAME")),
    }
}

fn agency(s: &str) -> Result<(String, String, String), String> {
    match s.split(':').collect::<Vec<_>>()[..] {
        [token, company, app] if ![token, company, app].contains(&"") => {
            Ok((token.into(), company.into(), app.into()))
        }
        _ => Err(format!("{s:?} is not TOKEN:COMPANY_ID:APP_ID")),
    }
}

fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_owned(), b.to_owned())),
        _ => Err("expected two values joined by a colon".into()),
    }
}

pub async fn run(args: EmulatorArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(format!(
            "--fail-rate must be between 0 and 1, not {}",
            args.fail_rate
        ));
    }
    let config = EmulatorConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        tokens: args.tokens,
        locations: args.locations.clone(),
        seed_demo: matches!(args.seed, Some(Seed::Demo)),
        generate: args.generate,
        public_url: args.public_url,
        faults: Faults {
            latency_ms: args.latency_ms,
            fail_rate: args.fail_rate,
            rate_limit: args.rate_limit,
            rate_window: args.rate_window,
            size_unit: args.size_unit,
            bandwidth: args.bandwidth,
            seed: args.fault_seed,
            fetch_all_max: args.fetch_all_max,
            ..Faults::default()
        },
        oauth_clients: args.oauth_clients,
        refresh_tokens: args.refresh_tokens,
        access_token_ttl: std::time::Duration::from_secs_f64(args.access_token_ttl),
        agencies: args
            .agencies
            .into_iter()
            .map(|(token, company, app)| {
                let mut grant = AgencyGrant::new(&token, &company, &app, args.locations.clone());
                grant.refresh_token = args
                    .agency_refresh_tokens
                    .iter()
                    .find(|(_, c)| *c == company)
                    .map(|(t, _)| t.clone());
                grant
            })
            .collect(),
        location_names: args.location_names.into_iter().collect(),
    };
    let first_location = config.locations[0].clone();
    let running = emulator::start(config).await.map_err(|e| e.to_string())?;
    super::out::note(format_args!(
        "mediafs emulator: serving the HighLevel Media API at {}",
        running.base_url
    ));
    super::out::note(format_args!(
        "  list the root: curl -H 'Authorization: Bearer <token>' -H 'Version: 2021-07-28' \
         '{}/medias/files?altType=location&altId={first_location}&type=folder'",
        running.base_url
    ));
    tokio::select! {
        result = running.wait() => result.map_err(|e| format!("emulator stopped: {e}")),
        _ = super::stop_requested() => {
            log::info!("emulator: stopping");
            Ok(())
        }
    }
}
