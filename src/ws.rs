//! GraphQL over WebSocket at `/graphql`.

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{FromRequestParts, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::graphql;
use crate::http::HttpState;

/// Upgrades a request to a GraphQL WebSocket.
pub async fn upgrade(state: HttpState, parts: &mut Parts) -> Response {
    let protocol = match GraphQLProtocol::from_request_parts(parts, &state).await {
        Ok(protocol) => protocol,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let app = state.app.clone();
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("authorization")
                        .or_else(|| payload.get("Authorization"))
                        .or_else(|| payload.get("token"))
                        .and_then(|v| v.as_str());
                    let caller = app.auth().caller_from(token, None)?;
                    let (caller, loaders) = graphql::request_data(&app, caller);
                    let mut data = Data::default();
                    data.insert(caller);
                    data.insert(loaders);
                    Ok(data)
                })
                .serve()
                .await
        })
}
