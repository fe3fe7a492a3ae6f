//! Writing ahead of the feeds: a chat's stage (see `routes`) writes each event to the
//! sockets of the feeds that keep up, itself, instead of waking one task per subscriber.
//! With 10,000 subscribers on a chat, waking, polling and parking each one's task cost
//! about a quarter of the server's CPU per delivery.
//!
//! A feed whose task is idle and has read everything its channel was given *attaches*
//! ([`super::Receiver::attach`]); from the stage's next event on, the stage offers it
//! every event of the chat, in publish order, and the feed writes what it shows at once
//! ([`DirectFeed::offer`]). Whatever needs more than that (an event that ends the feed or
//! resyncs it, a text valid for another viewer only, a socket with no room right now) is
//! *handed back*: the feed's task gets that event and a receiver of everything after it,
//! and goes on as an ordinary feed until it has caught up again. The stage hands back
//! before it sends the chat's next event anywhere, so nothing is missed or doubled.
//!
//! The attached feeds are split in one shard per worker thread, offered in parallel.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::Delivered;
use super::routes::{Receiver, Routes};
use crate::vocabulary::ids::ChatId;

/// A live feed the stage can write to without waking its task.
pub trait DirectFeed: Send + Sync {
    /// Shows `event` to the feed's subscriber if it can, right now, without waiting.
    /// Called by one shard at a time, in publish order.
    fn offer(&self, event: &Arc<Delivered>) -> Offered;
    /// Gives the feed back to its task, with the event the task is to handle first.
    fn hand_back(&self, back: HandBack);
}

/// What became of an offered event.
pub enum Offered {
    /// Written, or not for this feed: offer it the next.
    Kept,
    /// The feed detached itself (it is ending): forget it.
    Gone,
    /// The feed's task must handle this event (see the module comment).
    HandBack,
}

/// A feed given back to its task.
pub struct HandBack {
    /// The first event the task handles.
    pub event: Arc<Delivered>,
    /// The chat's events after `event`.
    pub receiver: Receiver,
}

/// An attached feed, from the first event it is offered.
pub(super) struct Attached {
    pub(super) feed: Weak<dyn DirectFeed>,
    /// Events numbered before it belong to the feed's task (see `routes::Receiver`).
    pub(super) from: u64,
}

/// Offers between yields of a shard: its worker serves other tasks in between, and a
/// task polled once may write to only so many sockets before tokio's budget makes
/// every write wait (which here would hand every feed back).
const OFFERS_PER_YIELD: usize = 32;

type Shard = Arc<Mutex<Vec<Attached>>>;

/// The attached feeds of one chat's stage.
pub(super) struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// One shard per worker thread of the runtime.
    pub(super) fn new() -> Self {
        let count = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .max(1);
        Self {
            shards: (0..count).map(|_| Shard::default()).collect(),
        }
    }

    /// Adds feeds that attached, each to the smallest shard.
    pub(super) fn join(&self, joining: Vec<Attached>) {
        for attached in joining {
            let smallest = self.shards.iter().min_by_key(|shard| lock(shard).len());
            if let Some(shard) = smallest {
                lock(shard).push(attached);
            }
        }
    }

    /// Offers `event` to every attached feed, and returns once all were offered (the
    /// stage sends nothing more of the chat before: see the module comment).
    pub(super) async fn offer(&self, routes: &Arc<Routes>, chat: ChatId, event: &Arc<Delivered>) {
        let mut running = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            if !lock(shard).is_empty() {
                let offering = offer_shard(shard.clone(), routes.clone(), chat, event.clone());
                running.push(tokio::spawn(offering));
            }
        }
        for offering in running {
            // A shard that panicked put its feeds back (see `Returned`).
            let _ = offering.await;
        }
    }
}

fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, Vec<Attached>> {
    // Every update is one push or one swap of the whole list.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Offers `event` to one shard's feeds, keeping those that stay attached (compacted in
/// place: a list of thousands is not allocated again for every event).
async fn offer_shard(shard: Shard, routes: Arc<Routes>, chat: ChatId, event: Arc<Delivered>) {
    let feeds = std::mem::take(&mut *lock(&shard));
    let mut pass = Pass {
        feeds,
        read: 0,
        kept: 0,
        shard,
    };
    let sequence = event.sequence();
    while pass.read < pass.feeds.len() {
        let attached = &pass.feeds[pass.read];
        let keep = match attached.feed.upgrade() {
            // Its subscription ended.
            None => false,
            Some(_) if sequence < attached.from => true,
            Some(feed) => match feed.offer(&event) {
                Offered::Kept => true,
                Offered::Gone => false,
                Offered::HandBack => {
                    // No later event of the chat is sent before this shard is done, so
                    // the receiver misses none.
                    let receiver = routes.chat_after(chat, sequence);
                    feed.hand_back(HandBack {
                        event: event.clone(),
                        receiver,
                    });
                    false
                }
            },
        };
        if keep {
            pass.feeds.swap(pass.kept, pass.read);
            pass.kept += 1;
        }
        pass.read += 1;
        if pass.read.is_multiple_of(OFFERS_PER_YIELD) {
            tokio::task::yield_now().await;
        }
    }
}

/// A shard's feeds while they are offered an event: `..kept` stay, `kept..read` are
/// dropped, `read..` are still to be offered. Put back into the shard when done, and also
/// if the offering panics or is dropped, so that no attached feed is stranded.
struct Pass {
    feeds: Vec<Attached>,
    read: usize,
    kept: usize,
    shard: Shard,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut feeds = std::mem::take(&mut self.feeds);
        feeds.drain(self.kept..self.read);
        let mut shard = lock(&self.shard);
        // Feeds joined meanwhile (none do: the stage joins them between events).
        feeds.append(&mut shard);
        *shard = feeds;
    }
}
