//! An agency mount: the `mediafs` binary mounting three sub-accounts of an
//! emulated agency side by side, driven with real tools. Each location is
//! its own library with its own token and rate limit; the root is the
//! agency's and takes no changes; a location the app leaves goes from the
//! root within the TTL, and the others go on.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mount::{ok, q, sh, EmulatorProcess, Mounted};
use common::{png_bytes, LOCATION};
use serde_json::json;

const AGENCY_TOKEN: &str = "agency-token-test";
const COMPANY: &str = "CompanyTest1";
const APP: &str = "app-test";
const BRIGHT: &str = "LocBrightBBBB2222";
/// A second "Acme Dental": its id sorts before LOCATION's, so it keeps the
/// plain name and LOCATION's folder gets a suffix.
const ACME_TOO: &str = "LocAcmeCCCC3333";
const ACME: &str = "Acme Dental";
const ACME_SUFFIXED: &str = "Acme Dental ~AAAA1111";
const BRIGHT_FOLDER: &str = "Bright Smiles";

fn agency_emulator(extra: &[&str]) -> EmulatorProcess {
    let mut args = vec![
        "--location",
        BRIGHT,
        "--location",
        ACME_TOO,
        "--agency",
        "agency-token-test:CompanyTest1:app-test",
    ];
    let names = [
        format!("{LOCATION}={ACME}"),
        format!("{BRIGHT}={BRIGHT_FOLDER}"),
        format!("{ACME_TOO}={ACME}"),
    ];
    for name in &names {
        args.extend(["--location-name", name]);
    }
    args.extend(extra);
    EmulatorProcess::start(&args)
}

fn mount_agency(emu: &EmulatorProcess, cache: &Path, extra: &[&str]) -> Mounted {
    let target = ["--agency", COMPANY, "--app-id", APP];
    Mounted::try_mount(
        tempfile::tempdir().unwrap(),
        emu,
        cache,
        AGENCY_TOKEN,
        &target,
        extra,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The names of the active objects of `location`, from the emulator's store.
fn names_at(emu: &EmulatorProcess, location: &str) -> Vec<String> {
    let body: serde_json::Value = serde_json::from_str(&ok(&format!(
        "curl -sf '{}/_emulator/objects?location={location}'",
        emu.base_url
    )))
    .unwrap();
    let mut names: Vec<String> = common::active_objects(body["objects"].as_array().unwrap())
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names
}

fn post(emu: &EmulatorProcess, path: &str, body: serde_json::Value) {
    ok(&format!(
        "curl -sf -X POST -H 'Content-Type: application/json' -d {} {}{path}",
        q(body.to_string()),
        emu.base_url
    ));
}

/// Waits up to `limit` for `done`, panicking with `what` if it never is.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn drop_kernel_caches() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "drop_caches needs root");
    ok("sync; echo 2 > /proc/sys/vm/drop_caches");
}

#[test]
fn three_locations_side_by_side_with_copies_between_them() {
    let emu = agency_emulator(&[]);
    let cache = tempfile::tempdir().unwrap();
    let m = mount_agency(&emu, cache.path(), &["--write-back", "RUST_LOG=trace"]);
    let root = ok(&format!("ls -1 {}", m.at("")));
    assert_eq!(
        root.lines().collect::<Vec<_>>(),
        [ACME, ACME_SUFFIXED, BRIGHT_FOLDER]
    );
    let id = ok(&format!(
        "getfattr --only-values -n user.mediafs.id {}",
        m.at(ACME_SUFFIXED)
    ));
    assert_eq!(id, LOCATION, "the suffixed folder is LOCATION's");

    // The root takes no changes, each refusal with its errno.
    for (script, says) in [
        (
            format!("mkdir {}", m.at("New Client")),
            "Operation not permitted",
        ),
        (
            format!("touch {}", m.at("file.txt")),
            "Operation not permitted",
        ),
        (
            format!("rmdir {}", m.at(BRIGHT_FOLDER)),
            "Operation not permitted",
        ),
        (
            format!("mv {} {}", m.at(BRIGHT_FOLDER), m.at("Renamed")),
            "Operation not permitted",
        ),
    ] {
        let out = sh(&script);
        assert!(!out.status.success(), "{script} was let through");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{script}: {stderr}");
    }

    // Writes in two locations at once.
    let src = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(src.path().join(format!("a{i}.png")), png_bytes(3000, i)).unwrap();
        std::fs::write(src.path().join(format!("b{i}.png")), png_bytes(4000, i)).unwrap();
    }
    let src_q = q(src.path());
    ok(&format!(
        "mkdir {acme}/Kit {bright}/Kit && (cp {src_q}/a*.png {acme}/Kit/ & \
         cp {src_q}/b*.png {bright}/Kit/ & wait)",
        acme = m.at(ACME_SUFFIXED),
        bright = m.at(BRIGHT_FOLDER)
    ));
    drop_kernel_caches();
    // A copy from one location into another, and a move (EXDEV: mv copies
    // and removes).
    ok(&format!(
        "cp -r {} {}/From-Acme",
        m.at(&format!("{ACME_SUFFIXED}/Kit")),
        m.at(ACME)
    ));
    ok(&format!(
        "mv {} {}",
        m.at(&format!("{BRIGHT_FOLDER}/Kit/b0.png")),
        m.at(&format!("{ACME}/moved.png"))
    ));
    drop_kernel_caches();
    ok(&format!(
        "cmp {src_q}/a3.png {}",
        m.at(&format!("{ACME}/From-Acme/a3.png"))
    ));
    let log = m.log();
    assert!(m.unmount().success());
    // Neither the agency's token nor a location's (JWTs, "eyJ...") is logged.
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
    assert!(!log.contains(AGENCY_TOKEN) && !log.contains("eyJ"), "{log}");

    let expect = |prefix: &str, extra: &[&str]| {
        let mut v: Vec<String> = (0..6).map(|i| format!("{prefix}{i}.png")).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push("Kit".into());
        v.sort();
        v
    };
    assert_eq!(names_at(&emu, LOCATION), expect("a", &[]));
    let mut bright = expect("b", &[]);
    bright.retain(|n| n != "b0.png");
    assert_eq!(names_at(&emu, BRIGHT), bright, "b0.png moved out");
    let mut acme_too = expect("a", &["From-Acme", "moved.png"]);
    acme_too.retain(|n| n != "Kit");
    assert_eq!(names_at(&emu, ACME_TOO), acme_too);
}

