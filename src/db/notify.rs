//! PostgreSQL LISTEN/NOTIFY: how live events travel between instances.

use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::{DbConn, DbError, DbPool, DbResult, KeepPrepared};

/// The PostgreSQL channel live events travel on between instances.
pub const EVENT_CHANNEL: &str = "chatql_events";

impl DbPool {
    /// Sends `payloads` on [`EVENT_CHANNEL`], in order, in one statement (PostgreSQL
    /// NOTIFY, in a transaction of its own; a no-op on SQLite, where one process holds
    /// every subscriber).
    pub async fn notify(&self, payloads: &[String]) -> DbResult<()> {
        if !self.is_postgres() || payloads.is_empty() {
            return Ok(());
        }
        notify(&mut self.conn().await?, payloads).await
    }
}

/// Sends `payloads` on [`EVENT_CHANNEL`], in order, in one statement on `conn`. Inside a
/// transaction PostgreSQL delivers them when, and only when, it commits. A no-op on SQLite.
pub async fn notify(conn: &mut DbConn, payloads: &[String]) -> DbResult<()> {
    use diesel::sql_types::{Array, Text};
    if payloads.is_empty() {
        return Ok(());
    }
    if let DbConn::Pg(c) = conn {
        diesel_async::RunQueryDsl::execute(
            KeepPrepared(
                diesel::sql_query(
                    "SELECT pg_notify($1, payload) FROM (SELECT payload \
                     FROM unnest($2::text[]) WITH ORDINALITY AS queued(payload, n) \
                     ORDER BY n) AS in_order",
                )
                .bind::<Text, _>(EVENT_CHANNEL)
                .bind::<Array<Text>, _>(payloads),
            ),
            &mut **c,
        )
        .await?;
    }
    Ok(())
}

/// A dedicated (never pooled: it buffers every notification) connection LISTENing on
/// [`EVENT_CHANNEL`].
pub async fn listen(url: &str) -> DbResult<AsyncPgConnection> {
    use diesel_async::SimpleAsyncConnection;
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Pool(format!("listener connection: {e}")))?;
    conn.batch_execute(&format!("LISTEN {EVENT_CHANNEL}"))
        .await?;
    Ok(conn)
}
