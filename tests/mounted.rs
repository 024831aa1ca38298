//! Mounted tests: a real FUSE mount of the `mediafs` binary over the
//! emulator, driven with cp, mv, rm, rsync, find, cat, dd and getfattr.

mod common;

use std::path::Path;

use common::mount::{ok, q, sh, EmulatorProcess, Mounted};
use common::png_bytes;
use mediafs::api::MediaObject;
use serde_json::json;

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo");

/// A brand kit as a marketer would copy it: real images, a PDF, audio and
/// video, nested folders, and a few larger files that span several chunks.
fn brand_kit(root: &Path) -> std::path::PathBuf {
    let kit = root.join("kit");
    for (sub, files) in [
        ("", &["logo.png", "logo-dark.png"][..]),
        ("photos", &["hero-banner.jpg", "team-photo.jpg"][..]),
        ("docs", &["brand-guidelines.pdf"][..]),
        ("media", &["jingle.mp3", "promo.mp4"][..]),
    ] {
        std::fs::create_dir_all(kit.join(sub)).unwrap();
        for f in files {
            std::fs::copy(Path::new(ASSETS).join(f), kit.join(sub).join(f)).unwrap();
        }
    }
    std::fs::create_dir_all(kit.join("generated")).unwrap();
    for (i, size) in [10usize, 5_000, 1_048_576, 3_500_000].iter().enumerate() {
        std::fs::write(
            kit.join("generated").join(format!("img-{i}.png")),
            png_bytes(*size, i as u8),
        )
        .unwrap();
    }
    kit
}

/// What the server holds, from the emulator's own store.
fn server_objects(emu: &EmulatorProcess) -> Vec<MediaObject> {
    emu.active_objects()
}

fn files_named(emu: &EmulatorProcess, name: &str) -> Vec<MediaObject> {
    server_objects(emu)
        .into_iter()
        .filter(|o| o.name == name)
        .collect()
}

fn transferred(rsync_stats: &str) -> u64 {
    rsync_stats
        .lines()
        .find_map(|l| l.strip_prefix("Number of regular files transferred: "))
        .unwrap_or_else(|| panic!("no transfer count in:\n{rsync_stats}"))
        .trim()
        .replace(',', "")
        .parse()
        .unwrap()
}

#[test]
fn cp_r_a_tree_in_and_diff_it_back_also_after_a_remount() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let src = tempfile::tempdir().unwrap();
    let kit = brand_kit(src.path());
    let cache = tempfile::tempdir().unwrap();
    let m = Mounted::start_with_cache(&emu, cache.path(), &[]);
    ok(&format!("cp -r {} {}", q(&kit), m.at("")));
    ok(&format!("diff -r {} {}", q(&kit), m.at("kit")));
    assert_eq!(
        files_named(&emu, "img-3.png").len(),
        1,
        "on the server, once"
    );
    assert_eq!(files_named(&emu, "photos").len(), 1);
    m.unmount();

    let m = Mounted::start_with_cache(&emu, cache.path(), &[]);
    ok(&format!("diff -r {} {}", q(&kit), m.at("kit")));
    let found = ok(&format!(
        "cd {} && find . -name '*.png' | sort",
        m.at("kit")
    ));
    assert_eq!(found.lines().count(), 6, "{found}");
}

#[test]
fn rsync_in_twice_transfers_nothing_the_second_time_even_after_a_remount() {
    let emu = EmulatorProcess::start(&["--rate-limit", "0"]);
    let src = tempfile::tempdir().unwrap();
    let kit = brand_kit(src.path());
    let cache = tempfile::tempdir().unwrap();
    let m = Mounted::start_with_cache(&emu, cache.path(), &[]);
    let first = ok(&format!("rsync -a --stats {}/ {}/", q(&kit), m.at("kit")));
    assert_eq!(transferred(&first), 11);
    ok(&format!("diff -r {} {}", q(&kit), m.at("kit")));
    let second = ok(&format!("rsync -a --stats {}/ {}/", q(&kit), m.at("kit")));
    assert_eq!(transferred(&second), 0, "{second}");
    // rsync's temp files were renamed into place, never left behind.
    assert!(server_objects(&emu)
        .iter()
        .all(|o| !o.name.starts_with('.')));
    m.unmount();

    let m = Mounted::start_with_cache(&emu, cache.path(), &[]);
    let third = ok(&format!("rsync -a --stats {}/ {}/", q(&kit), m.at("kit")));
    assert_eq!(transferred(&third), 0, "{third}");

    // A changed file is sent again, and replaces the old one on the server.
    std::fs::write(kit.join("generated/img-0.png"), png_bytes(77, 9)).unwrap();
    let fourth = ok(&format!("rsync -a --stats {}/ {}/", q(&kit), m.at("kit")));
    assert_eq!(transferred(&fourth), 1, "{fourth}");
    assert_eq!(files_named(&emu, "img-0.png").len(), 1);
    ok(&format!(
        "cmp {} {}",
        q(kit.join("generated/img-0.png")),
        m.at("kit/generated/img-0.png")
    ));
}

