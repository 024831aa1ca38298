//! Listings: pages of `GET /medias/files`, whole folders read page by
//! page without gaps, and everything at once (`fetchAll`), checked against
//! the total the service gives.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{parse_json, MediaClient};
use crate::api::error::{ApiError, ApiResult};
use crate::api::models::{ListQuery, ListResponse, MediaObject, ObjectKind};

/// Objects each page of a listing shares with the page before (see
/// [`MediaClient::list_all`]).
const PAGE_OVERLAP: u64 = 2;
/// How long a kind whose `fetchAll` answers fell short is listed folder by
/// folder before one is asked for again.
pub const AT_ONCE_SHORT_FOR: Duration = Duration::from_secs(600);

/// What one `fetchAll` listing answered.
#[derive(Debug)]
pub enum AtOnce {
    /// Every object, as many as the service counts.
    Whole(Vec<MediaObject>),
    /// Fewer objects than the service counts (or no count to tell).
    Partial { got: usize, count: Option<u64> },
}

impl AtOnce {
    /// The objects, or an error saying the answer fell short.
    pub fn whole(self) -> ApiResult<Vec<MediaObject>> {
        match self {
            AtOnce::Whole(objects) => Ok(objects),
            AtOnce::Partial { got, count } => Err(ApiError::Server {
                status: 200,
                message: format!(
                    "a fetchAll listing held {got} objects of {}",
                    count.map_or("an unknown number".to_owned(), |c| c.to_string())
                ),
            }),
        }
    }
}

/// Objects of a page, as many as it counts, or how far it falls short;
/// an object listed twice counts, and is kept, once.
fn whole_or_partial(page: ListResponse) -> AtOnce {
    let mut seen = HashSet::new();
    let files: Vec<MediaObject> = page
        .files
        .into_iter()
        .filter(|f| seen.insert(f.id.clone()))
        .collect();
    match page.count {
        Some(count) if files.len() as u64 >= count => AtOnce::Whole(files),
        count => AtOnce::Partial {
            got: files.len(),
            count,
        },
    }
}

impl MediaClient {
    /// One page of `GET /medias/files`.
    pub async fn list_page(&self, q: &ListQuery) -> ApiResult<ListResponse> {
        let params = self.list_params(q);
        let url = self.url("/medias/files");
        let body = self
            .send_idempotent("listing", false, &|| Ok(self.api.get(&url).query(&params)))
            .await?;
        parse_json(&body)
    }

    /// The query of one page of `GET /medias/files`.
    pub(super) fn list_params(&self, q: &ListQuery) -> Vec<(&'static str, String)> {
        let mut params: Vec<(&str, String)> = self.alt_params().into();
        params.push(("type", q.kind.as_str().into()));
        params.push(("sortBy", q.sort_by.as_str().into()));
        params.push(("sortOrder", if q.ascending { "asc" } else { "desc" }.into()));
        if q.fetch_all {
            // Everything, flat: a page size could only cut it short.
            params.push(("fetchAll", "true".into()));
        } else {
            params.push(("offset", q.offset.to_string()));
            params.push(("limit", q.limit.to_string()));
        }
        if let Some(parent) = &q.parent_id {
            params.push(("parentId", parent.clone()));
        }
        if let Some(query) = &q.query {
            params.push(("query", query.clone()));
        }
        params
    }

    /// Every object matching `q`, page after page, oldest first.
    ///
    /// Objects created meanwhile land after the pages already read, but a
    /// removal meanwhile shifts every later object one place toward the
    /// start, and a page asked for by a plain offset would skip one. So
    /// each page overlaps the last by a few objects and must begin with
    /// one already read; when it does not (more removals than the overlap),
    /// the next ask reaches further back. Objects are kept once, by id.
    pub async fn list_all(&self, mut q: ListQuery) -> ApiResult<Vec<MediaObject>> {
        if q.fetch_all {
            return self.list_at_once(q.kind).await?.whole();
        }
        let overlap = PAGE_OVERLAP.min(q.limit / 2);
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        let mut first_ever = None;
        loop {
            let page = self.list_page(&q).await?;
            let got = page.files.len() as u64;
            let first = page.files.first().map(|f| f.id.clone());
            // A service that answered from the start again ignores offsets:
            // what it answered is all there is.
            let from_the_start = q.offset > 0 && first.is_some() && first == first_ever;
            let known = all.len();
            if q.offset == 0 && first_ever.is_none() {
                first_ever = first;
            }
            let joined = q.offset == 0
                || overlap == 0
                || page.files.first().is_some_and(|f| seen.contains(&f.id));
            for file in page.files {
                if seen.insert(file.id.clone()) {
                    all.push(file);
                }
            }
            if !joined {
                log::debug!(
                    "listing shifted while it was read; reading back from before offset {}",
                    q.offset
                );
                q.offset = q.offset.saturating_sub(q.limit - overlap);
                continue;
            }
            // A short page is the end (as the listing stands now), unless
            // the total says the service pages in smaller steps and the
            // page brought something new (a total may count what no page
            // shows).
            let smaller_steps =
                page.count.is_some_and(|total| q.offset + got < total) && all.len() > known;
            let more = (got >= q.limit || smaller_steps) && !from_the_start;
            if !more {
                return Ok(all);
            }
            q.offset += got.saturating_sub(overlap).max(1);
        }
    }

