//! The read-only checks: they change nothing, pass on any library (an
//! empty one included, where they say they had nothing to look at), and
//! cost a bounded number of requests whatever the library's size.

use std::collections::{HashMap, HashSet};

use mediafs::api::{ApiError, ByteRange, ListQuery, MediaObject, ObjectKind};
use serde_json::Value;

use super::probe::Answer;
use super::report::{excerpt, Check, Report, Severity};
use super::Ctx;

/// Objects per page of the paging check, and the most objects it reads.
const SMALL_PAGE: u64 = 3;
const PAGED_OBJECTS: u64 = 9;
/// The page of the client's own paged listing, and the most objects it reads.
const CLIENT_PAGE: u64 = 4;
const CLIENT_PAGED_MAX: usize = 12;
/// Folders besides the root whose own listings are compared with `fetchAll`.
const FOLDERS_COMPARED: usize = 3;
/// A folder is compared only when each kind fits one page of the client's listing.
const ONE_PAGE: usize = 90;
/// A public URL past this size is only read in part.
const WHOLE_DOWNLOAD_MAX: u64 = 4 << 20;
/// Made up, and shaped like the real ones.
const BAD_TOKEN: &str = "pit-00000000-0000-4000-8000-000000000000";
const OTHER_LOCATION: &str = "mediafsNoSuchLocatn0";

const RATE_HEADERS: [&str; 5] = [
    "x-ratelimit-max",
    "x-ratelimit-remaining",
    "x-ratelimit-interval-milliseconds",
    "x-ratelimit-limit-daily",
    "x-ratelimit-daily-remaining",
];

/// An object as listed: the JSON the service sent, and the client's reading of it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub raw: Value,
    pub object: MediaObject,
}

/// Every folder and every file `fetchAll` answered.
#[derive(Debug)]
pub struct Library {
    pub folders: Vec<Listed>,
    pub files: Vec<Listed>,
}

/// One listing the API can page through: a kind of object in one folder.
type Listing = (ObjectKind, Option<String>);

impl Library {
    fn of_kind(&self, kind: ObjectKind) -> &[Listed] {
        match kind {
            ObjectKind::Folder => &self.folders,
            ObjectKind::File => &self.files,
        }
    }

    fn len(&self) -> usize {
        self.folders.len() + self.files.len()
    }

    /// The objects of `kind` in `parent` (`None`: the root), oldest first.
    fn children(&self, parent: Option<&str>, kind: ObjectKind) -> Vec<&MediaObject> {
        self.of_kind(kind)
            .iter()
            .map(|l| &l.object)
            .filter(|o| o.parent_id.as_deref() == parent)
            .collect()
    }

    /// Every listing with how many objects it holds, the largest first.
    fn listings(&self) -> Vec<(Listing, usize)> {
        let mut counts: HashMap<Listing, usize> = HashMap::new();
        for o in self.folders.iter().chain(&self.files).map(|l| &l.object) {
            *counts.entry((o.kind, o.parent_id.clone())).or_default() += 1;
        }
        let mut all: Vec<_> = counts.into_iter().collect();
        all.sort_by(|(a, n), (b, m)| {
            m.cmp(n)
                .then_with(|| a.1.cmp(&b.1))
                .then_with(|| a.0.as_str().cmp(b.0.as_str()))
        });
        all
    }

    /// How a report names a folder.
    fn place(&self, parent: Option<&str>) -> String {
        match parent {
            None => "the root".into(),
            Some(id) => match self.folders.iter().find(|l| l.object.id == id) {
                Some(l) => format!("folder {:?} ({id})", l.object.name),
                None => format!("folder {id}"),
            },
        }
    }
}

fn noun(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Folder => "folders",
        ObjectKind::File => "files",
    }
}

