//! What a token is, read from its text alone: a Private Integration token
//! (`pit-...`), an OAuth access token (HighLevel's are JWTs, whose payload
//! says what they are for), or neither. The JWT is decoded, not verified:
//! only the service can say whether it is good, and `check` asks it.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A JWT's payload segment: base64url, padded or not.
const JWT_PAYLOAD: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    PrivateIntegration,
    Jwt(Claims),
    Unknown,
}

/// What a HighLevel access token's payload says, as far as it says it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// `Location` (a sub-account token) or `Company` (an agency token), ...
    pub auth_class: Option<String>,
    /// The location's (or the company's) id.
    pub auth_class_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub expires: Option<DateTime<Utc>>,
}

/// What the token in a file or variable looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenShape {
    pub kind: TokenKind,
    /// The text starts with `Bearer `, which the client adds itself.
    pub has_bearer_prefix: bool,
}

pub fn read(token: &str) -> TokenShape {
    let (has_bearer_prefix, bare) = match token.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => (true, token[7..].trim()),
        _ => (false, token),
    };
    let kind = if bare.starts_with("pit-") {
        TokenKind::PrivateIntegration
    } else {
        jwt_claims(bare).map_or(TokenKind::Unknown, TokenKind::Jwt)
    };
    TokenShape {
        kind,
        has_bearer_prefix,
    }
}

/// The claims of a JWT (three dot-separated parts, the middle one a JSON
/// object); `None` for anything else.
fn jwt_claims(token: &str) -> Option<Claims> {
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return None;
    };
    let payload: Value = serde_json::from_slice(&JWT_PAYLOAD.decode(payload).ok()?).ok()?;
    payload.as_object()?;
    let text = |key: &str| payload.get(key)?.as_str().map(str::to_owned);
    Some(Claims {
        auth_class: text("authClass"),
        auth_class_id: text("authClassId"),
        scopes: scopes_of(&payload),
        expires: payload
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|s| DateTime::from_timestamp(s, 0)),
    })
}

