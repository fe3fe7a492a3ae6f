//! Chats: the model and every query on the `chats` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{chat_tags, chats, members, messages, users};
use super::{DbConn, DbResult};
use crate::db::members::Member;
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::enums::{ChatKind, ChatOrderField, ChatStatus};
use crate::vocabulary::ids::{ChatId, MessageId, SessionId, UserId};
use crate::with_conn;

/// A stored chat.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = chats)]
pub struct Chat {
    pub id: ChatId,
    pub kind: ChatKind,
    pub category: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub avatar_url: Option<String>,
    pub metadata: Option<String>,
    pub created_by: Option<UserId>,
    pub direct_key: Option<String>,
    pub last_message_id: Option<MessageId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_activity_at: NaiveDateTime,
    pub external_key: Option<String>,
    pub status: ChatStatus,
    pub active_session_id: Option<SessionId>,
}

/// Fields of a new chat.
#[derive(Debug, Insertable)]
#[diesel(table_name = chats)]
pub struct NewChat<'a> {
    pub kind: ChatKind,
    pub category: Option<&'a str>,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
    pub metadata: Option<String>,
    pub created_by: Option<UserId>,
    pub direct_key: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_activity_at: NaiveDateTime,
    pub external_key: Option<&'a str>,
}

/// A partial update; `Some(None)` clears a column.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = chats)]
pub struct ChatChanges {
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub status: Option<ChatStatus>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Which of a user's chats to list, in which order.
#[derive(Clone, Debug, Default)]
pub struct ChatListFilter {
    pub kind: Option<ChatKind>,
    pub category: Option<String>,
    pub unread_only: bool,
    pub status: Option<ChatStatus>,
    /// Only chats with this tag.
    pub tag: Option<String>,
    /// Only chats whose ordering time is at or after this.
    pub since: Option<NaiveDateTime>,
    /// Only chats whose ordering time is before this.
    pub until: Option<NaiveDateTime>,
    pub order: ChatOrder,
}

/// The chat list's order: pinned chats first, then by `field` (ties by id, the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatOrder {
    pub field: ChatOrderField,
    pub ascending: bool,
}

impl Default for ChatOrder {
    /// Most recent activity first: the usual chat list.
    fn default() -> Self {
        Self {
            field: ChatOrderField::LastActivity,
            ascending: false,
        }
    }
}

impl ChatOrder {
    /// The chat's time this order sorts by.
    pub fn time_of(self, chat: &Chat) -> NaiveDateTime {
        match self.field {
            ChatOrderField::LastActivity => chat.last_activity_at,
            ChatOrderField::Created => chat.created_at,
            ChatOrderField::Updated => chat.updated_at,
        }
    }
}

/// Position in a chat list order (pinned first, then the order's time, then id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatListKey {
    pub pinned: bool,
    pub at: NaiveDateTime,
    pub id: ChatId,
}

/// Inserts a chat.
pub async fn insert(conn: &mut DbConn, new: &NewChat<'_>) -> DbResult<Chat> {
    Ok(with_conn!(conn, |c| diesel::insert_into(chats::table)
        .values(new)
        .returning(Chat::as_returning())
        .get_result(c)
        .await)?)
}

