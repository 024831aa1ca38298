//! `POST /oauth/token` with `grant_type=refresh_token`, as the real service
//! answers it: a new access token that expires, and a new refresh token that
//! replaces the old one (each refresh token works once).

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
    pub expires: Instant,
}

fn new_token(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
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
    let location = state
        .refresh_tokens
        .lock()
        .unwrap()
        .remove(field("refresh_token"));
    let Some(location) = location else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Invalid grant: refresh token is invalid or was used",
        );
    };
    let access = new_token("at");
    let refresh = new_token("rt");
    state
        .refresh_tokens
        .lock()
        .unwrap()
        .insert(refresh.clone(), location.clone());
    state.issued.lock().unwrap().insert(
        access.clone(),
        Issued {
            location: location.clone(),
            expires: Instant::now() + state.access_token_ttl,
        },
    );
    Json(json!({
        "access_token": access, "token_type": "Bearer",
        "expires_in": state.access_token_ttl.as_secs_f64(), "refresh_token": refresh,
        "scope": "medias.readonly medias.write", "userType": "Location",
        "locationId": location, "companyId": "emulated-company", "userId": "emulated-user",
    }))
    .into_response()
}

/// `POST /_emulator/revoke {"token": ...}`: the token stops working, as when
/// a user deletes a Private Integration or uninstalls an app.
pub async fn revoke(
    State(state): State<SharedState>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    state.revoked.lock().unwrap().insert(token.clone());
    state.issued.lock().unwrap().remove(&token);
    StatusCode::NO_CONTENT
}
