//! Membership checks shared by the services: only members see a chat, and roles decide
//! who manages it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use crate::db::chats::Chat;
use crate::db::members::Member;
use crate::db::{self, DbConn};
use crate::error::{AppError, AppResult};
use crate::vocabulary::ids::{ChatId, UserId};

/// The chat and the caller's membership in it; `NOT_FOUND` for an unknown chat,
/// `FORBIDDEN` when the caller is not a member. One query when the caller is a member.
pub async fn member_of(conn: &mut DbConn, chat: ChatId, user: UserId) -> AppResult<(Chat, Member)> {
    let found = db::chats::find_with_member(conn, chat.0, user.0, false).await?;
    let (chat_row, member, _) = checked(conn, chat, found).await?;
    Ok((chat_row, member))
}

/// Like [`member_of`], plus whether the caller is a bot, and the chat's row stays locked
/// until the transaction ends, so writes to one chat take turns (see
/// `db::chats::find_with_member`).
pub async fn member_of_locked(
    conn: &mut DbConn,
    chat: ChatId,
    user: UserId,
) -> AppResult<(Chat, Member, bool)> {
    let found = db::chats::find_with_member(conn, chat.0, user.0, true).await?;
    checked(conn, chat, found).await
}

/// Turns a missing membership into `NOT_FOUND` (no such chat) or `FORBIDDEN`.
async fn checked(
    conn: &mut DbConn,
    chat: ChatId,
    found: Option<(Chat, Member, bool)>,
) -> AppResult<(Chat, Member, bool)> {
    match found {
        Some(found) => Ok(found),
        None => match db::chats::find(conn, chat.0).await? {
            None => Err(AppError::NotFound("chat")),
            Some(_) => Err(AppError::Forbidden(
                "you are not a member of this chat".into(),
            )),
        },
    }
}

/// The memberships one read-only operation has checked, so its root fields and nested
/// pages that name the same chat (`chat(id)` beside `messages(chatId)`) share one query,
/// even while they resolve concurrently. Only for queries: a mutation may change a
/// membership between its root fields, and a subscription outlives them.
#[derive(Default)]
pub struct CheckedMemberships {
    checked: Mutex<HashMap<(ChatId, UserId), Arc<CheckedMembership>>>,
}

/// One membership check, run by whichever resolver asks first.
type CheckedMembership = OnceCell<(Chat, Member)>;

impl CheckedMemberships {
    /// [`member_of`], asked once per chat and user for this operation. A failed check is
    /// not kept: whoever asks next checks again.
    pub async fn member_of(
        &self,
        conn: &mut DbConn,
        chat: ChatId,
        user: UserId,
    ) -> AppResult<(Chat, Member)> {
        let cell = self
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((chat, user))
            .or_default()
            .clone();
        let found = cell.get_or_try_init(|| member_of(conn, chat, user)).await?;
        Ok(found.clone())
    }
}
