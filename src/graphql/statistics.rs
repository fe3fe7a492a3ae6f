//! The server-wide statistics query (thin: call `domain::statistics`, wrap). A chat's and a
//! user's statistics are fields of `Chat` and `User`.

use async_graphql::{Context, Object, Result};

use super::scalars::DateTime;
use super::types::{StatisticsNode, statistics_range};
use super::{app, caller};
use crate::domain::statistics;

/// Statistics queries.
#[derive(Default)]
pub struct StatisticsQuery;

#[Object]
impl StatisticsQuery {
    /// Activity in every chat over the messages sent at or after `since` and before
    /// `until` (both optional): the admin key.
    #[graphql(complexity = "super::types::STATISTICS_COST + child_complexity")]
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime>,
        until: Option<DateTime>,
    ) -> Result<StatisticsNode> {
        let range = statistics_range(since, until);
        let figures = statistics::overall(app(ctx)?, caller(ctx), range).await?;
        Ok(StatisticsNode(figures))
    }
}
