//! Messages: paging, editing, retracting, deleting, streaming replies, typing and the LLM
//! history view (sending is `sending`, read and delivery watermarks `receipts`).

use crate::app::App;
use crate::db::chats::Chat;
use crate::db::members::Member;
use crate::db::messages::{Message, TimeRange};
use crate::db::{self, DbConn};
use crate::domain::access::{CheckedMemberships, hidden_message, member_of};
use crate::domain::{check_trace_id, mentions, now};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind};
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::enums::{MessageStatus, StreamState};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// Most entries `history` returns.
pub const MAX_HISTORY: usize = 1000;
/// Unread counts are exact up to this many; above it a chat shows this number and says the
/// count is capped (a UI shows "999+"). Counting stops there, so the unread count of a
/// chat with millions of unread messages costs what a small one does.
pub const UNREAD_COUNT_CAP: i64 = 999;
/// Cursor kind of message lists.
pub const MESSAGE_CURSOR: &str = "msg";

/// The cursor of a message in its chat's message list.
pub fn message_cursor(message: &Message) -> String {
    cursor::encode(MESSAGE_CURSOR, &[message.id.0])
}

/// Decodes a message cursor into the message id it points at.
pub fn decode_message_cursor(raw: &str) -> AppResult<MessageId> {
    Ok(MessageId(cursor::decode(MESSAGE_CURSOR, raw, 1)?[0]))
}

/// Content rules: not blank (unless a stream is starting) and at most the configured length.
pub(crate) fn check_content(app: &App, content: &str, allow_empty: bool) -> AppResult<()> {
    if !allow_empty && content.trim().is_empty() {
        return Err(AppError::BadInput(
            "message content must not be empty".into(),
        ));
    }
    let max = app.config().max_message_length;
    let length = content.chars().count();
    if length > max {
        return Err(AppError::BadInput(format!(
            "message content is {length} characters; the limit is {max}"
        )));
    }
    Ok(())
}

/// Whose read and delivery watermarks speak for a message: the members other than its
/// sender who were in the chat when it was sent. A later member starts with their read
/// mark at the newest message, which covers earlier ones they never saw: counting them
/// would report reads that never happened.
pub fn audience(message: &Message, members: Vec<Member>) -> Vec<Member> {
    members
        .into_iter()
        .filter(|m| Some(m.user_id) != message.sender_id && m.joined_at <= message.created_at)
        .collect()
}

/// A message's delivery state as its sender sees it, from the other members' watermarks:
/// READ when every other member read it, DELIVERED when it reached every other member
/// (read counts as reached), else SENT (also with nobody else in the chat).
pub fn status(message: MessageId, others: &[Member]) -> MessageStatus {
    let reached = |mark: Option<MessageId>| mark.is_some_and(|m| m >= message);
    if others.is_empty() {
        MessageStatus::Sent
    } else if others.iter().all(|m| reached(m.last_read_message_id)) {
        MessageStatus::Read
    } else if others
        .iter()
        .all(|m| reached(m.last_delivered_message_id) || reached(m.last_read_message_id))
    {
        MessageStatus::Delivered
    } else {
        MessageStatus::Sent
    }
}

/// A page of the other members who have read `message`, in user-id order: their ids, one
/// more than the page holds when there are more (see `Page::from_rows`).
pub fn readers(
    message: MessageId,
    others: &[Member],
    page: &PageRequest,
) -> AppResult<Vec<UserId>> {
    let after_user = page
        .cursor
        .as_deref()
        .map(|c| cursor::decode(super::users::USER_CURSOR, c, 1).map(|f| UserId(f[0])))
        .transpose()?;
    Ok(others
        .iter()
        .filter(|m| m.last_read_message_id.is_some_and(|r| r >= message))
        .map(|m| m.user_id)
        .filter(|u| after_user.is_none_or(|a| *u > a))
        .take(page.limit + 1)
        .collect())
}

