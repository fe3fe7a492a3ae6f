//! Reading every table for an export, page by page, in one snapshot.
//!
//! The row types here are the export format's records (`domain::transfer` tags and writes
//! them): stored columns only, as plain values, without what the server derives again
//! (`chats.last_message_id`, `messages.last_reply_id`, a user's token generation). Every
//! read is a keyset page, so an export holds one page in memory whatever the table's size.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde::{Deserialize, Serialize};

use super::schema::{
    blocks, chat_sessions, chat_tags, chats, members, mentions, message_edits, messages, pins,
    reactions, thread_reads, users,
};
use super::{DbConn, DbResult};
use crate::with_conn;

/// A user.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = users)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub is_bot: bool,
    pub metadata: Option<String>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// One user blocking another.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = blocks)]
#[serde(rename_all = "camelCase")]
pub struct BlockRow {
    pub blocker_id: i64,
    pub blocked_id: i64,
    pub created_at: NaiveDateTime,
}

/// A chat (its tags are read apart, see [`tags_of`]).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = chats)]
#[serde(rename_all = "camelCase")]
pub struct ChatRow {
    pub id: i64,
    pub kind: String,
    pub category: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub avatar_url: Option<String>,
    pub metadata: Option<String>,
    pub created_by: Option<i64>,
    pub direct_key: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_activity_at: NaiveDateTime,
    pub external_key: Option<String>,
    pub status: String,
    pub active_session_id: Option<i64>,
}

/// A conversation session of a chat.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = chat_sessions)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    pub id: i64,
    pub chat_id: i64,
    pub started_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

/// A membership, with its read and delivery watermarks.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = members)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    pub chat_id: i64,
    pub user_id: i64,
    pub role: String,
    pub joined_at: NaiveDateTime,
    pub last_read_message_id: Option<i64>,
    pub last_read_at: Option<NaiveDateTime>,
    pub last_delivered_message_id: Option<i64>,
    pub pinned: bool,
    pub muted: bool,
}

/// A message, every stored field.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = messages)]
#[serde(rename_all = "camelCase")]
pub struct MessageRow {
    pub id: i64,
    pub chat_id: i64,
    pub sender_id: Option<i64>,
    pub role: String,
    pub kind: String,
    pub content: String,
    pub data: Option<String>,
    pub parent_id: Option<i64>,
    pub client_id: Option<String>,
    pub stream_state: Option<String>,
    pub created_at: NaiveDateTime,
    pub edited_at: Option<NaiveDateTime>,
    pub retracted_at: Option<NaiveDateTime>,
    pub trace_id: Option<String>,
    pub session_id: Option<i64>,
}

/// An earlier content of an edited message.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = message_edits)]
#[serde(rename_all = "camelCase")]
pub struct EditRow {
    pub id: i64,
    pub message_id: i64,
    pub content: String,
    pub written_at: NaiveDateTime,
    pub replaced_at: NaiveDateTime,
}

/// A user's reaction to a message.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = reactions)]
#[serde(rename_all = "camelCase")]
pub struct ReactionRow {
    pub message_id: i64,
    pub user_id: i64,
    pub emoji: String,
    pub created_at: NaiveDateTime,
}

/// A user mentioned by a message.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = mentions)]
#[serde(rename_all = "camelCase")]
pub struct MentionRow {
    pub user_id: i64,
    pub chat_id: i64,
    pub message_id: i64,
}

/// A pinned message.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = pins)]
#[serde(rename_all = "camelCase")]
pub struct PinRow {
    pub message_id: i64,
    pub chat_id: i64,
    pub pinned_by: Option<i64>,
    pub pinned_at: NaiveDateTime,
}

/// How far a member has read a thread.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = thread_reads)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadRow {
    pub user_id: i64,
    pub message_id: i64,
    pub last_read_message_id: i64,
}

/// Which chats an export takes.
#[derive(Debug, Clone)]
pub enum ChatSelection {
    /// Every chat, every user and every block.
    All,
    /// These chats, and the users who are their members or sent in them.
    Chats(Vec<i64>),
}

