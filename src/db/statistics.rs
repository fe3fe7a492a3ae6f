//! Activity statistics: SQL aggregates over the messages of a scope (a chat, the chats a
//! user is in, or all) sent in a time range. Two statements, each one pass over the
//! range: a breakdown by role, kind and stream state, and the distinct counts.
//!
//! The scope and range are the leading columns of `messages_chat_created_idx` (a chat, or
//! each chat of a user) or of `messages_created_idx` (all chats), so the cost follows the
//! messages in scope, not the size of the table.

use chrono::NaiveDateTime;
use diesel::dsl::{case_when, count, count_star, max, min, sum};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use super::messages::TimeRange;
use super::schema::{members, messages};
use super::{DbConn, DbResult};
use crate::vocabulary::enums::{MessageKind, MessageRole, StreamState};
use crate::vocabulary::ids::{ChatId, UserId};
use crate::with_conn;

diesel::define_sql_function!(
    /// SQL `length()`: characters (not bytes) on both backends.
    fn length(text: Text) -> diesel::sql_types::Integer
);

/// Whose messages are counted.
#[derive(Clone, Copy, Debug)]
pub enum StatisticsScope {
    Chat(ChatId),
    /// The chats the user is a member of now.
    ChatsOf(UserId),
    All,
}

/// The messages of one role, kind and stream state.
#[derive(Debug, Queryable)]
pub struct MessageGroup {
    pub role: MessageRole,
    pub kind: MessageKind,
    pub stream_state: Option<StreamState>,
    /// All of them, retracted ones too.
    pub count: i64,
    pub retracted: i64,
    /// Total length of the live ones' content, in characters.
    pub live_content_chars: Option<i64>,
    pub first_at: Option<NaiveDateTime>,
    pub last_at: Option<NaiveDateTime>,
}

/// Distinct values over every message of the scope and range (retracted ones included:
/// they were activity when sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Queryable)]
pub struct DistinctCounts {
    pub sessions: i64,
    /// UTC calendar days with a message.
    pub days: i64,
    pub chats: i64,
    pub senders: i64,
}

/// A condition on `messages`, boxed for backend `DB`.
type Predicate<DB> =
    Box<dyn BoxableExpression<messages::table, DB, SqlType = diesel::sql_types::Bool>>;

/// The condition "in the scope and the range", for the backend `$db`. A macro, not a
/// function: the boxed condition needs the concrete backend, which each arm of
/// `with_conn!` names. (Boxed, because the scope and range give it six shapes; diesel
/// boxes no grouped query, so the condition is what varies, not the query.)
macro_rules! scope_and_range {
    ($db:ty, $scope:expr, $range:expr) => {{
        let mut condition: Predicate<$db> = match $scope {
            StatisticsScope::Chat(chat) => Box::new(messages::chat_id.eq(chat)),
            StatisticsScope::ChatsOf(user) => Box::new(
                messages::chat_id.eq_any(
                    members::table
                        .filter(members::user_id.eq(user))
                        .select(members::chat_id),
                ),
            ),
            StatisticsScope::All => Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("1 = 1")),
        };
        if let Some(since) = $range.since {
            condition = Box::new(condition.and(messages::created_at.ge(since)));
        }
        if let Some(until) = $range.until {
            condition = Box::new(condition.and(messages::created_at.lt(until)));
        }
        condition
    }};
}

/// The scope's messages in the range, grouped by role, kind and stream state.
pub async fn message_groups(
    conn: &mut DbConn,
    scope: StatisticsScope,
    range: TimeRange,
) -> DbResult<Vec<MessageGroup>> {
    // diesel groups by columns only, so liveness is counted, not grouped: COUNT of a
    // column counts its non-NULL values.
    let live_length = case_when(messages::retracted_at.is_null(), length(messages::content));
    Ok(with_conn!(conn, |c, Db| messages::table
        .filter(scope_and_range!(Db, scope, range))
        .group_by((messages::role, messages::kind, messages::stream_state))
        .select((
            messages::role,
            messages::kind,
            messages::stream_state,
            count_star(),
            count(messages::retracted_at),
            sum(live_length),
            min(messages::created_at),
            max(messages::created_at),
        ))
        .load(c)
        .await)?)
}

/// Distinct sessions, days, chats and senders among the scope's messages in the range.
pub async fn distinct_counts(
    conn: &mut DbConn,
    scope: StatisticsScope,
    range: TimeRange,
) -> DbResult<DistinctCounts> {
    // The day of a timestamp, written once for both backends: SQLite stores timestamps as
    // `YYYY-MM-DD HH:MM:SS…` text, and PostgreSQL prints them the same way (ISO, its
    // default `DateStyle`).
    let day = diesel::dsl::sql::<Text>("SUBSTR(CAST(messages.created_at AS TEXT), 1, 10)");
    Ok(with_conn!(conn, |c, Db| messages::table
        .filter(scope_and_range!(Db, scope, range))
        .select((
            count(messages::session_id).aggregate_distinct(),
            count(day.clone()).aggregate_distinct(),
            count(messages::chat_id).aggregate_distinct(),
            count(messages::sender_id).aggregate_distinct(),
        ))
        .first(c)
        .await)?)
}
