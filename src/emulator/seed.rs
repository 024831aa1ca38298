//! `--seed demo`: a small, realistic library for an empty location: a brand
//! kit with logos and guidelines, campaign images and a video, a team photo
//! and an audio jingle. The bytes are real files, shipped in the binary,
//! and their types are written here by hand (what `file` says of each),
//! not found by the client's type detection.
//! `--generate FOLDERSxFILES`: a large library of small images, made
//! straight in the store, for scale tests and benchmarks.

use super::store::{Kind, Object, Store};

const FOLDERS: &[(&str, Option<&str>)] = &[
    ("Brand Kit", None),
    ("Logos", Some("Brand Kit")),
    ("Campaigns", None),
    ("Black Friday 2026", Some("Campaigns")),
    ("Spring Launch", Some("Campaigns")),
    ("Team", None),
];

/// Name, folder, type and bytes of each demo file.
const FILES: &[(&str, Option<&str>, &str, &[u8])] = &[
    (
        "logo.png",
        Some("Logos"),
        "image/png",
        include_bytes!("../../assets/demo/logo.png"),
    ),
    (
        "logo-dark.png",
        Some("Logos"),
        "image/png",
        include_bytes!("../../assets/demo/logo-dark.png"),
    ),
    (
        "brand-guidelines.pdf",
        Some("Brand Kit"),
        "application/pdf",
        include_bytes!("../../assets/demo/brand-guidelines.pdf"),
    ),
    (
        "hero-banner.jpg",
        Some("Black Friday 2026"),
        "image/jpeg",
        include_bytes!("../../assets/demo/hero-banner.jpg"),
    ),
    (
        "promo.mp4",
        Some("Black Friday 2026"),
        "video/mp4",
        include_bytes!("../../assets/demo/promo.mp4"),
    ),
    (
        "team-photo.jpg",
        Some("Team"),
        "image/jpeg",
        include_bytes!("../../assets/demo/team-photo.jpg"),
    ),
    (
        "jingle.mp3",
        None,
        "audio/mpeg",
        include_bytes!("../../assets/demo/jingle.mp3"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Fills `location` with the demo library unless it already holds anything.
pub async fn seed_demo(store: &Store, location: &str) -> Result<(), SeedError> {
    if !store.location_is_empty(location).await? {
        return Ok(());
    }
    let mut folder_ids: Vec<(&str, String)> = Vec::new();
    let lookup = |ids: &[(&str, String)], name: Option<&str>| {
        name.and_then(|n| ids.iter().find(|(f, _)| *f == n).map(|(_, id)| id.clone()))
    };
    for (name, parent) in FOLDERS {
        let object = Object::new(location, name, Kind::Folder, lookup(&folder_ids, *parent));
        folder_ids.push((name, object.id.clone()));
        store.insert(object).await?;
    }
    for (name, parent, content_type, bytes) in FILES {
        let mut object = Object::new(location, name, Kind::File, lookup(&folder_ids, *parent));
        object.ext = name.rsplit_once('.').map(|(_, e)| e.to_owned());
        object.content_type = Some((*content_type).to_owned());
        object.size = Some(bytes.len() as u64);
        let incoming = store.incoming_path();
        std::fs::write(&incoming, bytes)?;
        store.commit_blob(&incoming, &object.id)?;
        store.insert(object).await?;
    }
    log::info!("emulator: seeded location {location} with the demo library");
    Ok(())
}

/// The bytes of every generated file: the head of a PNG and a few more.
const GENERATED_BYTES: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0generated";

/// Fills `location`, unless it holds anything, with `folders` folders
/// (`folder-0000`, ...) of `files` PNG files each (`image-0000.png`, ...).
pub async fn generate(
    store: &Store,
    location: &str,
    folders: usize,
    files: usize,
) -> Result<(), SeedError> {
    if !store.location_is_empty(location).await? {
        return Ok(());
    }
    let mut objects = Vec::with_capacity(folders * (files + 1));
    for f in 0..folders {
        let folder = Object::new(location, &format!("folder-{f:04}"), Kind::Folder, None);
        for i in 0..files {
            let name = format!("image-{i:04}.png");
            let mut file = Object::new(location, &name, Kind::File, Some(folder.id.clone()));
            file.ext = Some("png".into());
            file.content_type = Some("image/png".into());
            file.size = Some(GENERATED_BYTES.len() as u64);
            let incoming = store.incoming_path();
            std::fs::write(&incoming, GENERATED_BYTES)?;
            store.commit_blob(&incoming, &file.id)?;
            objects.push(file);
        }
        objects.push(folder);
    }
    store.insert_many(objects).await?;
    log::info!("emulator: generated {folders} folders of {files} files in location {location}");
    Ok(())
}
