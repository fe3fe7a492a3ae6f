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

async fn load_user(ctx: &Context<'_>, id: i64) -> Result<Option<UserNode>> {
    Ok(loaders(ctx)?
        .load_one(UserKey(id))
        .await?
        .map(UserNode::loaded))
}

async fn load_chat(ctx: &Context<'_>, id: i64) -> Result<Option<ChatNode>> {
    Ok(loaders(ctx)?
        .load_one(ChatKey(id))
        .await?
        .map(ChatNode::loaded))
}

/// The caller's unread count in a chat.
async fn my_unread_count(ctx: &Context<'_>, chat_id: i64) -> Result<UnreadCount> {
    UnreadCount::load(ctx, chat_id, caller_id(ctx)?.0).await
}

/// A new message in a chat.
pub struct MessageAdded {
    chat_id: i64,
    message: MessageRef,
}

/// A new message in a chat (live, or replayed after `chatEvents(after:)`).
#[Object]
impl MessageAdded {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
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

/// A message changed: edited, or a streamed reply finished (see `streamState`).
pub struct MessageEdited {
    chat_id: i64,
    message: MessageRef,
}

/// A message changed: its content was edited, or a streamed reply finished.
#[Object]
impl MessageEdited {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The message's id.
    async fn message_id(&self) -> ID {
        MessageId(self.message.id).into()
    }
    /// The message as it is now.
    async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
        self.message.load(ctx).await
    }
}

/// A message was retracted by its sender.
pub struct MessageRetracted {
    chat_id: i64,
    message: MessageRef,
}

/// A message was retracted by its sender: show a tombstone.
#[Object]
impl MessageRetracted {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The message's id.
    async fn message_id(&self) -> ID {
        MessageId(self.message.id).into()
    }
    /// The tombstone.
    async fn message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
        self.message.load(ctx).await
    }
}

/// A message was deleted.
pub struct MessageDeleted {
    chat_id: i64,
    message_id: i64,
}

/// A message was deleted by a moderator: remove it.
#[Object]
impl MessageDeleted {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The deleted message's id.
    async fn message_id(&self) -> ID {
        MessageId(self.message_id).into()
    }
}

/// A chunk appended to a streaming reply.
pub struct MessageDelta {
    chat_id: i64,
    message_id: i64,
    delta: String,
    offset: i64,
}

/// A chunk appended to a streaming assistant reply.
#[Object]
impl MessageDelta {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The streaming message's id.
    async fn message_id(&self) -> ID {
        MessageId(self.message_id).into()
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

/// A member's read or delivery watermark moved.
pub struct Receipt {
    chat_id: i64,
    user_id: i64,
    message_id: i64,
}

impl Receipt {
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        load_user(ctx, self.user_id).await
    }
}

/// A member read the chat up to a message.
pub struct ReadReceipt(Receipt);

/// A member read the chat up to a message.
#[Object]
impl ReadReceipt {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.0.chat_id).into()
    }
    /// The reader's id.
    async fn user_id(&self) -> ID {
        UserId(self.0.user_id).into()
    }
    /// The reader.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        self.0.user(ctx).await
    }
    /// Their new read watermark.
    async fn last_read_message_id(&self) -> ID {
        MessageId(self.0.message_id).into()
    }
}

/// Messages up to one reached a member's device.
pub struct DeliveryReceipt(Receipt);

/// Messages up to one reached a member's device.
#[Object]
impl DeliveryReceipt {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.0.chat_id).into()
    }
    /// The recipient's id.
    async fn user_id(&self) -> ID {
        UserId(self.0.user_id).into()
    }
    /// The recipient.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        self.0.user(ctx).await
    }
    /// Their new delivery watermark.
    async fn last_delivered_message_id(&self) -> ID {
        MessageId(self.0.message_id).into()
    }
}

/// A member started or stopped typing.
pub struct Typing {
    chat_id: i64,
    user_id: i64,
    typing: bool,
}

