//! The `Message` type's fields.

use async_graphql::{Context, ID, Object, Result};

use super::{ChatNode, MessageNode, SessionNode, UserConnection, UserNode, connection};
use crate::db;
use crate::domain::{messages, users};
use crate::graphql::loaders::{ChatMembersKey, ReplyCountKey, SessionKey, UserKey};
use crate::graphql::scalars::{DateTime, stored_json};
use crate::graphql::{app, loaders};
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::enums::{MessageKind, MessageRole, MessageStatus, StreamState};

impl MessageNode {
    /// The memberships whose watermarks say who read the message
    /// ([`messages::audience`]).
    async fn others(&self, ctx: &Context<'_>) -> Result<Vec<db::members::Member>> {
        let row = self.row(ctx).await?;
        let members = loaders(ctx)?
            .load_one(ChatMembersKey(row.chat_id))
            .await?
            .unwrap_or_default();
        Ok(messages::audience(row, members))
    }
}

/// A message in a chat.
#[Object(name = "Message")]
impl MessageNode {
    /// The globally unique, opaque id.
    // `pub(super)`: the `Node` interface in the parent module calls it.
    pub(super) async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// This message's position in its chat, usable as `after`/`before` and for
    /// `chatEvents(after:)`.
    async fn cursor(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(messages::message_cursor(self.row(ctx).await?))
    }
    /// The chat it was sent to.
    async fn chat(&self, ctx: &Context<'_>) -> Result<ChatNode> {
        Ok(ChatNode::by_id(self.row(ctx).await?.chat_id))
    }
    /// Who sent it (null once the sender's account is deleted).
    async fn sender(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        // The foreign key is cleared when the account is deleted: an id means a user.
        Ok(self.row(ctx).await?.sender_id.map(UserNode::by_id))
    }
    /// LLM-style role.
    async fn role(&self, ctx: &Context<'_>) -> Result<MessageRole> {
        Ok(self.row(ctx).await?.role)
    }
    /// What it carries.
    async fn kind(&self, ctx: &Context<'_>) -> Result<MessageKind> {
        Ok(self.row(ctx).await?.kind)
    }
    /// The text; empty once retracted.
    async fn content(&self, ctx: &Context<'_>) -> Result<&str> {
        let row = self.row(ctx).await?;
        Ok(if row.retracted_at.is_some() {
            ""
        } else {
            &row.content
        })
    }
    /// Free-form data; null once retracted.
    async fn data(&self, ctx: &Context<'_>) -> Result<Option<serde_json::Value>> {
        let row = self.row(ctx).await?;
        if row.retracted_at.is_some() {
            return Ok(None);
        }
        Ok(stored_json(row.data.as_deref()))
    }
    /// The message this one replies to.
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
        Ok(self.row(ctx).await?.parent_id.map(MessageNode::by_id))
    }
    /// How many messages reply to this one.
    async fn reply_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = loaders(ctx)?.load_one(ReplyCountKey(self.0.id)).await?;
        Ok(i32::try_from(count.unwrap_or(0)).unwrap_or(i32::MAX))
    }
    /// When it was sent.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.created_at))
    }
    /// When its content was last edited.
    async fn edited_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        Ok(self.row(ctx).await?.edited_at.map(DateTime))
    }
    /// True once the sender retracted it (a tombstone).
    async fn retracted(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.row(ctx).await?.retracted_at.is_some())
    }
    /// When it was retracted.
    async fn retracted_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        Ok(self.row(ctx).await?.retracted_at.map(DateTime))
    }
    /// Delivery state as the sender sees it: READ when every other member read it,
    /// DELIVERED when it reached every other member, else SENT.
    async fn status(&self, ctx: &Context<'_>) -> Result<MessageStatus> {
        let others = self.others(ctx).await?;
        Ok(messages::status(self.0.id, &others))
    }
    /// The other members who have read it, in user-id order.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn read_by(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let page = PageRequest::forward(first, after, app(ctx)?.config().max_page_size)?;
        let others = self.others(ctx).await?;
        let readers = messages::readers(self.0.id, &others, &page)?;
        let loaded = loaders(ctx)?
            .load_many(readers.iter().map(|u| UserKey(*u)))
            .await?;
        let rows: Vec<db::users::User> = readers
            .iter()
            .filter_map(|u| loaded.get(&UserKey(*u)).cloned())
            .collect();
        Ok(connection(
            Page::from_rows(rows, &page),
            users::user_cursor,
            UserNode::loaded,
        ))
    }
    /// State of a streamed assistant reply (null for ordinary messages).
    async fn stream_state(&self, ctx: &Context<'_>) -> Result<Option<StreamState>> {
        Ok(self.row(ctx).await?.stream_state)
    }
    /// The sender's idempotency key, if it gave one.
    async fn client_id(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.client_id.as_deref())
    }
    /// The session the message was sent in (null for messages from before sessions).
    async fn session(&self, ctx: &Context<'_>) -> Result<Option<SessionNode>> {
        let Some(id) = self.row(ctx).await?.session_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(SessionKey(id))
            .await?
            .map(SessionNode))
    }
    /// The trace id the sender gave with `sendMessage` or its latest
    /// `appendMessageContent`, to follow an assistant pipeline's trace through chatql.
    async fn trace_id(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.trace_id.as_deref())
    }
}
