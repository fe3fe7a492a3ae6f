//! Who is online: a count of open WebSocket connections per user in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Open-connection counts per user.
#[derive(Clone, Default)]
pub struct Presence {
    sockets: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Presence {
    fn sockets(&self) -> MutexGuard<'_, HashMap<i64, usize>> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True while the user has at least one open connection.
    pub fn is_online(&self, user_id: i64) -> bool {
        self.sockets().get(&user_id).is_some_and(|n| *n > 0)
    }

    /// Number of connections the user holds.
    pub fn connections(&self, user_id: i64) -> usize {
        self.sockets().get(&user_id).copied().unwrap_or(0)
    }

    /// Registers a connection unless the user already holds `max`; the guard unregisters
    /// it when dropped.
    pub fn connect(&self, user_id: i64, max: usize) -> Option<PresenceGuard> {
        let mut sockets = self.sockets();
        let count = sockets.entry(user_id).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PresenceGuard {
            presence: self.clone(),
            user_id,
        })
    }
}

/// Keeps a user counted as online until dropped.
pub struct PresenceGuard {
    presence: Presence,
    user_id: i64,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let mut sockets = self.presence.sockets();
        if let Some(count) = sockets.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                sockets.remove(&self.user_id);
            }
        }
    }
}
