//! Live events: what changed, published after the change committed, fanned out to
//! subscribers through one `tokio::sync::broadcast` channel per process (and, with
//! PostgreSQL, to the other processes through LISTEN/NOTIFY, see `pg`).
//!
//! Events carry ids only: they must fit in a NOTIFY payload, and subscribers load what they
//! show through the same loaders queries use, so they never see stale copies.

pub mod pg;
pub mod presence;
pub mod typing;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::db::messages::Message;
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
    MemberUpdated {
        user_id: i64,
        /// The new role (`MemberRole`'s stored form), as of the change.
        role: String,
    },
    /// The chat's settings changed, or its messages were cleared.
    ChatUpdated,
    /// The chat was deleted.
    ChatDeleted,
    /// Events may have been missed (the cross-instance feed dropped): every subscriber
    /// must resync. Sent with `chat_id` 0.
    ResyncRequired,
}

/// An event as subscribers receive it: the event plus the message it names, loaded once
/// by whichever subscriber needs it first and shared by all the others (one query per
/// event, not one per subscriber). It dereferences to the [`Event`].
#[derive(Debug)]
pub struct Delivered {
    event: Event,
    message: tokio::sync::OnceCell<Option<Message>>,
}

impl Delivered {
    /// An event about to be delivered, its message not loaded yet.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            message: tokio::sync::OnceCell::new(),
        }
    }

    /// The event's message as loaded by `load` the first time any subscriber asked.
    pub async fn message<E, F>(&self, load: impl FnOnce() -> F) -> Result<Option<Message>, E>
    where
        F: Future<Output = Result<Option<Message>, E>>,
    {
        self.message.get_or_try_init(load).await.cloned()
    }
}

impl std::ops::Deref for Delivered {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Fans events out to every subscriber of this process and, through the PostgreSQL
/// bridge when there is one, to every other instance.
#[derive(Clone)]
pub struct Broker {
    sender: broadcast::Sender<Arc<Delivered>>,
    /// Forwards locally published events to the NOTIFY task (PostgreSQL only).
    remote: Option<tokio::sync::mpsc::UnboundedSender<Arc<Delivered>>>,
}

impl Broker {
    /// A broker whose subscribers may fall `capacity` events behind before they are told
    /// to resync.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            remote: None,
        }
    }

    /// Also forwards every published event to `remote` (the NOTIFY task).
    pub fn with_remote(
        mut self,
        remote: tokio::sync::mpsc::UnboundedSender<Arc<Delivered>>,
    ) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Delivers an event to this process's subscribers only (used for events that
    /// arrived from other instances).
    pub fn publish_local(&self, event: Event) {
        self.send_local(Arc::new(Delivered::new(event)));
    }

    fn send_local(&self, delivered: Arc<Delivered>) {
        // An error only means nobody is subscribed right now.
        let _ = self.sender.send(delivered);
    }

    /// Delivers committed events to every subscriber of every instance. Call only after
    /// the transaction that produced them committed.
    pub fn publish(&self, events: Vec<Event>) {
        for event in events {
            let delivered = Arc::new(Delivered::new(event));
            if let Some(remote) = &self.remote {
                // The bridge task only stops at shutdown; nothing to do then.
                let _ = remote.send(delivered.clone());
            }
            self.send_local(delivered);
        }
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.sender.subscribe()
    }

    /// Number of live receivers (for metrics and tests).
    pub fn receiver_count(&self) -> usize {
        self.sender.receiver_count()
    }
}