/// A message and its chat, if the caller is a member of that chat. A message of a chat the
/// caller is not in is `NOT_FOUND`, exactly like one that does not exist, so ids cannot be
/// probed.
pub(crate) async fn visible_message(
    conn: &mut DbConn,
    caller: UserId,
    id: MessageId,
) -> AppResult<(Message, Chat, Member)> {
    let message = db::messages::find(conn, id).await?;
    of_member(conn, caller, message).await
}

/// [`visible_message`] for a change to the message: in a transaction, its row stays locked
/// until the end, so two changes to one message (edits, reactions, pins) take turns and
/// each sees the other's result.
pub(crate) async fn visible_message_locked(
    conn: &mut DbConn,
    caller: UserId,
    id: MessageId,
) -> AppResult<(Message, Chat, Member)> {
    let message = db::messages::find_locked(conn, id).await?;
    of_member(conn, caller, message).await
}

async fn of_member(
    conn: &mut DbConn,
    caller: UserId,
    message: Option<Message>,
) -> AppResult<(Message, Chat, Member)> {
    let message = message.ok_or(AppError::NotFound("message"))?;
    let (chat, member) = member_of(conn, message.chat_id, caller)
        .await
        .map_err(hidden_message)?;
    Ok((message, chat, member))
}

/// A message the caller may see.
pub async fn get(app: &App, caller: UserId, id: MessageId) -> AppResult<Message> {
    let mut conn = app.db().conn().await?;
    Ok(visible_message(&mut conn, caller, id).await?.0)
}

/// A page of a chat's messages (members only): `first/after` oldest→newest, `last/before`
/// back from the newest. Membership is checked once per operation through `checked`.
pub async fn list(
    app: &App,
    caller: UserId,
    chat: ChatId,
    range: TimeRange,
    page: &PageRequest,
    checked: &CheckedMemberships,
) -> AppResult<Page<Message>> {
    let boundary = page
        .cursor
        .as_deref()
        .map(decode_message_cursor)
        .transpose()?;
    let mut conn = app.db().conn().await?;
    checked.member_of(&mut conn, chat, caller).await?;
    Ok(db::messages::page(&mut conn, chat, boundary, range, page).await?)
}

/// The caller's unread messages in a chat, oldest first.
pub async fn unread(
    app: &App,
    caller: UserId,
    chat: ChatId,
    limit: usize,
) -> AppResult<Page<Message>> {
    let mut conn = app.db().conn().await?;
    member_of(&mut conn, chat, caller).await?;
    let rows = db::messages::unread(
        &mut conn,
        chat,
        caller,
        i64::try_from(limit + 1).unwrap_or(i64::MAX),
    )
    .await?;
    let request = PageRequest {
        direction: cursor::Direction::Forward,
        limit,
        cursor: None,
    };
    Ok(Page::from_rows(rows, &request))
}

/// Edits a message's content (its sender only, inside the edit window).
pub async fn edit(app: &App, caller: UserId, id: MessageId, content: &str) -> AppResult<Message> {
    check_content(app, content, false)?;
    let edit_window = app.config().edit_window();
    let message = app
        .write(async |conn| {
            let (message, _, _) = visible_message_locked(conn, caller, id).await?;
            if message.sender_id != Some(caller) {
                return Err(AppError::Forbidden(
                    "only the sender may edit a message".into(),
                ));
            }
            if message.retracted_at.is_some() {
                return Err(AppError::Conflict(
                    "a retracted message cannot be edited".into(),
                ));
            }
            if message.stream_state == Some(StreamState::Streaming) {
                return Err(AppError::Conflict(
                    "a streaming message is changed with appendMessageContent".into(),
                ));
            }
            if let Some(window) = edit_window {
                let age = (now() - message.created_at).to_std().unwrap_or_default();
                if age > window {
                    return Err(AppError::Forbidden(format!(
                        "messages can only be edited within {} seconds of sending",
                        window.as_secs()
                    )));
                }
            }
            // Saving the same text again (a client's retry, an unchanged editor) is no
            // edit: no `editedAt`, no history entry, no event.
            if message.content == content {
                return Ok(message);
            }
            let at = now();
            let written_at = message.edited_at.unwrap_or(message.created_at);
            db::message_edits::record(conn, id, &message.content, written_at, at).await?;
            let edited = db::messages::set_content(conn, id, content, at).await?;
            mentions::add_from_edit(conn, edited.chat_id, caller, id, content).await?;
            conn.emit(
                Event::in_chat(edited.chat_id, EventKind::MessageEdited { message_id: id })
                    .in_thread(edited.parent_id),
            );
            Ok(edited)
        })
        .await?;
    Ok(message)
}

