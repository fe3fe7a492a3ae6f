//! Per-user counters of open connections and subscriptions in this process: presence
//! (`User.online`) and the per-user caps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts of something each user holds open.
#[derive(Clone, Default)]
pub struct UserCounter {
    counts: Arc<Mutex<HashMap<i64, usize>>>,
}

impl UserCounter {
    fn counts(&self) -> MutexGuard<'_, HashMap<i64, usize>> {
        // Every update is a single insert or remove, so a poisoned map is still consistent.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many the user holds.
    pub fn count(&self, user_id: i64) -> usize {
        self.counts().get(&user_id).copied().unwrap_or(0)
    }

    /// Counts one more for the user unless they already hold `max`; the guard gives it
    /// back when dropped.
    pub fn acquire(&self, user_id: i64, max: usize) -> Option<CountGuard> {
        let mut counts = self.counts();
        let count = counts.entry(user_id).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(CountGuard {
            counter: self.clone(),
            user_id,
        })
    }
}

/// Holds one count until dropped.
pub struct CountGuard {
    counter: UserCounter,
    user_id: i64,
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        let mut counts = self.counter.counts();
        if let Some(count) = counts.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

/// Open WebSockets and subscriptions per user.
#[derive(Clone, Default)]
pub struct Presence {
    /// Open WebSocket connections.
    pub sockets: UserCounter,
    /// Open subscriptions over all of a user's sockets.
    pub subscriptions: UserCounter,
}

impl Presence {
    /// True while the user holds an open WebSocket to this instance.
    pub fn is_online(&self, user_id: i64) -> bool {
        self.sockets.count(user_id) > 0
    }
}
