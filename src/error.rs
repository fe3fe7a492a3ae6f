//! The application error type and its mapping to GraphQL `extensions.code`, in one place.
//!
//! Domain and resolver code returns `AppError`; the conversion into `async_graphql::Error`
//! below is the only place codes are assigned, and the only place internal details are
//! logged and replaced by a generic message.

use crate::db::DbError;
use crate::media::MediaError;
use crate::vocabulary::InvalidInput;

/// The stable error codes of the API (`extensions.code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No or an invalid credential.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// The thing does not exist (or the caller may not know it does).
    NotFound,
    /// The request's arguments are invalid.
    BadUserInput,
    /// The request conflicts with the current state.
    Conflict,
    /// Too many requests.
    RateLimited,
    /// A size, depth or complexity limit was exceeded.
    LimitExceeded,
    /// An upload's bytes are of a type not accepted, or not the type it was sent as.
    UnsupportedMediaType,
    /// A server fault; details only in the log.
    Internal,
    /// An automatic persisted query's hash is not known: send the query with it.
    PersistedQueryNotFound,
}

impl ErrorCode {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
        }
    }

    /// The code with this wire form.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ErrorCode::Unauthenticated,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::BadUserInput,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::LimitExceeded,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::Internal,
            ErrorCode::PersistedQueryNotFound,
        ]
        .into_iter()
        .find(|code| code.as_str() == text)
    }

    /// The HTTP status of a request refused with this code before it was executed (under
    /// `application/graphql-response+json`; an executed request is always 200).
    pub fn refused_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::BadUserInput
            | ErrorCode::Conflict
            | ErrorCode::LimitExceeded
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PersistedQueryNotFound => 400,
        }
    }

    /// The HTTP status of a refusal on a plain HTTP path (uploads, `/media`), where each
    /// code has the status HTTP gives it, unlike GraphQL-over-HTTP's
    /// [`ErrorCode::refused_status`].
    pub fn plain_http_status(self) -> u16 {
        match self {
            ErrorCode::NotFound => 404,
            ErrorCode::Forbidden => 403,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::LimitExceeded => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::BadUserInput | ErrorCode::Conflict | ErrorCode::PersistedQueryNotFound => {
                400
            }
        }
    }

    /// The code an error of a response carries, once [`assign_code`] ran.
    pub fn of(error: &async_graphql::ServerError) -> Option<Self> {
        match error.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Self::parse(code),
            _ => None,
        }
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing, malformed, forged or expired credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown entity, or one the caller may not see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Invalid arguments.
    #[error("{0}")]
    BadInput(String),
    /// State conflict (e.g. editing a retracted message).
    #[error("{0}")]
    Conflict(String),
    /// Rate limit hit.
    #[error("{0}")]
    RateLimited(String),
    /// A size or count limit was exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// An upload of a type not accepted, or not the type it was sent as.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A database failure; the detail is logged, never shown.
    #[error("internal server error")]
    Db(#[from] DbError),
    /// Any other server fault; the detail is logged, never shown.
    #[error("internal server error")]
    Internal(String),
}

impl AppError {
    /// The code this error carries to clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::BadInput(_) => ErrorCode::BadUserInput,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            AppError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            AppError::Db(DbError::Query(diesel::result::Error::NotFound)) => ErrorCode::NotFound,
            AppError::Db(_) | AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message shown to clients: the error itself, or a generic line for internal faults.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal server error".to_owned(),
            ErrorCode::NotFound if matches!(self, AppError::Db(_)) => "not found".to_owned(),
            _ => self.to_string(),
        }
    }
}

impl From<InvalidInput> for AppError {
    fn from(invalid: InvalidInput) -> Self {
        match invalid {
            InvalidInput::Malformed(message) => AppError::BadInput(message),
            InvalidInput::TooLarge(message) => AppError::LimitExceeded(message),
        }
    }
}

