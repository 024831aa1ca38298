//! The API client's contract with the service, as a suite that runs against
//! any location: the user's own, when the `MEDIAFS_LIVE_*` variables name
//! one, and on every run an emulator a test starts, through the same entry
//! point ([`run`]), so the live path cannot rot unnoticed.
//!
//! Nobody here can reach the service, so the emulator is our reading of
//! it. The suite checks what mediafs relies on, and whatever else the
//! emulator does that a live run can observe cheaply; every check passes
//! against the emulator, so a live run's findings are exactly how the
//! service differs from it. It reads by default ([`reads`]) and writes only
//! behind `MEDIAFS_LIVE_WRITE=1`, in a scratch folder it trashes
//! ([`writes`]); it keeps under the service's rate limit and to a few dozen
//! requests.

pub mod probe;
pub mod reads;
pub mod report;
pub mod writes;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use mediafs::api::client::DEFAULT_BASE_URL;
use mediafs::api::{ClientConfig, MediaClient, Secret, TokenSource};

use probe::{Answer, Probe};
use report::{Check, Report};

pub const TOKEN_VAR: &str = "MEDIAFS_LIVE_TOKEN";
pub const LOCATION_VAR: &str = "MEDIAFS_LIVE_LOCATION";
pub const BASE_URL_VAR: &str = "MEDIAFS_LIVE_BASE_URL";
pub const WRITE_VAR: &str = "MEDIAFS_LIVE_WRITE";
pub const RATE_LIMIT_VAR: &str = "MEDIAFS_LIVE_RATE_LIMIT";
/// Requests per 10 s the service allows an app on a location (trial accounts: 25).
pub const DEFAULT_RATE_LIMIT: usize = 100;

/// Where the suite runs and what it may do there.
#[derive(Debug, Clone)]
pub struct Target {
    pub base_url: String,
    pub location: String,
    pub token: Secret,
    /// Whether the write checks run (in a scratch folder they trash).
    pub write: bool,
    /// Requests per 10 s the suite keeps to, all of its own together.
    pub rate_limit: usize,
}

impl Target {
    /// The target the variables name, each looked up by `var`; `None` when
    /// neither the token nor the location is set.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Target>, String> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (token, location) = match (get(TOKEN_VAR), get(LOCATION_VAR)) {
            (None, None) => return Ok(None),
            (Some(token), Some(location)) => (token, location),
            (None, Some(_)) => return Err(format!("{LOCATION_VAR} is set but {TOKEN_VAR} is not: set both to run the contract suite against your location")),
            (Some(_), None) => return Err(format!("{TOKEN_VAR} is set but {LOCATION_VAR} is not: set both to run the contract suite against your location")),
        };
        let write = match get(WRITE_VAR).as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(format!("{WRITE_VAR} is {other:?}: set it to 1 to let the suite write (in a scratch folder it trashes), or leave it unset")),
        };
        let rate_limit = match get(RATE_LIMIT_VAR) {
            None => DEFAULT_RATE_LIMIT,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (2..=DEFAULT_RATE_LIMIT).contains(n))
                .ok_or_else(|| format!("{RATE_LIMIT_VAR} is {v:?}: give the requests per 10 s your account allows, from 2 to 100 (trial accounts get 25)"))?,
        };
        let base_url = get(BASE_URL_VAR).unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        Ok(Some(Target {
            base_url: base_url.trim_end_matches('/').to_owned(),
            location,
            token: Secret::new(token),
            write,
            rate_limit,
        }))
    }

    fn describe(&self) -> String {
        let mode = if self.write {
            "reading, and writing in a scratch folder"
        } else {
            "read-only"
        };
        format!(
            "{}, location {} ({mode}, at most {} requests per 10 s)",
            self.base_url, self.location, self.rate_limit
        )
    }

    /// The `mediafs check` that looks at the same token, location and
    /// address (`--read-only` unless writes were asked for).
    fn check_command(&self) -> String {
        let read_only = if self.write { "" } else { " --read-only" };
        format!(
            "mediafs check --location {} --base-url {}{read_only}",
            self.location, self.base_url
        )
    }
}

/// What the checks work with: the target, plain requests, and the client under test.
#[derive(Debug)]
pub struct Ctx {
    pub target: Target,
    pub probe: Probe,
    pub client: MediaClient,
    /// Requests per window the suite keeps to, the probe and the client together.
    pub limit: (usize, Duration),
}

