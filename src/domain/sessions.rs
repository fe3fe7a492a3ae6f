//! Sessions of a chat: a conversation is split where it went quiet for longer than the
//! configured timeout (the chat service chatql replaces used 15 minutes), or where a member
//! starts or ends one. Each message belongs to the session it was sent in.

use chrono::NaiveDateTime;

use crate::app::App;
use crate::db;
use crate::db::chats::ChatActivity;
use crate::db::sessions::Session;
use crate::domain::access::{CheckedMemberships, member_of};
use crate::domain::now;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind, Tx};
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::ids::{ChatId, SessionId, UserId};

/// Whether a chat's open session still takes messages at `at`: it has one, and the chat
/// was active within the timeout (0: no timeout).
pub fn still_open(activity: &ChatActivity, timeout_secs: u64, at: NaiveDateTime) -> bool {
    activity.active_session_id.is_some()
        && (timeout_secs == 0
            || (at - activity.last_activity_at).num_milliseconds()
                <= i64::try_from(timeout_secs.saturating_mul(1000)).unwrap_or(i64::MAX))
}

/// The session the messages sent now into `chat` belong to: the open one, or — when there
/// is none or it timed out — a new one (the timed-out one ends at its last activity).
/// Called once per batch of sends, with the activity read under the chat's lock.
pub(crate) async fn session_for_send(
    tx: &mut Tx<'_>,
    chat: ChatId,
    activity: &ChatActivity,
    timeout_secs: u64,
) -> AppResult<SessionId> {
    let at = now();
    if let Some(open) = activity.active_session_id
        && still_open(activity, timeout_secs, at)
    {
        return Ok(open);
    }
    if let Some(stale) = activity.active_session_id {
        end_session(tx, chat, stale, activity.last_activity_at).await?;
    }
    Ok(start_session(tx, chat, at).await?.id)
}

async fn start_session(tx: &mut Tx<'_>, chat: ChatId, at: NaiveDateTime) -> AppResult<Session> {
    let session = db::sessions::start(tx, chat, at).await?;
    tx.emit(Event::in_chat(
        chat,
        EventKind::SessionStarted {
            session_id: session.id,
        },
    ));
    Ok(session)
}

async fn end_session(
    tx: &mut Tx<'_>,
    chat: ChatId,
    id: SessionId,
    at: NaiveDateTime,
) -> AppResult<()> {
    if db::sessions::end(tx, chat, id, at).await?.is_some() {
        tx.emit(Event::in_chat(
            chat,
            EventKind::SessionEnded { session_id: id },
        ));
    }
    Ok(())
}

/// Starts a new session of `chat` (members): the open one, if any, ends now.
pub async fn start(app: &App, caller: UserId, chat: ChatId) -> AppResult<Session> {
    app.write(async |tx| {
        let (chat_row, _) = member_of(tx, chat, caller).await?;
        let at = now();
        if let Some(open) = chat_row.active_session_id {
            end_session(tx, chat, open, at).await?;
        }
        start_session(tx, chat, at).await
    })
    .await
}

/// Ends the chat's open session now (members); the next message starts a new one. Returns
/// the ended session, or `None` when none was open.
pub async fn end(app: &App, caller: UserId, chat: ChatId) -> AppResult<Option<Session>> {
    let timeout = app.config().session_timeout_secs;
    app.write(async |tx| {
        let (chat_row, _) = member_of(tx, chat, caller).await?;
        let Some(open) = chat_row.active_session_id else {
            return Ok(None);
        };
        // A session that already timed out ended with its last message.
        let at = if still_open(&chat_row.activity(), timeout, now()) {
            now()
        } else {
            chat_row.last_activity_at
        };
        end_session(tx, chat, open, at).await?;
        Ok(db::sessions::find_many(tx, &[open]).await?.pop())
    })
    .await
}

/// The chat's open session, if it still takes messages (a timed-out one is shown as
/// ended: the next message opens a new one).
pub async fn active(
    app: &App,
    caller: UserId,
    chat: ChatId,
    checked: &CheckedMemberships,
) -> AppResult<Option<Session>> {
    let mut conn = app.db().conn().await?;
    let (chat_row, _) = checked.member_of(&mut conn, chat, caller).await?;
    let activity = chat_row.activity();
    match activity.active_session_id {
        Some(open) if still_open(&activity, app.config().session_timeout_secs, now()) => {
            Ok(db::sessions::find_many(&mut conn, &[open]).await?.pop())
        }
        _ => Ok(None),
    }
}

/// A session by id, for a member of its chat; `NOT_FOUND` when there is none.
pub async fn get(
    app: &App,
    caller: UserId,
    id: SessionId,
    checked: &CheckedMemberships,
) -> AppResult<Session> {
    let mut conn = app.db().conn().await?;
    let session = db::sessions::find_many(&mut conn, &[id])
        .await?
        .pop()
        .ok_or(AppError::NotFound("session"))?;
    checked
        .member_of(&mut conn, session.chat_id, caller)
        .await?;
    Ok(session)
}

/// Cursor kind of session lists.
pub const SESSION_CURSOR: &str = "session";

/// The cursor of a session in its chat's list.
pub fn session_cursor(session: &Session) -> String {
    cursor::encode(SESSION_CURSOR, &[session.id.0])
}

/// A page of a chat's sessions, newest first (members).
pub async fn list(
    app: &App,
    caller: UserId,
    chat: ChatId,
    page: &PageRequest,
    checked: &CheckedMemberships,
) -> AppResult<Page<Session>> {
    let before = match page.cursor.as_deref() {
        Some(c) => Some(SessionId(cursor::decode(SESSION_CURSOR, c, 1)?[0])),
        None => None,
    };
    let mut conn = app.db().conn().await?;
    checked.member_of(&mut conn, chat, caller).await?;
    Ok(db::sessions::list(&mut conn, chat, before, page).await?)
}

/// A session's end as shown: stored, or — for the open one after the timeout — the chat's
/// last activity (it ends there once the next message arrives).
pub fn shown_end(
    session: &Session,
    activity: &ChatActivity,
    timeout_secs: u64,
) -> Option<NaiveDateTime> {
    if session.ended_at.is_some() || activity.active_session_id != Some(session.id) {
        return session.ended_at;
    }
    if still_open(activity, timeout_secs, now()) {
        None
    } else {
        Some(activity.last_activity_at)
    }
}
