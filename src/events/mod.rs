//! Live events: what changed, published after the change committed, routed to the feeds
//! they concern through a `tokio::sync::broadcast` channel per chat and per inbox (see
//! `routes`), and, with PostgreSQL, to the other processes through LISTEN/NOTIFY (`pg`).
//!
//! Events carry ids only: they must fit in a NOTIFY payload, and subscribers load what they
//! show through the same loaders queries use, so they never see stale copies.

mod delivered;
pub mod pg;
pub mod presence;
mod routes;
pub mod typing;

pub use delivered::{Delivered, RenderAhead, Rendition, RenditionKey};
pub use routes::Receiver;
pub use routes::{DirectFeed, HandBack, Offer, Offered};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::db::messages::Message;
use crate::db::{DbConn, DbError, DbPool};
use crate::metrics::Metrics;
use crate::vocabulary::enums::MemberRole;
use crate::vocabulary::ids::{ChatId, MessageId, SessionId, UserId};

/// Something that happened: where, and what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Where it happened.
    pub scope: Scope,
    /// What happened.
    pub kind: EventKind,
    /// For an event about a reply: the thread it is in (the message it replies to), so
    /// thread feeds pick their events without loading the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<MessageId>,
}

impl Event {
    /// Something that happened in `chat`.
    pub fn in_chat(chat: ChatId, kind: EventKind) -> Self {
        Self {
            scope: Scope::Chat(chat),
            kind,
            thread: None,
        }
    }

    /// The same event, about a message in the thread of `parent` (when it is a reply).
    pub fn in_thread(mut self, parent: Option<MessageId>) -> Self {
        self.thread = parent;
        self
    }

    /// Every subscriber of this process may have missed events (the cross-instance feed
    /// dropped) and must resync.
    pub fn resync_everywhere() -> Self {
        Self {
            scope: Scope::Everywhere,
            kind: EventKind::ResyncRequired,
            thread: None,
        }
    }

    /// Something that happened to a user's account, in none of their chats.
    pub fn about_user(user: UserId, kind: EventKind) -> Self {
        Self {
            scope: Scope::User(user),
            kind,
            thread: None,
        }
    }

    /// True when the event concerns `chat`.
    pub fn concerns(&self, chat: ChatId) -> bool {
        match self.scope {
            Scope::Chat(own) => own == chat,
            Scope::Everywhere => true,
            Scope::User(_) => false,
        }
    }
}

/// Where an event happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// In one chat.
    Chat(ChatId),
    /// In every chat at once: only `ResyncRequired`, when this process may have missed
    /// other instances' events.
    Everywhere,
    /// To one user's account, in none of their chats: only `TokensRevoked`.
    User(UserId),
}

/// The kinds of events (mirrors the GraphQL `ChatEvent` union).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A message was sent.
    MessageAdded {
        message_id: MessageId,
        sender_id: Option<UserId>,
    },
    /// A message's content was edited, a streamed reply finished, or the thumbnail of an
    /// image it carries was made.
    MessageEdited { message_id: MessageId },
    /// A message was retracted by its sender.
    MessageRetracted { message_id: MessageId },
    /// A message was deleted by a moderator.
    MessageDeleted { message_id: MessageId },
    /// Content was appended to a streaming message.
    MessageDelta {
        message_id: MessageId,
        delta: String,
        /// Character offset of the delta in the full content, for ordering checks.
        offset: i64,
    },
    /// A member added or removed a reaction.
    ReactionChanged {
        message_id: MessageId,
        user_id: UserId,
        /// The emoji, fully qualified.
        emoji: String,
        /// True when added, false when removed.
        added: bool,
    },
    /// A manager pinned a message.
    MessagePinned { message_id: MessageId, by: UserId },
    /// A message was unpinned (by a manager, or because its sender retracted it).
    MessageUnpinned { message_id: MessageId, by: UserId },
    /// A member stopped a streaming reply: it ended `INTERRUPTED`.
    ReplyInterrupted {
        message_id: MessageId,
        /// The reply's sender (the bot that should stop generating).
        sender_id: Option<UserId>,
        /// The member who interrupted it.
        by: UserId,
    },
    /// A session of the chat began (by the first message after a quiet spell, or by
    /// `startSession`).
    SessionStarted { session_id: SessionId },
    /// A session of the chat ended.
    SessionEnded { session_id: SessionId },
    /// A member's read watermark moved.
    ReadReceipt {
        user_id: UserId,
        message_id: MessageId,
    },
    /// A member's delivery watermark moved.
    DeliveryReceipt {
        user_id: UserId,
        message_id: MessageId,
    },
    /// A member started or stopped typing.
    Typing { user_id: UserId, typing: bool },
    /// A user joined (or was added to) the chat.
    MemberJoined { user_id: UserId },
    /// A user left (or was removed from) the chat.
    MemberLeft { user_id: UserId },
    /// A member's role changed.
    MemberUpdated {
        user_id: UserId,
        /// The role, as of the change.
        role: MemberRole,
    },
    /// The chat's settings changed, or its messages were cleared.
    ChatUpdated,
    /// The chat was deleted.
    ChatDeleted,
    /// Events may have been missed: subscribers must resync.
    ResyncRequired,
    /// The user was deleted or their tokens revoked: their sockets close (no feed shows
    /// it; the chats they were in get `MemberLeft` for a deletion).
    TokensRevoked,
}

