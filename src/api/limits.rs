//! Limits the service enforces, shared by the client, the filesystem (which
//! refuses early with `EFBIG`) and the emulator (which enforces them).

/// Largest upload for any file but a video: 25 MB (taken as MiB, as the
/// service's multipart limits are configured in binary units).
pub const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// Largest upload for a video (`video/*`): 500 MB.
pub const MAX_VIDEO_BYTES: u64 = 500 * 1024 * 1024;

/// The largest upload the service accepts for a part of this MIME type.
pub fn max_upload_bytes(content_type: &str) -> u64 {
    if content_type.starts_with("video/") {
        MAX_VIDEO_BYTES
    } else {
        MAX_FILE_BYTES
    }
}

/// Types the service refuses whatever the size: `application/octet-stream`
/// (it wants the file's real type) and some it does not host.
pub fn is_refused_type(content_type: &str) -> bool {
    matches!(
        content_type,
        "application/octet-stream" | "audio/mp4" | "application/x-msdownload"
    )
}
