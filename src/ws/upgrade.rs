//! The HTTP side of a WebSocket: the subprotocol, admission of sockets awaiting
//! `connection_init` (429 past the caps), and the socket's buffer and size limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::Connection;
use super::pending::{PendingGuard, PendingSockets, Refusal};
use super::protocol::Protocol;
use crate::graphql::Endpoint;
use crate::metrics::Limit;
use crate::rate::retry_after_secs;

/// Read buffer of one socket, allocated when it opens: clients send a few small messages
/// (a bigger one grows the buffer for as long as it takes to read it).
const READ_BUFFER: usize = 2 * 1024;

/// Frames written are gathered up to this before they go to the socket (each is flushed
/// as sent anyway); the buffer grows to the largest frame only as needed.
const WRITE_BUFFER: usize = 8 * 1024;

/// Upgrades a request to a GraphQL WebSocket.
pub async fn upgrade(state: Endpoint, parts: &mut Parts) -> Response {
    let Some(protocol) = Protocol::from_header(parts) else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must name graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    let pending = match admit_pending(&state, parts) {
        Ok(pending) => pending,
        Err(NotAdmitted::Full(refusal)) => {
            state.app.metrics().rate_limited(Limit::WsPending);
            let retry_after = retry_after_secs(refusal.retry_after);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, HeaderValue::from(retry_after))],
                refusal.refused.message(),
            )
                .into_response();
        }
        Err(NotAdmitted::Unwired) => {
            tracing::error!("the router has no PendingSockets extension: WebSockets refused");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let max_message = state.app.config().ws_max_message_bytes;
    match WebSocketUpgrade::from_request_parts(parts, &state).await {
        // tungstenite's default 128 KiB read and write buffers per socket dominate memory
        // at thousands of subscribers; messages here are small and each is flushed as sent.
        // Its default 16 MiB frames and 64 MiB messages would be buffered (and parsed)
        // before anything else is checked, even before `connection_init`.
        Ok(upgrade) => upgrade
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_message_size(max_message)
            .max_frame_size(max_message)
            .protocols([protocol.name()])
            .on_upgrade(move |socket| Connection::new(state, protocol, pending).run(socket)),
        Err(rejection) => rejection.into_response(),
    }
}

/// Why a socket is refused before the upgrade.
enum NotAdmitted {
    /// Its peer address or the server already has the most sockets awaiting init.
    Full(Refusal),
    /// The router was served without the counts (a wiring bug, see `http::router`).
    Unwired,
}

/// Counts the socket as awaiting `connection_init`, unless its peer address or the server
/// already has the most allowed.
fn admit_pending(state: &Endpoint, parts: &Parts) -> Result<PendingGuard, NotAdmitted> {
    let Some(pending) = parts.extensions.get::<PendingSockets>() else {
        return Err(NotAdmitted::Unwired);
    };
    // Without the peer (a router served without connect info) every socket shares one
    // address, which errs towards refusing.
    let address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| {
            peer.ip()
        });
    let config = state.app.config();
    let init_timeout = Duration::from_secs(config.ws_init_timeout_secs);
    pending
        .admit(
            address,
            config.ws_max_pending_per_ip,
            config.ws_max_pending,
            init_timeout,
        )
        .map_err(|refusal| {
            tracing::debug!(%address, ?refusal, "WebSocket refused before connection_init");
            NotAdmitted::Full(refusal)
        })
}
