//! Per-user rate limit on mutations: a fixed one-minute window per user. The application
//! backend (admin key) is not limited; subscriptions and queries are bounded by their own
//! limits (caps, page size, depth, complexity).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{AppError, AppResult};

const WINDOW: Duration = Duration::from_secs(60);

/// Counts each user's mutations in the current window.
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<i64, (Instant, u32)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` mutations per user (0 = unlimited).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn windows(&self) -> MutexGuard<'_, HashMap<i64, (Instant, u32)>> {
        // Each update is one insert; a poisoned map is still consistent.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `mutations` (the fields of one request) for `user_id`, or `RATE_LIMITED`
    /// when they do not all fit in what is left of the window (then none is counted).
    pub fn check(&self, user_id: i64, mutations: u32) -> AppResult<()> {
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
            let retry = WINDOW
                .saturating_sub(now.duration_since(*start))
                .as_secs()
                .max(1);
            return Err(AppError::RateLimited(format!(
                "at most {} mutations per minute; retry in {retry} s",
                self.per_minute
            )));
        }
        *count += mutations;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_allows_the_limit_then_refuses() {
        let limiter = RateLimiter::new(3);
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
        assert!(RateLimiter::new(0).check(1, 1).is_ok());
    }
}
