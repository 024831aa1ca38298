//! The emulator's bandwidth cap: transfers take turns at a fixed byte rate.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: Mutex<Option<u64>>,
    /// When the link is next free.
    next_free: Mutex<Instant>,
}

impl Throttle {
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        Throttle {
            bytes_per_sec: Mutex::new(bytes_per_sec.filter(|&b| b > 0)),
            next_free: Mutex::new(Instant::now()),
        }
    }

    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        *self.bytes_per_sec.lock().unwrap() = bytes_per_sec.filter(|&b| b > 0);
    }

    /// Waits until `n` bytes may pass.
    pub async fn take(&self, n: usize) {
        let Some(rate) = *self.bytes_per_sec.lock().unwrap() else {
            return;
        };
        let until = {
            let mut next = self.next_free.lock().unwrap();
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / rate as f64);
            *next
        };
        tokio::time::sleep_until(until).await;
    }
}
