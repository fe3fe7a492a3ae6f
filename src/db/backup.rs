//! An online copy of the SQLite database, taken while the server runs.
//!
//! `VACUUM INTO` reads the database in one read transaction, so the copy is one consistent
//! snapshot, and in WAL mode writers go on committing while it runs (the copy holds
//! nothing they commit after it began). The copy is compacted and is a complete database
//! file (FTS5 index included) that `--database-url` can open as it is. PostgreSQL has
//! `pg_dump` for this (see the README).

use std::path::Path;

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use super::{DbConn, DbPool, DbResult};

/// What taking a copy found.
#[derive(Debug, PartialEq, Eq)]
pub enum BackupOutcome {
    /// The copy was written.
    Written,
    /// The database is PostgreSQL: nothing was written.
    NotSqlite,
}

/// Writes a consistent copy of the SQLite database to `path`, which must not exist yet
/// (SQLite refuses to write over a file that holds anything).
pub async fn copy_sqlite_into(pool: &DbPool, path: &Path) -> DbResult<BackupOutcome> {
    let mut conn = pool.conn().await?;
    let DbConn::Sqlite(c) = &mut conn else {
        return Ok(BackupOutcome::NotSqlite);
    };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(path.to_string_lossy().into_owned())
        .execute(c)
        .await?;
    Ok(BackupOutcome::Written)
}
