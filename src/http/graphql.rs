//! GraphQL over HTTP at `/graphql`, following the GraphQL-over-HTTP spec: the response
//! media type follows `Accept` and its `q` values (`application/graphql-response+json` or
//! `application/json`; a GET preferring `text/html` is a browser and gets GraphiQL),
//! requests that never reach execution (unparsable, invalid) are 400 under the former,
//! mutations over GET are 405. A WebSocket upgrade on the same path goes to [`crate::ws`].

use async_graphql::parser::types::OperationType;
use async_graphql::{ServerError, Variables};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::observe::Observed;
use crate::app::App;
use crate::auth::Caller;
use crate::error::{ErrorCode, request_error};
use crate::graphql::persisted::PersistedQueryError;
use crate::graphql::{self, Endpoint};

use super::accept::Accept;
use super::{graphiql, multipart};
use crate::graphql::attachments::ReceivedUploads;

/// The media type the GraphQL-over-HTTP spec defines for responses.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";
/// The GraphQL multipart request spec's media type (requests with files).
const MULTIPART_FORM_DATA: &str = "multipart/form-data";

/// Which media type the response uses, from the request's `Accept` header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ResponseType {
    GraphqlResponseJson,
    Json,
}

impl ResponseType {
    fn content_type(self) -> &'static str {
        match self {
            ResponseType::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            ResponseType::Json => "application/json; charset=utf-8",
        }
    }

    /// Picks the acceptable type of highest quality (`q`; `q=0` is "not acceptable"), ties
    /// going to the one listed first. Wildcards (`*/*`, `application/*`) give the legacy
    /// `application/json`, which every client understands, as does a missing header. `None`
    /// when nothing the server speaks is acceptable.
    fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = accept_header(headers) else {
            return Some(ResponseType::Json);
        };
        let json = accept.acceptability(APPLICATION_JSON, true);
        let graphql_response = accept.acceptability(GRAPHQL_RESPONSE_JSON, true);
        match (graphql_response, json) {
            (Some(preferred), _) if preferred.beats(json) => {
                Some(ResponseType::GraphqlResponseJson)
            }
            // Including both from one wildcard range (neither beats the other).
            (_, Some(_)) => Some(ResponseType::Json),
            _ => None,
        }
    }

    /// Whether a GET is a browser opening the page: `text/html` named (not just through
    /// `*/*`) and preferred, by quality then order, to both JSON types. Programs (curl,
    /// GraphQL clients, the graphql-http audits) never ask for HTML first.
    fn prefers_html(headers: &HeaderMap) -> bool {
        let Some(accept) = accept_header(headers) else {
            return false;
        };
        let Some(html) = accept.acceptability("text/html", false) else {
            return false;
        };
        [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON]
            .iter()
            .all(|media| html.beats(accept.acceptability(media, true)))
    }
}

/// Every `Accept` header of the request, as one list; `None` without one.
fn accept_header(headers: &HeaderMap) -> Option<Accept> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| Accept::parse(&values.join(",")))
}

/// The request parameters of GraphQL over HTTP.
#[derive(Debug, Default, Deserialize)]
struct GraphqlParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<serde_json::Value>,
    extensions: Option<serde_json::Value>,
}

/// A request the server refuses before running it (status code + message).
struct Rejection {
    status: StatusCode,
    message: String,
    code: ErrorCode,
    allow: Option<&'static str>,
    /// `Retry-After`, in seconds, of a rate-limited refusal.
    retry_after: Option<u64>,
}