    /// Every child (folders and files) of a folder; `None` is the root.
    pub async fn list_children(&self, parent_id: Option<&str>) -> ApiResult<Vec<MediaObject>> {
        let limit = self.config.page_size;
        let (folders, files) = tokio::try_join!(
            self.list_all(ListQuery::children(ObjectKind::Folder, parent_id, limit)),
            self.list_all(ListQuery::children(ObjectKind::File, parent_id, limit)),
        )?;
        let mut all = folders;
        all.extend(files);
        Ok(all)
    }

    /// Every folder of the location, from one `fetchAll` call; an error
    /// when the service does not answer them all at once.
    pub async fn list_folder_tree(&self) -> ApiResult<Vec<MediaObject>> {
        self.list_at_once(ObjectKind::Folder).await?.whole()
    }

    /// Every object of `kind` from one `fetchAll` answer, or `None` when
    /// the service does not answer them all at once (now, or within
    /// [`AT_ONCE_SHORT_FOR`] of a short answer, when it is not asked).
    pub async fn at_once(&self, kind: ObjectKind) -> ApiResult<Option<Vec<MediaObject>>> {
        if self.at_once_falls_short(kind) {
            return Ok(None);
        }
        Ok(match self.list_at_once(kind).await? {
            AtOnce::Whole(objects) => Some(objects),
            AtOnce::Partial { .. } => None,
        })
    }

    /// Every object of `kind` in the location from one `fetchAll` answer,
    /// checked against the `count` it gives (ids counted once). An answer
    /// that falls short is asked for once more at once (its count and its
    /// objects may come from two looks at a library that changed between
    /// them); a second short one is remembered, and said, for
    /// [`AT_ONCE_SHORT_FOR`]: the callers list folder by folder meanwhile.
    pub async fn list_at_once(&self, kind: ObjectKind) -> ApiResult<AtOnce> {
        let mut q = ListQuery::children(kind, None, 0);
        q.fetch_all = true;
        let mut asked = 0;
        loop {
            asked += 1;
            let answer = whole_or_partial(self.list_page(&q).await?);
            let AtOnce::Partial { got, count } = answer else {
                return Ok(answer);
            };
            if asked == 2 {
                self.note_short(kind, got, count);
                return Ok(answer);
            }
        }
    }

    fn note_short(&self, kind: ObjectKind, got: usize, count: Option<u64>) {
        let kinds = format!("{}s", kind.as_str());
        let said = count.map_or("it gave no count".to_owned(), |c| format!("it counts {c}"));
        let mut short = self.at_once_short.lock().unwrap();
        if short.insert(kind, Instant::now()).is_none() {
            log::warn!(
                "the service answered {got} {kinds} in one listing, twice, but {said}: \
                 listing {kinds} folder by folder for the next {} minutes (more requests, \
                 slower under the rate limit)",
                AT_ONCE_SHORT_FOR.as_secs() / 60
            );
        }
    }

    /// Whether a `fetchAll` of `kind` fell short within [`AT_ONCE_SHORT_FOR`].
    pub fn at_once_falls_short(&self, kind: ObjectKind) -> bool {
        let mut short = self.at_once_short.lock().unwrap();
        match short.get(&kind) {
            Some(at) if at.elapsed() < AT_ONCE_SHORT_FOR => true,
            Some(_) => {
                short.remove(&kind);
                false
            }
            None => false,
        }
    }

    /// Objects of `kind` in `parent_id` whose names match `name` exactly.
    pub async fn find_by_name(
        &self,
        kind: ObjectKind,
        parent_id: Option<&str>,
        name: &str,
    ) -> ApiResult<Vec<MediaObject>> {
        let mut q = ListQuery::children(kind, parent_id, self.config.page_size);
        q.query = Some(name.to_owned());
        let found = self.list_all(q).await?;
        Ok(found.into_iter().filter(|o| o.name == name).collect())
    }

    /// Checks the token and the location with the cheapest call there is.
    pub async fn verify_access(&self) -> ApiResult<()> {
        let mut q = ListQuery::children(ObjectKind::Folder, None, 1);
        q.limit = 1;
        self.list_page(&q).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[&str], count: Option<u64>) -> ListResponse {
        let files = ids
            .iter()
            .map(|id| {
                serde_json::from_value(serde_json::json!({"_id": id, "name": id, "type": "file"}))
                    .unwrap()
            })
            .collect();
        ListResponse { files, count }
    }

    #[test]
    fn an_answer_is_whole_only_when_it_holds_all_it_counts_once() {
        assert!(
            matches!(whole_or_partial(page(&["a", "b"], Some(2))), AtOnce::Whole(f) if f.len() == 2)
        );
        // An object listed twice is kept once, and counts once.
        match whole_or_partial(page(&["a", "a", "b"], Some(3))) {
            AtOnce::Partial {
                got: 2,
                count: Some(3),
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(whole_or_partial(page(&["a", "a", "b"], Some(2))), AtOnce::Whole(f) if f.len() == 2)
        );
        // Without a count, nothing tells it whole.
        assert!(matches!(
            whole_or_partial(page(&["a"], None)),
            AtOnce::Partial {
                got: 1,
                count: None
            }
        ));
    }
}
