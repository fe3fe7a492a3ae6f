//! Chat membership: the model and every query on the `members` table, including the read
//! and delivery watermarks that unread counts and message status derive from.

use chrono::NaiveDateTime;
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::members;
use super::{DbConn, DbResult, KeepPrepared};
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::enums::MemberRole;
use crate::vocabulary::ids::{ChatId, MessageId, UserId};
use crate::with_conn;

/// A user's membership in a chat.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct Member {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub role: MemberRole,
    pub joined_at: NaiveDateTime,
    pub last_read_message_id: Option<MessageId>,
    pub last_read_at: Option<NaiveDateTime>,
    pub last_delivered_message_id: Option<MessageId>,
    pub pinned: bool,
    pub muted: bool,
}

/// Fields of a new membership.
#[derive(Debug, Insertable)]
#[diesel(table_name = members)]
pub struct NewMember {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub role: MemberRole,
    pub joined_at: NaiveDateTime,
    /// New members start with everything before they joined counted as read.
    pub last_read_message_id: Option<MessageId>,
}

/// Inserts a membership.
pub async fn insert(conn: &mut DbConn, new: &NewMember) -> DbResult<Member> {
    Ok(with_conn!(conn, |c| diesel::insert_into(members::table)
        .values(new)
        .returning(Member::as_returning())
        .get_result(c)
        .await)?)
}

/// `user_id`'s membership in `chat_id`, if any.
pub async fn find(conn: &mut DbConn, chat_id: ChatId, user_id: UserId) -> DbResult<Option<Member>> {
    Ok(with_conn!(conn, |c| members::table
        .find((chat_id, user_id))
        .select(Member::as_select())
        .first(c)
        .await
        .optional())?)
}

/// `user_id`'s memberships in these chats.
pub async fn find_for_user(
    conn: &mut DbConn,
    user_id: UserId,
    chat_ids: &[ChatId],
) -> DbResult<Vec<Member>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::user_id.eq(user_id))
        .filter(members::chat_id.eq_any(chat_ids))
        .select(Member::as_select())
        .load(c)
        .await)?)
}

/// Every membership of a user, in chat-id order (the order chat locks are taken in).
pub async fn of_user(conn: &mut DbConn, user_id: UserId) -> DbResult<Vec<Member>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::user_id.eq(user_id))
        .order(members::chat_id)
        .select(Member::as_select())
        .load(c)
        .await)?)
}

/// Who takes over a chat when its only OWNER goes: the longest-standing ADMIN, else the
/// longest-standing member (ties by user id); `None` when nobody else is left.
pub async fn successor(
    conn: &mut DbConn,
    chat_id: ChatId,
    leaving: UserId,
) -> DbResult<Option<Member>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::chat_id.eq(chat_id))
        .filter(members::user_id.ne(leaving))
        .order((
            members::role.eq(MemberRole::Admin).desc(),
            members::joined_at.asc(),
            members::user_id.asc(),
        ))
        .select(Member::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Every membership of these chats (for watermark-derived fields).
pub async fn all_of_chats(conn: &mut DbConn, chat_ids: &[ChatId]) -> DbResult<Vec<Member>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::chat_id.eq_any(chat_ids))
        .order((members::chat_id, members::user_id))
        .select(Member::as_select())
        .load(c)
        .await)?)
}

/// The user ids of a chat's members.
pub async fn user_ids(conn: &mut DbConn, chat_id: ChatId) -> DbResult<Vec<UserId>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::chat_id.eq(chat_id))
        .select(members::user_id)
        .load(c)
        .await)?)
}

/// Member counts of these chats.
pub async fn counts(conn: &mut DbConn, chat_ids: &[ChatId]) -> DbResult<Vec<(ChatId, i64)>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::chat_id.eq_any(chat_ids))
        .group_by(members::chat_id)
        .select((members::chat_id, diesel::dsl::count_star()))
        .load(c)
        .await)?)
}

/// How many members of the chat hold `role`.
pub async fn count_with_role(
    conn: &mut DbConn,
    chat_id: ChatId,
    role: MemberRole,
) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::chat_id.eq(chat_id))
        .filter(members::role.eq(role))
        .count()
        .get_result(c)
        .await)?)
}