impl EventKind {
    /// The kind's name in metrics (`chatql_events_published_total{kind}`).
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::MessageAdded { .. } => "message_added",
            EventKind::MessageEdited { .. } => "message_edited",
            EventKind::MessageRetracted { .. } => "message_retracted",
            EventKind::MessageDeleted { .. } => "message_deleted",
            EventKind::MessageDelta { .. } => "message_delta",
            EventKind::ReplyInterrupted { .. } => "reply_interrupted",
            EventKind::ReactionChanged { .. } => "reaction_changed",
            EventKind::MessagePinned { .. } => "message_pinned",
            EventKind::MessageUnpinned { .. } => "message_unpinned",
            EventKind::SessionStarted { .. } => "session_started",
            EventKind::SessionEnded { .. } => "session_ended",
            EventKind::ReadReceipt { .. } => "read_receipt",
            EventKind::DeliveryReceipt { .. } => "delivery_receipt",
            EventKind::Typing { .. } => "typing",
            EventKind::MemberJoined { .. } => "member_joined",
            EventKind::MemberLeft { .. } => "member_left",
            EventKind::MemberUpdated { .. } => "member_updated",
            EventKind::ChatUpdated => "chat_updated",
            EventKind::ChatDeleted => "chat_deleted",
            EventKind::ResyncRequired => "resync_required",
            EventKind::TokensRevoked => "tokens_revoked",
        }
    }
}

/// A transaction whose events are published when, and only when, it commits: the only
/// way to publish a stored change (see [`Broker::transaction`]). It dereferences to its
/// connection, so database functions take it where they take a `DbConn`.
pub struct Tx<'c> {
    conn: &'c mut DbConn,
    /// What to publish on commit, each with the message it names when the emitter gave
    /// it (see [`Tx::emit_with_message`]).
    events: Vec<Delivered>,
}

