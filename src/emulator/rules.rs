//! The service's rules as the emulator reads them, each transcribed from
//! its source: `shared/api/HIGHLEVEL-MEDIA.md` ("the page", which wins where
//! the two disagree) and the official spec beside it
//! (`highlevel-medias.openapi.json`, "the spec").
//!
//! The client keeps its own reading of the same sources (`api::limits`,
//! `api::limiter`), and the emulator never borrows it: were both sides to
//! share one wrong assumption, no test could fail. Where the sources leave a
//! value open, a setting picks it ([`SizeUnit`], [`WindowKind`], both in
//! [`super::Faults`]) and the client is tested against every choice. Values
//! the sources do not give at all are marked as guesses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

// ---- upload size ----

/// How the sources' "MB" is counted. Open: neither source says, and a
/// service configured in binary units (`25 * 1024 * 1024`) is as plausible
/// as one that takes "25 MB" at its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SizeUnit {
    /// 1 MB = 1,000,000 bytes: 25 MB is 25,000,000 bytes.
    #[default]
    Mb,
    /// 1 MB = 1,048,576 bytes: 25 MB is 26,214,400 bytes.
    Mib,
}

impl SizeUnit {
    pub fn bytes(self, megabytes: u64) -> u64 {
        match self {
            SizeUnit::Mb => megabytes * 1_000_000,
            SizeUnit::Mib => megabytes * 1024 * 1024,
        }
    }
}

/// The page, "Limits and quirks": "Upload size: 25 MB per file, 500 MB for
/// video (spec and docs)." The spec, `POST /medias/upload-file`: "If adding
/// a file, maximum allowed is 25 MB".
pub const FILE_LIMIT_MB: u64 = 25;
/// The page, same line: "500 MB for video".
pub const VIDEO_LIMIT_MB: u64 = 500;

/// The limit for a part of this type, in megabytes. What counts as "video"
/// is a guess: the sources say "for video", read here as any `video/*` type.
pub fn limit_mb(content_type: &str) -> u64 {
    if content_type.starts_with("video/") {
        VIDEO_LIMIT_MB
    } else {
        FILE_LIMIT_MB
    }
}

/// The largest part of this type the service stores, counted in `unit`.
pub fn max_upload_bytes(content_type: &str, unit: SizeUnit) -> u64 {
    unit.bytes(limit_mb(content_type))
}

/// The message of the 413. A guess: the sources quote none.
pub fn too_large_message(content_type: &str) -> String {
    format!(
        "File too large: the maximum allowed size is {} MB",
        limit_mb(content_type)
    )
}

// ---- file types ----

/// The page, "Limits and quirks": "A part sent as `application/octet-stream`
/// is rejected (`INVALID_FILE_TYPE`); the MIME type must be the file's real
/// type. Some types (e.g. `audio/mp4`) are rejected outright." Only the two
/// types named are refused here; the "e.g." says there are more, unnamed.
pub const REFUSED_TYPES: &[&str] = &["application/octet-stream", "audio/mp4"];

pub fn is_refused_type(content_type: &str) -> bool {
    REFUSED_TYPES.contains(&content_type)
}

/// The message of the 400 for a refused type: the code is the page's
/// (`INVALID_FILE_TYPE`), the words after it a guess.
pub fn refused_type_message(content_type: &str) -> String {
    format!("INVALID_FILE_TYPE: files of type {content_type} are not allowed")
}

/// The type of a file part sent without one. A guess: the sources do not
/// say (RFC 7578 would say `text/plain`); taken as the generic type, which
/// the service refuses.
pub const UNTYPED_PART: &str = "application/octet-stream";

// ---- names ----

/// Longest name accepted, in characters. A guess: the sources give no
/// limit (the spec types `name` as a plain string); this one is generous,
/// and a name past it gets a 422 in the page's shape (`message` an array).
pub const MAX_NAME_CHARS: usize = 1024;

// ---- rate limits ----

/// The page, "Limits and quirks": "Rate limits (docs): 100 requests per 10
/// seconds per app per location, and 200,000 per day". The emulator counts
/// per app per location for the OAuth tokens it issues (each new token of
/// an app at a location shares the count of the one before), and per token
/// for a Private Integration token (an integration of its own). "Private Integration
/// tokens on trial accounts get 25 per 10 s": `--rate-limit 25`.
pub const BURST_LIMIT: u32 = 100;
/// The page, same line: "per 10 seconds".
pub const BURST_INTERVAL: Duration = Duration::from_secs(10);
/// The page, same line: "200,000 per day". When the day starts is a guess:
/// a fixed day from a token's first request.
pub const DAILY_LIMIT: u64 = 200_000;
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How the per-10-second limit counts. Open: the page gives the limit, not
/// the kind of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// A count that starts at a token's first request and resets, whole,
    /// one interval later (so up to twice the limit can pass around a reset).
    Fixed,
    /// At most the limit in any interval, however it falls.
    #[default]
    Sliding,
}

/// The page, "Limits and quirks": "Headers: `X-RateLimit-Max`,
/// `X-RateLimit-Remaining`, `X-RateLimit-Interval-Milliseconds`,
/// `X-RateLimit-Limit-Daily`, `X-RateLimit-Daily-Remaining`. Past the
/// limit: HTTP 429 (no `Retry-After` promised)." So no `Retry-After` here.
pub mod headers {
    pub const MAX: &str = "x-ratelimit-max";
    pub const REMAINING: &str = "x-ratelimit-remaining";
    pub const INTERVAL_MS: &str = "x-ratelimit-interval-milliseconds";
    pub const LIMIT_DAILY: &str = "x-ratelimit-limit-daily";
    pub const DAILY_REMAINING: &str = "x-ratelimit-daily-remaining";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_25_mb_limit_in_each_unit() {
        assert_eq!(max_upload_bytes("image/png", SizeUnit::Mb), 25_000_000);
        assert_eq!(max_upload_bytes("image/png", SizeUnit::Mib), 26_214_400);
        assert_eq!(max_upload_bytes("video/mp4", SizeUnit::Mb), 500_000_000);
        assert_eq!(max_upload_bytes("video/mp4", SizeUnit::Mib), 524_288_000);
    }

    #[test]
    fn only_the_types_the_page_names_are_refused() {
        assert!(is_refused_type("application/octet-stream"));
        assert!(is_refused_type("audio/mp4"));
        assert!(!is_refused_type("audio/mpeg"));
        assert!(!is_refused_type("application/x-msdownload"));
    }
}
