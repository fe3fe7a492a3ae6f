//! Chats and membership: creating, listing, managing members and roles, per-member
//! settings. Only members see a chat; only OWNER/ADMIN manage it.

use crate::app::App;
use crate::db::chats::{Chat, ChatChanges, ChatListFilter, ChatListKey, ChatOrder, NewChat};
use crate::db::members::Member;
use crate::db::{self, DbConn};
use crate::domain::access::{CheckedMemberships, member_of};
use crate::domain::blocks;
use crate::domain::members::{MAX_MEMBERS_PER_CALL, insert_member, joined, require_users_exist};
use crate::domain::{check_text, json_to_text, now};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind};
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::enums::{ChatKind, ChatStatus, MemberRole};
use crate::vocabulary::ids::{ChatId, UserId};
use async_graphql::{InputObject, MaybeUndefined};

/// Longest chat name.
pub const MAX_NAME: usize = 200;
/// Longest chat description.
pub const MAX_DESCRIPTION: usize = 2000;
/// Longest category label.
pub const MAX_CATEGORY: usize = 100;

// The commands below are the GraphQL inputs themselves (one definition, not a GraphQL
// copy mapped onto a domain copy): their doc comments are the schema's descriptions.

/// A new chat.
#[derive(Debug, InputObject)]
#[graphql(name = "CreateChatInput")]
pub struct CreateChat {
    /// Direct, group or assistant chat.
    pub kind: ChatKind,
    /// Title.
    pub name: Option<String>,
    /// Longer description.
    pub description: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Application-defined grouping label.
    pub category: Option<String>,
    /// Users to add as MEMBERs (the creator becomes OWNER).
    pub member_ids: Option<Vec<UserId>>,
    /// Free-form data.
    pub metadata: Option<serde_json::Value>,
    /// The application's own id for this conversation, unique among the chats the caller
    /// created: creating again with the same key returns that chat instead of a new one
    /// (also when two calls race). Not for DIRECT chats.
    pub external_key: Option<String>,
    /// Labels to filter the chat list by (at most 20, each 1–50 characters).
    pub tags: Option<Vec<String>>,
}

/// Changes to a chat; an omitted field stays, `null` clears it.
#[derive(Debug, Default, InputObject)]
#[graphql(name = "UpdateChatInput")]
pub struct UpdateChat {
    /// Title.
    pub name: MaybeUndefined<String>,
    /// Longer description.
    pub description: MaybeUndefined<String>,
    /// Avatar image URL.
    pub avatar_url: MaybeUndefined<String>,
    /// Application-defined grouping label.
    pub category: MaybeUndefined<String>,
    /// Free-form data.
    pub metadata: MaybeUndefined<serde_json::Value>,
    /// ACTIVE or ARCHIVED.
    pub status: Option<ChatStatus>,
    /// Replaces the chat's tags.
    pub tags: Option<Vec<String>>,
}

/// Most tags a chat has.
pub const MAX_TAGS: usize = 20;
/// Longest tag.
pub const MAX_TAG: usize = 50;
/// Longest application key of a chat.
pub const MAX_EXTERNAL_KEY: usize = 200;

/// Tags as stored: trimmed, each 1–[`MAX_TAG`] characters, sorted, without repeats.
fn normalized_tags(tags: Option<&[String]>) -> AppResult<Option<Vec<String>>> {
    let Some(tags) = tags else {
        return Ok(None);
    };
    let mut normalized: Vec<String> = tags.iter().map(|t| t.trim().to_owned()).collect();
    if normalized
        .iter()
        .any(|t| t.is_empty() || t.chars().count() > MAX_TAG)
    {
        return Err(AppError::BadInput(format!(
            "each tag must be 1–{MAX_TAG} characters"
        )));
    }
    normalized.sort();
    normalized.dedup();
    if normalized.len() > MAX_TAGS {
        return Err(AppError::BadInput(format!(
            "a chat has at most {MAX_TAGS} tags"
        )));
    }
    Ok(Some(normalized))
}

fn check_chat_texts(
    name: Option<&str>,
    description: Option<&str>,
    avatar_url: Option<&str>,
    category: Option<&str>,
) -> AppResult<()> {
    check_text("name", name, MAX_NAME)?;
    check_text("description", description, MAX_DESCRIPTION)?;
    check_text("avatarUrl", avatar_url, crate::domain::users::MAX_URL)?;
    check_text("category", category, MAX_CATEGORY)
}

