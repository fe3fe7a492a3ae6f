//! Read and delivery receipts: moving a member's watermarks (never back) and telling the
//! chat. Unread counts and message status derive from these watermarks.

use std::collections::BTreeMap;

use crate::app::App;
use crate::db::members::Member;
use crate::db::{self, DbConn};
use crate::domain::access::{hidden_message, member_of};
use crate::domain::now;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind, Tx};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// Most ids one `markMessagesRead` call takes.
pub const MAX_BATCH: usize = 500;

/// Resolves the message a watermark should move to: `up_to` (which must be in the chat)
/// or the chat's newest message.
async fn watermark_target(
    conn: &mut DbConn,
    chat: ChatId,
    up_to: Option<MessageId>,
) -> AppResult<Option<MessageId>> {
    match up_to {
        Some(id) => {
            // A message of another chat is answered like a missing one (no existence
            // oracle).
            match db::messages::find(conn, id).await? {
                Some(message) if message.chat_id == chat => Ok(Some(id)),
                _ => Err(AppError::NotFound("message")),
            }
        }
        None => Ok(db::messages::latest_id(conn, chat).await?),
    }
}

/// Moves the caller's read watermark in a chat up to a message (or the newest). It never
/// moves back; unread counts and read receipts derive from it.
pub async fn mark_read(
    app: &App,
    caller: UserId,
    chat: ChatId,
    up_to: Option<MessageId>,
) -> AppResult<Member> {
    app.write(async |conn| {
        let (_, member) = member_of(conn, chat, caller).await?;
        let Some(target) = watermark_target(conn, chat, up_to).await? else {
            return Ok(member);
        };
        let updated = db::members::advance_read(conn, chat, caller, target, now()).await?;
        emit_watermark_moves(conn, &member, &updated);
        Ok(updated)
    })
    .await
}

/// Receipts for the watermarks that moved from `before` to `after`.
fn emit_watermark_moves(tx: &mut Tx<'_>, before: &Member, after: &Member) {
    let chat = after.chat_id;
    let user_id = after.user_id;
    if let Some(message_id) = after
        .last_read_message_id
        .filter(|r| Some(*r) != before.last_read_message_id)
    {
        tx.emit(Event::in_chat(
            chat,
            EventKind::ReadReceipt {
                user_id,
                message_id,
            },
        ));
    }
    if let Some(message_id) = after
        .last_delivered_message_id
        .filter(|d| Some(*d) != before.last_delivered_message_id)
    {
        tx.emit(Event::in_chat(
            chat,
            EventKind::DeliveryReceipt {
                user_id,
                message_id,
            },
        ));
    }
}

/// Marks the given messages read: in each of their chats the watermark moves to the
/// newest of them. Returns how many messages were given and found.
pub async fn mark_messages_read(app: &App, caller: UserId, ids: &[MessageId]) -> AppResult<i32> {
    if ids.len() > MAX_BATCH {
        return Err(AppError::LimitExceeded(format!(
            "at most {MAX_BATCH} ids per call"
        )));
    }
    let keys: Vec<MessageId> = ids.to_vec();
    let count = app
        .write(async |conn| {
            let found = db::messages::chats_of(conn, &keys).await?;
            if found.len() != {
                let mut unique = keys.clone();
                unique.sort_unstable();
                unique.dedup();
                unique.len()
            } {
                return Err(AppError::NotFound("message"));
            }
            let mut newest_per_chat: BTreeMap<ChatId, MessageId> = BTreeMap::new();
            for (message_id, chat_id) in &found {
                let newest = newest_per_chat.entry(*chat_id).or_insert(*message_id);
                *newest = (*newest).max(*message_id);
            }
            for (chat_id, newest) in newest_per_chat {
                let (_, before) = member_of(conn, chat_id, caller)
                    .await
                    .map_err(hidden_message)?;
                let after = db::members::advance_read(conn, chat_id, caller, newest, now()).await?;
                emit_watermark_moves(conn, &before, &after);
            }
            Ok(found.len())
        })
        .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// Moves the caller's delivery watermark in a chat up to a message (never back).
pub async fn mark_delivered(
    app: &App,
    caller: UserId,
    chat: ChatId,
    up_to: MessageId,
) -> AppResult<Member> {
    app.write(async |conn| {
        let (_, member) = member_of(conn, chat, caller).await?;
        let target = watermark_target(conn, chat, Some(up_to))
            .await?
            .unwrap_or(up_to);
        let updated = db::members::advance_delivered(conn, chat, caller, target).await?;
        emit_watermark_moves(conn, &member, &updated);
        Ok(updated)
    })
    .await
}