/// Retracts a message (its sender only): it stays as a tombstone with no content, and its
/// edit history, reactions, mentions, attachments and pin go with the content (the
/// attachments' URLs stop answering at once; their bytes go with the next sweep).
/// Retracting twice returns the tombstone.
pub async fn retract(app: &App, caller: UserId, id: MessageId) -> AppResult<Message> {
    app.write(async |conn| {
        let (message, _, _) = visible_message_locked(conn, caller, id).await?;
        if message.sender_id != Some(caller) {
            return Err(AppError::Forbidden(
                "only the sender may retract a message".into(),
            ));
        }
        if message.retracted_at.is_some() {
            return Ok(message);
        }
        let retracted = db::messages::retract(conn, id, now()).await?;
        db::message_edits::clear(conn, id).await?;
        db::reactions::clear(conn, id).await?;
        db::mentions::clear(conn, id).await?;
        db::attachments::detach_all(conn, id).await?;
        let was_pinned = db::pins::unpin(conn, id).await?;
        conn.emit(
            Event::in_chat(
                retracted.chat_id,
                EventKind::MessageRetracted { message_id: id },
            )
            .in_thread(retracted.parent_id),
        );
        if was_pinned {
            conn.emit(
                Event::in_chat(
                    retracted.chat_id,
                    EventKind::MessageUnpinned {
                        message_id: id,
                        by: caller,
                    },
                )
                .in_thread(retracted.parent_id),
            );
        }
        Ok(retracted)
    })
    .await
}

/// Deletes a message for good (OWNER/ADMIN/MODERATOR of its chat).
pub async fn delete(app: &App, caller: UserId, id: MessageId) -> AppResult<bool> {
    app.write(async |conn| {
        let (message, chat, member) = visible_message(conn, caller, id).await?;
        if !member.role.can_moderate() {
            return Err(AppError::Forbidden(
                "only an OWNER, ADMIN or MODERATOR may delete messages".into(),
            ));
        }
        db::messages::delete(conn, id).await?;
        if chat.last_message_id == Some(id) {
            let newest = db::messages::latest_id(conn, chat.id).await?;
            db::chats::set_last_message(conn, chat.id, newest).await?;
        }
        // Its thread's newest reply may be the one deleted.
        if let Some(parent) = message.parent_id {
            db::threads::refresh_last_reply(conn, parent).await?;
        }
        conn.emit(
            Event::in_chat(
                message.chat_id,
                EventKind::MessageDeleted { message_id: id },
            )
            .in_thread(message.parent_id),
        );
        Ok(true)
    })
    .await
}

/// How many messages `history` returns without `last`.
pub const DEFAULT_HISTORY: usize = 50;

/// What a chat's history for an LLM holds (see [`history`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryRequest {
    /// At most this many messages (default [`DEFAULT_HISTORY`], at most [`MAX_HISTORY`]).
    pub last: Option<i32>,
    /// At most this many tokens, estimated by [`estimated_tokens`]: the newest messages
    /// that fit are kept.
    pub max_tokens: Option<i32>,
    /// Which messages besides finished ones, and where to start.
    pub filter: db::messages::HistoryFilter,
}

