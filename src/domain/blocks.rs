//! Blocking: a user blocks another. The blocked user can open no direct chat with the
//! blocker and send nothing into one they share (nor can the blocker, until they unblock);
//! in chats they share otherwise, the blocked user's messages stay (a group's history is
//! the same for everyone) and are flagged for the blocker (`Message.senderBlocked`), never
//! alert them (`InboxMessage.notify`) and never mention them. Blocks are private: the
//! blocked user is not told, and their own view does not change.

use std::collections::HashSet;

use crate::app::App;
use crate::db::{self, DbConn};
use crate::domain::members::require_users_exist;
use crate::domain::now;
use crate::error::{AppError, AppResult};
use crate::vocabulary::ids::{ChatId, UserId};

/// Most users one user blocks.
pub const MAX_BLOCKS: usize = 1_000;

/// `caller` blocks `user`; blocking twice changes nothing.
pub async fn block(app: &App, caller: UserId, user: UserId) -> AppResult<()> {
    if user == caller {
        return Err(AppError::BadInput("you cannot block yourself".into()));
    }
    app.write(async |conn| {
        require_users_exist(conn, &[user]).await?;
        if !db::blocks::block(conn, caller, user, now()).await? {
            return Ok(());
        }
        // Counted with the new one in; over the limit, the transaction rolls it back.
        let count = db::blocks::count(conn, caller).await?;
        if usize::try_from(count).unwrap_or(usize::MAX) > MAX_BLOCKS {
            return Err(AppError::LimitExceeded(format!(
                "you can block at most {MAX_BLOCKS} users: unblock one first"
            )));
        }
        Ok(())
    })
    .await
}

/// `caller` unblocks `user`; unblocking someone not blocked changes nothing.
pub async fn unblock(app: &App, caller: UserId, user: UserId) -> AppResult<()> {
    app.write(async |conn| {
        require_users_exist(conn, &[user]).await?;
        db::blocks::unblock(conn, caller, user).await?;
        Ok(())
    })
    .await
}

/// The users `caller` blocks, newest block first.
pub async fn blocked_by(app: &App, caller: UserId) -> AppResult<Vec<UserId>> {
    let mut conn = app.db().conn().await?;
    Ok(db::blocks::blocked_by(&mut conn, caller).await?)
}

/// Why two users may not talk directly, if one blocked the other: `FORBIDDEN`, worded for
/// `caller` (who is told to unblock when the block is theirs).
pub fn direct_refusal(blocks: &[(UserId, UserId)], caller: UserId) -> Option<AppError> {
    let mut by_caller = false;
    let mut of_caller = false;
    for (blocker, blocked) in blocks {
        by_caller |= *blocker == caller;
        of_caller |= *blocked == caller;
    }
    if by_caller {
        Some(AppError::Forbidden(
            "you blocked this user: unblock them to talk to them directly".into(),
        ))
    } else if of_caller {
        Some(AppError::Forbidden(
            "this user does not accept direct messages from you".into(),
        ))
    } else {
        None
    }
}

/// The blocks either way between `caller` and `other`.
pub async fn between_pair(
    conn: &mut DbConn,
    caller: UserId,
    other: UserId,
) -> AppResult<Vec<(UserId, UserId)>> {
    let pair = [caller, other];
    Ok(db::blocks::between(conn, &pair, &pair).await?)
}

/// The blocks between the members of a direct chat.
pub async fn in_direct_chat(conn: &mut DbConn, chat: ChatId) -> AppResult<Vec<(UserId, UserId)>> {
    Ok(db::blocks::among_members(conn, chat).await?)
}

/// Of `candidates`, who blocked any of `senders`: `(blocker, blocked)` pairs.
pub async fn blockers_of(
    conn: &mut DbConn,
    candidates: &[UserId],
    senders: &[UserId],
) -> AppResult<HashSet<(UserId, UserId)>> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(db::blocks::between(conn, candidates, senders)
        .await?
        .into_iter()
        .collect())
}
