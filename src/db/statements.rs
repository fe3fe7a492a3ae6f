//! Statement bookkeeping: counting what the pool's connections run, and keeping
//! fixed-text statements prepared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts every statement a connection starts (diesel instrumentation), so tests and
/// benchmarks can check that a query's cost does not grow with the page size.
pub(super) fn count_statements(
    counter: Arc<AtomicU64>,
) -> impl diesel::connection::Instrumentation {
    move |event: diesel::connection::InstrumentationEvent<'_>| {
        if matches!(
            event,
            diesel::connection::InstrumentationEvent::StartQuery { .. }
        ) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A statement whose SQL text is fixed, marked so diesel keeps it prepared (keyed by that
/// text). diesel never caches an UPDATE (a changeset's columns may vary) or anything with
/// an SQL literal; on PostgreSQL every uncached statement costs a round trip to prepare it
/// plus a parse and plan, each time it runs. Wrap only statements built the same way every
/// time (a varying one would only fill the cache).
#[derive(Debug, Clone, Copy)]
pub struct KeepPrepared<Q>(pub Q);

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for KeepPrepared<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> diesel::query_builder::QueryId for KeepPrepared<Q> {
    type QueryId = ();
    // No static id: the cache keys the statement by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for KeepPrepared<Q> {
    type SqlType = Q::SqlType;
}
