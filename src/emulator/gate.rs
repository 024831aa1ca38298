//! What stands in front of the emulator's routes, as in front of the real
//! service: request counting, latency, the User-Agent and token checks, the
//! per-token rate limit with its headers, and injected failures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::quota::{Limits, QuotaKey};
use super::routes::error_response;
use super::{rules, scopes, Faults, SharedState, TokenGrant};

/// Request counts, for tests and benchmarks that count API calls.
#[derive(Debug, Default)]
pub struct Stats {
    api_requests: AtomicU64,
    download_requests: AtomicU64,
    /// API requests refused with a 429.
    rate_limited: AtomicU64,
    by_route: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn count_api(&self, route: String) {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
        *self.by_route.lock().unwrap().entry(route).or_default() += 1;
    }
}

pub async fn stats(State(state): State<SharedState>) -> Json<serde_json::Value> {
    let s = &state.stats;
    Json(json!({
        "api_requests": s.api_requests.load(Ordering::Relaxed),
        "download_requests": s.download_requests.load(Ordering::Relaxed),
        "rate_limited": s.rate_limited.load(Ordering::Relaxed),
        "by_route": *s.by_route.lock().unwrap(),
    }))
}

pub async fn reset_stats(State(state): State<SharedState>) -> StatusCode {
    state.stats.api_requests.store(0, Ordering::Relaxed);
    state.stats.download_requests.store(0, Ordering::Relaxed);
    state.stats.rate_limited.store(0, Ordering::Relaxed);
    state.stats.by_route.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

/// Query of `GET /_emulator/objects`.
#[derive(Debug, serde::Deserialize)]
pub struct ObjectsQuery {
    location: String,
}

/// Every object the store holds for a location, trashed and deleted ones
/// included (with their `status`), oldest first: the server's state as it
/// is, for tests that must not take the client's word for it.
pub async fn objects(
    State(state): State<SharedState>,
    axum::extract::Query(q): axum::extract::Query<ObjectsQuery>,
) -> Response {
    match state.store.all_objects(&q.location).await {
        Ok(all) => {
            let objects: Vec<serde_json::Value> = all
                .iter()
                .map(|o| {
                    let mut v = super::routes::object_json(o, &state.public_base);
                    v["status"] = json!(o.status.as_str());
                    v
                })
                .collect();
            Json(json!({ "objects": objects })).into_response()
        }
        Err(e) => super::routes::error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn get_faults(State(state): State<SharedState>) -> Json<Faults> {
    Json(state.faults.read().unwrap().clone())
}

/// Replaces the fault settings; fields left out take their defaults.
pub async fn set_faults(
    State(state): State<SharedState>,
    Json(changes): Json<serde_json::Value>,
) -> Response {
    // The fields given change; the others keep their values.
    let mut merged =
        serde_json::to_value(&*state.faults.read().unwrap()).expect("faults serialize");
    if let (Some(into), Some(from)) = (merged.as_object_mut(), changes.as_object()) {
        for (key, value) in from {
            into.insert(key.clone(), value.clone());
        }
    }
    let faults: Faults = match serde_json::from_value(merged) {
        Ok(f) => f,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &format!("bad faults: {e}")),
    };
    state.throttle.set_rate(faults.bandwidth);
    if changes.get("seed").is_some_and(|s| !s.is_null()) {
        *state.dice.lock().unwrap() = dice(&faults);
    }
    *state.faults.write().unwrap() = faults.clone();
    Json(faults).into_response()
}

/// The caller a request's token identifies, for handlers to check `altId` against.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenGrant);

/// How an injected failure strikes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    Status500,
    Drop,
}

/// The dice of injected failures, from `faults.seed` or a random one
/// (logged, so that a failing run can be replayed with `--fault-seed`; at
/// debug level while no failures are injected).
pub fn dice(faults: &Faults) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let seed = faults.seed.unwrap_or_else(rand::random);
    let level = if faults.fail_rate > 0.0 {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    log::log!(
        level,
        "injected failures are drawn with seed {seed} (--fault-seed {seed} replays them)"
    );
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Rolls the dice for a request to `route`: `None`, or a failure and
/// whether it strikes after the work.
fn roll_failure(state: &super::AppState, route: &str) -> Option<(Failure, bool)> {
    use rand::Rng;
    let faults = state.faults.read().unwrap();
    if faults.fail_rate <= 0.0 {
        return None;
    }
    let mut dice = state.dice.lock().unwrap();
    if dice.gen::<f64>() >= faults.fail_rate {
        return None;
    }
    if !faults.fail_routes.is_empty() && !faults.fail_routes.iter().any(|r| r == route) {
        return None;
    }
    let kind = if dice.gen::<bool>() {
        Failure::Status500
    } else {
        Failure::Drop
    };
    Some((kind, dice.gen::<f64>() < faults.fail_after_share))
}

fn failure_response(kind: Failure) -> Response {
    match kind {
        Failure::Status500 => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
        Failure::Drop => dropped_connection(),
    }
}

/// A response whose body fails at once: the server closes the connection
/// before a whole answer is out, as a crash or a reset would.
fn dropped_connection() -> Response {
    let body = Body::from_stream(futures::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected drop",
        ))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-length", "1024")
        .body(body)
        .expect("a static response builds")
}

async fn add_latency(state: &SharedState) {
    let ms = state.faults.read().unwrap().latency_ms;
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Who a token speaks for: a configured token, or one `/oauth/token` issued
/// and not yet expired; otherwise the message of the 401.
/// Who a token speaks for, and whose quota its requests count against.
fn caller_of(
    state: &SharedState,
    token: Option<&str>,
) -> Result<(TokenGrant, QuotaKey), &'static str> {
    let invalid = "Invalid token: access token is invalid";
    let token = token.ok_or(invalid)?;
    if state.revoked.lock().unwrap().contains(token) {
        return Err(invalid);
    }
    if let Some(g) = state.grants.iter().find(|g| g.token == token) {
        // A Private Integration token is an integration of its own.
        return Ok((g.clone(), QuotaKey::Token(token.to_owned())));
    }
    match state.issued.lock().unwrap().get(token) {
        Some(issued) if issued.expires > Instant::now() => Ok((
            TokenGrant::new(token, Some(issued.location.clone())),
            QuotaKey::AppAtLocation {
                app: issued.app.clone(),
                location: issued.location.clone(),
            },
        )),
        Some(_) => Err("Invalid JWT: access token has expired"),
        None => Err(invalid),
    }
}

/// The limits the faults set for requests counted against `key`.
fn limits_for(faults: &Faults, key: &QuotaKey) -> Limits {
    let location = match key {
        QuotaKey::AppAtLocation { location, .. } => Some(location),
        QuotaKey::Token(_) => None,
    };
    Limits {
        window: faults.rate_window,
        burst: faults.rate_limit,
        daily: location
            .and_then(|l| faults.daily_limits.get(l).copied())
            .unwrap_or(rules::DAILY_LIMIT),
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

pub async fn api_gate(State(state): State<SharedState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let route = format!("{} {}", req.method(), route);
    state.stats.count_api(route.clone());
    log::debug!("emulator: {} {}", req.method(), req.uri());
    add_latency(&state).await;

    let headers = req.headers();
    if headers.get("user-agent").is_none_or(|v| v.is_empty()) {
        return error_response(
            StatusCode::FORBIDDEN,
            "Forbidden: a User-Agent header is required",
        );
    }
    let (grant, quota_key) = match caller_of(&state, bearer(headers)) {
        Ok(caller) => caller,
        Err(message) => return error_response(StatusCode::UNAUTHORIZED, message),
    };
    if headers.get("version").is_none() {
        return error_response(StatusCode::BAD_REQUEST, "Version header was not found");
    }

    let limits = limits_for(&state.faults.read().unwrap(), &quota_key);
    let failure = roll_failure(&state, &route);
    let limit_headers = match state.quotas.admit(&quota_key, limits) {
        Ok(h) => h,
        Err(h) => {
            state.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut resp = error_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            resp.headers_mut().extend(h);
            return resp;
        }
    };
    // Past the rate limit's count, as a refusal of the service's own.
    if !grant.scopes.contains(&scopes::required(&route)) {
        let mut resp = scopes::refusal();
        resp.headers_mut().extend(limit_headers);
        return resp;
    }
    req.extensions_mut().insert(Caller(grant));

    let mut resp = match failure {
        Some((kind, false)) => {
            log::debug!("emulator: injecting {kind:?} before handling {route}");
            failure_response(kind)
        }
        Some((kind, true)) => {
            let done = next.run(req).await;
            log::debug!(
                "emulator: injecting {kind:?} after handling {route} ({})",
                done.status()
            );
            failure_response(kind)
        }
        None => next.run(req).await,
    };
    resp.headers_mut().extend(limit_headers);
    resp
}

/// In front of the public file URLs: counting, latency and failures (a 500,
/// or a connection dropped before or partway through the bytes).
pub async fn download_gate(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    state
        .stats
        .download_requests
        .fetch_add(1, Ordering::Relaxed);
    add_latency(&state).await;
    let failure = roll_failure(&state, "GET /msgsndr");
    match failure {
        None => next.run(req).await,
        Some((kind, false)) => failure_response(kind),
        Some((_, true)) => cut_short(next.run(req).await),
    }
}

/// Lets the head and part of the body through, then breaks the connection.
fn cut_short(resp: Response) -> Response {
    use futures::StreamExt;
    let (parts, body) = resp.into_parts();
    let stream = body
        .into_data_stream()
        .take(1)
        .chain(futures::stream::once(async {
            // Time for the server to flush what went before: a body that
            // fails at once is dropped unsent, and the client would never
            // see a partial answer.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected drop",
            )))
        }));
    Response::from_parts(parts, Body::from_stream(stream)).into_response()
}
