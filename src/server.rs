//! Start-up and serving: secrets, pool, migrations, the listener and graceful shutdown.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::Authenticator;
use crate::config::{Config, DatabaseTarget, MetricsAt, load_or_create_secret};
use crate::db::DbPool;
use crate::events::Broker;
use crate::media::signing::UrlSigner;
use crate::media::{Media, MediaStore};
use crate::metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A secret file could not be read or written.
    #[error("secret file {path}: {source}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    /// The listener could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The configured secret, or one generated once and kept in the data dir.
fn secret(
    config: &Config,
    given: Option<&String>,
    file: &str,
    what: &str,
) -> Result<String, StartError> {
    if let Some(value) = given {
        return Ok(value.clone());
    }
    let path = config.secret_path(file);
    let (value, generated) = load_or_create_secret(&path).map_err(|source| StartError::Secret {
        path: path.display().to_string(),
        source,
    })?;
    if generated {
        tracing::warn!(
            path = %path.display(),
            "no {what} configured: generated one and stored it; set it explicitly in production"
        );
    }
    Ok(value)
}

/// Makes PostgreSQL's message search use the configured text search configuration,
/// rebuilding its column when the configuration changed (logged: it takes a while).
pub async fn use_search_config(db: &DbPool, name: &str) -> Result<(), crate::db::DbError> {
    if let Some(replaced) = crate::db::search::use_text_search_config(db, name).await? {
        tracing::info!(from = %replaced, to = %name, "rebuilt the message search column");
    }
    Ok(())
}

/// Opens the database, applies migrations and assembles the application state.
pub async fn build_app(config: Config) -> Result<App, StartError> {
    config.validate().map_err(StartError::Config)?;
    let jwt_secret = secret(
        &config,
        config.jwt_secret.as_ref(),
        "jwt_secret",
        "JWT secret",
    )?;
    let admin_key = secret(&config, config.admin_key.as_ref(), "admin_key", "admin key")?;
    let db = DbPool::connect(&config.database(), config.pool_size)?;
    let applied = db.run_migrations().await?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    use_search_config(&db, &config.storage.search_config).await?;
    let shutdown = CancellationToken::new();
    let metrics = Metrics::new();
    let broker = match config.database() {
        // Instances share one PostgreSQL and fan events out to each other through it.
        DatabaseTarget::Postgres(url) => crate::events::pg::bridged_broker(
            config.event_buffer,
            metrics.clone(),
            db.clone(),
            url,
            shutdown.clone(),
        ),
        DatabaseTarget::Sqlite(..) => Broker::new(config.event_buffer, metrics.clone()),
    };
    let auth = Authenticator::new(&jwt_secret, &admin_key);
    let store = MediaStore::open(&config.media_store()).map_err(StartError::Config)?;
    tracing::info!(store = %store.describe(), "attachment store ready");
    let signer =
        UrlSigner::new(&jwt_secret, config.media.media_url_ttl_secs).map_err(StartError::Config)?;
    let app = App::new(
        db,
        config,
        auth,
        broker,
        metrics,
        shutdown,
        Media::new(store, signer),
    );
    tokio::spawn(crate::domain::users::follow_revocations(app.clone()));
    tokio::spawn(crate::domain::attachments::sweep_periodically(app.clone()));
    Ok(app)
}

/// Serves `app` on `listener` until `app.shutdown()` is cancelled; in-flight HTTP requests
/// finish, WebSocket connections are closed with 1001 (going away).
pub async fn serve(app: App, listener: TcpListener) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let shutdown = app.shutdown().clone();
    if let MetricsAt::Bind(address) = app.config().metrics {
        // Bound before the API serves, so a taken port fails the start.
        let metrics = TcpListener::bind(address).await?;
        let router = crate::http::metrics_router(app.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(metrics, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "serving /metrics failed");
            }
        });
    }
    let router = crate::http::router(app);
    // Live events are small writes that must leave at once, not wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // The peer address: the WebSocket upgrade counts sockets awaiting connection_init per
    // address.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// Binds the configured address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
