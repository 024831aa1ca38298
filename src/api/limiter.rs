//! Client-side rate limiting: stays under the service's per-location limit
//! (100 requests per 10 s by default) and follows what the service says in
//! its `X-RateLimit-*` headers. Until the first answer has said the limit,
//! one request is out at a time: a token with a lower limit (25 per 10 s on
//! trial accounts) would otherwise draw 429s from the first burst.

use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

/// The tokio clock, so that tests with a paused clock see time pass.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

use reqwest::header::HeaderMap;
use tokio::sync::{Mutex, Notify};

use super::rate_window::SlidingWindow;

/// How long a request waits for the first answer to tell the limit before
/// it goes out under the configured one.
const LEARNING_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    learning: StdMutex<Learning>,
    /// Wakes the requests held back while the first one was out.
    told: Notify,
}

/// What the client knows of the service's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learning {
    /// Nothing yet: the next request goes alone.
    Unknown,
    /// A request is out to learn it; the others wait for its answer.
    Asking,
    /// An answer came (with the limit, or without any: then the configured one stands).
    Known,
}

/// A request let through; dropped once its answer has been observed, or
/// when it failed without one (then the next request asks in its place).
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
    asking: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.asking {
            let mut learning = self.limiter.learning.lock().unwrap();
            if *learning == Learning::Asking {
                *learning = Learning::Unknown;
            }
            drop(learning);
            self.limiter.told.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct State {
    window: Option<SlidingWindow>,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// `None` turns client-side limiting off (the server's answers still pause it).
    pub fn new(limit: Option<(usize, Duration)>) -> Self {
        RateLimiter {
            state: Mutex::new(State {
                // 5% slack: the server's window starts when a request arrives, ours when it leaves.
                window: limit.map(|(max, per)| SlidingWindow::new(max, per.mul_f64(1.05))),
                paused_until: None,
            }),
            // Without a limit of its own, the client has nothing to learn.
            learning: StdMutex::new(if limit.is_some() {
                Learning::Unknown
            } else {
                Learning::Known
            }),
            told: Notify::new(),
        }
    }

    /// Waits until one more request may be sent, and counts it.
    pub async fn acquire(&self) -> Permit<'_> {
        let asking = self.await_turn_to_learn().await;
        self.acquire_slot().await;
        Permit {
            limiter: self,
            asking,
        }
    }

    /// Returns at once when the limit is known (true: this request is to
    /// learn it); waits while another request is out to learn it, but no
    /// longer than [`LEARNING_WAIT`] (that one may be a long upload).
    async fn await_turn_to_learn(&self) -> bool {
        let give_up = tokio::time::Instant::now() + LEARNING_WAIT;
        loop {
            let told = self.told.notified();
            {
                let mut learning = self.learning.lock().unwrap();
                match *learning {
                    Learning::Known => return false,
                    Learning::Unknown => {
                        *learning = Learning::Asking;
                        return true;
                    }
                    Learning::Asking => {}
                }
            }
            if tokio::time::timeout_at(give_up, told).await.is_err() {
                return false;
            }
        }
    }

    async fn acquire_slot(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock().await;
                let now = now();
                match st.paused_until {
                    Some(until) if until > now => until - now,
                    _ => match st.window.as_mut().map(|w| w.try_acquire(now)) {
                        None | Some(Ok(_)) => return,
                        Some(Err(wait)) => wait,
                    },
                }
            };
            log::debug!("rate limit: waiting {wait:?} before the next API request");
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every request back for `pause` (after a 429, say).
    pub async fn pause(&self, pause: Duration) {
        let mut st = self.state.lock().await;
        let until = now() + pause;
        st.paused_until = Some(st.paused_until.map_or(until, |u| u.max(until)));
    }

    /// Adopts a lower limit the server announces, and pauses when it says no
    /// request remains in its window.
    pub async fn observe(&self, headers: &HeaderMap) {
        self.adopt_limit(headers).await;
        *self.learning.lock().unwrap() = Learning::Known;
        self.told.notify_waiters();
    }

    async fn adopt_limit(&self, headers: &HeaderMap) {
        let num =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let max = num("x-ratelimit-max");
        let remaining = num("x-ratelimit-remaining");
        let interval = num("x-ratelimit-interval-milliseconds").map(Duration::from_millis);
        if let (Some(max), Some(window)) = (max, self.state.lock().await.window.as_mut()) {
            if (max as usize) < window.max() {
                log::info!("the service allows {max} requests per window; limiting to that");
                window.lower_max(max as usize);
            }
        }
        if remaining == Some(0) {
            // Other clients share the quota: wait for the server's window to pass.
            self.pause(interval.unwrap_or(Duration::from_secs(10)))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_past_the_limit() {
        let limiter = RateLimiter::new(Some((2, Duration::from_secs(10))));
        let t0 = tokio::time::Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(t0.elapsed() < Duration::from_secs(1));
        limiter.acquire().await;
        assert!(t0.elapsed() >= Duration::from_secs(10));
        assert!(t0.elapsed() < Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn holds_the_burst_until_the_first_answer_tells_the_limit() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Some((100, Duration::from_secs(10)))));
        let t0 = tokio::time::Instant::now();
        let first = limiter.acquire().await;
        let waiting = limiter.clone();
        let second = tokio::spawn(async move { drop(waiting.acquire().await) });
        tokio::time::sleep(LEARNING_WAIT / 2).await;
        assert!(
            !second.is_finished(),
            "the second request waits for the first's answer"
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-max", "1".parse().unwrap());
        limiter.observe(&h).await;
        drop(first);
        second.await.unwrap();
        // The answer said 1 per window, and the first request took it.
        assert!(t0.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_request_without_an_answer_hands_the_asking_on() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Some((100, Duration::from_secs(10)))));
        let first = limiter.acquire().await;
        let waiting = limiter.clone();
        let second = tokio::spawn(async move { waiting.acquire().await.asking });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(first);
        assert!(second.await.unwrap(), "the next request asks in its place");
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_request_that_takes_long_holds_the_others_back_only_so_long() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Some((100, Duration::from_secs(10)))));
        let _first = limiter.acquire().await;
        let t0 = tokio::time::Instant::now();
        let second = limiter.acquire().await;
        assert!(!second.asking);
        assert_eq!(t0.elapsed(), LEARNING_WAIT);
    }

    #[tokio::test]
    async fn adopts_a_lower_server_limit() {
        let limiter = RateLimiter::new(Some((100, Duration::from_secs(10))));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-max", "25".parse().unwrap());
        limiter.observe(&h).await;
        assert_eq!(
            limiter.state.lock().await.window.as_ref().unwrap().max(),
            25
        );
    }
}
