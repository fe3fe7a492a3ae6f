//! The events of a user's chat list (`myEvents`): a type per change and the `UserEvent`
//! union.

use async_graphql::{Context, ID, Object, Result, Union};

use super::chat::ReplyInterrupted;
use super::{
    ChatUpdated, MessageRef, ResyncRequired, load_chat, my_membership_muted, my_unread_count,
    my_unread_mention_count,
};
use crate::domain::feeds::inbox::{InboxChange, InboxItem};
use crate::graphql::types::{ChatNode, MessageNode};
use crate::vocabulary::ids::ChatId;

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
        /// The caller's unread mentions in the chat, now (exact up to 999).
        async fn unread_mention_count(&self, ctx: &Context<'_>) -> Result<i32> {
            Ok(my_unread_mention_count(ctx, self.chat_id).await?.shown())
        }
        /// True when the message mentions the caller.
        async fn mentions_me(&self, ctx: &Context<'_>) -> Result<bool> {
            self.message.mentions_caller(ctx).await
        }
        /// Whether to alert the caller (a push notification, a sound): true unless they
        /// muted the chat, and in a muted chat too when the message mentions them; never
        /// for a message from someone they blocked. Every
        /// new message reaches `myEvents` either way, so the chat list stays current.
        async fn notify(&self, ctx: &Context<'_>) -> Result<bool> {
            if self.message.sender_blocked_by_caller(ctx).await? {
                return Ok(false);
            }
            Ok(!my_membership_muted(ctx, self.chat_id).await?
                || self.message.mentions_caller(ctx).await?)
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
        /// The caller's unread mentions in the chat, now (exact up to 999).
        async fn unread_mention_count(&self, ctx: &Context<'_>) -> Result<i32> {
            Ok(my_unread_mention_count(ctx, self.chat_id).await?.shown())
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
    /// A member stopped a reply I (a bot) am streaming.
    ReplyInterrupted(ReplyInterrupted),
    /// Events were missed: re-query the chat list.
    ResyncRequired(ResyncRequired),
}

impl UserEvent {
    /// Maps an inbox item to its GraphQL event.
    pub fn from_item(item: InboxItem) -> Self {
        let (chat_id, change, event) = match item {
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
        match change {
            InboxChange::NewMessage(message_id) => UserEvent::InboxMessage(InboxMessage {
                chat_id,
                message: MessageRef::live(message_id, &event),
            }),
            InboxChange::UnreadCountChanged => {
                UserEvent::UnreadCountChanged(UnreadCountChanged { chat_id })
            }
            InboxChange::ChatAdded => UserEvent::ChatAdded(ChatAdded { chat_id }),
            InboxChange::ChatRemoved => UserEvent::ChatRemoved(ChatRemoved { chat_id }),
            InboxChange::ChatUpdated => UserEvent::ChatUpdated(ChatUpdated { chat_id }),
            InboxChange::ReplyInterrupted { message, by } => UserEvent::ReplyInterrupted(
                ReplyInterrupted::new(chat_id, MessageRef::live(message, &event), by),
            ),
        }
    }
}
