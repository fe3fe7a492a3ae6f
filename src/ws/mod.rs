//! GraphQL over WebSocket at `/graphql`, speaking both `graphql-transport-ws` (the
//! `graphql-ws` client) and the legacy `graphql-ws` protocol (subscriptions-transport-ws),
//! chosen by `Sec-WebSocket-Protocol`.
//!
//! Written here rather than taken from async-graphql so the connection follows the
//! protocols' close codes (4400/4401/4403/4408/4409/4429), authenticates from the
//! `connection_init` payload, sends keep-alive pings, enforces per-user caps, ends when the
//! token expires or the server shuts down, and tears down everything it held on close.
//!
//! Memory per socket is bounded in bytes: client messages by `--ws-max-message-bytes`
//! (1009), sockets awaiting `connection_init` per address and in all (HTTP 429), the
//! outgoing queue by `--ws-max-outgoing-bytes` (1013); a client silent for two keep-alive
//! intervals is dropped (4408).

use std::collections::HashMap;
use std::time::Duration;

use async_graphql::ServerError;
use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::app::App;
use crate::auth::Caller;
use crate::error::{ErrorCode, request_error};
use crate::events::presence::CountGuard;
use crate::graphql::documents::ParsedDocuments;
use crate::graphql::live::LiveContext;
use crate::graphql::{self, ChatSchema, Endpoint};
use crate::metrics::{GaugeGuard, OperationKind};
use crate::vocabulary::jitter;

mod outgoing;
mod pending;
mod protocol;
mod subscription;
mod upgrade;

use outgoing::{Outgoing, Queued};
use pending::PendingGuard;
pub use pending::PendingSockets;
use protocol::{ClientMessage, Protocol, SubscribePayload, close, close_message, error_message};
use subscription::{Delivery, Running, run_subscription};
pub use upgrade::upgrade;

/// How long the close frame (and the frames queued before it) may take to leave before the
/// socket is dropped anyway: a client that does not read must not hold its task.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the connection ends.
struct Closing(u16, String);

/// One WebSocket connection's state.
struct Connection {
    app: App,
    schema: ChatSchema,
    documents: ParsedDocuments,
    protocol: Protocol,
    /// Set by a successful `connection_init`.
    caller: Option<Caller>,
    /// Changes when the caller's tokens may have been revoked (or their user deleted).
    revocations: Option<watch::Receiver<u64>>,
    socket_guard: Option<CountGuard>,
    /// Counts this socket as awaiting `connection_init`; dropped once it is done.
    pending: Option<PendingGuard>,
    subscriptions: HashMap<String, JoinHandle<()>>,
    outgoing: Outgoing,
    outgoing_rx: Option<mpsc::UnboundedReceiver<Queued>>,
    /// Subscription tasks report their ids here when they finish on their own.
    finished_tx: mpsc::UnboundedSender<String>,
    finished_rx: mpsc::UnboundedReceiver<String>,
    /// Counts the socket in `chatql_ws_connections` while it lives.
    _open: GaugeGuard,
}

/// Subscription frames buffered per connection; a full buffer holds subscription tasks
/// back, so a slow client makes its own feeds lag (and get `ResyncRequired`), not the
/// server. The queue is bounded in bytes too (`--ws-max-outgoing-bytes`).
const OUTGOING_BUFFER: usize = 64;

