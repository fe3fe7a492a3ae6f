//! The two GraphQL-over-WebSocket subprotocols: their names, close codes and client
//! messages.

use async_graphql::ServerError;
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

/// Close codes of the graphql-transport-ws protocol.
pub mod close {
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY: u16 = 4429;
    pub const GOING_AWAY: u16 = 1001;
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
