//! `POST /oauth/token` with `grant_type=refresh_token`, as the real service
//! answers it: a new access token that expires, and a new refresh token that
//! replaces the old one (each refresh token works once). Access tokens are
//! JWTs, as HighLevel's are, whose payload says what they are for.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::json;

use super::routes::error_response;
use super::SharedState;

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub location: String,
    /// The OAuth app it was issued to: the service's limits count per app
    /// per location.
    pub app: String,
    pub expires: Instant,
    /// The agency (company) it was issued to, for a location token.
    pub company: Option<String>,
}

fn new_token(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An access token shaped as HighLevel's: a JWT whose payload names its
/// auth class and id, its scopes and its expiry. Its signature is random:
/// the emulator knows its tokens by their whole text, not by checking one.
fn access_jwt(location: &str, client_id: &str, ttl: std::time::Duration) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let issued_at = chrono::Utc::now().timestamp();
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let payload = json!({
        "authClass": "Location", "authClassId": location, "primaryAuthClassId": location,
        "source": "INTEGRATION", "sourceId": client_id, "channel": "OAUTH",
        "oauthMeta": {"scopes": ["medias.readonly", "medias.write"], "client": client_id},
        "iat": issued_at, "exp": issued_at + ttl.as_secs() as i64,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
    });
    let signature: [u8; 32] = rand::random();
    [
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature),
    ]
    .join(".")
}

/// A new access token for `location`, valid for the configured lifetime.
pub fn issue(
    state: &SharedState,
    location: &str,
    client_id: &str,
    company: Option<&str>,
) -> String {
    let access = access_jwt(location, client_id, state.access_token_ttl);
    state.issued.lock().unwrap().insert(
        access.clone(),
        Issued {
            location: location.to_owned(),
            app: client_id.to_owned(),
            expires: Instant::now() + state.access_token_ttl,
            company: company.map(str::to_owned),
        },
    );
    access
}

/// Whom a refresh token was issued to: a location, or an agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Location(String),
    Company(String),
}

pub async fn token(
    State(state): State<SharedState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let client_ok = state
        .oauth_clients
        .iter()
        .any(|(id, secret)| id == field("client_id") && secret == field("client_secret"));
    if !client_ok {
        return error_response(StatusCode::UNAUTHORIZED, "Invalid client credentials");
    }
    if field("grant_type") != "refresh_token" {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Only grant_type=refresh_token is emulated",
        );
    }
    let mut refresh_tokens = state.refresh_tokens.lock().unwrap();
    let Some(holder) = refresh_tokens.remove(field("refresh_token")) else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Invalid grant: refresh token is invalid or was used",
        );
    };
    // The spec makes user_type optional; one that names the other kind of
    // holder is refused (its words a guess), and the refresh token kept.
    let asked = field("user_type");
    let kind = match &holder {
        Holder::Location(_) => "Location",
        Holder::Company(_) => "Company",
    };
    if !asked.is_empty() && asked != kind {
        refresh_tokens.insert(field("refresh_token").to_owned(), holder);
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!("user_type {asked} does not match this refresh token, which is a {kind}'s"),
        );
    }
    let refresh = new_token("rt");
    refresh_tokens.insert(refresh.clone(), holder.clone());
    drop(refresh_tokens);
    let client = field("client_id");
    let (access, holder_fields) = match &holder {
        Holder::Location(location) => (
            issue(&state, location, client, None),
            json!({"locationId": location, "companyId": "emulated-company"}),
        ),
        Holder::Company(company) => (
            issue_agency(&state, company),
            json!({"companyId": company, "approvedLocations": state.installed_of(company)}),
        ),
    };
    let mut answer = json!({
        "access_token": access, "token_type": "Bearer",
        "expires_in": state.access_token_ttl.as_secs_f64(), "refresh_token": refresh,
        "scope": "medias.readonly medias.write", "userType": kind, "userId": "emulated-user",
    });
    answer
        .as_object_mut()
        .expect("an object")
        .extend(holder_fields.as_object().expect("an object").clone());
    Json(answer).into_response()
}

/// A new agency (Company) access token, valid for the configured lifetime:
/// it lists the agency's locations and gets tokens for them, and reaches
/// no media library itself.
fn issue_agency(state: &SharedState, company: &str) -> String {
    let access = new_token("agency");
    state.agency_tokens.lock().unwrap().insert(
        access.clone(),
        (company.to_owned(), Instant::now() + state.access_token_ttl),
    );
    access
}

/// `POST /_emulator/revoke {"token": ...}`: the token stops working, as when
/// a user deletes a Private Integration or uninstalls an app. With
/// `{"location": ...}` instead, every token issued for that location stops
/// (the app stays installed: a new one can be got).
pub async fn revoke(
    State(state): State<SharedState>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    if let Some(location) = body["location"].as_str() {
        let mut issued = state.issued.lock().unwrap();
        let ended: Vec<String> = issued
            .iter()
            .filter(|(_, i)| i.location == location)
            .map(|(t, _)| t.clone())
            .collect();
        for token in ended {
            issued.remove(&token);
            state.revoked.lock().unwrap().insert(token);
        }
        return StatusCode::NO_CONTENT;
    }
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    state.revoked.lock().unwrap().insert(token.clone());
    state.issued.lock().unwrap().remove(&token);
    StatusCode::NO_CONTENT
}