impl Connection {
    fn new(state: Endpoint, protocol: Protocol, pending: PendingGuard) -> Self {
        let (outgoing, outgoing_rx) =
            Outgoing::channel(OUTGOING_BUFFER, state.app.config().ws_max_outgoing_bytes);
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let open = state.app.metrics().ws_connection();
        Self {
            app: state.app,
            schema: state.schema,
            documents: state.documents,
            protocol,
            caller: None,
            revocations: None,
            socket_guard: None,
            pending: Some(pending),
            subscriptions: HashMap::new(),
            outgoing,
            outgoing_rx: Some(outgoing_rx),
            finished_tx,
            finished_rx,
            _open: open,
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (sink, mut incoming) = socket.split();
        let Some(outgoing_rx) = self.outgoing_rx.take() else {
            return;
        };
        // One writer, fed in order through the bounded queue (subscription frames that
        // find it empty are written by their own tasks).
        let mut writer = tokio::spawn(outgoing::write_all(
            sink,
            outgoing_rx,
            self.outgoing.writer_side(),
        ));

        let config = self.app.config().clone();
        let init_deadline = Instant::now() + Duration::from_secs(config.ws_init_timeout_secs);
        let keepalive_every = Duration::from_secs(config.ws_keepalive_secs.max(1));
        // Two intervals: one ping may cross a message from the client in flight.
        let silence_limit = keepalive_every * 2;
        // The first ping after half to one interval, at random: sockets that connect
        // together (clients reconnecting after a restart) would otherwise all be pinged
        // at the same instant, every interval, and delay everyone's events then.
        let first_ping = Instant::now() + jitter::spread(keepalive_every, 0.5, 1.0);
        let mut keepalive = tokio::time::interval_at(first_ping, keepalive_every);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let shutdown = self.app.shutdown().clone();
        let outgoing = self.outgoing.clone();

        let closing = loop {
            let expiry = match &self.caller {
                Some(Caller::User { expires_at, .. }) => {
                    let left = (*expires_at - chrono::Utc::now())
                        .to_std()
                        .unwrap_or_default();
                    Some(tokio::time::Instant::now() + left)
                }
                _ => None,
            };
            tokio::select! {
                frame = incoming.next() => {
                    if let Some(Ok(_)) = &frame {
                        // Any frame, a WebSocket pong included, shows the client alive.
                        last_heard = Instant::now();
                    }
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None => break None,
                        Some(Err(e)) if is_too_big(&e) => {
                            break Some(Closing(close::MESSAGE_TOO_BIG, format!(
                                "message too big: at most {} bytes", config.ws_max_message_bytes,
                            )));
                        }
                        Some(Err(_)) => break None,
                        Some(Ok(Message::Binary(_))) => {
                            break Some(Closing(close::BAD_REQUEST, "binary frames are not supported".into()));
                        }
                        Some(Ok(_)) => continue, // transport-level ping/pong
                    };
                    match serde_json::from_str::<ClientMessage>(text.as_str()) {
                        Ok(message) => {
                            // Boxed: the connection's future keeps the size of its largest
                            // await point for the socket's life.
                            if let Some(closing) = Box::pin(self.handle(message)).await {
                                break Some(closing);
                            }
                        }
                        Err(e) => break Some(Closing(close::BAD_REQUEST, format!("invalid message: {e}"))),
                    }
                }
                Some(id) = self.finished_rx.recv() => {
                    self.subscriptions.remove(&id);
                }
                changed = async {
                    match self.revocations.as_mut() {
                        Some(revocations) => revocations.changed().await,
                        None => std::future::pending().await,
                    }
                }, if self.revocations.is_some() => {
                    if changed.is_err() {
                        self.revocations = None;
                    }
                    if let Some(refused) = Box::pin(self.check_caller_again()).await {
                        break Some(refused);
                    }
                }
                () = tokio::time::sleep_until(init_deadline), if self.caller.is_none() => {
                    break Some(Closing(close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
                }
                () = async { if let Some(at) = expiry { tokio::time::sleep_until(at).await } }, if expiry.is_some() => {
                    // 4403, not 4401: graphql-ws gives up on 4401 but retries 4403, so a
                    // client whose `connectionParams` fetches a fresh token reconnects.
                    break Some(Closing(close::FORBIDDEN, "token expired".into()));
                }
                _ = keepalive.tick(), if self.caller.is_some() => {
                    if last_heard.elapsed() >= silence_limit {
                        break Some(Closing(close::KEEPALIVE_TIMEOUT, format!(
                            "keep-alive timeout: nothing received for {} s",
                            silence_limit.as_secs(),
                        )));
                    }
                    match self.protocol {
                        Protocol::Transport => self.send(json!({"type": "ping"})),
                        Protocol::Legacy => {
                            // Legacy clients do not answer `ka`; their WebSocket answers a
                            // ping frame on its own.
                            self.send(json!({"type": "ka"}));
                            let _ = self.outgoing.send_now(Message::Ping(Default::default()));
                        }
                    }
                }
                () = outgoing.overflowed() => {
                    break Some(Closing(close::TRY_AGAIN_LATER, format!(
                        "too far behind: over {} bytes queued for this socket",
                        outgoing.max_bytes(),
                    )));
                }
                () = shutdown.cancelled() => {
                    break Some(Closing(close::GOING_AWAY, "server shutting down".into()));
                }
            }
        };

        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
        // Released before the close frame goes, so a client that sees the close can
        // connect again at once.
        drop(self.pending.take());
        if let Some(Closing(code, reason)) = closing {
            let _ = self.outgoing.send_close(close_message(code, &reason));
        }
        // With every sender gone the writer ends after the close frame (or once the queue
        // is empty when the client closed first).
        drop(self.outgoing);
        drop(outgoing);
        if let Some(Caller::User { id, .. }) = &self.caller {
            Box::pin(crate::domain::users::record_seen(&self.app, *id)).await;
        }
        drop(self.socket_guard);
        // The closing handshake: wait for the client's close (or its end) after ours, so
        // the socket is not dropped under frames it has yet to read. Bounded, so a client
        // that reads nothing cannot keep the writer and what it queued.
        let handshake = async {
            let _ = (&mut writer).await;
            while let Some(Ok(frame)) = incoming.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        };
        if Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, handshake))
            .await
            .is_err()
        {
            writer.abort();
        }
    }