/// Fails with `UNAUTHENTICATED` when the caller's account was deleted after its token was
/// issued: its id would otherwise reach the database as a dangling foreign key.
async fn require_caller_exists(conn: &mut DbConn, caller: UserId) -> AppResult<()> {
    if db::users::count_existing(conn, &[caller]).await? == 0 {
        return Err(AppError::Unauthenticated(
            "this token's user no longer exists".into(),
        ));
    }
    Ok(())
}

fn dedup_users(ids: &[UserId], except: UserId) -> Vec<UserId> {
    let mut unique: Vec<UserId> = ids.iter().copied().filter(|u| *u != except).collect();
    unique.sort();
    unique.dedup();
    unique
}

/// Creates a chat: the caller becomes OWNER, `member_ids` become MEMBERs. A DIRECT chat
/// with one other user is the same as `openDirectChat`.
pub async fn create(app: &App, caller: UserId, input: CreateChat) -> AppResult<Chat> {
    let kind = input.kind;
    check_chat_texts(
        input.name.as_deref(),
        input.description.as_deref(),
        input.avatar_url.as_deref(),
        input.category.as_deref(),
    )?;
    let others = dedup_users(input.member_ids.as_deref().unwrap_or_default(), caller);
    if others.len() > MAX_MEMBERS_PER_CALL {
        return Err(AppError::LimitExceeded(format!(
            "at most {MAX_MEMBERS_PER_CALL} members per call"
        )));
    }
    let tags = normalized_tags(input.tags.as_deref())?;
    let external_key = input.external_key.as_deref();
    if let Some(key) = external_key {
        if key.is_empty() || key.chars().count() > MAX_EXTERNAL_KEY {
            return Err(AppError::BadInput(format!(
                "`externalKey` must be 1–{MAX_EXTERNAL_KEY} characters"
            )));
        }
        if kind == ChatKind::Direct {
            return Err(AppError::BadInput(
                "a DIRECT chat has no `externalKey`: it is already one per pair".into(),
            ));
        }
        if let Some(existing) = chat_by_external_key(app, caller, key).await? {
            return Ok(existing);
        }
    }
    if kind == ChatKind::Direct {
        return match others.as_slice() {
            [other] => open_direct(app, caller, *other).await,
            [] => open_direct(app, caller, caller).await,
            _ => Err(AppError::BadInput(
                "a DIRECT chat has exactly one other member; use a GROUP".into(),
            )),
        };
    }
    let created = app
        .write(async |conn| {
            require_caller_exists(conn, caller).await?;
            require_users_exist(conn, &others).await?;
            let at = now();
            let chat = db::chats::insert(
                conn,
                &NewChat {
                    kind,
                    category: input.category.as_deref(),
                    name: input.name.as_deref(),
                    description: input.description.as_deref(),
                    avatar_url: input.avatar_url.as_deref(),
                    metadata: json_to_text("metadata", input.metadata.as_ref())?,
                    created_by: Some(caller),
                    direct_key: None,
                    created_at: at,
                    updated_at: at,
                    last_activity_at: at,
                    external_key,
                },
            )
            .await?;
            if let Some(tags) = &tags {
                db::chats::set_tags(conn, chat.id, tags).await?;
            }
            for (user, role) in std::iter::once((caller, MemberRole::Owner))
                .chain(others.iter().map(|u| (*u, MemberRole::Member)))
            {
                insert_member(conn, chat.id, user, role, None).await?;
                conn.emit(joined(&chat, user));
            }
            Ok(chat)
        })
        .await;
    match (created, external_key) {
        // A concurrent call with the same key created it first: that one is the chat.
        (Err(AppError::Db(e)), Some(key)) if e.is_unique_violation() => {
            chat_by_external_key(app, caller, key)
                .await?
                .ok_or(AppError::Db(e))
        }
        (created, _) => created,
    }
}

