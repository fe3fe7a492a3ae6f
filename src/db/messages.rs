//! Messages: the model and every query on the `messages` table. Message ids grow
//! monotonically, so one id is both the keyset cursor and the read watermark.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{chats, members, messages};
use super::{DbConn, DbResult, KeepPrepared};
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::enums::{MessageKind, MessageRole, StreamState};
use crate::vocabulary::ids::{ChatId, MessageId, SessionId, UserId};
use crate::with_conn;

/// A window of time over messages: at or after `since`, before `until`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeRange {
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// A stored message.
#[derive(Clone, Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: MessageId,
    pub chat_id: ChatId,
    pub sender_id: Option<UserId>,
    pub role: MessageRole,
    pub kind: MessageKind,
    pub content: String,
    pub data: Option<String>,
    pub parent_id: Option<MessageId>,
    pub client_id: Option<String>,
    pub stream_state: Option<StreamState>,
    pub created_at: NaiveDateTime,
    pub edited_at: Option<NaiveDateTime>,
    pub retracted_at: Option<NaiveDateTime>,
    pub trace_id: Option<String>,
    pub session_id: Option<SessionId>,
}

/// Fields of a new message. `None` is stored as NULL (what the columns default to anyway):
/// an insert with optional `DEFAULT` values is never kept as a prepared statement by diesel,
/// so PostgreSQL would parse and plan it again for every message.
#[derive(Debug, Insertable)]
#[diesel(table_name = messages, treat_none_as_null = true)]
pub struct NewMessage<'a> {
    pub chat_id: ChatId,
    pub sender_id: Option<UserId>,
    pub role: MessageRole,
    pub kind: MessageKind,
    pub content: &'a str,
    pub data: Option<String>,
    pub parent_id: Option<MessageId>,
    pub client_id: Option<&'a str>,
    pub stream_state: Option<StreamState>,
    pub created_at: NaiveDateTime,
    pub trace_id: Option<&'a str>,
    pub session_id: Option<SessionId>,
    /// When it was stored: the chat's last activity, and when its sender read up to it.
    /// `created_at` for a send; the import's own time for a message imported with an
    /// earlier `created_at`, so the chat's activity never goes back (sessions and the chat
    /// list go by it).
    #[diesel(skip_insertion)]
    pub stored_at: NaiveDateTime,
}

/// Inserts a message as its chat's newest, in a transaction that holds the chat's lock
/// (`chats::senders_locked`). That lock, taken before the id is allocated,
/// serialises sends to one chat on PostgreSQL, so message ids become visible in id order
/// (no reader ever sees id N+1 before id N commits). The chat points at the message and
/// takes its time as the last activity, and the sender's read and delivery watermarks
/// move to it (senders have read what they wrote). Under that lock the new message has
/// the chat's highest id, so both updates read it back with a subquery instead of waiting
/// for the insert's answer: on PostgreSQL the three statements go out pipelined, in one round trip, which
/// is what the next sender into this chat waits for. SQLite runs them one by one.
pub async fn insert_newest(conn: &mut DbConn, new: &NewMessage<'_>) -> DbResult<Message> {
    // Macros, not values: each backend needs its own query types.
    macro_rules! newest_id {
        () => {
            messages::table
                .filter(messages::chat_id.eq(new.chat_id))
                .select(diesel::dsl::max(messages::id))
                .single_value()
        };
    }
    macro_rules! insert {
        () => {
            diesel::insert_into(messages::table)
                .values(new)
                .returning(Message::as_returning())
        };
    }
    macro_rules! point_chat {
        () => {
            KeepPrepared(diesel::update(chats::table.find(new.chat_id)).set((
                chats::last_message_id.eq(newest_id!()),
                chats::last_activity_at.eq(new.stored_at),
            )))
        };
    }
    // A message without a sender (none today) moves nobody's watermark: no member 0.
    macro_rules! sender_read {
        () => {
            KeepPrepared(
                diesel::update(
                    members::table.find((new.chat_id, new.sender_id.unwrap_or(UserId(0)))),
                )
                .set((
                    members::last_read_message_id.eq(newest_id!()),
                    members::last_read_at.eq(Some(new.stored_at)),
                    members::last_delivered_message_id.eq(newest_id!()),
                )),
            )
        };
    }
    match conn {
        DbConn::Pg(pooled) => {
            // Shared references pipeline: the statements are sent in this order before the
            // first answer arrives, and PostgreSQL runs them in the order received.
            let c: &diesel_async::AsyncPgConnection = pooled;
            let (message, _, _) = futures_util::try_join!(
                insert!().get_result(&mut &*c),
                point_chat!().execute(&mut &*c),
                sender_read!().execute(&mut &*c),
            )?;
            Ok(message)
        }
        DbConn::Sqlite(pooled) => {
            let c: &mut super::SqliteConn = pooled;
            let message = insert!().get_result(c).await?;
            point_chat!().execute(c).await?;
            sender_read!().execute(c).await?;
            Ok(message)
        }
    }
}

