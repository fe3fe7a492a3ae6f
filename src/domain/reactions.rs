//! Reactions: members put emoji on messages. Each user has at most one reaction per emoji
//! on a message, so adding and removing are idempotent (a repeat changes nothing and
//! publishes nothing), and both are safe to race: the message's row is locked while one
//! is decided.

use crate::app::App;
use crate::db::{self, messages::Message};
use crate::domain::messages::visible_message_locked;
use crate::domain::now;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind};
use crate::vocabulary::ids::{MessageId, UserId};

/// Most different emoji one message carries.
pub const MAX_EMOJI_PER_MESSAGE: usize = 50;
/// Most emoji one user puts on one message.
pub const MAX_EMOJI_PER_USER: usize = 20;
/// Longest emoji argument looked at: the longest emoji (a family with skin tones) is 35
/// bytes, a shortcode a few dozen.
const MAX_EMOJI_INPUT_BYTES: usize = 64;
/// Most users a reaction group lists.
pub const MAX_GROUP_USERS: usize = 20;

/// The stored form of a reaction: one emoji from Unicode's list (a single grapheme, skin
/// tones, flags and ZWJ sequences included), given as itself or as a GitHub shortcode
/// (`:thumbsup:`), in its fully-qualified form, so "❤" and "❤️" are one reaction.
pub fn emoji(input: &str) -> AppResult<&'static str> {
    let input = input.trim();
    let found = if input.len() > MAX_EMOJI_INPUT_BYTES {
        None
    } else if let Some(code) = input.strip_prefix(':').and_then(|s| s.strip_suffix(':')) {
        emojis::get_by_shortcode(code)
    } else {
        emojis::get(input)
    };
    found.map(emojis::Emoji::as_str).ok_or_else(|| {
        AppError::BadInput(
            "`emoji` must be one emoji (👍, ❤️, 🇫🇷, 👍🏽) or a shortcode such as :thumbsup:".into(),
        )
    })
}

/// Adds the caller's `emoji` to a message (members only; not to a retracted message).
pub async fn add(
    app: &App,
    caller: UserId,
    id: MessageId,
    emoji_input: &str,
) -> AppResult<Message> {
    let emoji = emoji(emoji_input)?;
    app.write(async |conn| {
        let (message, _, _) = visible_message_locked(conn, caller, id).await?;
        if message.retracted_at.is_some() {
            return Err(AppError::Conflict(
                "a retracted message cannot get reactions".into(),
            ));
        }
        if !db::reactions::add(conn, id, caller, emoji, now()).await? {
            return Ok(message);
        }
        // Counted with the new one in; over a limit, the transaction rolls it back.
        let (distinct, mine) = db::reactions::emoji_counts(conn, id, caller).await?;
        if distinct > MAX_EMOJI_PER_MESSAGE {
            return Err(AppError::LimitExceeded(format!(
                "a message carries at most {MAX_EMOJI_PER_MESSAGE} different emoji"
            )));
        }
        if mine > MAX_EMOJI_PER_USER {
            return Err(AppError::LimitExceeded(format!(
                "one user puts at most {MAX_EMOJI_PER_USER} emoji on a message"
            )));
        }
        conn.emit(changed(&message, caller, emoji, true));
        Ok(message)
    })
    .await
}

/// Removes the caller's `emoji` from a message (members only); removing one that is not
/// there changes nothing.
pub async fn remove(
    app: &App,
    caller: UserId,
    id: MessageId,
    emoji_input: &str,
) -> AppResult<Message> {
    let emoji = emoji(emoji_input)?;
    app.write(async |conn| {
        let (message, _, _) = visible_message_locked(conn, caller, id).await?;
        if db::reactions::remove(conn, id, caller, emoji).await? {
            conn.emit(changed(&message, caller, emoji, false));
        }
        Ok(message)
    })
    .await
}

fn changed(message: &Message, user: UserId, emoji: &str, added: bool) -> Event {
    Event::in_chat(
        message.chat_id,
        EventKind::ReactionChanged {
            message_id: message.id,
            user_id: user,
            emoji: emoji.to_owned(),
            added,
        },
    )
    .in_thread(message.parent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_are_stored_fully_qualified_and_anything_else_is_refused() {
        assert_eq!(emoji("👍").ok(), Some("👍"));
        assert_eq!(emoji(" 👍🏽 ").ok(), Some("👍🏽"));
        assert_eq!(emoji(":thumbsup:").ok(), Some("👍"));
        assert_eq!(emoji("❤").ok(), emoji("❤️").ok());
        assert_eq!(emoji("🇫🇷").ok(), Some("🇫🇷"));
        assert_eq!(emoji("👨‍👩‍👧").ok(), Some("👨‍👩‍👧"));
        for refused in ["", "a", "👍👍", "hello", ":nope:", &"👍".repeat(40)] {
            assert!(emoji(refused).is_err(), "{refused:?} was accepted");
        }
    }
}
