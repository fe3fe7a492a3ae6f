//! The event types subscriptions deliver: the `ChatEvent` union (`chatEvents`) and the
//! `UserEvent` union (`myEvents`). Events carry ids; objects load through the
//! subscription's loaders when a client selects them.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, Union};

use super::loaders::{ChatKey, MembershipKey, MessageKey, UserKey};
use super::types::{ChatNode, MemberNode, MessageNode, UnreadCount, UserNode};
use super::{caller_id, loaders};
use crate::db;
use crate::domain::feeds::{ChatFeedItem, InboxChange, InboxItem};
use crate::domain::messages::MESSAGE_CURSOR;
use crate::events::{Delivered, EventKind};
use crate::vocabulary::cursor;
use crate::vocabulary::enums::MemberRole;
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// A message an event is about: the row when the event already has it (replay), else
/// loaded on demand — once per live event, shared by every subscriber it reaches.
#[derive(Clone)]
pub struct MessageRef {
    id: i64,
    row: Option<db::messages::Message>,
    shared: Option<Arc<Delivered>>,
}

impl MessageRef {
    fn live(id: i64, delivered: &Arc<Delivered>) -> Self {
        Self {
            id,
            row: None,
            shared: Some(delivered.clone()),
        }
    }

    async fn load(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
        if let Some(row) = &self.row {
            return Ok(Some(MessageNode::loaded(row.clone())));
        }
        let loaders = loaders(ctx)?;
        let load = || loaders.load_one(MessageKey(self.id));
        let row = match &self.shared {
            Some(delivered) => delivered.message(load).await?,
            None => load().await?,
        };
        Ok(row.map(MessageNode::loaded))
    }
}

async fn load_user(ctx: &Context<'_>, id: UserId) -> Result<Option<UserNode>> {
    Ok(loaders(ctx)?
        .load_one(UserKey(id.0))
        .await?
        .map(UserNode::loaded))
}

async fn load_chat(ctx: &Context<'_>, id: ChatId) -> Result<Option<ChatNode>> {
    Ok(loaders(ctx)?
        .load_one(ChatKey(id.0))
        .await?
        .map(ChatNode::loaded))
}

async fn load_member(ctx: &Context<'_>, chat: ChatId, user: UserId) -> Result<Option<MemberNode>> {
    let key = MembershipKey {
        chat_id: chat.0,
        user_id: user.0,
    };
    Ok(loaders(ctx)?.load_one(key).await?.map(MemberNode))
}

/// The caller's unread count in a chat.
async fn my_unread_count(ctx: &Context<'_>, chat: ChatId) -> Result<UnreadCount> {
    UnreadCount::load(ctx, chat.0, caller_id(ctx)?.0).await
}

/// Declares the GraphQL type of an event in one chat: a struct holding the chat and the
/// given fields, described by the doc comment, whose first field is `chatId`, followed by
/// the given resolvers.
macro_rules! chat_event {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty),* $(,)? }
        { $($resolvers:tt)* }
    ) => {
        $(#[$doc])*
        pub struct $name {
            chat_id: ChatId,
            $($field: $ty,)*
        }

        $(#[$doc])*
        #[Object]
        impl $name {
            /// The chat.
            async fn chat_id(&self) -> ID {
                self.chat_id.into()
            }
            $($resolvers)*
        }
    };
}

chat_event! {
    /// A new message in a chat (live, or replayed after `chatEvents(after:)`).
    MessageAdded { message: MessageRef } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            MessageId(self.message.id).into()
        }
        /// The message's cursor: pass it as `after` to resume from here.
        async fn cursor(&self) -> String {
            cursor::encode(MESSAGE_CURSOR, &[self.message.id])
        }
        /// The message (null if it was deleted before this event was delivered).
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
    }
}

