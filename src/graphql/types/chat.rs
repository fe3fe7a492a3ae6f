//! The `Chat` type's fields.

use async_graphql::{Context, ID, Object, Result};

use super::{
    ChatNode, MemberConnection, MemberNode, MessageConnection, MessageNode, MessagePageArgs,
    SessionConnection, SessionNode, StatisticsNode, UnreadCount, UserNode, connection,
    message_page, statistics_range,
};
use crate::db;
use crate::domain::{members, pins, sessions, statistics, threads};
use crate::graphql::loaders::{MemberCountKey, MembershipKey, MessageKey, TagsKey, UserKey};
use crate::graphql::scalars::{DateTime, stored_json};
use crate::graphql::{app, caller_id, loaders, with_checked_memberships};
use crate::vocabulary::cursor::PageRequest;
use crate::vocabulary::enums::{ChatKind, ChatStatus};

impl ChatNode {
    async fn my_member(&self, ctx: &Context<'_>) -> Result<Option<db::members::Member>> {
        let user_id = caller_id(ctx)?;
        loaders(ctx)?
            .load_one(MembershipKey {
                chat_id: self.0.id,
                user_id,
            })
            .await
    }
}

/// A conversation: direct, group or assistant.
#[Object(name = "Chat")]
impl ChatNode {
    /// The globally unique, opaque id.
    // `pub(super)`: the `Node` interface in the parent module calls it.
    pub(super) async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Direct, group or assistant chat.
    async fn kind(&self, ctx: &Context<'_>) -> Result<ChatKind> {
        Ok(self.row(ctx).await?.kind)
    }
    /// Application-defined grouping label.
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.category.as_deref())
    }
    /// Title.
    async fn name(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.name.as_deref())
    }
    /// Longer description.
    async fn description(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.description.as_deref())
    }
    /// Avatar image URL.
    async fn avatar_url(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.avatar_url.as_deref())
    }
    /// When the chat was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.created_at))
    }
    /// When the chat's settings last changed.
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.updated_at))
    }
    /// When the last message was sent (or the chat created); the chat list's order.
    async fn last_activity_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.last_activity_at))
    }
    /// The application's own id for this conversation (see `CreateChatInput.externalKey`).
    async fn external_key(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.external_key.as_deref())
    }
    /// ACTIVE or ARCHIVED.
    async fn status(&self, ctx: &Context<'_>) -> Result<ChatStatus> {
        Ok(self.row(ctx).await?.status)
    }
    /// Labels to filter the chat list by, in alphabetical order.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        Ok(loaders(ctx)?
            .load_one(TagsKey(self.0.id))
            .await?
            .unwrap_or_default())
    }
    /// The newest message.
    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<MessageNode>> {
        let Some(id) = self.row(ctx).await?.last_message_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(MessageKey(id))
            .await?
            .map(MessageNode::loaded))
    }
    /// The user who created the chat.
    async fn created_by(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let Some(id) = self.row(ctx).await?.created_by else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(UserKey(id))
            .await?
            .map(UserNode::loaded))
    }
    /// How many members the chat has.
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = loaders(ctx)?.load_one(MemberCountKey(self.0.id)).await?;
        Ok(i32::try_from(count.unwrap_or(0)).unwrap_or(i32::MAX))
    }
    /// The members, in the order they were first added (user id order).
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<MemberConnection> {
        let app = app(ctx)?;
        let page = PageRequest::forward(first, after, app.config().max_page_size)?;
        let page = members::members(app, caller_id(ctx)?, self.0.id, &page).await?;
        Ok(connection(page, members::member_cursor, MemberNode))
    }
    /// The chat's sessions, newest first.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SessionConnection> {
        let app = app(ctx)?;
        let page = PageRequest::forward(first, after, app.config().max_page_size)?;
        let caller = caller_id(ctx)?;
        let rows = with_checked_memberships(ctx, async |checked| {
            sessions::list(app, caller, self.0.id, &page, checked).await
        })
        .await?;
        Ok(connection(rows, sessions::session_cursor, SessionNode))
    }
    /// The session a message sent now would join; null when there is none open or it timed
    /// out (the next message then starts one).
    async fn active_session(&self, ctx: &Context<'_>) -> Result<Option<SessionNode>> {
        let (app, caller) = (app(ctx)?, caller_id(ctx)?);
        let session = with_checked_memberships(ctx, async |checked| {
            sessions::active(app, caller, self.0.id, checked).await
        })
        .await?;
        Ok(session.map(SessionNode))
    }
    /// The chat's threads (messages with replies), the one with the latest reply first:
    /// `first` of them (default 20) after the cursor `after`.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn threads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<MessageConnection> {
        let (app, caller) = (app(ctx)?, caller_id(ctx)?);
        let page = PageRequest::forward(first, after, app.config().max_page_size)?;
        let rows = with_checked_memberships(ctx, async |checked| {
            threads::of_chat(app, caller, self.0.id, &page, checked).await
        })
        .await?;
        Ok(connection(rows, threads::thread_cursor, |(root, _)| {
            MessageNode::loaded(root)
        }))
    }
    /// The pinned messages, newest pin first (at most 50).
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(None, None, crate::domain::pins::MAX_PINS_PER_CHAT, child_complexity)"
    )]
    async fn pinned_messages(&self, ctx: &Context<'_>) -> Result<Vec<MessageNode>> {
        let (app, caller) = (app(ctx)?, caller_id(ctx)?);
        let pinned = with_checked_memberships(ctx, async |checked| {
            pins::list(app, caller, self.0.id, checked).await
        })
        .await?;
        Ok(pinned
            .into_iter()
            .map(|p| MessageNode::by_id(p.message_id))
            .collect())
    }
    /// The chat's messages: `first/after` reads oldest→newest, `last/before` reads back
    /// from the newest. With no arguments: the oldest 20. `since`/`until` keep only
    /// messages created at or after / before then.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, last, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        since: Option<DateTime>,
        until: Option<DateTime>,
    ) -> Result<MessageConnection> {
        let args = MessagePageArgs {
            first,
            after,
            last,
            before,
            since,
            until,
        };
        message_page(ctx, self.0.id, args).await
    }
    /// The chat's activity over the messages sent at or after `since` and before `until`
    /// (both optional).
    #[graphql(complexity = "crate::graphql::types::STATISTICS_COST + child_complexity")]
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime>,
        until: Option<DateTime>,
    ) -> Result<StatisticsNode> {
        let (app, caller) = (app(ctx)?, caller_id(ctx)?);
        let range = statistics_range(since, until);
        let figures = with_checked_memberships(ctx, async |checked| {
            statistics::of_chat(app, caller, self.0.id, range, checked).await
        })
        .await?;
        Ok(StatisticsNode(figures))
    }
    /// The caller's membership (null for the admin key).
    async fn my_membership(&self, ctx: &Context<'_>) -> Result<Option<MemberNode>> {
        Ok(self.my_member(ctx).await?.map(MemberNode))
    }
    /// Messages from others after the caller's read watermark: exact up to 999, then 999
    /// with `unreadCountCapped` true.
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(UnreadCount::load(ctx, self.0.id, caller_id(ctx)?)
            .await?
            .shown())
    }
    /// True when there are more unread messages than `unreadCount` says ("999+").
    async fn unread_count_capped(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(UnreadCount::load(ctx, self.0.id, caller_id(ctx)?)
            .await?
            .capped())
    }
    /// Messages after the caller's read watermark that mention them: exact up to 999,
    /// then 999.
    async fn unread_mention_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(UnreadCount::load_mentions(ctx, self.0.id, caller_id(ctx)?)
            .await?
            .shown())
    }
    /// Whether the caller pinned this chat.
    async fn pinned(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.my_member(ctx).await?.is_some_and(|m| m.pinned))
    }
    /// Whether the caller muted this chat.
    async fn muted(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.my_member(ctx).await?.is_some_and(|m| m.muted))
    }
    /// Free-form data the application attached.
    async fn metadata(&self, ctx: &Context<'_>) -> Result<Option<serde_json::Value>> {
        Ok(stored_json(self.row(ctx).await?.metadata.as_deref()))
    }
}