/// The message with `id`, if any.
pub async fn find(conn: &mut DbConn, id: MessageId) -> DbResult<Option<Message>> {
    Ok(with_conn!(conn, |c| messages::table
        .find(id)
        .select(Message::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The message with `id`, if any, locked until the transaction ends on PostgreSQL, so
/// changes to one message (its edits, reactions, pin) take turns; SQLite transactions
/// already hold the database's write lock.
pub async fn find_locked(conn: &mut DbConn, id: MessageId) -> DbResult<Option<Message>> {
    macro_rules! query {
        () => {
            messages::table.find(id).select(Message::as_select())
        };
    }
    Ok(match conn {
        DbConn::Pg(c) => query!().for_update().first(&mut **c).await,
        DbConn::Sqlite(c) => query!().first(&mut **c).await,
    }
    .optional()?)
}

/// The messages with these ids (any order).
pub async fn find_many(conn: &mut DbConn, ids: &[MessageId]) -> DbResult<Vec<Message>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::id.eq_any(ids))
        .select(Message::as_select())
        .load(c)
        .await)?)
}

/// The messages of chat `chat_id` sent by one of `sender_ids` with one of `client_ids`
/// (every pair of the two lists; the caller picks the pairs it asked for).
pub async fn find_by_client_ids(
    conn: &mut DbConn,
    chat_id: ChatId,
    sender_ids: &[UserId],
    client_ids: &[&str],
) -> DbResult<Vec<Message>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::sender_id.eq_any(sender_ids))
        .filter(messages::client_id.eq_any(client_ids))
        .select(Message::as_select())
        .load(c)
        .await)?)
}

/// A page of a chat's messages in id order. Forward pages start after `boundary` (or at the
/// oldest); backward pages end before `boundary` (or at the newest).
pub async fn page(
    conn: &mut DbConn,
    chat_id: ChatId,
    boundary: Option<MessageId>,
    range: TimeRange,
    page: &PageRequest,
) -> DbResult<Page<Message>> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let rows = with_conn!(conn, |c| {
        let mut query = messages::table
            .filter(messages::chat_id.eq(chat_id))
            .select(Message::as_select())
            .limit(limit)
            .into_boxed();
        query = keyset_by_id!(query, page, boundary);
        // Served by the (chat_id, created_at) index when the range is narrow.
        if let Some(since) = range.since {
            query = query.filter(messages::created_at.ge(since));
        }
        if let Some(until) = range.until {
            query = query.filter(messages::created_at.lt(until));
        }
        query.load(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// Orders a boxed `messages` query by id in `$page`'s direction and starts it after (or
/// before) `$boundary`: the keyset every message list pages by. A macro, because the
/// boxed query's type differs per backend and per selection.
macro_rules! keyset_by_id {
    ($query:expr, $page:expr, $boundary:expr) => {{
        use $crate::vocabulary::cursor::Direction;
        let query = match ($page.direction, $boundary) {
            (Direction::Forward, Some(after)) => $query.filter(messages::id.gt(after)),
            (Direction::Backward, Some(before)) => $query.filter(messages::id.lt(before)),
            (_, None) => $query,
        };
        match $page.direction {
            Direction::Forward => query.order(messages::id.asc()),
            Direction::Backward => query.order(messages::id.desc()),
        }
    }};
}
pub(super) use keyset_by_id;

/// The unread rule, the one place it is written: a message is unread for a member when it
/// is above their read watermark, live (not retracted) and sent by someone else (a system
/// notice, which has no sender, counts). SQL over the `members` row in scope, because the
/// bounded count in [`unread_counts`] is a subquery in FROM, which diesel cannot express,
/// and the other unread queries must say exactly the same.
const UNREAD_FOR_MEMBER: &str = "(messages.id > COALESCE(members.last_read_message_id, 0) \
     AND messages.retracted_at IS NULL \
     AND (messages.sender_id IS NULL OR messages.sender_id <> members.user_id))";

/// [`UNREAD_FOR_MEMBER`] as a filter, for queries that have the member's row in scope.
pub(crate) fn unread_for_member() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql(UNREAD_FOR_MEMBER)
}

/// Up to `limit` messages of a chat with ids above `after_id`, oldest first (subscription
/// replay).
pub async fn after(
    conn: &mut DbConn,
    chat_id: ChatId,
    after_id: MessageId,
    limit: i64,
) -> DbResult<Vec<Message>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::id.gt(after_id))
        .select(Message::as_select())
        .order(messages::id.asc())
        .limit(limit)
        .load(c)
        .await)?)
}

