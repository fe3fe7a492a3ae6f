//! Per-subscriber event feeds over the broadcast channel: a chat's events with gapless
//! resume, and a user's inbox across their chats. A subscriber that falls behind the
//! channel's capacity is told to resync; an event is never dropped silently.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::app::App;
use crate::db;
use crate::db::messages::Message;
use crate::domain::access::member_of;
use crate::error::{AppResult, ErrorCode};
use crate::events::{Delivered, Event, EventKind, Scope};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// Messages read from the database per replay batch.
const REPLAY_BATCH: i64 = 100;
/// How often a quiet feed checks that its subscriber may still read what it delivers.
const MEMBERSHIP_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// What a chat feed yields.
#[derive(Clone, Debug)]
pub enum ChatFeedItem {
    /// A message from the backlog replay (`after`), sent before going live.
    Replayed(Message),
    /// A live event.
    Live(Arc<Delivered>),
    /// The subscriber missed events; it must re-query after `last_message_id`.
    Resync { last_message_id: Option<MessageId> },
}

/// A chat's events for one member, optionally resuming after a message.
pub struct ChatFeed {
    app: App,
    user: UserId,
    chat: ChatId,
    live: broadcast::Receiver<Arc<Delivered>>,
    backlog: VecDeque<Message>,
    /// Where the replay continues; `None` once it has caught up.
    replay_after: Option<MessageId>,
    /// Everything up to here came from the replay: live copies are dropped.
    replayed_up_to: MessageId,
    /// Newest message delivered, for the resync cursor.
    last_message_id: Option<MessageId>,
    finished: bool,
    /// Fires when membership is checked again if nothing else checks it first (one timer
    /// per feed, reset after each check, not one per event).
    recheck: Pin<Box<tokio::time::Sleep>>,
}

impl ChatFeed {
    /// Subscribes to the live feed first, then checks membership, so nothing committed
    /// after this call can be missed; with `after`, messages after it are replayed first.
    pub async fn open(
        app: &App,
        user: UserId,
        chat: ChatId,
        after: Option<MessageId>,
    ) -> AppResult<Self> {
        let live = app.broker().subscribe();
        let mut conn = app.db().conn().await?;
        member_of(&mut conn, chat, user).await?;
        Ok(Self {
            app: app.clone(),
            user,
            chat,
            live,
            backlog: VecDeque::new(),
            replay_after: after,
            replayed_up_to: after.unwrap_or(MessageId(0)),
            last_message_id: after,
            finished: false,
            recheck: Box::pin(tokio::time::sleep(MEMBERSHIP_RECHECK)),
        })
    }

    /// The next item; `None` when the feed ended (the member left, the chat was deleted).
    pub async fn next(&mut self) -> Option<AppResult<ChatFeedItem>> {
        if self.finished {
            return None;
        }
        while let Some(after) = self.replay_after {
            if let Some(message) = self.backlog.pop_front() {
                self.last_message_id = Some(message.id);
                return Some(Ok(ChatFeedItem::Replayed(message)));
            }
            let batch = match self.app.db().conn().await {
                Ok(mut conn) => {
                    db::messages::after(&mut conn, self.chat, after, None, REPLAY_BATCH).await
                }
                Err(e) => Err(e),
            };
            match batch {
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e.into()));
                }
                Ok(batch) if batch.is_empty() => self.replay_after = None,
                Ok(batch) => {
                    let newest = batch.last().map_or(after, |m| m.id);
                    self.replay_after = Some(newest);
                    self.replayed_up_to = newest;
                    self.backlog.extend(batch);
                }
            }
        }
        loop {
            let received = tokio::select! {
                received = self.live.recv() => received,
                () = self.recheck.as_mut() => {
                    // A removal whose event this feed never saw (another instance's bridge
                    // dropped it) still ends the feed, at the latest after this interval.
                    if let Some(ended) = self.end_unless_member().await {
                        return Some(ended);
                    }
                    continue;
                }
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => return Some(self.resync().await),
                Err(RecvError::Closed) => return None,
            };
            match self.step(&event) {
                ChatFeedStep::Skip => continue,
                ChatFeedStep::Resync => return Some(self.resync().await),
                ChatFeedStep::Deliver => {}
                ChatFeedStep::DeliverLast => self.finished = true,
            }
            if let EventKind::MessageAdded { message_id, .. } = &event.kind {
                self.last_message_id = self.last_message_id.max(Some(*message_id));
            }
            return Some(Ok(ChatFeedItem::Live(event)));
        }
    }
}

