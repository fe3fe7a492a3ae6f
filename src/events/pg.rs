//! The PostgreSQL bridge between instances: every event published here is NOTIFYed on
//! one channel, and every instance LISTENs on it and hands on what other instances sent,
//! so a subscriber on instance B sees what was sent through instance A.
//!
//! A mutation's events are NOTIFYed inside its transaction, so PostgreSQL delivers them
//! with the commit and never without it; typing changes, never stored, go out through a
//! bounded, coalescing queue. Payloads carry ids only (they must stay under PostgreSQL's
//! 8,000-byte limit). When the listening connection drops, it reconnects with backoff and
//! then tells every local subscriber to resync, since events sent meanwhile were missed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Broker, Delivered, Event, EventKind, Remote};
use crate::db::{self, DbPool};
use crate::metrics::Metrics;
use crate::vocabulary::ids::{ChatId, UserId};

/// PostgreSQL rejects NOTIFY payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// Most typing changes sent in one NOTIFY statement.
const MAX_BATCH: usize = 256;

/// An event on the wire, with the instance that sent it.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: u64,
    /// This instance's count of events sent. PostgreSQL folds identical payloads sent in
    /// one transaction into one; the count keeps two equal events (typing on, off, on)
    /// apart.
    #[serde(default)]
    seq: u64,
    event: Event,
}

/// Most distinct (chat, user) typing states queued for the other instances; past it a
/// chat's typing changes are replaced by one `ResyncRequired` for it.
const MAX_QUEUED_TYPING: usize = 10_000;

/// This instance's side of the bridge: how its events go on the wire (origin and count),
/// and the queue of typing changes, which are never stored and so go out on their own.
struct Bridge {
    origin: u64,
    seq: AtomicU64,
    typing: Mutex<TypingQueue>,
    wake: Notify,
}

/// Typing changes waiting for their NOTIFY: the newest state per (chat, user), in the order
/// first queued. A burst of keystrokes is one notification, and the queue is bounded by
/// the number of people typing, not by how fast they type; chat messages never wait
/// behind it (they are NOTIFYed inside their own transactions).
#[derive(Default)]
struct TypingQueue {
    order: VecDeque<(ChatId, UserId)>,
    latest: HashMap<(ChatId, UserId), bool>,
    /// Chats whose typing changes did not fit: they get a `ResyncRequired` instead.
    overflowed: BTreeSet<ChatId>,
}

impl Bridge {
    fn encode_next(&self, event: &Event) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        encode(self.origin, seq, event)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, TypingQueue> {
        self.typing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what is queued, as payloads in order.
    fn drain_typing(&self) -> Vec<String> {
        let (changes, overflowed) = {
            let mut queue = self.queue();
            let TypingQueue {
                order,
                latest,
                overflowed,
            } = &mut *queue;
            let changes: Vec<_> = order
                .drain(..)
                .filter_map(|key| latest.remove(&key).map(|typing| (key, typing)))
                .collect();
            (changes, std::mem::take(overflowed))
        };
        let resyncs = overflowed
            .into_iter()
            .map(|chat| Event::in_chat(chat, EventKind::ResyncRequired));
        let typing = changes.into_iter().map(|((chat, user_id), typing)| {
            Event::in_chat(chat, EventKind::Typing { user_id, typing })
        });
        resyncs
            .chain(typing)
            .map(|event| self.encode_next(&event))
            .collect()
    }
}

impl Remote for Bridge {
    fn payloads(&self, events: &[Delivered]) -> Vec<String> {
        events.iter().map(|event| self.encode_next(event)).collect()
    }

    fn queue_typing(&self, chat: ChatId, user: UserId, typing: bool) {
        {
            let mut queue = self.queue();
            let key = (chat, user);
            if let Some(state) = queue.latest.get_mut(&key) {
                *state = typing;
            } else if queue.latest.len() < MAX_QUEUED_TYPING {
                queue.latest.insert(key, typing);
                queue.order.push_back(key);
            } else {
                queue.overflowed.insert(chat);
            }
        }
        self.wake.notify_one();
    }
}

/// Builds a broker wired to PostgreSQL: committed events are NOTIFYed inside their
/// transactions, typing changes by a task of their own, and notifications from other
/// instances are delivered locally. Both tasks stop when `shutdown` is cancelled.
pub fn bridged_broker(
    capacity: usize,
    metrics: Metrics,
    db: DbPool,
    url: String,
    shutdown: CancellationToken,
) -> Broker {
    let mut bytes = [0u8; 8];
    // A collision between two instances' random origins is negligible; falling back to the
    // process id keeps start-up infallible.
    let origin = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::from(std::process::id()),
    };
    let bridge = Arc::new(Bridge {
        origin,
        seq: AtomicU64::new(0),
        typing: Mutex::new(TypingQueue::default()),
        wake: Notify::new(),
    });
    let broker = Broker::new(capacity, metrics).with_remote(bridge.clone());
    tokio::spawn(typing_loop(db, bridge, shutdown.clone()));
    tokio::spawn(listen_loop(broker.clone(), url, origin, shutdown));
    broker
}

