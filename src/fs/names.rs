//! How the library's names become directory entries. The library is a
//! database, not a filesystem: it allows two objects with one name in a
//! folder, a file and a folder with one name, names with `/`, and names
//! longer than 255 bytes. Each object still gets one stable entry name:
//!
//! - `/` shows as `／` (U+FF0F), NUL as `␀`; `.` and `..` as `．` and `．．`; an
//!   empty name as `．empty`.
//! - A name longer than 255 bytes is cut at a character boundary and ends in
//!   `~` and the last 8 hex digits of the object's id, before its extension.
//! - Among objects whose entry names coincide, the oldest keeps the plain
//!   name; each other one gets ` ~` and the last 8 hex digits of its id
//!   before the extension (`logo ~9a8b7c6d.png`), or the whole id should that
//!   name be taken too.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::api::MediaObject;

/// The longest entry name Linux allows, in bytes.
pub const NAME_MAX: usize = 255;

/// The entry name of a library name, before duplicates are told apart.
pub fn escape(name: &str, id: &str) -> String {
    let mut shown: String = name
        .chars()
        .map(|c| match c {
            '/' => '／',
            '\0' => '␀',
            c => c,
        })
        .collect();
    match shown.as_str() {
        "" => shown = "．empty".into(),
        "." => shown = "．".into(),
        ".." => shown = "．．".into(),
        _ => {}
    }
    if shown.len() > NAME_MAX {
        shown = with_suffix(&shown, &format!("~{}", short_id(id)));
    }
    shown
}

fn short_id(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// `name` with `suffix` before its extension, cut to fit in [`NAME_MAX`].
fn with_suffix(name: &str, suffix: &str) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let room = NAME_MAX.saturating_sub(suffix.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}{ext}", &stem[..cut])
}

/// Entry names for the objects of one folder, index for index.
pub fn entry_names(objects: &[MediaObject]) -> Vec<String> {
    let named: Vec<Named> = objects
        .iter()
        .map(|o| Named {
            name: &o.name,
            id: &o.id,
            created: o.created_at,
        })
        .collect();
    distinct_names(&named)
}

/// Something with a name to show, an id that tells it apart, and maybe
/// the time it was made.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub created: Option<DateTime<Utc>>,
}

/// Entry names, index for index, escaped and told apart as the module
/// docs say: the oldest (then the lowest id) keeps the plain name.
pub fn distinct_names(items: &[Named]) -> Vec<String> {
    let escaped: Vec<String> = items.iter().map(|o| escape(o.name, o.id)).collect();
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, name) in escaped.iter().enumerate() {
        groups.entry(name.as_str()).or_default().push(i);
    }
    let mut names = escaped.clone();
    let mut taken: HashSet<String> = HashSet::new();
    let mut losers = Vec::new();
    for (name, mut members) in groups {
        // Oldest first; the id breaks ties, so the order is the same every time.
        members.sort_by(|&a, &b| {
            let (oa, ob) = (&items[a], &items[b]);
            oa.created.cmp(&ob.created).then_with(|| oa.id.cmp(ob.id))
        });
        taken.insert(name.to_owned());
        losers.extend(members.into_iter().skip(1));
    }
    losers.sort_by(|&a, &b| items[a].id.cmp(items[b].id));
    for i in losers {
        let short = with_suffix(&escaped[i], &format!(" ~{}", short_id(items[i].id)));
        let name = if taken.contains(&short) {
            with_suffix(&escaped[i], &format!(" ~{}", items[i].id))
        } else {
            short
        };
        taken.insert(name.clone());
        names[i] = name;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectKind;
    use chrono::{TimeZone, Utc};

    fn obj(id: &str, name: &str, secs: i64) -> MediaObject {
        MediaObject {
            id: id.into(),
            name: name.into(),
            kind: ObjectKind::File,
            parent_id: None,
            content_type: None,
            size: Some(1),
            path: None,
            url: None,
            created_at: Some(Utc.timestamp_opt(secs, 0).unwrap()),
            updated_at: None,
        }
    }

    #[test]
    fn oldest_keeps_the_plain_name() {
        let objs = [
            obj("aaaaaaaaaaaaaaaa11111111", "logo.png", 20),
            obj("bbbbbbbbbbbbbbbb22222222", "logo.png", 10),
            obj("cccccccccccccccc33333333", "other.png", 5),
        ];
        assert_eq!(
            entry_names(&objs),
            ["logo ~11111111.png", "logo.png", "other.png"]
        );
    }

    #[test]
    fn names_are_stable_whatever_the_listing_order() {
        let a = obj("aaaaaaaaaaaaaaaa11111111", "x", 1);
        let b = obj("bbbbbbbbbbbbbbbb22222222", "x", 1);
        let c = obj("cccccccccccccccc33333333", "x", 1);
        let one = entry_names(&[a.clone(), b.clone(), c.clone()]);
        let two = entry_names(&[c, b, a]);
        assert_eq!(one, ["x", "x ~22222222", "x ~33333333"]);
        assert_eq!(two, ["x ~33333333", "x ~22222222", "x"]);
    }

    #[test]
    fn generated_names_never_take_a_real_one() {
        let objs = [
            obj("aaaaaaaaaaaaaaaa11111111", "a.png", 1),
            obj("bbbbbbbbbbbbbbbb22222222", "a.png", 2),
            obj("cccccccccccccccc33333333", "a ~22222222.png", 3),
        ];
        let names = entry_names(&objs);
        assert_eq!(names[0], "a.png");
        assert_eq!(names[1], "a ~bbbbbbbbbbbbbbbb22222222.png");
        assert_eq!(names[2], "a ~22222222.png");
    }

    #[test]
    fn without_times_the_lowest_id_keeps_the_plain_name_in_any_order() {
        let named = |name, id| Named {
            name,
            id,
            created: None,
        };
        let a = named("Acme Dental", "LocTestAAAA1111");
        let b = named("Acme Dental", "LocAcmeCCCC3333");
        let c = named("Bright/Smiles", "LocBrightBBBB2222");
        assert_eq!(
            distinct_names(&[a, b, c]),
            ["Acme Dental ~AAAA1111", "Acme Dental", "Bright／Smiles"]
        );
        assert_eq!(
            distinct_names(&[c, b, a]),
            ["Bright／Smiles", "Acme Dental", "Acme Dental ~AAAA1111"]
        );
    }

    #[test]
    fn escapes_what_a_filesystem_cannot_hold() {
        assert_eq!(escape("a/b.png", "x"), "a／b.png");
        assert_eq!(escape("..", "x"), "．．");
        assert_eq!(escape("", "x"), "．empty");
        let long = format!("{}.jpg", "é".repeat(200));
        let shown = escape(&long, "0123456789abcdef01234567");
        assert!(shown.len() <= NAME_MAX);
        assert!(shown.ends_with("~01234567.jpg"), "{shown}");
    }
}
