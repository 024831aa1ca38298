//! Client-side rate limiting: stays under the service's per-location limit
//! (100 requests per 10 s by default) and follows what the service says in
//! its `X-RateLimit-*` headers.

use std::time::{Duration, Instant};

/// The tokio clock, so that tests with a paused clock see time pass.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

use reqwest::header::HeaderMap;
use tokio::sync::Mutex;

use super::rate_window::SlidingWindow;

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
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
        }
    }

    /// Waits until one more request may be sent, and counts it.
    pub async fn acquire(&self) {
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