#[test]
fn rsync_out_copies_the_library_exactly() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    let out = tempfile::tempdir().unwrap();
    ok(&format!("rsync -a {}/ {}/", m.at(""), q(out.path())));
    for (rel, asset) in [
        ("jingle.mp3", "jingle.mp3"),
        ("Brand Kit/Logos/logo.png", "logo.png"),
        ("Brand Kit/brand-guidelines.pdf", "brand-guidelines.pdf"),
        ("Campaigns/Black Friday 2026/promo.mp4", "promo.mp4"),
        ("Team/team-photo.jpg", "team-photo.jpg"),
    ] {
        ok(&format!(
            "cmp {} {}",
            q(out.path().join(rel)),
            q(Path::new(ASSETS).join(asset))
        ));
    }
    assert!(out.path().join("Campaigns/Spring Launch").is_dir());
    ok(&format!("diff -r {} {}", m.at(""), q(out.path())));
}

#[test]
fn mv_renames_within_a_folder_and_copies_across() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    let before = files_named(&emu, "logo.png");
    ok(&format!(
        "mv {} {}",
        m.at("Brand Kit/Logos/logo.png"),
        m.at("Brand Kit/Logos/logo-light.png")
    ));
    let renamed = files_named(&emu, "logo-light.png");
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].id, before[0].id, "a rename, not a copy");
    assert!(files_named(&emu, "logo.png").is_empty());

    ok(&format!(
        "mv {} {}",
        m.at("Brand Kit/Logos/logo-light.png"),
        m.at("Team/")
    ));
    ok(&format!(
        "cmp {} {}/logo.png",
        m.at("Team/logo-light.png"),
        ASSETS
    ));
    let moved = files_named(&emu, "logo-light.png");
    assert_eq!(moved.len(), 1, "the original is gone from the old folder");
    let team = files_named(&emu, "Team");
    assert_eq!(moved[0].parent_id.as_deref(), Some(team[0].id.as_str()));
    assert!(
        sh(&format!(
            "test -e {}",
            m.at("Brand Kit/Logos/logo-light.png")
        ))
        .status
        .code()
            == Some(1)
    );

    // Folders move too, by copy and delete.
    ok(&format!(
        "mv {} {}",
        m.at("Campaigns/Black Friday 2026"),
        m.at("Team/")
    ));
    ok(&format!(
        "cmp {} {}/promo.mp4",
        m.at("Team/Black Friday 2026/promo.mp4"),
        ASSETS
    ));
    assert!(!m.path().join("Campaigns/Black Friday 2026").exists());
}

#[test]
fn rename_over_an_existing_file_replaces_it() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!(
        "mv {} {}",
        m.at("Brand Kit/Logos/logo-dark.png"),
        m.at("Brand Kit/Logos/logo.png")
    ));
    ok(&format!(
        "cmp {} {}/logo-dark.png",
        m.at("Brand Kit/Logos/logo.png"),
        ASSETS
    ));
    assert_eq!(
        files_named(&emu, "logo.png").len(),
        1,
        "the replaced one was removed"
    );
    assert!(files_named(&emu, "logo-dark.png").is_empty());
    let listing = ok(&format!("ls {}", m.at("Brand Kit/Logos")));
    assert_eq!(listing.trim(), "logo.png");
}

#[test]
fn rm_r_removes_a_tree_and_rmdir_refuses_a_full_folder() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    let out = sh(&format!("rmdir {}", m.at("Brand Kit")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Directory not empty"));

    // An empty folder that gained a file elsewhere is not empty either.
    let spring = files_named(&emu, "Spring Launch").remove(0);
    ok(&format!("ls {}", m.at("Campaigns/Spring Launch")));
    let (rt, client) = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_file(tmp.path(), "new.png", &png_bytes(50, 1));
    rt.block_on(client.upload_file(&path, "new.png", Some(&spring.id)))
        .unwrap();
    let out = sh(&format!("rmdir {}", m.at("Campaigns/Spring Launch")));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Directory not empty"),
        "{out:?}"
    );

    ok(&format!("rm -r {}", m.at("Campaigns")));
    assert!(!m.path().join("Campaigns").exists());
    let names: Vec<_> = server_objects(&emu).into_iter().map(|o| o.name).collect();
    for gone in ["Campaigns", "Black Friday 2026", "promo.mp4", "new.png"] {
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} still listed: {names:?}"
        );
    }
    ok(&format!(
        "mkdir {} && rmdir {}",
        m.at("Empty"),
        m.at("Empty")
    ));
    assert!(files_named(&emu, "Empty").is_empty());
}

