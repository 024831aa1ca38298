//! The seven API endpoints, answering with the statuses and JSON shapes the
//! real service gives (see `shared/api/HIGHLEVEL-MEDIA.md`).
// A ready answer is the natural error of a handler's steps; boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::gate::Caller;
use super::rules::{self, is_refused_type, MAX_NAME_CHARS};
use super::store::{Kind, Listing, Object, SortColumn, Status};
use super::SharedState;

/// Page size when a listing gives no `limit`.
const DEFAULT_LIMIT: u64 = 20;

fn trace_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An error in the service's shape: `{"statusCode", "message", "traceId"}`,
/// with `"error": "Unauthorized"` on a 401.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let mut body =
        json!({"statusCode": status.as_u16(), "message": message, "traceId": trace_id()});
    if status == StatusCode::UNAUTHORIZED {
        body["error"] = json!("Unauthorized");
    }
    (status, Json(body)).into_response()
}

/// A validation failure: 422 with `message` as an array of strings.
pub fn invalid(messages: &[&str]) -> Response {
    let body = json!({"statusCode": 422, "message": messages, "error": "Unprocessable Entity", "traceId": trace_id()});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    log::error!("emulator: {e}");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "File or folder not found")
}

/// A JSON body and the location it may act on.
fn json_and_location(
    state: &SharedState,
    caller: &Caller,
    body: &Bytes,
) -> Result<(Value, String), Response> {
    let body = parse_body(body)?;
    let location = location_for(
        state,
        caller,
        body["altType"].as_str(),
        body["altId"].as_str(),
    )?;
    Ok((body, location))
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            &format!("Unexpected token in JSON: {e}"),
        )
    })
}

/// The location a request may act on: its `altType`/`altId`, checked against the token.
fn location_for(
    state: &SharedState,
    caller: &Caller,
    alt_type: Option<&str>,
    alt_id: Option<&str>,
) -> Result<String, Response> {
    let mut problems = Vec::new();
    if alt_type != Some("location") {
        problems.push("altType must be one of the following values: location");
    }
    if alt_id.is_none_or(str::is_empty) {
        problems.push("altId should not be empty");
    }
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    let alt_id = alt_id.unwrap_or_default();
    if let Some(granted) = &caller.0.location {
        if granted != alt_id {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Your token grants access to location {granted} but you're requesting {alt_id}"
                ),
            ));
        }
    }
    if !state.locations.iter().any(|l| l == alt_id) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            "The token does not have access to this location.",
        ));
    }
    Ok(alt_id.to_owned())
}

fn timestamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An object as the service lists it, extra fields and all.
pub fn object_json(o: &Object, public_base: &str) -> Value {
    let mut v = json!({
        "_id": o.id, "altId": o.location, "altType": "location", "name": o.name,
        "type": o.kind.as_str(), "createdAt": timestamp(o.created_at),
        "updatedAt": timestamp(o.updated_at), "__v": 0,
    });
    match o.kind {
        Kind::Folder => {
            // Folders at the root carry `parentId: null`; files there, none.
            v["parentId"] = json!(o.parent_id);
            v["isPrivate"] = json!(false);
            v["deleted"] = json!(false);
            v["category"] = json!("media");
            v["appFolder"] = json!(false);
        }
        Kind::File => {
            if let Some(p) = &o.parent_id {
                v["parentId"] = json!(p);
            }
            let path = o.storage_path();
            v["contentType"] = json!(o.content_type);
            v["size"] = json!(o.size);
            v["url"] = json!(format!("{public_base}/msgsndr/{path}"));
            v["path"] = json!(path);
        }
    }
    v
}

fn check_name(name: Option<&str>) -> Result<String, Response> {
    match name.map(str::trim) {
        None | Some("") => Err(invalid(&[
            "name should not be empty",
            "name must be a string",
        ])),
        Some(_) if name.unwrap_or_default().chars().count() > MAX_NAME_CHARS => {
            Err(invalid(&[&format!(
                "name must be shorter than or equal to {MAX_NAME_CHARS} characters"
            )]))
        }
        Some(_) => Ok(name.unwrap_or_default().to_owned()),
    }
}

