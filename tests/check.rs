//! `mediafs check`, the real binary against an emulator process: a line
//! per check with the right verdict, an exit code that says whether a
//! mount would work, the API calls it says it made (counted by the
//! emulator), nothing changed in the library, and never the token.

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::{run_to_end, Ran};
use common::mount::{ok, EmulatorProcess, BIN};
use common::{LOCATION, OTHER_LOCATION, OTHER_TOKEN, TOKEN};

/// What `mediafs check` printed and how it exited.
struct Checked {
    ran: Ran,
}

impl Checked {
    fn code(&self) -> Option<i32> {
        self.ran.status.code()
    }

    /// The verdict and the words of the check labelled `label`.
    fn line(&self, label: &str) -> (String, String) {
        let found = self.ran.stdout.lines().find_map(|line| {
            let (verdict, rest) = line.strip_prefix("  ")?.split_once(' ')?;
            let says = rest.trim_start().strip_prefix(label)?;
            Some((verdict.to_owned(), says.trim().to_owned()))
        });
        found.unwrap_or_else(|| panic!("no {label:?} line in:\n{}", self.ran.stdout))
    }

    fn verdict(&self, label: &str) -> String {
        self.line(label).0
    }

    fn says(&self, label: &str, words: &str) -> bool {
        self.line(label).1.contains(words)
    }

    /// The API calls and downloads the report says it made.
    fn made(&self) -> (u64, u64) {
        let line = self
            .ran
            .stdout
            .lines()
            .find(|l| l.starts_with("Made "))
            .unwrap_or_else(|| panic!("no tally in:\n{}", self.ran.stdout));
        let number_before = |what: &str| -> u64 {
            let at = line
                .find(what)
                .unwrap_or_else(|| panic!("{what} in {line}"));
            line[..at]
                .split_whitespace()
                .last()
                .unwrap()
                .parse()
                .unwrap()
        };
        (number_before(" API call"), number_before(" download"))
    }
}

/// `mediafs check` of `location` over `base_url`, with the token in the
/// environment (or none), and the secrets that must never show.
fn check(base_url: &str, location: &str, token: Option<&str>, extra: &[&str]) -> Checked {
    let mut command = Command::new(BIN);
    command
        .args(["check", "--location", location, "--base-url", base_url])
        .args(extra)
        .env_remove("MEDIAFS_TOKEN")
        .env_remove("MEDIAFS_OAUTH_CLIENT_SECRET");
    if let Some(token) = token {
        command.env("MEDIAFS_TOKEN", token);
    }
    let checked = Checked {
        ran: run_to_end(&mut command),
    };
    if let Some(token) = token {
        assert_never_shown(&checked, token);
    }
    checked
}

fn assert_never_shown(checked: &Checked, secret: &str) {
    let Ran { stdout, stderr, .. } = &checked.ran;
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the report shows a secret:\n{stdout}\n{stderr}"
    );
}

/// Everything the emulator stores for the location, trashed objects included.
fn objects(emu: &EmulatorProcess) -> serde_json::Value {
    let url = format!("{}/_emulator/objects?location={LOCATION}", emu.base_url);
    serde_json::from_str(&ok(&format!("curl -sf '{url}'"))).unwrap()
}

fn demo_library(extra: &[&str]) -> EmulatorProcess {
    let mut args = vec!["--seed", "demo"];
    args.extend(extra);
    EmulatorProcess::start(&args)
}

