//! The bearer token, kept out of every log line, error and panic message,
//! and refreshed through OAuth when it expires.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::{ApiError, ApiResult};

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: only for a request header or form.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to get a new access token: an OAuth app's credentials and the file
/// that holds the current refresh token (rewritten with each new one).
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `POST` endpoint, normally `{base_url}/oauth/token`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token_file: PathBuf,
    /// Whose token it is: a location's, or an agency's.
    pub user_type: UserType,
}

/// Who an OAuth token speaks for (`user_type` at `/oauth/token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    Location,
    Company,
}

impl UserType {
    fn as_str(self) -> &'static str {
        match self {
            UserType::Location => "Location",
            UserType::Company => "Company",
        }
    }
}

/// A location's token got from an agency's (`POST /oauth/locationToken`),
/// again each time it is about to expire or is refused.
#[derive(Debug, Clone)]
pub struct AgencyLocation {
    /// `POST` endpoint, normally `{base_url}/oauth/locationToken`.
    pub token_url: String,
    pub company_id: String,
    pub location_id: String,
    /// The agency's own token, which this one is got with.
    pub agency: TokenSource,
}

/// How a new access token is got, when the one held expires or is refused.
#[derive(Debug)]
enum Renewal {
    /// It is not: the token stays as given (a Private Integration token).
    Never,
    /// A refresh token is traded at `/oauth/token`.
    RefreshToken(OAuthConfig),
    /// An agency's token is traded for one of its locations'.
    FromAgency(AgencyLocation),
}

/// Where the client gets the token it sends. Clones share one token.
#[derive(Debug, Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: RwLock<Option<(Secret, Option<Instant>)>>,
    /// Counts refreshes, so that callers that saw the same stale token
    /// refresh it once between them.
    generation: AtomicU64,
    renewal: Renewal,
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Refresh this long before the service says a token expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

impl TokenSource {
    pub fn fixed(token: Secret) -> Self {
        Self::build(Some(token), Renewal::Never)
    }

    /// OAuth: refreshed on a 401 and before it expires. `initial` is an
    /// access token to start with, if there is one.
    pub fn oauth(config: OAuthConfig, initial: Option<Secret>) -> Self {
        Self::build(initial, Renewal::RefreshToken(config))
    }

    /// A location's token, got from its agency's on first use, and again
    /// on a 401 and before it expires.
    pub fn from_agency(location: AgencyLocation) -> Self {
        Self::build(None, Renewal::FromAgency(location))
    }

    fn build(token: Option<Secret>, renewal: Renewal) -> Self {
        TokenSource {
            inner: Arc::new(Inner {
                current: RwLock::new(token.map(|t| (t, None))),
                generation: AtomicU64::new(0),
                renewal,
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Reads a token file (its first line, trimmed). A file that others can
    /// read gets a warning: the token grants access to the whole library.
    pub fn read_secret_file(path: &Path) -> std::io::Result<Secret> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            log::warn!(
                "{} can be read by other users (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is empty", path.display()),
            ));
        }
        Ok(Secret::new(token))
    }

    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        Ok(Self::fixed(Self::read_secret_file(path)?))
    }

    /// How many times the access token was refreshed.
    pub fn refreshes(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    pub fn can_refresh(&self) -> bool {
        !matches!(self.inner.renewal, Renewal::Never)
    }

    /// The token to send and its generation; refreshes first when there is
    /// none yet or it is about to expire.
    pub async fn access_token(&self, http: &reqwest::Client) -> ApiResult<(Secret, u64)> {
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let usable = {
            let current = self.inner.current.read().unwrap();
            match &*current {
                Some((token, expiry))
                    if expiry.is_none_or(|e| Instant::now() + EXPIRY_MARGIN < e) =>
                {
                    Some(token.clone())
                }
                _ => None,
            }
        };
        match usable {
            Some(token) => Ok((token, generation)),
            None if self.can_refresh() => {
                self.refresh(http, generation).await?;
                let current = self.inner.current.read().unwrap();
                let (token, _) = current.as_ref().expect("a refresh sets a token");
                Ok((token.clone(), self.inner.generation.load(Ordering::SeqCst)))
            }
            None => Err(ApiError::Unauthorized {
                message: "no access token".into(),
            }),
        }
    }

    /// Gets a new access token unless another caller already replaced the
    /// one of `seen_generation`. False when this source cannot refresh.
    pub async fn refresh(&self, http: &reqwest::Client, seen_generation: u64) -> ApiResult<bool> {
        if !self.can_refresh() {
            return Ok(false);
        }
        let _one_at_a_time = self.inner.refreshing.lock().await;
        if self.inner.generation.load(Ordering::SeqCst) != seen_generation {
            return Ok(true);
        }
        let (answer, what) = match &self.inner.renewal {
            Renewal::Never => return Ok(false),
            Renewal::RefreshToken(oauth) => (
                trade_refresh_token(http, oauth).await?,
                match oauth.user_type {
                    UserType::Location => "the OAuth access token".to_owned(),
                    UserType::Company => "the agency's OAuth access token".to_owned(),
                },
            ),
            Renewal::FromAgency(location) => (
                trade_agency_token(http, location).await?,
                format!(
                    "location {}'s access token, from the agency's",
                    location.location_id
                ),
            ),
        };
        let expiry = answer
            .expires_in
            .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        *self.inner.current.write().unwrap() = Some((Secret::new(answer.access_token), expiry));
        let before = self.inner.generation.fetch_add(1, Ordering::SeqCst);
        match before {
            0 if matches!(self.inner.renewal, Renewal::FromAgency(_)) => {
                log::info!("got {what}")
            }
            _ => log::info!("refreshed {what}"),
        }
        Ok(true)
    }
}