/// Runs every read-only check; whether the token reached the location
/// (when it does not, the first check is the only one).
pub async fn run(ctx: &Ctx, first: Result<Answer, String>, report: &mut Report) -> bool {
    if !token_works(ctx, first.as_ref(), report).await {
        report.skipped("every other check", "the token does not reach the location");
        return false;
    }
    if let Ok(first) = &first {
        rate_limit_headers(first, report);
    }
    let (folders, all_folders) = fetch_all(ctx, ObjectKind::Folder, report).await;
    let (files, all_files) = fetch_all(ctx, ObjectKind::File, report).await;
    let library = Library { folders, files };
    if all_folders && all_files {
        tree_holds_together(&library, report);
        per_folder_listings_agree(ctx, &library, report).await;
        small_pages_leave_no_gaps(ctx, &library, report).await;
        client_pages_leave_no_gaps(ctx, &library, report).await;
    } else {
        report.skipped(
            "the checks that compare listings with fetchAll",
            "fetchAll did not answer the whole library",
        );
    }
    public_urls(ctx, &library, report).await;
    missing_type_is_refused(ctx, report).await;
    bad_token_is_refused(ctx, report).await;
    other_location_is_refused(ctx, report).await;
    true
}

async fn token_works(ctx: &Ctx, first: Result<&Answer, &String>, report: &mut Report) -> bool {
    let mut check = Check::new("the token reaches the location");
    match first {
        // The address, the token or the location given, most likely.
        Err(e) => check.setup(format!(
            "a one-folder listing got no answer from {}: {e}",
            ctx.target.base_url
        )),
        Ok(a) if matches!(a.status, 401 | 403 | 404) => check.setup(format!(
            "a one-folder listing was refused: {}",
            a.describe()
        )),
        Ok(a) if a.status != 200 => {
            check.broken(format!("a one-folder listing answered {}", a.describe()))
        }
        Ok(_) => {
            if let Err(e) = ctx.client.verify_access().await {
                check.broken(format!(
                    "the client's access check failed where a plain listing passed: {e}"
                ));
            }
        }
    }
    check.looked_at("a one-folder listing, plain and through the client");
    let works = !check.found_anything();
    report.add(check);
    works
}

fn rate_limit_headers(first: &Answer, report: &mut Report) {
    let mut check = Check::new("answers carry the X-RateLimit-* headers");
    let missing: Vec<&str> = RATE_HEADERS
        .into_iter()
        .filter(|h| first.number_header(h).is_none())
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = first.headers.keys().map(|k| k.as_str()).collect();
        check.differs(format!(
            "missing or not a number: {}; the answer's headers were {names:?}",
            missing.join(", ")
        ));
    }
    let announced: Vec<String> = RATE_HEADERS
        .into_iter()
        .map(|h| format!("{h} {}", first.header(h).unwrap_or("(absent)")))
        .collect();
    report.note(format!("the service announced {}", announced.join(", ")));
    report.add(check);
}

/// The JSON of a listing that answered 200 with a `files` array.
fn listing_body(answer: Result<Answer, String>, check: &mut Check) -> Option<Value> {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            check.broken(format!("a listing failed: {e}"));
            return None;
        }
    };
    match answer.json() {
        Some(body) if answer.status == 200 && body["files"].is_array() => Some(body),
        _ => {
            check.broken(format!("a listing answered {}", answer.describe()));
            None
        }
    }
}

