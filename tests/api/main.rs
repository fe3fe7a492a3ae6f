//! chatql's integration tests: one binary, a folder per API area with a file per topic.
//! Every test starts a real server on an ephemeral port with its own database and talks to
//! it over HTTP/WebSocket.

mod common;

mod adversarial;
mod attachments;
mod chats;
mod clients;
mod graphiql;
mod http;
mod layers;
mod limits;
mod messages;
mod operations;
mod subscriptions;
mod users;
