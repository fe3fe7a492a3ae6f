//! Threads: the queries that treat a message's replies as its thread (the `parent_id`
//! and `last_reply_id` columns of `messages`) and the members' per-thread read marks
//! (`thread_reads`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::messages::{Message, keyset_by_id};
use super::schema::{members, messages, thread_reads};
use super::{DbConn, DbResult};
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};
use crate::with_conn;

/// What a thread's root shows of it.
#[derive(Clone, Copy, Debug)]
pub struct ThreadSummary {
    pub replies: i64,
    pub last_reply_at: Option<NaiveDateTime>,
}

/// Notes `reply` as the newest reply to `parent` (called as the reply is stored, under the
/// chat's lock, so replies arrive in id order).
pub async fn set_last_reply(
    conn: &mut DbConn,
    parent: MessageId,
    reply: MessageId,
) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(messages::table.find(parent))
        .set(messages::last_reply_id.eq(Some(reply)))
        .execute(c)
        .await)?;
    Ok(())
}

/// Sets `parent`'s newest reply again from its replies (after one was deleted); null
/// when none is left, which takes it out of the chat's threads.
pub async fn refresh_last_reply(conn: &mut DbConn, parent: MessageId) -> DbResult<()> {
    let replies = diesel::alias!(messages as replies);
    let newest = replies
        .filter(replies.field(messages::parent_id).eq(parent))
        .select(diesel::dsl::max(replies.field(messages::id)))
        .single_value()
        .assume_not_null()
        .nullable();
    with_conn!(conn, |c| diesel::update(messages::table.find(parent))
        .set(messages::last_reply_id.eq(newest))
        .execute(c)
        .await)?;
    Ok(())
}

/// A page of `parent`'s replies, oldest first (`first/after`) or back from the newest
/// (`last/before`).
pub async fn replies(
    conn: &mut DbConn,
    parent: MessageId,
    boundary: Option<MessageId>,
    page: &PageRequest,
) -> DbResult<Page<Message>> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let rows = with_conn!(conn, |c| {
        let query = messages::table
            .filter(messages::parent_id.eq(parent))
            .select(Message::as_select())
            .limit(limit)
            .into_boxed();
        keyset_by_id!(query, page, boundary).load(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// Up to `limit` replies to `parent` with ids above `after`, oldest first (a thread
/// feed's replay).
pub async fn replies_after(
    conn: &mut DbConn,
    parent: MessageId,
    after: MessageId,
    limit: i64,
) -> DbResult<Vec<Message>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::parent_id.eq(parent))
        .filter(messages::id.gt(after))
        .order(messages::id.asc())
        .select(Message::as_select())
        .limit(limit)
        .load(c)
        .await)?)
}

/// A chat's threads (messages with replies), the latest reply first: up to `limit`
/// whose latest reply is older than `before` (a `last_reply_id`), each with that id for
/// the next page's cursor.
pub async fn of_chat(
    conn: &mut DbConn,
    chat: ChatId,
    before: Option<MessageId>,
    limit: i64,
) -> DbResult<Vec<(Message, MessageId)>> {
    let rows: Vec<(Message, Option<MessageId>)> = with_conn!(conn, |c| {
        let mut query = messages::table
            .filter(messages::chat_id.eq(chat))
            .filter(messages::last_reply_id.is_not_null())
            .order(messages::last_reply_id.desc())
            .select((Message::as_select(), messages::last_reply_id))
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(messages::last_reply_id.lt(before));
        }
        query.load(c).await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(message, last)| last.map(|last| (message, last)))
        .collect())
}

/// Reply counts and latest reply times of these messages (those without replies are
/// absent).
pub async fn summaries(
    conn: &mut DbConn,
    parent_ids: &[MessageId],
) -> DbResult<Vec<(MessageId, ThreadSummary)>> {
    let rows: Vec<(Option<MessageId>, i64, Option<NaiveDateTime>)> =
        with_conn!(conn, |c| messages::table
            .filter(messages::parent_id.eq_any(parent_ids))
            .group_by(messages::parent_id)
            .select((
                messages::parent_id,
                diesel::dsl::count_star(),
                diesel::dsl::max(messages::created_at),
            ))
            .load(c)
            .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(parent, replies, last_reply_at)| {
            parent.map(|p| {
                (
                    p,
                    ThreadSummary {
                        replies,
                        last_reply_at,
                    },
                )
            })
        })
        .collect())
}

/// `user`'s unread replies in these threads: live replies from others above both the
/// user's read watermark in the chat and their read mark in the thread (replies are
/// messages of the chat too, so reading the chat reads them). Threads without any are
/// absent; so are threads of chats the user is not in.
pub async fn unread_counts(
    conn: &mut DbConn,
    user: UserId,
    parent_ids: &[MessageId],
) -> DbResult<Vec<(MessageId, i64)>> {
    let rows: Vec<(Option<MessageId>, i64)> = with_conn!(conn, |c| messages::table
        .inner_join(
            members::table.on(members::chat_id
                .eq(messages::chat_id)
                .and(members::user_id.eq(user))),
        )
        .left_join(
            thread_reads::table.on(thread_reads::message_id
                .nullable()
                .eq(messages::parent_id)
                .and(thread_reads::user_id.eq(user))),
        )
        .filter(messages::parent_id.eq_any(parent_ids))
        .filter(super::messages::unread_for_member())
        .filter(
            thread_reads::last_read_message_id
                .nullable()
                .is_null()
                .or(messages::id
                    .nullable()
                    .gt(thread_reads::last_read_message_id.nullable())),
        )
        .group_by(messages::parent_id)
        .select((messages::parent_id, diesel::dsl::count_star()))
        .load(c)
        .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(parent, count)| parent.map(|p| (p, count)))
        .collect())
}

/// Moves `user`'s read mark in `thread` up to `up_to` (never back). Safe to race: the
/// insert of a first mark and the raise of an existing one each stand alone.
pub async fn mark_read(
    conn: &mut DbConn,
    user: UserId,
    thread: MessageId,
    up_to: MessageId,
) -> DbResult<()> {
    with_conn!(conn, |c| diesel::insert_into(thread_reads::table)
        .values((
            thread_reads::user_id.eq(user),
            thread_reads::message_id.eq(thread),
            thread_reads::last_read_message_id.eq(up_to),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    with_conn!(conn, |c| diesel::update(
        thread_reads::table
            .find((user, thread))
            .filter(thread_reads::last_read_message_id.lt(up_to))
    )
    .set(thread_reads::last_read_message_id.eq(up_to))
    .execute(c)
    .await)?;
    Ok(())
}

/// The newest reply to `thread`, if any.
pub async fn newest_reply(conn: &mut DbConn, thread: MessageId) -> DbResult<Option<MessageId>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::parent_id.eq(thread))
        .select(diesel::dsl::max(messages::id))
        .first(c)
        .await)?)
}