/// HighLevel puts the scopes in `oauthMeta.scopes`; other issuers in a
/// `scope` string or a `scopes` list.
fn scopes_of(payload: &Value) -> Option<Vec<String>> {
    let found = payload
        .pointer("/oauthMeta/scopes")
        .or_else(|| payload.get("scopes"))
        .or_else(|| payload.get("scope"))?;
    match found {
        Value::Array(list) => Some(
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        Value::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        _ => None,
    }
}

/// A sentence about the token, and whether it looks wrong for `location`
/// at `now` (the service has the last word either way).
pub fn describe(shape: &TokenShape, location: &str, now: DateTime<Utc>) -> (String, bool) {
    let (mut text, mut suspect) = match &shape.kind {
        TokenKind::PrivateIntegration => {
            ("a Private Integration token (pit-...)".to_owned(), false)
        }
        TokenKind::Jwt(claims) => describe_claims(claims, location, now),
        TokenKind::Unknown => (
            "a token that is neither a Private Integration token (pit-...) nor a JWT; \
             only the service can tell whether it is good"
                .to_owned(),
            false,
        ),
    };
    if shape.has_bearer_prefix {
        text.push_str(
            "; it starts with \"Bearer \", which mediafs adds itself: keep the token alone",
        );
        suspect = true;
    }
    (text, suspect)
}

fn describe_claims(claims: &Claims, location: &str, now: DateTime<Utc>) -> (String, bool) {
    let mut text = "an OAuth access token (a JWT)".to_owned();
    let mut suspect = false;
    match (
        claims.auth_class.as_deref(),
        claims.auth_class_id.as_deref(),
    ) {
        (Some("Location"), Some(id)) if id == location => {
            text.push_str(&format!(" for location {id}"))
        }
        (Some("Location"), Some(id)) => {
            text.push_str(&format!(
                " for location {id}, not {location}: mount {id}, or get a token for {location}"
            ));
            suspect = true;
        }
        (Some("Company"), id) => {
            text.push_str(&format!(
                " for a company (agency){}: the media API takes location tokens; get one \
                 for {location} with POST /oauth/locationToken, or install the app in the location",
                id.map(|id| format!(" {id}")).unwrap_or_default()
            ));
            suspect = true;
        }
        (Some(class), id) => text.push_str(&format!(
            " of auth class {class}{}",
            id.map(|id| format!(" {id}")).unwrap_or_default()
        )),
        (None, _) => text.push_str(" that does not say what it is for"),
    }
    if let Some(scopes) = &claims.scopes {
        let listed = if scopes.is_empty() {
            "no scopes".to_owned()
        } else {
            format!("scopes {}", scopes.join(" "))
        };
        text.push_str(&format!(", with {listed}"));
    }
    if let Some(expires) = claims.expires {
        let left = expires - now;
        if left <= chrono::TimeDelta::zero() {
            text.push_str(&format!(", expired at {}", expires.to_rfc3339()));
            suspect = true;
        } else {
            text.push_str(&format!(
                ", valid until {} (for {})",
                expires.to_rfc3339(),
                spoken(left)
            ));
        }
    }
    (text, suspect)
}

/// A time span as a person says it: "23 h", "12 min", "40 s".
fn spoken(span: chrono::TimeDelta) -> String {
    let s = span.num_seconds();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn reads_a_location_jwt() {
        let token = jwt(concat!(
            r#"{"authClass":"Location","authClassId":"Loc1","#,
            r#""oauthMeta":{"scopes":["medias.readonly","medias.write"]},"exp":1700086399}"#
        ));
        let shape = read(&token);
        let TokenKind::Jwt(claims) = &shape.kind else {
            panic!("{shape:?}")
        };
        assert_eq!(claims.auth_class_id.as_deref(), Some("Loc1"));
        let (text, suspect) = describe(&shape, "Loc1", now());
        assert!(!suspect, "{text}");
        assert!(text.contains("for location Loc1"), "{text}");
        assert!(
            text.contains("scopes medias.readonly medias.write"),
            "{text}"
        );
        assert!(text.contains("for 23 h"), "{text}");
    }

    #[test]
    fn says_what_is_wrong_with_a_jwt() {
        let other = describe(
            &read(&jwt(r#"{"authClass":"Location","authClassId":"Loc2"}"#)),
            "Loc1",
            now(),
        );
        assert!(other.1 && other.0.contains("not Loc1"), "{other:?}");
        let company = describe(
            &read(&jwt(r#"{"authClass":"Company","authClassId":"Co1"}"#)),
            "Loc1",
            now(),
        );
        assert!(
            company.1 && company.0.contains("/oauth/locationToken"),
            "{company:?}"
        );
        let expired = describe(&read(&jwt(r#"{"exp":1600000000}"#)), "Loc1", now());
        assert!(expired.1 && expired.0.contains("expired"), "{expired:?}");
        let scope_string = read(&jwt(r#"{"scope":"medias.readonly"}"#));
        assert!(describe(&scope_string, "Loc1", now())
            .0
            .contains("scopes medias.readonly"));
    }

    #[test]
    fn tolerates_tokens_that_are_neither() {
        for token in ["abc", "a.b.c", "x.eyJub3QganNvbg.y", "a.W10.b", "...."] {
            assert_eq!(read(token).kind, TokenKind::Unknown, "{token}");
        }
        assert_eq!(read("pit-1234").kind, TokenKind::PrivateIntegration);
        let pasted = read("Bearer pit-1234");
        assert_eq!(pasted.kind, TokenKind::PrivateIntegration);
        assert!(describe(&pasted, "Loc1", now()).1);
    }

    #[test]
    fn never_repeats_the_token() {
        let token = jwt(r#"{"authClass":"Location","authClassId":"Loc1"}"#);
        for t in [token.as_str(), "pit-secret-1234", "opaque-secret-1234"] {
            let (text, _) = describe(&read(t), "Loc1", now());
            assert!(!text.contains(t) && !text.contains("secret"), "{text}");
        }
    }
}