/// `parentId` must name an active folder of the location; absent or empty is the root.
async fn check_parent(
    state: &SharedState,
    location: &str,
    parent: Option<&str>,
) -> Result<Option<String>, Response> {
    let Some(parent) = parent.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    match state.store.get(parent).await.map_err(internal)? {
        Some(p)
            if p.kind == Kind::Folder && p.status == Status::Active && p.location == location =>
        {
            Ok(Some(p.id))
        }
        _ => Err(error_response(
            StatusCode::NOT_FOUND,
            "Parent folder not found",
        )),
    }
}

// ---- GET /medias/files ----

pub async fn list_files(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match location_for(
        &state,
        &caller,
        q.get("altType").map(String::as_str),
        q.get("altId").map(String::as_str),
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let fetch_all_max = state.faults.read().unwrap().fetch_all_max;
    let listing = match listing_asked(&q, location, fetch_all_max) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match state.store.list(listing).await {
        Ok((objects, count)) => {
            let files: Vec<Value> = objects
                .iter()
                .map(|o| object_json(o, &state.public_base))
                .collect();
            Json(json!({"files": files, "count": count, "traceId": trace_id()})).into_response()
        }
        Err(e) => internal(e),
    }
}

/// The listing a query asks for, or the 422 its first bad parameter gets.
fn listing_asked(
    q: &HashMap<String, String>,
    location: String,
    fetch_all_max: Option<u64>,
) -> Result<Listing, Response> {
    let kind = match q.get("type").map(String::as_str) {
        None | Some("") => {
            return Err(invalid(&[
                "type should not be empty",
                "type must be one of the following values: file, folder",
            ]))
        }
        Some(t) => Kind::parse(t)
            .ok_or_else(|| invalid(&["type must be one of the following values: file, folder"]))?,
    };
    let sort = match q.get("sortBy").map(String::as_str).unwrap_or("createdAt") {
        "createdAt" => SortColumn::CreatedAt,
        "updatedAt" => SortColumn::UpdatedAt,
        "name" => SortColumn::Name,
        _ => {
            return Err(invalid(&[
                "sortBy must be one of the following values: createdAt, updatedAt, name",
            ]))
        }
    };
    let descending = match q.get("sortOrder").map(String::as_str).unwrap_or("desc") {
        "asc" => false,
        "desc" => true,
        _ => {
            return Err(invalid(&[
                "sortOrder must be one of the following values: asc, desc",
            ]))
        }
    };
    let number = |key: &str| -> Result<Option<u64>, Response> {
        match q.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid(&[&format!("{key} must be a number string")])),
        }
    };
    let (offset, limit) = (number("offset")?, number("limit")?);
    let fetch_all = q.get("fetchAll").is_some_and(|v| v == "true");
    Ok(Listing {
        location,
        kind,
        parent_id: q.get("parentId").filter(|p| !p.is_empty()).cloned(),
        fetch_all,
        query: q.get("query").filter(|p| !p.is_empty()).cloned(),
        sort,
        descending,
        // `fetchAll` answers every object at once (or as many as a cap set
        // for tests lets through, the count still saying all).
        offset: if fetch_all { 0 } else { offset.unwrap_or(0) },
        limit: if fetch_all {
            fetch_all_max
        } else {
            Some(limit.unwrap_or(DEFAULT_LIMIT))
        },
    })
}

// ---- POST /medias/upload-file ----

/// A file part streamed to disk.
struct Received {
    path: std::path::PathBuf,
    content_type: String,
    file_name: Option<String>,
    size: u64,
}

/// Removes an upload's temp file unless it was committed.
struct Incoming(Option<std::path::PathBuf>);

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The 413, sent as a front end sends it: at once, while the client is
/// still sending, and the rest of the body is never read (the connection
/// closes; a client may see its send fail rather than this answer).
fn too_large(content_type: &str) -> Response {
    let mut resp = error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &rules::too_large_message(content_type),
    );
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

fn refused_type(content_type: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        &rules::refused_type_message(content_type),
    )
}

