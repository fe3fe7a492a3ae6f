//! Chat and membership queries and mutations (thin: parse ids, call `domain::chats` and
//! `domain::members`, wrap).

use async_graphql::{Context, InputObject, Object, Result};

use super::types::{ChatConnection, ChatNode, MemberNode, SessionNode, connection};
use super::{absent_unless_visible, app, caller_id, with_checked_memberships};
use crate::db::chats::{ChatListFilter, ChatOrder};
use crate::domain::chats::{self, CreateChat, UpdateChat};
use crate::domain::members::{self, MemberFlag};
use crate::domain::sessions;
use crate::graphql::scalars::DateTime;
use crate::vocabulary::cursor::PageRequest;
use crate::vocabulary::enums::{ChatKind, ChatOrderField, ChatStatus, MemberRole, SortDirection};
use crate::vocabulary::ids::{ChatId, UserId};

/// Which of my chats to list.
#[derive(InputObject, Default)]
pub struct ChatFilter {
    /// Only chats of this kind.
    pub kind: Option<ChatKind>,
    /// Only chats with this category.
    pub category: Option<String>,
    /// Only chats with unread messages.
    pub unread_only: Option<bool>,
    /// Only ACTIVE (or only ARCHIVED) chats.
    pub status: Option<ChatStatus>,
    /// Only chats with this tag.
    pub tag: Option<String>,
    /// Only chats whose ordering time (`orderBy.field`: last activity by default) is at or
    /// after this.
    pub since: Option<DateTime>,
    /// Only chats whose ordering time is before this.
    pub until: Option<DateTime>,
}

/// How to order the chat list (pinned chats always come first).
#[derive(InputObject)]
pub struct ChatOrderInput {
    /// The time to order by.
    pub field: ChatOrderField,
    /// Newest (DESC, the default) or oldest first.
    #[graphql(default_with = "SortDirection::Desc")]
    pub direction: SortDirection,
}