#[test]
fn a_location_the_app_leaves_is_gone_within_the_ttl_and_the_others_go_on() {
    let emu = agency_emulator(&[]);
    let cache = tempfile::tempdir().unwrap();
    let m = mount_agency(&emu, cache.path(), &[]);
    ok(&format!("ls {}", m.at(BRIGHT_FOLDER)));
    post(
        &emu,
        "/_emulator/uninstall",
        json!({"company": COMPANY, "location": BRIGHT}),
    );
    wait_for(Duration::from_secs(10), "the folder stayed", || {
        !ok(&format!("ls -1 {}", m.at(""))).contains(BRIGHT_FOLDER)
    });
    assert!(
        m.log().contains(&format!(
            "location \"{BRIGHT_FOLDER}\" ({BRIGHT}) is no longer among"
        )),
        "{}",
        m.log()
    );
    ok(&format!(
        "echo still > {}",
        m.at(&format!("{ACME}/after.txt"))
    ));
    assert_eq!(names_at(&emu, ACME_TOO), ["after.txt"]);
    // The app installed again: the folder is back, the same library.
    post(
        &emu,
        "/_emulator/install",
        json!({"company": COMPANY, "location": BRIGHT}),
    );
    wait_for(
        Duration::from_secs(10),
        "the folder did not come back",
        || ok(&format!("ls -1 {}", m.at(""))).contains(BRIGHT_FOLDER),
    );
    ok(&format!("ls {}", m.at(BRIGHT_FOLDER)));
}

#[test]
fn revoked_tokens_are_replaced_or_outlived() {
    let emu = agency_emulator(&[]);
    let cache = tempfile::tempdir().unwrap();
    let m = mount_agency(&emu, cache.path(), &[]);
    ok(&format!("echo one > {}", m.at(&format!("{ACME}/one.txt"))));
    post(&emu, "/_emulator/revoke", json!({"location": ACME_TOO}));
    ok(&format!("echo two > {}", m.at(&format!("{ACME}/two.txt"))));
    assert_eq!(names_at(&emu, ACME_TOO), ["one.txt", "two.txt"]);
    assert!(
        m.log()
            .contains(&format!("refreshed location {ACME_TOO}'s access token")),
        "{}",
        m.log()
    );
    // The agency's own token revoked: the locations cannot be listed
    // again, and the root shows them as last listed; a location whose
    // token still works goes on.
    post(&emu, "/_emulator/revoke", json!({"token": AGENCY_TOKEN}));
    std::thread::sleep(Duration::from_millis(1200));
    let root = ok(&format!("ls -1 {}", m.at("")));
    assert_eq!(root.lines().count(), 3, "{root}");
    ok(&format!(
        "echo three > {}",
        m.at(&format!("{ACME}/three.txt"))
    ));
    assert!(
        m.log().contains("listing the agency's locations failed"),
        "{}",
        m.log()
    );
}