/// Up to `limit` of `reader`'s unread messages in a chat, oldest first.
pub async fn unread(
    conn: &mut DbConn,
    chat_id: ChatId,
    reader: UserId,
    limit: i64,
) -> DbResult<Vec<Message>> {
    Ok(with_conn!(conn, |c| messages::table
        .inner_join(
            members::table.on(members::chat_id
                .eq(messages::chat_id)
                .and(members::user_id.eq(reader))),
        )
        .filter(messages::chat_id.eq(chat_id))
        .filter(unread_for_member())
        .select(Message::as_select())
        .order(messages::id.asc())
        .limit(limit)
        .load(c)
        .await)?)
}

/// Which messages a chat's history for an LLM keeps besides finished ones (see
/// [`history`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryFilter {
    /// Keep replies that ended `FAILED`.
    pub include_failed: bool,
    /// Keep replies still `STREAMING`.
    pub include_streaming: bool,
    /// Start at this message (inclusive).
    pub from: Option<MessageId>,
}

/// The newest `limit` messages of a chat for an LLM's context, oldest first: without
/// retracted messages (their content is erased), `FAILED` or still-`STREAMING` replies
/// (unless `filter` keeps them), and without messages whose content is empty (an
/// interrupted reply that never got a word, a message that only carries `data`), which a
/// model cannot use.
pub async fn history(
    conn: &mut DbConn,
    chat_id: ChatId,
    filter: HistoryFilter,
    limit: i64,
) -> DbResult<Vec<Message>> {
    let mut left_out = Vec::new();
    if !filter.include_failed {
        left_out.push(StreamState::Failed);
    }
    if !filter.include_streaming {
        left_out.push(StreamState::Streaming);
    }
    let from = filter.from.unwrap_or(MessageId(i64::MIN));
    let mut rows = with_conn!(conn, |c| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .filter(messages::id.ge(from))
        .filter(messages::retracted_at.is_null())
        .filter(messages::content.ne(""))
        .filter(
            messages::stream_state
                .is_null()
                .or(messages::stream_state.ne_all(&left_out)),
        )
        .select(Message::as_select())
        .order(messages::id.desc())
        .limit(limit)
        .load(c)
        .await)?;
    rows.reverse();
    Ok(rows)
}

/// The id of a chat's newest message, if any.
pub async fn latest_id(conn: &mut DbConn, chat_id: ChatId) -> DbResult<Option<MessageId>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::chat_id.eq(chat_id))
        .select(diesel::dsl::max(messages::id))
        .first(c)
        .await)?)
}

/// Replaces a message's content and marks it edited.
pub async fn set_content(
    conn: &mut DbConn,
    id: MessageId,
    content: &str,
    edited_at: NaiveDateTime,
) -> DbResult<Message> {
    Ok(with_conn!(conn, |c| diesel::update(
        messages::table.find(id)
    )
    .set((
        messages::content.eq(content),
        messages::edited_at.eq(edited_at)
    ))
    .returning(Message::as_returning())
    .get_result(c)
    .await)?)
}

/// Turns a message into a tombstone: content and data are erased, not just hidden.
pub async fn retract(conn: &mut DbConn, id: MessageId, at: NaiveDateTime) -> DbResult<Message> {
    Ok(with_conn!(conn, |c| diesel::update(
        messages::table.find(id)
    )
    .set((
        messages::content.eq(""),
        messages::data.eq(None::<String>),
        messages::retracted_at.eq(at),
    ))
    .returning(Message::as_returning())
    .get_result(c)
    .await)?)
}

