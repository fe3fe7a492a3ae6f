//! Live events: what changed, published after the change committed, fanned out to
//! subscribers through one `tokio::sync::broadcast` channel per process (and, with
//! PostgreSQL, to the other processes through LISTEN/NOTIFY, see `pg`).
//!
//! Events carry ids only: they must fit in a NOTIFY payload, and subscribers load what they
//! show through the same loaders queries use, so they never see stale copies.

pub mod presence;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Something that happened in a chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The chat it happened in.
    pub chat_id: i64,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of events (mirrors the GraphQL `ChatEvent` union).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A message was sent.
    MessageAdded {
        message_id: i64,
        sender_id: Option<i64>,
    },
    /// A message's content was edited.
    MessageEdited { message_id: i64 },
    /// A message was retracted by its sender.
    MessageRetracted { message_id: i64 },
    /// A message was deleted by a moderator.
    MessageDeleted { message_id: i64 },
    /// Content was appended to a streaming message.
    MessageDelta {
        message_id: i64,
        delta: String,
        /// Character offset of the delta in the full content, for ordering checks.
        offset: i64,
    },
    /// A streaming message finished.
    MessageFinished { message_id: i64 },
    /// A member's read watermark moved.
    ReadReceipt { user_id: i64, message_id: i64 },
    /// A member's delivery watermark moved.
    DeliveryReceipt { user_id: i64, message_id: i64 },
    /// A member started or stopped typing.
    Typing { user_id: i64, typing: bool },
    /// A user joined (or was added to) the chat.
    MemberJoined { user_id: i64 },
    /// A user left (or was removed from) the chat.
    MemberLeft { user_id: i64 },
    /// A member's role or own settings changed.
    MemberUpdated { user_id: i64 },
    /// The chat's settings changed, or its messages were cleared.
    ChatUpdated,
    /// The chat was deleted; `member_ids` were its members.
    ChatDeleted { member_ids: Vec<i64> },
    /// Events for this chat may have been missed (e.g. the cross-instance feed dropped);
    /// subscribers must resync. `chat_id` 0 means every chat.
    ResyncRequired,
}

/// Fans events out to every subscriber of this process.
#[derive(Clone)]
pub struct Broker {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Broker {
    /// A broker whose subscribers may fall `capacity` events behind before they are told
    /// to resync.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Delivers committed events to this process's subscribers.
    pub fn publish_local(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            // An error only means nobody is subscribed right now.
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// Delivers committed events to every subscriber of every instance.
    pub fn publish(&self, events: Vec<Event>) {
        self.publish_local(events);
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Number of live receivers (for metrics and tests).
    pub fn receiver_count(&self) -> usize {
        self.sender.receiver_count()
    }
}
