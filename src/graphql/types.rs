//! The entity types of the schema (User, Chat, Member, Message), the `Node` interface and
//! connection helpers. Fields resolve nested entities through the loaders.

use async_graphql::connection::PageInfo;
use async_graphql::{Context, ID, Interface, Object, Result, SimpleObject};

pub use super::connection::connection;
use super::connection::{RelayConnection, connection_type};
use super::lazy::LazyRow;
use super::loaders::{
    ChatKey, ChatMembersKey, MemberCountKey, MembershipKey, MessageKey, ReplyCountKey, UnreadKey,
    UserKey,
};
use super::scalars::{DateTime, stored_json};
use super::{app, caller_id, loaders, with_checked_memberships};
use crate::db;
use crate::domain::messages::UNREAD_COUNT_CAP;
use crate::domain::{members, messages, users};
use crate::error::AppError;
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::enums::{
    ChatKind, MemberRole, MessageKind, MessageRole, MessageStatus, StreamState,
};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// An unread count as loaded: exact up to one above the cap, which tells "exactly the
/// cap" from "more".
#[derive(Clone, Copy)]
pub(crate) struct UnreadCount(i64);

impl UnreadCount {
    /// `user_id`'s unread count in a chat.
    pub(crate) async fn load(ctx: &Context<'_>, chat_id: ChatId, user_id: UserId) -> Result<Self> {
        let count = loaders(ctx)?
            .load_one(UnreadKey { chat_id, user_id })
            .await?;
        Ok(Self(count.unwrap_or(0)))
    }

    /// What a client is shown: exact up to the cap, the cap above it.
    pub(crate) fn shown(self) -> i32 {
        i32::try_from(self.0.min(UNREAD_COUNT_CAP)).unwrap_or(i32::MAX)
    }

    /// True when there are more unread messages than [`UnreadCount::shown`] says.
    pub(crate) fn capped(self) -> bool {
        self.0 > UNREAD_COUNT_CAP
    }
}

connection_type!(UserConnection, UserEdge, UserNode, "users", "user");
connection_type!(ChatConnection, ChatEdge, ChatNode, "chats", "chat");
connection_type!(
    MemberConnection,
    MemberEdge,
    MemberNode,
    "members",
    "member"
);
connection_type!(
    MessageConnection,
    MessageEdge,
    MessageNode,
    "messages",
    "message"
);

/// Anything with a global id (Relay object identification).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "The globally unique, opaque id."))]
pub enum Node {
    /// A user.
    User(UserNode),
    /// A chat.
    Chat(ChatNode),
    /// A message.
    Message(MessageNode),
}

/// A person or bot that takes part in chats: the row, or only the id until a field needs
/// more, so a message's `sender { id }` costs no query.
#[derive(Clone)]
pub struct UserNode(LazyRow<UserId, db::users::User>);

impl UserNode {
    /// A user whose row is at hand.
    pub fn loaded(row: db::users::User) -> Self {
        Self(LazyRow::loaded(row.id, row))
    }

    /// A user known by id only (a foreign key, so the row exists); its row loads through
    /// the request's loaders when a field other than `id` is asked for.
    pub fn by_id(id: UserId) -> Self {
        Self(LazyRow::by_id(id))
    }

    async fn row(&self, ctx: &Context<'_>) -> Result<&db::users::User> {
        self.0.get(ctx, UserKey(self.0.id), "user").await
    }
}

/// A person or bot that takes part in chats.
#[Object(name = "User")]
impl UserNode {
    /// The globally unique, opaque id.
    async fn id(&self) -> ID {
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
    /// When the user was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.created_at))
    }
    /// When the user was last changed.
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(DateTime(self.row(ctx).await?.updated_at))
    }
    /// Free-form data the application attached.
    async fn metadata(&self, ctx: &Context<'_>) -> Result<Option<serde_json::Value>> {
        Ok(stored_json(self.row(ctx).await?.metadata.as_deref()))
    }
}

