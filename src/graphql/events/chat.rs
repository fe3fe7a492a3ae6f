//! The events of one chat (`chatEvents`): a type per kind and the `ChatEvent` union, with
//! how each kind is shown.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, Union};

use super::{ChatUpdated, MessageRef, ResyncRequired, load_member, load_user};
use crate::domain::feeds::chat::ChatFeedItem;
use crate::domain::messages::MESSAGE_CURSOR;
use crate::events::{Delivered, EventKind};
use crate::graphql::loaders::SessionKey;
use crate::graphql::types::{MemberNode, MessageNode, SessionNode, UserNode};
use crate::vocabulary::cursor;
use crate::vocabulary::enums::MemberRole;
use crate::vocabulary::ids::{ChatId, MessageId, SessionId, UserId};

chat_event! {
    /// A new message in a chat (live, or replayed after `chatEvents(after:)`).
    MessageAdded { message: MessageRef } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            self.message.id.into()
        }
        /// The message's cursor: pass it as `after` to resume from here.
        async fn cursor(&self) -> String {
            cursor::encode(MESSAGE_CURSOR, &[self.message.id.0])
        }
        /// The message (null if it was deleted before this event was delivered).
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
    }
}

chat_event! {
    /// A message changed: its content was edited, a streamed reply finished, or the
    /// thumbnail of an image it carries is ready (`attachments { thumbnailUrl }`).
    MessageEdited { message: MessageRef } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            self.message.id.into()
        }
        /// The message as it is now.
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
    }
}

chat_event! {
    /// A message was retracted by its sender: show a tombstone.
    MessageRetracted { message: MessageRef } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            self.message.id.into()
        }
        /// The tombstone.
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
    }
}

chat_event! {
    /// A message was deleted by a moderator: remove it.
    MessageDeleted { message_id: MessageId } {
        /// The deleted message's id.
        async fn message_id(&self) -> ID {
            self.message_id.into()
        }
    }
}

chat_event! {
    /// A chunk appended to a streaming assistant reply.
    MessageDelta { message_id: MessageId, delta: String, offset: i64 } {
        /// The streaming message's id.
        async fn message_id(&self) -> ID {
            self.message_id.into()
        }
        /// The appended text.
        async fn delta(&self) -> &str {
            &self.delta
        }
        /// Where the delta starts in the full content, in characters: deltas arrive in order,
        /// and a gap in offsets means one was missed.
        async fn offset(&self) -> i64 {
            self.offset
        }
    }
}

chat_event! {
    /// A member stopped a streaming reply: it ended `INTERRUPTED` with what was streamed so
    /// far. The bot that sends it sees this in `chatEvents` and in its `myEvents`, and
    /// should stop generating (further `appendMessageContent` calls are a `CONFLICT`).
    ReplyInterrupted { message: MessageRef, by: UserId } {
        /// The reply's id.
        async fn message_id(&self) -> ID {
            self.message.id.into()
        }
        /// The reply as it is now.
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
        /// Who interrupted it.
        async fn interrupted_by(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.by).await
        }
    }
}

chat_event! {
    /// A member added or removed a reaction. `message { reactions }` has the groups as
    /// they are now.
    ReactionChanged { message: MessageRef, user_id: UserId, emoji: String, added: bool } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            self.message.id.into()
        }
        /// The emoji (fully qualified).
        async fn emoji(&self) -> &str {
            &self.emoji
        }
        /// True when the reaction was added, false when it was removed.
        async fn added(&self) -> bool {
            self.added
        }
        /// Who reacted.
        async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.user_id).await
        }
        /// The message as it is now.
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
    }
}

chat_event! {
    /// A manager pinned a message: it is in `Chat.pinnedMessages` now.
    MessagePinned { message: MessageRef, by: UserId } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            self.message.id.into()
        }
        /// The pinned message.
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
        /// Who pinned it.
        async fn pinned_by(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.by).await
        }
    }
}

chat_event! {
    /// A message was unpinned: by a manager, or because its sender retracted it.
    MessageUnpinned { message_id: MessageId, by: UserId } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            self.message_id.into()
        }
        /// Who unpinned it (the sender, when it was retracted).
        async fn unpinned_by(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.by).await
        }
    }
}

chat_event! {
    /// A session of the chat began: messages from now on belong to it.
    SessionStarted { session_id: SessionId } {
        /// The session's id.
        async fn session_id(&self) -> ID {
            self.session_id.into()
        }
        /// The session.
        async fn session(&self, ctx: &Context<'_>) -> Result<Option<SessionNode>> {
            load_session(ctx, self.session_id).await
        }
    }
}

chat_event! {
    /// A session of the chat ended (it timed out when the next message arrived, or a member
    /// ended or replaced it).
    SessionEnded { session_id: SessionId } {
        /// The session's id.
        async fn session_id(&self) -> ID {
            self.session_id.into()
        }
        /// The session.
        async fn session(&self, ctx: &Context<'_>) -> Result<Option<SessionNode>> {
            load_session(ctx, self.session_id).await
        }
    }
}

