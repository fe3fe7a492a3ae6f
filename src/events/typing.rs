//! Typing indicators: not stored; a `typing: true` expires on its own unless refreshed,
//! so a client that vanishes mid-sentence does not leave others watching "typing…".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Broker;
use crate::vocabulary::ids::{ChatId, UserId};

/// The latest `typing: true` per (chat, user), by generation.
#[derive(Clone, Default)]
pub struct TypingTimers {
    generations: Arc<Mutex<HashMap<(ChatId, UserId), u64>>>,
}

impl TypingTimers {
    fn generations(&self) -> MutexGuard<'_, HashMap<(ChatId, UserId), u64>> {
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes a typing change; a `true` is followed by an automatic `false` after `ttl`
    /// unless refreshed or cleared first.
    pub fn set(&self, broker: &Broker, ttl: Duration, chat: ChatId, user: UserId, typing: bool) {
        let key = (chat, user);
        let generation = {
            let mut generations = self.generations();
            if typing {
                let next = generations.get(&key).map_or(1, |g| g.wrapping_add(1));
                generations.insert(key, next);
                Some(next)
            } else {
                generations.remove(&key);
                None
            }
        };
        broker.publish_typing(chat, user, typing);
        if let Some(generation) = generation {
            let timers = self.clone();
            let broker = broker.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ttl).await;
                let expired = {
                    let mut generations = timers.generations();
                    let current = generations.get(&key) == Some(&generation);
                    if current {
                        generations.remove(&key);
                    }
                    current
                };
                if expired {
                    broker.publish_typing(chat, user, false);
                }
            });
        }
    }
}