/// A message's estimated token count in a chat-completion request: about 4 characters
/// per token for English text plus ~4 tokens of per-message framing (OpenAI's rule of
/// thumb). Good for a context budget; the model's own tokenizer is the exact count.
pub fn estimated_tokens(content: &str) -> usize {
    content.chars().count().div_ceil(4) + 4
}

/// The newest messages of a chat a model should see, oldest first, in the shape LLM
/// chat-completion APIs take: no retracted, failed or still-streaming messages (unless
/// asked for), at most `last` of them, within `max_tokens`.
pub async fn history(
    app: &App,
    caller: UserId,
    chat: ChatId,
    request: HistoryRequest,
) -> AppResult<Vec<Message>> {
    let limit = match request.last {
        None => DEFAULT_HISTORY as i64,
        Some(n) if n < 0 => return Err(AppError::BadInput("`last` must not be negative".into())),
        Some(n) if usize::try_from(n).unwrap_or(usize::MAX) > MAX_HISTORY => {
            return Err(AppError::LimitExceeded(format!(
                "`last` may be at most {MAX_HISTORY}"
            )));
        }
        Some(n) => i64::from(n),
    };
    let budget = match request.max_tokens {
        Some(n) if n < 0 => {
            return Err(AppError::BadInput(
                "`maxTokens` must not be negative".into(),
            ));
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(0)),
        None => None,
    };
    let mut conn = app.db().conn().await?;
    member_of(&mut conn, chat, caller).await?;
    let mut rows = db::messages::history(&mut conn, chat, request.filter, limit).await?;
    if let Some(budget) = budget {
        // Newest first until the budget is spent; the older rest is left out.
        let mut spent = 0;
        let fitting = rows
            .iter()
            .rev()
            .take_while(|m| {
                spent += estimated_tokens(&m.content);
                spent <= budget
            })
            .count();
        rows.drain(..rows.len() - fitting);
    }
    Ok(rows)
}

/// Longest delta one `appendMessageContent` call may add (keeps every live event small
/// enough for a PostgreSQL NOTIFY payload).
pub const MAX_DELTA: usize = 1000;

/// A streaming message the caller sent, or why it may not be streamed to.
async fn own_streaming_message(
    conn: &mut DbConn,
    caller: UserId,
    id: MessageId,
) -> AppResult<Message> {
    let (message, _, _) = visible_message(conn, caller, id).await?;
    if message.sender_id != Some(caller) {
        return Err(AppError::Forbidden(
            "only the message's sender may stream into it".into(),
        ));
    }
    if message.stream_state != Some(StreamState::Streaming) {
        return Err(not_streaming(message.stream_state));
    }
    Ok(message)
}

/// Why a message that is not streaming cannot be streamed to or finished: a bot learns
/// from the message that a member stopped its reply.
fn not_streaming(state: Option<StreamState>) -> AppError {
    match state {
        Some(StreamState::Interrupted) => {
            AppError::Conflict("the reply was interrupted: stop generating it".into())
        }
        _ => AppError::Conflict("the message is not streaming".into()),
    }
}