/// Deletes one message; replies keep existing with no parent.
pub async fn delete(conn: &mut DbConn, id: MessageId) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(messages::table.find(id))
        .execute(c)
        .await)?;
    Ok(deleted > 0)
}

/// Deletes every message of a chat; returns how many.
pub async fn delete_all_in_chat(conn: &mut DbConn, chat_id: ChatId) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(
        messages::table.filter(messages::chat_id.eq(chat_id))
    )
    .execute(c)
    .await)?)
}

/// The chat of each of these messages, as `(message id, chat id)` pairs; unknown ids are absent.
pub async fn chats_of(conn: &mut DbConn, ids: &[MessageId]) -> DbResult<Vec<(MessageId, ChatId)>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::id.eq_any(ids))
        .select((messages::id, messages::chat_id))
        .load(c)
        .await)?)
}

/// Unread counts of `user_id` in these chats ([`UNREAD_FOR_MEMBER`]), counted up to `limit` per chat (a chat with more shows
/// `limit`). Chats the user is not a member of are absent.
///
/// Each count is a bounded range scan of the `(chat_id, id)` index from the watermark up,
/// so its cost does not grow with the size of the chat.
pub async fn unread_counts(
    conn: &mut DbConn,
    user_id: UserId,
    chat_ids: &[ChatId],
    limit: i64,
) -> DbResult<Vec<(ChatId, i64)>> {
    let rows = format!("messages WHERE messages.chat_id = members.chat_id AND {UNREAD_FOR_MEMBER}");
    counts_per_membership(conn, user_id, chat_ids, &rows, limit).await
}

/// For each membership of `user_id` in `chat_ids`: how many rows `rows` yields, counted
/// up to `limit` — `rows` being SQL `table WHERE condition`, the condition over that
/// member's `members` row. The bounded count is a subquery in FROM (diesel cannot say
/// it), the same text on both backends.
pub(super) async fn counts_per_membership(
    conn: &mut DbConn,
    user_id: UserId,
    chat_ids: &[ChatId],
    rows: &str,
    limit: i64,
) -> DbResult<Vec<(ChatId, i64)>> {
    let count = diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "(SELECT COUNT(*) FROM (SELECT 1 FROM {rows} LIMIT {limit}) AS counted)"
    ));
    Ok(with_conn!(conn, |c| KeepPrepared(
        members::table
            .filter(members::user_id.eq(user_id))
            .filter(members::chat_id.eq_any(chat_ids))
            .select((members::chat_id, count))
    )
    .load(c)
    .await)?)
}

/// Appends `delta` to a message's content (SQL `||`, the same on both backends) and sets
/// its trace id, if it is still streaming; `None` when it is not (any more).
///
/// The state is tested by the UPDATE itself, not only by an earlier read: on PostgreSQL an
/// interrupt committing in between would otherwise let the append land on a finished
/// reply (the UPDATE re-checks its WHERE on the row once the other writer committed).
pub async fn append_content(
    conn: &mut DbConn,
    id: MessageId,
    delta: &str,
    trace_id: Option<&str>,
) -> DbResult<Option<Message>> {
    Ok(with_conn!(conn, |c| diesel::update(
        messages::table
            .find(id)
            .filter(messages::stream_state.eq(StreamState::Streaming))
    )
    .set((
        messages::content.eq(messages::content.concat(delta)),
        messages::trace_id.eq(trace_id),
    ))
    .returning(Message::as_returning())
    .get_result(c)
    .await
    .optional())?)
}

/// Ends a streamed message in `state` if it is still streaming; `None` when it is not
/// (any more). Tested in the UPDATE for the reason given at [`append_content`].
pub async fn finish_stream(
    conn: &mut DbConn,
    id: MessageId,
    state: StreamState,
) -> DbResult<Option<Message>> {
    Ok(with_conn!(conn, |c| diesel::update(
        messages::table
            .find(id)
            .filter(messages::stream_state.eq(StreamState::Streaming))
    )
    .set(messages::stream_state.eq(state))
    .returning(Message::as_returning())
    .get_result(c)
    .await
    .optional())?)
}