/// Sends the queued typing changes as NOTIFYs: whatever is queued when the previous
/// statement returns goes out together in one statement.
async fn typing_loop(db: DbPool, bridge: Arc<Bridge>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = bridge.wake.notified() => {}
            () = shutdown.cancelled() => return,
        }
        let payloads = bridge.drain_typing();
        for batch in payloads.chunks(MAX_BATCH) {
            let mut backoff = Duration::from_millis(50);
            while let Err(e) = db.notify(batch).await {
                tracing::warn!(error = %e, "NOTIFY of typing changes failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The NOTIFY payload of `event`: a `ResyncRequired` for its chat when the event is too
/// big to carry, so other instances' subscribers resync instead of losing it silently.
fn encode(origin: u64, seq: u64, event: &Event) -> String {
    let payload = envelope(origin, seq, event.clone());
    if payload.len() <= MAX_PAYLOAD {
        return payload;
    }
    tracing::warn!(
        bytes = payload.len(),
        "event too large for NOTIFY; sending a resync"
    );
    envelope(
        origin,
        seq,
        Event {
            scope: event.scope,
            kind: EventKind::ResyncRequired,
            thread: None,
        },
    )
}

fn envelope(origin: u64, seq: u64, event: Event) -> String {
    serde_json::to_string(&Envelope { origin, seq, event }).unwrap_or_default()
}

/// LISTENs on a dedicated connection and delivers other instances' events locally;
/// reconnects after a drop and then asks every subscriber to resync.
async fn listen_loop(broker: Broker, url: String, origin: u64, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut had_connection = false;
    loop {
        match db::listen(&url).await {
            Ok(mut conn) => {
                backoff = Duration::from_millis(100);
                if had_connection {
                    tracing::info!("event listener reconnected; asking subscribers to resync");
                    broker.publish_local(Event::resync_everywhere());
                }
                had_connection = true;
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                loop {
                    let notification = tokio::select! {
                        n = notifications.next() => n,
                        () = shutdown.cancelled() => return,
                    };
                    match notification {
                        Some(Ok(notification)) => deliver(&broker, origin, &notification.payload),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "event listener connection failed");
                            break;
                        }
                        None => {
                            tracing::warn!("event listener connection closed");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the event listener"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn deliver(broker: &Broker, origin: u64, payload: &str) {
    match serde_json::from_str::<Envelope>(payload) {
        // Our own events were delivered locally when published.
        Ok(envelope) if envelope.origin == origin => {}
        Ok(envelope) => broker.publish_local(envelope.event),
        Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notification"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> Bridge {
        Bridge {
            origin: 7,
            seq: AtomicU64::new(0),
            typing: Mutex::new(TypingQueue::default()),
            wake: Notify::new(),
        }
    }

    fn decoded(payloads: &[String]) -> Vec<Event> {
        payloads
            .iter()
            .filter_map(|p| serde_json::from_str::<Envelope>(p).ok())
            .map(|envelope| envelope.event)
            .collect()
    }

    #[test]
    fn a_typing_storm_is_a_few_notifications_and_the_queue_stays_bounded() {
        let bridge = bridge();
        // 30,000 changes from three people in one chat: their newest states, in order.
        for n in 0..30_000 {
            bridge.queue_typing(ChatId(1), UserId(n % 3), n % 2 == 0);
        }
        let events = decoded(&bridge.drain_typing());
        assert_eq!(events.len(), 3);
        assert!(
            events
                .iter()
                .all(|e| e.scope == super::super::Scope::Chat(ChatId(1)))
        );
        assert!(bridge.drain_typing().is_empty(), "drained");

        // More distinct typers than the queue holds: the rest of that chat becomes one
        // resync, never an unbounded queue.
        for user in 0..(MAX_QUEUED_TYPING as i64 + 500) {
            bridge.queue_typing(ChatId(2), UserId(user), true);
        }
        let events = decoded(&bridge.drain_typing());
        assert_eq!(events.len(), MAX_QUEUED_TYPING + 1);
        assert_eq!(
            events[0],
            Event::in_chat(ChatId(2), EventKind::ResyncRequired)
        );
    }
}
