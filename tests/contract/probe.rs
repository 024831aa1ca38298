//! Plain HTTP requests to the service, for the checks that must see what
//! the client under test hides (statuses, headers, the JSON as sent). They
//! keep to their own share of the rate limit; the client keeps to the rest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mediafs::api::client::API_VERSION;
use mediafs::api::rate_window::SlidingWindow;
use reqwest::header::HeaderMap;
use reqwest::RequestBuilder;
use serde_json::Value;

use super::Target;

/// The service's rate window when it announces none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Tries of a request the service refused with 429.
const TRIES_AFTER_429: u32 = 4;

/// An answer of the API, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    pub fn number_header(&self, name: &str) -> Option<u64> {
        self.header(name)?.trim().parse().ok()
    }

    /// Status and body, for a report.
    pub fn describe(&self) -> String {
        format!(
            "HTTP {}: {}",
            self.status,
            super::report::excerpt(&self.text)
        )
    }
}

/// An answer of a public file URL.
#[derive(Debug)]
pub struct Download {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Download {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

#[derive(Debug)]
pub struct Probe {
    api: reqwest::Client,
    /// Never carries a token: public URLs must work without one.
    downloads: reqwest::Client,
    base_url: String,
    location: String,
    token: String,
    window: Mutex<SlidingWindow>,
    paused_until: Mutex<Option<Instant>>,
    /// API requests sent, each try counted.
    pub sent: AtomicUsize,
    /// Of those, refused with 429.
    pub refused: AtomicUsize,
}

impl Probe {
    pub fn new(target: &Target, share: usize) -> Self {
        let agent = concat!("mediafs-contract/", env!("CARGO_PKG_VERSION"));
        let api = reqwest::Client::builder()
            .user_agent(agent)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client builds");
        let downloads = reqwest::Client::builder()
            .user_agent(agent)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client builds");
        Probe {
            api,
            downloads,
            base_url: target.base_url.clone(),
            location: target.location.clone(),
            token: target.token.expose().to_owned(),
            window: Mutex::new(window(share, DEFAULT_WINDOW)),
            paused_until: Mutex::new(None),
            sent: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        }
    }

    /// Keeps to `share` requests per `per` from now on.
    pub fn limit_to(&self, share: usize, per: Duration) {
        *self.window.lock().unwrap() = window(share, per);
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// `GET /medias/files` with `altType`, `altId` and `params`.
    pub async fn list(&self, params: &[(&str, &str)]) -> Result<Answer, String> {
        self.list_as(&self.token, &self.location, params).await
    }

    /// [`Self::list`] with another token, or for another location.
    pub async fn list_as(
        &self,
        token: &str,
        location: &str,
        params: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let url = format!("{}/medias/files", self.base_url);
        let mut query = vec![("altType", "location"), ("altId", location)];
        query.extend_from_slice(params);
        self.send(token, &|c| c.get(&url).query(&query)).await
    }

    /// A request to `path` of the API, built by `build` from the URL.
    pub async fn call(
        &self,
        path: &str,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base_url);
        self.send(&self.token, &|c| build(c, &url)).await
    }

    async fn send(
        &self,
        token: &str,
        build: &dyn Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Answer, String> {
        let mut tries = 0;
        loop {
            self.wait_for_room().await;
            let sent = build(&self.api)
                .bearer_auth(token)
                .header("Version", API_VERSION)
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let status = sent.status().as_u16();
            let headers = sent.headers().clone();
            let text = sent
                .text()
                .await
                .map_err(|e| format!("answer cut short: {e}"))?;
            let answer = Answer {
                status,
                headers,
                text,
            };
            self.observe(&answer);
            tries += 1;
            if status == 429 {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            if status != 429 || tries >= TRIES_AFTER_429 {
                return Ok(answer);
            }
            let wait = answer
                .number_header("retry-after")
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_WINDOW);
            self.pause(wait);
        }
    }

    /// A GET of a public file URL, without any token.
    pub async fn download(&self, url: &str, range: Option<&str>) -> Result<Download, String> {
        let mut req = self.downloads.get(url);
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("answer cut short: {e}"))?;
        Ok(Download {
            status,
            headers,
            body,
        })
    }

    async fn wait_for_room(&self) {
        loop {
            let now = Instant::now();
            let paused = *self.paused_until.lock().unwrap();
            let wait = match paused {
                Some(until) if until > now => until - now,
                _ => match self.window.lock().unwrap().try_acquire(now) {
                    Ok(_) => return,
                    Err(wait) => wait,
                },
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap();
        *paused = Some(paused.map_or(until, |u| u.max(until)));
    }

    /// Others share the service's window: when it says none is left, wait it out.
    fn observe(&self, answer: &Answer) {
        if answer.number_header("x-ratelimit-remaining") == Some(0) {
            let window = answer
                .number_header("x-ratelimit-interval-milliseconds")
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_WINDOW);
            self.pause(window);
        }
    }
}

/// A window of `max` per `per`, with 5% slack: the service's window starts
/// when a request arrives, ours when it leaves.
fn window(max: usize, per: Duration) -> SlidingWindow {
    SlidingWindow::new(max, per.mul_f64(1.05))
}
