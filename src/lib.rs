//! chatql: a GraphQL API server for chat and instant messaging.
//!
//! The module tree is the architecture: `config` → `db` → `domain` (services) →
//! `graphql` (schema, thin resolvers) → `http` (axum server), with `events` carrying live
//! updates from committed mutations to subscriptions.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod media;
pub mod metrics;
pub mod rate;
pub mod server;
pub mod vocabulary;
pub mod ws;
