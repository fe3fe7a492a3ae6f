//! What one GraphQL operation over HTTP leaves behind: its series in `/metrics` and one log
//! line at info, under the target `chatql::request` (silence it with
//! `RUST_LOG=info,chatql::request=off`):
//!
//! ```text
//! INFO chatql::request: graphql operation=query name="MyChats" user=VXNlcjox outcome=ok status=200 duration_ms=1.87
//! ```

use std::time::Instant;

use async_graphql::Request;
use async_graphql::parser::types::OperationType;
use axum::http::StatusCode;

use crate::auth::Caller;
use crate::error::ErrorCode;
use crate::graphql;
use crate::metrics::{Metrics, OperationKind, Outcome};

/// One operation, observed from its arrival until its answer is ready.
pub struct Observed {
    started: Instant,
    operation: OperationKind,
    /// `operationName` as sent, else the name in the document.
    name: Option<String>,
    /// Who called, once the credentials were checked.
    user: Option<String>,
    /// A request refused before anything is learnt about it is a bad request.
    outcome: Outcome,
    /// The code of the first error, when there is one.
    code: Option<ErrorCode>,
}

impl Observed {
    /// Starts the clock for an operation.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            operation: OperationKind::Unknown,
            name: None,
            user: None,
            outcome: Outcome::BadRequest,
            code: None,
        }
    }

    /// The operation the document selects (`None`: it does not parse, or selects none)
    /// and its name, for a request past `admission::admit`.
    pub fn operation(&mut self, ty: Option<OperationType>, request: &mut Request) {
        self.operation = OperationKind::from(ty);
        self.name = match ty {
            Some(_) => graphql::operation_name(request),
            // Not admitted: the document may not even parse, so only the name sent.
            None => request.operation_name.clone(),
        };
    }

    /// Who calls: their global id, `admin` or `anonymous`.
    pub fn caller(&mut self, caller: &Caller) {
        self.user = Some(caller.log_label());
    }

    /// Refused before execution with an error of `code`.
    pub fn refused(&mut self, code: Option<ErrorCode>) {
        self.code = code;
        self.outcome = match code {
            Some(ErrorCode::Unauthenticated) => Outcome::Unauthenticated,
            Some(ErrorCode::RateLimited) => Outcome::RateLimited,
            Some(ErrorCode::LimitExceeded) => Outcome::LimitExceeded,
            Some(ErrorCode::Internal) => Outcome::Internal,
            Some(ErrorCode::PersistedQueryNotFound) => Outcome::PersistedQueryNotFound,
            Some(
                ErrorCode::BadUserInput
                | ErrorCode::Forbidden
                | ErrorCode::NotFound
                | ErrorCode::Conflict
                | ErrorCode::UnsupportedMediaType,
            )
            | None => Outcome::BadRequest,
        };
    }

    /// Executed; `first_error` is the code of the response's first error, if any.
    pub fn executed(&mut self, first_error: Option<ErrorCode>) {
        self.code = first_error;
        self.outcome = match first_error {
            None => Outcome::Ok,
            Some(_) => Outcome::Error,
        };
    }

    /// Records the operation in `metrics` and logs its line, answered with `status`.
    pub fn finish(self, metrics: &Metrics, status: StatusCode) {
        let took = self.started.elapsed();
        metrics.http_request(self.operation, self.outcome, took);
        // Hundredths of a millisecond: precise enough, and short in the line.
        let duration_ms = (took.as_secs_f64() * 100_000.0).round() / 100.0;
        // The name is the client's text: logged quoted and escaped (`?`), so it cannot
        // forge a line or a field.
        tracing::info!(
            target: "chatql::request",
            operation = %self.operation.as_str(),
            name = ?self.name.as_deref().unwrap_or(""),
            user = %self.user.as_deref().unwrap_or("-"),
            outcome = %self.outcome.as_str(),
            code = %self.code.map_or("-", ErrorCode::as_str),
            status = status.as_u16(),
            duration_ms,
            "graphql"
        );
    }
}