async fn load_session(ctx: &Context<'_>, id: SessionId) -> Result<Option<SessionNode>> {
    Ok(crate::graphql::loaders(ctx)?
        .load_one(SessionKey(id))
        .await?
        .map(SessionNode))
}

chat_event! {
    /// A member read the chat up to a message.
    ReadReceipt { user_id: UserId, message_id: MessageId } {
        /// The reader's id.
        async fn user_id(&self) -> ID {
            self.user_id.into()
        }
        /// The reader.
        async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.user_id).await
        }
        /// Their new read watermark.
        async fn last_read_message_id(&self) -> ID {
            self.message_id.into()
        }
    }
}

chat_event! {
    /// Messages up to one reached a member's device.
    DeliveryReceipt { user_id: UserId, message_id: MessageId } {
        /// The recipient's id.
        async fn user_id(&self) -> ID {
            self.user_id.into()
        }
        /// The recipient.
        async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.user_id).await
        }
        /// Their new delivery watermark.
        async fn last_delivered_message_id(&self) -> ID {
            self.message_id.into()
        }
    }
}

chat_event! {
    /// A member started or stopped typing (a start expires by itself after a few seconds).
    Typing { user_id: UserId, typing: bool } {
        /// The typist's id.
        async fn user_id(&self) -> ID {
            self.user_id.into()
        }
        /// The typist.
        async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.user_id).await
        }
        /// True while typing.
        async fn typing(&self) -> bool {
            self.typing
        }
    }
}

chat_event! {
    /// A user joined or was added to the chat.
    MemberJoined { user_id: UserId } {
        /// The new member's id.
        async fn user_id(&self) -> ID {
            self.user_id.into()
        }
        /// The new member.
        async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.user_id).await
        }
        /// Their membership (null if they already left again).
        async fn member(&self, ctx: &Context<'_>) -> Result<Option<MemberNode>> {
            load_member(ctx, self.chat_id, self.user_id).await
        }
    }
}

chat_event! {
    /// A user left or was removed. When it is the subscriber, this is the feed's last event.
    MemberLeft { user_id: UserId } {
        /// The former member's id.
        async fn user_id(&self) -> ID {
            self.user_id.into()
        }
        /// The former member.
        async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
            load_user(ctx, self.user_id).await
        }
    }
}

chat_event! {
    /// A member's role changed.
    MemberUpdated { user_id: UserId, role: MemberRole } {
        /// The member's id.
        async fn user_id(&self) -> ID {
            self.user_id.into()
        }
        /// The role given by this change.
        async fn role(&self) -> Option<MemberRole> {
            Some(self.role)
        }
        /// The membership as it is now (null if they left since).
        async fn member(&self, ctx: &Context<'_>) -> Result<Option<MemberNode>> {
            load_member(ctx, self.chat_id, self.user_id).await
        }
    }
}

impl ReplyInterrupted {
    /// The event of `message` in `chat_id`, interrupted by `by` (for `myEvents` too).
    pub(super) fn new(chat_id: ChatId, message: MessageRef, by: UserId) -> Self {
        Self {
            chat_id,
            message,
            by,
        }
    }
}

/// The chat was deleted. This is the feed's last event.
pub struct ChatDeleted {
    chat_id: ChatId,
}

/// The chat was deleted. This is the feed's last event.
#[Object]
impl ChatDeleted {
    /// The deleted chat's id.
    async fn chat_id(&self) -> ID {
        self.chat_id.into()
    }
}

/// Everything that happens in a chat.
#[derive(Union)]
pub enum ChatEvent {
    /// A new message.
    MessageAdded(MessageAdded),
    /// A message changed.
    MessageEdited(MessageEdited),
    /// A message was retracted.
    MessageRetracted(MessageRetracted),
    /// A message was deleted.
    MessageDeleted(MessageDeleted),
    /// A streaming reply grew.
    MessageDelta(MessageDelta),
    /// A member stopped a streaming reply.
    ReplyInterrupted(ReplyInterrupted),
    /// A reaction was added or removed.
    ReactionChanged(ReactionChanged),
    /// A message was pinned.
    MessagePinned(MessagePinned),
    /// A message was unpinned.
    MessageUnpinned(MessageUnpinned),
    /// A session began.
    SessionStarted(SessionStarted),
    /// A session ended.
    SessionEnded(SessionEnded),
    /// A member read up to a message.
    ReadReceipt(ReadReceipt),
    /// Messages reached a member.
    DeliveryReceipt(DeliveryReceipt),
    /// Someone is typing.
    Typing(Typing),
    /// Someone joined.
    MemberJoined(MemberJoined),
    /// Someone left.
    MemberLeft(MemberLeft),
    /// A member's role changed.
    MemberUpdated(MemberUpdated),
    /// The chat changed.
    ChatUpdated(ChatUpdated),
    /// The chat is gone.
    ChatDeleted(ChatDeleted),
    /// Events were missed.
    ResyncRequired(ResyncRequired),
}

