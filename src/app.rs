//! The application state shared by every request: database, configuration, authenticator
//! and event broker. Built once at start (or once per test server).

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::DbPool;
use crate::events::Broker;
use crate::events::presence::Presence;

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    db: DbPool,
    config: Config,
    auth: Authenticator,
    broker: Broker,
    presence: Presence,
}

impl App {
    /// Assembles the state from its parts.
    pub fn new(db: DbPool, config: Config, auth: Authenticator, broker: Broker) -> Self {
        Self {
            inner: Arc::new(AppInner {
                db,
                config,
                auth,
                broker,
                presence: Presence::default(),
            }),
        }
    }

    /// The connection pool.
    pub fn db(&self) -> &DbPool {
        &self.inner.db
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Token and admin-key checks.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The event broker; publish only after a transaction committed.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// Who is online in this process.
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }
}
