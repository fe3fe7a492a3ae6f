//! One operation on a socket: its results streamed as `next`/`data` messages.

use async_graphql::Response as GqlResponse;
use axum::extract::ws::Message;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use super::protocol::{Protocol, error_message};
use crate::error::assign_code;
use crate::events::presence::CountGuard;
use crate::graphql::ChatSchema;

/// Runs one operation and streams its results as `next`/`data` messages, then `complete`.
pub async fn run_subscription(
    schema: ChatSchema,
    request: async_graphql::Request,
    id: String,
    protocol: Protocol,
    outgoing: mpsc::Sender<Message>,
    finished: mpsc::UnboundedSender<String>,
    _guard: CountGuard,
) {
    let mut results = schema.execute_stream(request);
    let mut first = true;
    while let Some(mut response) = results.next().await {
        response.errors.iter_mut().for_each(assign_code);
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
        let message = json!({"type": kind, "id": id, "payload": response});
        if outgoing
            .send(Message::Text(message.to_string().into()))
            .await
            .is_err()
        {
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
