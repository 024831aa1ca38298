//! The write checks, run only behind `MEDIAFS_LIVE_WRITE=1`. They work in
//! a scratch folder `mediafs-contract-<time>-<random>` they make at the
//! root and touch nothing else; at the end, also when a check panics, they
//! trash everything they made (restorable from the library's trash).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::FutureExt;
use mediafs::api::{DeleteStatus, ListQuery, MediaObject, ObjectKind};
use serde_json::json;

use super::report::{Check, Report};
use super::{Ctx, WRITE_VAR};

/// A file the suite uploads: real bytes, so the service has no reason to refuse them.
#[derive(Debug)]
pub struct Sample {
    pub name: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

pub const SAMPLES: [Sample; 3] = [
    Sample {
        name: "logo.png",
        bytes: include_bytes!("../../assets/demo/logo.png"),
        content_type: "image/png",
    },
    Sample {
        name: "guide.pdf",
        bytes: include_bytes!("../../assets/demo/brand-guidelines.pdf"),
        content_type: "application/pdf",
    },
    Sample {
        name: "clip.mp4",
        bytes: include_bytes!("../../assets/demo/promo.mp4"),
        content_type: "video/mp4",
    },
];

impl Sample {
    fn write_into(&self, dir: &Path) -> PathBuf {
        let path = dir.join(self.name);
        std::fs::write(&path, self.bytes).expect("a temp file can be written");
        path
    }
}

/// The folder the write checks work in, and what they made there.
#[derive(Debug)]
pub struct ScratchFolder {
    pub id: String,
    pub name: String,
    /// Each object made, with the folder it was made in.
    made: Mutex<Vec<(String, String)>>,
    /// Those trashed or deleted since.
    gone: Mutex<HashSet<String>>,
}

impl ScratchFolder {
    /// Counts an object made in `parent` (the scratch folder or one inside it).
    pub fn made(&self, id: &str, parent: &str) {
        self.made
            .lock()
            .unwrap()
            .push((id.to_owned(), parent.to_owned()));
    }

    fn gone(&self, id: &str) {
        self.gone.lock().unwrap().insert(id.to_owned());
    }

    /// What is left to trash: the objects made, but for those gone and
    /// those in a folder gone, then the scratch folder itself.
    fn still_there(&self) -> Vec<String> {
        let gone = self.gone.lock().unwrap();
        self.made
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, parent)| !gone.contains(id) && !gone.contains(parent))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Makes the folder with a plain request, to see its answer as sent.
    async fn create(ctx: &Ctx, report: &mut Report) -> Option<ScratchFolder> {
        let name = format!(
            "mediafs-contract-{}-{:08x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            rand::random::<u32>()
        );
        let mut check = Check::new("a folder made at the root answers 201 with the folder");
        let body = json!({"altId": ctx.target.location, "altType": "location", "name": name});
        let answer = ctx
            .probe
            .call("/medias/folder", |c, url| c.post(url).json(&body))
            .await;
        let id = match &answer {
            Ok(a) if (200..300).contains(&a.status) => {
                if a.status != 201 {
                    check.differs(format!(
                        "the emulator answers 201; the service answered {}",
                        a.describe()
                    ));
                }
                let body = a.json().unwrap_or_default();
                if let Err(e) = serde_json::from_value::<MediaObject>(body.clone()) {
                    check.broken(format!(
                        "the client cannot read the folder from the answer ({e}): {}",
                        a.describe()
                    ));
                }
                body["_id"].as_str().map(str::to_owned)
            }
            _ => None,
        };
        let Some(id) = id else {
            let refused = matches!(&answer, Ok(a) if matches!(a.status, 401 | 403));
            let answer = answer.map_or_else(|e| e, |a| a.describe());
            if refused {
                check.setup(format!(
                    "making the scratch folder was refused ({answer}): the token may lack \
                     medias.write; give it that scope, or leave {WRITE_VAR} unset for the \
                     read checks alone"
                ));
            } else {
                check.broken(format!(
                    "making the scratch folder {name:?} answered {answer}, without the \
                     folder's `_id`"
                ));
            }
            report.add(check);
            trash_by_name(ctx, &name, report).await;
            return None;
        };
        check.looked_at(format!("the scratch folder {name:?}"));
        report.add(check);
        Some(ScratchFolder {
            id,
            name,
            made: Mutex::default(),
            gone: Mutex::default(),
        })
    }

