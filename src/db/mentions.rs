//! Mentions: every query on the `mentions` table (who a message mentions).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::messages::counts_per_membership;
use super::schema::{members, mentions, users};
use super::users::lower;
use super::{DbConn, DbResult};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};
use crate::with_conn;

/// Records who messages mention: `(chat, message, user)` rows. One statement per row:
/// diesel-async's SQLite connection has no multi-row INSERT, and a message mentions few.
pub async fn insert(conn: &mut DbConn, rows: &[(ChatId, MessageId, UserId)]) -> DbResult<()> {
    for (chat, message, user) in rows {
        with_conn!(conn, |c| diesel::insert_into(mentions::table)
            .values((
                mentions::user_id.eq(*user),
                mentions::chat_id.eq(*chat),
                mentions::message_id.eq(*message),
            ))
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Forgets a message's mentions (it was retracted).
pub async fn clear(conn: &mut DbConn, message: MessageId) -> DbResult<()> {
    with_conn!(conn, |c| diesel::delete(
        mentions::table.filter(mentions::message_id.eq(message))
    )
    .execute(c)
    .await)?;
    Ok(())
}

/// Who these messages mention, in user-id order per message.
pub async fn of_messages(
    conn: &mut DbConn,
    ids: &[MessageId],
) -> DbResult<Vec<(MessageId, UserId)>> {
    Ok(with_conn!(conn, |c| mentions::table
        .filter(mentions::message_id.eq_any(ids))
        .order((mentions::message_id, mentions::user_id))
        .select((mentions::message_id, mentions::user_id))
        .load(c)
        .await)?)
}

/// The members of `chat` among `ids`, or whose username is one of `lowercase_names`
/// (usernames are ASCII and unique regardless of case): who a message may mention.
pub async fn mentionable_members(
    conn: &mut DbConn,
    chat: ChatId,
    ids: &[UserId],
    lowercase_names: &[String],
) -> DbResult<Vec<(UserId, String)>> {
    Ok(with_conn!(conn, |c| members::table
        .inner_join(users::table)
        .filter(members::chat_id.eq(chat))
        .filter(
            members::user_id
                .eq_any(ids)
                .or(lower(users::username.nullable()).eq_any(lowercase_names)),
        )
        .select((members::user_id, users::username))
        .load(c)
        .await)?)
}

/// How many messages mention `user_id` above their read watermark in each of these
/// chats, counted up to `limit` per chat. Chats the user is not a member of are absent.
///
/// A retracted message's mentions are gone, and no message mentions its own sender, so
/// this is one range of the primary key per chat.
pub async fn unread_counts(
    conn: &mut DbConn,
    user_id: UserId,
    chat_ids: &[ChatId],
    limit: i64,
) -> DbResult<Vec<(ChatId, i64)>> {
    const UNREAD_MENTIONS: &str = "mentions \
         WHERE mentions.user_id = members.user_id AND mentions.chat_id = members.chat_id \
         AND mentions.message_id > COALESCE(members.last_read_message_id, 0)";
    counts_per_membership(conn, user_id, chat_ids, UNREAD_MENTIONS, limit).await
}