    /// Queues a message of the connection itself without waiting. It fails only when the
    /// writer is gone (the socket is closing anyway) or the queue is over its byte budget,
    /// which the loop sees through `overflowed()` and closes on.
    fn send(&self, message: Value) {
        let _ = self
            .outgoing
            .send_now(Message::Text(message.to_string().into()));
    }

    /// Handles one client message; `Some` closes the connection.
    async fn handle(&mut self, message: ClientMessage) -> Option<Closing> {
        match message {
            ClientMessage::ConnectionInit { payload } => {
                self.init(payload.unwrap_or(Value::Null)).await
            }
            ClientMessage::Ping { payload } => {
                let mut pong = json!({"type": "pong"});
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                self.send(pong);
                None
            }
            ClientMessage::Pong {} => None,
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, payload).await,
            ClientMessage::Complete { id } => {
                if let Some(task) = self.subscriptions.remove(&id) {
                    task.abort();
                    if self.protocol == Protocol::Legacy {
                        self.send(json!({"type": "complete", "id": id}));
                    }
                }
                None
            }
            ClientMessage::ConnectionTerminate {} => {
                Some(Closing(close::NORMAL, "terminated".into()))
            }
        }
    }

    async fn init(&mut self, payload: Value) -> Option<Closing> {
        if self.caller.is_some() {
            return Some(Closing(
                close::TOO_MANY,
                "Too many initialisation requests".into(),
            ));
        }
        let token = ["authorization", "Authorization", "token"]
            .iter()
            .find_map(|key| payload.get(*key).and_then(Value::as_str));
        let caller = match token {
            Some(token) => self.app.auth().caller_from(Some(token), None),
            None => Err(crate::error::AppError::Unauthenticated(
                "connection_init needs `authorization: \"Bearer <token>\"` or `token`".into(),
            )),
        };
        // Watch for revocations before checking, so one committed in between still wakes
        // the socket.
        if let Ok(Caller::User { id, .. }) = &caller {
            self.revocations = Some(self.app.tokens().watch(*id));
        }
        let caller = match caller {
            Ok(caller) => self.app.check_caller(&caller).await.map(|()| caller),
            Err(e) => Err(e),
        };
        let caller = match caller {
            Ok(caller @ Caller::User { .. }) => caller,
            Ok(_) => return self.refuse("a user token is required"),
            Err(e) => return self.refuse(&e.public_message()),
        };
        if let Caller::User { id, .. } = &caller {
            let max = self.app.config().max_sockets_per_user;
            match self.app.presence().sockets.acquire(id.0, max) {
                Some(guard) => self.socket_guard = Some(guard),
                None => {
                    return Some(Closing(
                        close::TOO_MANY,
                        format!("at most {max} open connections per user"),
                    ));
                }
            }
            crate::domain::users::record_seen(&self.app, *id).await;
        }
        self.caller = Some(caller);
        // Authenticated: from now on the per-user caps bound this socket.
        self.pending = None;
        self.send(json!({"type": "connection_ack"}));
        None
    }

    /// After a possible revocation: closes with 4403 (and its feeds with it) when the
    /// caller's user is gone or the token revoked.
    async fn check_caller_again(&self) -> Option<Closing> {
        let caller = self.caller.as_ref()?;
        match self.app.check_caller(caller).await {
            Ok(()) => None,
            Err(e) => Some(Closing(close::FORBIDDEN, e.public_message())),
        }
    }

    fn refuse(&self, reason: &str) -> Option<Closing> {
        if self.protocol == Protocol::Legacy {
            self.send(json!({"type": "connection_error", "payload": {"message": reason}}));
        }
        Some(Closing(close::FORBIDDEN, reason.to_owned()))
    }

    async fn subscribe(&mut self, id: String, payload: SubscribePayload) -> Option<Closing> {
        let Some(caller) = self.caller.clone() else {
            return Some(Closing(close::UNAUTHORIZED, "Unauthorized".into()));
        };
        if self.subscriptions.contains_key(&id) {
            return Some(Closing(
                close::DUPLICATE_ID,
                format!("Subscriber for {id} already exists"),
            ));
        }
        let max = self.app.config().max_subscriptions_per_user;
        let guard = match &caller {
            Caller::User { id: user, .. } => self.app.presence().subscriptions.acquire(user.0, max),
            _ => None,
        };
        let Some(guard) = guard else {
            let error = request_error(
                format!("at most {max} open subscriptions per user"),
                ErrorCode::LimitExceeded,
            );
            self.send(self.error_message(&id, vec![error]));
            return None;
        };
        let mut request = async_graphql::Request::new(payload.query);
        if let Some(name) = payload.operation_name {
            request = request.operation_name(name);
        }
        if let Some(variables @ Value::Object(_)) = payload.variables {
            request = request.variables(async_graphql::Variables::from_json(variables));
        }
        let admitted = graphql::admission::admit(&mut request, &self.documents, self.app.config())
            .and_then(|op| graphql::check_rate_limit(&self.app, &caller, op.as_ref()).map(|()| op));
        let operation = match admitted {
            Ok(operation) => operation.map(|op| op.ty),
            Err(refused) => {
                tracing::info!(
                    target: "chatql::request",
                    id = ?id,
                    user = %caller.log_label(),
                    code = %ErrorCode::of(&refused).map_or("-", ErrorCode::as_str),
                    "subscription refused"
                );
                self.send(self.error_message(&id, vec![refused]));
                return None;
            }
        };
        // Named from the document only when admitted (then it is parsed already).
        let name = match operation {
            Some(_) => graphql::operation_name(&mut request),
            None => request.operation_name.clone(),
        };
        let running = Running::start(
            self.app.metrics().subscription(),
            &id,
            OperationKind::from(operation),
            name.as_deref(),
            caller.log_label(),
        );
        let live = LiveContext {
            app: self.app.clone(),
            schema: self.schema.clone(),
            documents: self.documents.clone(),
            caller,
            operation,
            max_bytes: self.app.config().max_response_bytes,
        };
        let task = tokio::spawn(run_subscription(
            request,
            live,
            Delivery {
                id: id.clone(),
                protocol: self.protocol,
                outgoing: self.outgoing.clone(),
                finished: self.finished_tx.clone(),
                guard,
                running,
            },
        ));
        self.subscriptions.insert(id, task);
        None
    }

    fn error_message(&self, id: &str, errors: Vec<ServerError>) -> Value {
        error_message(self.protocol, id, errors)
    }
}

/// Whether a read failed because the client's frame or message passed
/// `--ws-max-message-bytes`. tungstenite reports it as `Error::Capacity`, which axum boxes
/// and chatql cannot name (tungstenite is not a dependency of its own), so its text is
/// matched; `limits.rs` in the tests fails if that text changes.
fn is_too_big(error: &axum::Error) -> bool {
    error.to_string().starts_with("Space limit exceeded")
}