/// Every object of `kind`, and whether that is all of them by the answer's `count`.
async fn fetch_all(ctx: &Ctx, kind: ObjectKind, report: &mut Report) -> (Vec<Listed>, bool) {
    let noun = noun(kind);
    let mut check = Check::new(format!(
        "fetchAll of {noun} is complete (its count matches what it holds)"
    ));
    // As the client asks it: no offset and no limit, which could only cut it short.
    let answer = ctx.probe.list(&fetch_all_query(kind, &[])).await;
    let Some(body) = listing_body(answer, &mut check) else {
        report.add(check);
        return (Vec::new(), false);
    };
    let items = body["files"].as_array().cloned().unwrap_or_default();
    let whole = body["count"].as_u64() == Some(items.len() as u64);
    match body["count"].as_u64() {
        Some(count) if count == items.len() as u64 => {}
        Some(count) if count > items.len() as u64 => check.differs(format!(
            "count is {count} but the answer holds {} {noun}: mediafs notices, asks once more, then lists {noun} folder by folder for ten minutes (many more requests)",
            items.len()
        )),
        Some(count) => check.broken(format!(
            "count is {count} but the answer holds {} {noun}",
            items.len()
        )),
        None => check.broken(format!(
            "no numeric `count` beside `files` (mediafs tells a complete answer by it); keys {:?}",
            keys(&body)
        )),
    }
    if !body["traceId"].is_string() {
        check.differs(format!(
            "no `traceId` beside `files` (the emulator sends one); keys {:?}",
            keys(&body)
        ));
    }
    let ids: HashSet<&str> = items.iter().filter_map(|o| o["_id"].as_str()).collect();
    if ids.len() < items.iter().filter(|o| o["_id"].is_string()).count() {
        check.broken("the answer holds some object twice (by `_id`)");
    }
    check.looked_at(format!("{} {noun}", items.len()));
    let listed = shapes(kind, &items, ctx.probe.location(), report);
    if items.is_empty() {
        report.nothing_to_look_at(
            check,
            format!("the library holds no {noun}, and count was 0"),
        );
    } else {
        report.add(check);
    }
    if items.len() > 1 {
        fetch_all_ignores_limit(ctx, kind, items.len(), report).await;
    }
    (listed, whole)
}

/// Whether `limit` cuts a `fetchAll` answer short: mediafs sends none, but
/// a service that honours it may also have a page size of its own.
async fn fetch_all_ignores_limit(ctx: &Ctx, kind: ObjectKind, whole: usize, report: &mut Report) {
    let noun = noun(kind);
    let mut check = Check::new(format!("fetchAll of {noun} ignores `limit`"));
    let answer = ctx
        .probe
        .list(&fetch_all_query(kind, &[("limit", "1")]))
        .await;
    if let Some(body) = listing_body(answer, &mut check) {
        let held = body["files"].as_array().map_or(0, Vec::len);
        if held != whole {
            check.differs(format!(
                "with limit=1 it holds {held} {noun} of {whole}: the service pages fetchAll answers \
                 (the emulator does not); mediafs sends no limit, but the service may have a page \
                 size of its own"
            ));
        }
        check.looked_at(format!("{held} {noun} with limit=1"));
    }
    report.add(check);
}

/// The query of a `fetchAll` listing of `kind`, with `more` parameters.
fn fetch_all_query<'a>(kind: ObjectKind, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut query = vec![
        ("type", kind.as_str()),
        ("sortBy", "createdAt"),
        ("sortOrder", "asc"),
        ("fetchAll", "true"),
    ];
    query.extend_from_slice(more);
    query
}

