//! Per-user rate limit on mutations: a fixed one-minute window per user. The application
//! backend (admin key) is not limited; subscriptions and queries are bounded by their own
//! limits (caps, page size, depth, complexity).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::AppError;
use crate::metrics::{Limit, Metrics};

const WINDOW: Duration = Duration::from_secs(60);

/// Counts each user's mutations in the current window.
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<i64, (Instant, u32)>>,
    metrics: Metrics,
}

/// A request the limit refused, and when the user's window frees.
#[derive(Debug)]
pub struct Limited {
    per_minute: u32,
    retry_after: Duration,
}

impl Limited {
    /// Whole seconds until the window frees, rounded up and at least 1: what
    /// `Retry-After` and `extensions.retryAfterSeconds` say.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

/// `wait` in whole seconds, rounded up, at least 1 (a client told 0 would retry at once).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl From<Limited> for AppError {
    fn from(limited: Limited) -> Self {
        AppError::RateLimited(format!(
            "at most {} mutations per minute; retry in {} s",
            limited.per_minute,
            limited.retry_after_secs()
        ))
    }
}

impl RateLimiter {
    /// A limiter allowing `per_minute` mutations per user (0 = unlimited), counting its
    /// refusals in `metrics`.
    pub fn new(per_minute: u32, metrics: Metrics) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn windows(&self) -> MutexGuard<'_, HashMap<i64, (Instant, u32)>> {
        // Each update is one insert; a poisoned map is still consistent.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `mutations` (the fields of one request) for `user_id`, or refuses when they
    /// do not all fit in what is left of the window (then none is counted).
    pub fn check(&self, user_id: i64, mutations: u32) -> Result<(), Limited> {
        self.admit(user_id, mutations, true)
    }

    /// Whether `mutations` would fit now, counting nothing: a multipart request asks before
    /// its files are received and stored, and its mutations are counted when they run.
    pub fn would_allow(&self, user_id: i64, mutations: u32) -> Result<(), Limited> {
        self.admit(user_id, mutations, false)
    }

    fn admit(&self, user_id: i64, mutations: u32, count_them: bool) -> Result<(), Limited> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut windows = self.windows();
        if windows.len() > 10_000 {
            // Forget users whose window is over, so the map tracks only active users.
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(user_id).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if count.saturating_add(mutations) > self.per_minute {
            self.metrics.rate_limited(Limit::Mutations);
            return Err(Limited {
                per_minute: self.per_minute,
                retry_after: WINDOW.saturating_sub(now.duration_since(*start)),
            });
        }
        if count_them {
            *count += mutations;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_allows_the_limit_then_refuses() {
        let limiter = RateLimiter::new(3, Metrics::new());
        assert!((0..3).all(|_| limiter.check(1, 1).is_ok()));
        assert!(limiter.check(1, 1).is_err());
        assert!(limiter.check(2, 1).is_ok(), "users are counted apart");
        assert!(
            limiter.check(2, 3).is_err(),
            "a request counts all its mutations"
        );
        assert!(
            limiter.check(2, 2).is_ok(),
            "a refused request counted nothing"
        );
        assert!(RateLimiter::new(0, Metrics::new()).check(1, 1).is_ok());
    }

    #[test]
    fn asking_counts_nothing() {
        let limiter = RateLimiter::new(2, Metrics::new());
        assert!((0..5).all(|_| limiter.would_allow(1, 2).is_ok()));
        assert!(limiter.would_allow(1, 3).is_err());
        assert!(limiter.check(1, 2).is_ok());
        assert!(limiter.would_allow(1, 1).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(59_001)), 60);
        assert_eq!(retry_after_secs(Duration::from_secs(12)), 12);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        let limiter = RateLimiter::new(1, Metrics::new());
        assert!(limiter.check(1, 1).is_ok());
        let refused = limiter.check(1, 1).err();
        assert!(refused.is_some_and(|r| (59..=60).contains(&r.retry_after_secs())));
    }
}
