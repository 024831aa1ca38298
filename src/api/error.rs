//! One error type a caller can act on. Messages carry the server's own words
//! and never the token (the token is never put into a URL or a message).

use std::time::Duration;

use super::models::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad or expired token, or a token for another location (HTTP 401/403).
    #[error("not authorized: {message}")]
    Unauthorized { message: String },
    /// The object, folder or location does not exist (HTTP 404).
    #[error("not found: {message}")]
    NotFound { message: String },
    /// The file is over the service's size limit (HTTP 413, or found locally).
    #[error("file too large: {message}")]
    TooLarge { message: String },
    /// The service does not accept this file type, or it could not be told.
    #[error("file type refused: {message}")]
    TypeRefused { message: String },
    /// The service found the request invalid (HTTP 400/422).
    #[error("invalid request (HTTP {status}): {message}")]
    InvalidRequest { status: u16, message: String },
    /// Too many requests, still so after the retries (HTTP 429).
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The location has used its requests for the day (HTTP 429 with
    /// `X-RateLimit-Daily-Remaining: 0`): no retry helps until the day's
    /// window ends, and other locations are not held back by it.
    #[error("daily limit reached: {message}")]
    DailyLimit { message: String },
    /// The service failed (HTTP 5xx), still so after the retries.
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// The request or its answer did not get through: connection refused,
    /// reset, timed out, or a body cut short.
    #[error("network error: {message}")]
    Network { message: String },
    /// A local file could not be read.
    #[error("local I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ApiError {
    /// Builds the error for a non-success HTTP answer from its status and body.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> ApiError {
        let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
        let message = parsed
            .as_ref()
            .and_then(|b| b.message.as_ref().map(|m| m.joined()))
            .or_else(|| parsed.as_ref().and_then(|b| b.error.clone()))
            .unwrap_or_else(|| {
                let text = body.trim();
                if text.is_empty() {
                    format!("HTTP {status} with no message")
                } else {
                    text.chars().take(300).collect()
                }
            });
        match status {
            401 | 403 => ApiError::Unauthorized { message },
            404 => ApiError::NotFound { message },
            413 => ApiError::TooLarge { message },
            415 => ApiError::TypeRefused { message },
            400 if message.contains("INVALID_FILE_TYPE") => ApiError::TypeRefused { message },
            429 => ApiError::RateLimited {
                message,
                retry_after,
            },
            500..=599 => ApiError::Server { status, message },
            _ => ApiError::InvalidRequest { status, message },
        }
    }

    /// Errors worth another try: the service may answer differently later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Server { .. } | ApiError::Network { .. }
        )
    }

    /// Failures after which the request may or may not have been carried out.
    /// A 429 is a refusal before any work, so it is never ambiguous.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, ApiError::Server { .. } | ApiError::Network { .. })
    }

    /// The errno a filesystem gives a program for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            ApiError::Unauthorized { .. } => libc::EACCES,
            ApiError::NotFound { .. } => libc::ENOENT,
            ApiError::TooLarge { .. } => libc::EFBIG,
            ApiError::TypeRefused { .. } => libc::EINVAL,
            ApiError::InvalidRequest { .. } => libc::EINVAL,
            ApiError::RateLimited { .. } => libc::EAGAIN,
            // "Disk quota exceeded": the quota is the location's day of requests.
            ApiError::DailyLimit { .. } => libc::EDQUOT,
            ApiError::Server { .. } | ApiError::Network { .. } | ApiError::Io(_) => libc::EIO,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses_and_messages() {
        let e = ApiError::from_status(
            401,
            r#"{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}"#,
            None,
        );
        assert!(
            matches!(e, ApiError::Unauthorized { ref message } if message.contains("Invalid token"))
        );
        let e = ApiError::from_status(
            422,
            r#"{"statusCode":422,"message":["type must be file or folder"]}"#,
            None,
        );
        assert!(matches!(e, ApiError::InvalidRequest { status: 422, .. }));
        let e = ApiError::from_status(
            400,
            r#"{"statusCode":400,"message":"INVALID_FILE_TYPE"}"#,
            None,
        );
        assert!(matches!(e, ApiError::TypeRefused { .. }));
        let e = ApiError::from_status(502, "<html>bad gateway</html>", None);
        assert!(matches!(e, ApiError::Server { status: 502, .. }));
        assert!(e.is_transient() && e.is_ambiguous());
        let e = ApiError::from_status(429, "", None);
        assert!(e.is_transient() && !e.is_ambiguous());
    }
}
