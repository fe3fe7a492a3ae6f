//! Membership checks shared by the services: only members see a chat, and roles decide
//! who manages it.

use crate::db::chats::Chat;
use crate::db::members::Member;
use crate::db::{self, DbConn};
use crate::domain::ids::{ChatId, UserId};
use crate::error::{AppError, AppResult};

/// The chat and the caller's membership in it; `NOT_FOUND` for an unknown chat,
/// `FORBIDDEN` when the caller is not a member.
pub async fn member_of(conn: &mut DbConn, chat: ChatId, user: UserId) -> AppResult<(Chat, Member)> {
    let chat_row = db::chats::find(conn, chat.0)
        .await?
        .ok_or(AppError::NotFound("chat"))?;
    let member = db::members::find(conn, chat.0, user.0)
        .await?
        .ok_or_else(|| AppError::Forbidden("you are not a member of this chat".into()))?;
    Ok((chat_row, member))
}
