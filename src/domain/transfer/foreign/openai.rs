//! OpenAI-style conversations: `{"messages": [{"role": "user", "content": "…"}, …]}`, one
//! per line (the chat fine-tuning format), or a JSON array of them (optionally under
//! `"conversations"`). A conversation may carry `id`, `title` and `create_time`; a message
//! may carry a time (`timestamp`, `create_time`, `created_at` or `createdAt`) and an `id`.
//! Content is text, or a list of parts whose text parts are joined.
//!
//! Each conversation becomes an ASSISTANT chat of the importing user (`user` messages) and
//! a bot (`assistant`, `tool` and `function` messages); `system` and `developer` messages
//! are SYSTEM messages without a sender. What the chat model has no column for (tool
//! calls, non-text parts, a tool's name, the original role) is kept in the message's
//! `data`. Without times, a conversation starts at its `create_time`, or at the import,
//! and each message is 1 ms after the one before.

use chrono::{Duration, NaiveDateTime};
use serde_json::{Map, Value};

use super::{
    Converted, chat_record, header, id_text, member, named_user, source_id, text_field, time_field,
    values,
};
use crate::db::dump::{ChatRow, MessageRow};
use crate::domain::transfer::{ChatRecord, Place, Record, TransferError};
use crate::vocabulary::enums::{ChatKind, MemberRole, MessageKind, MessageRole};

/// Whose conversations these are.
#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// The person's username (found, or created).
    pub user: String,
    /// The assistant's username (a bot user, found or created).
    pub assistant: String,
    /// The origin rows are remembered under; by default `openai:<user>`.
    pub origin: Option<String>,
}

/// The fields a message's time may be in.
const TIME_FIELDS: [&str; 4] = ["timestamp", "create_time", "created_at", "createdAt"];

/// Converts OpenAI-style conversations into dump records.
pub fn convert(text: &str, options: &OpenAiOptions) -> Result<Converted, TransferError> {
    for name in [&options.user, &options.assistant] {
        crate::domain::users::check_username(name)
            .map_err(|e| TransferError::BadArgument(format!("`{name}`: {e}")))?;
    }
    let mut conversations = Vec::new();
    for value in values(text)? {
        match value {
            Value::Array(items) => conversations.extend(items),
            Value::Object(mut object) if object.contains_key("conversations") => {
                match object.remove("conversations") {
                    Some(Value::Array(items)) => conversations.extend(items),
                    _ => conversations.push(Value::Object(object)),
                }
            }
            other => conversations.push(other),
        }
    }
    let now = crate::domain::now();
    let user = source_id(&["openai-user", &options.user]);
    let bot = source_id(&["openai-user", &options.assistant]);
    let origin = options
        .origin
        .clone()
        .unwrap_or_else(|| format!("openai:{}", options.user));
    let mut records = vec![
        (Place::Line(1), Ok(header(origin))),
        (
            Place::Line(1),
            Ok(Record::User(named_user(user, &options.user, false, now))),
        ),
        (
            Place::Line(1),
            Ok(Record::User(named_user(bot, &options.assistant, true, now))),
        ),
    ];
    let people = People { user, bot };
    for (index, conversation) in conversations.into_iter().enumerate() {
        let place = Place::Item {
            noun: "conversation",
            index: index as u64 + 1,
            message: None,
        };
        match conversation {
            Value::Object(object) => {
                convert_conversation(&mut records, place, &object, people, now)
            }
            other => records.push((
                place,
                Err(format!("a conversation must be an object, not {other}")),
            )),
        }
    }
    Ok(records)
}

/// The two users of every conversation (their ids in the converted dump).
#[derive(Clone, Copy)]
struct People {
    user: i64,
    bot: i64,
}