    /// Trashes what is left of what the suite made, then the scratch folder.
    async fn trash(&self, ctx: &Ctx, report: &mut Report) {
        let mut check = Check::new("everything the suite made is trashed at the end");
        let inside = self.still_there();
        if !inside.is_empty() {
            if let Err(e) = ctx.client.delete_many(&inside, DeleteStatus::Trashed).await {
                check.differs(format!(
                    "trashing the {} objects left in the scratch folder failed: {e}",
                    inside.len()
                ));
            }
        }
        if let Err(e) = ctx
            .client
            .delete_many(std::slice::from_ref(&self.id), DeleteStatus::Trashed)
            .await
        {
            check.broken(format!(
                "trashing the scratch folder failed: {e}; please trash {:?} by hand",
                self.name
            ));
        }
        match ctx
            .client
            .find_by_name(ObjectKind::Folder, None, &self.name)
            .await
        {
            Ok(found) if found.is_empty() => {}
            Ok(_) => check.broken(format!(
                "{:?} is still listed after it was trashed; please trash it by hand",
                self.name
            )),
            Err(e) => check.broken(format!(
                "looking for {:?} after trashing it failed: {e}",
                self.name
            )),
        }
        let made = self.made.lock().unwrap().len();
        check.looked_at(format!("{:?} and the {made} objects made in it", self.name));
        report.add(check);
    }
}

/// When the answer to making the scratch folder was lost or unreadable,
/// the folder may still have been made: trashes any of that name.
async fn trash_by_name(ctx: &Ctx, name: &str, report: &mut Report) {
    if let Ok(found) = ctx
        .client
        .find_by_name(ObjectKind::Folder, None, name)
        .await
    {
        let ids: Vec<String> = found.into_iter().map(|f| f.id).collect();
        if !ids.is_empty()
            && ctx
                .client
                .delete_many(&ids, DeleteStatus::Trashed)
                .await
                .is_err()
        {
            report.note(format!(
                "the scratch folder {name:?} may be left in the library: please trash it by hand"
            ));
        }
    }
}

