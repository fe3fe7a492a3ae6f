//! Membership checks shared by the services: only members see a chat, and roles decide
//! who manages it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use crate::db::chats::{Chat, ChatActivity};
use crate::db::members::Member;
use crate::db::{self, DbConn};
use crate::error::{AppError, AppResult};
use crate::vocabulary::ids::{ChatId, UserId};

/// How often a quiet live feed checks that its subscriber may still read what it delivers.
pub const MEMBERSHIP_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// When a feed opened now checks first: somewhere between half and one and a half
/// [`MEMBERSHIP_RECHECK`]s, at random. Thousands of feeds open within seconds (a server
/// restart, a big chat going live) and would otherwise all query at the same instant,
/// every interval, stalling everyone's events for that moment.
pub fn first_membership_recheck() -> std::time::Duration {
    crate::vocabulary::jitter::spread(MEMBERSHIP_RECHECK, 0.5, 1.5)
}

/// The chat and the caller's membership in it; `NOT_FOUND` for an unknown chat,
/// `FORBIDDEN` when the caller is not a member. One query when the caller is a member.
pub async fn member_of(conn: &mut DbConn, chat: ChatId, user: UserId) -> AppResult<(Chat, Member)> {
    match db::chats::find_with_member(conn, chat, user).await? {
        Some(found) => Ok(found),
        None => Err(missing_membership(conn, chat).await?),
    }
}

/// The memberships of `users` in `chat`, each with whether the user is a bot, and the
/// chat's activity (`None` when none of them is a member); the chat's row stays locked
/// until the transaction ends, so writes to one chat take turns (see
/// `db::chats::senders_locked`). A user missing from the map is not a member (see
/// [`not_a_member`]); `NOT_FOUND` when there is no such chat.
pub async fn senders_locked(
    conn: &mut DbConn,
    chat: ChatId,
    users: &[UserId],
) -> AppResult<(HashMap<UserId, (Member, bool)>, Option<ChatActivity>)> {
    let rows = db::chats::senders_locked(conn, chat, users).await?;
    let activity = rows.first().map(|(_, _, activity)| *activity);
    let found: HashMap<UserId, (Member, bool)> = rows
        .into_iter()
        .map(|(member, is_bot, _)| (member.user_id, (member, is_bot)))
        .collect();
    if found.is_empty() {
        // No member among them: the chat may not exist at all.
        if let AppError::NotFound(what) = missing_membership(conn, chat).await? {
            return Err(AppError::NotFound(what));
        }
    }
    Ok((found, activity))
}

/// A chat the caller is not in, reached through one of its messages, is answered like a
/// missing message (`NOT_FOUND`), so message ids cannot be probed for existence.
pub fn hidden_message(error: AppError) -> AppError {
    match error {
        AppError::Forbidden(_) => AppError::NotFound("message"),
        other => other,
    }
}

/// The error of a caller who is not a member of an existing chat.
pub fn not_a_member() -> AppError {
    AppError::Forbidden("you are not a member of this chat".into())
}

/// Why a membership was not found: `NOT_FOUND` (no such chat) or [`not_a_member`].
async fn missing_membership(conn: &mut DbConn, chat: ChatId) -> AppResult<AppError> {
    Ok(match db::chats::find(conn, chat).await? {
        None => AppError::NotFound("chat"),
        Some(_) => not_a_member(),
    })
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
