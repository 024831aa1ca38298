//! Files that operating systems, desktops and editors scatter into every
//! folder they touch. They live only in the mount's memory and are never
//! uploaded: an editor's swap file holds unsaved edits, and the library
//! would publish each of its writes with a public URL.

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
    EXACT.contains(&name)
        || name.starts_with("._")
        || name.starts_with(".Trash-")
        || is_editor_file(name)
}

/// Editors' swap, lock, backup and probe files: vim's `.notes.txt.swp` (and
/// `.swo`, `.swx`, ... down to `.swa`) and the `4913` it writes to test a
/// folder; emacs's `.#notes.txt` locks and `#notes.txt#` autosaves; `notes.txt~`
/// backups; LibreOffice's `.~lock.notes.odt#`.
fn is_editor_file(name: &str) -> bool {
    let vim_swap = name.starts_with('.')
        && name.len() >= 4
        && name
            .get(name.len() - 4..)
            .and_then(|ext| ext.strip_prefix(".sw"))
            .is_some_and(|c| matches!(c.as_bytes(), [b'a'..=b'p' | b'x']));
    vim_swap
        || name == "4913"
        || name.starts_with(".#")
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
        || (name.len() > 1 && name.ends_with('~'))
        || (name.starts_with(".~lock.") && name.ends_with('#'))
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
            ".notes.txt.swp",
            ".notes.txt.swo",
            ".notes.txt.swx",
            ".swp",
            "4913",
            ".#notes.txt",
            "#notes.txt#",
            "notes.txt~",
            ".~lock.deck.odp#",
        ] {
            assert!(is_junk(name), "{name}");
        }
        for name in [
            "logo.png",
            ".logo.png.Xa91f",
            "DS_Store",
            "thumbs.db.png",
            ".hidden-gem.png",
            "notes.swp",
            "clip.swf",
            "49130",
            "#hashtag.png",
            "~",
            "a~b.png",
        ] {
            assert!(!is_junk(name), "{name}");
        }
    }
}
