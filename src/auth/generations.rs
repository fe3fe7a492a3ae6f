//! Which tokens are still good: a token names its user and the user's token generation at
//! issue; deleting the user or revoking their tokens (which bumps the generation) ends
//! every token issued before. The current generations are cached in memory, so a request
//! with a known user costs no statement; a committed revocation (from this instance or,
//! over PostgreSQL, another) evicts the user's entry and wakes their open sockets, which
//! check again and close.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use super::Caller;
use crate::db::{self, DbPool};
use crate::error::{AppError, AppResult};
use crate::vocabulary::ids::UserId;

/// Most users whose generation is cached; past it the cache starts over (an entry is a
/// few bytes, and a miss costs one indexed read).
const MAX_CACHED: usize = 100_000;

/// The current token generation per user, and a wake-up per user with open sockets.
#[derive(Default)]
pub struct TokenGenerations {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None`: no such user (deleted, or never existed).
    current: HashMap<UserId, Option<i64>>,
    /// Bumped by every revocation, so a read from the database that raced with one is
    /// not cached (it may predate it).
    epoch: u64,
    /// Per user with open sockets: a counter bumped when their tokens may have changed.
    watchers: HashMap<UserId, watch::Sender<u64>>,
    /// How many watchers were left after the last pruning.
    watchers_kept: usize,
}

impl TokenGenerations {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `UNAUTHENTICATED` unless a user caller's user exists and the token's generation is
    /// theirs; other callers pass. One indexed read when the user is not cached.
    pub async fn check(&self, db: &DbPool, caller: &Caller) -> AppResult<()> {
        let Caller::User { id, generation, .. } = caller else {
            return Ok(());
        };
        let (cached, epoch) = {
            let state = self.state();
            (state.current.get(id).copied(), state.epoch)
        };
        let current = match cached {
            Some(current) => current,
            None => {
                let mut conn = db.conn().await?;
                let current = db::users::token_generation(&mut conn, *id).await?;
                let mut state = self.state();
                if state.epoch == epoch {
                    if state.current.len() >= MAX_CACHED {
                        state.current.clear();
                    }
                    state.current.insert(*id, current);
                }
                current
            }
        };
        match current {
            Some(current) if current == *generation => Ok(()),
            Some(_) => Err(AppError::Unauthenticated("token revoked".into())),
            None => Err(AppError::Unauthenticated(
                "the token's user does not exist".into(),
            )),
        }
    }

    /// The user was deleted or their tokens revoked (a committed change): forget what is
    /// cached and wake their sockets.
    pub fn revoked(&self, user: UserId) {
        let mut state = self.state();
        state.epoch += 1;
        state.current.remove(&user);
        if let Some(watcher) = state.watchers.get(&user) {
            watcher.send_modify(|n| *n += 1);
        }
    }

    /// Revocations may have been missed (the cross-instance feed dropped or lagged):
    /// forget everything and wake every socket to check again.
    pub fn forget_all(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.current.clear();
        for watcher in state.watchers.values() {
            watcher.send_modify(|n| *n += 1);
        }
    }

    /// Changes whenever `user`'s tokens may have been revoked: a socket waits on it and
    /// then checks its token again.
    pub fn watch(&self, user: UserId) -> watch::Receiver<u64> {
        let mut state = self.state();
        // Drop the wake-ups of users whose sockets are all gone whenever the map has
        // doubled since the last time (amortised: O(1) per call).
        if state.watchers.len() >= (2 * state.watchers_kept).max(64) {
            state.watchers.retain(|_, w| w.receiver_count() > 0);
            state.watchers_kept = state.watchers.len();
        }
        state
            .watchers
            .entry(user)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}
