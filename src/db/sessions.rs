//! Sessions: the model and every query on the `chat_sessions` table (and the chat's pointer
//! to its open session).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{chat_sessions, chats};
use super::{DbConn, DbResult};
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::ids::{ChatId, SessionId};
use crate::with_conn;

/// A stored session.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = chat_sessions)]
pub struct Session {
    pub id: SessionId,
    pub chat_id: ChatId,
    pub started_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

/// Starts a session of `chat_id` at `at` and makes it the chat's open one.
pub async fn start(conn: &mut DbConn, chat_id: ChatId, at: NaiveDateTime) -> DbResult<Session> {
    let session: Session = with_conn!(conn, |c| diesel::insert_into(chat_sessions::table)
        .values((
            chat_sessions::chat_id.eq(chat_id),
            chat_sessions::started_at.eq(at),
        ))
        .returning(Session::as_returning())
        .get_result(c)
        .await)?;
    set_active(conn, chat_id, Some(session.id)).await?;
    Ok(session)
}

/// Ends session `id` at `at` (if it is still open) and clears the chat's open session.
pub async fn end(
    conn: &mut DbConn,
    chat_id: ChatId,
    id: SessionId,
    at: NaiveDateTime,
) -> DbResult<Option<Session>> {
    let ended = with_conn!(conn, |c| diesel::update(
        chat_sessions::table
            .find(id)
            .filter(chat_sessions::ended_at.is_null())
    )
    .set(chat_sessions::ended_at.eq(at))
    .returning(Session::as_returning())
    .get_result(c)
    .await
    .optional())?;
    set_active(conn, chat_id, None).await?;
    Ok(ended)
}

async fn set_active(conn: &mut DbConn, chat_id: ChatId, id: Option<SessionId>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(chats::table.find(chat_id))
        .set(chats::active_session_id.eq(id))
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes every session of a chat (its messages are gone: `clearChat`), leaving none
/// open; returns how many there were.
pub async fn delete_all_in_chat(conn: &mut DbConn, chat_id: ChatId) -> DbResult<usize> {
    set_active(conn, chat_id, None).await?;
    Ok(with_conn!(conn, |c| diesel::delete(
        chat_sessions::table.filter(chat_sessions::chat_id.eq(chat_id))
    )
    .execute(c)
    .await)?)
}

/// The sessions with these ids (any order).
pub async fn find_many(conn: &mut DbConn, ids: &[SessionId]) -> DbResult<Vec<Session>> {
    Ok(with_conn!(conn, |c| chat_sessions::table
        .filter(chat_sessions::id.eq_any(ids))
        .select(Session::as_select())
        .load(c)
        .await)?)
}

/// A page of a chat's sessions, newest first; `before` is the last id seen.
pub async fn list(
    conn: &mut DbConn,
    chat_id: ChatId,
    before: Option<SessionId>,
    page: &PageRequest,
) -> DbResult<Page<Session>> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let rows = with_conn!(conn, |c| {
        let mut query = chat_sessions::table
            .filter(chat_sessions::chat_id.eq(chat_id))
            .order(chat_sessions::id.desc())
            .select(Session::as_select())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(chat_sessions::id.lt(before));
        }
        query.load(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}