impl Rejection {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            code: ErrorCode::BadUserInput,
            allow: None,
            retry_after: None,
        }
    }

    /// The GraphQL response body telling why.
    fn body(&self) -> String {
        let error = request_error(self.message.clone(), self.code);
        serde_json::json!({ "errors": [error] }).to_string()
    }

    fn into_response(self, response_type: ResponseType) -> Response {
        let mut response = typed(self.status, self.body(), response_type);
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub async fn graphql_get(
    State(state): State<Endpoint>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    if is_websocket_upgrade(&parts.headers) {
        return crate::ws::upgrade(state, &mut parts).await;
    }
    let mut response = if ResponseType::prefers_html(&parts.headers) {
        // A browser opening the endpoint gets GraphiQL, with a `query` of the URL in its
        // editor rather than run: a link cannot run anything on the viewer's behalf.
        graphiql::page()
    } else if let Some(response_type) = ResponseType::negotiate(&parts.headers) {
        let params = match Query::<RawParams>::from_request_parts(&mut parts, &()).await {
            Ok(Query(raw)) => raw.parse(),
            Err(e) => Err(Rejection::bad_request(format!("invalid query string: {e}"))),
        };
        let outcome = match params {
            Ok(params) => {
                execute(
                    &state,
                    &parts.headers,
                    params,
                    Method::GET,
                    response_type,
                    None,
                )
                .await
            }
            Err(rejection) => Err(rejection),
        };
        respond(outcome, response_type)
    } else {
        not_acceptable()
    };
    // The same URL answers HTML or JSON by `Accept`: caches must keep them apart.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

pub async fn graphql_post(
    State(state): State<Endpoint>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let Some(response_type) = ResponseType::negotiate(&headers) else {
        return not_acceptable();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (body, uploads) = match media.as_str() {
        APPLICATION_JSON => {
            let limit = state.app.config().max_body_bytes;
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(value) => (value, None),
                    Err(e) => {
                        let refused = Rejection::bad_request(format!("invalid JSON body: {e}"));
                        return refused.into_response(response_type);
                    }
                },
                Err(_) => {
                    return (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the request body is larger than the limit of {limit} bytes"),
                    )
                        .into_response();
                }
            }
        }
        MULTIPART_FORM_DATA => {
            match receive_multipart(&state, &headers, content_type, body).await {
                Ok(received) => (received.operations, Some(received.uploads)),
                Err(refused) => return refused.into_response(response_type),
            }
        }
        _ => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "send GraphQL requests as `{APPLICATION_JSON}` (or `{MULTIPART_FORM_DATA}` \
                     with files, the GraphQL multipart request spec)"
                ),
            )
                .into_response();
        }
    };
    let uploads = uploads.as_ref();
    let params = match body {
        serde_json::Value::Array(batch) => {
            return execute_batch(&state, &headers, batch, response_type, uploads).await;
        }
        value => params_of(value),
    };
    let outcome = match params {
        Ok(params) => {
            execute(
                &state,
                &headers,
                params,
                Method::POST,
                response_type,
                uploads,
            )
            .await
        }
        Err(rejection) => Err(rejection),
    };
    respond(outcome, response_type)
}

/// Receives a multipart request's files (see `super::multipart`), for a user only (files
/// are stored before execution: an anonymous or admin request has no one to own them),
/// after checking its declared length against the limit.
async fn receive_multipart(
    state: &Endpoint,
    headers: &HeaderMap,
    content_type: &str,
    body: axum::body::Body,
) -> Result<multipart::Received, Rejection> {
    let max = multipart::max_request_bytes(&state.app);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(Rejection {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the request is larger than the limit of {max} bytes"),
            code: ErrorCode::LimitExceeded,
            allow: None,
            retry_after: None,
        });
    }
    let caller = match caller_from_headers(&state.app, headers).await {
        Ok(caller) => caller,
        Err(e) => return Err(Rejection::from(multipart::Refused::from(e))),
    };
    let user = caller
        .user_id()
        .map_err(|e| Rejection::from(multipart::Refused::from(e)))?;
    multipart::receive(&state.app, user, content_type, body)
        .await
        .map_err(Rejection::from)
}

impl From<multipart::Refused> for Rejection {
    fn from(refused: multipart::Refused) -> Self {
        Self {
            status: refused.status,
            message: refused.message,
            code: refused.code,
            allow: None,
            retry_after: refused.retry_after,
        }
    }
}

