//! The two GraphQL-over-WebSocket subprotocols: their names, close codes and client
//! messages.

use async_graphql::ServerError;
use axum::extract::ws::{CloseFrame, Message};
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

/// The two subprotocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`, spoken by the `graphql-ws` client.
    Transport,
    /// `graphql-ws`, spoken by the legacy subscriptions-transport-ws client.
    Legacy,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Transport => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }

    pub fn from_header(parts: &Parts) -> Option<Self> {
        parts
            .headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| match p.trim() {
                "graphql-transport-ws" => Some(Protocol::Transport),
                "graphql-ws" => Some(Protocol::Legacy),
                _ => None,
            })
    }
}

/// Close codes: the graphql-transport-ws protocol's (44xx) and RFC 6455's (10xx).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    /// The client answered nothing for two keep-alive intervals. The protocol has no code
    /// of its own for this; 4408 is its timeout code, and the `graphql-ws` client retries
    /// it (a client that was only frozen reconnects).
    pub const KEEPALIVE_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY: u16 = 4429;
    pub const GOING_AWAY: u16 = 1001;
    /// A client frame or message over `--ws-max-message-bytes`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client fell so far behind that its outgoing queue passed
    /// `--ws-max-outgoing-bytes`; the `graphql-ws` client retries it, and a feed resumes
    /// from its last cursor.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Longest close reason: a close frame's payload is at most 125 bytes, two of them the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// A close frame with `reason` cut to [`MAX_CLOSE_REASON_BYTES`] on a character boundary;
/// a longer reason makes tungstenite refuse the frame, and the peer sees 1006 instead.
/// Every close frame the server sends is built here.
pub fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: truncate_reason(reason).into(),
    }))
}

fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A client message of either protocol (`start`/`stop` are the legacy names of
/// `subscribe`/`complete`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    #[serde(alias = "start")]
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    #[serde(alias = "stop")]
    Complete {
        id: String,
    },
    ConnectionTerminate {},
}

#[derive(Debug, Deserialize)]
pub struct SubscribePayload {
    pub query: String,
    #[serde(default, rename = "operationName")]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub variables: Option<Value>,
}

/// An `error` message: the transport protocol sends every error, the legacy one the first.
pub fn error_message(protocol: Protocol, id: &str, errors: Vec<ServerError>) -> Value {
    match protocol {
        Protocol::Transport => json!({"type": "error", "id": id, "payload": errors}),
        Protocol::Legacy => json!({"type": "error", "id": id, "payload": errors.first()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_to_123_bytes_on_a_character_boundary() {
        assert_eq!(truncate_reason("short"), "short");
        let ascii = "x".repeat(200);
        assert_eq!(truncate_reason(&ascii).len(), MAX_CLOSE_REASON_BYTES);
        // 'é' is two bytes: byte 123 would split the 62nd, so 61 remain.
        let accented = "é".repeat(100);
        assert_eq!(truncate_reason(&accented), "é".repeat(61));
        let euro = "€".repeat(50); // three bytes each: 41 fit in 123
        assert_eq!(truncate_reason(&euro).len(), 123);
        let four = "😀".repeat(40); // four bytes each: 30 fit, 120 bytes
        assert_eq!(truncate_reason(&four).len(), 120);
    }
}
