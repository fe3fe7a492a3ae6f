//! Other formats an import reads, converted into the records of a chatql dump: OpenAI-style
//! conversations (`openai`) and an IM frontend's UI state (`frontend`). The importer then
//! treats them like a dump, so the rules are one: remapped ids, remembered per origin (a
//! re-run adds nothing), one transaction per chat, bad parts refused or skipped.
//!
//! These formats have no numeric ids, or ids from another system: a record's id in the
//! converted dump is a hash of what identifies it there (a conversation's id or its first
//! message, a message's id or its position), so the same input converts to the same ids,
//! and importing it again finds what the first run made. A foreign document is read
//! whole, unlike a dump.

pub mod frontend;
pub mod openai;

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{FORMAT, Header, Place, Record, TransferError, VERSION};
use crate::db::dump::{ChatRow, MemberRow, UserRow};
use crate::vocabulary::enums::{ChatKind, ChatStatus, MemberRole};

/// Converted records, each with its place in the input or why it could not be converted.
pub type Converted = Vec<(Place, Result<Record, String>)>;

/// A stable id for what `parts` name: the first 63 bits of their SHA-256.
fn source_id(parts: &[&str]) -> i64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Positive, and never 0 (a watermark of 0 means "nothing").
    ((u64::from_be_bytes(first) >> 1) as i64).max(1)
}

/// A time as such inputs give it: RFC 3339 text, or a number of seconds (fractions
/// allowed) or milliseconds since 1970.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Number(f64),
    Text(String),
}

impl Timestamp {
    fn to_utc(&self) -> Result<NaiveDateTime, String> {
        let refused = || format!("a time that is neither RFC 3339 nor a Unix time: {self:?}");
        match self {
            // Milliseconds from 1973 on, when seconds would be past year 5000.
            Timestamp::Number(n) if n.abs() >= 1e11 => {
                DateTime::from_timestamp_millis(*n as i64).map(|t| t.naive_utc())
            }
            Timestamp::Number(n) => {
                DateTime::from_timestamp_millis((n * 1000.0).round() as i64).map(|t| t.naive_utc())
            }
            Timestamp::Text(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.naive_utc())
                .ok()
                .or_else(|| {
                    // No offset given: UTC.
                    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                        .iter()
                        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                })
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(|n| Timestamp::Number(n).to_utc().ok())
                }),
        }
        .ok_or_else(refused)
    }
}

/// An id as JSON gives it: a string or a number.
fn id_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) if !text.is_empty() => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("an id must be a string or a number, not {other}")),
    }
}

/// The header of a converted dump.
fn header(origin: String) -> Record {
    Record::Header(Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        origin,
        exported_at: crate::domain::now(),
        chats: None,
        since: None,
    })
}

/// A chat record of `kind` from `created_at` to `last_activity`, with nothing else set
/// (a converter fills in what its input has).
fn chat_record(
    id: i64,
    kind: ChatKind,
    created_at: NaiveDateTime,
    last_activity: NaiveDateTime,
) -> ChatRow {
    ChatRow {
        id,
        kind: kind.as_str().to_owned(),
        category: None,
        name: None,
        description: None,
        avatar_url: None,
        metadata: None,
        created_by: None,
        direct_key: None,
        created_at,
        updated_at: last_activity,
        last_activity_at: last_activity,
        external_key: None,
        status: ChatStatus::Active.as_str().to_owned(),
        active_session_id: None,
    }
}

/// A user who exists only by name in the input (the owner of OpenAI conversations, their
/// assistant).
fn named_user(id: i64, username: &str, is_bot: bool, at: NaiveDateTime) -> UserRow {
    UserRow {
        id,
        username: username.to_owned(),
        display_name: None,
        avatar_url: None,
        is_bot,
        metadata: None,
        last_seen_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// A membership whose watermarks stand at `read` (read and delivered up to it).
fn member(
    chat_id: i64,
    user_id: i64,
    role: MemberRole,
    joined_at: NaiveDateTime,
    read: Option<(i64, NaiveDateTime)>,
) -> MemberRow {
    MemberRow {
        chat_id,
        user_id,
        role: role.as_str().to_owned(),
        joined_at,
        last_read_message_id: read.map(|(id, _)| id),
        last_read_at: read.map(|(_, at)| at),
        last_delivered_message_id: read.map(|(id, _)| id),
        pinned: false,
        muted: false,
    }
}

/// JSON values one after another (JSON Lines, or whitespace between them): a syntax error
/// is the whole input's error, with its line.
fn values(text: &str) -> Result<Vec<Value>, TransferError> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransferError::Bad {
            place: Place::Line(e.line() as u64),
            reason: e.to_string(),
        })
}

/// A JSON object's optional text field.
fn text_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!("`{name}` must be text, not {other}")),
    }
}

/// The first time among these fields of an object (inputs spell it many ways).
fn time_field(
    object: &serde_json::Map<String, Value>,
    names: &[&str],
) -> Result<Option<NaiveDateTime>, String> {
    for name in names {
        match object.get(*name) {
            None | Some(Value::Null) => continue,
            Some(value) => {
                let timestamp: Timestamp = serde_json::from_value(value.clone())
                    .map_err(|_| format!("`{name}` must be a time, not {value}"))?;
                return timestamp
                    .to_utc()
                    .map(Some)
                    .map_err(|e| format!("`{name}`: {e}"));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_spellings_inputs_use() {
        let at = |value: Value| {
            serde_json::from_value::<Timestamp>(value)
                .map_err(|e| e.to_string())
                .and_then(|t| t.to_utc())
                .map(|t| t.to_string())
        };
        let expected = Ok("2024-03-01 12:00:00".to_owned());
        assert_eq!(at(Value::from(1_709_294_400)), expected);
        assert_eq!(at(Value::from(1_709_294_400_000_i64)), expected);
        assert_eq!(at(Value::from("2024-03-01T13:00:00+01:00")), expected);
        assert_eq!(at(Value::from("2024-03-01T12:00:00Z")), expected);
        assert_eq!(at(Value::from("2024-03-01 12:00:00")), expected);
        assert_eq!(
            at(Value::from(1_709_294_400.25)),
            Ok("2024-03-01 12:00:00.250".to_owned())
        );
        assert!(at(Value::from("yesterday")).is_err());
    }

    #[test]
    fn source_ids_are_stable_and_positive() {
        assert_eq!(source_id(&["chat", "c1"]), source_id(&["chat", "c1"]));
        assert_ne!(source_id(&["chat", "c1"]), source_id(&["chat", "c2"]));
        // The parts are separated: ("ab", "c") is not ("a", "bc").
        assert_ne!(source_id(&["ab", "c"]), source_id(&["a", "bc"]));
        assert!(source_id(&["user", "alice"]) > 0);
    }
}
