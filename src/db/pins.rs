//! Pinned messages: every query on the `pins` table (one pin per message at most).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::pins;
use super::{DbConn, DbResult};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};
use crate::with_conn;

/// A pinned message.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = pins)]
pub struct Pin {
    pub message_id: MessageId,
    pub chat_id: ChatId,
    /// Who pinned it (null once their account is deleted).
    pub pinned_by: Option<UserId>,
    pub pinned_at: NaiveDateTime,
}

/// Pins a message; false when it was pinned already.
pub async fn pin(conn: &mut DbConn, pin: &Pin) -> DbResult<bool> {
    let inserted = with_conn!(conn, |c| diesel::insert_into(pins::table)
        .values((
            pins::message_id.eq(pin.message_id),
            pins::chat_id.eq(pin.chat_id),
            pins::pinned_by.eq(pin.pinned_by),
            pins::pinned_at.eq(pin.pinned_at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(inserted > 0)
}

/// Unpins a message; false when it was not pinned.
pub async fn unpin(conn: &mut DbConn, message_id: MessageId) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(pins::table.find(message_id))
        .execute(c)
        .await)?;
    Ok(deleted > 0)
}

/// How many messages of a chat are pinned.
pub async fn count(conn: &mut DbConn, chat_id: ChatId) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| pins::table
        .filter(pins::chat_id.eq(chat_id))
        .count()
        .get_result(c)
        .await)?)
}

/// The pins of these chats, each chat's newest pin first.
pub async fn of_chats(conn: &mut DbConn, chat_ids: &[ChatId]) -> DbResult<Vec<Pin>> {
    Ok(with_conn!(conn, |c| pins::table
        .filter(pins::chat_id.eq_any(chat_ids))
        .order((
            pins::chat_id,
            pins::pinned_at.desc(),
            pins::message_id.desc()
        ))
        .select(Pin::as_select())
        .load(c)
        .await)?)
}

/// The pins of these messages (those pinned).
pub async fn of_messages(conn: &mut DbConn, message_ids: &[MessageId]) -> DbResult<Vec<Pin>> {
    Ok(with_conn!(conn, |c| pins::table
        .filter(pins::message_id.eq_any(message_ids))
        .select(Pin::as_select())
        .load(c)
        .await)?)
}