chat_event! {
    /// A message changed: its content was edited, or a streamed reply finished.
    MessageEdited { message: MessageRef } {
        /// The message's id.
        async fn message_id(&self) -> ID {
            MessageId(self.message.id).into()
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
            MessageId(self.message.id).into()
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

chat_event! {
    /// The chat's settings changed, or its messages were cleared: re-read it.
    ChatUpdated {} {
        /// The chat as it is now.
        async fn chat(&self, ctx: &Context<'_>) -> Result<Option<ChatNode>> {
            load_chat(ctx, self.chat_id).await
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

/// The subscriber fell behind and events were missed: re-query (e.g. `messages(after:
/// lastCursor)`) or resubscribe with `chatEvents(after: lastCursor)`. The feed goes on.
pub struct ResyncRequired {
    chat_id: Option<ChatId>,
    last_message_id: Option<i64>,
}

/// The subscriber fell behind and events were missed: re-query (e.g. `messages(after:
/// lastCursor)`) or resubscribe with `chatEvents(after: lastCursor)`. The feed goes on.
#[Object]
impl ResyncRequired {
    /// The chat, for `chatEvents`; null for `myEvents`.
    async fn chat_id(&self) -> Option<ID> {
        self.chat_id.map(ID::from)
    }
    /// Cursor of the last message delivered before the gap (null if none was).
    async fn last_cursor(&self) -> Option<String> {
        self.last_message_id
            .map(|id| cursor::encode(MESSAGE_CURSOR, &[id]))
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
        let message = |id: &MessageId| MessageRef::live(id.0, event);
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
            EventKind::ResyncRequired => ChatEvent::ResyncRequired(ResyncRequired {
                chat_id: Some(chat_id),
                last_message_id: None,
            }),
        }
    }
}

chat_event! {
    /// A new message in one of the caller's chats.
    InboxMessage { message: MessageRef } {
        /// The chat as it is now (for the chat list row).
        async fn chat(&self, ctx: &Context<'_>) -> Result<Option<ChatNode>> {
            load_chat(ctx, self.chat_id).await
        }
        /// The message.
        async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
            self.message.load(ctx).await
        }
        /// The caller's unread count in the chat, now: exact up to 999, then 999 with
        /// `unreadCountCapped` true.
        async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
            Ok(my_unread_count(ctx, self.chat_id).await?.shown())
        }
        /// True when there are more unread messages than `unreadCount` says ("999+").
        async fn unread_count_capped(&self, ctx: &Context<'_>) -> Result<bool> {
            Ok(my_unread_count(ctx, self.chat_id).await?.capped())
        }
    }
}

chat_event! {
    /// The caller's unread count in a chat changed (read on another device, a message was
    /// retracted or deleted).
    UnreadCountChanged {} {
        /// The caller's unread count in the chat, now: exact up to 999, then 999 with
        /// `unreadCountCapped` true.
        async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
            Ok(my_unread_count(ctx, self.chat_id).await?.shown())
        }
        /// True when there are more unread messages than `unreadCount` says ("999+").
        async fn unread_count_capped(&self, ctx: &Context<'_>) -> Result<bool> {
            Ok(my_unread_count(ctx, self.chat_id).await?.capped())
        }
    }
}

/// The caller was added to a chat, or created one.
pub struct ChatAdded {
    chat_id: ChatId,
}

/// The caller was added to a chat, or created one.
#[Object]
impl ChatAdded {
    /// The chat's id.
    async fn chat_id(&self) -> ID {
        self.chat_id.into()
    }
    /// The chat.
    async fn chat(&self, ctx: &Context<'_>) -> Result<Option<ChatNode>> {
        load_chat(ctx, self.chat_id).await
    }
}

/// The caller left or was removed from a chat, or it was deleted: drop it from the list.
pub struct ChatRemoved {
    chat_id: ChatId,
}

/// The caller left or was removed from a chat, or it was deleted: drop it from the list.
#[Object]
impl ChatRemoved {
    /// The chat's id.
    async fn chat_id(&self) -> ID {
        self.chat_id.into()
    }
}

/// What the caller's chat list needs to stay live.
#[derive(Union)]
pub enum UserEvent {
    /// A new message in one of my chats.
    InboxMessage(InboxMessage),
    /// An unread count changed.
    UnreadCountChanged(UnreadCountChanged),
    /// I was added to a chat.
    ChatAdded(ChatAdded),
    /// I left a chat, or it was deleted.
    ChatRemoved(ChatRemoved),
    /// One of my chats changed.
    ChatUpdated(ChatUpdated),
    /// Events were missed: re-query the chat list.
    ResyncRequired(ResyncRequired),
}

impl UserEvent {
    /// Maps an inbox item to its GraphQL event.
    pub fn from_item(item: InboxItem) -> Self {
        let (chat, change, event) = match item {
            InboxItem::Resync => {
                return UserEvent::ResyncRequired(ResyncRequired {
                    chat_id: None,
                    last_message_id: None,
                });
            }
            InboxItem::Live {
                chat,
                change,
                event,
            } => (chat, change, event),
        };
        let chat_id = chat;
        match change {
            InboxChange::NewMessage(message_id) => UserEvent::InboxMessage(InboxMessage {
                chat_id,
                message: MessageRef::live(message_id.0, &event),
            }),
            InboxChange::UnreadCountChanged => {
                UserEvent::UnreadCountChanged(UnreadCountChanged { chat_id })
            }
            InboxChange::ChatAdded => UserEvent::ChatAdded(ChatAdded { chat_id }),
            InboxChange::ChatRemoved => UserEvent::ChatRemoved(ChatRemoved { chat_id }),
            InboxChange::ChatUpdated => UserEvent::ChatUpdated(ChatUpdated { chat_id }),
        }
    }
}
