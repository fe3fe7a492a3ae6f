//! The shared vocabulary of every layer: typed ids and their public form, the API's enums
//! (stored as text, exposed as GraphQL enums), keyset cursors and page requests. It sits
//! below `db`, so it knows nothing of the database, the services or the transports; its
//! one error says what was wrong with a value a client sent.

pub mod cursor;
pub mod enums;
pub mod ids;
pub mod jitter;
pub mod search;

/// A value a client sent that cannot be used: malformed (an id, a cursor, page
/// arguments) or over a limit (a page size). `error::AppError` maps it to
/// `BAD_USER_INPUT` or `LIMIT_EXCEEDED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// Malformed or contradictory.
    #[error("{0}")]
    Malformed(String),
    /// Over a limit.
    #[error("{0}")]
    TooLarge(String),
}
