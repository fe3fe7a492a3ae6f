//! chatql's integration tests: one binary, one module per API area. Every test starts a real
//! server on an ephemeral port with its own database and talks to it over HTTP/WebSocket.

mod common;

mod chats;
mod http;
mod layers;
mod messages;
mod subscriptions;
mod users;
