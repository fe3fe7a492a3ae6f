//! Database access: the pool over PostgreSQL or SQLite, the connection enum with its
//! dispatch macro (every query is written once and compiled for both backends),
//! transactions, migrations, and one module per entity holding its models and queries.

pub mod attachments;
pub mod backup;
pub mod blocks;
pub mod chats;
pub mod dump;
pub mod imports;
pub mod members;
pub mod mentions;
pub mod message_edits;
pub mod messages;
pub mod notify;
pub mod pins;
pub mod reactions;
pub mod schema;
pub mod search;
pub mod sessions;
mod statements;
pub mod statistics;
pub mod threads;
pub mod users;

pub use notify::{EVENT_CHANNEL, listen};
pub use statements::KeepPrepared;
use statements::count_statements;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_async::AsyncConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::TransactionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

use crate::config::{DatabaseTarget, SqliteSynchronous};
use crate::metrics::PoolStatus;

/// The SQLite connection type diesel-async drives on a blocking thread.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query failed (including "no row found").
    #[error(transparent)]
    Query(#[from] DieselError),
    /// No connection could be had from the pool.
    #[error("connection pool: {0}")]
    Pool(String),
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migration(String),
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        DbError::Pool(err.to_string())
    }
}

impl DbError {
    /// True when the error is a unique-constraint violation (a duplicate key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Result of a database call.
pub type DbResult<T> = Result<T, DbError>;

/// Which backend a pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL through diesel-async's native driver.
    Postgres,
    /// An embedded SQLite file.
    Sqlite,
}

/// A connection pool over one of the two backends, counting the statements it runs.
#[derive(Clone)]
pub struct DbPool {
    pools: Pools,
    statements: Arc<AtomicU64>,
    /// SQLite has one writer at a time. Write transactions queue here, in arrival order,
    /// instead of in SQLite's busy handler, which sleeps in growing steps and let a
    /// writer wait hundreds of milliseconds while others went ahead.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone)]
enum Pools {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// A pooled connection of either backend. Database functions take `&mut DbConn`.
#[expect(
    clippy::large_enum_variant,
    reason = "one lives per request on the stack; boxing would cost an allocation per checkout"
)]
pub enum DbConn {
    /// PostgreSQL.
    Pg(Object<AsyncPgConnection>),
    /// SQLite.
    Sqlite(Object<SqliteConn>),
}

/// Runs `$body` with `$c` bound to the concrete connection of whichever backend `$conn`
/// holds. The body is pasted into each arm, so one diesel query compiles for both. The
/// `|c, Db|` form also names the arm's backend type `Db`, for a body that boxes a part of
/// its query (a boxed expression's type names its backend).
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident, $db:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg(pooled) => {
                type $db = diesel::pg::Pg;
                let $c: &mut diesel_async::AsyncPgConnection = &mut **pooled;
                $body
            }
            $crate::db::DbConn::Sqlite(pooled) => {
                type $db = diesel::sqlite::Sqlite;
                let $c: &mut $crate::db::SqliteConn = &mut **pooled;
                $body
            }
        }
    };
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg(pooled) => {
                let $c: &mut diesel_async::AsyncPgConnection = &mut **pooled;
                $body
            }
            $crate::db::DbConn::Sqlite(pooled) => {
                let $c: &mut $crate::db::SqliteConn = &mut **pooled;
                $body
            }
        }
    };
}

