//! The `Statistics` type: figures of `Chat.statistics`, `User.statistics` and
//! `Query.statistics`.

use async_graphql::{Object, SimpleObject};

use crate::domain::statistics::Statistics;
use crate::graphql::scalars::DateTime;
use crate::vocabulary::enums::{MessageKind, MessageRole, StreamState};

/// Counts as GraphQL `Int`s: a count beyond 2^31 (not a chat's reality) shows the maximum.
fn int(count: i64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// Each `(value, count)` of a breakdown as its GraphQL object.
fn listed<E: Copy, C>(counts: &[(E, i64)], make: impl Fn(E, i32) -> C) -> Vec<C> {
    counts.iter().map(|(e, n)| make(*e, int(*n))).collect()
}

/// Live messages of one role.
#[derive(SimpleObject)]
pub struct RoleCount {
    pub role: MessageRole,
    pub count: i32,
}

/// Live messages of one kind.
#[derive(SimpleObject)]
pub struct KindCount {
    pub kind: MessageKind,
    pub count: i32,
}

/// Live streamed messages in one stream state.
#[derive(SimpleObject)]
pub struct StreamStateCount {
    pub state: StreamState,
    pub count: i32,
}

/// Activity over the messages sent in a time range. The counts by role and kind, the
/// streamed replies and the reply length are over live messages; the activity figures
/// (first/last activity, active days, sessions, chats, senders) count every message
/// sent, later retracted ones too.
pub struct StatisticsNode(pub Statistics);

#[Object(name = "Statistics")]
impl StatisticsNode {
    /// The start of the range (inclusive), as asked; null: from the first message.
    async fn since(&self) -> Option<DateTime> {
        self.0.range.since.map(DateTime)
    }
    /// The end of the range (exclusive), as asked; null: up to now.
    async fn until(&self) -> Option<DateTime> {
        self.0.range.until.map(DateTime)
    }
    /// Live (not retracted) messages.
    async fn messages(&self) -> i32 {
        int(self.0.messages)
    }
    /// Messages sent in the range and retracted since.
    async fn retracted_messages(&self) -> i32 {
        int(self.0.retracted)
    }
    /// Live messages per role, every role listed (zeros too).
    async fn by_role(&self) -> Vec<RoleCount> {
        listed(&self.0.by_role, |role, count| RoleCount { role, count })
    }
    /// Live messages per kind, every kind listed (zeros too).
    async fn by_kind(&self) -> Vec<KindCount> {
        listed(&self.0.by_kind, |kind, count| KindCount { kind, count })
    }
    /// Live streamed messages per state: COMPLETE, INTERRUPTED, FAILED, and still
    /// STREAMING.
    async fn streamed_replies(&self) -> Vec<StreamStateCount> {
        listed(&self.0.streamed, |state, count| StreamStateCount {
            state,
            count,
        })
    }
    /// Mean length in characters of finished assistant replies (live `ASSISTANT`
    /// messages not streamed, or whose stream completed); null when there are none.
    async fn average_reply_length(&self) -> Option<f64> {
        self.0.average_reply_length
    }
    /// Sessions with a message in the range.
    async fn sessions(&self) -> i32 {
        int(self.0.distinct.sessions)
    }
    /// Calendar days (UTC) with a message.
    async fn active_days(&self) -> i32 {
        int(self.0.distinct.days)
    }
    /// Chats with a message.
    async fn active_chats(&self) -> i32 {
        int(self.0.distinct.chats)
    }
    /// Users who sent a message (system notices have no sender).
    async fn active_senders(&self) -> i32 {
        int(self.0.distinct.senders)
    }
    /// When the first message in the range was sent; null when there is none.
    async fn first_activity_at(&self) -> Option<DateTime> {
        self.0.first_activity_at.map(DateTime)
    }
    /// When the last message in the range was sent; null when there is none.
    async fn last_activity_at(&self) -> Option<DateTime> {
        self.0.last_activity_at.map(DateTime)
    }
}
