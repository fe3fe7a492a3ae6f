//! Edit history: every query on the `message_edits` table. Each edit of a message keeps
//! the content it replaced.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::message_edits;
use super::{DbConn, DbResult};
use crate::vocabulary::ids::MessageId;
use crate::{load_per_key, with_conn};

/// One earlier version of a message's content.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = message_edits)]
pub struct MessageEdit {
    pub id: i64,
    pub message_id: MessageId,
    /// The content as it was.
    pub content: String,
    /// When that content was written (the message's creation, or the edit before).
    pub written_at: NaiveDateTime,
    /// When an edit replaced it.
    pub replaced_at: NaiveDateTime,
}

/// Keeps `content`, written at `written_at`, as replaced at `replaced_at`.
pub async fn record(
    conn: &mut DbConn,
    message_id: MessageId,
    content: &str,
    written_at: NaiveDateTime,
    replaced_at: NaiveDateTime,
) -> DbResult<()> {
    with_conn!(conn, |c| diesel::insert_into(message_edits::table)
        .values((
            message_edits::message_id.eq(message_id),
            message_edits::content.eq(content),
            message_edits::written_at.eq(written_at),
            message_edits::replaced_at.eq(replaced_at),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Forgets a message's history (it was retracted).
pub async fn clear(conn: &mut DbConn, message_id: MessageId) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(
        message_edits::table.filter(message_edits::message_id.eq(message_id))
    )
    .execute(c)
    .await)?)
}

/// For each (message, limit): its newest `limit` earlier versions, newest first.
pub async fn newest(
    conn: &mut DbConn,
    keys: &[(MessageId, i64)],
) -> DbResult<Vec<Vec<MessageEdit>>> {
    Ok(load_per_key!(conn, keys, |key| message_edits::table
        .filter(message_edits::message_id.eq(key.0))
        .order(message_edits::id.desc())
        .limit(key.1)
        .select(MessageEdit::as_select()))?)
}
