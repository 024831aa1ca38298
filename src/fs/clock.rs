//! The clock the core reads for everything that expires: listings trusted
//! for the metadata TTL, and which of this mount's changes a listing may
//! predate. Tests advance it to pass a TTL at once, without sleeping and
//! without pausing the runtime (whose timers the HTTP client and the
//! emulator need to keep real).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Real monotonic time, plus however far a test has moved it on.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Nanoseconds added by [`Clock::advance`]; `None` for the system clock.
    skew: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock { skew: None }
    }

    /// A clock that [`Clock::advance`] moves forward.
    pub fn manual() -> Clock {
        Clock {
            skew: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    pub fn now(&self) -> Instant {
        let skew = self.skew.as_ref().map_or(0, |s| s.load(Ordering::SeqCst));
        Instant::now() + Duration::from_nanos(skew)
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        let skew = self
            .skew
            .as_ref()
            .expect("only a manual clock can be advanced");
        skew.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Time passed since `earlier`, by this clock.
    pub fn since(&self, earlier: Instant) -> Duration {
        self.now().saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told() {
        let clock = Clock::manual();
        let start = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.since(start) >= Duration::from_secs(3600));
        assert!(Clock::system().since(start) < Duration::from_secs(3600));
    }
}
