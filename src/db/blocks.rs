//! Blocks: every query on the `blocks` table (who blocked whom).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{blocks, members};
use super::{DbConn, DbResult};
use crate::vocabulary::ids::{ChatId, UserId};
use crate::with_conn;

/// `blocker` blocks `blocked`; false when they had already.
pub async fn block(
    conn: &mut DbConn,
    blocker: UserId,
    blocked: UserId,
    at: NaiveDateTime,
) -> DbResult<bool> {
    let inserted = with_conn!(conn, |c| diesel::insert_into(blocks::table)
        .values((
            blocks::blocker_id.eq(blocker),
            blocks::blocked_id.eq(blocked),
            blocks::created_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(inserted > 0)
}

/// `blocker` unblocks `blocked`; false when they had not blocked them.
pub async fn unblock(conn: &mut DbConn, blocker: UserId, blocked: UserId) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(
        blocks::table.find((blocker, blocked))
    )
    .execute(c)
    .await)?;
    Ok(deleted > 0)
}

/// How many users `blocker` blocks.
pub async fn count(conn: &mut DbConn, blocker: UserId) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| blocks::table
        .filter(blocks::blocker_id.eq(blocker))
        .count()
        .get_result(c)
        .await)?)
}

/// The users `blocker` blocks, newest block first.
pub async fn blocked_by(conn: &mut DbConn, blocker: UserId) -> DbResult<Vec<UserId>> {
    Ok(with_conn!(conn, |c| blocks::table
        .filter(blocks::blocker_id.eq(blocker))
        .order((blocks::created_at.desc(), blocks::blocked_id.desc()))
        .select(blocks::blocked_id)
        .load(c)
        .await)?)
}

/// The blocks between any of `blockers` and any of `blocked`, as `(blocker, blocked)`.
pub async fn between(
    conn: &mut DbConn,
    blockers: &[UserId],
    blocked: &[UserId],
) -> DbResult<Vec<(UserId, UserId)>> {
    Ok(with_conn!(conn, |c| blocks::table
        .filter(blocks::blocker_id.eq_any(blockers))
        .filter(blocks::blocked_id.eq_any(blocked))
        .select((blocks::blocker_id, blocks::blocked_id))
        .load(c)
        .await)?)
}

/// The blocks between members of `chat`, as `(blocker, blocked)`: for a direct chat, whether
/// one of its two members blocked the other.
pub async fn among_members(conn: &mut DbConn, chat: ChatId) -> DbResult<Vec<(UserId, UserId)>> {
    let members_of_chat = || {
        members::table
            .filter(members::chat_id.eq(chat))
            .select(members::user_id)
    };
    Ok(with_conn!(conn, |c| blocks::table
        .filter(blocks::blocker_id.eq_any(members_of_chat()))
        .filter(blocks::blocked_id.eq_any(members_of_chat()))
        .select((blocks::blocker_id, blocks::blocked_id))
        .load(c)
        .await)?)
}
