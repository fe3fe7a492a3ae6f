//! One operation on a socket: its results streamed as `next`/`data` messages.

use std::sync::Arc;

use async_graphql::Response as GqlResponse;
use axum::extract::ws::Message;
use serde_json::json;
use tokio::sync::mpsc;

use super::outgoing::Outgoing;
use super::protocol::{Protocol, error_message};
use crate::error::ErrorCode;
use crate::events::presence::CountGuard;
use crate::graphql;
use crate::graphql::live::{FrameWriter, LiveContext, Opened, WriteRefused};
use crate::metrics::{GaugeGuard, OperationKind};

/// One operation on a socket as the log and `/metrics` see it: counted in
/// `chatql_subscriptions_active` and logged when it starts and when it ends, however it
/// ends (a task aborted by the client's `complete` or the socket's close ends as `stopped`).
pub struct Running {
    _active: GaugeGuard,
    started: std::time::Instant,
    id: String,
    operation: OperationKind,
    user: String,
    outcome: &'static str,
    code: Option<ErrorCode>,
}

impl Running {
    /// Logs the start of operation `id` (named `name` by the client) of `user`.
    pub fn start(
        active: GaugeGuard,
        id: &str,
        operation: OperationKind,
        name: Option<&str>,
        user: String,
    ) -> Self {
        tracing::info!(
            target: "chatql::request",
            id = ?id,
            operation = %operation.as_str(),
            name = ?name.unwrap_or(""),
            user = %user,
            "subscription started"
        );
        Self {
            _active: active,
            started: std::time::Instant::now(),
            id: id.to_owned(),
            operation,
            user,
            outcome: "stopped",
            code: None,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        let duration_ms = (took.as_secs_f64() * 100_000.0).round() / 100.0;
        tracing::info!(
            target: "chatql::request",
            id = ?self.id,
            operation = %self.operation.as_str(),
            user = %self.user,
            outcome = %self.outcome,
            code = %self.code.map_or("-", ErrorCode::as_str),
            duration_ms,
            "subscription ended"
        );
    }
}

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
    /// The caller's subscription count, released when the operation ends.
    pub guard: CountGuard,
    /// Logs the end, and counts the operation as running until then.
    pub running: Running,
}

/// Runs one operation and streams its results as `next`/`data` messages, then `complete`.
/// A subscription's live events arrive rendered (once for every subscriber of the same
/// operation, see `graphql::live`): each frame wraps the shared payload text.
pub async fn run_subscription(request: async_graphql::Request, live: LiveContext, to: Delivery) {
    let Delivery {
        id,
        protocol,
        outgoing,
        finished,
        guard: _guard,
        mut running,
    } = to;
    let max_message_bytes = live.max_bytes;
    let id_text = serde_json::to_string(&id).unwrap_or_default();
    let kind = match protocol {
        Protocol::Transport => "next",
        Protocol::Legacy => "data",
    };
    let frames = Arc::new(Frames {
        // Made once: every frame is this, the payload and `}` (no formatting per delivery).
        head: format!(r#"{{"type":"{kind}","id":{id_text},"payload":"#),
        outgoing: outgoing.clone(),
    });
    let frame = |payload: &str| frames.frame(payload);
    // Boxed: opening executes the whole operation, and a subscription's future keeps the
    // size of its largest await point for as long as it lives.
    match Box::pin(graphql::live::open(request, live)).await {
        Opened::Live(mut operation) => {
            operation.write_directly(frames.clone());
            while let Some(payload) = operation.next().await {
                if outgoing.send(frame(&payload)).await.is_err() {
                    return;
                }
            }
        }
        Opened::Done(responses) => {
            let mut first = true;
            for response in responses {
                let response = graphql::with_codes(response);
                // A request refused before execution (invalid, unauthorised) is an `error`
                // message, after which the operation is over.
                if first && never_executed(&response) {
                    running.outcome = "error";
                    running.code = response.errors.first().and_then(ErrorCode::of);
                    let message = error_message(protocol, &id, response.errors);
                    let _ = outgoing
                        .send(Message::Text(message.to_string().into()))
                        .await;
                    let _ = finished.send(id);
                    return;
                }
                first = false;
                // The payload is serialised once, straight to text (bounded in size).
                let payload = graphql::response_text(&response, max_message_bytes);
                if outgoing.send(frame(&payload)).await.is_err() {
                    return;
                }
            }
        }
    }
    running.outcome = "complete";
    let complete = json!({"type": "complete", "id": id});
    let _ = outgoing
        .send(Message::Text(complete.to_string().into()))
        .await;
    let _ = finished.send(id);
}

/// One operation's frames on its socket.
struct Frames {
    head: String,
    outgoing: Outgoing,
}

impl Frames {
    fn frame(&self, payload: &str) -> Message {
        let mut text = String::with_capacity(self.head.len() + payload.len() + 1);
        text.push_str(&self.head);
        text.push_str(payload);
        text.push('}');
        Message::Text(text.into())
    }
}

/// How the chat's stage writes the operation's live events (see `events::routes`).
impl FrameWriter for Frames {
    fn try_write(&self, payload: &str) -> Result<(), WriteRefused> {
        self.outgoing
            .try_send(self.frame(payload))
            .map_err(|_| WriteRefused)
    }
}

fn never_executed(response: &GqlResponse) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}