/// The chat `caller` created with this application key, if they are still in it. One
/// they left is a `CONFLICT`: the key is taken, and the chat is no longer theirs to see.
pub async fn chat_by_external_key(app: &App, caller: UserId, key: &str) -> AppResult<Option<Chat>> {
    let mut conn = app.db().conn().await?;
    let Some(chat) = db::chats::find_by_external_key(&mut conn, caller, key).await? else {
        return Ok(None);
    };
    match db::members::find(&mut conn, chat.id, caller).await? {
        Some(_) => Ok(Some(chat)),
        None => Err(AppError::Conflict(
            "you left the chat created with this `externalKey`".into(),
        )),
    }
}

/// Gets or creates the DIRECT chat between the caller and `other` (idempotent, also when
/// two calls race: the unique `direct_key` lets only one insert win). Either of the two may
/// have left the chat; opening it brings both back, so it is never a chat the caller cannot
/// read nor one where the other person does not get the messages.
pub async fn open_direct(app: &App, caller: UserId, other: UserId) -> AppResult<Chat> {
    let (low, high) = if caller <= other {
        (caller, other)
    } else {
        (other, caller)
    };
    let key = format!("{}:{}", low.0, high.0);
    let mut pair = vec![low, high];
    pair.dedup();
    let attempt = app
        .write(async |conn| {
            require_caller_exists(conn, caller).await?;
            require_users_exist(conn, &[other]).await?;
            let blocks = blocks::between_pair(conn, caller, other).await?;
            if let Some(refused) = blocks::direct_refusal(&blocks, caller) {
                return Err(refused);
            }
            if let Some(chat) = db::chats::find_direct(conn, &key).await? {
                let present = db::members::user_ids(conn, chat.id).await?;
                for user in pair.iter().filter(|u| !present.contains(u)) {
                    // Back with the history counted as read, like any new member.
                    insert_member(
                        conn,
                        chat.id,
                        *user,
                        MemberRole::Member,
                        chat.last_message_id,
                    )
                    .await?;
                    conn.emit(joined(&chat, *user));
                }
                return Ok(chat);
            }
            let at = now();
            let chat = db::chats::insert(
                conn,
                &NewChat {
                    kind: ChatKind::Direct,
                    category: None,
                    name: None,
                    description: None,
                    avatar_url: None,
                    metadata: None,
                    created_by: Some(caller),
                    direct_key: Some(key.clone()),
                    created_at: at,
                    updated_at: at,
                    last_activity_at: at,
                    external_key: None,
                },
            )
            .await?;
            for user in pair.iter().copied() {
                insert_member(conn, chat.id, user, MemberRole::Member, None).await?;
                conn.emit(joined(&chat, user));
            }
            Ok(chat)
        })
        .await;
    match attempt {
        Ok(chat) => Ok(chat),
        // Another call created (or rejoined) it between our read and our insert: theirs is
        // the chat, with both members in it.
        Err(AppError::Db(e)) if e.is_unique_violation() => {
            let mut conn = app.db().conn().await?;
            db::chats::find_direct(&mut conn, &key)
                .await?
                .ok_or(AppError::Db(e))
        }
        Err(e) => Err(e),
    }
}

/// Updates a chat's settings (OWNER/ADMIN; either member of a DIRECT chat).
pub async fn update(app: &App, caller: UserId, chat: ChatId, input: UpdateChat) -> AppResult<Chat> {
    check_chat_texts(
        input.name.value().map(String::as_str),
        input.description.value().map(String::as_str),
        input.avatar_url.value().map(String::as_str),
        input.category.value().map(String::as_str),
    )?;
    let tags = normalized_tags(input.tags.as_deref())?;
    app.write(async |conn| {
        require_settings_right(conn, chat, caller).await?;
        if let Some(tags) = &tags {
            db::chats::set_tags(conn, chat, tags).await?;
        }
        let changes = ChatChanges {
            name: input.name.into(),
            description: input.description.into(),
            avatar_url: input.avatar_url.into(),
            category: input.category.into(),
            metadata: Option::<Option<_>>::from(input.metadata)
                .map(|m| json_to_text("metadata", m.as_ref()))
                .transpose()?,
            status: input.status,
            updated_at: Some(now()),
        };
        let updated = db::chats::update(conn, chat, &changes).await?;
        conn.emit(Event::in_chat(chat, EventKind::ChatUpdated));
        Ok(updated)
    })
    .await
}