impl Tx<'_> {
    /// Publishes `event` once the transaction has committed (never if it fails).
    pub fn emit(&mut self, event: Event) {
        self.events.push(Delivered::new(event));
    }

    /// Publishes `event`, which names `message` as this transaction stored it, once the
    /// transaction has committed: this instance's subscribers are shown `message` without
    /// reading it back (one query less per message sent, and the first delivery comes
    /// sooner). Other instances read it, from the committed row.
    pub fn emit_with_message(&mut self, event: Event, message: Message) {
        self.events.push(Delivered::with_message(event, message));
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = DbConn;

    fn deref(&self) -> &DbConn {
        self.conn
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut DbConn {
        self.conn
    }
}

/// The other instances, as the broker sees them (PostgreSQL only; see `pg::Bridge`).
pub trait Remote: Send + Sync {
    /// The NOTIFY payloads of a transaction's events, in order.
    fn payloads(&self, events: &[Delivered]) -> Vec<String>;
    /// Queues a typing change for the other instances (never stored, so never in a
    /// transaction): bounded, and coalesced per user and chat.
    fn queue_typing(&self, chat: ChatId, user: UserId, typing: bool);
}

/// Routes events to the subscribers of this process they concern and, through the
/// PostgreSQL bridge when there is one, to every other instance.
#[derive(Clone)]
pub struct Broker {
    routes: Arc<routes::Routes>,
    /// The other instances (PostgreSQL only).
    remote: Option<Arc<dyn Remote>>,
    metrics: Metrics,
}

impl Broker {
    /// A broker whose subscribers may fall `capacity` events of their chat (or inbox)
    /// behind before they are told to resync; it counts what it publishes in `metrics`.
    pub fn new(capacity: usize, metrics: Metrics) -> Self {
        Self {
            routes: routes::Routes::new(capacity, metrics.clone()),
            remote: None,
            metrics,
        }
    }

    /// Also sends every event to the other instances through `remote`.
    pub fn with_remote(mut self, remote: Arc<dyn Remote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Delivers an event to this process's subscribers only (used for events that
    /// arrived from other instances).
    pub fn publish_local(&self, event: Event) {
        self.publish_delivered(Delivered::new(event));
    }

    fn publish_delivered(&self, event: Delivered) {
        self.metrics.event_published(event.kind.label());
        self.routes.publish(Arc::new(event));
    }

    /// Runs `body` in one transaction ([`DbPool::transaction`]); the events it emits go
    /// to every subscriber of every instance once it committed, in the order emitted, and
    /// nowhere if it fails. Other instances get them by a NOTIFY sent inside the
    /// transaction, which PostgreSQL delivers with the commit: a crash right after the
    /// commit cannot lose them.
    pub async fn transaction<T, E>(
        &self,
        db: &DbPool,
        body: impl AsyncFnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let (value, events) = db
            .transaction(async |conn| {
                let mut tx = Tx {
                    conn,
                    events: Vec::new(),
                };
                let value = body(&mut tx).await?;
                if let Some(remote) = &self.remote {
                    crate::db::notify::notify(tx.conn, &remote.payloads(&tx.events)).await?;
                }
                Ok::<_, E>((value, tx.events))
            })
            .await?;
        for event in events {
            self.publish_delivered(event);
        }
        Ok(value)
    }

    /// Tells every subscriber of every instance that `user` is (or stopped) typing in
    /// `chat`. Typing is never stored, so it is the one event published outside a
    /// transaction.
    pub fn publish_typing(&self, chat: ChatId, user: UserId, typing: bool) {
        if let Some(remote) = &self.remote {
            remote.queue_typing(chat, user, typing);
        }
        self.publish_local(Event::in_chat(
            chat,
            EventKind::Typing {
                user_id: user,
                typing,
            },
        ));
    }

    /// A receiver of `chat`'s events published from now on (and of `ResyncRequired`
    /// everywhere).
    pub fn subscribe_chat(&self, chat: ChatId) -> Receiver {
        self.routes.chat(chat)
    }

    /// Has `renderer` render `chat`'s events for the operation `key` names before the
    /// chat's feeds are woken, while it lives and a feed of the chat is open (see
    /// `routes`): its subscribers then find the text made, and the first of them no longer
    /// waits for it behind all the others. Returns the key the renderings are kept
    /// under: equal to `key`, and the same allocation for every subscriber of the
    /// operation, so that looking a rendering up does not compare whole documents.
    pub fn render_ahead(
        &self,
        chat: ChatId,
        key: RenditionKey,
        renderer: std::sync::Weak<dyn RenderAhead>,
    ) -> RenditionKey {
        self.routes.render_ahead(chat, key, renderer)
    }

    /// A receiver of the events `user`'s inbox needs, published from now on: every chat's
    /// until it names the user's chats with [`Receiver::follow`], then those chats' and
    /// the user's joins and removals.
    pub fn subscribe_inbox(&self, user: UserId) -> Receiver {
        self.routes.user(user)
    }

    /// A receiver of account events (`Scope::User`) and `ResyncRequired` everywhere.
    pub fn subscribe_accounts(&self) -> Receiver {
        self.routes.accounts()
    }

    /// Number of live receivers (for metrics and tests).
    pub fn receiver_count(&self) -> usize {
        self.routes.receiver_count()
    }

    /// Number of open channels: chats with feeds and users with inboxes (for tests).
    pub fn channel_count(&self) -> usize {
        self.routes.channel_count()
    }
}
