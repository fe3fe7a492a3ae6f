//! The `Member` type's fields.

use async_graphql::{Context, ID, Object, Result};

use super::{ChatNode, MemberNode, UnreadCount, UserNode};
use crate::error::AppError;
use crate::graphql::loaders::UserKey;
use crate::graphql::scalars::DateTime;
use crate::graphql::{caller_id, loaders};
use crate::vocabulary::enums::MemberRole;
use crate::vocabulary::ids::MemberId;

/// A user's membership in a chat, with their role and read state.
#[Object(name = "Member")]
impl MemberNode {
    /// The globally unique, opaque id of this membership (chat and user).
    // `pub(super)`: the `Node` interface in the parent module calls it.
    pub(super) async fn id(&self) -> ID {
        self.member_id().into()
    }
    /// The member.
    async fn user(&self, ctx: &Context<'_>) -> Result<UserNode> {
        loaders(ctx)?
            .load_one(UserKey(self.0.user_id))
            .await?
            .map(UserNode::loaded)
            .ok_or_else(|| AppError::NotFound("user").into())
    }
    /// The chat.
    async fn chat(&self) -> ChatNode {
        ChatNode::by_id(self.0.chat_id)
    }
    /// What the member may do.
    async fn role(&self) -> MemberRole {
        self.0.role
    }
    /// When the member joined.
    async fn joined_at(&self) -> DateTime {
        DateTime(self.0.joined_at)
    }
    /// The newest message the member has read (their read watermark).
    async fn last_read_message_id(&self) -> Option<ID> {
        self.0.last_read_message_id.map(|id| id.into())
    }
    /// When the read watermark last moved.
    async fn last_read_at(&self) -> Option<DateTime> {
        self.0.last_read_at.map(DateTime)
    }
    /// The newest message delivered to the member's device (delivery watermark).
    async fn last_delivered_message_id(&self) -> Option<ID> {
        self.0.last_delivered_message_id.map(|id| id.into())
    }
    /// Messages from others after the member's read watermark: exact up to 999, then 999
    /// with `unreadCountCapped` true.
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = UnreadCount::load(ctx, self.0.chat_id, self.0.user_id).await?;
        Ok(count.shown())
    }
    /// Messages after the member's read watermark that mention them: exact up to 999,
    /// then 999.
    async fn unread_mention_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = UnreadCount::load_mentions(ctx, self.0.chat_id, self.0.user_id).await?;
        Ok(count.shown())
    }
    /// True when there are more unread messages than `unreadCount` says ("999+").
    async fn unread_count_capped(&self, ctx: &Context<'_>) -> Result<bool> {
        let count = UnreadCount::load(ctx, self.0.chat_id, self.0.user_id).await?;
        Ok(count.capped())
    }
    /// Pinned to the top of the member's chat list. The member's own setting: null on
    /// anyone else's membership.
    async fn pinned(&self, ctx: &Context<'_>) -> Option<bool> {
        self.is_callers(ctx).then_some(self.0.pinned)
    }
    /// Notifications muted by the member. The member's own setting: null on anyone else's
    /// membership.
    async fn muted(&self, ctx: &Context<'_>) -> Option<bool> {
        self.is_callers(ctx).then_some(self.0.muted)
    }
}

impl MemberNode {
    /// The key of this membership.
    pub fn member_id(&self) -> MemberId {
        MemberId {
            chat: self.0.chat_id,
            user: self.0.user_id,
        }
    }

    /// Whether this is the caller's own membership.
    fn is_callers(&self, ctx: &Context<'_>) -> bool {
        caller_id(ctx).ok() == Some(self.0.user_id)
    }
}
