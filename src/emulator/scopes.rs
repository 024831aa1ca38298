//! The media API's two scopes, which route needs which, and the 401 the
//! service gives a token without it: so that `mediafs check` and the client
//! meet a read-only or a write-only token here before they meet one for real.

use std::fmt;

use axum::http::StatusCode;
use axum::response::Response;

use super::routes::error_response;

/// A scope a token carries. The media API has these two only
/// (`highlevel-medias.openapi.json`: every route's `Location-Access`
/// security names one of them or none; HIGHLEVEL-MEDIA.md, "Tokens": a
/// Private Integration is made "with chosen scopes (`medias.readonly`,
/// `medias.write`)").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    MediasReadonly,
    MediasWrite,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::MediasReadonly, Scope::MediasWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MediasReadonly => "medias.readonly",
            Scope::MediasWrite => "medias.write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope {s:?}: the media API's scopes are medias.readonly and \
                     medias.write"
                )
            })
    }
}

/// Scopes written as a comma-separated list; an empty list is no scope.
pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::parse)
        .collect()
}

/// The scope a request to `route` (as `"GET /medias/files"`) needs.
///
/// The spec names `medias.readonly` for `GET /medias/files` and
/// `medias.write` for `POST /medias/upload-file` and `DELETE /medias/{id}`;
/// it leaves the list empty for `POST /medias/folder`, `POST /medias/{id}`,
/// `PUT /medias/update-files` and `PUT /medias/delete-files`. Those four
/// create, rename, trash and delete: a token granted read access only must
/// not do that, and `medias.write` is the only scope that could allow it.
/// So the one route that reads takes `medias.readonly`, and every other
/// route (any route added later too) takes `medias.write`. Neither scope
/// implies the other: a write-only token cannot list.
pub fn required(route: &str) -> Scope {
    match route {
        "GET /medias/files" => Scope::MediasReadonly,
        _ => Scope::MediasWrite,
    }
}

/// The 401 the service answers a token that lacks the route's scope. The
/// words are a guess: neither source quotes them (they are what
/// integrators report HighLevel's other APIs answering), and `mediafs
/// check` must not rely on them alone.
pub fn refusal() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "The token is not authorized for this scope.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_of_scopes_and_refuses_unknown_ones() {
        assert_eq!(
            parse_list("medias.write, medias.readonly"),
            Ok(vec![Scope::MediasWrite, Scope::MediasReadonly])
        );
        assert_eq!(parse_list(""), Ok(vec![]));
        assert!(parse_list("medias.read")
            .unwrap_err()
            .contains("medias.readonly"));
    }

    #[test]
    fn token_grants_keep_their_old_forms_and_take_scopes() {
        use crate::emulator::TokenGrant;
        let grant = |s: &str| s.parse::<TokenGrant>();
        assert_eq!(grant("pit-a"), Ok(TokenGrant::new("pit-a", None)));
        assert_eq!(
            grant("pit-a:Loc1"),
            Ok(TokenGrant::new("pit-a", Some("Loc1".into())))
        );
        let read_only = grant("pit-a:Loc1:medias.readonly").unwrap();
        assert_eq!(read_only.location.as_deref(), Some("Loc1"));
        assert_eq!(read_only.scopes, [Scope::MediasReadonly]);
        let everywhere = grant("pit-a:*:medias.write").unwrap();
        assert_eq!(everywhere.location, None);
        assert_eq!(everywhere.scopes, [Scope::MediasWrite]);
        assert_eq!(grant("pit-a:Loc1:").unwrap().scopes, []);
        assert!(grant("pit-a::medias.write").is_err());
        assert!(grant("pit-a:Loc1:medias.all").is_err());
    }

    #[test]
    fn only_the_listing_reads() {
        assert_eq!(required("GET /medias/files"), Scope::MediasReadonly);
        for route in [
            "POST /medias/upload-file",
            "POST /medias/folder",
            "POST /medias/{id}",
            "DELETE /medias/{id}",
            "PUT /medias/update-files",
            "PUT /medias/delete-files",
        ] {
            assert_eq!(required(route), Scope::MediasWrite, "{route}");
        }
    }
}
