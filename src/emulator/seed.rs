//! `--seed demo`: a small, realistic library for an empty location: a brand
//! kit with logos and guidelines, campaign images and a video, a team photo
//! and an audio jingle. The bytes are real files, shipped in the binary,
//! and their types are written here by hand (what `file` says of each),
//! not found by the client's type detection.

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