/// A page of a chat's members in user-id order.
pub async fn list(
    conn: &mut DbConn,
    chat_id: ChatId,
    after_user_id: Option<UserId>,
    page: &PageRequest,
) -> DbResult<Page<Member>> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let rows = with_conn!(conn, |c| {
        let mut query = members::table
            .filter(members::chat_id.eq(chat_id))
            .order(members::user_id.asc())
            .select(Member::as_select())
            .limit(limit)
            .into_boxed();
        if let Some(after) = after_user_id {
            query = query.filter(members::user_id.gt(after));
        }
        query.load(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// Removes a membership; false when there was none.
pub async fn delete(conn: &mut DbConn, chat_id: ChatId, user_id: UserId) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(
        members::table.find((chat_id, user_id))
    )
    .execute(c)
    .await)?;
    Ok(deleted > 0)
}

/// Sets a member's role.
pub async fn set_role(
    conn: &mut DbConn,
    chat_id: ChatId,
    user_id: UserId,
    role: MemberRole,
) -> DbResult<Member> {
    Ok(with_conn!(conn, |c| diesel::update(
        members::table.find((chat_id, user_id))
    )
    .set(members::role.eq(role))
    .returning(Member::as_returning())
    .get_result(c)
    .await)?)
}

/// A member's own settings to change; `None` leaves one as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = members)]
pub struct MemberSettings {
    pub pinned: Option<bool>,
    pub muted: Option<bool>,
}

/// Changes a member's own settings (pinned, muted).
pub async fn set_settings(
    conn: &mut DbConn,
    chat_id: ChatId,
    user_id: UserId,
    settings: &MemberSettings,
) -> DbResult<Member> {
    Ok(with_conn!(conn, |c| diesel::update(
        members::table.find((chat_id, user_id))
    )
    .set(settings)
    .returning(Member::as_returning())
    .get_result(c)
    .await)?)
}

/// Whether the delivery watermark moves up to `message_id`: a portable `GREATEST`, so
/// the watermark never moves back.
#[diesel::dsl::auto_type]
fn delivery_moves_to(message_id: MessageId) -> _ {
    members::last_delivered_message_id
        .is_null()
        .or(members::last_delivered_message_id.lt(message_id))
}

/// Moves the read watermark forward to `message_id` (never back); also moves the delivery
/// watermark, since what was read was delivered. One statement; returns the row either way.
pub async fn advance_read(
    conn: &mut DbConn,
    chat_id: ChatId,
    user_id: UserId,
    message_id: MessageId,
    at: NaiveDateTime,
) -> DbResult<Member> {
    let read_moves = members::last_read_message_id
        .is_null()
        .or(members::last_read_message_id.lt(message_id));
    let delivered_moves = delivery_moves_to(message_id);
    Ok(with_conn!(conn, |c| KeepPrepared(
        diesel::update(members::table.find((chat_id, user_id)))
            .set((
                members::last_read_message_id.eq(case_when(read_moves, Some(message_id))
                    .otherwise(members::last_read_message_id)),
                members::last_read_at
                    .eq(case_when(read_moves, Some(at)).otherwise(members::last_read_at)),
                members::last_delivered_message_id.eq(case_when(delivered_moves, Some(message_id))
                    .otherwise(members::last_delivered_message_id)),
            ))
            .returning(Member::as_returning())
    )
    .get_result(c)
    .await)?)
}

/// Moves the delivery watermark forward to `message_id` (never back). One statement;
/// returns the row either way.
pub async fn advance_delivered(
    conn: &mut DbConn,
    chat_id: ChatId,
    user_id: UserId,
    message_id: MessageId,
) -> DbResult<Member> {
    let delivered_moves = delivery_moves_to(message_id);
    Ok(with_conn!(conn, |c| KeepPrepared(
        diesel::update(members::table.find((chat_id, user_id)))
            .set(
                members::last_delivered_message_id.eq(case_when(delivered_moves, Some(message_id))
                    .otherwise(members::last_delivered_message_id))
            )
            .returning(Member::as_returning())
    )
    .get_result(c)
    .await)?)
}

/// The chats `user_id` is a member of.
pub async fn chat_ids_of_user(conn: &mut DbConn, user_id: UserId) -> DbResult<Vec<ChatId>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::user_id.eq(user_id))
        .select(members::chat_id)
        .load(c)
        .await)?)
}
