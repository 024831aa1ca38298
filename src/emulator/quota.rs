//! The service's rate limits as the emulator enforces them: per app per
//! location (a [`QuotaKey`]), a window of [`rules::BURST_INTERVAL`] of
//! either kind ([`WindowKind`]) and a daily quota, with the `X-RateLimit-*`
//! headers telling what is left.
//! These are the emulator's own windows: the client paces itself with its
//! own (`api::limiter`), and a test only means something if the two differ.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};

use super::rules::{self, headers, WindowKind};

/// A count that starts with the first request and resets whole once the
/// interval from that request has passed.
#[derive(Debug)]
pub struct FixedWindow {
    max: u64,
    interval: Duration,
    started: Option<Instant>,
    used: u64,
}

impl FixedWindow {
    pub fn new(max: u64, interval: Duration) -> Self {
        FixedWindow {
            max,
            interval,
            started: None,
            used: 0,
        }
    }

    /// Counts a request arriving at `now`: how many remain in this window,
    /// or `None` when it is full (a refused request is not counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.has_ended(now) {
            self.started = Some(now);
            self.used = 0;
        }
        (self.used < self.max).then(|| {
            self.used += 1;
            self.max - self.used
        })
    }

    /// How many a request at `now` would find left, counting none.
    pub fn remaining(&self, now: Instant) -> u64 {
        if self.has_ended(now) {
            self.max
        } else {
            self.max.saturating_sub(self.used)
        }
    }

    /// A new allowance for the window under way; what it used stays used.
    fn set_max(&mut self, max: u64) {
        self.max = max;
    }

    fn has_ended(&self, now: Instant) -> bool {
        self.started
            .is_none_or(|s| now.duration_since(s) >= self.interval)
    }
}

/// At most `max` requests in any interval: the arrival times of those
/// still inside it.
#[derive(Debug)]
pub struct SlidingWindow {
    max: u64,
    interval: Duration,
    arrivals: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(max: u64, interval: Duration) -> Self {
        SlidingWindow {
            max,
            interval,
            arrivals: VecDeque::new(),
        }
    }

    /// Counts a request arriving at `now`: how many remain in the interval
    /// ending now, or `None` when it holds `max` already.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        while self
            .arrivals
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.interval)
        {
            self.arrivals.pop_front();
        }
        let used = self.arrivals.len() as u64;
        (used < self.max).then(|| {
            self.arrivals.push_back(now);
            self.max - used - 1
        })
    }
}

#[derive(Debug)]
enum Window {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
}

impl Window {
    fn new(kind: WindowKind, max: u64) -> Self {
        match kind {
            WindowKind::Fixed => Window::Fixed(FixedWindow::new(max, rules::BURST_INTERVAL)),
            WindowKind::Sliding => Window::Sliding(SlidingWindow::new(max, rules::BURST_INTERVAL)),
        }
    }

    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self {
            Window::Fixed(w) => w.admit(now),
            Window::Sliding(w) => w.admit(now),
        }
    }
}

/// Whose requests count together: an app's at one location (the tokens it
/// gets there one after another share it), or a token's own when it is
/// tied to no location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QuotaKey {
    AppAtLocation { app: String, location: String },
    Token(String),
}

/// The limits a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window: WindowKind,
    /// Requests per burst interval; 0: no burst limit.
    pub burst: u32,
    pub daily: u64,
}

/// One key's burst window (with the limits it was made for) and day.
#[derive(Debug)]
struct Quota {
    limits: Limits,
    burst: Window,
    day: FixedWindow,
}

impl Quota {
    fn new(limits: Limits) -> Self {
        Quota {
            limits,
            burst: Window::new(limits.window, limits.burst.into()),
            day: FixedWindow::new(limits.daily, rules::DAY),
        }
    }

    /// The faults changed: a new burst window of the new kind and size, and
    /// the day's new allowance.
    fn update(&mut self, limits: Limits) {
        if (limits.window, limits.burst) != (self.limits.window, self.limits.burst) {
            self.burst = Window::new(limits.window, limits.burst.into());
        }
        self.day.set_max(limits.daily);
        self.limits = limits;
    }
}

/// Every key's quota.
#[derive(Debug, Default)]
pub struct Quotas(Mutex<HashMap<QuotaKey, Quota>>);

