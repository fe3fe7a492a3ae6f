//! An IM frontend's UI state, as such an app keeps it (and as its mock data looks): who
//! the viewer is, the users it knows, and the chat list, each chat with its members, the
//! viewer's `pinned`, `muted` and `unreadCount`, and its messages.
//!
//! ```json
//! {"app": "acme-chat", "me": "u1",
//!  "users": [{"id": "u1", "username": "alice", "name": "Alice", "avatar": "https://…"}],
//!  "chats": [{"id": "c1", "type": "group", "name": "Team", "owner": "u1",
//!             "members": ["u1", {"id": "u2", "role": "admin"}],
//!             "pinned": true, "muted": false, "unreadCount": 1,
//!             "messages": [{"id": "m1", "senderId": "u2", "text": "hi",
//!                           "createdAt": "2024-03-01T12:00:00Z", "replyTo": null,
//!                           "reactions": {"👍": ["u1"]}}]}]}
//! ```
//!
//! The README's "Import" lists every field and the other spellings taken (`conversations`,
//! `content`, `timestamp` in ms, …). The viewer's unread count becomes their read
//! watermark: the first `unreadCount` messages from the end that count as unread (from
//! others, not deleted) are left unread. The other members have read everything: the UI
//! state of one viewer does not know theirs. `app` (or `--origin`) names where the data
//! comes from, so two apps' user "1" are not taken for one person, and every viewer's
//! state from one app merges into the same chats.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::{
    Converted, chat_record, header, id_text, member, source_id, text_field, time_field, values,
};
use crate::db::dump::{ChatRow, MessageRow, ReactionRow, UserRow};
use crate::domain::transfer::{ChatRecord, Place, Record, TransferError};
use crate::vocabulary::enums::{ChatKind, MemberRole, MessageKind, MessageRole};

/// The fields a message's time may be in (numbers are seconds or milliseconds).
const TIME_FIELDS: [&str; 5] = ["createdAt", "timestamp", "time", "date", "sentAt"];

/// Converts a frontend's UI state into dump records. `origin` names the app when the
/// document does not (`app`); one of them is needed.
pub fn convert(text: &str, origin: Option<&str>) -> Result<Converted, TransferError> {
    let whole = |reason: String| TransferError::Bad {
        place: Place::Line(1),
        reason,
    };
    let mut documents = values(text)?;
    let document = match (documents.pop(), documents.is_empty()) {
        (Some(Value::Object(document)), true) => document,
        _ => return Err(whole("the UI state must be one JSON object".to_owned())),
    };
    let app = text_field(&document, "app").map_err(whole)?;
    let Some(app) = origin.map(str::to_owned).or(app) else {
        return Err(whole(
            "name the app this data comes from: an `app` field, or --origin".to_owned(),
        ));
    };
    let now = crate::domain::now();
    let mut records = vec![(Place::Line(1), Ok(header(format!("frontend:{app}"))))];

    // Users: their ids in the app → ids in the converted dump, and whether they are bots.
    let mut users: HashMap<String, (i64, bool)> = HashMap::new();
    let list = |name: &str| match document.get(name) {
        Some(Value::Array(items)) => Ok(items.as_slice()),
        None | Some(Value::Null) => Ok(&[][..]),
        Some(other) => Err(whole(format!("`{name}` must be a list, not {other}"))),
    };
    for (index, user) in list("users")?.iter().enumerate() {
        let place = Place::Item {
            noun: "user",
            index: index as u64 + 1,
            message: None,
        };
        let converted = convert_user(user, now);
        if let Ok((app_id, row)) = &converted {
            users.insert(app_id.clone(), (row.id, row.is_bot));
        }
        records.push((place, converted.map(|(_, row)| Record::User(row))));
    }
    let me = match document.get("me") {
        Some(Value::Object(me)) => me.get("id").map(id_text),
        Some(me) => Some(id_text(me)),
        None => None,
    }
    .transpose()
    .map_err(whole)?;
    let me = match me {
        Some(me) => users
            .get(&me)
            .map(|(id, _)| *id)
            .ok_or_else(|| whole(format!("`me` ({me}) is not among the users")))?,
        None => {
            return Err(whole(
                "`me` names the user whose UI state this is".to_owned(),
            ));
        }
    };

    let chats = match document.get("chats").or(document.get("conversations")) {
        Some(Value::Array(chats)) => chats.as_slice(),
        _ => return Err(whole("`chats` must be a list".to_owned())),
    };
    for (index, chat) in chats.iter().enumerate() {
        let place = Place::Item {
            noun: "chat",
            index: index as u64 + 1,
            message: None,
        };
        match chat {
            Value::Object(chat) => {
                if let Err(reason) = convert_chat(&mut records, place, chat, &users, me, now) {
                    records.push((place, Err(reason)));
                }
            }
            other => records.push((place, Err(format!("a chat must be an object, not {other}")))),
        }
    }
    Ok(records)
}