/// Appends a chunk to a streaming assistant reply (its sender only). Subscribers get a
/// `MessageDelta`; the stored content is the concatenation of all deltas. A `trace_id`
/// replaces the message's (none keeps it).
pub async fn append(
    app: &App,
    caller: UserId,
    id: MessageId,
    delta: &str,
    trace_id: Option<&str>,
) -> AppResult<Message> {
    check_trace_id(trace_id)?;
    let delta_length = delta.chars().count();
    if delta_length == 0 || delta_length > MAX_DELTA {
        return Err(AppError::BadInput(format!(
            "`delta` must be 1–{MAX_DELTA} characters"
        )));
    }
    let max = app.config().max_message_length;
    app.write(async |conn| {
        let current = own_streaming_message(conn, caller, id).await?;
        if current.content.chars().count() + delta_length > max {
            return Err(AppError::BadInput(format!(
                "the message would exceed {max} characters"
            )));
        }
        let trace_id = trace_id.or(current.trace_id.as_deref());
        let Some(appended) = db::messages::append_content(conn, id, delta, trace_id).await? else {
            // Interrupted (or finished) since it was read above.
            let now = db::messages::find(conn, id).await?;
            return Err(not_streaming(now.and_then(|m| m.stream_state)));
        };
        if let Some(trace_id) = trace_id {
            tracing::info!(
                trace_id = %trace_id,
                message = %id.to_global(),
                delta_chars = delta_length,
                "reply content appended"
            );
        }
        let offset = appended.content.chars().count() - delta_length;
        conn.emit(
            Event::in_chat(
                appended.chat_id,
                EventKind::MessageDelta {
                    message_id: id,
                    delta: delta.to_owned(),
                    offset: i64::try_from(offset).unwrap_or(i64::MAX),
                },
            )
            .in_thread(appended.parent_id),
        );
        Ok(appended)
    })
    .await
}

/// Ends a streaming reply as COMPLETE, INTERRUPTED or FAILED (its sender only).
pub async fn finish(
    app: &App,
    caller: UserId,
    id: MessageId,
    state: StreamState,
) -> AppResult<Message> {
    if state == StreamState::Streaming {
        return Err(AppError::BadInput(
            "finish with COMPLETE, INTERRUPTED or FAILED".into(),
        ));
    }
    app.write(async |conn| {
        own_streaming_message(conn, caller, id).await?;
        let Some(finished) = db::messages::finish_stream(conn, id, state).await? else {
            let now = db::messages::find(conn, id).await?;
            return Err(not_streaming(now.and_then(|m| m.stream_state)));
        };
        conn.emit(
            Event::in_chat(
                finished.chat_id,
                EventKind::MessageEdited { message_id: id },
            )
            .in_thread(finished.parent_id),
        );
        Ok(finished)
    })
    .await
}

/// Stops a streaming reply on behalf of a member of its chat (a human asking the bot to
/// stop, or the bot itself): it ends `INTERRUPTED` with what was streamed so far kept,
/// and the chat (the bot's `myEvents` too) gets `ReplyInterrupted`. A reply that is no
/// longer streaming is returned as it is, without an event: a second interrupt, or one
/// racing the bot's own finish, is a no-op.
pub async fn interrupt(app: &App, caller: UserId, id: MessageId) -> AppResult<Message> {
    app.write(async |conn| {
        let (message, _, _) = visible_message(conn, caller, id).await?;
        if message.stream_state.is_none() {
            return Err(AppError::Conflict(
                "the message is not a streamed reply".into(),
            ));
        }
        let Some(interrupted) =
            db::messages::finish_stream(conn, id, StreamState::Interrupted).await?
        else {
            return Ok(db::messages::find(conn, id).await?.unwrap_or(message));
        };
        conn.emit(
            Event::in_chat(
                interrupted.chat_id,
                EventKind::ReplyInterrupted {
                    message_id: id,
                    sender_id: interrupted.sender_id,
                    by: caller,
                },
            )
            .in_thread(interrupted.parent_id),
        );
        Ok(interrupted)
    })
    .await
}

/// Tells the chat's other members the caller is (or stopped) typing. Not stored; a
/// `true` expires after a few seconds unless refreshed.
pub async fn set_typing(app: &App, caller: UserId, chat: ChatId, typing: bool) -> AppResult<bool> {
    let mut conn = app.db().conn().await?;
    member_of(&mut conn, chat, caller).await?;
    let ttl = std::time::Duration::from_secs(app.config().typing_ttl_secs.max(1));
    app.typing().set(app.broker(), ttl, chat, caller, typing);
    Ok(typing)
}
