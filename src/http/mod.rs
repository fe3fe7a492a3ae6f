//! The axum router: GraphQL over HTTP at `/graphql` (GET for queries, POST for everything),
//! GraphQL over WebSocket at the same path, GraphiQL at `/` (its assets under `/graphiql/`),
//! `/healthz`, `/readyz` and (unless configured elsewhere or off) `/metrics`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::app::App;
use crate::config::MetricsAt;
use crate::graphql::Endpoint;

mod accept;
mod graphiql;
mod graphql;
mod media;
mod multipart;
mod observe;

use graphql::{graphql_get, graphql_post};

/// Builds the router with CORS and compression (gzip, brotli, zstd, as the client
/// accepts). Bodies are limited where they are read: `--max-body-bytes` for a GraphQL
/// request, the upload limits for files (see `multipart` and `media`). Each GraphQL
/// operation logs one line of its own (see `observe`), so there is no per-request tracing
/// layer.
pub fn router(app: App) -> Router {
    let config = app.config();
    let cors = cors_layer(&config.cors_origins);
    let metrics_here = config.metrics == MetricsAt::Api;
    let mut router = Router::new()
        .route("/", get(graphiql::index))
        .route("/graphiql/{*asset}", get(graphiql::asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if metrics_here {
        router = router.route("/metrics", get(metrics).with_state(app.clone()));
    }
    let endpoint = Endpoint::new(app);
    // Media is served as stored: compressing would break its ranges and lengths, and
    // what compresses well (text) is rare among attachments.
    let media = Router::new()
        .route("/media/{id}", get(media::original))
        .route("/media/{id}/thumbnail", get(media::thumbnail))
        .route("/media/uploads/{ticket}", put(media::put_upload))
        .with_state(endpoint.clone());
    router
        .with_state(endpoint)
        // The WebSocket upgrade counts sockets awaiting connection_init (per router, i.e.
        // per server).
        .layer(axum::Extension(crate::ws::PendingSockets::default()))
        .layer(CompressionLayer::new())
        .merge(media)
        .layer(cors)
}

/// The router of a listener of `/metrics` alone (`--metrics <address>`).
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
        .layer(CompressionLayer::new())
}

/// The Prometheus exposition, with the database pool read now.
async fn metrics(State(app): State<App>) -> Response {
    let text = app.metrics().encode(app.db().status());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
        // What GraphQL clients and tracing libraries send on their own: Apollo Client's
        // name/version, W3C trace context, Sentry, request ids. A preflight naming any other
        // header is refused.
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-admin-key"),
            header::HeaderName::from_static("apollographql-client-name"),
            header::HeaderName::from_static("apollographql-client-version"),
            header::HeaderName::from_static("apollo-require-preflight"),
            header::HeaderName::from_static("traceparent"),
            header::HeaderName::from_static("tracestate"),
            header::HeaderName::from_static("baggage"),
            header::HeaderName::from_static("sentry-trace"),
            header::HeaderName::from_static("x-request-id"),
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_RANGE,
        ])
        // What a page reading media with fetch() needs to see.
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_DISPOSITION,
            header::ETAG,
            header::ACCEPT_RANGES,
        ])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any);
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    layer.allow_origin(AllowOrigin::list(list))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Endpoint>) -> Response {
    let ready = match state.app.db().conn().await {
        Ok(mut conn) => conn.ping().await,
        Err(e) => Err(e),
    };
    match ready {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}