#[test]
fn overwrite_and_dd_into_the_middle_replace_the_file() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    let old_id = files_named(&emu, "hero-banner.jpg")[0].id.clone();
    let target = m.at("Campaigns/Black Friday 2026/hero-banner.jpg");
    ok(&format!("cp {ASSETS}/team-photo.jpg {target}"));
    ok(&format!("cmp {ASSETS}/team-photo.jpg {target}"));
    let now = files_named(&emu, "hero-banner.jpg");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].id, old_id, "a rewrite is a new object");

    // dd into the middle keeps the bytes around the patch.
    let mut expected = std::fs::read(format!("{ASSETS}/team-photo.jpg")).unwrap();
    expected[1000..1004].copy_from_slice(b"ZZZZ");
    ok(&format!(
        "printf ZZZZ | dd of={target} bs=1 seek=1000 conv=notrunc status=none"
    ));
    let got = std::fs::read(m.path().join("Campaigns/Black Friday 2026/hero-banner.jpg")).unwrap();
    assert_eq!(got, expected);
    let (rt, client) = emu.client();
    let stored = files_named(&emu, "hero-banner.jpg");
    assert_eq!(stored.len(), 1);
    let bytes = rt.block_on(async {
        client
            .download(stored[0].url.as_deref().unwrap(), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(&bytes[..], &expected[..], "the server has the patched file");
}

#[test]
fn a_27_mb_image_fails_with_file_too_large_and_leaves_nothing() {
    let emu = EmulatorProcess::start(&[]);
    // A long TTL: the entry must go because the kernel is told, not because it expired.
    let m = Mounted::start(&emu, &["--metadata-ttl", "60"]);
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("huge.png");
    std::fs::write(&big, png_bytes(27 * 1000 * 1000, 3)).unwrap();
    let out = sh(&format!("cp {} {}", q(&big), m.at("huge.png")));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File too large"),
        "{out:?}"
    );
    assert!(
        files_named(&emu, "huge.png").is_empty(),
        "nothing partial on the server"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while m.path().join("huge.png").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed file stays in the mount"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!ok(&format!("ls -a {}", m.at(""))).contains("huge.png"));
    assert_eq!(
        emu.stats()["by_route"]["POST /medias/upload-file"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}

#[test]
fn a_failed_upload_fails_cp_and_keeps_the_old_file() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    let target = m.at("Brand Kit/Logos/logo.png");
    ok(&format!("cat {target} > /dev/null"));
    emu.set_faults(json!({"fail_rate": 1.0, "fail_after_share": 0.0, "fail_routes": ["POST /medias/upload-file"], "rate_limit": 0}));
    let out = sh(&format!("cp {ASSETS}/team-photo.jpg {target}"));
    assert!(!out.status.success(), "cp must report the failed upload");
    emu.set_faults(json!({"rate_limit": 0}));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&format!("cmp {ASSETS}/logo.png {target}"));
    assert_eq!(files_named(&emu, "logo.png").len(), 1);
    assert!(
        m.log().contains("uploading \"logo.png\""),
        "the log says what failed"
    );
}

#[test]
fn duplicate_names_show_as_distinct_entries() {
    let emu = EmulatorProcess::start(&[]);
    let (rt, client) = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let first = common::write_file(tmp.path(), "a", &png_bytes(10, 1));
    let second = common::write_file(tmp.path(), "b", &png_bytes(20, 2));
    let a = rt
        .block_on(client.upload_file(&first, "dup.png", None))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = rt
        .block_on(client.upload_file(&second, "dup.png", None))
        .unwrap();
    rt.block_on(client.create_folder("dup.png", None)).unwrap();
    let m = Mounted::start(&emu, &[]);
    let listing = ok(&format!("ls -1 {}", m.at("")));
    let names: Vec<_> = listing.lines().collect();
    let suffix = |id: &str| format!("dup ~{}.png", &id[id.len() - 8..]);
    assert!(names.contains(&"dup.png"), "{names:?}");
    assert!(names.contains(&suffix(&b.id).as_str()), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        std::fs::read(m.path().join("dup.png")).unwrap(),
        png_bytes(10, 1),
        "the oldest keeps the name"
    );
    assert_eq!(
        std::fs::read(m.path().join(suffix(&b.id))).unwrap(),
        png_bytes(20, 2)
    );
    assert_eq!(a.name, "dup.png");
}

#[test]
fn changes_made_elsewhere_show_within_the_ttl() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!("ls {}", m.at("Team")));
    let team = files_named(&emu, "Team").remove(0);
    let (rt, client) = emu.client();
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_file(tmp.path(), "x", &png_bytes(123, 4));
    rt.block_on(client.upload_file(&path, "from-the-web.png", Some(&team.id)))
        .unwrap();
    let photo = files_named(&emu, "team-photo.jpg").remove(0);
    rt.block_on(client.rename(&photo.id, "renamed-on-the-web.jpg"))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let listing = ok(&format!("ls {}", m.at("Team")));
    assert!(listing.contains("from-the-web.png"), "{listing}");
    assert!(
        listing.contains("renamed-on-the-web.jpg") && !listing.contains("team-photo.jpg"),
        "{listing}"
    );
    assert_eq!(
        std::fs::read(m.path().join("Team/from-the-web.png")).unwrap(),
        png_bytes(123, 4)
    );
}

