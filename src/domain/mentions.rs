//! Mentions: a message names members, by id (`sendMessage(input: {mentions})`) or as
//! `@username` in its text. A mentioned member counts unread mentions per chat, and their
//! `myEvents` marks the message as one to notify about even in a muted chat.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::db::{self, DbConn};
use crate::domain::blocks;
use crate::domain::users::{MAX_USERNAME, is_username_char};
use crate::error::{AppError, AppResult};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// Most users one message mentions.
pub const MAX_MENTIONS: usize = 50;

/// The `@username`s in `text`, lowercased (usernames are unique regardless of case), at
/// most `2 × MAX_MENTIONS` of them. An `@` counts at the start or after a character that
/// cannot be in a username, so `bob@example.com` mentions no one. A name's trailing `.`
/// or `-` may be punctuation ("thanks @bob."), so both readings are kept: only members'
/// names resolve.
pub fn usernames_in(text: &str) -> Vec<String> {
    let mut names = BTreeSet::new();
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts = c == '@' && !previous.is_some_and(|p| is_username_char(p) || p == '@');
        previous = Some(c);
        if !starts {
            continue;
        }
        let start = at + 1;
        let mut end = start;
        while let Some(&(i, next)) = chars.peek() {
            if !is_username_char(next) {
                break;
            }
            end = i + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let name = &text[start..end];
        // `@zoë` is not `@zo` followed by text: a username never has such a letter.
        let cut_short = chars
            .peek()
            .is_some_and(|&(_, next)| next.is_alphanumeric());
        if name.is_empty() || name.len() > MAX_USERNAME || cut_short {
            continue;
        }
        names.insert(name.to_ascii_lowercase());
        let trimmed = name.trim_end_matches(['.', '-']);
        if !trimmed.is_empty() {
            names.insert(trimmed.to_ascii_lowercase());
        }
        if names.len() >= 2 * MAX_MENTIONS {
            break;
        }
    }
    names.into_iter().collect()
}

/// Checks the ids a send names explicitly: at most [`MAX_MENTIONS`]; repeats are one.
pub fn check_requested(requested: Option<&[UserId]>) -> AppResult<()> {
    let distinct: BTreeSet<UserId> = requested.unwrap_or_default().iter().copied().collect();
    if distinct.len() > MAX_MENTIONS {
        return Err(AppError::LimitExceeded(format!(
            "a message mentions at most {MAX_MENTIONS} users"
        )));
    }
    Ok(())
}

/// The members of a chat a batch of sends may mention, by id and by lowercased username.
#[derive(Default)]
pub struct Mentionable {
    ids: BTreeSet<UserId>,
    by_name: HashMap<String, UserId>,
    /// `(blocker, blocked)`: members who blocked a sender, whom that sender's mentions
    /// leave out.
    blocked: HashSet<(UserId, UserId)>,
}

impl Mentionable {
    /// The members of `chat` named by `ids` or `lowercase_names`, with the blocks between
    /// them and `senders` (a member who blocked a sender is never mentioned by them).
    pub async fn load(
        conn: &mut DbConn,
        chat: ChatId,
        ids: &[UserId],
        lowercase_names: &[String],
        senders: &[UserId],
    ) -> AppResult<Self> {
        let members = db::mentions::mentionable_members(conn, chat, ids, lowercase_names).await?;
        let candidates: Vec<UserId> = members.iter().map(|(id, _)| *id).collect();
        let blocked = blocks::blockers_of(conn, &candidates, senders).await?;
        Ok(Self::new(members, blocked))
    }

    /// From `(user id, username)` rows of the chat's members and the blocks between them
    /// and the senders.
    pub fn new(members: Vec<(UserId, String)>, blocked: HashSet<(UserId, UserId)>) -> Self {
        let mut found = Self {
            blocked,
            ..Self::default()
        };
        for (id, name) in members {
            found.ids.insert(id);
            found.by_name.insert(name.to_ascii_lowercase(), id);
        }
        found
    }

