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

/// Like [`member_of`], and the member must be allowed to manage the chat (OWNER or ADMIN).
pub async fn manager_of(
    conn: &mut DbConn,
    chat: ChatId,
    user: UserId,
) -> AppResult<(Chat, Member)> {
    let (chat_row, member) = member_of(conn, chat, user).await?;
    if !member.role.can_manage() {
        return Err(AppError::Forbidden(
            "only the chat's OWNER or ADMIN may do this".into(),
        ));
    }
    Ok((chat_row, member))
}
