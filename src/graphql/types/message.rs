//! The `Message` type's fields.

use async_graphql::{Context, ID, Object, Result};

use super::{
    ChatNode, MessageConnection, MessageNode, SessionNode, UserConnection, UserNode,
    blocked_by_caller, connection,
};
use crate::db;
use crate::db::reactions::ReactionGroup;
use crate::domain::reactions::MAX_GROUP_USERS;
use crate::domain::{messages, threads, users};
use crate::graphql::attachments::AttachmentNode;
use crate::graphql::caller_id;
use crate::graphql::loaders::{
    AttachmentsKey, ChatMembersKey, EditsKey, MentionsKey, MyReactionsKey, PinKey, ReactionsKey,
    ReactorsKey, SessionKey, ThreadKey, ThreadUnreadKey, UserKey,
};
use crate::graphql::scalars::{DateTime, stored_json};
use crate::graphql::{app, loaders};
use crate::vocabulary::cursor::{Page, PageRequest, list_size};
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
    /// True when the caller blocked the sender: the message stays in the history (it is
    /// the same for every member), for the app to collapse or hide.
    async fn sender_blocked(&self, ctx: &Context<'_>) -> Result<bool> {
        match self.row(ctx).await?.sender_id {
            Some(sender) => blocked_by_caller(ctx, sender).await,
            None => Ok(false),
        }
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
    /// How many messages reply to this one (its thread).
    async fn reply_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let thread = loaders(ctx)?.load_one(ThreadKey(self.0.id)).await?;
        Ok(i32::try_from(thread.map_or(0, |t| t.replies)).unwrap_or(i32::MAX))
    }
    /// When the latest reply was sent (null without replies).
    async fn last_reply_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        let thread = loaders(ctx)?.load_one(ThreadKey(self.0.id)).await?;
        Ok(thread.and_then(|t| t.last_reply_at).map(DateTime))
    }
    /// The replies to this message (its thread): `first/after` oldest first, `last/before`
    /// back from the newest; with no arguments the oldest 20.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, last, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn replies(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MessageConnection> {
        let app = app(ctx)?;
        let page = PageRequest::from_args(first, after, last, before, app.config().max_page_size)?;
        let rows = threads::replies(app, self.0.id, &page).await?;
        Ok(connection(
            rows,
            messages::message_cursor,
            MessageNode::loaded,
        ))
    }
    /// The caller's unread replies in this message's thread: replies from others after
    /// both their read watermark in the chat and their read mark in the thread
    /// (`markThreadRead`).
    async fn thread_unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let key = ThreadUnreadKey {
            message_id: self.0.id,
            user_id: caller_id(ctx)?,
        };
        let count = loaders(ctx)?.load_one(key).await?;
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
    /// The members it mentions (by id when sent, or as `@username` in its content, edits
    /// included), in user-id order. Empty once retracted.
    async fn mentions(&self, ctx: &Context<'_>) -> Result<Vec<UserNode>> {
        let users = loaders(ctx)?
            .load_one(MentionsKey(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(users.into_iter().map(UserNode::by_id).collect())
    }
    /// The files it carries, in the order they were sent. Empty once retracted.
    async fn attachments(&self, ctx: &Context<'_>) -> Result<Vec<AttachmentNode>> {
        let attachments = loaders(ctx)?
            .load_one(AttachmentsKey(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(attachments.into_iter().map(AttachmentNode).collect())
    }
    /// Reactions, one group per emoji, in the order each emoji was first used. Empty once
    /// retracted.
    async fn reactions(&self, ctx: &Context<'_>) -> Result<Vec<ReactionGroupNode>> {
        let groups = loaders(ctx)?
            .load_one(ReactionsKey(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(groups.into_iter().map(ReactionGroupNode).collect())
    }
    /// Earlier versions of the content, oldest first: the newest `last` (default 20, at
    /// most the page size limit). Empty for a message never edited, and once retracted.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(None, last, DEFAULT_EDITS, child_complexity)"
    )]
    async fn edits(&self, ctx: &Context<'_>, last: Option<i32>) -> Result<Vec<MessageEditNode>> {
        let max = app(ctx)?.config().max_page_size;
        let limit = list_size("last", last, DEFAULT_EDITS, max)?;
        let key = EditsKey {
            message_id: self.0.id,
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        let mut edits = loaders(ctx)?.load_one(key).await?.unwrap_or_default();
        edits.reverse();
        Ok(edits.into_iter().map(MessageEditNode).collect())
    }
    /// True while a manager has it pinned in its chat.
    async fn pinned(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(loaders(ctx)?.load_one(PinKey(self.0.id)).await?.is_some())
    }
    /// When it was pinned (null unless pinned).
    async fn pinned_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        let pin = loaders(ctx)?.load_one(PinKey(self.0.id)).await?;
        Ok(pin.map(|p| DateTime(p.pinned_at)))
    }
    /// Who pinned it (null unless pinned, or once their account is deleted).
    async fn pinned_by(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let pin = loaders(ctx)?.load_one(PinKey(self.0.id)).await?;
        Ok(pin.and_then(|p| p.pinned_by).map(UserNode::by_id))
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

/// How many earlier versions `Message.edits` lists without `last`.
const DEFAULT_EDITS: usize = 20;
/// How many users `ReactionGroup.users` lists without `first`.
const DEFAULT_GROUP_USERS: usize = 3;

/// The reactions with one emoji on a message.
pub struct ReactionGroupNode(ReactionGroup);

/// The reactions with one emoji on a message.
#[Object(name = "ReactionGroup")]
impl ReactionGroupNode {
    /// The emoji, fully qualified (`❤️`, not `❤`).
    async fn emoji(&self) -> &str {
        &self.0.emoji
    }
    /// How many users reacted with it.
    async fn count(&self) -> i32 {
        i32::try_from(self.0.count).unwrap_or(i32::MAX)
    }
    /// True when the caller is one of them.
    async fn reacted_by_me(&self, ctx: &Context<'_>) -> Result<bool> {
        let key = MyReactionsKey {
            message_id: self.0.message_id,
            user_id: caller_id(ctx)?,
        };
        let mine = loaders(ctx)?.load_one(key).await?.unwrap_or_default();
        Ok(mine.contains(&self.0.emoji))
    }
    /// The first users who reacted with it, in the order they did: `first` of them
    /// (default 3, at most 20), for "Ann, Bob and 5 others".
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, DEFAULT_GROUP_USERS, child_complexity)"
    )]
    async fn users(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<UserNode>> {
        let limit = list_size("first", first, DEFAULT_GROUP_USERS, MAX_GROUP_USERS)?;
        let key = ReactorsKey {
            message_id: self.0.message_id,
            emoji: self.0.emoji.clone(),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        let users = loaders(ctx)?.load_one(key).await?.unwrap_or_default();
        Ok(users.into_iter().map(UserNode::by_id).collect())
    }
}

/// An earlier version of a message's content, kept when the sender edited it.
pub struct MessageEditNode(db::message_edits::MessageEdit);

/// An earlier version of a message's content, kept when the sender edited it.
#[Object(name = "MessageEdit")]
impl MessageEditNode {
    /// The content as it was.
    async fn content(&self) -> &str {
        &self.0.content
    }
    /// When this content was written: when the message was sent, or edited before.
    async fn written_at(&self) -> DateTime {
        DateTime(self.0.written_at)
    }
    /// When an edit replaced it.
    async fn replaced_at(&self) -> DateTime {
        DateTime(self.0.replaced_at)
    }
}