/// A member started or stopped typing (a start expires by itself after a few seconds).
#[Object]
impl Typing {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The typist's id.
    async fn user_id(&self) -> ID {
        UserId(self.user_id).into()
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

/// Membership changed for one user.
pub struct MemberChange {
    chat_id: i64,
    user_id: i64,
}

/// A user joined or was added to the chat.
pub struct MemberJoined(MemberChange);

/// A user joined or was added to the chat.
#[Object]
impl MemberJoined {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.0.chat_id).into()
    }
    /// The new member's id.
    async fn user_id(&self) -> ID {
        UserId(self.0.user_id).into()
    }
    /// The new member.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        load_user(ctx, self.0.user_id).await
    }
    /// Their membership (null if they already left again).
    async fn member(&self, ctx: &Context<'_>) -> Result<Option<MemberNode>> {
        let key = MembershipKey {
            chat_id: self.0.chat_id,
            user_id: self.0.user_id,
        };
        Ok(loaders(ctx)?.load_one(key).await?.map(MemberNode))
    }
}

/// A user left or was removed from the chat.
pub struct MemberLeft(MemberChange);

/// A user left or was removed. When it is the subscriber, this is the feed's last event.
#[Object]
impl MemberLeft {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.0.chat_id).into()
    }
    /// The former member's id.
    async fn user_id(&self) -> ID {
        UserId(self.0.user_id).into()
    }
    /// The former member.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        load_user(ctx, self.0.user_id).await
    }
}

/// A member's role changed.
pub struct MemberUpdated {
    change: MemberChange,
    role: Option<MemberRole>,
}

/// A member's role changed.
#[Object]
impl MemberUpdated {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.change.chat_id).into()
    }
    /// The member's id.
    async fn user_id(&self) -> ID {
        UserId(self.change.user_id).into()
    }
    /// The role given by this change.
    async fn role(&self) -> Option<MemberRole> {
        self.role
    }
    /// The membership as it is now (null if they left since).
    async fn member(&self, ctx: &Context<'_>) -> Result<Option<MemberNode>> {
        let key = MembershipKey {
            chat_id: self.change.chat_id,
            user_id: self.change.user_id,
        };
        Ok(loaders(ctx)?.load_one(key).await?.map(MemberNode))
    }
}

/// The chat's settings changed or its messages were cleared.
pub struct ChatUpdated {
    chat_id: i64,
}

/// The chat's settings changed, or its messages were cleared: re-read it.
#[Object]
impl ChatUpdated {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The chat as it is now.
    async fn chat(&self, ctx: &Context<'_>) -> Result<Option<ChatNode>> {
        load_chat(ctx, self.chat_id).await
    }
}

/// The chat was deleted.
pub struct ChatDeleted {
    chat_id: i64,
}

/// The chat was deleted. This is the feed's last event.
#[Object]
impl ChatDeleted {
    /// The deleted chat's id.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
}

/// The subscriber fell behind and missed events.
pub struct ResyncRequired {
    chat_id: Option<i64>,
    last_message_id: Option<i64>,
}