#[test]
fn xattrs_give_the_public_url() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    let file = m.at("Brand Kit/brand-guidelines.pdf");
    let url = ok(&format!(
        "getfattr --only-values -n user.mediafs.url {file}"
    ));
    assert!(url.starts_with(&emu.base_url), "{url}");
    ok(&format!(
        "curl -sf {} | cmp - {ASSETS}/brand-guidelines.pdf",
        q(&url)
    ));
    let all = ok(&format!("getfattr -d -m - {file}"));
    assert!(
        all.contains("user.mediafs.id=")
            && all.contains("user.mediafs.content_type=\"application/pdf\""),
        "{all}"
    );
    let acl = sh(&format!("getfattr -n system.posix_acl_access {file}"));
    assert!(
        String::from_utf8_lossy(&acl.stderr).contains("Operation not supported"),
        "{acl:?}"
    );
}

#[test]
fn read_only_mounts_refuse_writes_with_erofs() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &["--read-only"]);
    ok(&format!("cat {} > /dev/null", m.at("jingle.mp3")));
    for cmd in [
        format!("touch {}", m.at("new.png")),
        format!("mkdir {}", m.at("New")),
        format!("rm {}", m.at("jingle.mp3")),
        format!("mv {} {}", m.at("jingle.mp3"), m.at("j.mp3")),
    ] {
        let out = sh(&cmd);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
            "{cmd}: {out:?}"
        );
    }
    assert_eq!(files_named(&emu, "jingle.mp3").len(), 1);
}

#[test]
fn junk_files_stay_local() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!(
        "echo junk > {} && cp {ASSETS}/logo.png {}",
        m.at(".DS_Store"),
        m.at("._logo.png")
    ));
    ok(&format!("grep -q junk {}", m.at(".DS_Store")));
    ok(&format!("mkdir {}", m.at(".Trash-1000")));
    let names: Vec<_> = server_objects(&emu).into_iter().map(|o| o.name).collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
}

#[test]
fn wrong_token_or_location_fails_at_once_with_a_clear_message() {
    let emu = EmulatorProcess::start(&[]);
    let cache = tempfile::tempdir().unwrap();
    let err = Mounted::try_start(&emu, cache.path(), "pit-wrong", &[])
        .err()
        .expect("refused");
    assert!(
        err.contains("refused access") && err.contains("Invalid token"),
        "{err}"
    );
    assert!(!err.contains("pit-wrong"), "the token is never printed");
}

#[test]
fn sigterm_unmounts_cleanly() {
    let emu = EmulatorProcess::start(&["--seed", "demo"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!("cp {ASSETS}/logo.png {}", m.at("copy.png")));
    assert!(m.terminate().success());
    assert_eq!(files_named(&emu, "copy.png").len(), 1);
}

#[test]
fn an_upload_in_progress_blocks_neither_listings_nor_reads() {
    let emu = EmulatorProcess::start(&["--seed", "demo", "--rate-limit", "0"]);
    let m = Mounted::start(&emu, &[]);
    ok(&format!("cat {} > /dev/null", m.at("jingle.mp3")));
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.png");
    std::fs::write(&big, png_bytes(8 * 1024 * 1024, 1)).unwrap();
    // 8 MiB at 1 MiB/s: the upload takes a while.
    emu.set_faults(json!({"bandwidth": 1048576, "rate_limit": 0}));
    let mut cp = std::process::Command::new("cp")
        .arg(&big)
        .arg(m.path().join("big.png"))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while emu.stats()["by_route"]["POST /medias/upload-file"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let listing = ok(&format!("ls {} {}", m.at(""), m.at("Team")));
    assert!(listing.contains("team-photo.jpg"));
    ok(&format!(
        "cmp {} {ASSETS}/logo.png",
        m.at("Brand Kit/Logos/logo.png")
    ));
    assert!(
        cp.try_wait().unwrap().is_none(),
        "the listing and the read finished while the upload went on"
    );
    assert!(cp.wait().unwrap().success());
    emu.set_faults(json!({"rate_limit": 0}));
    ok(&format!("cmp {} {}", q(&big), m.at("big.png")));
}
