//! Activity statistics of a chat, of a user's chats, and of the whole server (admin key),
//! over a time range: what an assistant app's dashboard shows.

use chrono::NaiveDateTime;

use crate::app::App;
use crate::auth::Caller;
use crate::db;
use crate::db::messages::TimeRange;
use crate::db::statistics::{DistinctCounts, MessageGroup, StatisticsScope};
use crate::domain::access::CheckedMemberships;
use crate::error::{AppError, AppResult};
use crate::vocabulary::enums::{MessageKind, MessageRole, StreamState};
use crate::vocabulary::ids::{ChatId, UserId};

/// Figures over the messages sent in a range. Counts by role and kind, replies and their
/// length are over live messages; the activity figures (first/last, days, sessions,
/// chats, senders) count every message sent, retracted ones too.
#[derive(Clone, Debug, Default)]
pub struct Statistics {
    pub range: TimeRange,
    /// Live (not retracted) messages.
    pub messages: i64,
    pub retracted: i64,
    /// Live messages per role, every role listed (zeros too), in declaration order.
    pub by_role: Vec<(MessageRole, i64)>,
    pub by_kind: Vec<(MessageKind, i64)>,
    /// Live streamed messages per stream state.
    pub streamed: Vec<(StreamState, i64)>,
    /// Mean length in characters of finished assistant replies: live `ASSISTANT`
    /// messages that were not streamed or whose stream completed.
    pub average_reply_length: Option<f64>,
    pub first_activity_at: Option<NaiveDateTime>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub distinct: DistinctCounts,
}

impl Statistics {
    /// Sums the breakdown rows into the figures.
    fn from_groups(range: TimeRange, groups: &[MessageGroup], distinct: DistinctCounts) -> Self {
        let live = |keep: &dyn Fn(&MessageGroup) -> bool| -> i64 {
            groups
                .iter()
                .filter(|g| keep(g))
                .map(|g| g.count - g.retracted)
                .sum()
        };
        let finished_reply = |g: &MessageGroup| {
            g.role == MessageRole::Assistant
                && matches!(g.stream_state, None | Some(StreamState::Complete))
        };
        let replies = live(&finished_reply);
        let reply_chars: i64 = groups
            .iter()
            .filter(|g| finished_reply(g))
            .filter_map(|g| g.live_content_chars)
            .sum();
        Statistics {
            range,
            messages: live(&|_| true),
            retracted: groups.iter().map(|g| g.retracted).sum(),
            by_role: MessageRole::ALL
                .iter()
                .map(|role| (*role, live(&|g| g.role == *role)))
                .collect(),
            by_kind: MessageKind::ALL
                .iter()
                .map(|kind| (*kind, live(&|g| g.kind == *kind)))
                .collect(),
            streamed: StreamState::ALL
                .iter()
                .map(|state| (*state, live(&|g| g.stream_state == Some(*state))))
                .collect(),
            // Lengths are far below 2^53, so the division is exact enough.
            #[allow(clippy::cast_precision_loss)]
            average_reply_length: (replies > 0).then(|| reply_chars as f64 / replies as f64),
            first_activity_at: groups.iter().filter_map(|g| g.first_at).min(),
            last_activity_at: groups.iter().filter_map(|g| g.last_at).max(),
            distinct,
        }
    }
}

fn check_range(range: TimeRange) -> AppResult<()> {
    match (range.since, range.until) {
        (Some(since), Some(until)) if since > until => Err(AppError::BadInput(
            "`since` must not be after `until`".into(),
        )),
        _ => Ok(()),
    }
}

async fn compute(app: &App, scope: StatisticsScope, range: TimeRange) -> AppResult<Statistics> {
    check_range(range)?;
    let mut conn = app.db().conn().await?;
    let groups = db::statistics::message_groups(&mut conn, scope, range).await?;
    let distinct = db::statistics::distinct_counts(&mut conn, scope, range).await?;
    Ok(Statistics::from_groups(range, &groups, distinct))
}

/// A chat's statistics (members).
pub async fn of_chat(
    app: &App,
    caller: UserId,
    chat: ChatId,
    range: TimeRange,
    checked: &CheckedMemberships,
) -> AppResult<Statistics> {
    let mut conn = app.db().conn().await?;
    checked.member_of(&mut conn, chat, caller).await?;
    drop(conn);
    compute(app, StatisticsScope::Chat(chat), range).await
}

/// Statistics of the chats `user` is a member of (the user themself, or the admin key).
pub async fn of_user(
    app: &App,
    caller: &Caller,
    user: UserId,
    range: TimeRange,
) -> AppResult<Statistics> {
    // Anyone but the admin key must be signed in, and be that user.
    if *caller != Caller::Admin && caller.user_id()? != user {
        return Err(AppError::Forbidden(
            "a user's statistics are theirs (or the admin key's) to read".into(),
        ));
    }
    compute(app, StatisticsScope::ChatsOf(user), range).await
}

/// Statistics of every chat (admin key).
pub async fn overall(app: &App, caller: &Caller, range: TimeRange) -> AppResult<Statistics> {
    caller.require_admin()?;
    compute(app, StatisticsScope::All, range).await
}