impl Quotas {
    /// Counts a request of `key` against the burst limit in its window and
    /// against the day. The `X-RateLimit-*` headers to send with the
    /// answer, or (as the error) those of a 429.
    pub fn admit(&self, key: &QuotaKey, limits: Limits) -> Result<HeaderMap, HeaderMap> {
        let now = Instant::now();
        let mut quotas = self.0.lock().unwrap();
        let quota = quotas
            .entry(key.clone())
            .or_insert_with(|| Quota::new(limits));
        if quota.limits != limits {
            quota.update(limits);
        }
        let limit = limits.burst;
        let burst = (limit > 0).then(|| quota.burst.admit(now));
        // A request the burst window refuses is not charged to the day.
        let day = match burst {
            Some(None) => Err(quota.day.remaining(now)),
            _ => quota.day.admit(now).ok_or(0),
        };
        let mut h = HeaderMap::new();
        let mut set = |name: &'static str, value: u64| {
            h.insert(name, HeaderValue::from(value));
        };
        set(headers::LIMIT_DAILY, limits.daily);
        set(headers::DAILY_REMAINING, day.unwrap_or_else(|left| left));
        set(
            headers::INTERVAL_MS,
            rules::BURST_INTERVAL.as_millis() as u64,
        );
        if let Some(remaining) = burst {
            set(headers::MAX, limit.into());
            set(headers::REMAINING, remaining.unwrap_or(0));
        }
        match day {
            Ok(_) => Ok(h),
            Err(_) => Err(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_S: Duration = Duration::from_secs(10);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_fixed_window_resets_whole_an_interval_after_it_began() {
        let t0 = Instant::now();
        let mut w = FixedWindow::new(3, TEN_S);
        assert_eq!(w.admit(at(t0, 0)), Some(2));
        assert_eq!(w.admit(at(t0, 9_000)), Some(1));
        assert_eq!(w.admit(at(t0, 9_500)), Some(0));
        assert_eq!(w.admit(at(t0, 9_999)), None);
        // All three back at once, though two were admitted under a second ago.
        assert_eq!(w.admit(at(t0, 10_000)), Some(2));
        assert_eq!(w.admit(at(t0, 10_001)), Some(1));
        assert_eq!(w.admit(at(t0, 10_002)), Some(0));
        assert_eq!(w.admit(at(t0, 19_999)), None);
        assert_eq!(w.admit(at(t0, 20_000)), Some(2));
    }

    #[test]
    fn a_sliding_window_frees_each_slot_an_interval_after_its_request() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(3, TEN_S);
        assert_eq!(w.admit(at(t0, 0)), Some(2));
        assert_eq!(w.admit(at(t0, 9_000)), Some(1));
        assert_eq!(w.admit(at(t0, 9_500)), Some(0));
        assert_eq!(w.admit(at(t0, 9_999)), None);
        // One slot back: the request at 0 left; those at 9 s and 9.5 s stay.
        assert_eq!(w.admit(at(t0, 10_000)), Some(0));
        assert_eq!(w.admit(at(t0, 10_001)), None);
        assert_eq!(w.admit(at(t0, 19_000)), Some(0));
        assert_eq!(w.admit(at(t0, 19_499)), None);
        assert_eq!(w.admit(at(t0, 19_500)), Some(0));
    }

    #[test]
    fn refused_requests_take_no_slot() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(1, TEN_S);
        assert_eq!(w.admit(at(t0, 0)), Some(0));
        for ms in 1..100 {
            assert_eq!(w.admit(at(t0, ms * 10)), None);
        }
        assert_eq!(w.admit(at(t0, 10_000)), Some(0));
    }

    fn header(h: &HeaderMap, name: &str) -> u64 {
        h[name].to_str().unwrap().parse().unwrap()
    }

    fn limits(window: WindowKind, burst: u32) -> Limits {
        Limits {
            window,
            burst,
            daily: rules::DAILY_LIMIT,
        }
    }

    #[test]
    fn the_headers_count_down_the_window_and_the_day() {
        let quotas = Quotas::default();
        for kind in [WindowKind::Fixed, WindowKind::Sliding] {
            let token = QuotaKey::Token(format!("{kind:?}"));
            let first = quotas.admit(&token, limits(kind, 2)).unwrap();
            assert_eq!(header(&first, headers::MAX), 2);
            assert_eq!(header(&first, headers::REMAINING), 1);
            assert_eq!(header(&first, headers::INTERVAL_MS), 10_000);
            assert_eq!(header(&first, headers::LIMIT_DAILY), 200_000);
            assert_eq!(header(&first, headers::DAILY_REMAINING), 199_999);
            let second = quotas.admit(&token, limits(kind, 2)).unwrap();
            assert_eq!(header(&second, headers::REMAINING), 0);
            let refused = quotas.admit(&token, limits(kind, 2)).unwrap_err();
            assert_eq!(header(&refused, headers::REMAINING), 0);
            // A refused request is not charged to the day.
            assert_eq!(header(&refused, headers::DAILY_REMAINING), 199_998);
            let after = quotas.admit(&token, limits(kind, 0)).unwrap();
            assert_eq!(header(&after, headers::DAILY_REMAINING), 199_997);
            assert!(after.get(headers::MAX).is_none(), "no burst limit, no max");
        }
    }

    #[test]
    fn a_location_whose_day_is_used_up_stops_alone() {
        let quotas = Quotas::default();
        let at = |location: &str| QuotaKey::AppAtLocation {
            app: "app".into(),
            location: location.into(),
        };
        let normal = limits(WindowKind::Sliding, 100);
        let spent = Limits { daily: 0, ..normal };
        assert!(quotas.admit(&at("a"), normal).is_ok());
        let refused = quotas.admit(&at("a"), spent).unwrap_err();
        assert_eq!(header(&refused, headers::DAILY_REMAINING), 0);
        assert_eq!(header(&refused, headers::LIMIT_DAILY), 0);
        let other = quotas.admit(&at("b"), normal).unwrap();
        assert_eq!(header(&other, headers::DAILY_REMAINING), 199_999);
    }
}
