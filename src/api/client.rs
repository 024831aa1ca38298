//! The HighLevel Media Storage API client: every request authenticated and
//! versioned, kept under the rate limit, retried with backoff, and never
//! leaving a duplicate behind when a retried create may already have landed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RANGE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::error::{ApiError, ApiResult};
use super::limiter::RateLimiter;
use super::limits;
use super::mime;
use super::models::{DeleteStatus, ListQuery, MediaObject, ObjectKind, UploadResponse};
use super::segments::Segments;
use super::token::{Secret, TokenSource};

mod listing;
pub use listing::AtOnce;

pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";
pub const API_VERSION: &str = "2021-07-28";
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// How the client talks to the service.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub location_id: String,
    /// Objects per listing page.
    pub page_size: u64,
    /// Client-side limit: at most this many requests per window; `None` turns it off.
    pub rate_limit: Option<(usize, Duration)>,
    /// Tries after the first one for transient failures.
    pub max_retries: u32,
    /// First backoff delay; it doubles on every retry, with full jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Limit for one API request, connection to last byte.
    pub request_timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: &str, location_id: &str) -> Self {
        ClientConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            location_id: location_id.to_owned(),
            page_size: DEFAULT_PAGE_SIZE,
            rate_limit: Some((100, Duration::from_secs(10))),
            max_retries: 6,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// An API answer as it came, for callers that read its status and headers
/// themselves.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// From sending the request to the end of its answer (of the last
    /// request, when a refreshed token sent it again).
    pub round_trip: Duration,
    /// Requests sent: 2 when a 401 was cured by refreshing the token.
    pub requests: u32,
}

/// A range of an object's bytes to download: `len` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug)]
pub struct MediaClient {
    api: reqwest::Client,
    downloads: reqwest::Client,
    config: ClientConfig,
    token: TokenSource,
    limiter: RateLimiter,
    /// Server clock minus ours, from `Date` headers: decides whether an object
    /// found after an ambiguous failure was created by the failed request.
    server_clock_offset: StdMutex<Option<chrono::TimeDelta>>,
    /// Kinds whose `fetchAll` listing fell short of its count: listed
    /// folder by folder instead (see [`MediaClient::list_at_once`]).
    at_once_short: StdMutex<HashMap<ObjectKind, std::time::Instant>>,
}