impl From<MediaError> for AppError {
    fn from(refused: MediaError) -> Self {
        let message = refused.to_string();
        match refused {
            MediaError::TooLarge { .. } | MediaError::TooManyPixels { .. } => {
                AppError::LimitExceeded(message)
            }
            MediaError::NotAllowed(_)
            | MediaError::Mismatch { .. }
            | MediaError::Unreadable { .. } => AppError::UnsupportedMediaType(message),
            MediaError::Body(_) | MediaError::SizeMismatch { .. } => AppError::BadInput(message),
            MediaError::Store(_) | MediaError::Worker(_) => AppError::Internal(message),
        }
    }
}

/// Result of domain and resolver code.
pub type AppResult<T> = Result<T, AppError>;

/// An error about a request as a whole (no place in its document, so no location), with
/// its `extensions.code`: refusals before execution, limits, the transports' own checks.
pub fn request_error(message: impl Into<String>, code: ErrorCode) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    set_code(&mut error, code);
    error
}

impl AppError {
    /// This error as a [`request_error`]: its public message and its code.
    pub fn into_request_error(self) -> async_graphql::ServerError {
        request_error(self.public_message(), self.code())
    }
}

fn set_code(error: &mut async_graphql::ServerError, code: ErrorCode) {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
}

/// Gives every error of a GraphQL response its `extensions.code`, once, for HTTP and
/// WebSocket alike. Resolver errors are `AppError`s (kept as the error's source by
/// async-graphql's blanket conversion); internal ones are logged here with their detail and
/// shown generically. Errors async-graphql raised itself (parse, validation, limits,
/// argument coercion) get a code from their kind.
pub fn assign_code(error: &mut async_graphql::ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if has_code {
        return;
    }
    if let Some(invalid) = error.source::<InvalidInput>() {
        // A resolver passed a vocabulary error on with `?`.
        let code = AppError::from(invalid.clone()).code();
        set_code(error, code);
        return;
    }
    let code = match error.source::<AppError>() {
        Some(app_error) => {
            let code = app_error.code();
            if code == ErrorCode::Internal {
                tracing::error!(error = ?app_error, path = ?error.path, "internal error");
            }
            error.message = app_error.public_message();
            code
        }
        None => classify_engine_error(&error.message),
    };
    set_code(error, code);
}

/// The code of an error async-graphql raised itself, which arrives without one: its four
/// limit errors (complexity, depth, recursion depth, directives per field; matched by their
/// exact wording in async-graphql 7.2) are `LIMIT_EXCEEDED`, everything else it rejects
/// (syntax, validation, argument coercion) is the request's fault: `BAD_USER_INPUT`.
pub fn classify_engine_error(message: &str) -> ErrorCode {
    let is_limit = message == "Query is too complex."
        || message == "Query is nested too deep."
        || message.starts_with("The recursion depth of the query cannot be greater than `")
        || (message.starts_with("The number of directives on the field `")
            && message.contains("` cannot be greater than `"));
    if is_limit {
        ErrorCode::LimitExceeded
    } else {
        ErrorCode::BadUserInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_limit_errors_are_limit_exceeded_by_their_exact_wording() {
        for message in [
            "Query is too complex.",
            "Query is nested too deep.",
            "The recursion depth of the query cannot be greater than `32`",
            "The number of directives on the field `chat` cannot be greater than `8`",
        ] {
            assert_eq!(
                classify_engine_error(message),
                ErrorCode::LimitExceeded,
                "{message}"
            );
        }
    }

    #[test]
    fn other_engine_errors_are_bad_user_input_whatever_words_they_hold() {
        for message in [
            r#"Unknown argument "limit" on field "chats" of type "Query"."#,
            r#"Unknown field "tooComplex" on type "Query"."#,
            r#"Invalid value for argument "first", expected type "Int""#,
            " --> 1:3\n  |\n1 | { nested too deep\n  |   ^---\n  |\n  = expected selection",
            r#"Unknown operation named "limit""#,
        ] {
            assert_eq!(
                classify_engine_error(message),
                ErrorCode::BadUserInput,
                "{message}"
            );
        }
    }
}
