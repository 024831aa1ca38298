//! Public file URLs, served like Google Cloud Storage serves the real ones:
//! no token, `Content-Length`, the stored `Content-Type`, and single byte
//! ranges answered with 206. Bytes are streamed from disk, never held whole.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::store::{Kind, Status};
use super::SharedState;

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// The single range asked for, as `(first, last)` inclusive; `Ok(None)` for the whole object.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let ranges = http_range_header::parse_range_header(value)
        .and_then(|r| r.validate(size))
        .map_err(|_| ())?;
    // Like GCS, several ranges at once get the whole object.
    match ranges.as_slice() {
        [one] => Ok(Some((*one.start(), *one.end()))),
        _ => Ok(None),
    }
}

pub async fn serve(
    State(state): State<SharedState>,
    Path((location, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let id = file.split('.').next().unwrap_or_default().to_owned();
    let object = match state.store.get(&id).await {
        Ok(Some(o))
            if o.kind == Kind::File && o.location == location && o.status != Status::Deleted =>
        {
            o
        }
        Ok(_) => return plain(StatusCode::NOT_FOUND, "No such object."),
        Err(e) => {
            log::error!("emulator: {e}");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
        }
    };
    let size = object.size.unwrap_or(0);
    let range = match requested_range(&headers, size) {
        Ok(r) => r,
        Err(()) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::from("The requested range cannot be satisfied."))
                .expect("static response")
        }
    };
    let mut file = match tokio::fs::File::open(state.store.blob_path(&object.id)).await {
        Ok(f) => f,
        Err(e) => {
            log::error!("emulator: bytes of {} are missing: {e}", object.id);
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
        }
    };
    let (status, first, len) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, size),
    };
    if first > 0 {
        if let Err(e) = file.seek(SeekFrom::Start(first)).await {
            log::error!("emulator: {e}");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
        }
    }
    let throttled = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024).then(
        move |chunk| {
            let state = state.clone();
            async move {
                if let Ok(c) = &chunk {
                    state.throttle.take(c.len()).await;
                }
                chunk
            }
        },
    );
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(
            header::CONTENT_TYPE,
            object
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", object.id))
        .header(header::CACHE_CONTROL, "public, max-age=3600");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", first, first + len - 1, size),
        );
    }
    builder
        .body(Body::from_stream(throttled))
        .expect("valid headers")
}
