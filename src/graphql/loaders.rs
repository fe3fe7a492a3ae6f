//! DataLoaders: every nested entity is fetched in one batched query per page (`eq_any`),
//! so a page of 50 messages with senders and chat costs a constant number of queries.
//! They batch only (no cache), so a long-lived subscription never reads stale rows.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};

use crate::db::attachments::Attachment;
use crate::db::chats::Chat;
use crate::db::members::Member;
use crate::db::message_edits::MessageEdit;
use crate::db::messages::Message;
use crate::db::pins::Pin;
use crate::db::reactions::ReactionGroup;
use crate::db::sessions::Session;
use crate::db::threads::ThreadSummary;
use crate::db::users::User;
use crate::db::{self, DbPool};
use crate::domain::messages::UNREAD_COUNT_CAP;
use crate::error::AppError;
use crate::vocabulary::ids::{ChatId, MessageId, SessionId, UserId};

/// The one loader type; it implements `Loader` for every key type below.
pub struct DbLoader {
    db: DbPool,
}

/// The loaders of one request or subscription.
pub type Loaders = DataLoader<DbLoader>;

/// Builds the loaders over `db`.
pub fn loaders(db: DbPool) -> Loaders {
    DataLoader::new(DbLoader { db }, tokio::spawn)
}

/// A user by key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct UserKey(pub UserId);
/// A chat by key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ChatKey(pub ChatId);
/// A message by key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct MessageKey(pub MessageId);
/// A message's thread: how many replies, the latest when.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ThreadKey(pub MessageId);
/// A user's unread replies in a message's thread.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ThreadUnreadKey {
    pub message_id: MessageId,
    pub user_id: UserId,
}
/// A session by key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct SessionKey(pub SessionId);
/// A chat's tags.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TagsKey(pub ChatId);
/// The number of members of a chat.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct MemberCountKey(pub ChatId);
/// Every membership of a chat (watermarks for status and readBy).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ChatMembersKey(pub ChatId);
/// A user's membership in a chat.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct MembershipKey {
    pub chat_id: ChatId,
    pub user_id: UserId,
}
/// A user's unread count in a chat (of messages, or of messages that mention them),
/// counted up to one more than `UNREAD_COUNT_CAP`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct UnreadKey {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub of: Unread,
}
/// What an unread count counts.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Unread {
    Messages,
    Mentions,
}

/// The users a user blocks.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct BlocksKey(pub UserId);
/// Who a message mentions.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct MentionsKey(pub MessageId);

/// A message's reaction groups, in the order their first reaction came.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ReactionsKey(pub MessageId);
/// A message's attachments, in order.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct AttachmentsKey(pub MessageId);
/// The emoji a user put on a message.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct MyReactionsKey {
    pub message_id: MessageId,
    pub user_id: UserId,
}
/// The first `limit` users who reacted to a message with an emoji.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ReactorsKey {
    pub message_id: MessageId,
    pub emoji: String,
    pub limit: i64,
}
/// A message's newest `limit` earlier versions, newest first.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct EditsKey {
    pub message_id: MessageId,
    pub limit: i64,
}
/// A message's pin, if it is pinned.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct PinKey(pub MessageId);

type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

fn failed(err: db::DbError) -> async_graphql::Error {
    AppError::from(err).into()
}

impl DbLoader {
    async fn conn(&self) -> Result<db::DbConn, async_graphql::Error> {
        self.db.conn().await.map_err(failed)
    }
}

fn raw<K: Copy, T>(keys: &[K], key: impl Fn(K) -> T) -> Vec<T> {
    keys.iter().map(|k| key(*k)).collect()
}

impl Loader<UserKey> for DbLoader {
    type Value = User;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserKey]) -> LoadResult<UserKey, User> {
        let rows = db::users::find_many(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(|r| (UserKey(r.id), r)).collect())
    }
}

impl Loader<ChatKey> for DbLoader {
    type Value = Chat;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ChatKey]) -> LoadResult<ChatKey, Chat> {
        let rows = db::chats::find_many(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(|r| (ChatKey(r.id), r)).collect())
    }
}

impl Loader<SessionKey> for DbLoader {
    type Value = Session;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[SessionKey]) -> LoadResult<SessionKey, Session> {
        let rows = db::sessions::find_many(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(|r| (SessionKey(r.id), r)).collect())
    }
}