fn keys(body: &Value) -> Vec<&str> {
    body.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Checks each listed object's shape; those the client reads.
fn shapes(kind: ObjectKind, items: &[Value], location: &str, report: &mut Report) -> Vec<Listed> {
    let noun = noun(kind);
    let mut check = Check::new(format!("listed {noun} have the shapes mediafs expects"));
    // Each problem once, with how often it came and its first example.
    let mut problems: Vec<(Severity, String, usize, &Value)> = Vec::new();
    let mut tally = |severity: Severity, problem: String, item| match problems
        .iter_mut()
        .find(|p| p.1 == problem)
    {
        Some(p) => p.2 += 1,
        None => problems.push((severity, problem, 1, item)),
    };
    let mut listed = Vec::new();
    for item in items {
        for (severity, problem) in object_problems(item, kind, location) {
            tally(severity, problem.to_owned(), item);
        }
        match serde_json::from_value::<MediaObject>(item.clone()) {
            Ok(object) => listed.push(Listed {
                raw: item.clone(),
                object,
            }),
            Err(e) => tally(
                Severity::Broken,
                format!("does not parse as the client's MediaObject ({e})"),
                item,
            ),
        }
    }
    for (severity, problem, count, example) in problems {
        let detail = format!(
            "{problem}: {count} of {} {noun}, e.g. {}",
            items.len(),
            excerpt(example)
        );
        match severity {
            Severity::Broken => check.broken(detail),
            Severity::Differs => check.differs(detail),
            Severity::Setup => check.setup(detail),
        }
    }
    check.looked_at(format!("{} {noun}", items.len()));
    if items.is_empty() {
        report.nothing_to_look_at(check, format!("the library holds no {noun}"));
    } else {
        report.add(check);
    }
    listed
}

fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// What is wrong with one listed object, by what the client reads
/// (broken) and by what the emulator sends (differs).
fn object_problems(o: &Value, kind: ObjectKind, location: &str) -> Vec<(Severity, &'static str)> {
    use Severity::{Broken, Differs};
    let parent = o.get("parentId");
    let mut rules = vec![
        (
            o["_id"].is_string(),
            Broken,
            "`_id` is missing or not a string",
        ),
        (
            o["_id"].as_str().is_none_or(is_object_id),
            Differs,
            "`_id` is not 24 hex digits",
        ),
        (
            o["name"].is_string(),
            Broken,
            "`name` is missing or not a string",
        ),
        (
            o["type"] == kind.as_str(),
            Broken,
            "`type` is not the kind the listing asked for",
        ),
        (
            parent.is_none_or(|p| p.is_null() || p.is_string()),
            Broken,
            "`parentId` is neither a string nor null",
        ),
        (
            o["altId"] == location,
            Differs,
            "`altId` is not the location asked for",
        ),
        (
            o["createdAt"].is_string() && o["updatedAt"].is_string(),
            Differs,
            "`createdAt` or `updatedAt` is missing",
        ),
    ];
    rules.extend(kind_rules(o, kind));
    rules
        .into_iter()
        .filter(|(ok, _, _)| !ok)
        .map(|(_, severity, problem)| (severity, problem))
        .collect()
}

/// What [`object_problems`] checks of a file or of a folder alone.
fn kind_rules(o: &Value, kind: ObjectKind) -> Vec<(bool, Severity, &'static str)> {
    use Severity::{Broken, Differs};
    let parent = o.get("parentId");
    match kind {
        ObjectKind::File => {
            let url = o["url"].as_str().unwrap_or_default();
            vec![
                (
                    url.starts_with("https://") || url.starts_with("http://"),
                    Broken,
                    "`url` is missing or not an http(s) URL",
                ),
                (
                    o["size"].is_u64(),
                    Broken,
                    "`size` is missing or not a whole number",
                ),
                (
                    o["contentType"].is_string(),
                    Broken,
                    "`contentType` is missing",
                ),
                (
                    parent.is_none_or(|p| !p.is_null()),
                    Differs,
                    "a file at the root carries `parentId: null` (the emulator leaves it out)",
                ),
            ]
        }
        ObjectKind::Folder => vec![
            (
                parent.is_some(),
                Differs,
                "a folder at the root has no `parentId` (the emulator sends null)",
            ),
            (
                o.get("url").is_none_or(Value::is_null),
                Differs,
                "a folder has a `url`",
            ),
        ],
    }
}

fn tree_holds_together(library: &Library, report: &mut Report) {
    let mut check = Check::new("every listed object's parent is a listed folder");
    let folders: HashSet<&str> = library
        .folders
        .iter()
        .map(|l| l.object.id.as_str())
        .collect();
    let orphans: Vec<&Listed> = library
        .folders
        .iter()
        .chain(&library.files)
        .filter(|l| {
            l.object
                .parent_id
                .as_deref()
                .is_some_and(|p| !folders.contains(p))
        })
        .collect();
    if let Some(first) = orphans.first() {
        check.differs(format!(
            "{} objects name a parent that fetchAll of folders does not list, so no folder's listing leads to them, e.g. {}",
            orphans.len(),
            excerpt(&first.raw)
        ));
    }
    check.looked_at(format!("{} objects", library.len()));
    if library.len() == 0 {
        report.nothing_to_look_at(check, "the library is empty");
    } else {
        report.add(check);
    }
}

/// The root and the few folders holding the most, each kind of whose
/// children fits one page of the client's listing.
fn folders_to_compare(library: &Library) -> Vec<Option<String>> {
    let listings = library.listings();
    let count = |kind, parent: Option<&str>| {
        listings
            .iter()
            .find(|((k, p), _)| *k == kind && p.as_deref() == parent)
            .map_or(0, |(_, n)| *n)
    };
    let fits = |p: Option<&str>| {
        count(ObjectKind::Folder, p) <= ONE_PAGE && count(ObjectKind::File, p) <= ONE_PAGE
    };
    let mut picks: Vec<Option<String>> = Vec::new();
    if fits(None) {
        picks.push(None);
    }
    let mut folders: Vec<(usize, &str)> = library
        .folders
        .iter()
        .map(|l| l.object.id.as_str())
        .map(|id| {
            (
                count(ObjectKind::Folder, Some(id)) + count(ObjectKind::File, Some(id)),
                id,
            )
        })
        .filter(|&(n, id)| n > 0 && fits(Some(id)))
        .collect();
    folders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    picks.extend(
        folders
            .into_iter()
            .take(FOLDERS_COMPARED)
            .map(|(_, id)| Some(id.to_owned())),
    );
    picks
}

async fn per_folder_listings_agree(ctx: &Ctx, library: &Library, report: &mut Report) {
    let mut check = Check::new("each folder's own listing agrees with fetchAll");
    let picks = folders_to_compare(library);
    let mut compared = 0;
    for parent in &picks {
        let parent = parent.as_deref();
        let place = library.place(parent);
        let mut expected = library.children(parent, ObjectKind::Folder);
        expected.extend(library.children(parent, ObjectKind::File));
        compared += expected.len();
        match ctx.client.list_children(parent).await {
            Ok(listed) => compare_listing(&mut check, &place, &expected, &listed),
            Err(e) => check.broken(format!("listing {place} failed: {e}")),
        }
    }
    let folders = match picks.first() {
        Some(None) => format!("the root and {} folders", picks.len() - 1),
        _ => format!("{} folders", picks.len()),
    };
    check.looked_at(format!("{folders}, {compared} objects"));
    if compared == 0 {
        let why = if picks.is_empty() {
            "every folder holds more than one page of files or folders"
        } else {
            "the library is empty; the root's listing was empty too"
        };
        report.nothing_to_look_at(check, why);
    } else {
        report.add(check);
    }
}

/// What mediafs shows of an object, to compare two listings of it.
fn shown(o: &MediaObject) -> impl PartialEq + '_ {
    (
        &o.name,
        o.kind,
        &o.parent_id,
        o.size,
        &o.content_type,
        &o.url,
    )
}

