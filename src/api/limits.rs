//! Limits the service enforces, as the client reads them: the filesystem
//! refuses early with `EFBIG` what the service surely refuses, and the
//! client words the service's own refusals. (The emulator enforces its own
//! reading of the same documents, `emulator::rules`, never this one.)
//!
//! The documents say "25 MB per file, 500 MB for video" without saying
//! whether a MB is 1,000,000 bytes or 1,048,576. The client refuses only
//! what the service refuses in both readings (past the MiB one); a file
//! between the two is sent, and the service's answer decides.

/// The service's limit for any file but a video, as it states it: 25 MB.
pub const FILE_LIMIT_MB: u64 = 25;
/// The service's limit for a video (`video/*`), as it states it: 500 MB.
pub const VIDEO_LIMIT_MB: u64 = 500;

/// Largest upload the client sends for any file but a video: 25 MB read
/// as MiB (26,214,400 bytes), the larger reading.
pub const MAX_FILE_BYTES: u64 = FILE_LIMIT_MB * 1024 * 1024;

/// The service's limit for this type in megabytes, as it states it.
pub fn limit_mb(content_type: &str) -> u64 {
    if content_type.starts_with("video/") {
        VIDEO_LIMIT_MB
    } else {
        FILE_LIMIT_MB
    }
}

/// The largest upload the client sends for this type (the MiB reading):
/// past it, the service refuses in either reading.
pub fn max_upload_bytes(content_type: &str) -> u64 {
    limit_mb(content_type) * 1024 * 1024
}

/// The smallest the service's limit for this type can be (the reading of
/// 1 MB as 1,000,000 bytes): up to it, the service accepts in either reading.
pub fn min_upload_limit(content_type: &str) -> u64 {
    limit_mb(content_type) * 1_000_000
}

/// The service's limit for this type in words a user can act on.
pub fn limit_words(content_type: &str) -> String {
    let kind = if content_type.starts_with("video/") {
        "a video"
    } else {
        "a file that is not a video"
    };
    format!(
        "{} MB for {kind} ({} or {} bytes: the service does not say which MB it counts)",
        limit_mb(content_type),
        min_upload_limit(content_type),
        max_upload_bytes(content_type)
    )
}

/// Types the service refuses whatever the size: `application/octet-stream`
/// (it wants the file's real type), `audio/mp4` (named in the docs), and
/// `application/x-msdownload` (a guess of the client's: Windows programs).
pub fn is_refused_type(content_type: &str) -> bool {
    matches!(
        content_type,
        "application/octet-stream" | "audio/mp4" | "application/x-msdownload"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_sends_what_either_reading_of_mb_might_accept() {
        assert_eq!(min_upload_limit("image/png"), 25_000_000);
        assert_eq!(max_upload_bytes("image/png"), 26_214_400);
        assert_eq!(min_upload_limit("video/mp4"), 500_000_000);
        assert_eq!(max_upload_bytes("video/mp4"), 524_288_000);
        assert!(limit_words("image/png").contains("25 MB"));
    }
}
