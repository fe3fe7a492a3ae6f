//! User queries and mutations (thin: parse ids, call `domain::users`, wrap).

use async_graphql::{Context, Object, Result};

use super::types::{UserConnection, UserNode, connection};
use super::{app, caller, caller_id};
use crate::domain::blocks;
use crate::domain::users::{self, CreateUser, UpdateUser};
use crate::vocabulary::cursor::PageRequest;
use crate::vocabulary::ids::UserId;

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The calling user.
    async fn me(&self, ctx: &Context<'_>) -> Result<UserNode> {
        Ok(UserNode::loaded(users::me(app(ctx)?, caller(ctx)).await?))
    }

    /// A user by `id` or by `username` (exactly one).
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<UserId>,
        username: Option<String>,
    ) -> Result<Option<UserNode>> {
        Ok(users::find(app(ctx)?, caller(ctx), id, username.as_deref())
            .await?
            .map(UserNode::loaded))
    }

    /// Users in id order, optionally those whose username or display name contains `search`.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let app = app(ctx)?;
        let page = PageRequest::forward(first, after, app.config().max_page_size)?;
        let rows = users::list(app, caller(ctx), search.as_deref(), &page).await?;
        Ok(connection(rows, users::user_cursor, UserNode::loaded))
    }

    /// The users the caller blocked, newest block first (at most 1,000).
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(None, None, crate::domain::blocks::MAX_BLOCKS, child_complexity)"
    )]
    async fn blocked_users(&self, ctx: &Context<'_>) -> Result<Vec<UserNode>> {
        let blocked = blocks::blocked_by(app(ctx)?, caller_id(ctx)?).await?;
        Ok(blocked.into_iter().map(UserNode::by_id).collect())
    }
}

/// User mutations.
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a user (admin key).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUser) -> Result<UserNode> {
        Ok(UserNode::loaded(
            users::create(app(ctx)?, caller(ctx), input).await?,
        ))
    }

    /// Updates a user (admin key, or the user themself).
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: UserId,
        input: UpdateUser,
    ) -> Result<UserNode> {
        Ok(UserNode::loaded(
            users::update(app(ctx)?, caller(ctx), id, input).await?,
        ))
    }

    /// Deletes a user (admin key). Their messages stay, without a sender; their tokens stop
    /// working at once (open sockets close with 4403) and their chats get `MemberLeft`
    /// (a group whose only OWNER they were passes to its longest-standing ADMIN, else
    /// member).
    async fn delete_user(&self, ctx: &Context<'_>, id: UserId) -> Result<bool> {
        Ok(users::delete(app(ctx)?, caller(ctx), id).await?)
    }

    /// Mints a token that acts as the user (admin key). Default lifetime 24 hours.
    async fn issue_token(
        &self,
        ctx: &Context<'_>,
        user_id: UserId,
        ttl_seconds: Option<i32>,
    ) -> Result<String> {
        Ok(users::issue_token(app(ctx)?, caller(ctx), user_id, ttl_seconds).await?)
    }

    /// Blocks a user: they can no longer open a direct chat with the caller or send into
    /// one they share (nor can the caller, until they unblock); in other shared chats
    /// their messages are flagged `senderBlocked`, never `notify` the caller and never
    /// mention them. They are not told. Blocking twice changes nothing; at most 1,000.
    async fn block_user(&self, ctx: &Context<'_>, user_id: UserId) -> Result<UserNode> {
        blocks::block(app(ctx)?, caller_id(ctx)?, user_id).await?;
        Ok(UserNode::by_id(user_id))
    }

    /// Unblocks a user; unblocking someone not blocked changes nothing.
    async fn unblock_user(&self, ctx: &Context<'_>, user_id: UserId) -> Result<UserNode> {
        blocks::unblock(app(ctx)?, caller_id(ctx)?, user_id).await?;
        Ok(UserNode::by_id(user_id))
    }

    /// Revokes every token issued to the user so far (admin key): requests with them are
    /// UNAUTHENTICATED and sockets holding them close with 4403. Tokens issued afterwards
    /// work.
    async fn revoke_tokens(&self, ctx: &Context<'_>, user_id: UserId) -> Result<bool> {
        Ok(users::revoke_tokens(app(ctx)?, caller(ctx), user_id).await?)
    }
}