fn convert_conversation(
    records: &mut Converted,
    place: Place,
    conversation: &Map<String, Value>,
    people: People,
    now: NaiveDateTime,
) {
    let fail = |records: &mut Converted, reason: String| records.push((place, Err(reason)));
    let Some(Value::Array(messages)) = conversation.get("messages") else {
        return fail(records, "a conversation needs a `messages` list".to_owned());
    };
    let title = match text_field(conversation, "title") {
        Ok(title) => title,
        Err(e) => return fail(records, e),
    };
    let created = match time_field(conversation, &["create_time", "created_at", "createdAt"]) {
        Ok(created) => created,
        Err(e) => return fail(records, e),
    };
    let given_id = match conversation.get("id") {
        None | Some(Value::Null) => None,
        Some(id) => match id_text(id) {
            Ok(id) => Some(id),
            Err(e) => return fail(records, e),
        },
    };
    // What identifies the conversation when it has no id: its title, time and opening.
    let key = match &given_id {
        Some(id) => format!("id:{id}"),
        None => format!(
            "first:{}\0{}\0{}",
            title.as_deref().unwrap_or_default(),
            created.map(|t| t.to_string()).unwrap_or_default(),
            messages.first().map(Value::to_string).unwrap_or_default()
        ),
    };
    let chat_id = source_id(&["openai-conversation", &key]);
    let first_time = messages.iter().find_map(|message| {
        message
            .as_object()
            .and_then(|object| time_field(object, &TIME_FIELDS).ok().flatten())
    });
    let started = created.or(first_time).unwrap_or(now);

    let mut converted = Vec::with_capacity(messages.len());
    let mut previous = None::<NaiveDateTime>;
    for (index, message) in messages.iter().enumerate() {
        let place = place.message(index as u64 + 1);
        let row = message
            .as_object()
            .ok_or_else(|| format!("a message must be an object, not {message}"))
            .and_then(|object| {
                let at = time_field(object, &TIME_FIELDS)?.unwrap_or_else(|| match previous {
                    Some(previous) => previous + Duration::milliseconds(1),
                    None => started,
                });
                let message_key = match object.get("id") {
                    None | Some(Value::Null) => format!("at:{index}"),
                    Some(id) => format!("id:{}", id_text(id)?),
                };
                let id = source_id(&["openai-message", &key, &message_key]);
                convert_message(object, id, chat_id, at, people)
            });
        if let Ok(row) = &row {
            previous = Some(row.created_at);
        }
        converted.push((place, row));
    }

    let last = converted
        .iter()
        .rev()
        .find_map(|(_, row)| row.as_ref().ok().map(|row| (row.id, row.created_at)));
    let last_activity = last.map_or(started, |(_, at)| at);
    records.push((
        place,
        Ok(Record::Chat(ChatRecord {
            chat: ChatRow {
                name: title,
                created_by: Some(people.user),
                external_key: given_id,
                ..chat_record(chat_id, ChatKind::Assistant, started, last_activity)
            },
            tags: Vec::new(),
        })),
    ));
    records.extend(
        converted
            .into_iter()
            .map(|(place, row)| (place, row.map(Record::Message))),
    );
    // Both have read the whole conversation.
    for (user, role) in [
        (people.user, MemberRole::Owner),
        (people.bot, MemberRole::Member),
    ] {
        records.push((
            place,
            Ok(Record::Member(member(chat_id, user, role, started, last))),
        ));
    }
}

/// One `{role, content}` message as a chatql message.
fn convert_message(
    object: &Map<String, Value>,
    id: i64,
    chat_id: i64,
    at: NaiveDateTime,
    people: People,
) -> Result<MessageRow, String> {
    let role = match object.get("role") {
        Some(Value::String(role)) => role.as_str(),
        _ => return Err("a message needs a `role`".to_owned()),
    };
    let (sender, stored_role) = match role {
        "user" => (Some(people.user), MessageRole::User),
        "assistant" | "tool" | "function" => (Some(people.bot), MessageRole::Assistant),
        "system" | "developer" => (None, MessageRole::System),
        other => {
            return Err(format!(
                "unknown role `{other}` (user, assistant, system, developer, tool or function)"
            ));
        }
    };
    // Everything the message says beyond its role, content, id and time, kept as data.
    let mut data: Map<String, Value> = object
        .iter()
        .filter(|(name, _)| {
            !matches!(name.as_str(), "role" | "content" | "id")
                && !TIME_FIELDS.contains(&name.as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if !matches!(role, "user" | "assistant" | "system") {
        data.insert("role".to_owned(), Value::from(role));
    }
    let content = match object.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            let mut others = Vec::new();
            for part in parts {
                match part.get("text").and_then(Value::as_str) {
                    Some(text) => texts.push(text),
                    None => others.push(part.clone()),
                }
            }
            if !others.is_empty() {
                data.insert("parts".to_owned(), Value::Array(others));
            }
            texts.join("\n")
        }
        Some(other) => {
            return Err(format!(
                "`content` must be text or a list of parts, not {other}"
            ));
        }
    };
    Ok(MessageRow {
        id,
        chat_id,
        sender_id: sender,
        role: stored_role.as_str().to_owned(),
        kind: MessageKind::Text.as_str().to_owned(),
        content,
        data: (!data.is_empty()).then(|| Value::Object(data).to_string()),
        parent_id: None,
        client_id: None,
        stream_state: None,
        created_at: at,
        edited_at: None,
        retracted_at: None,
        trace_id: None,
        session_id: None,
    })
}