impl Loader<TagsKey> for DbLoader {
    type Value = Vec<String>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TagsKey]) -> LoadResult<TagsKey, Vec<String>> {
        let rows = db::chats::tags_of(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        let mut tags: HashMap<TagsKey, Vec<String>> = HashMap::new();
        for (chat, tag) in rows {
            tags.entry(TagsKey(chat)).or_default().push(tag);
        }
        Ok(tags)
    }
}

impl Loader<MessageKey> for DbLoader {
    type Value = Message;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MessageKey]) -> LoadResult<MessageKey, Message> {
        let rows = db::messages::find_many(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(|r| (MessageKey(r.id), r)).collect())
    }
}

impl Loader<ThreadKey> for DbLoader {
    type Value = ThreadSummary;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ThreadKey]) -> LoadResult<ThreadKey, ThreadSummary> {
        let rows = db::threads::summaries(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|(id, summary)| (ThreadKey(id), summary))
            .collect())
    }
}

impl Loader<ThreadUnreadKey> for DbLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ThreadUnreadKey]) -> LoadResult<ThreadUnreadKey, i64> {
        let mut conn = self.conn().await?;
        let mut by_user: HashMap<UserId, Vec<MessageId>> = HashMap::new();
        for key in keys {
            by_user.entry(key.user_id).or_default().push(key.message_id);
        }
        let mut found = HashMap::new();
        for (user_id, roots) in by_user {
            for (message_id, count) in db::threads::unread_counts(&mut conn, user_id, &roots)
                .await
                .map_err(failed)?
            {
                found.insert(
                    ThreadUnreadKey {
                        message_id,
                        user_id,
                    },
                    count,
                );
            }
        }
        Ok(found)
    }
}

impl Loader<MemberCountKey> for DbLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MemberCountKey]) -> LoadResult<MemberCountKey, i64> {
        let rows = db::members::counts(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (MemberCountKey(id), n))
            .collect())
    }
}

impl Loader<ChatMembersKey> for DbLoader {
    type Value = Vec<Member>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ChatMembersKey]) -> LoadResult<ChatMembersKey, Vec<Member>> {
        let rows = db::members::all_of_chats(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        let mut by_chat: HashMap<ChatMembersKey, Vec<Member>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for member in rows {
            by_chat
                .entry(ChatMembersKey(member.chat_id))
                .or_default()
                .push(member);
        }
        Ok(by_chat)
    }
}

/// Groups `(chat, user)` keys by user: the usual batch (a chat list) has one user.
fn chats_by_user(keys: impl Iterator<Item = (ChatId, UserId)>) -> HashMap<UserId, Vec<ChatId>> {
    let mut by_user: HashMap<UserId, Vec<ChatId>> = HashMap::new();
    for (chat_id, user_id) in keys {
        by_user.entry(user_id).or_default().push(chat_id);
    }
    by_user
}

impl Loader<MembershipKey> for DbLoader {
    type Value = Member;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MembershipKey]) -> LoadResult<MembershipKey, Member> {
        let mut conn = self.conn().await?;
        let mut found = HashMap::new();
        for (user_id, chat_ids) in chats_by_user(keys.iter().map(|k| (k.chat_id, k.user_id))) {
            for member in db::members::find_for_user(&mut conn, user_id, &chat_ids)
                .await
                .map_err(failed)?
            {
                found.insert(
                    MembershipKey {
                        chat_id: member.chat_id,
                        user_id,
                    },
                    member,
                );
            }
        }
        Ok(found)
    }
}

impl Loader<UnreadKey> for DbLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UnreadKey]) -> LoadResult<UnreadKey, i64> {
        let mut conn = self.conn().await?;
        let mut found = HashMap::new();
        for of in [Unread::Messages, Unread::Mentions] {
            let wanted = keys.iter().filter(|k| k.of == of);
            for (user_id, chat_ids) in chats_by_user(wanted.map(|k| (k.chat_id, k.user_id))) {
                // One more than the cap tells "exactly the cap" from "more than the cap".
                let limit = UNREAD_COUNT_CAP + 1;
                let counts = match of {
                    Unread::Messages => {
                        db::messages::unread_counts(&mut conn, user_id, &chat_ids, limit).await
                    }
                    Unread::Mentions => {
                        db::mentions::unread_counts(&mut conn, user_id, &chat_ids, limit).await
                    }
                };
                for (chat_id, count) in counts.map_err(failed)? {
                    found.insert(
                        UnreadKey {
                            chat_id,
                            user_id,
                            of,
                        },
                        count,
                    );
                }
            }
        }
        Ok(found)
    }
}

