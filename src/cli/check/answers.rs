//! Reading the service's answers for `mediafs check`: its own words in an
//! error, why a 401 was given, whether an answer is the media API's at
//! all, and the rate limits its headers announce.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::report::{spoken, Verdict};
use crate::api::models::ErrorBody;
use crate::api::RawAnswer;

/// Why a 401 was given.
pub enum Refusal {
    /// "The token is not authorized for this scope."
    Scope,
    /// "Your token grants access to location X but you're requesting Y":
    /// the location it was made for.
    OtherLocation(String),
    /// The token itself: invalid, expired, revoked.
    Token,
}

pub fn refusal_of(message: &str) -> Refusal {
    if message.contains("not authorized for this scope") {
        return Refusal::Scope;
    }
    let granted = message
        .split_once("grants access to location ")
        .and_then(|(_, rest)| rest.split_whitespace().next());
    match granted {
        Some(granted) => Refusal::OtherLocation(granted.to_owned()),
        None => Refusal::Token,
    }
}

/// The service's own words in an error answer.
pub fn message_of(answer: &RawAnswer) -> String {
    let parsed: Option<ErrorBody> = serde_json::from_slice(&answer.body).ok();
    parsed
        .and_then(|b| b.message.map(|m| m.joined()).or(b.error))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&answer.body);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                "no message".to_owned()
            } else {
                text
            }
        })
}

/// What is wrong with an answer that is not the media API's: a redirect,
/// or an error that is not its JSON (a web page, a proxy's).
pub fn not_the_api(answer: &RawAnswer) -> Option<String> {
    let status = answer.status.as_u16();
    if answer.status.is_redirection() {
        let to = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("elsewhere");
        return Some(format!(
            "answered with a redirect (HTTP {status} to {to}), which mediafs does not \
             follow, so that the token never reaches another host; check --base-url"
        ));
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let api_shaped = json
        .as_ref()
        .is_some_and(|v| v.get("statusCode").is_some() || v.get("message").is_some());
    (!answer.status.is_success() && !api_shaped).then(|| {
        format!(
            "answered HTTP {status}, but not as the media API does (its errors are JSON); \
             check --base-url"
        )
    })
}

/// The `X-RateLimit-*` headers of an answer.
#[derive(Debug, Default)]
pub struct Limits {
    pub max: Option<u64>,
    pub remaining: Option<u64>,
    pub interval_ms: Option<u64>,
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

/// The limits an answer announces; `None` when it announces none.
pub fn limits_of(headers: &HeaderMap) -> Option<Limits> {
    let num = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let limits = Limits {
        max: num("x-ratelimit-max"),
        remaining: num("x-ratelimit-remaining"),
        interval_ms: num("x-ratelimit-interval-milliseconds"),
        daily: num("x-ratelimit-limit-daily"),
        daily_remaining: num("x-ratelimit-daily-remaining"),
    };
    let announced = [
        limits.max,
        limits.remaining,
        limits.interval_ms,
        limits.daily,
        limits.daily_remaining,
    ];
    announced.iter().any(Option::is_some).then_some(limits)
}

/// The rate-limit line: what the service allows, against the
/// `--rate-limit` (requests per 10 s) the mount will use.
pub fn judge_limits(limits: &Limits, rate_limit: usize) -> (Verdict, String) {
    let window_ms = limits.interval_ms.unwrap_or(10_000).max(1);
    let window = spoken(Duration::from_millis(window_ms));
    let mut says = match (limits.max, limits.remaining) {
        (Some(max), Some(left)) => {
            format!("the service allows {max} requests per {window} ({left} left now)")
        }
        (Some(max), None) => format!("the service allows {max} requests per {window}"),
        (None, _) => "the service announces no limit per window".to_owned(),
    };
    if let Some(daily) = limits.daily {
        says.push_str(&format!(", {daily} a day"));
        if let Some(left) = limits.daily_remaining {
            says.push_str(&format!(" ({left} left today)"));
        }
    }
    let per_10s = limits.max.map(|max| max * 10_000 / window_ms);
    let few_left_today = limits
        .daily
        .zip(limits.daily_remaining)
        .is_some_and(|(daily, left)| left * 10 < daily);
    match per_10s {
        Some(allowed) if rate_limit > 0 && allowed < rate_limit as u64 => {
            says.push_str(&format!(
                ": fewer than the {rate_limit} per 10 s mediafs would allow itself; mount \
                 with --rate-limit {allowed} (mediafs lowers itself once told, but a burst \
                 before that draws 429s)"
            ));
            (Verdict::Warning, says)
        }
        _ if few_left_today => {
            says.push_str(": few are left today, and a first walk of a large library needs many");
            (Verdict::Warning, says)
        }
        _ => (Verdict::Ok, says),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reasons_of_a_401() {
        assert!(matches!(
            refusal_of("The token is not authorized for this scope."),
            Refusal::Scope
        ));
        assert!(matches!(
            refusal_of("Your token grants access to location LocA but you're requesting LocB"),
            Refusal::OtherLocation(l) if l == "LocA"
        ));
        assert!(matches!(
            refusal_of("Invalid token: access token is invalid"),
            Refusal::Token
        ));
    }

    #[test]
    fn advises_the_limit_the_service_announces() {
        let trial = Limits {
            max: Some(25),
            remaining: Some(24),
            interval_ms: Some(10_000),
            daily: Some(10_000),
            daily_remaining: Some(9_000),
        };
        let (verdict, says) = judge_limits(&trial, 100);
        assert_eq!(verdict, Verdict::Warning);
        assert!(
            says.contains("25 requests per 10 s") && says.contains("--rate-limit 25"),
            "{says}"
        );
        assert_eq!(judge_limits(&trial, 25).0, Verdict::Ok);
        let per_minute = Limits {
            max: Some(60),
            interval_ms: Some(60_000),
            ..Limits::default()
        };
        assert!(judge_limits(&per_minute, 100).1.contains("--rate-limit 10"));
        let spent = Limits {
            daily: Some(200_000),
            daily_remaining: Some(100),
            ..Limits::default()
        };
        assert_eq!(judge_limits(&spent, 100).0, Verdict::Warning);
    }
}