/// Makes a scratch folder, runs `body` in it, and trashes what it made,
/// also when `body` panics (the panic goes on after).
pub async fn in_scratch_folder(
    ctx: &Ctx,
    report: &mut Report,
    body: impl AsyncFnOnce(&ScratchFolder, &mut Report),
) {
    let Some(scratch) = ScratchFolder::create(ctx, report).await else {
        report.skipped(
            "the other write checks",
            "there was no scratch folder to work in",
        );
        return;
    };
    let outcome = AssertUnwindSafe(body(&scratch, report))
        .catch_unwind()
        .await;
    scratch.trash(ctx, report).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub async fn run(ctx: &Ctx, report: &mut Report) {
    in_scratch_folder(
        ctx,
        report,
        async |scratch: &ScratchFolder, report: &mut Report| {
            let dir = tempfile::tempdir().expect("a temp dir can be made");
            let uploaded = uploads_land(ctx, scratch, dir.path(), report).await;
            let twins = same_names_side_by_side(ctx, scratch, dir.path(), report).await;
            renames(ctx, scratch, &uploaded, &twins, report).await;
            octet_stream_is_refused(ctx, scratch, report).await;
            trash_and_delete(ctx, scratch, dir.path(), &uploaded, &twins, report).await;
            hosted_upload(ctx, scratch, &uploaded, report).await;
        },
    )
    .await;
}

/// The samples, uploaded into the scratch folder.
type Uploaded = Vec<(&'static Sample, MediaObject)>;

async fn uploads_land(
    ctx: &Ctx,
    scratch: &ScratchFolder,
    dir: &Path,
    report: &mut Report,
) -> Uploaded {
    let mut check =
        Check::new("a PNG, a PDF and a video upload into a folder, with their bytes and types");
    let mut uploaded = Vec::new();
    for sample in &SAMPLES {
        match ctx
            .client
            .upload_file(&sample.write_into(dir), sample.name, Some(&scratch.id))
            .await
        {
            Ok(o) => {
                scratch.made(&o.id, &scratch.id);
                uploaded.push((sample, o));
            }
            Err(e) => check.broken(format!("uploading {} failed: {e}", sample.name)),
        }
    }
    match ctx
        .client
        .list_all(ListQuery::children(
            ObjectKind::File,
            Some(&scratch.id),
            100,
        ))
        .await
    {
        Ok(listed) => {
            for (sample, o) in &uploaded {
                check_upload(ctx, &mut check, sample, o, &listed).await;
            }
        }
        Err(e) => check.broken(format!("listing the scratch folder failed: {e}")),
    }
    check.looked_at(format!("{} uploads", uploaded.len()));
    report.add(check);
    uploaded
}

/// The upload is listed in its folder as sent, and its url serves its bytes.
async fn check_upload(
    ctx: &Ctx,
    check: &mut Check,
    sample: &Sample,
    uploaded: &MediaObject,
    listed: &[MediaObject],
) {
    let Some(found) = listed.iter().find(|l| l.id == uploaded.id) else {
        return check.broken(format!(
            "{} ({}) is not listed in the folder it was uploaded into",
            sample.name, uploaded.id
        ));
    };
    let json = serde_json::to_string(found).unwrap_or_default();
    if found.name != sample.name
        || found.size != Some(sample.bytes.len() as u64)
        || found.parent_id != uploaded.parent_id
    {
        check.broken(format!(
            "{} ({} bytes) is listed as {json}",
            sample.name,
            sample.bytes.len()
        ));
    }
    if found.content_type.as_deref() != Some(sample.content_type) {
        check.differs(format!(
            "{} was uploaded as {} and is listed as {json}",
            sample.name, sample.content_type
        ));
    }
    if found.url != uploaded.url {
        check.differs(format!(
            "the upload of {} answered url {:?}; the listing says {:?}",
            sample.name, uploaded.url, found.url
        ));
    }
    match ctx
        .probe
        .download(found.url.as_deref().unwrap_or_default(), None)
        .await
    {
        Ok(got) if got.status == 200 && got.body == sample.bytes => {}
        Ok(got) => check.broken(format!(
            "the url of {} answered HTTP {} with {} bytes that are not the ones uploaded",
            sample.name,
            got.status,
            got.body.len()
        )),
        Err(e) => check.broken(format!("downloading {} failed: {e}", sample.name)),
    }
}

/// A second file and two folders of one name, made beside the first.
#[derive(Debug, Default)]
struct Twins {
    file: Option<MediaObject>,
    folders: Vec<MediaObject>,
}

async fn same_names_side_by_side(
    ctx: &Ctx,
    scratch: &ScratchFolder,
    dir: &Path,
    report: &mut Report,
) -> Twins {
    let mut check = Check::new("two files and two folders of one name live side by side");
    let mut twins = Twins::default();
    let png = &SAMPLES[0];
    match ctx
        .client
        .upload_file(&png.write_into(dir), png.name, Some(&scratch.id))
        .await
    {
        Ok(o) => {
            scratch.made(&o.id, &scratch.id);
            twins.file = Some(o);
        }
        Err(e) => check.differs(format!("a second upload named {} failed: {e}", png.name)),
    }
    for _ in 0..2 {
        match ctx.client.create_folder("twin", Some(&scratch.id)).await {
            Ok(f) => {
                scratch.made(&f.id, &scratch.id);
                twins.folders.push(f);
            }
            Err(e) => check.broken(format!(
                "making a folder \"twin\" in the scratch folder failed: {e}"
            )),
        }
    }
    match ctx.client.list_children(Some(&scratch.id)).await {
        Ok(listed) => {
            let named = |name: &str| listed.iter().filter(|o| o.name == name).count();
            if named(png.name) != 2 || named("twin") != 2 {
                let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
                check.differs(format!("after two uploads named {} and two folders named twin the folder holds {names:?}", png.name));
            }
        }
        Err(e) => check.broken(format!("listing the scratch folder failed: {e}")),
    }
    check.looked_at("two files and two folders");
    report.add(check);
    twins
}

async fn renames(
    ctx: &Ctx,
    scratch: &ScratchFolder,
    uploaded: &Uploaded,
    twins: &Twins,
    report: &mut Report,
) {
    let mut check = Check::new("renaming one object, and many at once");
    let mut wanted: Vec<(String, String)> = Vec::new();
    if let Some((_, png)) = uploaded.first() {
        match ctx.client.rename(&png.id, "renamed-one.png").await {
            Ok(()) => wanted.push((png.id.clone(), "renamed-one.png".into())),
            Err(e) => check.broken(format!("renaming {} failed: {e}", png.name)),
        }
    }
    let mut many: Vec<(String, String)> = uploaded
        .iter()
        .skip(1)
        .map(|(s, o)| (o.id.clone(), format!("renamed-many-{}", s.name)))
        .collect();
    many.extend(
        twins
            .folders
            .last()
            .map(|f| (f.id.clone(), "twin-renamed".to_owned())),
    );
    match ctx.client.rename_many(&many).await {
        Ok(()) => wanted.extend(many),
        Err(e) => check.broken(format!(
            "renaming {} objects at once failed: {e}",
            many.len()
        )),
    }
    match ctx.client.list_children(Some(&scratch.id)).await {
        Ok(listed) => {
            for (id, name) in &wanted {
                let now = listed.iter().find(|o| &o.id == id).map(|o| o.name.as_str());
                if now != Some(name.as_str()) {
                    check.broken(format!(
                        "{id} was renamed {name:?}; the folder lists it as {now:?}"
                    ));
                }
            }
        }
        Err(e) => check.broken(format!("listing the scratch folder failed: {e}")),
    }
    check.looked_at(format!("{} renames", wanted.len()));
    report.add(check);
}

/// Sent with a plain request: the client refuses such a file before sending it.
async fn octet_stream_is_refused(ctx: &Ctx, scratch: &ScratchFolder, report: &mut Report) {
    use mediafs::api::ApiError;
    let mut check = Check::new("an upload sent as application/octet-stream is refused");
    let form = || {
        let part = reqwest::multipart::Part::bytes(b"\x00\x01\x02\x03 mediafs contract".to_vec())
            .file_name("refused.bin")
            .mime_str("application/octet-stream")
            .expect("a MIME type parses");
        reqwest::multipart::Form::new()
            .text("altId", ctx.target.location.clone())
            .text("altType", "location")
            .text("name", "refused.bin")
            .text("parentId", scratch.id.clone())
            .part("file", part)
    };
    match ctx
        .probe
        .call("/medias/upload-file", |c, url| {
            c.post(url).multipart(form())
        })
        .await
    {
        Err(e) => check.broken(format!("the upload failed: {e}")),
        Ok(a) if (200..300).contains(&a.status) => {
            if let Some(id) = a
                .json()
                .and_then(|b| b["fileId"].as_str().map(str::to_owned))
            {
                scratch.made(&id, &scratch.id);
            }
            check.differs(format!(
                "the service took it (the emulator refuses it with 400 INVALID_FILE_TYPE): {}",
                a.describe()
            ));
        }
        Ok(a) => {
            if a.status != 400 || !a.text.contains("INVALID_FILE_TYPE") {
                check.differs(format!(
                    "the emulator answers 400 INVALID_FILE_TYPE; the service answered {}",
                    a.describe()
                ));
            }
            let read = ApiError::from_status(a.status, &a.text, None);
            if !matches!(read, ApiError::TypeRefused { .. }) {
                check.differs(format!("the client reads the refusal as: {read}"));
            }
        }
    }
    check.looked_at("one upload");
    report.add(check);
}

/// What the trash-and-delete check removed.
#[derive(Debug, Default)]
struct Removed {
    trashed_file: Option<MediaObject>,
    deleted_file: Option<MediaObject>,
    trashed_folder: Option<MediaObject>,
    /// A file in the trashed folder.
    nested: Option<MediaObject>,
}

async fn trash_and_delete(
    ctx: &Ctx,
    scratch: &ScratchFolder,
    dir: &Path,
    uploaded: &Uploaded,
    twins: &Twins,
    report: &mut Report,
) {
    let mut check = Check::new("trashed and deleted objects leave the listings");
    let removed = remove_some(ctx, scratch, dir, uploaded, twins, &mut check).await;
    let ids = |objects: &[&Option<MediaObject>]| -> Vec<String> {
        objects
            .iter()
            .filter_map(|o| o.as_ref().map(|o| o.id.clone()))
            .collect()
    };
    match ctx.client.list_children(Some(&scratch.id)).await {
        Ok(listed) => {
            let left: Vec<String> = ids(&[
                &removed.trashed_file,
                &removed.deleted_file,
                &removed.trashed_folder,
            ])
            .into_iter()
            .filter(|id| listed.iter().any(|o| &o.id == id))
            .collect();
            if !left.is_empty() {
                check.broken(format!(
                    "the scratch folder still lists {left:?} after they were trashed or deleted"
                ));
            }
        }
        Err(e) => check.broken(format!("listing the scratch folder failed: {e}")),
    }
    let mut every_file = ListQuery::children(ObjectKind::File, None, 100);
    every_file.fetch_all = true;
    match ctx.client.list_all(every_file).await {
        Ok(all)
            if ids(&[&removed.nested])
                .iter()
                .any(|id| all.iter().any(|o| &o.id == id)) =>
        {
            check.differs("fetchAll of files still lists a file whose folder was trashed (the emulator leaves it out)");
        }
        Ok(_) => {}
        Err(e) => check.broken(format!("fetchAll of files failed: {e}")),
    }
    removed_urls(ctx, &removed, &mut check).await;
    check.looked_at("a file trashed, a file deleted, a folder trashed with a file in it");
    report.add(check);
}

async fn remove_some(
    ctx: &Ctx,
    scratch: &ScratchFolder,
    dir: &Path,
    uploaded: &Uploaded,
    twins: &Twins,
    check: &mut Check,
) -> Removed {
    let mut removed = Removed::default();
    if let Some(folder) = twins.folders.first() {
        let png = &SAMPLES[0];
        match ctx
            .client
            .upload_file(&png.write_into(dir), png.name, Some(&folder.id))
            .await
        {
            Ok(o) => {
                scratch.made(&o.id, &folder.id);
                removed.nested = Some(o);
            }
            Err(e) => check.broken(format!(
                "uploading into a folder inside the scratch folder failed: {e}"
            )),
        }
    }
    let trash =
        |id: String| async move { ctx.client.delete_many(&[id], DeleteStatus::Trashed).await };
    if let Some(file) = &twins.file {
        match trash(file.id.clone()).await {
            Ok(()) => removed.trashed_file = Some(file.clone()),
            Err(e) => check.broken(format!("trashing a file failed: {e}")),
        }
        if let Err(e) = trash(file.id.clone()).await {
            check.differs(format!(
                "trashing a trashed file again failed (the emulator does nothing): {e}"
            ));
        }
    }
    if let Some((_, file)) = uploaded.get(1) {
        match ctx.client.delete(&file.id).await {
            Ok(()) => removed.deleted_file = Some(file.clone()),
            Err(e) => check.broken(format!("deleting a file failed: {e}")),
        }
    }
    if let Some(folder) = twins.folders.first() {
        match trash(folder.id.clone()).await {
            Ok(()) => removed.trashed_folder = Some(folder.clone()),
            Err(e) => check.broken(format!("trashing a folder failed: {e}")),
        }
    }
    for gone in [
        &removed.trashed_file,
        &removed.deleted_file,
        &removed.trashed_folder,
    ]
    .into_iter()
    .flatten()
    {
        scratch.gone(&gone.id);
    }
    removed
}

/// A trashed file's url still serves it (it can be restored); a deleted one's does not.
async fn removed_urls(ctx: &Ctx, removed: &Removed, check: &mut Check) {
    let status = |o: &MediaObject| {
        let url = o.url.clone().unwrap_or_default();
        async move { ctx.probe.download(&url, None).await.map(|d| d.status) }
    };
    if let Some(file) = &removed.trashed_file {
        match status(file).await {
            Ok(200) => {}
            got => check.differs(format!("a trashed file's url answered {got:?} (the emulator serves it until it is deleted)")),
        }
    }
    if let Some(file) = &removed.deleted_file {
        match status(file).await {
            Ok(404) => {}
            got => check.differs(format!("a deleted file's url answered {got:?} (the emulator answers 404; a CDN may keep serving it a while)")),
        }
    }
}

async fn hosted_upload(
    ctx: &Ctx,
    scratch: &ScratchFolder,
    uploaded: &Uploaded,
    report: &mut Report,
) {
    let name = "a hosted upload fetches a public URL";
    let Some((sample, source)) = uploaded.first() else {
        return report.skipped(
            name,
            "no upload succeeded, so there was no public URL to point it at",
        );
    };
    let mut check = Check::new(name);
    let url = source.url.as_deref().unwrap_or_default();
    match ctx
        .client
        .upload_hosted(url, "hosted.png", Some(&scratch.id))
        .await
    {
        Ok(answer) => {
            scratch.made(&answer.file_id, &scratch.id);
            match ctx.probe.download(&answer.url, None).await {
                Ok(got) if got.status == 200 && got.body == sample.bytes => {}
                Ok(got) => check.differs(format!(
                    "its url answered HTTP {} with {} bytes, not the {} of the source",
                    got.status,
                    got.body.len(),
                    sample.bytes.len()
                )),
                Err(e) => check.differs(format!("downloading it failed: {e}")),
            }
        }
        Err(e) => check.differs(format!("a hosted upload of {url} failed: {e}")),
    }
    check.looked_at(format!("a copy of {url}"));
    report.add(check);
}