#[test]
fn a_good_token_passes_names_its_kind_and_the_limits_and_changes_nothing() {
    let emu = demo_library(&["--rate-limit", "25"]);
    let before = objects(&emu);
    emu.reset_stats();
    let checked = check(&emu.base_url, LOCATION, Some(TOKEN), &[]);
    assert_eq!(checked.code(), Some(0), "{}", checked.ran.stdout);
    for label in [
        "token",
        "service",
        "location",
        "read access",
        "write access",
        "file URLs",
        "round trip",
    ] {
        assert_eq!(checked.verdict(label), "ok", "{}", checked.ran.stdout);
    }
    assert!(checked.says("token", "Private Integration token"));
    assert!(checked.says("file URLs", "Range is honoured"));
    // The service allows 25 per 10 s, the client assumes 100.
    assert_eq!(checked.verdict("rate limit"), "warning");
    assert!(checked.says("rate limit", "25 requests per 10 s"));
    assert!(checked.says("rate limit", "--rate-limit 25"));

    let stats = emu.stats();
    let (api_calls, downloads) = checked.made();
    assert_eq!(api_calls, stats["api_requests"].as_u64().unwrap());
    assert_eq!(downloads, stats["download_requests"].as_u64().unwrap());
    assert!(api_calls <= 6, "a few calls: {api_calls}");
    assert_eq!(objects(&emu), before, "the library is as it was");

    // Mounting with the announced limit leaves nothing to warn about.
    let checked = check(
        &emu.base_url,
        LOCATION,
        Some(TOKEN),
        &["--rate-limit", "25"],
    );
    assert_eq!(checked.verdict("rate limit"), "ok");
    assert!(checked.ran.stdout.contains("A mount will work."));
}

#[test]
fn a_wrong_token_fails_and_says_the_service_refused_it() {
    let emu = demo_library(&[]);
    let checked = check(&emu.base_url, LOCATION, Some("pit-not-a-token-4242"), &[]);
    assert_eq!(checked.code(), Some(1));
    assert_eq!(checked.verdict("token"), "failed");
    assert!(
        checked.says("token", "Invalid token"),
        "{}",
        checked.ran.stdout
    );
    assert_eq!(checked.verdict("read access"), "skipped");
    assert_eq!(
        checked.verdict("rate limit"),
        "skipped",
        "a refusal tells nothing of the limits"
    );
}

#[test]
fn another_locations_token_fails_and_names_its_location() {
    let other = format!("{OTHER_TOKEN}:{OTHER_LOCATION}");
    let emu = demo_library(&["--location", OTHER_LOCATION, "--token", &other]);
    let checked = check(&emu.base_url, LOCATION, Some(OTHER_TOKEN), &[]);
    assert_eq!(checked.code(), Some(1));
    assert_eq!(checked.verdict("location"), "failed");
    assert!(
        checked.says(
            "location",
            &format!("made for location {OTHER_LOCATION}, not {LOCATION}")
        ),
        "{}",
        checked.ran.stdout
    );
    assert!(checked.says("location", &format!("--location {OTHER_LOCATION}")));
    // The token itself is good: the service took it, for another location.
    assert_eq!(checked.verdict("token"), "ok");
}

#[test]
fn a_token_without_write_scope_fails_unless_the_mount_is_read_only() {
    let token = "pit-reads-only-77";
    let grant = format!("{token}:{LOCATION}:medias.readonly");
    let emu = demo_library(&["--token", &grant]);
    let before = objects(&emu);
    let checked = check(&emu.base_url, LOCATION, Some(token), &[]);
    assert_eq!(checked.code(), Some(1), "{}", checked.ran.stdout);
    assert_eq!(checked.verdict("read access"), "ok");
    assert_eq!(checked.verdict("write access"), "failed");
    assert!(checked.says("write access", "lacks medias.write"));
    assert!(checked.says("write access", "--read-only"));

    emu.reset_stats();
    let checked = check(&emu.base_url, LOCATION, Some(token), &["--read-only"]);
    assert_eq!(checked.code(), Some(0), "{}", checked.ran.stdout);
    assert_eq!(checked.verdict("write access"), "note");
    assert!(checked.says("write access", "not checked"));
    assert!(checked.ran.stdout.contains("A read-only mount will work."));
    let by_route = &emu.stats()["by_route"];
    let routes: Vec<&String> = by_route.as_object().unwrap().keys().collect();
    assert_eq!(
        routes,
        ["GET /medias/files"],
        "a read-only check only reads"
    );
    assert_eq!(objects(&emu), before);
}

#[test]
fn a_token_without_read_scope_fails() {
    let token = "pit-writes-only-78";
    let grant = format!("{token}:{LOCATION}:medias.write");
    let emu = demo_library(&["--token", &grant]);
    let before = objects(&emu);
    let checked = check(&emu.base_url, LOCATION, Some(token), &[]);
    assert_eq!(checked.code(), Some(1), "{}", checked.ran.stdout);
    assert_eq!(checked.verdict("read access"), "failed");
    assert!(checked.says("read access", "lacks medias.readonly"));
    assert_eq!(checked.verdict("write access"), "ok");
    assert_eq!(objects(&emu), before);
}