impl Ctx {
    /// Asks the service once (the token check, answered with the first
    /// answer), then splits the rate limit, lowered to what the service
    /// announces, between the plain requests and the client under test.
    pub async fn connect(target: Target) -> (Ctx, Result<Answer, String>) {
        let probe = Probe::new(&target, target.rate_limit / 2);
        let first = probe.list(&[("type", "folder"), ("limit", "1")]).await;
        let announced = first
            .as_ref()
            .ok()
            .and_then(|a| a.number_header("x-ratelimit-max"));
        let window = first
            .as_ref()
            .ok()
            .and_then(|a| a.number_header("x-ratelimit-interval-milliseconds"))
            .map_or(probe::DEFAULT_WINDOW, Duration::from_millis);
        let limit = announced.map_or(target.rate_limit, |max| {
            target.rate_limit.min(max.max(2) as usize)
        });
        let client_share = limit / 2;
        probe.limit_to(limit - client_share, window);
        let mut config = ClientConfig::new(&target.base_url, &target.location);
        config.rate_limit = Some((client_share, window));
        let client = MediaClient::new(config, TokenSource::fixed(target.token.clone()))
            .expect("the client under test builds");
        let ctx = Ctx {
            target,
            probe,
            client,
            limit: (limit, window),
        };
        (ctx, first)
    }
}

/// Runs the suite against the target the variables name (looked up by
/// `var`): `None` when they name none. Panics on variables it cannot use.
pub async fn run(var: impl Fn(&str) -> Option<String>) -> Option<Report> {
    let target = match Target::from_vars(var) {
        Ok(target) => target?,
        Err(problem) => panic!("{problem}"),
    };
    let mut report = Report::new(
        target.describe(),
        target.check_command(),
        target.token.expose(),
    );
    let (ctx, first) = Ctx::connect(target).await;
    report.note(format!(
        "the suite kept to {} requests per {:?}, half of them for the client under test",
        ctx.limit.0, ctx.limit.1
    ));
    let daily_before = first
        .as_ref()
        .ok()
        .and_then(|a| a.number_header("x-ratelimit-daily-remaining"));
    let checks = AssertUnwindSafe(all_checks(&ctx, first, &mut report)).catch_unwind();
    if let Err(panic) = checks.await {
        // What the checks found before one panicked is worth seeing too.
        report.print();
        std::panic::resume_unwind(panic);
    }
    note_cost(&ctx, daily_before, &mut report).await;
    Some(report)
}

async fn all_checks(ctx: &Ctx, first: Result<Answer, String>, report: &mut Report) {
    let reached = reads::run(ctx, first, report).await;
    if ctx.target.write && reached {
        writes::run(ctx, report).await;
    } else if !ctx.target.write {
        report.skipped(
            "the write checks",
            format!("{WRITE_VAR} is not 1, so nothing was written"),
        );
    }
}

/// Whether the suite kept under the rate limit, and what the run cost by
/// the service's own daily counter when it has one.
async fn note_cost(ctx: &Ctx, daily_before: Option<u64>, report: &mut Report) {
    use std::sync::atomic::Ordering::Relaxed;
    let last = ctx.probe.list(&[("type", "folder"), ("limit", "1")]).await;
    let mut check = Check::new("the suite keeps under the rate limit (no 429)");
    let (sent, refused) = (
        ctx.probe.sent.load(Relaxed),
        ctx.probe.refused.load(Relaxed),
    );
    if refused > 0 {
        check.differs(format!(
            "{refused} of the suite's {sent} plain requests were refused with 429, though the suite and the client together kept to {} per {:?}",
            ctx.limit.0, ctx.limit.1
        ));
    }
    check.looked_at(format!("{sent} plain requests, besides the client's"));
    report.add(check);
    let daily_after = last
        .ok()
        .and_then(|a| a.number_header("x-ratelimit-daily-remaining"));
    if let (Some(before), Some(after)) = (daily_before, daily_after) {
        report.note(format!(
            "the service's count of requests left today fell by {} over the run (from {before} to {after})",
            before.saturating_sub(after)
        ));
    }
}

/// Says, where `cargo test` shows it, that no live location was tested and how to test one.
pub fn say_skipped() {
    report::say(&format!(
        "\nmediafs live contract suite SKIPPED: {TOKEN_VAR} and {LOCATION_VAR} are not set, \
         so no live location was tested (the suite ran against the emulator only).\n\
         To run it against your own location (read-only unless {WRITE_VAR}=1):\n  \
         {TOKEN_VAR}=<token> {LOCATION_VAR}=<location id> cargo test --release --test live -- live_location\n\
         See \"Testing against your own location\" in README.md.\n\n"
    ));
}