/// A token of the app for `location`, got with the agency's, as the mount
/// gets its own: it counts against the same limits as the mount's.
fn location_token(emu: &EmulatorProcess, location: &str) -> String {
    let body: serde_json::Value = serde_json::from_str(&ok(&format!(
        "curl -sf -X POST -H 'Authorization: Bearer {AGENCY_TOKEN}' -H 'Version: 2021-07-28' \
         -d companyId={COMPANY} -d locationId={location} {}/oauth/locationToken",
        emu.base_url
    )))
    .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The status and `X-RateLimit-Remaining` of one listing of `location`.
fn one_listing(emu: &EmulatorProcess, location: &str, token: &str) -> (u16, String) {
    let out = ok(&format!(
        "curl -s -o /dev/null -D - -H 'Authorization: Bearer {token}' \
         -H 'Version: 2021-07-28' -A agency-test \
         '{}/medias/files?altType=location&altId={location}&type=folder&limit=1'",
        emu.base_url
    ));
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let remaining = out
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("x-ratelimit-remaining:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, remaining)
}

#[test]
fn one_location_out_of_requests_leaves_the_others_answering() {
    // A low burst limit: the bulk copy into one location spends its budget
    // (the mount paces itself to what the service's headers say).
    let emu = agency_emulator(&["--rate-limit", "8"]);
    let cache = tempfile::tempdir().unwrap();
    let m = mount_agency(&emu, cache.path(), &[]);
    let src = tempfile::tempdir().unwrap();
    for i in 0..16 {
        std::fs::write(src.path().join(format!("f{i}.png")), png_bytes(500, i)).unwrap();
    }
    let mut bulk = std::process::Command::new("cp")
        .arg("-r")
        .arg(src.path())
        .arg(m.path().join(ACME).join("Bulk"))
        .spawn()
        .unwrap();
    // The app's budget at the busy location is spent (a refused request
    // takes none of it); at another it is whole, and the mount's folder
    // there lists and takes a change.
    let busy = location_token(&emu, ACME_TOO);
    wait_for(
        Duration::from_secs(30),
        "the busy location's budget was never spent",
        || one_listing(&emu, ACME_TOO, &busy).0 == 429,
    );
    assert!(bulk.try_wait().unwrap().is_none(), "the copy is held back");
    let (status, remaining) = one_listing(&emu, BRIGHT, &location_token(&emu, BRIGHT));
    assert_eq!(status, 200);
    assert!(remaining.parse::<u32>().unwrap() >= 6, "left: {remaining}");
    ok(&format!(
        "mkdir {} && ls {}",
        m.at(&format!("{BRIGHT_FOLDER}/Meanwhile")),
        m.at(BRIGHT_FOLDER)
    ));
    assert!(
        bulk.try_wait().unwrap().is_none(),
        "the copy was still held back"
    );
    assert!(
        bulk.wait().unwrap().success(),
        "the copy got through in the end"
    );
    assert_eq!(names_at(&emu, ACME_TOO).len(), 17, "Bulk and its 16 files");

    // A location whose day is used up fails at once with EDQUOT, and says
    // so for that location; another goes on.
    emu.set_faults(json!({"daily_limits": {BRIGHT: 0}}));
    std::thread::sleep(Duration::from_millis(1100));
    let out = sh(&format!(
        "ls {}",
        m.at(&format!("{BRIGHT_FOLDER}/Meanwhile"))
    ));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Disk quota exceeded"), "{stderr}");
    assert!(
        m.log()
            .contains(&format!("location {BRIGHT} has used all of its")),
        "{}",
        m.log()
    );
    ok(&format!("ls {}", m.at(ACME)));
    ok(&format!("echo ok > {}", m.at(&format!("{ACME}/ok.txt"))));
}

/// A profile holds the agency's settings; a flag given overrides one of
/// them, and `mediafs profiles` lists it with the state of its token file.
#[test]
fn an_agency_mounted_from_a_profile() {
    use std::os::unix::fs::PermissionsExt;
    let emu = agency_emulator(&[]);
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("agency.token");
    std::fs::write(&token_file, format!("{AGENCY_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.clients]\nagency = \"{COMPANY}\"\napp_id = \"{APP}\"\n\
             base_url = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\nread_only = true\n",
            token_file.display()
        ),
    )
    .unwrap();
    let listed = ok(&format!(
        "MEDIAFS_CONFIG={} {} profiles",
        q(&config),
        common::mount::BIN
    ));
    assert!(
        listed.contains(&format!(
            "clients: agency {COMPANY} at http://127.0.0.1:1; token in {}",
            token_file.display()
        )),
        "{listed}"
    );
    // The profile's dead base URL is overridden by the one given.
    let cache = tempfile::tempdir().unwrap();
    let config_arg = format!("MEDIAFS_CONFIG={}", config.display());
    let m = Mounted::try_mount(
        tempfile::tempdir().unwrap(),
        &emu,
        cache.path(),
        "not-the-agency-token",
        &["--profile", "clients"],
        &[config_arg.as_str()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let root = ok(&format!("ls -1 {}", m.at("")));
    assert_eq!(root.lines().count(), 3, "{root}");
    let out = sh(&format!("touch {}", m.at(&format!("{ACME}/x"))));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "the profile's read_only holds"
    );
    assert!(m.log().contains("profile clients"), "{}", m.log());
    assert!(m.unmount().success());
}

/// The agency's own OAuth token: refused at first (it is not one the
/// service issued), renewed with the app's client secret file and the
/// agency's refresh token (`user_type=Company`), whose successor is kept.
#[test]
fn an_agency_mount_renews_its_company_token() {
    use std::os::unix::fs::PermissionsExt;
    let emu = agency_emulator(&[
        "--oauth-client",
        "client-1:secret-1",
        "--agency-refresh-token",
        "rt-agency-1:CompanyTest1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client.secret");
    let refresh = dir.path().join("agency.refresh");
    for (path, text) in [(&secret, "secret-1\n"), (&refresh, "rt-agency-1\n")] {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let (secret_arg, refresh_arg) = (secret.display().to_string(), refresh.display().to_string());
    let target = [
        "--agency",
        COMPANY,
        "--app-id",
        APP,
        "--oauth-client-id",
        "client-1",
        "--oauth-client-secret-file",
        &secret_arg,
        "--refresh-token-file",
        &refresh_arg,
    ];
    let m = Mounted::try_mount(
        tempfile::tempdir().unwrap(),
        &emu,
        cache.path(),
        "agency-token-not-issued",
        &target,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(&format!("ls -1 {}", m.at(""))).lines().count(), 3);
    ok(&format!(
        "echo hi > {}",
        m.at(&format!("{BRIGHT_FOLDER}/hi.txt"))
    ));
    assert_eq!(names_at(&emu, BRIGHT), ["hi.txt"]);
    let kept = std::fs::read_to_string(&refresh).unwrap();
    assert!(
        kept.starts_with("rt-") && kept.trim() != "rt-agency-1",
        "{kept}"
    );
    assert!(m.unmount().success());
}

/// Each location keeps a few files open: an agency of hundreds mounts even
/// where the soft limit on open files is low (it is raised to the hard one).
#[test]
fn hundreds_of_locations_mount_under_a_low_open_file_limit() {
    let ids: Vec<String> = (0..300).map(|i| format!("LocMany{i:04}")).collect();
    let mut args: Vec<&str> = vec!["--agency", "agency-token-test:CompanyTest1:app-test"];
    for id in &ids {
        args.extend(["--location", id]);
    }
    let emu = EmulatorProcess::start(&args);
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let log = dir.path().with_extension("log");
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {} mount {} --agency {COMPANY} --app-id {APP} \
             --base-url {} --cache-dir {}",
            common::mount::BIN,
            q(dir.path()),
            emu.base_url,
            q(cache.path())
        ))
        .env("MEDIAFS_TOKEN", AGENCY_TOKEN)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the agency did not mount", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the mount exited: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        common::mount::is_mounted(dir.path())
    });
    // 300 of the emulator's, and LOCATION, on which the app is installed too.
    let root = ok(&format!("ls -1 {}", q(dir.path())));
    assert_eq!(root.lines().count(), 301);
    ok(&format!("echo hi > {}/LocMany0299/hi.txt", q(dir.path())));
    ok(&format!("fusermount3 -u {}", q(dir.path())));
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
}