/// What a live event means to a member's chat feed.
enum ChatFeedStep {
    /// Not for this feed.
    Skip,
    /// Deliver it.
    Deliver,
    /// Deliver it, and end the feed (the member left, the chat is gone).
    DeliverLast,
    /// Events were missed.
    Resync,
}

impl ChatFeed {
    /// Who sees which event in a chat feed: the one place that decides it, with an arm
    /// for every kind of event.
    fn step(&self, event: &Event) -> ChatFeedStep {
        if !event.concerns(self.chat) {
            return ChatFeedStep::Skip;
        }
        let me = self.user;
        match &event.kind {
            EventKind::MessageAdded { message_id, .. } => {
                if *message_id <= self.replayed_up_to {
                    ChatFeedStep::Skip // already sent by the replay
                } else {
                    ChatFeedStep::Deliver
                }
            }
            // Members do not hear themselves typing.
            EventKind::Typing { user_id, .. } if *user_id == me => ChatFeedStep::Skip,
            EventKind::MemberLeft { user_id } if *user_id == me => ChatFeedStep::DeliverLast,
            EventKind::ChatDeleted => ChatFeedStep::DeliverLast,
            EventKind::ResyncRequired => ChatFeedStep::Resync,
            EventKind::MessageEdited { .. }
            | EventKind::MessageRetracted { .. }
            | EventKind::MessageDeleted { .. }
            | EventKind::MessageDelta { .. }
            | EventKind::ReadReceipt { .. }
            | EventKind::DeliveryReceipt { .. }
            | EventKind::Typing { .. }
            | EventKind::MemberJoined { .. }
            | EventKind::MemberLeft { .. }
            | EventKind::MemberUpdated { .. }
            | EventKind::ChatUpdated => ChatFeedStep::Deliver,
        }
    }

    /// After missed events: the feed ends if the subscriber is no longer a member (its
    /// `MemberLeft` or the chat's deletion may be among what was missed), else it resyncs.
    async fn resync(&mut self) -> AppResult<ChatFeedItem> {
        if let Some(ended) = self.end_unless_member().await {
            return ended;
        }
        Ok(ChatFeedItem::Resync {
            last_message_id: self.last_message_id,
        })
    }

    /// Ends the feed with the subscriber's own `MemberLeft` (or `ChatDeleted`) when they
    /// are no longer a member; `None` while they are.
    async fn end_unless_member(&mut self) -> Option<AppResult<ChatFeedItem>> {
        let next = tokio::time::Instant::now() + MEMBERSHIP_RECHECK;
        self.recheck.as_mut().reset(next);
        let membership = match self.app.db().conn().await {
            Ok(mut conn) => member_of(&mut conn, self.chat, self.user).await,
            Err(e) => Err(e.into()),
        };
        let kind = match membership {
            Ok(_) => return None,
            Err(e) if e.code() == ErrorCode::NotFound => EventKind::ChatDeleted,
            Err(e) if e.code() == ErrorCode::Forbidden => {
                EventKind::MemberLeft { user_id: self.user }
            }
            Err(e) => {
                self.finished = true;
                return Some(Err(e));
            }
        };
        self.finished = true;
        Some(Ok(ChatFeedItem::Live(Arc::new(Delivered::new(
            Event::in_chat(self.chat, kind),
        )))))
    }
}

/// What an inbox feed yields.
#[derive(Clone, Debug)]
pub enum InboxItem {
    /// A change to one of the user's chats, and the event it comes from.
    Live {
        chat: ChatId,
        change: InboxChange,
        event: Arc<Delivered>,
    },
    /// The subscriber missed events; it must re-query its chat list.
    Resync,
}

/// What changed in the user's chat list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxChange {
    /// A new message in one of the user's chats.
    NewMessage(MessageId),
    /// The user's unread count in a chat may have changed (read elsewhere, a message
    /// retracted or deleted).
    UnreadCountChanged,
    /// The user joined a chat.
    ChatAdded,
    /// The user left a chat, or it was deleted.
    ChatRemoved,
    /// A chat's settings, or the user's membership in it, changed.
    ChatUpdated,
}

/// A user's events across all their chats: what a chat-list screen needs.
pub struct InboxFeed {
    app: App,
    user: UserId,
    live: broadcast::Receiver<Arc<Delivered>>,
    chats: HashSet<ChatId>,
    /// Fires when the chats are read again if nothing else reads them first.
    recheck: Pin<Box<tokio::time::Sleep>>,
}

impl InboxFeed {
    /// Subscribes first, then reads the user's chats.
    pub async fn open(app: &App, user: UserId) -> AppResult<Self> {
        let live = app.broker().subscribe();
        let mut conn = app.db().conn().await?;
        let chats = db::members::chat_ids_of_user(&mut conn, user).await?;
        Ok(Self {
            app: app.clone(),
            user,
            live,
            chats: chats.into_iter().collect(),
            recheck: Box::pin(tokio::time::sleep(MEMBERSHIP_RECHECK)),
        })
    }

