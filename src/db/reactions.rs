//! Reactions: every query on the `reactions` table. A reaction is one row per message,
//! user and emoji, so adding one twice (even at the same instant) stores it once.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::reactions;
use super::{DbConn, DbResult};
use crate::vocabulary::ids::{MessageId, UserId};
use crate::{load_per_key, with_conn};

/// The reactions with one emoji on one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionGroup {
    pub message_id: MessageId,
    pub emoji: String,
    pub count: i64,
    /// When the first of them was added (groups are listed in that order).
    pub first_at: NaiveDateTime,
}

/// Adds `user`'s `emoji` to a message; false when it was there already.
pub async fn add(
    conn: &mut DbConn,
    message_id: MessageId,
    user_id: UserId,
    emoji: &str,
    at: NaiveDateTime,
) -> DbResult<bool> {
    let inserted = with_conn!(conn, |c| diesel::insert_into(reactions::table)
        .values((
            reactions::message_id.eq(message_id),
            reactions::user_id.eq(user_id),
            reactions::emoji.eq(emoji),
            reactions::created_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(inserted > 0)
}

/// Removes `user`'s `emoji` from a message; false when it was not there.
pub async fn remove(
    conn: &mut DbConn,
    message_id: MessageId,
    user_id: UserId,
    emoji: &str,
) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(
        reactions::table.find((message_id, user_id, emoji))
    )
    .execute(c)
    .await)?;
    Ok(deleted > 0)
}

/// Removes every reaction of a message (it was retracted).
pub async fn clear(conn: &mut DbConn, message_id: MessageId) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(
        reactions::table.filter(reactions::message_id.eq(message_id))
    )
    .execute(c)
    .await)?)
}

/// How many different emoji a message carries, and how many of them are `user`'s: two
/// counts over the primary key, not the rows (a popular message has thousands).
pub async fn emoji_counts(
    conn: &mut DbConn,
    message_id: MessageId,
    user_id: UserId,
) -> DbResult<(usize, usize)> {
    let distinct: i64 = with_conn!(conn, |c| reactions::table
        .filter(reactions::message_id.eq(message_id))
        .select(diesel::dsl::count(reactions::emoji).aggregate_distinct())
        .first(c)
        .await)?;
    let mine: i64 = with_conn!(conn, |c| reactions::table
        .filter(reactions::message_id.eq(message_id))
        .filter(reactions::user_id.eq(user_id))
        .count()
        .get_result(c)
        .await)?;
    let size = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok((size(distinct), size(mine)))
}

/// The reaction groups of these messages, each message's in the order their first
/// reaction came.
pub async fn groups(conn: &mut DbConn, message_ids: &[MessageId]) -> DbResult<Vec<ReactionGroup>> {
    let rows: Vec<(MessageId, String, i64, Option<NaiveDateTime>)> =
        with_conn!(conn, |c| reactions::table
            .filter(reactions::message_id.eq_any(message_ids))
            .group_by((reactions::message_id, reactions::emoji))
            .select((
                reactions::message_id,
                reactions::emoji,
                diesel::dsl::count_star(),
                diesel::dsl::min(reactions::created_at),
            ))
            .load(c)
            .await)?;
    let mut groups: Vec<ReactionGroup> = rows
        .into_iter()
        .filter_map(|(message_id, emoji, count, first_at)| {
            Some(ReactionGroup {
                message_id,
                emoji,
                count,
                first_at: first_at?,
            })
        })
        .collect();
    groups.sort_by(|a, b| {
        (a.message_id, a.first_at, &a.emoji).cmp(&(b.message_id, b.first_at, &b.emoji))
    });
    Ok(groups)
}

/// The emoji `user` put on each of these messages.
pub async fn of_user(
    conn: &mut DbConn,
    user_id: UserId,
    message_ids: &[MessageId],
) -> DbResult<Vec<(MessageId, String)>> {
    Ok(with_conn!(conn, |c| reactions::table
        .filter(reactions::user_id.eq(user_id))
        .filter(reactions::message_id.eq_any(message_ids))
        .select((reactions::message_id, reactions::emoji))
        .load(c)
        .await)?)
}

/// For each (message, emoji, limit): the first `limit` users who reacted with it, in the
/// order they did.
pub async fn first_users(
    conn: &mut DbConn,
    groups: &[(MessageId, String, i64)],
) -> DbResult<Vec<Vec<UserId>>> {
    Ok(load_per_key!(conn, groups, |group| reactions::table
        .filter(reactions::message_id.eq(group.0))
        .filter(reactions::emoji.eq(&group.1))
        .order((reactions::created_at, reactions::user_id))
        .limit(group.2)
        .select(reactions::user_id))?)
}