/// The subscriber fell behind and events were missed: re-query (e.g. `messages(after:
/// lastCursor)`) or resubscribe with `chatEvents(after: lastCursor)`. The feed goes on.
#[Object]
impl ResyncRequired {
    /// The chat, for `chatEvents`; null for `myEvents`.
    async fn chat_id(&self) -> Option<ID> {
        self.chat_id.map(|c| ChatId(c).into())
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
    /// Maps a feed item to its GraphQL event.
    pub fn from_item(chat_id: i64, item: ChatFeedItem) -> Self {
        match item {
            ChatFeedItem::Replayed(message) => ChatEvent::MessageAdded(MessageAdded {
                chat_id,
                message: MessageRef {
                    id: message.id,
                    row: Some(message),
                    shared: None,
                },
            }),
            ChatFeedItem::Resync { last_message_id } => ChatEvent::ResyncRequired(ResyncRequired {
                chat_id: Some(chat_id),
                last_message_id,
            }),
            ChatFeedItem::Live(event) => Self::from_event(ChatId(chat_id), &event),
        }
    }

    fn from_event(chat: ChatId, event: &Arc<Delivered>) -> Self {
        let chat_id = chat.0;
        let message = |id: MessageId| MessageRef::live(id.0, event);
        let member = |user_id: UserId| MemberChange {
            chat_id,
            user_id: user_id.0,
        };
        let receipt = |user_id: UserId, message_id: MessageId| Receipt {
            chat_id,
            user_id: user_id.0,
            message_id: message_id.0,
        };
        match &event.kind {
            EventKind::MessageAdded { message_id, .. } => ChatEvent::MessageAdded(MessageAdded {
                chat_id,
                message: message(*message_id),
            }),
            EventKind::MessageEdited { message_id } => ChatEvent::MessageEdited(MessageEdited {
                chat_id,
                message: message(*message_id),
            }),
            EventKind::MessageRetracted { message_id } => {
                ChatEvent::MessageRetracted(MessageRetracted {
                    chat_id,
                    message: message(*message_id),
                })
            }
            EventKind::MessageDeleted { message_id } => ChatEvent::MessageDeleted(MessageDeleted {
                chat_id,
                message_id: message_id.0,
            }),
            EventKind::MessageDelta {
                message_id,
                delta,
                offset,
            } => ChatEvent::MessageDelta(MessageDelta {
                chat_id,
                message_id: message_id.0,
                delta: delta.clone(),
                offset: *offset,
            }),
            EventKind::ReadReceipt {
                user_id,
                message_id,
            } => ChatEvent::ReadReceipt(ReadReceipt(receipt(*user_id, *message_id))),
            EventKind::DeliveryReceipt {
                user_id,
                message_id,
            } => ChatEvent::DeliveryReceipt(DeliveryReceipt(receipt(*user_id, *message_id))),
            EventKind::Typing { user_id, typing } => ChatEvent::Typing(Typing {
                chat_id,
                user_id: user_id.0,
                typing: *typing,
            }),
            EventKind::MemberJoined { user_id } => {
                ChatEvent::MemberJoined(MemberJoined(member(*user_id)))
            }
            EventKind::MemberLeft { user_id } => {
                ChatEvent::MemberLeft(MemberLeft(member(*user_id)))
            }
            EventKind::MemberUpdated { user_id, role } => ChatEvent::MemberUpdated(MemberUpdated {
                change: member(*user_id),
                role: Some(*role),
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

/// A new message in one of the caller's chats, with the chat's new unread count.
pub struct InboxMessage {
    chat_id: i64,
    message: MessageRef,
}

/// A new message in one of the caller's chats.
#[Object]
impl InboxMessage {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
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

/// The caller's unread count in a chat changed (read elsewhere, message retracted, …).
pub struct UnreadCountChanged {
    chat_id: i64,
}

/// The caller's unread count in a chat changed (read on another device, a message was
/// retracted or deleted).
#[Object]
impl UnreadCountChanged {
    /// The chat.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
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

/// The caller was added to a chat (or created one).
pub struct ChatAdded {
    chat_id: i64,
}

/// The caller was added to a chat, or created one.
#[Object]
impl ChatAdded {
    /// The chat's id.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
    }
    /// The chat.
    async fn chat(&self, ctx: &Context<'_>) -> Result<Option<ChatNode>> {
        load_chat(ctx, self.chat_id).await
    }
}

/// The caller left or was removed from a chat, or it was deleted.
pub struct ChatRemoved {
    chat_id: i64,
}

/// The caller left or was removed from a chat, or it was deleted: drop it from the list.
#[Object]
impl ChatRemoved {
    /// The chat's id.
    async fn chat_id(&self) -> ID {
        ChatId(self.chat_id).into()
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
        let chat_id = chat.0;
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
