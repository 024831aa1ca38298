//! Public file URLs, served like Google Cloud Storage serves the real ones:
//! no token, `Content-Length`, the stored `Content-Type`, and single byte
//! ranges answered with 206. Bytes are sent from a read-only mapping of the
//! stored blob, never copied whole into memory: the kernel copies them from
//! the page cache straight into the socket, so the emulator costs little CPU
//! beside the client it serves.

use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use super::store::{Kind, Status};
use super::SharedState;

/// The body goes out in pieces this big, each passing the bandwidth cap.
const SEND_PIECE: usize = 256 * 1024;

/// `len` bytes of a blob from `first`, mapped read-only. Blobs never change
/// once stored (a new upload is a new blob) and a removed one stays readable
/// through a mapping made before, so the mapping cannot go stale.
fn map_blob(path: &FsPath, first: u64, len: u64) -> std::io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    let file = std::fs::File::open(path)?;
    // A mapping read past the end of its file kills the process: check first.
    if file.metadata()?.len() < first + len {
        return Err(std::io::Error::other(
            "the stored blob is shorter than its object",
        ));
    }
    // SAFETY: the blob is never written or truncated after it is stored (see above).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(first)
            .len(len as usize)
            .map(&file)?
    };
    // Start reading from disk now, ahead of the socket writes.
    let _ = map.advise(memmap2::Advice::WillNeed);
    Ok(Bytes::from_owner(map))
}

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
    let (status, first, len) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, size),
    };
    let bytes = match map_blob(&state.store.blob_path(&object.id), first, len) {
        Ok(b) => b,
        Err(e) => {
            log::error!("emulator: bytes of {} are missing: {e}", object.id);
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
        }
    };
    let pieces = (0..len).step_by(SEND_PIECE).map(move |from| {
        let to = (from + SEND_PIECE as u64).min(len);
        bytes.slice(from as usize..to as usize)
    });
    let throttled = futures::stream::iter(pieces).then(move |piece| {
        let state = state.clone();
        async move {
            state.throttle.take(piece.len()).await;
            Ok::<_, std::io::Error>(piece)
        }
    });
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