    /// Who a message from `sender` mentions, in id order: every id it names (each must be
    /// a member: else `BAD_USER_INPUT`) and the members its `@username`s name, never the
    /// sender themself nor a member who blocked them.
    pub fn resolve(
        &self,
        sender: UserId,
        requested: Option<&[UserId]>,
        text: &str,
    ) -> AppResult<Vec<UserId>> {
        let mut mentioned = BTreeSet::new();
        for id in requested.unwrap_or_default() {
            if !self.ids.contains(id) {
                return Err(AppError::BadInput(format!(
                    "`mentions` names {}, who is not a member of this chat",
                    id.to_global()
                )));
            }
            mentioned.insert(*id);
        }
        if text.contains('@') {
            for name in usernames_in(text) {
                if let Some(id) = self.by_name.get(&name) {
                    mentioned.insert(*id);
                }
            }
        }
        mentioned.remove(&sender);
        mentioned.retain(|user| !self.blocked.contains(&(*user, sender)));
        if mentioned.len() > MAX_MENTIONS {
            return Err(AppError::LimitExceeded(format!(
                "a message mentions at most {MAX_MENTIONS} users"
            )));
        }
        Ok(mentioned.into_iter().collect())
    }
}

/// After an edit of `message` (in `chat`, by its `sender`) to `text`: the members its new
/// `@username`s name are mentioned too. Mentions are never taken back by an edit (the
/// mentioned member may have been alerted already); a retraction removes them.
pub(crate) async fn add_from_edit(
    conn: &mut DbConn,
    chat: ChatId,
    sender: UserId,
    message: MessageId,
    text: &str,
) -> AppResult<()> {
    if !text.contains('@') {
        return Ok(());
    }
    let mentionable = Mentionable::load(conn, chat, &[], &usernames_in(text), &[sender]).await?;
    let named = mentionable.resolve(sender, None, text)?;
    let already: BTreeSet<UserId> = db::mentions::of_messages(conn, &[message])
        .await?
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    let new: Vec<(ChatId, MessageId, UserId)> = named
        .into_iter()
        .filter(|user| !already.contains(user))
        .map(|user| (chat, message, user))
        .collect();
    if already.len() + new.len() > MAX_MENTIONS {
        return Err(AppError::LimitExceeded(format!(
            "a message mentions at most {MAX_MENTIONS} users"
        )));
    }
    db::mentions::insert(conn, &new).await?;
    Ok(())
}

/// Whether a send may mention anyone, so its batch looks its members up.
pub fn may_mention(requested: Option<&[UserId]>, text: &str) -> bool {
    requested.is_some_and(|r| !r.is_empty()) || text.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_found_where_a_mention_can_start() {
        assert_eq!(
            usernames_in("@Alice and @bob. see bob@example.com, @@carol, (@dave) @ @"),
            ["alice", "bob", "bob.", "dave"]
        );
        assert_eq!(usernames_in("no mentions"), Vec::<String>::new());
        assert_eq!(usernames_in("héllo @zoë, @zoe"), ["zoe"]);
        let many: String = (0..500).map(|n| format!("@u{n} ")).collect();
        assert_eq!(usernames_in(&many).len(), 2 * MAX_MENTIONS);
    }

    #[test]
    fn resolve_keeps_members_and_drops_the_sender() {
        let members = Mentionable::new(
            vec![
                (UserId(1), "alice".into()),
                (UserId(2), "Bob".into()),
                (UserId(3), "carol".into()),
                (UserId(4), "dave".into()),
            ],
            HashSet::from([(UserId(4), UserId(1))]),
        );
        let found = members.resolve(
            UserId(1),
            Some(&[UserId(3)]),
            "hi @bob @alice @dave @nobody",
        );
        assert_eq!(found.ok(), Some(vec![UserId(2), UserId(3)]));
        assert!(matches!(
            members.resolve(UserId(1), Some(&[UserId(9)]), ""),
            Err(AppError::BadInput(_))
        ));
    }
}