fn compare_listing(
    check: &mut Check,
    place: &str,
    expected: &[&MediaObject],
    listed: &[MediaObject],
) {
    let by_id: HashMap<&str, &MediaObject> = listed.iter().map(|o| (o.id.as_str(), o)).collect();
    let expected_ids: HashSet<&str> = expected.iter().map(|o| o.id.as_str()).collect();
    let names = |objects: Vec<&MediaObject>| -> Vec<String> {
        objects
            .iter()
            .take(10)
            .map(|o| format!("{:?} ({})", o.name, o.id))
            .collect()
    };
    let missing: Vec<&MediaObject> = expected
        .iter()
        .copied()
        .filter(|o| !by_id.contains_key(o.id.as_str()))
        .collect();
    let extra: Vec<&MediaObject> = listed
        .iter()
        .filter(|o| !expected_ids.contains(o.id.as_str()))
        .collect();
    if !missing.is_empty() {
        check.broken(format!(
            "{place}: {} objects fetchAll lists are missing from its own listing: {:?}",
            missing.len(),
            names(missing)
        ));
    }
    if !extra.is_empty() {
        check.broken(format!(
            "{place}: its own listing holds {} objects fetchAll does not: {:?}",
            extra.len(),
            names(extra)
        ));
    }
    if by_id.len() < listed.len() {
        check.broken(format!("{place}: its own listing holds some object twice"));
    }
    let differing = expected.iter().find(|o| {
        by_id
            .get(o.id.as_str())
            .is_some_and(|l| shown(l) != shown(o))
    });
    if let Some(o) = differing {
        let json = |o: &MediaObject| serde_json::to_string(o).unwrap_or_default();
        check.broken(format!(
            "{place}: fetchAll and the folder's listing describe an object differently: {} and {}",
            json(o),
            json(by_id[o.id.as_str()])
        ));
    }
}