/// Starts the read-only snapshot every page of an export is read in: a repeatable-read
/// transaction on PostgreSQL, a deferred one on SQLite (its first read fixes the WAL
/// snapshot), so writers go on and the export sees none of what they commit meanwhile.
pub async fn begin_snapshot(conn: &mut DbConn) -> DbResult<()> {
    let begin = match conn {
        DbConn::Pg(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        DbConn::Sqlite(_) => "BEGIN DEFERRED",
    };
    Ok(with_conn!(conn, |c| c.batch_execute(begin).await)?)
}

/// Ends the snapshot.
pub async fn end_snapshot(conn: &mut DbConn) -> DbResult<()> {
    Ok(with_conn!(conn, |c| c.batch_execute("COMMIT").await)?)
}

/// Up to `limit` users after id `after`, in id order: all of them, or those the selected
/// chats involve (members and senders); only those in `among`, when given.
pub async fn users_page(
    conn: &mut DbConn,
    selection: &ChatSelection,
    among: Option<&[i64]>,
    after: i64,
    limit: i64,
) -> DbResult<Vec<UserRow>> {
    Ok(with_conn!(conn, |c, Db| {
        let mut query = users::table
            .filter(users::id.gt(after))
            .select(UserRow::as_select())
            .order(users::id)
            .limit(limit)
            .into_boxed::<Db>();
        if let ChatSelection::Chats(chats) = selection {
            query = query.filter(
                users::id
                    .eq_any(
                        members::table
                            .filter(members::chat_id.eq_any(chats.clone()))
                            .select(members::user_id),
                    )
                    .or(users::id.nullable().eq_any(
                        messages::table
                            .filter(messages::chat_id.eq_any(chats.clone()))
                            .select(messages::sender_id),
                    )),
            );
        }
        if let Some(among) = among {
            query = query.filter(users::id.eq_any(among.to_vec()));
        }
        query.load(c).await
    })?)
}

/// The blocks these users made of users the export holds too, in (blocker, blocked) order.
pub async fn blocks_by(
    conn: &mut DbConn,
    selection: &ChatSelection,
    blockers: &[i64],
) -> DbResult<Vec<BlockRow>> {
    let rows: Vec<BlockRow> = with_conn!(conn, |c| blocks::table
        .filter(blocks::blocker_id.eq_any(blockers))
        .select(BlockRow::as_select())
        .order((blocks::blocker_id, blocks::blocked_id))
        .load(c)
        .await)?;
    if matches!(selection, ChatSelection::All) || rows.is_empty() {
        return Ok(rows);
    }
    let blocked: Vec<i64> = rows.iter().map(|row| row.blocked_id).collect();
    let held = users_page(conn, selection, Some(&blocked), 0, i64::MAX).await?;
    Ok(rows
        .into_iter()
        .filter(|row| held.iter().any(|user| user.id == row.blocked_id))
        .collect())
}

/// Up to `limit` chats after id `after`, in id order.
pub async fn chats_page(
    conn: &mut DbConn,
    selection: &ChatSelection,
    after: i64,
    limit: i64,
) -> DbResult<Vec<ChatRow>> {
    Ok(with_conn!(conn, |c, Db| {
        let mut query = chats::table
            .filter(chats::id.gt(after))
            .select(ChatRow::as_select())
            .order(chats::id)
            .limit(limit)
            .into_boxed::<Db>();
        if let ChatSelection::Chats(chats) = selection {
            query = query.filter(chats::id.eq_any(chats.clone()));
        }
        query.load(c).await
    })?)
}

/// A chat's tags, sorted.
pub async fn tags_of(conn: &mut DbConn, chat: i64) -> DbResult<Vec<String>> {
    Ok(with_conn!(conn, |c| chat_tags::table
        .filter(chat_tags::chat_id.eq(chat))
        .select(chat_tags::tag)
        .order(chat_tags::tag)
        .load(c)
        .await)?)
}

/// A chat's sessions after id `after`, in id order.
pub async fn sessions_page(
    conn: &mut DbConn,
    chat: i64,
    after: i64,
    limit: i64,
) -> DbResult<Vec<SessionRow>> {
    Ok(with_conn!(conn, |c| chat_sessions::table
        .filter(chat_sessions::chat_id.eq(chat))
        .filter(chat_sessions::id.gt(after))
        .select(SessionRow::as_select())
        .order(chat_sessions::id)
        .limit(limit)
        .load(c)
        .await)?)
}

/// A chat's messages after id `after` (created at or after `since`, when given), in id
/// order.
pub async fn messages_page(
    conn: &mut DbConn,
    chat: i64,
    since: Option<NaiveDateTime>,
    after: i64,
    limit: i64,
) -> DbResult<Vec<MessageRow>> {
    Ok(with_conn!(conn, |c, Db| {
        let mut query = messages::table
            .filter(messages::chat_id.eq(chat))
            .filter(messages::id.gt(after))
            .select(MessageRow::as_select())
            .order(messages::id)
            .limit(limit)
            .into_boxed::<Db>();
        if let Some(since) = since {
            query = query.filter(messages::created_at.ge(since));
        }
        query.load(c).await
    })?)
}

/// What hangs off a page of messages: their earlier contents, reactions, mentions and pins.
#[derive(Debug, Default)]
pub struct MessageParts {
    pub edits: Vec<EditRow>,
    pub reactions: Vec<ReactionRow>,
    pub mentions: Vec<MentionRow>,
    pub pins: Vec<PinRow>,
}

/// The parts of these messages, each list in a fixed order.
pub async fn parts_of(conn: &mut DbConn, ids: &[i64]) -> DbResult<MessageParts> {
    let edits = with_conn!(conn, |c| message_edits::table
        .filter(message_edits::message_id.eq_any(ids))
        .select(EditRow::as_select())
        .order((message_edits::message_id, message_edits::id))
        .load(c)
        .await)?;
    let reactions = with_conn!(conn, |c| reactions::table
        .filter(reactions::message_id.eq_any(ids))
        .select(ReactionRow::as_select())
        .order((
            reactions::message_id,
            reactions::created_at,
            reactions::user_id,
            reactions::emoji,
        ))
        .load(c)
        .await)?;
    let mentions = with_conn!(conn, |c| mentions::table
        .filter(mentions::message_id.eq_any(ids))
        .select(MentionRow::as_select())
        .order((mentions::message_id, mentions::user_id))
        .load(c)
        .await)?;
    let pins = with_conn!(conn, |c| pins::table
        .filter(pins::message_id.eq_any(ids))
        .select(PinRow::as_select())
        .order(pins::message_id)
        .load(c)
        .await)?;
    Ok(MessageParts {
        edits,
        reactions,
        mentions,
        pins,
    })
}

/// A chat's members after user id `after`, in user id order.
pub async fn members_page(
    conn: &mut DbConn,
    chat: i64,
    after: i64,
    limit: i64,
) -> DbResult<Vec<MemberRow>> {
    Ok(with_conn!(conn, |c| members::table
        .filter(members::chat_id.eq(chat))
        .filter(members::user_id.gt(after))
        .select(MemberRow::as_select())
        .order(members::user_id)
        .limit(limit)
        .load(c)
        .await)?)
}

/// Up to `limit` of a chat's thread roots (messages with replies) after id `after`.
pub async fn thread_roots_page(
    conn: &mut DbConn,
    chat: i64,
    after: i64,
    limit: i64,
) -> DbResult<Vec<i64>> {
    Ok(with_conn!(conn, |c| messages::table
        .filter(messages::chat_id.eq(chat))
        .filter(messages::id.gt(after))
        .filter(messages::last_reply_id.is_not_null())
        .select(messages::id)
        .order(messages::id)
        .limit(limit)
        .load(c)
        .await)?)
}

/// How far members have read these threads, in (root, user) order.
pub async fn thread_reads_of(conn: &mut DbConn, roots: &[i64]) -> DbResult<Vec<ThreadReadRow>> {
    Ok(with_conn!(conn, |c| thread_reads::table
        .filter(thread_reads::message_id.eq_any(roots))
        .select(ThreadReadRow::as_select())
        .order((thread_reads::message_id, thread_reads::user_id))
        .load(c)
        .await)?)
}
