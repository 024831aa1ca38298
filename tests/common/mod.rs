//! Helpers shared by the integration tests: an emulator on a free loopback
//! port with its own data dir, and clients pointed at it.
#![allow(dead_code)]

pub mod daemon;
pub mod front_end;
pub mod mount;

use std::time::Duration;

use mediafs::api::{ClientConfig, MediaClient, MediaObject, Secret, TokenSource};
use mediafs::emulator::{self, EmulatorConfig, Faults, RunningEmulator, TokenGrant};

pub const TOKEN: &str = "pit-test-token-0123456789";
pub const LOCATION: &str = "LocTestAAAA1111";
pub const OTHER_LOCATION: &str = "LocOtherBBBB2222";
pub const OTHER_TOKEN: &str = "pit-other-location-token";

pub struct TestEmulator {
    pub running: RunningEmulator,
    pub dir: tempfile::TempDir,
}

impl TestEmulator {
    pub fn base_url(&self) -> &str {
        &self.running.base_url
    }

    pub fn client(&self) -> MediaClient {
        self.client_with(|_| {})
    }

    pub fn client_with(&self, adjust: impl FnOnce(&mut ClientConfig)) -> MediaClient {
        client_for(self.base_url(), LOCATION, TOKEN, adjust)
    }

    pub async fn set_faults(&self, faults: Faults) {
        let resp = reqwest::Client::new()
            .post(format!("{}/_emulator/faults", self.base_url()))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_emulator/stats", self.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn route_count(&self, route: &str) -> u64 {
        self.stats().await["by_route"][route].as_u64().unwrap_or(0)
    }

    pub async fn reset_stats(&self) {
        let resp = reqwest::Client::new()
            .delete(format!("{}/_emulator/stats", self.base_url()))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// Every object the emulator stores for [`LOCATION`], trashed and
    /// deleted ones included, each with its `status`: the server's state,
    /// for tests that must not take the client's word for it.
    pub async fn server_objects(&self) -> Vec<serde_json::Value> {
        server_objects_at(self.base_url()).await
    }
}

/// The active objects among [`TestEmulator::server_objects`], as the
/// client's models (oldest first): what the server holds now.
pub fn active_objects(all: &[serde_json::Value]) -> Vec<MediaObject> {
    all.iter()
        .filter(|o| o["status"] == "active")
        .map(|o| serde_json::from_value(o.clone()).expect("a stored object reads as a model"))
        .collect()
}

/// [`TestEmulator::server_objects`] of the emulator at `base_url`.
pub async fn server_objects_at(base_url: &str) -> Vec<serde_json::Value> {
    let url = format!("{base_url}/_emulator/objects?location={LOCATION}");
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body["objects"].as_array().unwrap().clone()
}

pub fn client_for(
    base_url: &str,
    location: &str,
    token: &str,
    adjust: impl FnOnce(&mut ClientConfig),
) -> MediaClient {
    let mut config = ClientConfig::new(base_url, location);
    config.retry_base = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(500);
    adjust(&mut config);
    MediaClient::new(config, TokenSource::fixed(Secret::new(token))).unwrap()
}

pub fn config_in(dir: &std::path::Path, seed_demo: bool, faults: Faults) -> EmulatorConfig {
    EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        tokens: vec![
            TokenGrant::new(TOKEN, None),
            TokenGrant::new(OTHER_TOKEN, Some(OTHER_LOCATION.into())),
        ],
        locations: vec![LOCATION.into(), OTHER_LOCATION.into()],
        seed_demo,
        generate: None,
        public_url: None,
        oauth_clients: Vec::new(),
        refresh_tokens: Vec::new(),
        access_token_ttl: std::time::Duration::from_secs(86399),
        agencies: Vec::new(),
        location_names: Default::default(),
        faults,
    }
}

pub async fn start_emulator(seed_demo: bool, faults: Faults) -> TestEmulator {
    let dir = tempfile::tempdir().unwrap();
    let running = emulator::start(config_in(dir.path(), seed_demo, faults))
        .await
        .unwrap();
    TestEmulator { running, dir }
}

/// No rate limit, no faults: for tests about something else.
pub fn quiet() -> Faults {
    Faults {
        rate_limit: 0,
        ..Faults::default()
    }
}

/// A file in `dir` holding `bytes`.
pub fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// An MP4 head followed by `extra` bytes of a pattern that repeats every
/// `period` bytes (a prime, so chunk boundaries never line up with it).
pub fn mp4_bytes(extra: u32, period: u32) -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    v.extend((0..extra).map(|i| (i % period) as u8));
    v
}

/// The start of a real PNG followed by `extra` bytes of payload.
pub fn png_bytes(extra: usize, seed: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    v.extend((0..extra).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}