/// Streams bytes into a new incoming file, failing as soon as they pass
/// the type's size limit.
async fn receive<S, E>(
    state: &SharedState,
    mut chunks: S,
    content_type: &str,
    guard: &mut Incoming,
) -> Result<u64, Response>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    let path = state.store.incoming_path();
    let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
    guard.0 = Some(path);
    let unit = state.faults.read().unwrap().size_unit;
    let limit = rules::max_upload_bytes(content_type, unit);
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            error_response(StatusCode::BAD_REQUEST, &format!("Upload interrupted: {e}"))
        })?;
        state.throttle.take(chunk.len()).await;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(content_type));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(size)
}

pub async fn upload_file(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    form: Multipart,
) -> Response {
    let mut guard = Incoming(None);
    let (fields, mut received) = match read_form(&state, form, &mut guard).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let field = |k: &str| fields.get(k).map(String::as_str);
    let location = match location_for(&state, &caller, field("altType"), field("altId")) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if field("hosted") == Some("true") {
        let Some(url) = field("fileUrl").filter(|u| !u.is_empty()) else {
            return invalid(&["fileUrl is required when hosted is true"]);
        };
        received = match fetch_hosted(&state, url, &mut guard).await {
            Ok(r) => Some(r),
            Err(r) => return r,
        };
    }
    let Some(received) = received else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "File is required when hosted is not true",
        );
    };
    let name = match check_name(field("name").or(received.file_name.as_deref())) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let parent_id = match check_parent(&state, &location, field("parentId")).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    store_upload(
        &state,
        Object::new(&location, &name, Kind::File, parent_id),
        received,
        guard,
    )
    .await
}

/// The form's text fields, and its file part streamed to disk (refused
/// at once when its type is, or past its size limit).
async fn read_form(
    state: &SharedState,
    mut form: Multipart,
    guard: &mut Incoming,
) -> Result<(HashMap<String, String>, Option<Received>), Response> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        error_response(
            StatusCode::BAD_REQUEST,
            &format!("Malformed multipart body: {e}"),
        )
    };
    let mut fields = HashMap::new();
    let mut received = None;
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            fields.insert(name, field.text().await.map_err(malformed)?);
            continue;
        }
        let content_type = field
            .content_type()
            .unwrap_or(rules::UNTYPED_PART)
            .to_owned();
        if is_refused_type(&content_type) {
            return Err(refused_type(&content_type));
        }
        let file_name = field.file_name().map(str::to_owned);
        let size = receive(state, field, &content_type, guard).await?;
        received = Some(Received {
            path: guard.0.clone().expect("receive sets the path"),
            content_type,
            file_name,
            size,
        });
    }
    Ok((fields, received))
}

/// Stores a received file as `object` (a new file, its place and name
/// checked) and answers its id and URL.
async fn store_upload(
    state: &SharedState,
    object: Object,
    received: Received,
    mut guard: Incoming,
) -> Response {
    let id = object.id.clone();
    let ext = mime_guess::get_mime_extensions_str(&received.content_type)
        .and_then(|exts| exts.first().map(|e| e.to_string()))
        .or_else(|| {
            object
                .name
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
        });
    if let Err(e) = state.store.commit_blob(&received.path, &id) {
        return internal(e);
    }
    guard.0 = None;
    let object = Object {
        content_type: Some(received.content_type),
        size: Some(received.size),
        ext,
        ..object
    };
    let url = format!("{}/msgsndr/{}", state.public_base, object.storage_path());
    if let Err(e) = state.store.insert(object).await {
        state.store.remove_blobs(&[id]);
        return internal(e);
    }
    Json(json!({"fileId": id, "url": url, "traceId": trace_id()})).into_response()
}

/// `hosted=true`: the service fetches `fileUrl` itself.
async fn fetch_hosted(
    state: &SharedState,
    url: &str,
    guard: &mut Incoming,
) -> Result<Received, Response> {
    let resp = state
        .http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                &format!("Could not fetch fileUrl: {e}"),
            )
        })?;
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .unwrap_or_else(|| rules::UNTYPED_PART.into());
    if is_refused_type(&content_type) {
        return Err(refused_type(&content_type));
    }
    let file_name = url
        .rsplit('/')
        .next()
        .map(|n| n.split('?').next().unwrap_or(n).to_owned());
    let size = receive(state, resp.bytes_stream(), &content_type, guard).await?;
    Ok(Received {
        path: guard.0.clone().expect("receive sets the path"),
        content_type,
        file_name,
        size,
    })
}