/// OWNER/ADMIN of a group chat, or either member of a DIRECT chat.
async fn require_settings_right(
    conn: &mut DbConn,
    chat: ChatId,
    caller: UserId,
) -> AppResult<Chat> {
    let (chat_row, member) = member_of(conn, chat, caller).await?;
    if chat_row.kind != ChatKind::Direct && !member.role.can_manage() {
        return Err(AppError::Forbidden(
            "only the chat's OWNER or ADMIN may do this".into(),
        ));
    }
    Ok(chat_row)
}

/// Deletes a chat with all its messages and memberships, in one transaction (OWNER; either
/// member of a DIRECT chat).
pub async fn delete(app: &App, caller: UserId, chat: ChatId) -> AppResult<bool> {
    app.write(async |conn| {
        let (chat_row, member) = member_of(conn, chat, caller).await?;
        if chat_row.kind != ChatKind::Direct && member.role != MemberRole::Owner {
            return Err(AppError::Forbidden(
                "only an OWNER may delete the chat".into(),
            ));
        }
        db::chats::delete(conn, chat).await?;
        conn.emit(Event::in_chat(chat, EventKind::ChatDeleted));
        Ok(true)
    })
    .await
}

/// Deletes every message and session of a chat but keeps the chat (OWNER/ADMIN; either
/// member of a DIRECT chat). Returns how many messages were deleted.
pub async fn clear(app: &App, caller: UserId, chat: ChatId) -> AppResult<i32> {
    let deleted = app
        .write(async |conn| {
            let chat_row = require_settings_right(conn, chat, caller).await?;
            let deleted = db::messages::delete_all_in_chat(conn, chat).await?;
            // The sessions held those messages: they go too, and the next message starts
            // a new one.
            db::sessions::delete_all_in_chat(conn, chat).await?;
            if let Some(open) = chat_row.active_session_id {
                conn.emit(Event::in_chat(
                    chat,
                    EventKind::SessionEnded { session_id: open },
                ));
            }
            db::chats::set_last_message(conn, chat, None).await?;
            db::chats::touch(conn, chat, now()).await?;
            conn.emit(Event::in_chat(chat, EventKind::ChatUpdated));
            Ok(deleted)
        })
        .await?;
    Ok(i32::try_from(deleted).unwrap_or(i32::MAX))
}

/// A chat the caller is a member of (checked once per operation through `checked`).
pub async fn get(
    app: &App,
    caller: UserId,
    chat: ChatId,
    checked: &CheckedMemberships,
) -> AppResult<Chat> {
    let mut conn = app.db().conn().await?;
    Ok(checked.member_of(&mut conn, chat, caller).await?.0)
}

/// Cursor kind of the chat list in its usual order (most recent activity first); other
/// orders add theirs to it, so a cursor of one order is refused by another.
pub const CHAT_CURSOR: &str = "chat";

fn chat_cursor_kind(order: ChatOrder) -> String {
    if order == ChatOrder::default() {
        return CHAT_CURSOR.to_owned();
    }
    let direction = if order.ascending { "asc" } else { "desc" };
    format!("{CHAT_CURSOR}.{}.{direction}", order.field.as_str())
}

/// The cursor of a chat in the caller's chat list in `order`.
pub fn chat_list_cursor(order: ChatOrder, chat: &Chat, member: &Member) -> String {
    cursor::encode(
        &chat_cursor_kind(order),
        &[
            i64::from(member.pinned),
            order.time_of(chat).and_utc().timestamp_micros(),
            chat.id.0,
        ],
    )
}

/// The caller's chats: pinned first, then most recently active.
pub async fn list(
    app: &App,
    caller: UserId,
    filter: &ChatListFilter,
    page: &PageRequest,
) -> AppResult<Page<(Chat, Member)>> {
    let after = match page.cursor.as_deref() {
        None => None,
        Some(c) => {
            let fields = cursor::decode(&chat_cursor_kind(filter.order), c, 3)?;
            let at = chrono::DateTime::from_timestamp_micros(fields[1])
                .ok_or_else(|| AppError::BadInput(format!("invalid cursor `{c}`")))?
                .naive_utc();
            Some(ChatListKey {
                pinned: fields[0] != 0,
                at,
                id: ChatId(fields[2]),
            })
        }
    };
    let mut conn = app.db().conn().await?;
    Ok(db::chats::list_for_user(&mut conn, caller, filter, after, page).await?)
}