/// A user of the app: their app id, and the user.
fn convert_user(user: &Value, now: NaiveDateTime) -> Result<(String, UserRow), String> {
    let Value::Object(user) = user else {
        return Err(format!("a user must be an object, not {user}"));
    };
    let app_id = id_text(user.get("id").unwrap_or(&Value::Null))?;
    // A frontend often has no handle apart from the id.
    let username = text_field(user, "username")?.unwrap_or_else(|| app_id.clone());
    crate::domain::users::check_username(&username).map_err(|e| format!("`{username}`: {e}"))?;
    let display_name = match text_field(user, "name")? {
        Some(name) => Some(name),
        None => text_field(user, "displayName")?,
    };
    let avatar_url = match text_field(user, "avatar")? {
        Some(avatar) => Some(avatar),
        None => text_field(user, "avatarUrl")?,
    };
    let is_bot = [user.get("isBot"), user.get("bot")]
        .into_iter()
        .flatten()
        .any(|flag| flag.as_bool() == Some(true));
    let created_at = time_field(user, &["createdAt"])?.unwrap_or(now);
    let row = UserRow {
        id: source_id(&["frontend-user", &app_id]),
        username,
        display_name,
        avatar_url,
        is_bot,
        metadata: None,
        last_seen_at: time_field(user, &["lastSeenAt", "lastSeen"])?,
        created_at,
        updated_at: created_at,
    };
    Ok((app_id, row))
}

/// The member list: app ids with their roles.
fn members_of(chat: &Map<String, Value>) -> Result<Vec<(String, Option<MemberRole>)>, String> {
    let Some(Value::Array(members)) = chat.get("members").or(chat.get("participants")) else {
        return Err("a chat needs a `members` list".to_owned());
    };
    let owner = chat.get("owner").map(id_text).transpose()?;
    members
        .iter()
        .map(|member| {
            let (id, role) = match member {
                Value::Object(member) => (
                    id_text(member.get("id").unwrap_or(&Value::Null))?,
                    text_field(member, "role")?,
                ),
                other => (id_text(other)?, None),
            };
            let role = match role {
                Some(role) => Some(
                    MemberRole::parse(&role.to_ascii_uppercase())
                        .ok_or_else(|| format!("unknown member role `{role}`"))?,
                ),
                None if owner.as_ref() == Some(&id) => Some(MemberRole::Owner),
                None => None,
            };
            Ok((id, role))
        })
        .collect()
}

