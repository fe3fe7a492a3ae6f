//! The event types subscriptions deliver: the `ChatEvent` union (`chatEvents`, in `chat`)
//! and the `UserEvent` union (`myEvents`, in `inbox`), and what both share. Events carry
//! ids; objects load through the subscription's loaders when a client selects them.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result};

use super::loaders::{ChatKey, MembershipKey, MentionsKey, MessageKey, UserKey};
use super::types::{ChatNode, MemberNode, MessageNode, UnreadCount, UserNode, blocked_by_caller};
use super::{caller_id, loaders};
use crate::db;
use crate::domain::messages::MESSAGE_CURSOR;
use crate::events::Delivered;
use crate::vocabulary::cursor;
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// A message an event is about: the row when the event already has it (replay), else
/// loaded on demand — once per live event, shared by every subscriber it reaches.
#[derive(Clone)]
pub struct MessageRef {
    id: MessageId,
    row: Option<db::messages::Message>,
    shared: Option<Arc<Delivered>>,
}

impl MessageRef {
    fn live(id: MessageId, delivered: &Arc<Delivered>) -> Self {
        Self {
            id,
            row: None,
            shared: Some(delivered.clone()),
        }
    }

    /// Whether the message mentions the caller.
    async fn mentions_caller(&self, ctx: &Context<'_>) -> Result<bool> {
        let caller = caller_id(ctx)?;
        let mentioned = loaders(ctx)?.load_one(MentionsKey(self.id)).await?;
        Ok(mentioned.is_some_and(|users| users.contains(&caller)))
    }

    /// Whether the caller blocked the message's sender.
    async fn sender_blocked_by_caller(&self, ctx: &Context<'_>) -> Result<bool> {
        match self.row(ctx).await?.and_then(|row| row.sender_id) {
            Some(sender) => blocked_by_caller(ctx, sender).await,
            None => Ok(false),
        }
    }

    async fn load(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
        Ok(self.row(ctx).await?.map(MessageNode::loaded))
    }

    async fn row(&self, ctx: &Context<'_>) -> Result<Option<db::messages::Message>> {
        if let Some(row) = &self.row {
            return Ok(Some(row.clone()));
        }
        let loaders = loaders(ctx)?;
        let load = || loaders.load_one(MessageKey(self.id));
        Ok(match &self.shared {
            Some(delivered) => delivered.message(load).await?,
            None => load().await?,
        })
    }
}

async fn load_user(ctx: &Context<'_>, id: UserId) -> Result<Option<UserNode>> {
    Ok(loaders(ctx)?
        .load_one(UserKey(id))
        .await?
        .map(UserNode::loaded))
}

async fn load_chat(ctx: &Context<'_>, id: ChatId) -> Result<Option<ChatNode>> {
    Ok(loaders(ctx)?
        .load_one(ChatKey(id))
        .await?
        .map(ChatNode::loaded))
}

async fn load_member(ctx: &Context<'_>, chat: ChatId, user: UserId) -> Result<Option<MemberNode>> {
    let key = MembershipKey {
        chat_id: chat,
        user_id: user,
    };
    Ok(loaders(ctx)?.load_one(key).await?.map(MemberNode))
}

/// The caller's unread count in a chat.
async fn my_unread_count(ctx: &Context<'_>, chat: ChatId) -> Result<UnreadCount> {
    UnreadCount::load(ctx, chat, caller_id(ctx)?).await
}

/// The caller's unread mentions in a chat.
async fn my_unread_mention_count(ctx: &Context<'_>, chat: ChatId) -> Result<UnreadCount> {
    UnreadCount::load_mentions(ctx, chat, caller_id(ctx)?).await
}

/// Whether the caller muted a chat (false once they are not in it).
async fn my_membership_muted(ctx: &Context<'_>, chat_id: ChatId) -> Result<bool> {
    let user_id = caller_id(ctx)?;
    let member = loaders(ctx)?
        .load_one(MembershipKey { chat_id, user_id })
        .await?;
    Ok(member.is_some_and(|m| m.muted))
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

pub mod chat;
pub mod inbox;

chat_event! {
    /// The chat's settings changed, or its messages were cleared: re-read it.
    ChatUpdated {} {
        /// The chat as it is now.
        async fn chat(&self, ctx: &Context<'_>) -> Result<Option<ChatNode>> {
            load_chat(ctx, self.chat_id).await
        }
    }
}

/// The subscriber fell behind and events were missed: re-query (e.g. `messages(after:
/// lastCursor)`) or resubscribe with `chatEvents(after: lastCursor)`. The feed goes on.
pub struct ResyncRequired {
    chat_id: Option<ChatId>,
    last_message_id: Option<MessageId>,
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
            .map(|id| cursor::encode(MESSAGE_CURSOR, &[id.0]))
    }
}