// ---- POST /medias/folder ----

pub async fn create_folder(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let (body, location) = match json_and_location(&state, &caller, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = match check_name(body["name"].as_str()) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let parent_id = match check_parent(&state, &location, body["parentId"].as_str()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let folder = Object::new(&location, &name, Kind::Folder, parent_id);
    let mut answer = object_json(&folder, &state.public_base);
    if let Err(e) = state.store.insert(folder).await {
        return internal(e);
    }
    answer["traceId"] = json!(trace_id());
    (StatusCode::CREATED, Json(answer)).into_response()
}

// ---- renames ----

/// The update calls rename only: a `parentId` (a move) is refused.
fn refuse_move(item: &Value) -> Result<(), Response> {
    if item.get("parentId").is_some() {
        return Err(invalid(&["property parentId should not exist"]));
    }
    Ok(())
}

pub async fn update_one(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let checked = location_for(
        &state,
        &caller,
        body["altType"].as_str(),
        body["altId"].as_str(),
    )
    .and_then(|l| refuse_move(&body).map(|_| l))
    .and_then(|l| check_name(body["name"].as_str()).map(|n| (l, n)));
    let (location, name) = match checked {
        Ok(v) => v,
        Err(r) => return r,
    };
    match state.store.rename(&location, &id, &name).await {
        Ok(true) => Json(json!({"updated": true, "traceId": trace_id()})).into_response(),
        Ok(false) => not_found(),
        Err(e) => internal(e),
    }
}

pub async fn update_many(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let (body, location) = match json_and_location(&state, &caller, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(items) = body["filesToBeUpdated"].as_array() else {
        return invalid(&["filesToBeUpdated must be an array"]);
    };
    let mut renames = Vec::new();
    for item in items {
        let checked = refuse_move(item).and_then(|_| check_name(item["name"].as_str()));
        match (checked, item["id"].as_str()) {
            (Ok(name), Some(id)) => renames.push((id.to_owned(), name)),
            (Err(r), _) => return r,
            (_, None) => return invalid(&["filesToBeUpdated.id should not be empty"]),
        }
    }
    let mut results = Vec::new();
    for (id, name) in renames {
        match state.store.rename(&location, &id, &name).await {
            Ok(updated) => results.push(json!({"updated": updated, "id": id})),
            Err(e) => return internal(e),
        }
    }
    Json(Value::Array(results)).into_response()
}

// ---- deletes ----

pub async fn delete_many(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let (body, location) = match json_and_location(&state, &caller, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = match body["status"].as_str() {
        Some("trashed") => Status::Trashed,
        Some("deleted") => Status::Deleted,
        _ => return invalid(&["status must be one of the following values: deleted, trashed"]),
    };
    let Some(items) = body["filesToBeDeleted"].as_array() else {
        return invalid(&["filesToBeDeleted must be an array"]);
    };
    let mut results = Vec::new();
    for item in items {
        let Some(id) = item["_id"].as_str() else {
            return invalid(&["filesToBeDeleted._id should not be empty"]);
        };
        match state.store.set_status(&location, id, status).await {
            Ok((existed, gone)) => {
                state.store.remove_blobs(&gone);
                results.push(json!({"deleted": existed, "id": id}));
            }
            Err(e) => return internal(e),
        }
    }
    Json(Value::Array(results)).into_response()
}

pub async fn delete_one(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match location_for(
        &state,
        &caller,
        q.get("altType").map(String::as_str),
        q.get("altId").map(String::as_str),
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match state
        .store
        .set_status(&location, &id, Status::Deleted)
        .await
    {
        Ok((true, gone)) => {
            state.store.remove_blobs(&gone);
            Json(json!({"deleted": true, "traceId": trace_id()})).into_response()
        }
        Ok((false, _)) => not_found(),
        Err(e) => internal(e),
    }
}