/// Runs one query per key (`|key| query`) and gives their rows in key order: on
/// PostgreSQL they go out pipelined, in one round trip; SQLite runs them one by one.
/// For per-key limits (a group's first users, a message's newest edits) that one
/// `eq_any` query cannot express without window functions.
#[macro_export]
macro_rules! load_per_key {
    ($conn:expr, $keys:expr, |$key:ident| $query:expr) => {
        match $conn {
            $crate::db::DbConn::Pg(pooled) => {
                let c: &diesel_async::AsyncPgConnection = pooled;
                // Shared references pipeline; each future needs a reference of its own.
                let mut shared: Vec<&diesel_async::AsyncPgConnection> =
                    $keys.iter().map(|_| c).collect();
                futures_util::future::try_join_all(
                    $keys
                        .iter()
                        .zip(shared.iter_mut())
                        .map(|($key, c)| $query.load(c)),
                )
                .await
            }
            $crate::db::DbConn::Sqlite(pooled) => {
                let c: &mut $crate::db::SqliteConn = pooled;
                let mut all = Vec::with_capacity($keys.len());
                let mut failed = None;
                for $key in $keys.iter() {
                    match $query.load(&mut *c).await {
                        Ok(rows) => all.push(rows),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok(all),
                }
            }
        }
    };
}

/// SQLite settings applied to every pooled connection: WAL lets readers run beside the
/// writer, busy_timeout makes writers queue instead of failing with "database is locked",
/// `synchronous` decides when a commit is acknowledged (see [`SqliteSynchronous`]), and
/// foreign keys are off by default in SQLite. busy_timeout comes first: connections opened
/// at the same moment (a burst of requests on a fresh pool) contend for the WAL setup
/// itself, and without it `journal_mode` failed at once with "database is locked".
fn sqlite_pragmas(synchronous: SqliteSynchronous) -> String {
    format!(
        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        synchronous.pragma()
    )
}

impl DbPool {
    /// Builds a pool for `target` with at most `size` connections.
    pub fn connect(target: &DatabaseTarget, size: usize) -> DbResult<Self> {
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        let pools = match target {
            DatabaseTarget::Postgres(url) => {
                let mut config = ManagerConfig::<AsyncPgConnection>::default();
                // No `SELECT 1` round trip on every checkout (a request checks out several
                // connections); the pool still discards connections the server closed.
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    let counter = counter.clone();
                    async move {
                        let mut conn = AsyncPgConnection::establish(&url).await?;
                        conn.set_instrumentation(count_statements(counter));
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager =
                    AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
                let pool = Pool::builder(manager)
                    .max_size(size)
                    .build()
                    .map_err(|e| DbError::Pool(e.to_string()))?;
                Pools::Pg(pool)
            }
            DatabaseTarget::Sqlite(path, synchronous) => {
                let pragmas = sqlite_pragmas(*synchronous);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbError::Pool(format!("creating {}: {e}", parent.display()))
                    })?;
                }
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    let counter = counter.clone();
                    let pragmas = pragmas.clone();
                    async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.spawn_blocking(move |c| {
                            c.batch_execute(&pragmas)?;
                            users::register_unicode_lower(c)
                        })
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        conn.set_instrumentation(count_statements(counter));
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path.to_string_lossy(),
                    config,
                );
                let pool = Pool::builder(manager)
                    .max_size(size)
                    .build()
                    .map_err(|e| DbError::Pool(e.to_string()))?;
                Pools::Sqlite(pool)
            }
        };
        Ok(DbPool {
            pools,
            statements,
            sqlite_writer: Arc::default(),
        })
    }

    /// How many SQL statements this pool's connections have started.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// What the pool holds right now (for `/metrics`).
    pub fn status(&self) -> PoolStatus {
        let status = match &self.pools {
            Pools::Pg(pool) => pool.status(),
            Pools::Sqlite(pool) => pool.status(),
        };
        PoolStatus {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }

    /// The backend this pool talks to.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Pg(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// True when this pool talks to PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.pools, Pools::Pg(_))
    }

    /// Takes a connection from the pool.
    pub async fn conn(&self) -> DbResult<DbConn> {
        Ok(match &self.pools {
            Pools::Pg(pool) => DbConn::Pg(pool.get().await?),
            Pools::Sqlite(pool) => DbConn::Sqlite(pool.get().await?),
        })
    }

    /// Applies every pending migration; returns how many ran.
    pub async fn run_migrations(&self) -> DbResult<usize> {
        let conn = self.conn().await?;
        // The harness runs the synchronous migration code on this worker (block_in_place),
        // so it needs a multi-threaded runtime; it takes the connection by value.
        let applied = match conn {
            DbConn::Pg(pooled) => {
                let conn = Object::take(pooled);
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map_err(|e| DbError::Migration(e.to_string()))?
                    .len()
            }
            DbConn::Sqlite(pooled) => {
                let conn = Object::take(pooled);
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| DbError::Migration(e.to_string()))?
                    .len()
            }
        };
        Ok(applied)
    }

    /// Runs `body` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    /// SQLite transactions take turns on this pool's writer lock, then start with
    /// `BEGIN IMMEDIATE`, taking SQLite's write lock up front, so read-then-write
    /// transactions never fail as "locked". Never start a transaction inside another.
    pub async fn transaction<T, E>(
        &self,
        body: impl AsyncFnOnce(&mut DbConn) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let _writer_turn = match self.pools {
            Pools::Sqlite(_) => Some(self.sqlite_writer.lock().await),
            Pools::Pg(_) => None,
        };
        let mut conn = self.conn().await?;
        conn.begin().await?;
        match body(&mut conn).await {
            Ok(value) => {
                conn.commit().await?;
                Ok(value)
            }
            Err(err) => {
                // A failed rollback leaves the transaction manager broken; the pool then
                // discards the connection, which rolls back on the server side.
                if let Err(rollback) = conn.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(err)
            }
        }
    }
}

