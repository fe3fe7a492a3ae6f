//! The application state shared by every request: database, configuration, authenticator
//! and event broker. Built once at start (or once per test server).

use std::sync::Arc;

use crate::auth::generations::TokenGenerations;
use crate::auth::{Authenticator, Caller};
use crate::config::Config;
use crate::db::DbPool;
use crate::error::AppResult;
use crate::events::presence::Presence;
use crate::events::typing::TypingTimers;
use crate::events::{Broker, Tx};
use crate::media::Media;
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use tokio_util::sync::CancellationToken;

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    db: DbPool,
    config: Config,
    auth: Authenticator,
    tokens: TokenGenerations,
    broker: Broker,
    presence: Presence,
    typing: TypingTimers,
    shutdown: CancellationToken,
    rate: RateLimiter,
    metrics: Metrics,
    media: Media,
}

impl App {
    /// Assembles the state from its parts.
    pub fn new(
        db: DbPool,
        config: Config,
        auth: Authenticator,
        broker: Broker,
        metrics: Metrics,
        shutdown: CancellationToken,
        media: Media,
    ) -> Self {
        let rate = RateLimiter::new(config.mutations_per_minute, metrics.clone());
        Self {
            inner: Arc::new(AppInner {
                db,
                config,
                auth,
                tokens: TokenGenerations::default(),
                broker,
                presence: Presence::default(),
                typing: TypingTimers::default(),
                shutdown,
                rate,
                metrics,
                media,
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

    /// Whether a signed token's user exists and the token is of their current generation.
    pub fn tokens(&self) -> &TokenGenerations {
        &self.inner.tokens
    }

    /// Checks a caller the token of which verified: `UNAUTHENTICATED` when its user is
    /// gone or its tokens were revoked.
    pub async fn check_caller(&self, caller: &Caller) -> AppResult<()> {
        self.inner.tokens.check(&self.inner.db, caller).await
    }

    /// The event broker.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// Runs `body` in one transaction; the events it emits are published once it has
    /// committed (see [`Broker::transaction`]). Every mutation that stores something runs
    /// through here.
    pub async fn write<T>(
        &self,
        body: impl AsyncFnOnce(&mut Tx<'_>) -> AppResult<T>,
    ) -> AppResult<T> {
        self.inner.broker.transaction(&self.inner.db, body).await
    }

    /// Who is online in this process.
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Typing indicators and their expiry.
    pub fn typing(&self) -> &TypingTimers {
        &self.inner.typing
    }

    /// Cancelled when the server shuts down: long-lived work (WebSockets, the event
    /// bridge) watches it, since axum's graceful shutdown does not end them.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// This server's metrics (what `/metrics` shows).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Attachment storage, URL signing and thumbnailing.
    pub fn media(&self) -> &Media {
        &self.inner.media
    }

    /// The per-user mutation rate limit.
    pub fn rate(&self) -> &RateLimiter {
        &self.inner.rate
    }
}
