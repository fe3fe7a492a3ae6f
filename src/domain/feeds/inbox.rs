//! A user's events across all their chats: what a chat-list screen needs. A subscriber
//! that falls behind the channel's capacity is told to resync; an event is never dropped
//! silently.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use crate::app::App;
use crate::db;
use crate::domain::access::{MEMBERSHIP_RECHECK, first_membership_recheck};
use crate::error::AppResult;
use crate::events::{Delivered, EventKind, Receiver, Scope};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

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
    /// A member stopped a streaming reply the user (a bot) sends: stop generating it.
    ReplyInterrupted { message: MessageId, by: UserId },
    /// A chat's settings, or the user's membership in it, changed.
    ChatUpdated,
}

/// A user's events across all their chats: what a chat-list screen needs.
pub struct InboxFeed {
    app: App,
    user: UserId,
    live: Receiver,
    chats: HashSet<ChatId>,
    /// Fires when the chats are read again if nothing else reads them first.
    recheck: Pin<Box<tokio::time::Sleep>>,
}

impl InboxFeed {
    /// Subscribes first, then reads the user's chats.
    pub async fn open(app: &App, user: UserId) -> AppResult<Self> {
        let mut live = app.broker().subscribe_inbox(user);
        let mut conn = app.db().conn().await?;
        let chats = db::members::chat_ids_of_user(&mut conn, user).await?;
        live.follow(chats.iter().copied());
        Ok(Self {
            app: app.clone(),
            user,
            live,
            chats: chats.into_iter().collect(),
            recheck: Box::pin(tokio::time::sleep(first_membership_recheck())),
        })
    }

    /// The next item of interest to the user.
    pub async fn next(&mut self) -> Option<InboxItem> {
        loop {
            let received = tokio::select! {
                received = self.live.recv() => received,
                () = self.recheck.as_mut() => {
                    // Removals whose events this feed never saw stop it at the latest now.
                    Box::pin(self.reload_chats()).await;
                    continue;
                }
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => {
                    // A removal may be among what was missed: read the chats again.
                    Box::pin(self.reload_chats()).await;
                    return Some(self.resync());
                }
                Err(RecvError::Closed) => return None,
            };
            let chat = match event.scope {
                Scope::Chat(chat) => chat,
                Scope::Everywhere => {
                    Box::pin(self.reload_chats()).await;
                    return Some(self.resync());
                }
                // A revocation: the user's socket closes on its own.
                Scope::User(_) => continue,
            };
            match self.step(chat, &event.kind) {
                InboxStep::Skip => {}
                InboxStep::Resync => {
                    Box::pin(self.reload_chats()).await;
                    return Some(self.resync());
                }
                InboxStep::Deliver(change) => {
                    self.app.metrics().event_delivered();
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
            EventKind::ReplyInterrupted {
                message_id,
                sender_id: Some(sender),
                by,
            } if *sender == me => InboxStep::Deliver(InboxChange::ReplyInterrupted {
                message: *message_id,
                by: *by,
            }),
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
            | EventKind::ReactionChanged { .. }
            | EventKind::MessagePinned { .. }
            | EventKind::MessageUnpinned { .. }
            // Only the interrupted reply's sender hears of it (above).
            | EventKind::ReplyInterrupted { .. }
            | EventKind::SessionStarted { .. }
            | EventKind::SessionEnded { .. }
            | EventKind::ReadReceipt { .. }
            | EventKind::DeliveryReceipt { .. }
            | EventKind::Typing { .. }
            | EventKind::MemberUpdated { .. } => InboxStep::Skip,
            // Never in a chat's scope (handled above).
            EventKind::TokensRevoked => InboxStep::Skip,
        }
    }

    /// Tells the subscriber to resync (counted in the metrics).
    fn resync(&self) -> InboxItem {
        self.app.metrics().resync_sent();
        InboxItem::Resync
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
            Ok(chats) => {
                // Chats joined through events this feed missed start reaching it now.
                self.live.follow(chats.iter().copied());
                chats.into_iter().collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read a user's chats for their feed");
                HashSet::new()
            }
        };
    }
}
