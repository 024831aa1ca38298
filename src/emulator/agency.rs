//! The agency endpoints of `highlevel-oauth.openapi.json`: an agency
//! (Company) token lists the sub-accounts where its app is installed
//! (`GET /oauth/installedLocations`, paged by `skip` and `limit`) and turns
//! into a token for one of them (`POST /oauth/locationToken`, form-encoded
//! `companyId` and `locationId`). Location tokens are JWTs that expire, as
//! `/oauth/token`'s are. `POST /_emulator/uninstall` takes a location from
//! an agency, as uninstalling the app there does: its tokens stop working,
//! and it is listed with `isInstalled: false` (unless `isInstalled=true`
//! is asked). `POST /_emulator/install` puts the app on a location.
//!
//! The spec gives the shapes of the answers, not the words of refusals;
//! those here are guesses, marked so.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::json;

use super::routes::{error_response, invalid};
use super::SharedState;

/// Locations per page when `limit` is not given (the spec's default).
const DEFAULT_LIMIT: usize = 20;

/// An agency token and the locations its app is installed on.
#[derive(Debug, Clone)]
pub struct AgencyGrant {
    pub token: String,
    pub company: String,
    pub app: String,
    /// Location ids, in the order they were installed.
    pub installed: Vec<String>,
    /// Locations the app was uninstalled from.
    pub left: Vec<String>,
    /// A refresh token of the agency's (`user_type=Company` at
    /// `/oauth/token`), valid at start; each works once.
    pub refresh_token: Option<String>,
}

impl AgencyGrant {
    pub fn new(token: &str, company: &str, app: &str, installed: Vec<String>) -> Self {
        AgencyGrant {
            token: token.into(),
            company: company.into(),
            app: app.into(),
            installed,
            left: Vec::new(),
            refresh_token: None,
        }
    }
}

/// The agency whose token the request carries, or the refusal to send.
fn agency_of(
    state: &SharedState,
    headers: &HeaderMap,
) -> Result<AgencyGrant, (StatusCode, &'static str)> {
    if headers.get("version").is_none() {
        return Err((StatusCode::BAD_REQUEST, "Version header was not found"));
    }
    let invalid = (
        StatusCode::UNAUTHORIZED,
        "Invalid token: access token is invalid",
    );
    let token = super::gate::bearer(headers).ok_or(invalid)?;
    if state.revoked.lock().unwrap().contains(token) {
        return Err(invalid);
    }
    let issued_to = match state.agency_tokens.lock().unwrap().get(token) {
        Some((_, expires)) if *expires <= std::time::Instant::now() => {
            return Err((
                StatusCode::UNAUTHORIZED,
                "Invalid JWT: access token has expired",
            ))
        }
        Some((company, _)) => Some(company.clone()),
        None => None,
    };
    let agencies = state.agencies.lock().unwrap();
    agencies
        .iter()
        .find(|a| {
            issued_to
                .as_ref()
                .map_or(a.token == token, |c| a.company == *c)
        })
        .cloned()
        .ok_or(invalid)
}

/// The refusal of a company the token is not for (its words a guess).
fn other_company(agency: &AgencyGrant, asked: &str) -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        &format!(
            "Your token grants access to company {} but you're requesting {asked}",
            agency.company
        ),
    )
}

pub async fn installed_locations(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let agency = match agency_of(&state, &headers) {
        Ok(a) => a,
        Err((status, says)) => return error_response(status, says),
    };
    let missing: Vec<&str> = [
        ("companyId", "companyId must be a string"),
        ("appId", "appId must be a string"),
    ]
    .into_iter()
    .filter(|(name, _)| query.get(*name).is_none_or(|v| v.is_empty()))
    .map(|(_, says)| says)
    .collect();
    if !missing.is_empty() {
        return invalid(&missing);
    }
    if query["companyId"] != agency.company {
        return other_company(&agency, &query["companyId"]);
    }
    let number = |name: &str, default: usize| match query.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("{name} must be a number string")),
    };
    let (skip, limit) = match (number("skip", 0), number("limit", DEFAULT_LIMIT)) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => return invalid(&[e.as_str()]),
    };
    let wanted = query.get("query").map(|q| q.to_lowercase());
    let installed_only = match query.get("isInstalled").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return invalid(&["isInstalled must be a boolean value"]),
    };
    // A wrong appId has no installations.
    let same_app = query["appId"] == agency.app;
    let installed = agency.installed.iter().map(|id| (id, true));
    let left = agency.left.iter().map(|id| (id, false));
    let matching: Vec<serde_json::Value> = installed
        .chain(left)
        .filter(|_| same_app)
        .filter(|(_, is)| installed_only.is_none_or(|wanted| wanted == *is))
        .map(|(id, is)| (id, is, state.location_name(id)))
        .filter(|(_, _, name)| {
            wanted
                .as_ref()
                .is_none_or(|w| name.to_lowercase().contains(w))
        })
        .map(|(id, is, name)| json!({"_id": id, "name": name, "address": "", "isInstalled": is}))
        .collect();
    let count = matching.len();
    let page: Vec<_> = matching.into_iter().skip(skip).take(limit).collect();
    Json(json!({"locations": page, "count": count, "installToFutureLocations": false}))
        .into_response()
}

pub async fn location_token(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let agency = match agency_of(&state, &headers) {
        Ok(a) => a,
        Err((status, says)) => return error_response(status, says),
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("companyId").is_empty() || field("locationId").is_empty() {
        return invalid(&["companyId must be a string", "locationId must be a string"]);
    }
    if field("companyId") != agency.company {
        return other_company(&agency, field("companyId"));
    }
    let location = field("locationId");
    if !agency.installed.iter().any(|l| l == location) {
        // Its words a guess: the spec names a 400 and no message.
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!("The app is not installed on location {location}"),
        );
    }
    let access = super::oauth::issue(&state, location, &agency.app, Some(&agency.company));
    Json(json!({
        "access_token": access, "token_type": "Bearer",
        "expires_in": state.access_token_ttl.as_secs_f64(),
        "scope": "medias.readonly medias.write", "userType": "Location",
        "locationId": location, "companyId": agency.company,
    }))
    .into_response()
}

/// `POST /_emulator/uninstall {"company": ..., "location": ...}`: the app
/// leaves the location; the tokens the agency got for it stop working.
pub async fn uninstall(
    State(state): State<SharedState>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let company = body["company"].as_str().unwrap_or_default();
    let location = body["location"].as_str().unwrap_or_default();
    for agency in state.agencies.lock().unwrap().iter_mut() {
        if agency.company == company && agency.installed.iter().any(|l| l == location) {
            agency.installed.retain(|l| l != location);
            agency.left.push(location.to_owned());
        }
    }
    state.issued.lock().unwrap().retain(|_, issued| {
        !(issued.location == location && issued.company.as_deref() == Some(company))
    });
    StatusCode::NO_CONTENT
}

/// `POST /_emulator/install {"company": ..., "location": ...}`: the app is
/// installed on one more of the agency's locations.
pub async fn install(
    State(state): State<SharedState>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let company = body["company"].as_str().unwrap_or_default();
    let location = body["location"].as_str().unwrap_or_default();
    let mut agencies = state.agencies.lock().unwrap();
    let Some(agency) = agencies.iter_mut().find(|a| a.company == company) else {
        return StatusCode::NOT_FOUND;
    };
    agency.left.retain(|l| l != location);
    if !agency.installed.iter().any(|l| l == location) {
        agency.installed.push(location.to_owned());
    }
    StatusCode::NO_CONTENT
}
