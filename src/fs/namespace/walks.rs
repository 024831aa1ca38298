//! Telling a walk of the library from a look at one folder.
//!
//! A folder's listing costs one API call (more for a large folder), and
//! the service allows 100 calls per 10 s: a cold `ls -lR`, `find`, `du` or
//! `rsync` out of 400 folders would wait 40 s for the rate limit, and hold
//! every upload back meanwhile. The service can answer every file of the
//! location in one `fetchAll` call, which costs one call whatever the size
//! of the library, but its bytes grow with the library. So a folder looked
//! at now and then gets its own listing, and once several folders are
//! listed cold within a moment (a walk, or a directory opened whose
//! subfolders are fetched ahead), every file is listed at once instead.
//!
//! Listing everything again is held back for at least the metadata TTL
//! after the last time, and for ten times as long as that took, so that a
//! long walk of a very large library spends at most a tenth of its time
//! on such listings; in between, folders are listed one by one. A failed
//! try is held back as long; a service that cannot answer everything at
//! once (short answers, a refusal) is not asked again for ten minutes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::FolderKey;

/// Distinct folders listed cold within [`WALK_WINDOW`] that make a walk.
const FOLDERS_OF_A_WALK: usize = 3;
const WALK_WINDOW: Duration = Duration::from_secs(2);
/// Listing everything takes at most one part in this many of the time.
const AT_ONCE_SHARE: u32 = 10;

/// Tried again only this long after the service could not, or would not,
/// answer every file at once.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(600);

#[derive(Debug)]
enum AtOnce {
    /// Not tried yet.
    Untried,
    /// Last tried (listed, or failed for a reason that may pass) from
    /// `started`, which took `took`.
    Tried { started: Instant, took: Duration },
    /// The service cannot answer every file at once (its answers fall
    /// short, or it refuses the request): not asked again before `until`.
    Unavailable { until: Instant },
}

#[derive(Debug)]
pub struct Walks {
    ttl: Duration,
    /// Folders whose listings were found cold, and when, within the window.
    cold: VecDeque<(Instant, FolderKey)>,
    at_once: AtOnce,
}

impl Walks {
    pub fn new(ttl: Duration) -> Walks {
        Walks {
            ttl,
            cold: VecDeque::new(),
            at_once: AtOnce::Untried,
        }
    }

    /// A folder's listing is found cold at `now`: whether a walk is under
    /// way and every file should be listed at once.
    pub fn cold_listing(&mut self, now: Instant, key: &FolderKey) -> bool {
        while self
            .cold
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= WALK_WINDOW)
        {
            self.cold.pop_front();
        }
        if !self.cold.iter().any(|(_, k)| k == key) {
            self.cold.push_back((now, key.clone()));
        }
        self.cold.len() >= FOLDERS_OF_A_WALK && self.at_once_due(now)
    }

    /// Whether listing every file at once is worth it at `now`.
    pub fn at_once_due(&self, now: Instant) -> bool {
        if self.ttl.is_zero() {
            // Nothing listed would be trusted for the next look.
            return false;
        }
        match self.at_once {
            AtOnce::Untried => true,
            AtOnce::Tried { started, took } => {
                now.duration_since(started) >= self.ttl.max(took * AT_ONCE_SHARE)
            }
            AtOnce::Unavailable { until } => now >= until,
        }
    }

    /// Every file was listed from `started`, in `took`; or the listing
    /// failed in that time for a reason that may pass (it is not asked
    /// again sooner than after a success).
    pub fn tried_at_once(&mut self, started: Instant, took: Duration) {
        self.cold.clear();
        self.at_once = AtOnce::Tried { started, took };
    }

    /// The service cannot answer every file at once, as of `now`.
    pub fn at_once_unavailable(&mut self, now: Instant) {
        self.cold.clear();
        self.at_once = AtOnce::Unavailable {
            until: now + UNAVAILABLE_FOR,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> FolderKey {
        Some(id.to_owned())
    }

    #[test]
    fn three_folders_listed_cold_within_the_window_are_a_walk() {
        let t0 = Instant::now();
        let mut w = Walks::new(Duration::from_secs(5));
        assert!(!w.cold_listing(t0, &None));
        // The same folder again is not another folder.
        assert!(!w.cold_listing(t0, &None));
        assert!(!w.cold_listing(t0 + Duration::from_millis(100), &key("a")));
        assert!(w.cold_listing(t0 + Duration::from_millis(200), &key("b")));
    }

    #[test]
    fn folders_looked_at_now_and_then_are_no_walk() {
        let t0 = Instant::now();
        let mut w = Walks::new(Duration::from_secs(5));
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            let at = t0 + WALK_WINDOW * i as u32;
            assert!(!w.cold_listing(at, &key(k)));
        }
    }

    #[test]
    fn listing_everything_again_waits_for_the_ttl_and_ten_times_its_cost() {
        let t0 = Instant::now();
        let mut w = Walks::new(Duration::from_secs(5));
        w.tried_at_once(t0, Duration::from_millis(100));
        assert!(!w.at_once_due(t0 + Duration::from_secs(4)));
        assert!(w.at_once_due(t0 + Duration::from_secs(5)));
        w.tried_at_once(t0, Duration::from_secs(2));
        assert!(!w.at_once_due(t0 + Duration::from_secs(19)));
        assert!(w.at_once_due(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn a_service_that_cannot_answer_everything_is_asked_again_ten_minutes_later() {
        let t0 = Instant::now();
        let mut w = Walks::new(Duration::from_secs(5));
        w.at_once_unavailable(t0);
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            assert!(!w.cold_listing(t0 + Duration::from_millis(i as u64), &key(k)));
        }
        let later = t0 + UNAVAILABLE_FOR;
        for (i, k) in ["d", "e", "f"].iter().enumerate() {
            let walk = w.cold_listing(later + Duration::from_millis(i as u64), &key(k));
            assert_eq!(walk, *k == "f");
        }
    }

    #[test]
    fn a_zero_ttl_never_lists_everything() {
        let t0 = Instant::now();
        let mut w = Walks::new(Duration::ZERO);
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            assert!(!w.cold_listing(t0 + Duration::from_millis(i as u64), &key(k)));
        }
    }
}