impl MediaClient {
    pub fn new(config: ClientConfig, token: TokenSource) -> ApiResult<Self> {
        let mut headers = HeaderMap::new();
        headers.insert("Version", HeaderValue::from_static(API_VERSION));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let user_agent = concat!("mediafs/", env!("CARGO_PKG_VERSION"));
        let network = |e: reqwest::Error| ApiError::Network {
            message: e.to_string(),
        };
        // A redirect could carry the token to another host: refuse them all.
        let api = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(network)?;
        // Public URLs need no token; this client never has one to leak.
        let downloads = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .build()
            .map_err(network)?;
        Ok(MediaClient {
            api,
            downloads,
            limiter: RateLimiter::new(config.rate_limit),
            config,
            token,
            server_clock_offset: StdMutex::new(None),
            at_once_short: StdMutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn location_id(&self) -> &str {
        &self.config.location_id
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url, path)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .config
            .retry_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.config.retry_max);
        // Full jitter: clients that failed together do not retry together.
        cap.mul_f64(rand::random::<f64>().max(0.1))
    }

    /// Sends one request and reads its whole answer, whatever its status.
    /// The only resend here is after a 401 that a token refresh cured.
    async fn send_raw(
        &self,
        build: &(dyn Fn() -> ApiResult<RequestBuilder> + Sync),
    ) -> ApiResult<RawAnswer> {
        self.send_raw_telling(build)
            .await
            .map_err(Failed::into_error)
    }

    /// [`Self::send_raw`], telling apart a request the service broke off
    /// with no answer.
    async fn send_raw_telling(
        &self,
        build: &(dyn Fn() -> ApiResult<RequestBuilder> + Sync),
    ) -> Result<RawAnswer, Failed> {
        let mut requests = 0;
        loop {
            let permit = self.limiter.acquire().await;
            let (token, generation) = self.token.access_token(&self.api).await?;
            let sent = std::time::Instant::now();
            requests += 1;
            let response = build()?
                .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
                .send()
                .await
                .map_err(Failed::from_send)?;
            self.limiter.observe(response.headers()).await;
            drop(permit);
            self.note_server_clock(response.headers());
            let status = response.status();
            let headers = response.headers().clone();
            let body = match response.bytes().await {
                Ok(body) => body,
                // The status said enough: a refusal whose words were cut
                // off (the service closed the connection after a 413 while
                // the request was still going out) is that refusal still.
                Err(_) if !status.is_success() => Bytes::new(),
                Err(e) => {
                    return Err(Failed::Error(ApiError::Network {
                        message: format!("answer cut short: {}", describe_reqwest_error(&e)),
                    }))
                }
            };
            if status == StatusCode::UNAUTHORIZED
                && requests == 1
                && self.token.refresh(&self.api, generation).await?
            {
                continue;
            }
            return Ok(RawAnswer {
                status,
                headers,
                body,
                round_trip: sent.elapsed(),
                requests,
            });
        }
    }

    /// Sends one request (see [`Self::send_raw`]); an answer that is not a
    /// success becomes its error.
    async fn send_once(
        &self,
        build: &(dyn Fn() -> ApiResult<RequestBuilder> + Sync),
    ) -> ApiResult<Bytes> {
        self.send_once_telling(build)
            .await
            .map_err(Failed::into_error)
    }

    /// [`Self::send_once`], telling apart a request the service broke off
    /// with no answer.
    async fn send_once_telling(
        &self,
        build: &(dyn Fn() -> ApiResult<RequestBuilder> + Sync),
    ) -> Result<Bytes, Failed> {
        let answer = self.send_raw_telling(build).await?;
        let status = answer.status;
        if status.is_success() {
            return Ok(answer.body);
        }
        if status.is_redirection() {
            return Err(Failed::Error(ApiError::InvalidRequest {
                status: status.as_u16(),
                message: "the service answered with a redirect, which mediafs does not follow \
                          so that the token never reaches another host; check --base-url"
                    .into(),
            }));
        }
        let retry_after = answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        // A 429 that says no request is left today: waiting seconds will not help.
        let day_used_up = header_number(&answer.headers, "x-ratelimit-daily-remaining") == Some(0);
        if status.as_u16() == 429 && day_used_up {
            return Err(Failed::Error(ApiError::DailyLimit {
                message: format!(
                    "location {} has used all of its {} API requests for today; the service \
                     answers it again when its day's window ends (other locations are not \
                     affected)",
                    self.config.location_id,
                    header_number(&answer.headers, "x-ratelimit-limit-daily")
                        .map_or_else(|| "daily".into(), |n| n.to_string())
                ),
            }));
        }
        let err = ApiError::from_status(
            status.as_u16(),
            &String::from_utf8_lossy(&answer.body),
            retry_after,
        );
        if let ApiError::RateLimited { retry_after, .. } = &err {
            self.limiter
                .pause(retry_after.unwrap_or(Duration::from_secs(1)))
                .await;
        }
        Err(Failed::Error(err))
    }

    /// Sends a request that is safe to repeat, retrying transient failures.
    /// `gone_means_done` makes a 404 on a retry count as success: the first
    /// try removed the object before its answer was lost.
    async fn send_idempotent(
        &self,
        what: &str,
        gone_means_done: bool,
        build: &(dyn Fn() -> ApiResult<RequestBuilder> + Sync),
    ) -> ApiResult<Bytes> {
        let mut attempt = 0;
        loop {
            match self.send_once(build).await {
                Ok(body) => return Ok(body),
                Err(ApiError::NotFound { .. }) if gone_means_done && attempt > 0 => {
                    return Ok(Bytes::new())
                }
                Err(e) if e.is_transient() && attempt < self.config.max_retries => {
                    let wait = self.backoff(attempt);
                    log::warn!("{what}: {e}; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn note_server_clock(&self, headers: &HeaderMap) {
        let server = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok());
        if let Some(server) = server {
            *self.server_clock_offset.lock().unwrap() =
                Some(server.with_timezone(&Utc) - Utc::now());
        }
    }

    /// Our clock's `now` in the server's time, less a margin for the `Date`
    /// header's one-second resolution and for latency.
    fn server_time_now_with_margin(&self) -> DateTime<Utc> {
        let offset = self.server_clock_offset.lock().unwrap().unwrap_or_default();
        Utc::now() + offset - chrono::TimeDelta::seconds(3)
    }

    fn json_request(
        &self,
        method: Method,
        path: &str,
        body: serde_json::Value,
    ) -> impl Fn() -> ApiResult<RequestBuilder> + Sync + '_ {
        let url = self.url(path);
        move || Ok(self.api.request(method.clone(), &url).json(&body))
    }

    fn alt_params(&self) -> [(&'static str, String); 2] {
        [
            ("altType", "location".into()),
            ("altId", self.config.location_id.clone()),
        ]
    }

    // ---- folders ----

    /// Creates a folder. After an ambiguous failure it looks for the folder
    /// before trying again, so a retry never leaves two.
    pub async fn create_folder(
        &self,
        name: &str,
        parent_id: Option<&str>,
    ) -> ApiResult<MediaObject> {
        let mut body =
            json!({"altId": self.config.location_id, "altType": "location", "name": name});
        if let Some(p) = parent_id {
            body["parentId"] = json!(p);
        }
        let build = self.json_request(Method::POST, "/medias/folder", body);
        let started = self.server_time_now_with_margin();
        let mut attempt = 0;
        loop {
            match self.send_once(&build).await {
                Ok(answer) => {
                    let mut folder: MediaObject = parse_json(&answer)?;
                    folder.parent_id = folder.parent_id.or(parent_id.map(str::to_owned));
                    return Ok(folder);
                }
                Err(e) if e.is_transient() && attempt < self.config.max_retries => {
                    if e.is_ambiguous() {
                        let landed = self
                            .find_by_name(ObjectKind::Folder, parent_id, name)
                            .await?;
                        if let Some(f) = landed.into_iter().find(|f| created_since(f, started)) {
                            log::info!("folder {name:?} was created before its answer was lost; not creating it again");
                            return Ok(f);
                        }
                    }
                    let wait = self.backoff(attempt);
                    log::warn!("creating folder {name:?}: {e}; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ---- uploads ----

    /// The MIME type an upload of `path` under `name` will carry, or an error
    /// saying why the service would refuse it.
    pub fn upload_type(path: &Path, name: &str) -> ApiResult<String> {
        mime::detect_file(path, name)?.ok_or_else(|| ApiError::TypeRefused {
            message: format!(
                "cannot tell the type of {name:?} from its bytes or its name; \
                 the service refuses files of unknown type (application/octet-stream)"
            ),
        })
    }

    /// Uploads the file at `path` as `name` into `parent_id`, streaming it
    /// from disk. Checks type and size before sending anything, and after an
    /// ambiguous failure looks for the upload before sending it again.
    pub async fn upload_file(
        &self,
        path: &Path,
        name: &str,
        parent_id: Option<&str>,
    ) -> ApiResult<MediaObject> {
        self.upload_file_as(path, name, parent_id, None).await
    }

    /// [`Self::upload_file`], as `content_type` when the caller knows it
    /// (the filesystem tells a rewrite's type by the version it replaces,
    /// and tells none by a junk name).
    pub async fn upload_file_as(
        &self,
        path: &Path,
        name: &str,
        parent_id: Option<&str>,
        content_type: Option<&str>,
    ) -> ApiResult<MediaObject> {
        let content_type = match content_type {
            Some(t) => t.to_owned(),
            None => Self::upload_type(path, name)?,
        };
        let size = tokio::fs::metadata(path).await?.len();
        if size > limits::max_upload_bytes(&content_type) {
            return Err(ApiError::TooLarge {
                message: format!(
                    "{name:?} is {size} bytes, over the service's limit of {}",
                    limits::limit_words(&content_type)
                ),
            });
        }
        let started = self.server_time_now_with_margin();
        let mut attempt = 0;
        loop {
            let failed = match self
                .upload_once(path, name, parent_id, &content_type, size)
                .await
            {
                Ok(answer) => return Ok(uploaded(answer, name, parent_id, content_type, size)),
                Err(failed) => failed,
            };
            // The service may refuse a file for size by breaking the
            // connection off while it is sent, before any answer is read.
            let size_refusal = matches!(failed, Failed::BrokenOff(_))
                && size > limits::min_upload_limit(&content_type);
            let e = match failed.into_error() {
                ApiError::TooLarge { message } => {
                    return Err(refused_for_size(name, size, &content_type, &message))
                }
                e => e,
            };
            if !(size_refusal || e.is_transient() && attempt < self.config.max_retries) {
                return Err(e);
            }
            if e.is_ambiguous() {
                if let Some(found) = self
                    .find_landed_upload(path, name, parent_id, size, started)
                    .await?
                {
                    log::info!("upload of {name:?} landed before its answer was lost; not sending it again");
                    return Ok(found);
                }
            }
            if size_refusal {
                let how = format!(
                    "it broke the connection off with no answer ({e}), as it may when it refuses a file for size"
                );
                return Err(refused_for_size(name, size, &content_type, &how));
            }
            let wait = self.backoff(attempt);
            log::warn!("uploading {name:?}: {e}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn upload_once(
        &self,
        path: &Path,
        name: &str,
        parent_id: Option<&str>,
        content_type: &str,
        size: u64,
    ) -> Result<UploadResponse, Failed> {
        let url = self.url("/medias/upload-file");
        // The file is opened anew for each send, so every send streams it whole.
        let build = || -> ApiResult<RequestBuilder> {
            let file = tokio::fs::File::from_std(std::fs::File::open(path)?);
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
            let part = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(stream),
                size,
            )
            .file_name(part_file_name(name))
            .mime_str(content_type)
            .expect("a detected MIME type parses");
            let mut form = reqwest::multipart::Form::new()
                .text("altId", self.config.location_id.clone())
                .text("altType", "location")
                .text("name", name.to_owned());
            if let Some(p) = parent_id {
                form = form.text("parentId", p.to_owned());
            }
            Ok(self.api.post(&url).multipart(form.part("file", part)))
        };
        Ok(parse_json(&self.send_once_telling(&build).await?)?)
    }

    /// After an ambiguous failure: a file of this name, size and type created
    /// since the upload began, whose bytes are ours, is our upload.
    async fn find_landed_upload(
        &self,
        path: &Path,
        name: &str,
        parent_id: Option<&str>,
        size: u64,
        started: DateTime<Utc>,
    ) -> ApiResult<Option<MediaObject>> {
        let candidates = self.find_by_name(ObjectKind::File, parent_id, name).await?;
        for candidate in candidates {
            if candidate.size != Some(size) || !created_since(&candidate, started) {
                continue;
            }
            if let Some(url) = &candidate.url {
                if self.same_bytes(url, path).await? {
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(None)
    }

    /// Whether the object at `url` holds exactly the bytes of the local
    /// file. A download cut short is tried again, like any other request:
    /// giving up here would fail an upload that has in fact landed.
    async fn same_bytes(&self, url: &str, path: &Path) -> ApiResult<bool> {
        let mut attempt = 0;
        loop {
            match self.compare_once(url, path).await {
                Err(ApiError::Network { message }) if attempt < self.config.max_retries => {
                    log::warn!("checking whether an upload landed: {message}; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn compare_once(&self, url: &str, path: &Path) -> ApiResult<bool> {
        let mut local = tokio::fs::File::open(path).await?;
        let mut remote = self.download(url, None).await?.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = remote.next().await {
            let chunk = chunk.map_err(|e| ApiError::Network {
                message: describe_reqwest_error(&e),
            })?;
            buf.resize(chunk.len(), 0);
            if local.read_exact(&mut buf).await.is_err() || buf[..] != chunk[..] {
                return Ok(false);
            }
        }
        Ok(local.read(&mut [0u8; 1]).await? == 0)
    }

    /// Asks the service to fetch `file_url` itself (`hosted=true`).
    pub async fn upload_hosted(
        &self,
        file_url: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> ApiResult<UploadResponse> {
        let url = self.url("/medias/upload-file");
        let build = || {
            let mut form = reqwest::multipart::Form::new()
                .text("altId", self.config.location_id.clone())
                .text("altType", "location")
                .text("hosted", "true")
                .text("fileUrl", file_url.to_owned())
                .text("name", name.to_owned());
            if let Some(p) = parent_id {
                form = form.text("parentId", p.to_owned());
            }
            Ok(self.api.post(&url).multipart(form))
        };
        parse_json(&self.send_once(&build).await?)
    }

    // ---- renames and deletes ----

    /// Renames one file or folder (`POST /medias/{id}`).
    pub async fn rename(&self, id: &str, new_name: &str) -> ApiResult<()> {
        let body =
            json!({"name": new_name, "altType": "location", "altId": self.config.location_id});
        let build = self.json_request(Method::POST, &format!("/medias/{id}"), body);
        self.send_idempotent("renaming", false, &build)
            .await
            .map(drop)
    }

    /// Renames many objects in one call (`PUT /medias/update-files`).
    pub async fn rename_many(&self, renames: &[(String, String)]) -> ApiResult<()> {
        let items: Vec<_> = renames
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        let body = json!({"altId": self.config.location_id, "altType": "location", "filesToBeUpdated": items});
        let build = self.json_request(Method::PUT, "/medias/update-files", body);
        self.send_idempotent("renaming", false, &build)
            .await
            .map(drop)
    }

    /// Trashes or deletes many objects in one call (`PUT /medias/delete-files`).
    pub async fn delete_many(&self, ids: &[String], status: DeleteStatus) -> ApiResult<()> {
        let items: Vec<_> = ids.iter().map(|id| json!({"_id": id})).collect();
        let body = json!({"altId": self.config.location_id, "altType": "location",
                          "status": status, "filesToBeDeleted": items});
        let build = self.json_request(Method::PUT, "/medias/delete-files", body);
        self.send_idempotent("deleting", true, &build)
            .await
            .map(drop)
    }

    /// Deletes one object (`DELETE /medias/{id}`).
    pub async fn delete(&self, id: &str) -> ApiResult<()> {
        let url = self.url(&format!("/medias/{id}"));
        let params = self.alt_params();
        self.send_idempotent("deleting", true, &|| {
            Ok(self.api.delete(&url).query(&params))
        })
        .await
        .map(drop)
    }

    // ---- probes, for `mediafs check` ----

    /// The token requests carry now, refreshed first when it must be.
    pub async fn current_token(&self) -> ApiResult<Secret> {
        Ok(self.token.access_token(&self.api).await?.0)
    }

    /// One listing page, sent once and answered as it came.
    pub async fn probe_list(&self, q: &ListQuery) -> ApiResult<RawAnswer> {
        let params = self.list_params(q);
        let url = self.url("/medias/files");
        self.send_raw(&|| Ok(self.api.get(&url).query(&params)))
            .await
    }

    /// `DELETE /medias/{id}`, sent once and answered as it came.
    pub async fn probe_delete(&self, id: &str) -> ApiResult<RawAnswer> {
        let url = self.url(&format!("/medias/{id}"));
        let params = self.alt_params();
        self.send_raw(&|| Ok(self.api.delete(&url).query(&params)))
            .await
    }

    // ---- downloads ----

    /// Starts a download of an object's public URL, whole or a byte range,
    /// to be read as a stream. Retries until the answer's head arrives.
    pub async fn download(
        &self,
        url: &str,
        range: Option<ByteRange>,
    ) -> ApiResult<reqwest::Response> {
        let mut attempt = 0;
        loop {
            let mut req = self.downloads.get(url);
            if let Some(r) = range {
                req = req.header(
                    RANGE,
                    format!("bytes={}-{}", r.offset, r.offset + r.len.max(1) - 1),
                );
            }
            let result = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                    return Err(ApiError::InvalidRequest {
                        status: 416,
                        message: format!("byte range {range:?} lies past the end of the object"),
                    })
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().await.unwrap_or_default();
                    ApiError::from_status(status, &body, None)
                }
                Err(e) => ApiError::Network {
                    message: describe_reqwest_error(&e),
                },
            };
            if !result.is_transient() || attempt >= self.config.max_retries {
                return Err(result);
            }
            let wait = self.backoff(attempt);
            log::warn!("downloading {url}: {result}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Reads a byte range of an object whole, retrying a body cut short.
    /// The body is kept in the pieces it arrived in, uncopied.
    pub async fn read_range(&self, url: &str, range: ByteRange) -> ApiResult<Segments> {
        let mut attempt = 0;
        loop {
            let mut resp = self.download(url, Some(range)).await?;
            let mut body = Segments::default();
            let cut_short = loop {
                match resp.chunk().await {
                    Ok(Some(piece)) => body.push(piece),
                    Ok(None) => return Ok(body),
                    Err(e) => break e,
                }
            };
            if attempt >= self.config.max_retries {
                return Err(ApiError::Network {
                    message: describe_reqwest_error(&cut_short),
                });
            }
            log::warn!("download of {url} cut short: {cut_short}; retrying");
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }
}

/// How one request failed.
#[derive(Debug)]
enum Failed {
    /// With an answer, or before anything was sent: the error says which.
    Error(ApiError),
    /// With no answer: the other end reset or closed the connection while
    /// the request was out (a network error).
    BrokenOff(ApiError),
}

impl From<ApiError> for Failed {
    fn from(e: ApiError) -> Self {
        Failed::Error(e)
    }
}

impl Failed {
    fn from_send(e: reqwest::Error) -> Self {
        let error = ApiError::Network {
            message: describe_reqwest_error(&e),
        };
        if broken_off(&e) {
            Failed::BrokenOff(error)
        } else {
            Failed::Error(error)
        }
    }

    fn into_error(self) -> ApiError {
        match self {
            Failed::Error(e) | Failed::BrokenOff(e) => e,
        }
    }
}

/// Whether a request failed because the other end reset or closed the
/// connection (not a timeout, not a failure to connect).
fn broken_off(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// The error of an upload the service refused for size, in words that say
/// its limit; `how` is what the service said or did.
fn refused_for_size(name: &str, size: u64, content_type: &str, how: &str) -> ApiError {
    ApiError::TooLarge {
        message: format!(
            "the service refused {name:?} ({size} bytes) as too large: {how}. Its limit is {}",
            limits::limit_words(content_type)
        ),
    }
}

/// What the client knows of an upload the service took.
fn uploaded(
    answer: UploadResponse,
    name: &str,
    parent_id: Option<&str>,
    content_type: String,
    size: u64,
) -> MediaObject {
    MediaObject {
        id: answer.file_id,
        name: name.to_owned(),
        kind: ObjectKind::File,
        parent_id: parent_id.map(str::to_owned),
        content_type: Some(content_type),
        size: Some(size),
        path: None,
        url: Some(answer.url),
        created_at: Some(Utc::now()),
        updated_at: Some(Utc::now()),
    }
}

fn created_since(object: &MediaObject, since: DateTime<Utc>) -> bool {
    object.created_at.is_some_and(|t| t >= since)
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::Server {
        status: 200,
        message: format!("unexpected answer from the service ({e})"),
    })
}

/// reqwest's errors name the URL; ours never hold a token, but the message
/// also says what kind of failure it was, which users can act on.
fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "answer cut short"
    } else {
        "request failed"
    };
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    format!("{kind} ({detail})")
}

/// The file name on the upload's part. The `name` field carries the real
/// name; this one only goes into a `Content-Disposition` header, where a line
/// break or a quote would make the request malformed, so those become `_`.
fn part_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// A header's value as a number, if it is one.
fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::part_file_name;

    #[test]
    fn part_file_names_hold_no_header_breaking_characters() {
        assert_eq!(part_file_name("a\nb\r\"c\\d\te.txt"), "a_b__c_d_e.txt");
        assert_eq!(part_file_name("logo été.png"), "logo été.png");
    }
}
