//! Finding an upload's MIME type: from the bytes first (magic numbers), then
//! from the name's extension. rsync and editors write temp names such as
//! `.logo.png.Xa91f`, so the extension alone would often be wrong or absent.

use std::path::Path;

use super::limits::is_refused_type;

/// How many leading bytes are enough for every signature `infer` knows.
pub const SNIFF_LEN: usize = 8192;

/// The MIME type for a file named `name` that starts with `head`, or `None`
/// when neither the bytes nor the name tell one the service would accept.
pub fn detect(head: &[u8], name: &str) -> Option<String> {
    if let Some(kind) = infer::get(head) {
        let mime = kind.mime_type();
        if !is_refused_type(mime) {
            return Some(mime.to_owned());
        }
    }
    candidate_names(name)
        .filter_map(|n| mime_guess::from_path(n).first())
        .map(|m| m.essence_str().to_owned())
        .find(|m| !is_refused_type(m))
}

/// The type a name's extension says when the service refuses it
/// (`blob.bin`: `application/octet-stream`): such a file is refused, where
/// one whose name says nothing may yet be renamed to a name that does.
pub fn refused_by_name(name: &str) -> Option<String> {
    let said = mime_guess::from_path(name).first()?;
    let said = said.essence_str();
    is_refused_type(said).then(|| said.to_owned())
}

/// Reads the head of `path` and detects its type.
pub fn detect_file(path: &Path, name: &str) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(SNIFF_LEN);
    std::fs::File::open(path)?
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(detect(&head, name))
}

/// The name itself, then the name a temp file stands for: `.logo.png.Xa91f`
/// (rsync), `logo.png.tmp`, `logo.png.part`.
fn candidate_names(name: &str) -> impl Iterator<Item = &str> {
    let inner = name
        .strip_prefix('.')
        .and_then(|rest| rest.rsplit_once('.').map(|(stem, _)| stem));
    let without_suffix = name.rsplit_once('.').map(|(stem, _)| stem);
    [Some(name), inner, without_suffix].into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn bytes_win_over_a_temp_name() {
        assert_eq!(detect(PNG, ".logo.png.Xa91f").as_deref(), Some("image/png"));
        assert_eq!(detect(PNG, "no-extension").as_deref(), Some("image/png"));
    }

    #[test]
    fn falls_back_to_the_extension_for_text_formats() {
        assert_eq!(
            detect(b"a,b\n1,2\n", "table.csv").as_deref(),
            Some("text/csv")
        );
        assert_eq!(
            detect(
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                ".icon.svg.a8Bc9d"
            )
            .as_deref(),
            Some("image/svg+xml")
        );
    }

    #[test]
    fn names_that_say_a_refused_type_are_told_apart() {
        assert_eq!(
            refused_by_name("blob.bin").as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(refused_by_name("sedX2b9Qa"), None);
        assert_eq!(refused_by_name(".goutputstream-TZ1Q"), None);
        assert_eq!(refused_by_name("notes.txt"), None);
    }

    #[test]
    fn unknown_bytes_and_name_give_none() {
        assert_eq!(detect(b"\x00\x01\x02garbage", "blob"), None);
        assert_eq!(detect(b"\x00\x01\x02garbage", "blob.bin"), None);
    }
}