    /// The next item of interest to the user.
    pub async fn next(&mut self) -> Option<InboxItem> {
        loop {
            let received = tokio::select! {
                received = self.live.recv() => received,
                () = self.recheck.as_mut() => {
                    // Removals whose events this feed never saw stop it at the latest now.
                    self.reload_chats().await;
                    continue;
                }
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => {
                    // A removal may be among what was missed: read the chats again.
                    self.reload_chats().await;
                    return Some(InboxItem::Resync);
                }
                Err(RecvError::Closed) => return None,
            };
            let chat = match event.scope {
                Scope::Chat(chat) => chat,
                Scope::Everywhere => {
                    self.reload_chats().await;
                    return Some(InboxItem::Resync);
                }
            };
            match self.step(chat, &event.kind) {
                InboxStep::Skip => {}
                InboxStep::Resync => {
                    self.reload_chats().await;
                    return Some(InboxItem::Resync);
                }
                InboxStep::Deliver(change) => {
                    return Some(InboxItem::Live {
                        chat,
                        change,
                        event,
                    });
                }
            }
        }
    }
}

/// What an event in a chat means to a user's inbox feed.
enum InboxStep {
    /// Not for this feed.
    Skip,
    /// A change to the user's chat list.
    Deliver(InboxChange),
    /// Events were missed.
    Resync,
}

impl InboxFeed {
    /// Who sees which event in an inbox feed, and as what: the one place that decides it,
    /// with an arm for every kind of event. Joining and leaving also update the feed's
    /// set of chats.
    fn step(&mut self, chat: ChatId, kind: &EventKind) -> InboxStep {
        let me = self.user;
        // Changes to the user's own membership count whether or not the chat is known.
        match kind {
            EventKind::MemberJoined { user_id } if *user_id == me => {
                self.chats.insert(chat);
                return InboxStep::Deliver(InboxChange::ChatAdded);
            }
            EventKind::MemberLeft { user_id } if *user_id == me => {
                return self.removed(chat);
            }
            EventKind::ChatDeleted => return self.removed(chat),
            _ => {}
        }
        if !self.chats.contains(&chat) {
            return InboxStep::Skip;
        }
        match kind {
            EventKind::MessageAdded { message_id, .. } => {
                InboxStep::Deliver(InboxChange::NewMessage(*message_id))
            }
            EventKind::MessageRetracted { .. } | EventKind::MessageDeleted { .. } => {
                InboxStep::Deliver(InboxChange::UnreadCountChanged)
            }
            EventKind::ReadReceipt { user_id, .. } if *user_id == me => {
                InboxStep::Deliver(InboxChange::UnreadCountChanged)
            }
            EventKind::ChatUpdated => InboxStep::Deliver(InboxChange::ChatUpdated),
            EventKind::MemberUpdated { user_id, .. } if *user_id == me => {
                InboxStep::Deliver(InboxChange::ChatUpdated)
            }
            EventKind::ResyncRequired => InboxStep::Resync,
            // Handled above.
            EventKind::MemberJoined { .. }
            | EventKind::MemberLeft { .. }
            | EventKind::ChatDeleted => InboxStep::Skip,
            // Nothing a chat list shows.
            EventKind::MessageEdited { .. }
            | EventKind::MessageDelta { .. }
            | EventKind::ReadReceipt { .. }
            | EventKind::DeliveryReceipt { .. }
            | EventKind::Typing { .. }
            | EventKind::MemberUpdated { .. } => InboxStep::Skip,
        }
    }

    /// The user is no longer in `chat`: delivered if the feed knew the chat.
    fn removed(&mut self, chat: ChatId) -> InboxStep {
        if self.chats.remove(&chat) {
            InboxStep::Deliver(InboxChange::ChatRemoved)
        } else {
            InboxStep::Skip
        }
    }

    /// Reads the user's chats again. On a database error the feed forgets every chat (it
    /// delivers nothing rather than something the user may no longer see) until the next
    /// successful read.
    async fn reload_chats(&mut self) {
        let next = tokio::time::Instant::now() + MEMBERSHIP_RECHECK;
        self.recheck.as_mut().reset(next);
        let chats = match self.app.db().conn().await {
            Ok(mut conn) => db::members::chat_ids_of_user(&mut conn, self.user).await,
            Err(e) => Err(e),
        };
        self.chats = match chats {
            Ok(chats) => chats.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read a user's chats for their feed");
                HashSet::new()
            }
        };
    }
}
