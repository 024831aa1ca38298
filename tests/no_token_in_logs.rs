//! The token must appear in no log line at any level, no error message and
//! no `Debug` output, even while requests fail and are retried.

mod common;

use std::sync::Mutex;

use common::*;
use mediafs::emulator::Faults;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push(format!(
            "{} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

#[tokio::test]
async fn token_stays_out_of_trace_logs_and_errors() {
    log::set_boxed_logger(Box::new(Capture)).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let emu = start_emulator(
        true,
        Faults {
            fail_rate: 0.4,
            ..quiet()
        },
    )
    .await;
    let client = emu.client_with(|c| c.max_retries = 3);
    let mut shown = Vec::new();
    shown.push(format!("{client:?}"));
    for _ in 0..5 {
        if let Err(e) = client.list_folder_tree().await {
            shown.push(format!("{e} {e:?}"));
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = write_file(tmp.path(), "a.png", &png_bytes(100, 1));
        if let Err(e) = client.upload_file(&path, "a.png", None).await {
            shown.push(format!("{e} {e:?}"));
        }
    }
    let wrong = client_for(emu.base_url(), LOCATION, "pit-secret-wrong-token", |_| {});
    let e = wrong.verify_access().await.unwrap_err();
    shown.push(format!("{e} {e:?}"));

    let lines = LINES.lock().unwrap();
    assert!(lines.len() > 10, "trace logging captured the run");
    for line in lines.iter().chain(shown.iter()) {
        assert!(
            !line.contains(TOKEN) && !line.contains("secret-wrong"),
            "token leaked: {line}"
        );
    }
}