impl ChatEvent {
    /// Maps a feed item of `chat` to its GraphQL event.
    pub fn from_item(chat: ChatId, item: ChatFeedItem) -> Self {
        match item {
            ChatFeedItem::Replayed(message) => ChatEvent::MessageAdded(MessageAdded {
                chat_id: chat,
                message: MessageRef {
                    id: message.id,
                    row: Some(message),
                    shared: None,
                },
            }),
            ChatFeedItem::Resync { last_message_id } => ChatEvent::ResyncRequired(ResyncRequired {
                chat_id: Some(chat),
                last_message_id,
            }),
            ChatFeedItem::Live(event) => Self::from_event(chat, &event),
        }
    }

    /// How each kind of event is shown: one arm per kind.
    fn from_event(chat_id: ChatId, event: &Arc<Delivered>) -> Self {
        let message = |id: &MessageId| MessageRef::live(*id, event);
        match &event.kind {
            EventKind::MessageAdded { message_id, .. } => ChatEvent::MessageAdded(MessageAdded {
                chat_id,
                message: message(message_id),
            }),
            EventKind::MessageEdited { message_id } => ChatEvent::MessageEdited(MessageEdited {
                chat_id,
                message: message(message_id),
            }),
            EventKind::MessageRetracted { message_id } => {
                ChatEvent::MessageRetracted(MessageRetracted {
                    chat_id,
                    message: message(message_id),
                })
            }
            EventKind::MessageDeleted { message_id } => ChatEvent::MessageDeleted(MessageDeleted {
                chat_id,
                message_id: *message_id,
            }),
            EventKind::MessageDelta {
                message_id,
                delta,
                offset,
            } => ChatEvent::MessageDelta(MessageDelta {
                chat_id,
                message_id: *message_id,
                delta: delta.clone(),
                offset: *offset,
            }),
            EventKind::ReplyInterrupted { message_id, by, .. } => ChatEvent::ReplyInterrupted(
                ReplyInterrupted::new(chat_id, message(message_id), *by),
            ),
            EventKind::ReactionChanged {
                message_id,
                user_id,
                emoji,
                added,
            } => ChatEvent::ReactionChanged(ReactionChanged {
                chat_id,
                message: message(message_id),
                user_id: *user_id,
                emoji: emoji.clone(),
                added: *added,
            }),
            EventKind::MessagePinned { message_id, by } => {
                ChatEvent::MessagePinned(MessagePinned {
                    chat_id,
                    message: message(message_id),
                    by: *by,
                })
            }
            EventKind::MessageUnpinned { message_id, by } => {
                ChatEvent::MessageUnpinned(MessageUnpinned {
                    chat_id,
                    message_id: *message_id,
                    by: *by,
                })
            }
            EventKind::SessionStarted { session_id } => ChatEvent::SessionStarted(SessionStarted {
                chat_id,
                session_id: *session_id,
            }),
            EventKind::SessionEnded { session_id } => ChatEvent::SessionEnded(SessionEnded {
                chat_id,
                session_id: *session_id,
            }),
            EventKind::ReadReceipt {
                user_id,
                message_id,
            } => ChatEvent::ReadReceipt(ReadReceipt {
                chat_id,
                user_id: *user_id,
                message_id: *message_id,
            }),
            EventKind::DeliveryReceipt {
                user_id,
                message_id,
            } => ChatEvent::DeliveryReceipt(DeliveryReceipt {
                chat_id,
                user_id: *user_id,
                message_id: *message_id,
            }),
            EventKind::Typing { user_id, typing } => ChatEvent::Typing(Typing {
                chat_id,
                user_id: *user_id,
                typing: *typing,
            }),
            EventKind::MemberJoined { user_id } => ChatEvent::MemberJoined(MemberJoined {
                chat_id,
                user_id: *user_id,
            }),
            EventKind::MemberLeft { user_id } => ChatEvent::MemberLeft(MemberLeft {
                chat_id,
                user_id: *user_id,
            }),
            EventKind::MemberUpdated { user_id, role } => ChatEvent::MemberUpdated(MemberUpdated {
                chat_id,
                user_id: *user_id,
                role: *role,
            }),
            EventKind::ChatUpdated => ChatEvent::ChatUpdated(ChatUpdated { chat_id }),
            EventKind::ChatDeleted => ChatEvent::ChatDeleted(ChatDeleted { chat_id }),
            // A revocation is about a user, not a chat, so `ChatFeed::step` never delivers
            // one; were it to, a resync is the safe answer.
            EventKind::ResyncRequired | EventKind::TokensRevoked => {
                ChatEvent::ResyncRequired(ResyncRequired {
                    chat_id: Some(chat_id),
                    last_message_id: None,
                })
            }
        }
    }
}