/// A conversation: direct, group or assistant.
/// The row, or only the id until a field needs more, so a message's `chat { id }` costs no
/// query.
#[derive(Clone)]
pub struct ChatNode(LazyRow<ChatId, db::chats::Chat>);

impl ChatNode {
    /// A chat whose row is at hand.
    pub fn loaded(row: db::chats::Chat) -> Self {
        Self(LazyRow::loaded(row.id, row))
    }

    /// A chat known by id only (a foreign key, so the row exists); its row loads through
    /// the request's loaders when a field other than `id` is asked for.
    pub fn by_id(id: ChatId) -> Self {
        Self(LazyRow::by_id(id))
    }

    async fn row(&self, ctx: &Context<'_>) -> Result<&db::chats::Chat> {
        self.0.get(ctx, ChatKey(self.0.id), "chat").await
    }

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
    async fn id(&self) -> ID {
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
    /// The chat's messages: `first/after` reads oldest→newest, `last/before` reads back
    /// from the newest. With no arguments: the oldest 20.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MessageConnection> {
        message_page(ctx, self.0.id, first, after, last, before).await
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

/// Resolves a page of a chat's messages for `Chat.messages` and `Query.messages`.
pub async fn message_page(
    ctx: &Context<'_>,
    chat: ChatId,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> Result<MessageConnection> {
    let app = app(ctx)?;
    let page = PageRequest::from_args(first, after, last, before, app.config().max_page_size)?;
    let caller = caller_id(ctx)?;
    let rows = with_checked_memberships(ctx, async |checked| {
        messages::list(app, caller, chat, &page, checked).await
    })
    .await?;
    Ok(connection(
        rows,
        messages::message_cursor,
        MessageNode::loaded,
    ))
}

/// A user's membership in a chat.
#[derive(Clone)]
pub struct MemberNode(pub db::members::Member);

/// A user's membership in a chat, with their role and read state.
#[Object(name = "Member")]
impl MemberNode {
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
    /// True when there are more unread messages than `unreadCount` says ("999+").
    async fn unread_count_capped(&self, ctx: &Context<'_>) -> Result<bool> {
        let count = UnreadCount::load(ctx, self.0.chat_id, self.0.user_id).await?;
        Ok(count.capped())
    }
    /// Pinned to the top of the member's chat list.
    async fn pinned(&self) -> bool {
        self.0.pinned
    }
    /// Notifications muted by the member.
    async fn muted(&self) -> bool {
        self.0.muted
    }
}

/// A message in a chat: the row, or only the id until a field needs more, so a reply's
/// `parent { id }` costs no query (the foreign key is cleared when the parent is deleted:
/// an id means a message of the same chat).
#[derive(Clone)]
pub struct MessageNode(LazyRow<MessageId, db::messages::Message>);

impl MessageNode {
    /// A message whose row is at hand.
    pub fn loaded(row: db::messages::Message) -> Self {
        Self(LazyRow::loaded(row.id, row))
    }

    /// A message known by id only (a foreign key, so the row exists); its row loads
    /// through the request's loaders when a field other than `id` is asked for.
    pub fn by_id(id: MessageId) -> Self {
        Self(LazyRow::by_id(id))
    }

    async fn row(&self, ctx: &Context<'_>) -> Result<&db::messages::Message> {
        self.0.get(ctx, MessageKey(self.0.id), "message").await
    }

    /// The other members' watermarks: `(user id, read up to, delivered up to)`.
    async fn others(&self, ctx: &Context<'_>) -> Result<Vec<db::members::Member>> {
        let row = self.row(ctx).await?;
        let members = loaders(ctx)?
            .load_one(ChatMembersKey(row.chat_id))
            .await?
            .unwrap_or_default();
        Ok(members
            .into_iter()
            .filter(|m| Some(m.user_id) != row.sender_id)
            .collect())
    }
}

/// A message in a chat.
#[Object(name = "Message")]
impl MessageNode {
    /// The globally unique, opaque id.
    async fn id(&self) -> ID {
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
}