/// The HTTP response of one request's outcome, in the negotiated media type.
fn respond(
    outcome: Result<(StatusCode, String), Rejection>,
    response_type: ResponseType,
) -> Response {
    match outcome {
        Ok((status, body)) if status == StatusCode::TOO_MANY_REQUESTS => {
            let retry_after = retry_after_of(&body);
            let mut response = typed(status, body, response_type);
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        Ok((status, body)) => typed(status, body, response_type),
        Err(rejection) => rejection.into_response(response_type),
    }
}

/// The seconds a refused request's error tells the client to wait
/// (`extensions.retryAfterSeconds`, see `graphql::check_rate_limit`): `Retry-After` says
/// the same. Read back from the (short) body of a 429, the only answer that has it.
fn retry_after_of(body: &str) -> Option<u64> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    body.pointer("/errors/0/extensions")?
        .get(graphql::RETRY_AFTER_EXTENSION)?
        .as_u64()
}

/// A response with the negotiated GraphQL media type.
fn typed(status: StatusCode, body: String, response_type: ResponseType) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, response_type.content_type())],
        body,
    )
        .into_response()
}

/// Most operations in one batched request.
const MAX_BATCH: usize = 16;

/// One request of a POST body (an object).
fn params_of(value: serde_json::Value) -> Result<GraphqlParams, Rejection> {
    match value {
        serde_json::Value::Object(map) => {
            serde_json::from_value::<GraphqlParams>(serde_json::Value::Object(map))
                .map_err(|e| Rejection::bad_request(format!("invalid request: {e}")))
        }
        _ => Err(Rejection::bad_request(
            "the request body must be a JSON object (or an array of them)",
        )),
    }
}

/// A batch (a JSON array of requests, as Apollo's and urql's batching links send): each
/// runs on its own, in order — authenticated, admitted and rate limited like a request of
/// its own — and the answer is the array of their results, 200 whatever each says.
async fn execute_batch(
    state: &Endpoint,
    headers: &HeaderMap,
    batch: Vec<serde_json::Value>,
    response_type: ResponseType,
    uploads: Option<&ReceivedUploads>,
) -> Response {
    if batch.is_empty() || batch.len() > MAX_BATCH {
        let refused = Rejection::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} operations, not {}",
            batch.len()
        ));
        return refused.into_response(response_type);
    }
    let mut results = Vec::with_capacity(batch.len());
    for item in batch {
        let result = match params_of(item) {
            Ok(params) => {
                execute(state, headers, params, Method::POST, response_type, uploads).await
            }
            Err(refused) => Err(refused),
        };
        results.push(match result {
            Ok((_, body)) => body,
            Err(refused) => refused.body(),
        });
    }
    typed(
        StatusCode::OK,
        format!("[{}]", results.join(",")),
        response_type,
    )
}

fn not_acceptable() -> Response {
    (
        StatusCode::NOT_ACCEPTABLE,
        format!("accept `{GRAPHQL_RESPONSE_JSON}` or `{APPLICATION_JSON}`"),
    )
        .into_response()
}

/// GET parameters arrive as strings; `variables` and `extensions` are JSON-encoded.
#[derive(Debug, Deserialize)]
struct RawParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl RawParams {
    fn parse(self) -> Result<GraphqlParams, Rejection> {
        let json =
            |name: &str, text: Option<String>| -> Result<Option<serde_json::Value>, Rejection> {
                match text.filter(|t| !t.is_empty()) {
                    None => Ok(None),
                    Some(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
                        Rejection::bad_request(format!("`{name}` is not valid JSON: {e}"))
                    }),
                }
            };
        Ok(GraphqlParams {
            query: self.query,
            operation_name: self.operation_name,
            variables: json("variables", self.variables)?,
            extensions: json("extensions", self.extensions)?,
        })
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The caller named by the request's headers: a token must verify and its user exist
/// with the token's generation (a deleted user's or revoked token is `UNAUTHENTICATED`).
pub(super) async fn caller_from_headers(
    app: &App,
    headers: &HeaderMap,
) -> Result<Caller, crate::error::AppError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let caller = app
        .auth()
        .caller_from(text(header::AUTHORIZATION.as_str()), text("x-admin-key"))?;
    app.check_caller(&caller).await?;
    Ok(caller)
}