type PgTransactions = <AsyncPgConnection as AsyncConnection>::TransactionManager;
type SqliteTransactions = <SqliteConn as AsyncConnection>::TransactionManager;

impl DbConn {
    async fn begin(&mut self) -> DbResult<()> {
        match self {
            DbConn::Pg(c) => PgTransactions::begin_transaction(&mut **c).await?,
            DbConn::Sqlite(c) => {
                c.spawn_blocking(|c| {
                    diesel::connection::AnsiTransactionManager::begin_transaction_sql(
                        c,
                        "BEGIN IMMEDIATE",
                    )
                })
                .await?
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> DbResult<()> {
        match self {
            DbConn::Pg(c) => PgTransactions::commit_transaction(&mut **c).await?,
            DbConn::Sqlite(c) => SqliteTransactions::commit_transaction(&mut **c).await?,
        }
        Ok(())
    }

    async fn rollback(&mut self) -> DbResult<()> {
        match self {
            DbConn::Pg(c) => PgTransactions::rollback_transaction(&mut **c).await?,
            DbConn::Sqlite(c) => SqliteTransactions::rollback_transaction(&mut **c).await?,
        }
        Ok(())
    }

    /// Cheap liveness probe for `/readyz`.
    pub async fn ping(&mut self) -> DbResult<()> {
        use diesel_async::SimpleAsyncConnection;
        with_conn!(self, |c| c.batch_execute("SELECT 1").await)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Synchronous {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
    }

    /// What `PRAGMA synchronous` says on a pooled connection (0 OFF, 1 NORMAL, 2 FULL).
    async fn synchronous_of(setting: SqliteSynchronous) -> Result<i32, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let pool = DbPool::connect(
            &DatabaseTarget::Sqlite(dir.path().join("chatql.db"), setting),
            1,
        )?;
        let mut conn = pool.conn().await?;
        let row: Synchronous = with_conn!(&mut conn, |c| {
            diesel_async::RunQueryDsl::get_result(diesel::sql_query("PRAGMA synchronous"), c).await
        })?;
        Ok(row.synchronous)
    }

    #[tokio::test]
    async fn sqlite_acknowledges_commits_once_they_are_on_disk_unless_told_otherwise()
    -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(synchronous_of(SqliteSynchronous::Full).await?, 2);
        assert_eq!(synchronous_of(SqliteSynchronous::Normal).await?, 1);
        // The default is FULL.
        let config = crate::config::Config::from_args(["chatql"])?;
        assert_eq!(config.storage.sqlite_synchronous, SqliteSynchronous::Full);
        Ok(())
    }
}