/// One page of a listing, oldest first: its objects' ids and names, and its `count`.
async fn page(
    ctx: &Ctx,
    (kind, parent): &Listing,
    offset: u64,
    limit: u64,
    check: &mut Check,
) -> (Vec<(String, String)>, Option<u64>) {
    let (offset_text, limit_text) = (offset.to_string(), limit.to_string());
    let mut params = vec![
        ("type", kind.as_str()),
        ("sortBy", "createdAt"),
        ("sortOrder", "asc"),
        ("offset", offset_text.as_str()),
        ("limit", limit_text.as_str()),
    ];
    if let Some(parent) = parent {
        params.push(("parentId", parent.as_str()));
    }
    let Some(body) = listing_body(ctx.probe.list(&params).await, check) else {
        return (Vec::new(), None);
    };
    let files = body["files"].as_array().cloned().unwrap_or_default();
    if files.len() as u64 > limit {
        check.differs(format!(
            "a page of {limit} at offset {offset} held {} objects",
            files.len()
        ));
    }
    let field = |o: &Value, key: &str| o[key].as_str().unwrap_or_default().to_owned();
    let ids = files
        .iter()
        .map(|o| (field(o, "_id"), field(o, "name")))
        .collect();
    (ids, body["count"].as_u64())
}

async fn small_pages_leave_no_gaps(ctx: &Ctx, library: &Library, report: &mut Report) {
    let mut check = Check::new(format!(
        "pages of {SMALL_PAGE} leave no gaps or duplicates and carry the listing's count"
    ));
    let largest = library.listings().into_iter().next();
    let Some((listing, total)) = largest.filter(|(_, n)| *n as u64 > SMALL_PAGE) else {
        return report.nothing_to_look_at(
            check,
            format!("no folder holds more than {SMALL_PAGE} files or {SMALL_PAGE} folders"),
        );
    };
    let n = (total as u64).min(PAGED_OBJECTS);
    let (whole, whole_count) = page(ctx, &listing, 0, n, &mut check).await;
    let mut paged = Vec::new();
    let mut counts = vec![whole_count];
    for offset in (0..n).step_by(SMALL_PAGE as usize) {
        let (ids, count) = page(
            ctx,
            &listing,
            offset,
            SMALL_PAGE.min(n - offset),
            &mut check,
        )
        .await;
        paged.extend(ids);
        counts.push(count);
    }
    if counts.iter().any(|&c| c != Some(total as u64)) {
        let counts: Vec<String> = counts
            .iter()
            .map(|c| c.map_or("absent".into(), |c| c.to_string()))
            .collect();
        check.broken(format!(
            "the pages' counts are {} but the listing holds {total} by fetchAll: count must be the listing's total",
            counts.join(", ")
        ));
    }
    if whole.len() as u64 != n {
        check.broken(format!(
            "a page of {n} held {} objects, though the listing holds {total}",
            whole.len()
        ));
    }
    if paged != whole {
        let names = |page: &[(String, String)]| {
            page.iter()
                .map(|(_, name)| name.clone())
                .collect::<Vec<_>>()
        };
        check.broken(format!(
            "the pages one after another are not the one page of {n}: one page {:?}, pages of {SMALL_PAGE} {:?}",
            names(&whole),
            names(&paged)
        ));
    }
    let place = library.place(listing.1.as_deref());
    check.looked_at(format!(
        "the first {n} of {total} {} in {place}",
        noun(listing.0)
    ));
    report.add(check);
}