/// One chat: its record, its messages and reactions, its members (the viewer's pinned,
/// muted and unread state on theirs).
fn convert_chat(
    records: &mut Converted,
    place: Place,
    chat: &Map<String, Value>,
    users: &HashMap<String, (i64, bool)>,
    me: i64,
    now: NaiveDateTime,
) -> Result<(), String> {
    let app_id = id_text(chat.get("id").unwrap_or(&Value::Null))?;
    let chat_id = source_id(&["frontend-chat", &app_id]);
    let user = |app_id: &str| {
        users
            .get(app_id)
            .copied()
            .ok_or_else(|| format!("user {app_id} is not among the users"))
    };
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    for (app_id, role) in members_of(chat)? {
        let (id, _) = user(&app_id)?;
        if seen.insert(id) {
            members.push((id, role));
        }
    }
    let name = text_field(chat, "name")?;
    let kind = match text_field(chat, "type")?.or(text_field(chat, "kind")?) {
        Some(kind) => match kind.to_ascii_lowercase().as_str() {
            "direct" | "private" | "dm" | "single" | "p2p" => ChatKind::Direct,
            "group" | "channel" | "room" => ChatKind::Group,
            "assistant" | "ai" | "bot" => ChatKind::Assistant,
            _ => {
                return Err(format!(
                    "unknown chat type `{kind}` (direct, group or assistant)"
                ));
            }
        },
        None if members.len() == 2 && name.is_none() => ChatKind::Direct,
        None => ChatKind::Group,
    };
    let direct_key = match (kind, members.as_slice()) {
        (ChatKind::Direct, [(a, _), (b, _)]) => Some(format!("{}:{}", a.min(b), a.max(b))),
        (ChatKind::Direct, _) => return Err("a direct chat has exactly two members".to_owned()),
        _ => None,
    };
    let owner = members
        .iter()
        .find(|(_, role)| *role == Some(MemberRole::Owner))
        .map(|(id, _)| *id);

    let Some(Value::Array(messages)) = chat.get("messages") else {
        return Err("a chat needs a `messages` list (it may be empty)".to_owned());
    };
    let mut converted = Vec::with_capacity(messages.len());
    let mut reactions = Vec::new();
    let mut by_app_id: HashMap<String, i64> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let place = place.message(index as u64 + 1);
        let row =
            convert_message(message, index, &app_id, chat_id, users, &by_app_id).map(|converted| {
                by_app_id.insert(converted.app_id, converted.row.id);
                reactions.push((place, converted.reactions));
                converted.row
            });
        converted.push((place, row));
    }
    let first = converted
        .iter()
        .find_map(|(_, row)| row.as_ref().ok().map(|r| r.created_at));
    let created_at = time_field(chat, &["createdAt"])?.or(first).unwrap_or(now);
    let live: Vec<&MessageRow> = converted
        .iter()
        .filter_map(|(_, row)| row.as_ref().ok())
        .collect();
    let last = live.last().map(|row| (row.id, row.created_at));
    let last_activity = last.map_or(created_at, |(_, at)| at);
    // The viewer's watermark: just before their `unreadCount`-th unread message from the end.
    let unread = match chat.get("unreadCount").or(chat.get("unread")) {
        None | Some(Value::Null) => 0,
        Some(count) => count
            .as_u64()
            .ok_or_else(|| format!("`unreadCount` must be a whole number, not {count}"))?,
    };
    let mut my_read = None;
    let mut counted = 0;
    for row in live.iter().rev() {
        if counted == unread {
            my_read = Some((row.id, row.created_at));
            break;
        }
        if row.retracted_at.is_none() && row.sender_id != Some(me) {
            counted += 1;
        }
    }
    let flag = |name: &str| chat.get(name).and_then(Value::as_bool).unwrap_or(false);

    records.push((
        place,
        Ok(Record::Chat(ChatRecord {
            chat: ChatRow {
                name,
                description: text_field(chat, "description")?,
                avatar_url: text_field(chat, "avatar")?.or(text_field(chat, "avatarUrl")?),
                created_by: owner,
                direct_key,
                ..chat_record(chat_id, kind, created_at, last_activity)
            },
            tags: Vec::new(),
        })),
    ));
    records.extend(
        converted
            .into_iter()
            .map(|(place, row)| (place, row.map(Record::Message))),
    );
    for (place, reacted) in reactions {
        records.extend(
            reacted
                .into_iter()
                .map(|reaction| (place, reaction.map(Record::Reaction))),
        );
    }
    for (id, role) in members {
        let mut row = member(
            chat_id,
            id,
            role.unwrap_or(MemberRole::Member),
            created_at,
            if id == me { my_read } else { last },
        );
        if id == me {
            row.last_delivered_message_id = last.map(|(id, _)| id);
            row.pinned = flag("pinned");
            row.muted = flag("muted");
        }
        records.push((place, Ok(Record::Member(row))));
    }
    Ok(())
}

/// A message as converted: its id in the app, the message, and its reactions (each
/// converted apart, so a bad emoji is one bad part, not a bad message).
struct ConvertedMessage {
    app_id: String,
    row: MessageRow,
    reactions: Vec<Result<ReactionRow, String>>,
}

