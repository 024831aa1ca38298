//! `mediafs check`: before any mount, a few read-only questions to the
//! service, so that a new user learns whether a mount will work and, if
//! not, what to do: the token, the location, the two scopes, the rate
//! limit the service announces, the public file URLs and the round trip.
//! It changes nothing: write access shows in how the service refuses a
//! delete of an id no object can have. Each question is asked once, with
//! no retry, so that the report says what the service answered.

mod answers;
mod report;
mod token_kind;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::api::models::ListResponse;
use crate::api::{
    ApiError, ApiResult, ByteRange, ClientConfig, ListQuery, MediaClient, MediaObject, ObjectKind,
    RawAnswer, TokenSource,
};

use super::mount::{token_source, ServiceArgs};
use super::out;
use answers::{judge_limits, limits_of, message_of, not_the_api, refusal_of, Limits, Refusal};
use report::{spoken, tally, Item, Report, Verdict};

/// Said by `mediafs check --help`, and in README.
pub const EXIT_CODES: &str = "Exit codes:
  0  a mount will work (a warning says what would make it work better)
  1  a mount would fail: a line says failed, and what to do
  2  the command line is wrong";

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// The mount will be read-only: a token without medias.write is enough, and
    /// nothing but reads is sent.
    #[arg(long)]
    read_only: bool,
    /// The --rate-limit the mount will use, to compare with the service's own.
    #[arg(long, default_value_t = 100)]
    rate_limit: usize,
}

/// An object id no object can have: an ObjectId begins with the second it
/// was made, and the service makes its ids now, not at the start of 1970.
const NO_SUCH_ID: &str = "000000000000000000000000";

/// API calls timed, at least, for the round trip.
const TIMED_CALLS: usize = 3;

/// A round trip past this makes every listing slow enough to notice.
const SLOW_ROUND_TRIP: Duration = Duration::from_secs(1);

pub async fn run(args: CheckArgs) -> Result<ExitCode, String> {
    if args.service.agency.is_some() {
        return Err(
            "mediafs check checks one location: give --location and that location's token \
             (an agency mount lists its locations when it starts, and says if it cannot)"
                .into(),
        );
    }
    let token = match token_source(&args.service) {
        Ok(token) => token,
        Err(message) => {
            let mut report = Report::default();
            report.set(Item::Token, Verdict::Failed, message);
            return print(&args, &report, "Made no API call");
        }
    };
    let mut checker = Checker::new(args, token)?;
    checker.run().await;
    let refreshes = checker.token.refreshes() + u64::from(checker.refresh_failed);
    let made = tally(checker.api_calls, checker.downloads, refreshes);
    print(&checker.args, &checker.report, &made)
}

