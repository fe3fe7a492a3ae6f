//! One operation on a socket: its results streamed as `next`/`data` messages.

use async_graphql::Response as GqlResponse;
use axum::extract::ws::Message;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use super::outgoing::Outgoing;
use super::protocol::{Protocol, error_message};
use crate::events::presence::CountGuard;
use crate::graphql::{self, ChatSchema};

/// Where one operation's results go, and what it holds while it runs.
pub struct Delivery {
    /// The operation's id on the socket.
    pub id: String,
    pub protocol: Protocol,
    /// The socket's writer; `send` waits for a slot, and fails for good once the socket
    /// is closing or its queue went over its byte budget.
    pub outgoing: Outgoing,
    /// Told the id when the operation ends on its own.
    pub finished: mpsc::UnboundedSender<String>,
    /// Largest message sent; a bigger result becomes a `LIMIT_EXCEEDED` error.
    pub max_message_bytes: usize,
    /// The caller's subscription count, released when the operation ends.
    pub guard: CountGuard,
}

/// Runs one operation and streams its results as `next`/`data` messages, then `complete`.
pub async fn run_subscription(schema: ChatSchema, request: async_graphql::Request, to: Delivery) {
    let Delivery {
        id,
        protocol,
        outgoing,
        finished,
        max_message_bytes,
        guard: _guard,
    } = to;
    let mut results = schema.execute_stream(request);
    let mut first = true;
    while let Some(response) = results.next().await {
        let response = graphql::with_codes(response);
        // A request refused before execution (invalid, unauthorised) is an `error`
        // message, after which the operation is over.
        if first && never_executed(&response) {
            let message = error_message(protocol, &id, response.errors);
            let _ = outgoing
                .send(Message::Text(message.to_string().into()))
                .await;
            let _ = finished.send(id);
            return;
        }
        first = false;
        let kind = match protocol {
            Protocol::Transport => "next",
            Protocol::Legacy => "data",
        };
        // The payload is serialised once, straight to text (bounded in size).
        let payload = graphql::response_text(&response, max_message_bytes);
        let id_text = serde_json::to_string(&id).unwrap_or_default();
        let message = format!(r#"{{"type":"{kind}","id":{id_text},"payload":{payload}}}"#);
        if outgoing.send(Message::Text(message.into())).await.is_err() {
            return;
        }
    }
    let complete = json!({"type": "complete", "id": id});
    let _ = outgoing
        .send(Message::Text(complete.to_string().into()))
        .await;
    let _ = finished.send(id);
}

fn never_executed(response: &GqlResponse) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}
