//! Wire types of the HighLevel Media Storage API, shaped after what the live
//! service answers (which differs from its OpenAPI spec): `_id`, a `count`
//! beside `files`, `parentId` absent or null at the root, unknown extra fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a library object is a file or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    File,
    Folder,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::File => "file",
            ObjectKind::Folder => "folder",
        }
    }
}

/// One file or folder of a location's media library, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaObject {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ObjectKind,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl MediaObject {
    pub fn is_folder(&self) -> bool {
        self.kind == ObjectKind::Folder
    }
}

/// Answer of `GET /medias/files`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    pub files: Vec<MediaObject>,
    /// Total number of matching objects (not the page's length).
    #[serde(default)]
    pub count: Option<u64>,
}

/// Answer of `POST /medias/upload-file`: no size or type, the uploader knows those.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    pub file_id: String,
    pub url: String,
}

/// An error body: `message` is a string, or an array of strings on 422.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<ErrorMessage>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ErrorMessage {
    One(String),
    Many(Vec<String>),
}

impl ErrorMessage {
    pub fn joined(&self) -> String {
        match self {
            ErrorMessage::One(s) => s.clone(),
            ErrorMessage::Many(v) => v.join("; "),
        }
    }
}

/// What `PUT /medias/delete-files` does with the objects it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteStatus {
    /// Moved to the library's trash, restorable from the web app.
    Trashed,
    /// Removed for good.
    Deleted,
}

/// Sort key of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    CreatedAt,
    UpdatedAt,
    Name,
}

impl SortBy {
    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::CreatedAt => "createdAt",
            SortBy::UpdatedAt => "updatedAt",
            SortBy::Name => "name",
        }
    }
}

/// Parameters of one `GET /medias/files` page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub kind: ObjectKind,
    pub parent_id: Option<String>,
    pub query: Option<String>,
    pub fetch_all: bool,
    pub sort_by: SortBy,
    pub ascending: bool,
    pub offset: u64,
    pub limit: u64,
}

impl ListQuery {
    /// Oldest first, so that objects created while paging land after the
    /// pages already read instead of shifting them.
    pub fn children(kind: ObjectKind, parent_id: Option<&str>, limit: u64) -> Self {
        ListQuery {
            kind,
            parent_id: parent_id.map(str::to_owned),
            query: None,
            fetch_all: false,
            sort_by: SortBy::CreatedAt,
            ascending: true,
            offset: 0,
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_observed_object_shape_with_extra_fields() {
        let body = r#"{"files": [{"_id": "6942f1b8c0ffee0123456789", "altId": "LOC", "altType": "location",
          "name": "logo.png", "type": "file", "parentId": "64af50c42d567a3b4f5989e0",
          "contentType": "image/png", "size": 13147, "width": 10, "blurHashCode": "x",
          "path": "LOC/media/6942f1b8c0ffee0123456789.png",
          "url": "https://storage.googleapis.com/msgsndr/LOC/media/6942f1b8c0ffee0123456789.png",
          "createdAt": "2025-12-17T18:08:56.768Z", "updatedAt": "2025-12-17T18:08:58.025Z"},
          {"_id": "64af50c42d567a3b4f5989e0", "name": "Brand", "type": "folder", "parentId": null,
           "isPrivate": false, "deleted": false, "category": "x", "appFolder": false}],
          "count": 222, "traceId": "t"}"#;
        let list: ListResponse = serde_json::from_str(body).unwrap();
        assert_eq!(list.count, Some(222));
        assert_eq!(list.files[0].kind, ObjectKind::File);
        assert_eq!(list.files[0].size, Some(13147));
        assert!(list.files[1].is_folder());
        assert_eq!(list.files[1].parent_id, None);
        assert_eq!(list.files[1].url, None);
    }

    #[test]
    fn parent_id_may_be_absent() {
        let o: MediaObject =
            serde_json::from_str(r#"{"_id":"a","name":"n","type":"folder"}"#).unwrap();
        assert_eq!(o.parent_id, None);
    }

    #[test]
    fn error_message_is_a_string_or_an_array() {
        let one: ErrorBody = serde_json::from_str(
            r#"{"statusCode":401,"message":"Invalid token","error":"Unauthorized"}"#,
        )
        .unwrap();
        assert_eq!(one.message.unwrap().joined(), "Invalid token");
        let many: ErrorBody =
            serde_json::from_str(r#"{"statusCode":422,"message":["a","b"]}"#).unwrap();
        assert_eq!(many.message.unwrap().joined(), "a; b");
    }
}
