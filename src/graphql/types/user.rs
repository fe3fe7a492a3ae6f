//! The `User` type's fields.

use async_graphql::{Context, ID, Object, Result};

use super::{StatisticsNode, UserNode, blocked_by_caller, statistics_range};
use crate::domain::statistics;
use crate::graphql::scalars::{DateTime, stored_json};
use crate::graphql::{app, caller};

/// A person or bot that takes part in chats.
#[Object(name = "User")]
impl UserNode {
    /// The globally unique, opaque id.
    // `pub(super)`: the `Node` interface in the parent module calls it.
    pub(super) async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Unique handle.
    async fn username(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.row(ctx).await?.username)
    }
    /// Name shown in the UI (falls back to the username).
    async fn display_name(&self, ctx: &Context<'_>) -> Result<&str> {
        let row = self.row(ctx).await?;
        Ok(row.display_name.as_deref().unwrap_or(&row.username))
    }
    /// Avatar image URL.
    async fn avatar_url(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.row(ctx).await?.avatar_url.as_deref())
    }
    /// True for bots and AI agents.
    async fn is_bot(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.row(ctx).await?.is_bot)
    }
    /// True while the user holds an open subscription connection.
    async fn online(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(app(ctx)?.presence().is_online(self.0.id.0))
    }
    /// When the user was last connected or active.
    async fn last_seen_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        Ok(self.row(ctx).await?.last_seen_at.map(DateTime))
    }
    /// True when the caller blocked this user (see `blockUser`).
    async fn blocked_by_me(&self, ctx: &Context<'_>) -> Result<bool> {
        blocked_by_caller(ctx, self.0.id).await
    }
    /// When the user was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.created_at))
    }
    /// When the user was last changed.
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.updated_at))
    }
    /// Activity in the chats the user is a member of, over the messages sent at or after
    /// `since` and before `until` (both optional): the user themself or the admin key.
    #[graphql(complexity = "crate::graphql::types::STATISTICS_COST + child_complexity")]
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime>,
        until: Option<DateTime>,
    ) -> Result<StatisticsNode> {
        let range = statistics_range(since, until);
        let figures = statistics::of_user(app(ctx)?, caller(ctx), self.0.id, range).await?;
        Ok(StatisticsNode(figures))
    }
    /// Free-form data the application attached.
    async fn metadata(&self, ctx: &Context<'_>) -> Result<Option<serde_json::Value>> {
        Ok(stored_json(self.row(ctx).await?.metadata.as_deref()))
    }
}