fn convert_message(
    message: &Value,
    index: usize,
    chat_app_id: &str,
    chat_id: i64,
    users: &HashMap<String, (i64, bool)>,
    earlier: &HashMap<String, i64>,
) -> Result<ConvertedMessage, String> {
    let Value::Object(message) = message else {
        return Err(format!("a message must be an object, not {message}"));
    };
    let app_id = match message.get("id") {
        None | Some(Value::Null) => format!("at:{index}"),
        Some(id) => id_text(id)?,
    };
    let id = source_id(&["frontend-message", chat_app_id, &app_id]);
    let sender_field = ["senderId", "sender", "from", "userId", "authorId"]
        .iter()
        .find_map(|name| message.get(*name).filter(|value| !value.is_null()));
    let sender = match sender_field {
        Some(sender) => {
            let app_sender = id_text(sender)?;
            Some(
                users
                    .get(&app_sender)
                    .copied()
                    .ok_or_else(|| format!("sender {app_sender} is not among the users"))?,
            )
        }
        None => None,
    };
    let kind = match text_field(message, "type")? {
        None => MessageKind::Text,
        Some(kind) => match kind.to_ascii_lowercase().as_str() {
            "text" => MessageKind::Text,
            "image" | "photo" => MessageKind::Image,
            "file" | "video" | "audio" | "voice" => MessageKind::File,
            "system" | "notice" | "event" => MessageKind::System,
            _ => {
                return Err(format!(
                    "unknown message type `{kind}` (text, image, file or system)"
                ));
            }
        },
    };
    if sender.is_none() && kind != MessageKind::System {
        return Err("a message needs a `senderId` (only system notices have none)".to_owned());
    }
    let role = match sender {
        None => MessageRole::System,
        Some((_, true)) => MessageRole::Assistant,
        Some((_, false)) => MessageRole::User,
    };
    let content = match text_field(message, "text")? {
        Some(text) => text,
        None => text_field(message, "content")?.unwrap_or_default(),
    };
    let created_at = time_field(message, &TIME_FIELDS)?
        .ok_or_else(|| "a message needs a time (`createdAt` or `timestamp`)".to_owned())?;
    let edited_at = time_field(message, &["editedAt", "updatedAt"])?;
    let deleted = ["deleted", "retracted", "recalled"]
        .iter()
        .any(|name| message.get(*name).and_then(Value::as_bool) == Some(true));
    // A reply to a message not in the list (or later in it) is kept as a plain message.
    let parent_id = ["replyTo", "replyToId", "parentId"]
        .iter()
        .find_map(|name| message.get(*name).filter(|value| !value.is_null()))
        .map(id_text)
        .transpose()?
        .and_then(|parent| earlier.get(&parent).copied());
    // What a frontend keeps beside the text (files, links, its own fields).
    let mut data = Map::new();
    if let Some(Value::Object(own)) = message.get("data") {
        data.extend(own.clone());
    }
    for name in ["files", "attachments"] {
        if let Some(value) = message.get(name).filter(|value| !value.is_null()) {
            data.insert(name.to_owned(), value.clone());
        }
    }
    let mut reactions = Vec::new();
    match message.get("reactions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(by_emoji)) => {
            for (emoji, reactors) in by_emoji {
                let emoji = crate::domain::reactions::emoji(emoji).map_err(|e| e.to_string());
                let Value::Array(reactors) = reactors else {
                    reactions.push(Err(format!("reactions to {emoji:?} must list user ids")));
                    continue;
                };
                for reactor in reactors {
                    reactions.push(emoji.clone().and_then(|emoji| {
                        let app_reactor = id_text(reactor)?;
                        let (user_id, _) = users.get(&app_reactor).ok_or_else(|| {
                            format!("reactor {app_reactor} is not among the users")
                        })?;
                        Ok(ReactionRow {
                            message_id: id,
                            user_id: *user_id,
                            emoji: emoji.to_owned(),
                            created_at,
                        })
                    }));
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "`reactions` must map emoji to user ids, not {other}"
            ));
        }
    }
    let row = MessageRow {
        id,
        chat_id,
        sender_id: sender.map(|(id, _)| id),
        role: role.as_str().to_owned(),
        kind: kind.as_str().to_owned(),
        // A deleted message is a tombstone, as a retraction leaves it.
        content: if deleted { String::new() } else { content },
        data: (!deleted && !data.is_empty()).then(|| Value::Object(data).to_string()),
        parent_id,
        client_id: None,
        stream_state: None,
        created_at,
        edited_at: edited_at.filter(|_| !deleted),
        retracted_at: deleted.then(|| edited_at.unwrap_or(created_at)),
        trace_id: None,
        session_id: None,
    };
    Ok(ConvertedMessage {
        app_id,
        row,
        reactions: if deleted { Vec::new() } else { reactions },
    })
}
