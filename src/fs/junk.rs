//! Files that operating systems and desktops scatter into every folder they
//! touch. They live only in the mount's memory and are never uploaded.

/// Whether `name` is such a file (or folder).
pub fn is_junk(name: &str) -> bool {
    const EXACT: &[&str] = &[
        ".DS_Store",
        ".localized",
        ".Spotlight-V100",
        ".fseventsd",
        ".Trashes",
        ".TemporaryItems",
        ".VolumeIcon.icns",
        ".apdisk",
        ".com.apple.timemachine.donotpresent",
        "Icon\r",
        "Thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        "Desktop.ini",
        ".directory",
        ".hidden",
    ];
    EXACT.contains(&name) || name.starts_with("._") || name.starts_with(".Trash-")
}

#[cfg(test)]
mod tests {
    use super::is_junk;

    #[test]
    fn recognises_the_usual_suspects() {
        for name in [
            ".DS_Store",
            "._logo.png",
            "Thumbs.db",
            "desktop.ini",
            ".Trash-1000",
            ".directory",
        ] {
            assert!(is_junk(name), "{name}");
        }
        for name in [
            "logo.png",
            ".logo.png.Xa91f",
            "DS_Store",
            "thumbs.db.png",
            ".hidden-gem.png",
        ] {
            assert!(!is_junk(name), "{name}");
        }
    }
}