fn print(args: &CheckArgs, report: &Report, made: &str) -> Result<ExitCode, String> {
    let service = &args.service;
    let mut lines = vec![format!(
        "mediafs check: location {} at {}",
        service.location(),
        service.base_url
    )];
    lines.extend(report.lines());
    lines.push(format!("{made}; nothing in the library was changed."));
    lines.push(conclusion(report, args.read_only).to_owned());
    for line in lines {
        if !out::line(line)? {
            break;
        }
    }
    Ok(if report.worst() == Verdict::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn conclusion(report: &Report, read_only: bool) -> &'static str {
    match report.worst() {
        Verdict::Failed => "A mount would fail: the failed lines say what to do.",
        _ if report.count(Verdict::Warning) > 0 => {
            "A mount will work; the warnings say what would make it work better."
        }
        _ if read_only => "A read-only mount will work.",
        _ => "A mount will work.",
    }
}

/// What the first listing said.
enum Listing {
    Listed(ListResponse),
    /// Refused for the missing `medias.readonly`: the write check may still tell the rest.
    NoReadScope,
    /// A failure that leaves nothing else to ask.
    Stopped,
}

struct Checker {
    args: CheckArgs,
    client: Arc<MediaClient>,
    token: TokenSource,
    report: Report,
    api_calls: u32,
    downloads: u32,
    /// The OAuth refresh that was to get the first token failed.
    refresh_failed: bool,
    round_trips: Vec<Duration>,
    /// The latest the service announced.
    limits: Option<Limits>,
    /// The service's reason, when it refused the token itself.
    token_refused: Option<String>,
    /// The service took the token (whatever it then refused it for).
    token_accepted: bool,
}

impl Checker {
    fn new(args: CheckArgs, token: TokenSource) -> Result<Checker, String> {
        let mut config = ClientConfig::new(&args.service.base_url, args.service.location());
        config.rate_limit = None;
        config.max_retries = 0;
        config.request_timeout = Duration::from_secs(30);
        let client = MediaClient::new(config, token.clone()).map_err(|e| e.to_string())?;
        Ok(Checker {
            args,
            client: Arc::new(client),
            token,
            report: Report::default(),
            api_calls: 0,
            downloads: 0,
            refresh_failed: false,
            round_trips: Vec::new(),
            limits: None,
            token_refused: None,
            token_accepted: false,
        })
    }

    fn location(&self) -> String {
        self.args.service.location().to_owned()
    }

    fn set(&mut self, item: Item, verdict: Verdict, says: impl Into<String>) {
        self.report.set(item, verdict, says);
    }

    async fn run(&mut self) {
        if self.first_token().await {
            let listing = self.check_read().await;
            if self.args.read_only {
                let says = "not checked: with --read-only nothing but reads is sent, and a \
                            read-only mount needs no medias.write";
                self.set(Item::Write, Verdict::Note, says);
            } else if !matches!(listing, Listing::Stopped) {
                self.check_write(matches!(listing, Listing::NoReadScope))
                    .await;
            }
            match listing {
                Listing::Listed(root_files) => {
                    self.check_file_urls(root_files).await;
                    self.time_more_calls().await;
                }
                Listing::NoReadScope => self.set(
                    Item::FileUrls,
                    Verdict::Skipped,
                    "not tried: without medias.readonly there is no listing to take a file from",
                ),
                Listing::Stopped => {}
            }
            self.describe_token().await;
        }
        self.report_rate_limit();
        self.report_round_trips();
    }

    /// Gets the access token (an OAuth setup refreshes one here).
    async fn first_token(&mut self) -> bool {
        let Err(e) = self.client.current_token().await else {
            return true;
        };
        self.refresh_failed = self.token.can_refresh();
        let advice = match &e {
            ApiError::Network { .. } => format!(
                "; check --base-url ({}) and the network",
                self.args.service.base_url
            ),
            _ => String::new(),
        };
        self.set(
            Item::Token,
            Verdict::Failed,
            format!("could not get an access token: {e}{advice}"),
        );
        false
    }

    /// Sends one question; counts it, times it and keeps its rate limits.
    async fn ask(
        &mut self,
        question: impl std::future::Future<Output = ApiResult<RawAnswer>>,
    ) -> ApiResult<RawAnswer> {
        let result = question.await;
        match &result {
            Ok(answer) => {
                self.api_calls += answer.requests;
                self.round_trips.push(answer.round_trip);
                if let Some(limits) = limits_of(&answer.headers) {
                    self.limits = Some(limits);
                }
            }
            // The request was sent, or tried: it counts.
            Err(_) => self.api_calls += 1,
        }
        result
    }

    /// A one-object listing of the root: the service, the token, the
    /// location and `medias.readonly` at once.
    async fn check_read(&mut self) -> Listing {
        let query = ListQuery::children(ObjectKind::File, None, 1);
        let base_url = self.args.service.base_url.clone();
        let client = self.client.clone();
        let answer = match self.ask(client.probe_list(&query)).await {
            Ok(answer) => answer,
            Err(e) => {
                let says = format!(
                    "cannot reach the service at {base_url}: {e}; check --base-url and the \
                     network (a proxy, a firewall)"
                );
                self.set(Item::Service, Verdict::Failed, says);
                return Listing::Stopped;
            }
        };
        if let Some(why) = not_the_api(&answer) {
            self.set(Item::Service, Verdict::Failed, format!("{base_url} {why}"));
            return Listing::Stopped;
        }
        // Whatever answers 200 to every path (a web server, a proxy's page)
        // is not the API until its listing reads as one.
        let listed = if answer.status.is_success() {
            match serde_json::from_slice::<ListResponse>(&answer.body) {
                Ok(list) => Some(list),
                Err(e) => {
                    let says = format!(
                        "{base_url} answered a listing, but not as the media API does ({e}); check --base-url"
                    );
                    self.set(Item::Service, Verdict::Failed, says);
                    return Listing::Stopped;
                }
            }
        } else {
            None
        };
        self.set(
            Item::Service,
            Verdict::Ok,
            format!("answered at {base_url}"),
        );
        match listed {
            Some(list) => self.listed(list),
            None => self.refused(answer),
        }
    }

    /// A listing the service refused: what it says about the token.
    fn refused(&mut self, answer: RawAnswer) -> Listing {
        let status = answer.status.as_u16();
        let message = message_of(&answer);
        let location = self.location();
        // Refused for its scope or its location, or not refused: the token itself is good.
        self.token_accepted = match status {
            401 => !matches!(refusal_of(&message), Refusal::Token),
            _ => matches!(status, 403 | 404),
        };
        let (item, says) = match status {
            401 => match refusal_of(&message) {
                Refusal::Scope => {
                    self.set(Item::Read, Verdict::Failed, no_read_scope(&message));
                    return Listing::NoReadScope;
                }
                Refusal::OtherLocation(granted) => {
                    (Item::Location, other_location(&granted, &location))
                }
                Refusal::Token => {
                    self.token_refused = Some(message);
                    return Listing::Stopped;
                }
            },
            403 => (
                Item::Location,
                format!(
                    "the service refused access to location {location} ({message}): check \
                     the location id, and that the token was made in that location"
                ),
            ),
            404 => (
                Item::Location,
                format!("location {location} was not found ({message}): check the location id"),
            ),
            429 => (
                Item::Read,
                format!(
                    "could not list now: the service answered 429 ({message}), as others use \
                     this location's quota; run the check again in a minute"
                ),
            ),
            500..=599 => (
                Item::Read,
                format!("the service failed (HTTP {status}: {message}); try again later"),
            ),
            _ => (
                Item::Read,
                format!("the service refused a one-object listing (HTTP {status}: {message})"),
            ),
        };
        self.set(item, Verdict::Failed, says);
        Listing::Stopped
    }

    fn listed(&mut self, list: ListResponse) -> Listing {
        self.token_accepted = true;
        let location = self.location();
        let reached = format!("the token reaches location {location}");
        self.set(Item::Location, Verdict::Ok, reached);
        let read = "medias.readonly: a one-object listing of the root was answered";
        self.set(Item::Read, Verdict::Ok, read);
        Listing::Listed(list)
    }

    /// A delete of [`NO_SUCH_ID`]: 404 when `medias.write` is there, the
    /// 401 of a missing scope when it is not. Nothing can be deleted.
    async fn check_write(&mut self, read_denied: bool) {
        let client = self.client.clone();
        let location = self.location();
        match self.ask(client.probe_delete(NO_SUCH_ID)).await {
            Err(e) => self.write_unconfirmed(&e.to_string()),
            Ok(answer) => {
                let status = answer.status.as_u16();
                let message = message_of(&answer);
                match (status, refusal_of(&message)) {
                    (404 | 200..=299, _) => {
                        let says = format!(
                            "medias.write: a delete of an id that cannot exist was answered \
                             HTTP {status}, not refused for the scope"
                        );
                        self.set(Item::Write, Verdict::Ok, says);
                        let reached = format!(
                            "the token reaches location {location} (the write check got past it)"
                        );
                        self.set(Item::Location, Verdict::Ok, reached);
                    }
                    (401, Refusal::Scope) => self.missing_write(&message),
                    (401, Refusal::OtherLocation(granted)) => self.set(
                        Item::Location,
                        Verdict::Failed,
                        other_location(&granted, &location),
                    ),
                    _ => self.write_unconfirmed(&format!("HTTP {status} ({message})")),
                }
            }
        }
        if read_denied {
            let says = "not confirmed: the service refuses a token without the scope before \
                        it looks at the location";
            self.set(Item::Location, Verdict::Skipped, says);
        }
    }

    fn missing_write(&mut self, message: &str) {
        if self.args.read_only {
            let says = format!(
                "the token lacks medias.write ({message}), which a read-only mount does not need"
            );
            self.set(Item::Write, Verdict::Note, says);
        } else {
            let says = format!(
                "the token lacks medias.write ({message}): a mount could list and read, but \
                 every change (copying in, mkdir, rm, mv) would fail. Add the scope to the \
                 token, or mount with --read-only"
            );
            self.set(Item::Write, Verdict::Failed, says);
        }
    }

    fn write_unconfirmed(&mut self, why: &str) {
        let (verdict, but) = if self.args.read_only {
            (Verdict::Note, "; a read-only mount does not need it")
        } else {
            (Verdict::Warning, "; changes may fail once mounted")
        };
        let says = format!(
            "could not be confirmed: a delete of an id that cannot exist got {why}, neither \
             the 404 of a token with medias.write nor the 401 of one without{but}"
        );
        self.set(Item::Write, verdict, says);
    }

    /// Downloads the first byte of a file's public URL, without the token.
    async fn check_file_urls(&mut self, root_files: ListResponse) {
        let root_is_empty = root_files.files.is_empty();
        let file = match root_files.files.into_iter().find(|f| f.url.is_some()) {
            Some(file) => Some(file),
            None => self.find_file_below_root(root_is_empty).await,
        };
        if let Some(file) = file {
            self.try_download(&file).await;
        }
    }

    /// The first file of the root's first folder, when the root holds none.
    async fn find_file_below_root(&mut self, root_is_empty: bool) -> Option<MediaObject> {
        let folders = self.list_one(ObjectKind::Folder, None).await?;
        let Some(folder) = folders.into_iter().next() else {
            if root_is_empty {
                let says = "the library is empty: there is no file whose URL to try";
                self.set(Item::FileUrls, Verdict::Skipped, says);
            }
            return None;
        };
        let files = self.list_one(ObjectKind::File, Some(&folder.id)).await?;
        let file = files.into_iter().find(|f| f.url.is_some());
        if file.is_none() {
            let says = format!(
                "no file at the root or in its first folder ({:?}) to try",
                folder.name
            );
            self.set(Item::FileUrls, Verdict::Skipped, says);
        }
        file
    }

    /// A one-object listing for finding a file; `None` (and the reason
    /// reported) when it is not answered.
    async fn list_one(
        &mut self,
        kind: ObjectKind,
        parent: Option<&str>,
    ) -> Option<Vec<MediaObject>> {
        let client = self.client.clone();
        let query = ListQuery::children(kind, parent, 1);
        let why = match self.ask(client.probe_list(&query)).await {
            Ok(answer) if answer.status.is_success() => {
                match serde_json::from_slice::<ListResponse>(&answer.body) {
                    Ok(list) => return Some(list.files),
                    Err(e) => format!("an unexpected answer ({e})"),
                }
            }
            Ok(answer) => format!("HTTP {} ({})", answer.status.as_u16(), message_of(&answer)),
            Err(e) => e.to_string(),
        };
        let says = format!("could not look for a file to try: a listing got {why}");
        self.set(Item::FileUrls, Verdict::Warning, says);
        None
    }

    async fn try_download(&mut self, file: &MediaObject) {
        let url = file.url.clone().unwrap_or_default();
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| url.clone());
        let name = &file.name;
        self.downloads += 1;
        let first_byte = ByteRange { offset: 0, len: 1 };
        let started = Instant::now();
        let (verdict, says) = match self.client.download(&url, Some(first_byte)).await {
            Ok(response) if response.status() == reqwest::StatusCode::PARTIAL_CONTENT => {
                let _ = response.bytes().await;
                let took = spoken(started.elapsed());
                let says = format!(
                    "{name:?} downloads from {host} without the token, and Range is honoured \
                     (206, {took})"
                );
                (Verdict::Ok, says)
            }
            // Its body is the whole file: dropped unread.
            Ok(response) => {
                let says = format!(
                    "{name:?} downloads from {host} without the token, but Range is not \
                     honoured (HTTP {}, the whole file): reading part of a large file downloads \
                     all of it before that part",
                    response.status().as_u16()
                );
                (Verdict::Warning, says)
            }
            Err(e) => {
                let says = format!(
                    "{name:?} did not download from its URL ({url}) without the token: {e}. \
                     Reading files would fail: check that this machine reaches {host}"
                );
                (Verdict::Failed, says)
            }
        };
        self.set(Item::FileUrls, verdict, says);
    }

    /// Repeats the one-object listing until a few calls are timed.
    async fn time_more_calls(&mut self) {
        let query = ListQuery::children(ObjectKind::File, None, 1);
        let client = self.client.clone();
        while self.round_trips.len() < TIMED_CALLS {
            if self.ask(client.probe_list(&query)).await.is_err() {
                break;
            }
        }
    }

    /// The token line: what kind of token it is, where it came from, and
    /// the service's word on it.
    async fn describe_token(&mut self) {
        let current = match self.client.current_token().await {
            Ok(current) => current,
            Err(e) => {
                let says = format!("could not get an access token: {e}");
                return self.set(Item::Token, Verdict::Failed, says);
            }
        };
        let shape = token_kind::read(current.expose());
        let (kind, suspect) = token_kind::describe(&shape, &self.location(), chrono::Utc::now());
        let about = format!("{kind}, {}", self.token_origin());
        let looks = if suspect {
            Verdict::Warning
        } else {
            Verdict::Ok
        };
        match self.token_refused.clone() {
            Some(reason) => {
                let advice = if self.token.can_refresh() {
                    "check that the app is still installed in the location, and authorise it again"
                } else {
                    "make a new one, or give --oauth-client-id and --refresh-token-file for a \
                     token that expires"
                };
                // Words that say nothing of the token itself may be a
                // scope refusal worded otherwise than the emulator's.
                let token_words = reason.contains("nvalid") || reason.contains("xpired");
                let may = if token_words {
                    "It may be mistyped, revoked or expired"
                } else {
                    "The token may lack the medias.readonly scope, or be mistyped, revoked or \
                     expired"
                };
                let says = format!("{about}; the service refused it: {reason}. {may}: {advice}");
                self.set(Item::Token, Verdict::Failed, says);
            }
            None if self.token_accepted => self.set(Item::Token, looks, about),
            None => {
                let says =
                    format!("{about}; not confirmed: the service did not say whether it takes it");
                self.set(Item::Token, looks.max(Verdict::Skipped), says);
            }
        }
    }

    fn token_origin(&self) -> String {
        let service = &self.args.service;
        match (&service.refresh_token_file, &service.token_file) {
            (Some(file), _) if self.token.refreshes() > 0 => format!(
                "got by refreshing through OAuth ({} now holds the new refresh token)",
                file.display()
            ),
            (_, Some(file)) => format!("from {}", file.display()),
            _ => "from MEDIAFS_TOKEN".to_owned(),
        }
    }

    fn report_rate_limit(&mut self) {
        let Some(limits) = &self.limits else {
            // Refusals of a token, or answers of something else than the
            // API, need not carry the limits: nothing to tell from them.
            if self.token_accepted {
                let says = "not announced: the service's answers carried no X-RateLimit-* headers";
                self.set(Item::RateLimit, Verdict::Note, says);
            }
            return;
        };
        let (verdict, says) = judge_limits(limits, self.args.rate_limit);
        self.set(Item::RateLimit, verdict, says);
    }

    fn report_round_trips(&mut self) {
        if self.round_trips.is_empty() {
            return;
        }
        let mut sorted = self.round_trips.clone();
        sorted.sort();
        let median = sorted[(sorted.len() - 1) / 2];
        let each: Vec<String> = self.round_trips.iter().map(|d| spoken(*d)).collect();
        let mut says = match each.len() {
            1 => format!("1 API call answered in {} (with connecting)", each[0]),
            n => format!(
                "{n} API calls answered in {} (the first with connecting); median {}",
                each.join(", "),
                spoken(median)
            ),
        };
        let verdict = if median > SLOW_ROUND_TRIP {
            says.push_str(
                ": slow, and every listing a program asks for waits as long; a longer \
                 --metadata-ttl asks less often",
            );
            Verdict::Warning
        } else {
            Verdict::Ok
        };
        self.set(Item::RoundTrip, verdict, says);
    }
}

fn no_read_scope(message: &str) -> String {
    format!(
        "the token lacks medias.readonly ({message}): a mount could not list anything. Add \
         the scope to the token (a Private Integration: edit it in the location's settings; \
         an OAuth app: add it to the app and authorise it again)"
    )
}

fn other_location(granted: &str, location: &str) -> String {
    format!(
        "the token was made for location {granted}, not {location}: check with --location \
         {granted}, or use a token made in location {location}"
    )
}