async fn client_pages_leave_no_gaps(ctx: &Ctx, library: &Library, report: &mut Report) {
    let mut check = Check::new(format!(
        "the client's paged listing (pages of {CLIENT_PAGE}) holds every object once"
    ));
    let small_enough = |n: usize| n > CLIENT_PAGE as usize && n <= CLIENT_PAGED_MAX;
    let Some(((kind, parent), total)) = library
        .listings()
        .into_iter()
        .find(|(_, n)| small_enough(*n))
    else {
        return report.nothing_to_look_at(
            check,
            format!(
                "no folder holds {} to {CLIENT_PAGED_MAX} files or folders",
                CLIENT_PAGE + 1
            ),
        );
    };
    let place = library.place(parent.as_deref());
    match ctx
        .client
        .list_all(ListQuery::children(kind, parent.as_deref(), CLIENT_PAGE))
        .await
    {
        Ok(listed) => compare_listing(
            &mut check,
            &place,
            &library.children(parent.as_deref(), kind),
            &listed,
        ),
        Err(e) => check.broken(format!("the client's listing of {place} failed: {e}")),
    }
    check.looked_at(format!("{total} {} in {place}", noun(kind)));
    report.add(check);
}

async fn public_urls(ctx: &Ctx, library: &Library, report: &mut Report) {
    let mut check = Check::new("a public url downloads without the token and honours Range");
    let smallest = library
        .files
        .iter()
        .map(|l| &l.object)
        .filter(|o| o.url.is_some() && o.size.is_some_and(|s| s > 0))
        .min_by_key(|o| o.size);
    let Some(file) = smallest else {
        return report.nothing_to_look_at(check, "the library holds no file with bytes");
    };
    let (url, size) = (
        file.url.as_deref().unwrap_or_default(),
        file.size.unwrap_or_default(),
    );
    let whole = match size <= WHOLE_DOWNLOAD_MAX {
        true => whole_download(ctx, file, &mut check).await,
        false => None,
    };
    ranged_download(ctx, url, size, whole.as_deref(), &mut check).await;
    match ctx
        .probe
        .download(url, Some(&format!("bytes={}-{}", size + 10, size + 20)))
        .await
    {
        Ok(past) if past.status != 416 => check.differs(format!(
            "a Range past the end answered HTTP {} (the emulator answers 416)",
            past.status
        )),
        Ok(_) => {}
        Err(e) => check.broken(format!("a Range past the end failed: {e}")),
    }
    let host = url.split('/').nth(2).unwrap_or_default();
    check.looked_at(format!(
        "{:?}, {size} bytes of {}, from {host}",
        file.name,
        file.content_type.as_deref().unwrap_or("?")
    ));
    report.add(check);
}

async fn whole_download(ctx: &Ctx, file: &MediaObject, check: &mut Check) -> Option<bytes::Bytes> {
    let url = file.url.as_deref().unwrap_or_default();
    let got = match ctx.probe.download(url, None).await {
        Ok(got) if got.status == 200 => got,
        Ok(got) => {
            let body = String::from_utf8_lossy(&got.body).into_owned();
            check.broken(format!(
                "a GET without a token answered HTTP {}: {}",
                got.status,
                excerpt(&body)
            ));
            return None;
        }
        Err(e) => {
            check.broken(format!("a GET without a token failed: {e}"));
            return None;
        }
    };
    if Some(got.body.len() as u64) != file.size {
        check.broken(format!(
            "the url served {} bytes; the listing says size {:?}",
            got.body.len(),
            file.size
        ));
    }
    let served_type = got
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or(t).trim());
    if served_type != file.content_type.as_deref() {
        check.differs(format!(
            "the url serves Content-Type {served_type:?}; the listing says {:?}",
            file.content_type
        ));
    }
    if got.header("accept-ranges") != Some("bytes") {
        check.differs(format!(
            "the url's answer has Accept-Ranges {:?} (the emulator says bytes)",
            got.header("accept-ranges")
        ));
    }
    Some(got.body)
}

