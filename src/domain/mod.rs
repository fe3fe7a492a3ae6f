//! Domain services: the rules of chat that are not SQL — who may do what, input limits,
//! read state, cursors and ids. Each mutation is one transaction; events are published
//! after it commits.

pub mod access;
pub mod attachments;
pub mod blocks;
pub mod chats;
pub mod feeds;
pub mod members;
pub mod mentions;
pub mod messages;
pub mod pins;
pub mod reactions;
pub mod receipts;
pub mod search;
pub mod sending;
pub mod sessions;
pub mod statistics;
pub mod threads;
pub mod transfer;
pub mod users;

use chrono::{NaiveDateTime, SubsecRound, Utc};

use crate::error::{AppError, AppResult};

/// The current UTC time at millisecond precision (the API's precision), so both backends
/// store and return exactly the same value.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(3)
}

/// Serialises an optional JSON value for storage.
pub fn json_to_text(field: &str, value: Option<&serde_json::Value>) -> AppResult<Option<String>> {
    let Some(text) = value.map(serde_json::Value::to_string) else {
        return Ok(None);
    };
    if text.len() > MAX_JSON_BYTES {
        return Err(AppError::BadInput(format!(
            "`{field}` may be at most {MAX_JSON_BYTES} bytes of JSON"
        )));
    }
    Ok(Some(text))
}

/// Largest `data`/`metadata` JSON value, serialised: with the mutation fields one request
/// may hold, this bounds what a request can store.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Longest trace id a message keeps.
pub const MAX_TRACE_ID: usize = 128;

/// A trace id is 1–[`MAX_TRACE_ID`] printable ASCII characters (W3C `traceparent`, hex
/// trace ids, UUIDs all are): it goes into log lines as it is.
pub fn check_trace_id(trace_id: Option<&str>) -> AppResult<()> {
    match trace_id {
        Some(id)
            if id.is_empty()
                || id.len() > MAX_TRACE_ID
                || !id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(AppError::BadInput(format!(
                "`traceId` must be 1–{MAX_TRACE_ID} printable ASCII characters"
            )))
        }
        _ => Ok(()),
    }
}

/// Checks an optional text field: trimmed length at most `max` characters.
pub fn check_text(field: &str, value: Option<&str>, max: usize) -> AppResult<()> {
    match value {
        Some(text) if text.chars().count() > max => Err(AppError::BadInput(format!(
            "`{field}` may be at most {max} characters"
        ))),
        _ => Ok(()),
    }
}