/// A new access token for the refresh token in `oauth`'s file, whose
/// successor is saved there before the access token is used.
async fn trade_refresh_token(
    http: &reqwest::Client,
    oauth: &OAuthConfig,
) -> ApiResult<TokenAnswer> {
    let failed = |message: String| ApiError::Unauthorized {
        message: format!("refreshing the OAuth access token failed: {message}"),
    };
    let refresh_token = TokenSource::read_secret_file(&oauth.refresh_token_file)
        .map_err(|e| failed(format!("cannot read the refresh token file: {e}")))?;
    let form = [
        ("client_id", oauth.client_id.as_str()),
        ("client_secret", oauth.client_secret.expose()),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("user_type", oauth.user_type.as_str()),
    ];
    let request = http.post(&oauth.token_url).form(&form);
    let answer = token_answer(request, "refreshing the OAuth access token", |message| {
        failed(format!(
            "{message}; the refresh token or the app's credentials are no longer valid: \
             authorise the app again"
        ))
    })
    .await?;
    if let Some(new_refresh) = &answer.refresh_token {
        // Each refresh token works once: keep the new one before using
        // the access token, or a crash now would leave none that works.
        crate::atomic_file::replace(
            &oauth.refresh_token_file,
            format!("{new_refresh}\n").as_bytes(),
        )
        .map_err(|e| failed(format!("cannot save the new refresh token: {e}")))?;
    }
    Ok(answer)
}

/// A new token for `location`, asked with its agency's token.
async fn trade_agency_token(
    http: &reqwest::Client,
    location: &AgencyLocation,
) -> ApiResult<TokenAnswer> {
    // Boxed: the agency's token is a token source too, and may refresh.
    let (agency_token, _) = Box::pin(location.agency.access_token(http)).await?;
    let failed = |message: String| ApiError::Unauthorized {
        message: format!(
            "getting a token for location {} from the agency's failed: {message}",
            location.location_id
        ),
    };
    let form = [
        ("companyId", location.company_id.as_str()),
        ("locationId", location.location_id.as_str()),
    ];
    let request = http
        .post(&location.token_url)
        .bearer_auth(agency_token.expose())
        .header("Version", super::client::API_VERSION)
        .form(&form);
    token_answer(
        request,
        "getting a location token from the agency's",
        |message| {
            failed(format!(
                "{message}; the app may no longer be installed on this location, or the \
             agency's token is no longer valid"
            ))
        },
    )
    .await
}

/// Sends a request for a token (`doing` says what for) and reads its
/// answer; a refusal's message goes through `refused`, to say what to do.
async fn token_answer(
    request: reqwest::RequestBuilder,
    doing: &str,
    refused: impl Fn(String) -> ApiError,
) -> ApiResult<TokenAnswer> {
    let network = |e: reqwest::Error| ApiError::Network {
        message: format!("{doing}: {e}"),
    };
    let response = request.send().await.map_err(network)?;
    let status = response.status();
    let body = response.bytes().await.map_err(network)?;
    if !status.is_success() {
        let err = ApiError::from_status(status.as_u16(), &String::from_utf8_lossy(&body), None);
        return Err(match err {
            ApiError::Unauthorized { message } | ApiError::InvalidRequest { message, .. } => {
                refused(message)
            }
            other => other,
        });
    }
    serde_json::from_slice(&body).map_err(|e| refused(format!("unexpected answer ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_secret() {
        let s = Secret::new("pit-very-secret");
        assert!(!format!("{s:?} {s}").contains("very-secret"));
        let t = TokenSource::fixed(s);
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