async fn ranged_download(ctx: &Ctx, url: &str, size: u64, whole: Option<&[u8]>, check: &mut Check) {
    let first = size / 3;
    let last = (first + 99).min(size - 1);
    let range = format!("bytes={first}-{last}");
    let got = match ctx.probe.download(url, Some(&range)).await {
        Ok(got) => got,
        Err(e) => return check.broken(format!("a GET of {range} failed: {e}")),
    };
    if got.status != 206 {
        return check.broken(format!(
            "a GET of {range} answered HTTP {} with {} bytes, not 206 with that piece: mediafs reads files in pieces this way",
            got.status,
            got.body.len()
        ));
    }
    let wanted = whole.map(|w| &w[first as usize..=last as usize]);
    if got.body.len() as u64 != last - first + 1 || wanted.is_some_and(|w| w != got.body) {
        check.broken(format!(
            "a GET of {range} gave {} bytes that are not the file's bytes there",
            got.body.len()
        ));
    }
    let content_range = format!("bytes {first}-{last}/{size}");
    if got.header("content-range") != Some(content_range.as_str()) {
        check.differs(format!(
            "a GET of {range} answered Content-Range {:?} (the emulator: {content_range:?})",
            got.header("content-range")
        ));
    }
    let piece = ByteRange {
        offset: first,
        len: last - first + 1,
    };
    match ctx.client.read_range(url, piece).await {
        Ok(read) if read.to_bytes() == got.body => {}
        Ok(_) => check.broken(format!(
            "the client's read of {range} gave other bytes than a plain GET"
        )),
        Err(e) => check.broken(format!("the client's read of {range} failed: {e}")),
    }
}

async fn missing_type_is_refused(ctx: &Ctx, report: &mut Report) {
    let mut check = Check::new("a listing without `type` gets 422 with `message` as an array");
    match ctx.probe.list(&[("limit", "1")]).await {
        Err(e) => check.broken(format!("the listing failed: {e}")),
        Ok(a) => {
            let messages = a
                .json()
                .and_then(|b| b["message"].as_array().cloned())
                .unwrap_or_default();
            if a.status != 422 || messages.is_empty() || !messages.iter().all(Value::is_string) {
                check.differs(format!("the emulator answers 422 with `message` an array of strings; the service answered {}", a.describe()));
            }
            let read = ApiError::from_status(a.status, &a.text, None);
            if !matches!(read, ApiError::InvalidRequest { .. }) {
                check.differs(format!("the client reads it as: {read}"));
            }
        }
    }
    check.looked_at("one listing");
    report.add(check);
}

async fn bad_token_is_refused(ctx: &Ctx, report: &mut Report) {
    let mut check = Check::new("a bad token gets 401 in the documented shape");
    let location = ctx.probe.location().to_owned();
    match ctx
        .probe
        .list_as(BAD_TOKEN, &location, &[("type", "folder"), ("limit", "1")])
        .await
    {
        Err(e) => check.broken(format!("the listing failed: {e}")),
        Ok(a) => {
            let body = a.json().unwrap_or_default();
            let documented = body["statusCode"] == 401
                && body["message"].is_string()
                && body["error"] == "Unauthorized";
            if (200..300).contains(&a.status) {
                check.broken(format!("a made-up token was let in: {}", a.describe()));
            } else if a.status != 401 || !documented {
                check.differs(format!("the emulator answers 401 {{\"statusCode\": 401, \"message\": \"...\", \"error\": \"Unauthorized\"}}; the service answered {}", a.describe()));
            } else if !body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Invalid token")
            {
                check.differs(format!("the message is not the emulator's \"Invalid token: access token is invalid\": {}", a.describe()));
            }
            let read = ApiError::from_status(a.status, &a.text, None);
            if !matches!(read, ApiError::Unauthorized { .. }) {
                check.broken(format!(
                    "mediafs would not tell the user the token is refused; it reads: {read}"
                ));
            }
        }
    }
    check.looked_at("one listing with a made-up token");
    report.add(check);
}

async fn other_location_is_refused(ctx: &Ctx, report: &mut Report) {
    let mut check = Check::new("the token is refused for another location");
    let token = ctx.target.token.expose().to_owned();
    match ctx.probe.list_as(&token, OTHER_LOCATION, &[("type", "folder"), ("limit", "1")]).await {
        Err(e) => check.broken(format!("the listing failed: {e}")),
        Ok(a) if a.status == 401 && a.text.contains("grants access to location") => {}
        Ok(a) => check.differs(format!(
            "for a location the token does not reach ({OTHER_LOCATION}), the emulator answers 401 \"Your token grants access to location ... but you're requesting ...\"; the service answered {}",
            a.describe()
        )),
    }
    check.looked_at("one listing of a made-up location");
    report.add(check);
}