impl Loader<BlocksKey> for DbLoader {
    type Value = Vec<UserId>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[BlocksKey]) -> LoadResult<BlocksKey, Vec<UserId>> {
        let mut conn = self.conn().await?;
        let mut found = HashMap::new();
        // One key per request in practice: the caller's own list.
        for key in keys {
            let blocked = db::blocks::blocked_by(&mut conn, key.0)
                .await
                .map_err(failed)?;
            found.insert(*key, blocked);
        }
        Ok(found)
    }
}

impl Loader<MentionsKey> for DbLoader {
    type Value = Vec<UserId>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MentionsKey]) -> LoadResult<MentionsKey, Vec<UserId>> {
        let rows = db::mentions::of_messages(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        let mut by_message: HashMap<MentionsKey, Vec<UserId>> = HashMap::new();
        for (message_id, user_id) in rows {
            by_message
                .entry(MentionsKey(message_id))
                .or_default()
                .push(user_id);
        }
        Ok(by_message)
    }
}

impl Loader<ReactionsKey> for DbLoader {
    type Value = Vec<ReactionGroup>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ReactionsKey]) -> LoadResult<ReactionsKey, Vec<ReactionGroup>> {
        let rows = db::reactions::groups(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        let mut by_message: HashMap<ReactionsKey, Vec<ReactionGroup>> = HashMap::new();
        for group in rows {
            by_message
                .entry(ReactionsKey(group.message_id))
                .or_default()
                .push(group);
        }
        Ok(by_message)
    }
}

impl Loader<AttachmentsKey> for DbLoader {
    type Value = Vec<Attachment>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AttachmentsKey]) -> LoadResult<AttachmentsKey, Vec<Attachment>> {
        let rows = db::attachments::of_messages(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        let mut by_message: HashMap<AttachmentsKey, Vec<Attachment>> = HashMap::new();
        for attachment in rows {
            if let Some(message_id) = attachment.message_id {
                by_message
                    .entry(AttachmentsKey(message_id))
                    .or_default()
                    .push(attachment);
            }
        }
        Ok(by_message)
    }
}

impl Loader<MyReactionsKey> for DbLoader {
    type Value = Vec<String>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MyReactionsKey]) -> LoadResult<MyReactionsKey, Vec<String>> {
        let mut conn = self.conn().await?;
        // The usual batch (one request) has one user.
        let mut by_user: HashMap<UserId, Vec<MessageId>> = HashMap::new();
        for key in keys {
            by_user.entry(key.user_id).or_default().push(key.message_id);
        }
        let mut found: HashMap<MyReactionsKey, Vec<String>> = HashMap::new();
        for (user_id, message_ids) in by_user {
            for (message_id, emoji) in db::reactions::of_user(&mut conn, user_id, &message_ids)
                .await
                .map_err(failed)?
            {
                found
                    .entry(MyReactionsKey {
                        message_id,
                        user_id,
                    })
                    .or_default()
                    .push(emoji);
            }
        }
        Ok(found)
    }
}

impl Loader<ReactorsKey> for DbLoader {
    type Value = Vec<UserId>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ReactorsKey]) -> LoadResult<ReactorsKey, Vec<UserId>> {
        let groups: Vec<(MessageId, String, i64)> = keys
            .iter()
            .map(|k| (k.message_id, k.emoji.clone(), k.limit))
            .collect();
        let users = db::reactions::first_users(&mut self.conn().await?, &groups)
            .await
            .map_err(failed)?;
        Ok(keys.iter().cloned().zip(users).collect())
    }
}

impl Loader<EditsKey> for DbLoader {
    type Value = Vec<MessageEdit>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EditsKey]) -> LoadResult<EditsKey, Vec<MessageEdit>> {
        let wanted = raw(keys, |k| (k.message_id, k.limit));
        let edits = db::message_edits::newest(&mut self.conn().await?, &wanted)
            .await
            .map_err(failed)?;
        Ok(keys.iter().copied().zip(edits).collect())
    }
}

impl Loader<PinKey> for DbLoader {
    type Value = Pin;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[PinKey]) -> LoadResult<PinKey, Pin> {
        let rows = db::pins::of_messages(&mut self.conn().await?, &raw(keys, |k| k.0))
            .await
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|p| (PinKey(p.message_id), p))
            .collect())
    }
}
