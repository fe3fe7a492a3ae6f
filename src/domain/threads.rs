//! Threads: a message's replies (the messages sent with it as `parentId`) are its thread.
//! Replies are messages of the chat like any other (they are in `messages` and count as
//! unread there); a thread also lists them alone, its chat lists its threads by latest
//! reply, and each member has a read mark per thread.

use crate::app::App;
use crate::db::{self, messages::Message};
use crate::domain::access::CheckedMemberships;
use crate::domain::messages::{decode_message_cursor, visible_message};
use crate::error::{AppError, AppResult};
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// The cursor prefix of a chat's thread list (a thread's latest reply).
const THREAD_CURSOR: &str = "thr";

/// A thread in its chat's list: its root message and its latest reply's id.
pub type ThreadEntry = (Message, MessageId);

/// The cursor of a thread in its chat's list.
pub fn thread_cursor(entry: &ThreadEntry) -> String {
    cursor::encode(THREAD_CURSOR, &[entry.1.0])
}

/// A page of a message's replies. The message was resolved for the caller already (it is
/// a field of a message they can see), so its replies, in the same chat, are theirs too.
pub async fn replies(app: &App, root: MessageId, page: &PageRequest) -> AppResult<Page<Message>> {
    let boundary = page
        .cursor
        .as_deref()
        .map(decode_message_cursor)
        .transpose()?;
    let mut conn = app.db().conn().await?;
    Ok(db::threads::replies(&mut conn, root, boundary, page).await?)
}

/// A page of a chat's threads, latest reply first (members only; `page` is forward).
pub async fn of_chat(
    app: &App,
    caller: UserId,
    chat: ChatId,
    page: &PageRequest,
    checked: &CheckedMemberships,
) -> AppResult<Page<ThreadEntry>> {
    let before = page
        .cursor
        .as_deref()
        .map(|raw| cursor::decode(THREAD_CURSOR, raw, 1).map(|v| MessageId(v[0])))
        .transpose()?;
    let mut conn = app.db().conn().await?;
    checked.member_of(&mut conn, chat, caller).await?;
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let rows = db::threads::of_chat(&mut conn, chat, before, limit).await?;
    Ok(Page::from_rows(rows, page))
}

/// Moves the caller's read mark in a thread up to `up_to` (a reply in it), or to its
/// newest reply; it never moves back. Returns the thread's root.
pub async fn mark_read(
    app: &App,
    caller: UserId,
    root: MessageId,
    up_to: Option<MessageId>,
) -> AppResult<Message> {
    app.write(async |conn| {
        let (message, _, _) = visible_message(conn, caller, root).await?;
        let mark = match up_to {
            Some(reply) => {
                let found = db::messages::find(conn, reply).await?;
                if found.is_none_or(|m| m.parent_id != Some(root)) {
                    return Err(AppError::NotFound("reply in this thread"));
                }
                Some(reply)
            }
            None => db::threads::newest_reply(conn, root).await?,
        };
        if let Some(mark) = mark {
            db::threads::mark_read(conn, caller, root, mark).await?;
        }
        Ok(message)
    })
    .await
}