/// Chat queries.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// A chat the caller is a member of; null when there is no such chat or the caller is
    /// not in it.
    async fn chat(&self, ctx: &Context<'_>, id: ChatId) -> Result<Option<ChatNode>> {
        let (app, caller) = (app(ctx)?, caller_id(ctx)?);
        let chat = with_checked_memberships(ctx, async |checked| {
            chats::get(app, caller, id, checked).await
        })
        .await;
        Ok(absent_unless_visible(chat)?.map(ChatNode::loaded))
    }

    /// The caller's chat whose `externalKey` this is (it created it with the key); null
    /// when there is none. A chat the caller left is a `CONFLICT`.
    async fn chat_by_external_key(
        &self,
        ctx: &Context<'_>,
        external_key: String,
    ) -> Result<Option<ChatNode>> {
        let chat = chats::chat_by_external_key(app(ctx)?, caller_id(ctx)?, &external_key).await?;
        Ok(chat.map(ChatNode::loaded))
    }

    /// The caller's chats: pinned first, then by `orderBy` (default: `lastActivityAt`,
    /// newest first). A cursor belongs to its order.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn chats(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ChatFilter>,
        order_by: Option<ChatOrderInput>,
    ) -> Result<ChatConnection> {
        let app = app(ctx)?;
        let page = PageRequest::forward(first, after, app.config().max_page_size)?;
        let filter = filter.unwrap_or_default();
        let order = order_by.map_or_else(ChatOrder::default, |o| ChatOrder {
            field: o.field,
            ascending: o.direction == SortDirection::Asc,
        });
        let filter = ChatListFilter {
            kind: filter.kind,
            category: filter.category,
            unread_only: filter.unread_only.unwrap_or(false),
            status: filter.status,
            tag: filter.tag,
            since: filter.since.map(|t| t.0),
            until: filter.until.map(|t| t.0),
            order,
        };
        let rows = chats::list(app, caller_id(ctx)?, &filter, &page).await?;
        Ok(connection(
            rows,
            |(chat, member)| chats::chat_list_cursor(order, chat, member),
            |(chat, _)| ChatNode::loaded(chat),
        ))
    }
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Starts a new session of the chat (members); the open one, if any, ends now.
    async fn start_session(&self, ctx: &Context<'_>, chat_id: ChatId) -> Result<SessionNode> {
        let session = sessions::start(app(ctx)?, caller_id(ctx)?, chat_id).await?;
        Ok(SessionNode(session))
    }

    /// Ends the chat's open session (members); the next message starts a new one. Returns
    /// the ended session, or null when none was open.
    async fn end_session(&self, ctx: &Context<'_>, chat_id: ChatId) -> Result<Option<SessionNode>> {
        let session = sessions::end(app(ctx)?, caller_id(ctx)?, chat_id).await?;
        Ok(session.map(SessionNode))
    }

    /// Creates a chat; the caller becomes its OWNER and `memberIds` its MEMBERs.
    async fn create_chat(&self, ctx: &Context<'_>, input: CreateChat) -> Result<ChatNode> {
        Ok(ChatNode::loaded(
            chats::create(app(ctx)?, caller_id(ctx)?, input).await?,
        ))
    }

    /// The direct chat between the caller and `userId`, created on first use. Idempotent.
    async fn open_direct_chat(&self, ctx: &Context<'_>, user_id: UserId) -> Result<ChatNode> {
        Ok(ChatNode::loaded(
            chats::open_direct(app(ctx)?, caller_id(ctx)?, user_id).await?,
        ))
    }

    /// Changes a chat's settings (OWNER/ADMIN).
    async fn update_chat(
        &self,
        ctx: &Context<'_>,
        id: ChatId,
        input: UpdateChat,
    ) -> Result<ChatNode> {
        Ok(ChatNode::loaded(
            chats::update(app(ctx)?, caller_id(ctx)?, id, input).await?,
        ))
    }

    /// Deletes a chat with all its messages, in one transaction (OWNER).
    async fn delete_chat(&self, ctx: &Context<'_>, id: ChatId) -> Result<bool> {
        Ok(chats::delete(app(ctx)?, caller_id(ctx)?, id).await?)
    }

    /// Deletes every message but keeps the chat (OWNER/ADMIN); returns how many were deleted.
    async fn clear_chat(&self, ctx: &Context<'_>, id: ChatId) -> Result<i32> {
        Ok(chats::clear(app(ctx)?, caller_id(ctx)?, id).await?)
    }

    /// Adds users to a chat (OWNER/ADMIN); returns every requested membership.
    async fn add_members(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        user_ids: Vec<UserId>,
        role: Option<MemberRole>,
    ) -> Result<Vec<MemberNode>> {
        let members =
            members::add_members(app(ctx)?, caller_id(ctx)?, chat_id, &user_ids, role).await?;
        Ok(members.into_iter().map(MemberNode).collect())
    }

    /// Removes a member (OWNER/ADMIN).
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        user_id: UserId,
    ) -> Result<bool> {
        Ok(members::remove_member(app(ctx)?, caller_id(ctx)?, chat_id, user_id).await?)
    }

    /// The caller leaves a chat; the last OWNER must hand over first.
    async fn leave_chat(&self, ctx: &Context<'_>, chat_id: ChatId) -> Result<bool> {
        Ok(members::leave(app(ctx)?, caller_id(ctx)?, chat_id).await?)
    }

    /// Changes a member's role (OWNER/ADMIN; only an OWNER grants OWNER or ADMIN).
    async fn set_member_role(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        user_id: UserId,
        role: MemberRole,
    ) -> Result<MemberNode> {
        Ok(MemberNode(
            members::set_role(app(ctx)?, caller_id(ctx)?, chat_id, user_id, role).await?,
        ))
    }

    /// Pins or unpins a chat in the caller's list.
    async fn set_chat_pinned(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        pinned: bool,
    ) -> Result<MemberNode> {
        let member = members::set_flag(
            app(ctx)?,
            caller_id(ctx)?,
            chat_id,
            MemberFlag::Pinned,
            pinned,
        )
        .await?;
        Ok(MemberNode(member))
    }

    /// Mutes or unmutes a chat for the caller.
    async fn set_chat_muted(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        muted: bool,
    ) -> Result<MemberNode> {
        let member = members::set_flag(
            app(ctx)?,
            caller_id(ctx)?,
            chat_id,
            MemberFlag::Muted,
            muted,
        )
        .await?;
        Ok(MemberNode(member))
    }
}
