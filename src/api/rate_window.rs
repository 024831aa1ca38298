//! A sliding-window request counter: at most `max` events in any `window`.
//! The client paces itself with it ([`super::limiter`]); the emulator
//! enforces the service's limit with windows of its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SlidingWindow {
    max: usize,
    window: Duration,
    stamps: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(max: usize, window: Duration) -> Self {
        SlidingWindow {
            max: max.max(1),
            window,
            stamps: VecDeque::new(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Lowers (never raises) the limit, e.g. to what a server says it allows.
    pub fn lower_max(&mut self, max: usize) {
        self.max = self.max.min(max.max(1));
    }

    /// Counts one event at `now` if the window has room and returns how many
    /// remain; otherwise returns how long until the oldest event leaves it.
    pub fn try_acquire(&mut self, now: Instant) -> Result<usize, Duration> {
        while let Some(&oldest) = self.stamps.front() {
            if now.duration_since(oldest) >= self.window {
                self.stamps.pop_front();
            } else {
                break;
            }
        }
        if self.stamps.len() < self.max {
            self.stamps.push_back(now);
            Ok(self.max - self.stamps.len())
        } else {
            let oldest = self.stamps[self.stamps.len() - self.max];
            Err(self.window - now.duration_since(oldest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_max_per_window_then_waits_for_the_oldest() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(3, Duration::from_secs(10));
        assert_eq!(w.try_acquire(t0), Ok(2));
        assert_eq!(w.try_acquire(t0 + Duration::from_secs(1)), Ok(1));
        assert_eq!(w.try_acquire(t0 + Duration::from_secs(2)), Ok(0));
        assert_eq!(
            w.try_acquire(t0 + Duration::from_secs(3)),
            Err(Duration::from_secs(7))
        );
        assert_eq!(w.try_acquire(t0 + Duration::from_secs(10)), Ok(0));
    }

    #[test]
    fn lowering_the_limit_takes_effect_at_once() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(100, Duration::from_secs(10));
        w.lower_max(1);
        assert!(w.try_acquire(t0).is_ok());
        assert!(w.try_acquire(t0).is_err());
        w.lower_max(50);
        assert_eq!(w.max(), 1);
    }
}