/// The chat with `id`, if any.
pub async fn find(conn: &mut DbConn, id: ChatId) -> DbResult<Option<Chat>> {
    Ok(with_conn!(conn, |c| chats::table
        .find(id)
        .select(Chat::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The chats with these ids (any order).
pub async fn find_many(conn: &mut DbConn, ids: &[ChatId]) -> DbResult<Vec<Chat>> {
    Ok(with_conn!(conn, |c| chats::table
        .filter(chats::id.eq_any(ids))
        .select(Chat::as_select())
        .load(c)
        .await)?)
}

/// The direct chat with this pair key, if any.
pub async fn find_direct(conn: &mut DbConn, direct_key: &str) -> DbResult<Option<Chat>> {
    Ok(with_conn!(conn, |c| chats::table
        .filter(chats::direct_key.eq(direct_key))
        .select(Chat::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Applies `changes` to chat `id`.
pub async fn update(conn: &mut DbConn, id: ChatId, changes: &ChatChanges) -> DbResult<Chat> {
    Ok(with_conn!(conn, |c| diesel::update(chats::table.find(id))
        .set(changes)
        .returning(Chat::as_returning())
        .get_result(c)
        .await)?)
}

/// Locks chat `id`'s row until the transaction ends, so membership changes to one chat run
/// one after another and each sees the last one's result (no two owners leaving at once,
/// no two inserts of the same member). On PostgreSQL `SELECT … FOR UPDATE`; SQLite
/// transactions start `IMMEDIATE`, already holding the database's write lock.
pub async fn lock(conn: &mut DbConn, id: ChatId) -> DbResult<()> {
    match conn {
        DbConn::Pg(c) => {
            chats::table
                .find(id)
                .select(chats::id)
                .for_update()
                .first::<i64>(&mut **c)
                .await
                .optional()?;
        }
        DbConn::Sqlite(_) => {}
    }
    Ok(())
}

/// Points the chat at its newest message (or none).
pub async fn set_last_message(
    conn: &mut DbConn,
    id: ChatId,
    message_id: Option<MessageId>,
) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(chats::table.find(id))
        .set(chats::last_message_id.eq(message_id))
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes chat `id` with its members and messages (ON DELETE CASCADE).
pub async fn delete(conn: &mut DbConn, id: ChatId) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(chats::table.find(id))
        .execute(c)
        .await)?;
    Ok(deleted > 0)
}

/// A page of `user_id`'s chats with their membership rows: pinned first, then by the
/// filter's order (its time, then id, both the same way); `after` is the last key seen.
pub async fn list_for_user(
    conn: &mut DbConn,
    user_id: UserId,
    filter: &ChatListFilter,
    after: Option<ChatListKey>,
    page: &PageRequest,
) -> DbResult<Page<(Chat, Member)>> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    // The ordering column is picked at run time; each arm of this macro is the same query
    // over another column (diesel's columns are distinct types).
    macro_rules! ordered {
        ($query:ident, $column:expr) => {{
            let ascending = filter.order.ascending;
            $query = if ascending {
                $query.order((members::pinned.desc(), $column.asc(), chats::id.asc()))
            } else {
                $query.order((members::pinned.desc(), $column.desc(), chats::id.desc()))
            };
            if let Some(since) = filter.since {
                $query = $query.filter($column.ge(since));
            }
            if let Some(until) = filter.until {
                $query = $query.filter($column.lt(until));
            }
            if let Some(key) = after {
                // After `key` in this order: a later pinned group, or the same group and
                // further along the time (then the id), in the order's direction.
                let later_group = members::pinned.lt(key.pinned);
                let same_group = members::pinned.eq(key.pinned);
                $query = if ascending {
                    $query.filter(
                        later_group.or(same_group.and(
                            $column
                                .gt(key.at)
                                .or($column.eq(key.at).and(chats::id.gt(key.id))),
                        )),
                    )
                } else {
                    $query.filter(
                        later_group.or(same_group.and(
                            $column
                                .lt(key.at)
                                .or($column.eq(key.at).and(chats::id.lt(key.id))),
                        )),
                    )
                };
            }
        }};
    }
    let rows = with_conn!(conn, |c| {
        let mut query = chats::table
            .inner_join(members::table)
            .filter(members::user_id.eq(user_id))
            .select((Chat::as_select(), Member::as_select()))
            .limit(limit)
            .into_boxed();
        if let Some(kind) = filter.kind {
            query = query.filter(chats::kind.eq(kind));
        }
        if let Some(category) = &filter.category {
            query = query.filter(chats::category.eq(category.clone()));
        }
        if let Some(status) = filter.status {
            query = query.filter(chats::status.eq(status));
        }
        if let Some(tag) = &filter.tag {
            let tagged = chat_tags::table
                .filter(chat_tags::chat_id.eq(chats::id))
                .filter(chat_tags::tag.eq(tag.clone()));
            query = query.filter(diesel::dsl::exists(tagged));
        }
        if filter.unread_only {
            let unread = messages::table
                .filter(messages::chat_id.eq(chats::id))
                .filter(super::messages::unread_for_member());
            query = query.filter(diesel::dsl::exists(unread));
        }
        match filter.order.field {
            ChatOrderField::LastActivity => ordered!(query, chats::last_activity_at),
            ChatOrderField::Created => ordered!(query, chats::created_at),
            ChatOrderField::Updated => ordered!(query, chats::updated_at),
        }
        query.load(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// The chat `creator` created with this application key, if any.
pub async fn find_by_external_key(
    conn: &mut DbConn,
    creator: UserId,
    key: &str,
) -> DbResult<Option<Chat>> {
    Ok(with_conn!(conn, |c| chats::table
        .filter(chats::created_by.eq(creator))
        .filter(chats::external_key.eq(key))
        .select(Chat::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The tags of these chats, as `(chat, tag)` pairs in tag order.
pub async fn tags_of(conn: &mut DbConn, chat_ids: &[ChatId]) -> DbResult<Vec<(ChatId, String)>> {
    Ok(with_conn!(conn, |c| chat_tags::table
        .filter(chat_tags::chat_id.eq_any(chat_ids))
        .select((chat_tags::chat_id, chat_tags::tag))
        .order((chat_tags::chat_id, chat_tags::tag))
        .load(c)
        .await)?)
}

/// Replaces a chat's tags.
pub async fn set_tags(conn: &mut DbConn, chat_id: ChatId, tags: &[String]) -> DbResult<()> {
    with_conn!(conn, |c| diesel::delete(
        chat_tags::table.filter(chat_tags::chat_id.eq(chat_id))
    )
    .execute(c)
    .await)?;
    // One insert per tag (a chat has a handful): diesel's multi-row insert has no SQLite
    // form for these values.
    for tag in tags {
        with_conn!(conn, |c| diesel::insert_into(chat_tags::table)
            .values((chat_tags::chat_id.eq(chat_id), chat_tags::tag.eq(tag)))
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Moves a chat's `updated_at` (its settings or contents changed).
pub async fn touch(conn: &mut DbConn, id: ChatId, at: NaiveDateTime) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(chats::table.find(id))
        .set(chats::updated_at.eq(at))
        .execute(c)
        .await)?;
    Ok(())
}

/// Chat `chat_id` and `user_id`'s membership in it, in one query; `None` when the chat or
/// the membership is missing.
pub async fn find_with_member(
    conn: &mut DbConn,
    chat_id: ChatId,
    user_id: UserId,
) -> DbResult<Option<(Chat, Member)>> {
    Ok(with_conn!(conn, |c| chats::table
        .inner_join(members::table)
        .filter(chats::id.eq(chat_id))
        .filter(members::user_id.eq(user_id))
        .select((Chat::as_select(), Member::as_select()))
        .first(c)
        .await
        .optional())?)
}

/// Where a chat's conversation stands when a message is sent into it: its open session and
/// its last activity (read with the senders, so a send costs no extra statement).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatActivity {
    pub active_session_id: Option<SessionId>,
    pub last_activity_at: NaiveDateTime,
    /// The chat's kind (a direct chat's sends also check blocks).
    pub kind: ChatKind,
}

impl Chat {
    /// Where the chat's conversation stands, from its row.
    pub fn activity(&self) -> ChatActivity {
        ChatActivity {
            active_session_id: self.active_session_id,
            last_activity_at: self.last_activity_at,
            kind: self.kind,
        }
    }
}

/// The memberships of `user_ids` in chat `chat_id`, each with whether the user is a bot,
/// and the chat's [`ChatActivity`], in one query; users who are not members are left out.
/// On PostgreSQL the chat's row (and the memberships) stay locked until the transaction
/// ends, so writes to one chat take turns; SQLite transactions already hold the database's
/// write lock.
pub async fn senders_locked(
    conn: &mut DbConn,
    chat_id: ChatId,
    user_ids: &[UserId],
) -> DbResult<Vec<(Member, bool, ChatActivity)>> {
    // A macro, not a value: the selection's type differs per backend. The user is read
    // in a subquery, which `FOR UPDATE` does not lock: a user's sends to different chats
    // must not wait for each other.
    macro_rules! query {
        () => {
            chats::table
                .inner_join(members::table)
                .filter(chats::id.eq(chat_id))
                .filter(members::user_id.eq_any(user_ids))
                .select((
                    Member::as_select(),
                    users::table
                        .filter(users::id.eq(members::user_id))
                        .select(users::is_bot)
                        .single_value(),
                    chats::active_session_id,
                    chats::last_activity_at,
                    chats::kind,
                ))
        };
    }
    type Row = (
        Member,
        Option<bool>,
        Option<SessionId>,
        NaiveDateTime,
        ChatKind,
    );
    let found: Vec<Row> = match conn {
        DbConn::Pg(c) => query!().for_update().load(&mut **c).await?,
        DbConn::Sqlite(c) => query!().load(&mut **c).await?,
    };
    Ok(found
        .into_iter()
        .map(
            |(member, is_bot, active_session_id, last_activity_at, kind)| {
                let activity = ChatActivity {
                    active_session_id,
                    last_activity_at,
                    kind,
                };
                (member, is_bot.unwrap_or(false), activity)
            },
        )
        .collect())
}