#[test]
fn an_unreachable_base_url_fails() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let checked = check(&format!("http://{closed}"), LOCATION, Some(TOKEN), &[]);
    assert_eq!(checked.code(), Some(1));
    assert_eq!(checked.verdict("service"), "failed");
    assert!(
        checked.says("service", "cannot reach"),
        "{}",
        checked.ran.stdout
    );
    assert_eq!(checked.verdict("token"), "skipped", "not confirmed");
}

#[test]
fn an_empty_library_has_no_file_url_to_try() {
    let emu = EmulatorProcess::start(&[]);
    let checked = check(&emu.base_url, LOCATION, Some(TOKEN), &[]);
    assert_eq!(checked.code(), Some(0), "{}", checked.ran.stdout);
    assert_eq!(checked.verdict("file URLs"), "skipped");
    assert!(checked.says("file URLs", "the library is empty"));
    assert_eq!(checked.made().1, 0, "no download");
}

#[test]
fn an_oauth_setup_is_refreshed_and_its_token_read() {
    let emu = EmulatorProcess::start(&[
        "--oauth-client",
        "app-check:secret-check-99",
        "--refresh-token",
        &format!("rt-check-first:{LOCATION}"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let refresh_file = dir.path().join("refresh");
    std::fs::write(&refresh_file, "rt-check-first\n").unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["check", "--location", LOCATION, "--base-url", &emu.base_url])
        .args(["--oauth-client-id", "app-check", "--refresh-token-file"])
        .arg(&refresh_file)
        .env_remove("MEDIAFS_TOKEN")
        .env("MEDIAFS_OAUTH_CLIENT_SECRET", "secret-check-99");
    let checked = Checked {
        ran: run_to_end(&mut command),
    };
    assert_eq!(checked.code(), Some(0), "{}", checked.ran.stdout);
    assert_eq!(checked.verdict("token"), "ok");
    assert!(checked.says(
        "token",
        &format!("OAuth access token (a JWT) for location {LOCATION}")
    ));
    assert!(checked.says("token", "scopes medias.readonly medias.write"));
    assert!(checked.says("token", "valid until"));
    assert!(checked.ran.stdout.contains("1 token refresh"));
    let new_refresh = read_line(&refresh_file);
    assert_ne!(
        new_refresh, "rt-check-first",
        "the new refresh token is kept"
    );
    for secret in ["rt-check-first", &new_refresh, "secret-check-99", "eyJ"] {
        assert_never_shown(&checked, secret);
    }
}

fn read_line(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// A server that answers every request with 200 and `body`: a web server
/// or a proxy's page where the API was meant to be.
fn answers_200_to_everything(content_type: &'static str, body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 8192];
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

#[test]
fn a_base_url_that_answers_200_to_everything_is_not_the_api() {
    for (kind, body) in [
        ("text/html", "<html><body>Welcome</body></html>"),
        ("application/json", "{}"),
    ] {
        let url = answers_200_to_everything(kind, body);
        let checked = check(&url, LOCATION, Some(TOKEN), &[]);
        let out = &checked.ran.stdout;
        assert_eq!(checked.code(), Some(1), "{body}: {out}");
        assert_eq!(checked.verdict("service"), "failed", "{out}");
        assert!(
            checked.says("service", "not as the media API does"),
            "{out}"
        );
        assert!(!out.contains("will work"), "{out}");
        assert_eq!(checked.verdict("rate limit"), "skipped", "{out}");
    }
}

#[test]
fn a_base_url_without_its_scheme_is_a_usage_error() {
    let checked = check("services.leadconnectorhq.com", LOCATION, Some(TOKEN), &[]);
    assert_eq!(checked.code(), Some(2), "a usage error");
    assert!(
        checked
            .ran
            .stderr
            .contains("https://services.leadconnectorhq.com"),
        "{}",
        checked.ran.stderr
    );
}
