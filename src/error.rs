//! The application error type and its mapping to GraphQL `extensions.code`, in one place.
//!
//! Domain and resolver code returns `AppError`; the conversion into `async_graphql::Error`
//! below is the only place codes are assigned, and the only place internal details are
//! logged and replaced by a generic message.

use crate::db::DbError;
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
    /// A server fault; details only in the log.
    Internal,
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
            ErrorCode::Internal => "INTERNAL",
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

/// Result of domain and resolver code.
pub type AppResult<T> = Result<T, AppError>;

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
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
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
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
}

/// Adds a code to an error made by async-graphql itself (parse, validation, limits), which
/// arrive without one.
pub fn classify_engine_error(message: &str) -> ErrorCode {
    let lower = message.to_ascii_lowercase();
    if lower.contains("too complex") || lower.contains("nested too deep") || lower.contains("limit")
    {
        ErrorCode::LimitExceeded
    } else {
        ErrorCode::BadUserInput
    }
}
