//! Pinned messages: a chat's managers (OWNER and ADMIN; in a direct chat, both members)
//! pin messages every member sees at the top. Pinning twice, or unpinning a message that is
//! not pinned, changes nothing and publishes nothing.

use crate::app::App;
use crate::db::chats::Chat;
use crate::db::members::Member;
use crate::db::{self, messages::Message, pins::Pin};
use crate::domain::access::CheckedMemberships;
use crate::domain::messages::visible_message_locked;
use crate::domain::now;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind};
use crate::vocabulary::enums::ChatKind;
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// Most messages one chat has pinned.
pub const MAX_PINS_PER_CHAT: usize = 50;

fn check_manager(chat: &Chat, member: &Member) -> AppResult<()> {
    if chat.kind != ChatKind::Direct && !member.role.can_manage() {
        return Err(AppError::Forbidden(
            "only an OWNER or ADMIN may pin and unpin messages".into(),
        ));
    }
    Ok(())
}

/// Pins a message of the chat (managers only; not a retracted message).
pub async fn pin(app: &App, caller: UserId, id: MessageId) -> AppResult<Message> {
    app.write(async |conn| {
        // The limit is per chat, so pins into one chat take turns on the chat's row (taken
        // before the message's, the order a chat's deletion takes them in); a message
        // never moves to another chat, so its chat can be read unlocked first.
        if let Some(unlocked) = db::messages::find(conn, id).await? {
            db::chats::lock(conn, unlocked.chat_id).await?;
        }
        let (message, chat, member) = visible_message_locked(conn, caller, id).await?;
        check_manager(&chat, &member)?;
        if message.retracted_at.is_some() {
            return Err(AppError::Conflict(
                "a retracted message cannot be pinned".into(),
            ));
        }
        let pin = Pin {
            message_id: id,
            chat_id: chat.id,
            pinned_by: Some(caller),
            pinned_at: now(),
        };
        if !db::pins::pin(conn, &pin).await? {
            return Ok(message);
        }
        // Counted with the new one in; over the limit, the transaction rolls it back.
        if usize::try_from(db::pins::count(conn, chat.id).await?).unwrap_or(usize::MAX)
            > MAX_PINS_PER_CHAT
        {
            return Err(AppError::LimitExceeded(format!(
                "a chat has at most {MAX_PINS_PER_CHAT} pinned messages: unpin one first"
            )));
        }
        conn.emit(
            Event::in_chat(
                chat.id,
                EventKind::MessagePinned {
                    message_id: id,
                    by: caller,
                },
            )
            .in_thread(message.parent_id),
        );
        Ok(message)
    })
    .await
}

/// Unpins a message (managers only).
pub async fn unpin(app: &App, caller: UserId, id: MessageId) -> AppResult<Message> {
    app.write(async |conn| {
        let (message, chat, member) = visible_message_locked(conn, caller, id).await?;
        check_manager(&chat, &member)?;
        if db::pins::unpin(conn, id).await? {
            conn.emit(
                Event::in_chat(
                    chat.id,
                    EventKind::MessageUnpinned {
                        message_id: id,
                        by: caller,
                    },
                )
                .in_thread(message.parent_id),
            );
        }
        Ok(message)
    })
    .await
}

/// A chat's pinned messages, newest pin first (members only).
pub async fn list(
    app: &App,
    caller: UserId,
    chat: ChatId,
    checked: &CheckedMemberships,
) -> AppResult<Vec<Pin>> {
    let mut conn = app.db().conn().await?;
    checked.member_of(&mut conn, chat, caller).await?;
    Ok(db::pins::of_chats(&mut conn, &[chat]).await?)
}