/// The status of a request refused before execution, from its error's code.
fn refused_status(error: &ServerError) -> StatusCode {
    ErrorCode::of(error)
        .and_then(|code| StatusCode::from_u16(code.refused_status()).ok())
        .unwrap_or(StatusCode::BAD_REQUEST)
}

/// Runs one operation, recorded in the metrics and logged on one line (see `observe`).
async fn execute(
    state: &Endpoint,
    headers: &HeaderMap,
    params: GraphqlParams,
    method: Method,
    response_type: ResponseType,
    uploads: Option<&ReceivedUploads>,
) -> Result<(StatusCode, String), Rejection> {
    let mut observed = Observed::start();
    let outcome = run(
        state,
        headers,
        params,
        method,
        response_type,
        uploads,
        &mut observed,
    )
    .await;
    let status = match &outcome {
        Ok((status, _)) => *status,
        Err(rejection) => rejection.status,
    };
    observed.finish(state.app.metrics(), status);
    outcome
}

/// The operation itself; what it learns on the way (type, caller, outcome) goes into
/// `observed`.
async fn run(
    state: &Endpoint,
    headers: &HeaderMap,
    params: GraphqlParams,
    method: Method,
    response_type: ResponseType,
    uploads: Option<&ReceivedUploads>,
    observed: &mut Observed,
) -> Result<(StatusCode, String), Rejection> {
    if !matches!(
        params.extensions,
        None | Some(serde_json::Value::Null | serde_json::Value::Object(_))
    ) {
        return Err(Rejection::bad_request("`extensions` must be an object"));
    }
    let query = match state
        .persisted
        .resolve(params.query, params.extensions.as_ref())
    {
        Ok(Some(q)) if !q.trim().is_empty() => q,
        Ok(_) => return Err(Rejection::bad_request("the request has no `query`")),
        Err(PersistedQueryError::NotFound) => {
            // Apollo's link recognises the message as well as the code, and then resends
            // the request with its query.
            return Err(Rejection {
                code: ErrorCode::PersistedQueryNotFound,
                ..Rejection::bad_request(PersistedQueryError::NotFound.to_string())
            });
        }
        Err(invalid) => return Err(Rejection::bad_request(invalid.to_string())),
    };
    let variables = match params.variables {
        None | Some(serde_json::Value::Null) => Variables::default(),
        Some(v @ serde_json::Value::Object(_)) => Variables::from_json(v),
        Some(_) => return Err(Rejection::bad_request("`variables` must be an object")),
    };
    let mut request = async_graphql::Request::new(query).variables(variables);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    let admitted = graphql::admission::admit(&mut request, &state.documents, state.app.config());
    let operation = admitted.as_ref().ok().copied().flatten();
    observed.operation(operation.map(|op| op.ty), &mut request);
    // GET is for queries only: a mutation over GET could be triggered by a link.
    if method == Method::GET
        && matches!(
            operation.map(|op| op.ty),
            Some(OperationType::Mutation | OperationType::Subscription)
        )
    {
        return Err(Rejection {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "only queries may be sent with GET; use POST".into(),
            code: ErrorCode::BadUserInput,
            allow: Some("POST"),
            retry_after: None,
        });
    }
    // Under `application/graphql-response+json` a request that is not executed gets a 4xx;
    // legacy `application/json` clients expect 200 with `errors`.
    let status_unless_executed = |status: StatusCode| match response_type {
        ResponseType::GraphqlResponseJson => status,
        ResponseType::Json => StatusCode::OK,
    };
    let caller = match caller_from_headers(&state.app, headers).await {
        Ok(caller) => caller,
        Err(e) => {
            // No position: the error is about the request's credentials, not a place in its
            // document (and GraphQL locations are 1-based, so line 0 would be invalid).
            if e.code() == ErrorCode::Internal {
                tracing::error!(error = ?e, "checking a request's credentials failed");
            }
            let error = e.into_request_error();
            observed.refused(ErrorCode::of(&error));
            let status = refused_status(&error);
            let body = serde_json::json!({ "errors": [error] });
            let status = status_unless_executed(status);
            return Ok((status, body.to_string()));
        }
    };
    observed.caller(&caller);
    let checked = admitted
        .and_then(|op| graphql::check_rate_limit(&state.app, &caller, op.as_ref()).map(|()| op));
    let response = match checked {
        Ok(operation) => {
            let operation = operation.map(|op| op.ty);
            let mut request = graphql::with_request_data(request, &state.app, caller, operation);
            if let Some(uploads) = uploads {
                request = request.data(uploads.clone());
            }
            graphql::with_codes(state.schema.execute(request).await)
        }
        Err(refused) => async_graphql::Response::from_errors(vec![refused]),
    };
    // Errors that stopped the request before execution carry no path and leave no data.
    let not_executed = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let first_error = response.errors.first().and_then(ErrorCode::of);
    let (status, body) = if not_executed {
        observed.refused(first_error);
        let status = response
            .errors
            .first()
            .map_or(StatusCode::BAD_REQUEST, refused_status);
        let status = status_unless_executed(status);
        // A request that never ran has no `data` entry at all (not even null).
        let body = serde_json::json!({ "errors": response.errors });
        (status, body.to_string())
    } else {
        observed.executed(first_error);
        // Serialised straight to text: no intermediate JSON tree on the hot path.
        let body = graphql::response_text(&response, state.app.config().max_response_bytes);
        (StatusCode::OK, body)
    };
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated(accept: &str) -> Option<ResponseType> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).ok()?);
        ResponseType::negotiate(&headers)
    }

    fn page_for(accept: &str) -> bool {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(accept) {
            headers.insert(header::ACCEPT, value);
        }
        ResponseType::prefers_html(&headers)
    }

    #[test]
    fn the_highest_quality_type_wins_then_the_first_listed() {
        use ResponseType::{GraphqlResponseJson as Gql, Json};
        let cases = [
            (
                "application/json;q=0.5, application/graphql-response+json",
                Some(Gql),
            ),
            (
                "application/graphql-response+json;q=0, application/json",
                Some(Json),
            ),
            ("text/html;q=0.9, application/json", Some(Json)),
            ("application/json;q=0", None),
            (
                "application/json, application/graphql-response+json",
                Some(Json),
            ),
            (
                "application/graphql-response+json, application/json",
                Some(Gql),
            ),
            (
                "application/graphql-response+json;q=0.9, application/json;q=0.9",
                Some(Gql),
            ),
            ("*/*", Some(Json)),
            ("application/*", Some(Json)),
            ("*/*;q=0.5, application/graphql-response+json", Some(Gql)),
            ("application/json;q=0, */*", Some(Gql)),
            ("application/*;q=0", None),
            ("text/html", None),
            ("", None),
        ];
        for (accept, expected) in cases {
            assert!(negotiated(accept) == expected, "{accept}");
        }
        // No header at all: the legacy type.
        assert!(ResponseType::negotiate(&HeaderMap::new()) == Some(Json));
    }

    #[test]
    fn only_a_request_preferring_html_gets_the_page() {
        assert!(page_for(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(page_for("text/html, application/json"));
        assert!(page_for("application/json;q=0.5, text/html"));
        assert!(!page_for("application/json, text/html"));
        assert!(!page_for("text/html;q=0.9, application/json"));
        assert!(!page_for("*/*"));
        assert!(!page_for("text/html;q=0"));
        assert!(!page_for("application/graphql-response+json"));
        assert!(!page_for(""));
    }
}
