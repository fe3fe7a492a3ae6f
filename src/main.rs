//! The `chatql` command line: serve, migrate, mint a token, back up, export, import,
//! print the schema.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use chatql::config::{Config, DatabaseTarget, LogArgs, LogFormat, MetricsAt, StorageArgs};
use chatql::error::AppError;
use chatql::server::StartError;
use chatql::vocabulary::ids::{ChatId, UserId};
use chatql::{db, domain, graphql, server};
use chrono::NaiveDateTime;

/// mimalloc instead of glibc's allocator: GraphQL execution allocates many small,
/// short-lived objects per field, and glibc malloc/free were ~25 % of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// chatql: a GraphQL API server for chat and instant messaging.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value, parsed once at start; `serve` takes the whole configuration"
)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(Config),
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Mint a JWT for a user, for local use.
    Token {
        /// The user: a username or a user id.
        #[arg(long)]
        user: String,
        /// Create the user first when no such username exists.
        #[arg(long)]
        create: bool,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 30 * 24 * 3600)]
        ttl: u64,
        #[command(flatten)]
        storage: StorageArgs,
        /// Secret for signing JWTs (HS256): the server's. Generated and stored in the data
        /// dir when absent.
        #[arg(long, env = "CHATQL_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Write a consistent copy of the SQLite database to PATH while the server runs
    /// (PostgreSQL: use pg_dump).
    Backup {
        /// Where to write the copy: a file that does not exist yet.
        path: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Write a JSON Lines dump of the data to stdout, read in one consistent snapshot
    /// (see the README's "Export").
    Export {
        /// Only this chat (its global id, or its number in the dump); repeatable.
        #[arg(long = "chat", value_parser = parse_chat_id)]
        chats: Vec<ChatId>,
        /// Only the chats this user is a member of (global id or number); repeatable.
        #[arg(long = "user", value_parser = parse_user_id)]
        users: Vec<UserId>,
        /// Only messages created at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: Option<NaiveDateTime>,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Read a dump made by `chatql export` (or OpenAI-style conversations, or an IM
    /// frontend's UI state) into this database (see the README's "Import").
    Import {
        /// The file to read; stdin when absent or `-`.
        file: Option<PathBuf>,
        /// What the input is.
        #[arg(long, value_enum, default_value_t = ImportFormat::Chatql)]
        format: ImportFormat,
        /// `openai`: the username whose conversations these are (found or created).
        #[arg(long, required_if_eq("format", "openai"))]
        user: Option<String>,
        /// `openai`: the assistant's username (a bot user, found or created).
        #[arg(long, default_value = "assistant")]
        assistant: String,
        /// `openai` and `frontend`: where the data comes from, so a second import of the
        /// same source adds nothing (`frontend`: the app, when the file has no `app`;
        /// `openai`: by default `openai:<user>`).
        #[arg(long)]
        origin: Option<String>,
        /// Skip a bad line or item (listed at the end) instead of stopping at it.
        #[arg(long)]
        skip_bad: bool,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Print the GraphQL schema (SDL) to stdout.
    PrintSchema,
}

/// The formats `chatql import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ImportFormat {
    /// A dump made by `chatql export`.
    Chatql,
    /// OpenAI-style conversations: `{"messages": [{"role", "content"}]}` per line, or a
    /// JSON array of them.
    Openai,
    /// An IM frontend's UI state: users, and chats with members and messages.
    Frontend,
}

fn parse_chat_id(text: &str) -> Result<ChatId, String> {
    text.parse()
        .map(ChatId)
        .or_else(|_| ChatId::from_global(text).map_err(|e| e.to_string()))
}

fn parse_user_id(text: &str) -> Result<UserId, String> {
    text.parse()
        .map(UserId)
        .or_else(|_| UserId::from_global(text).map_err(|e| e.to_string()))
}

fn parse_time(text: &str) -> Result<NaiveDateTime, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.naive_utc())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

fn init_tracing(log: &LogArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format {
        // Colours only for a person at a terminal: escapes in a file or a log shipper's
        // pipe are noise.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    /// The server (or the state a command needs) could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A database call failed.
    #[error("database: {0}")]
    Db(#[from] db::DbError),
    /// An export or import failed.
    #[error("{0}")]
    Transfer(#[from] domain::transfer::TransferError),
    /// A service refused or failed (e.g. an invalid username).
    #[error("{0}")]
    App(#[from] AppError),
    /// Serving stopped with an I/O error.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    /// The input of `import` could not be read.
    #[error("reading {0}: {1}")]
    Input(String, #[source] std::io::Error),
    /// `backup` was given a path that already exists.
    #[error("{0} exists: backup writes a new file, it does not overwrite one")]
    BackupExists(String),
    /// `backup` or `export` of a SQLite file that is not there.
    #[error("no SQLite database at {0}")]
    NoDatabase(String),
    /// `backup` on PostgreSQL.
    #[error("the database is PostgreSQL: take a backup with pg_dump (see the README's Backups)")]
    BackupNotSqlite,
    /// `token --user` names nobody, and `--create` was not given.
    #[error("no user `{0}` (pass --create to create it)")]
    NoSuchUser(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Some(command) => command,
        // `chatql` alone serves, configured by the environment.
        None => match Config::from_args(["chatql"]) {
            Ok(config) => Command::Serve(config),
            Err(e) => e.exit(),
        },
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Command::Serve(config) = &command {
        // SQLite runs each statement on a blocking thread, at most one per pooled
        // connection at a time; with tokio's default cap (512), 10,000 clients connecting
        // at once left ~90 threads behind, each keeping its own allocator pages (several
        // KB per open subscription, varying run to run). Twice the pool keeps a spare
        // thread per connection for files and thumbnails.
        runtime.max_blocking_threads((2 * config.pool_size).max(8));
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(run(command)),
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve(config) => {
            init_tracing(&config.log);
            serve(config).await
        }
        Command::Migrate { storage, log } => {
            init_tracing(&log);
            migrate(&storage).await
        }
        Command::Token {
            user,
            create,
            ttl,
            storage,
            jwt_secret,
            log,
        } => {
            init_tracing(&log);
            match Config::for_storage(storage, jwt_secret) {
                Ok(config) => token(config, &user, create, ttl).await,
                Err(e) => e.exit(),
            }
        }
        Command::Backup { path, storage, log } => {
            init_tracing(&log);
            backup(&storage, &path).await
        }
        Command::Export {
            chats,
            users,
            since,
            storage,
            log,
        } => {
            init_tracing(&log);
            let request = domain::transfer::ExportRequest {
                chats,
                users,
                since,
            };
            export(&storage, &request).await
        }
        Command::Import {
            file,
            format,
            user,
            assistant,
            origin,
            skip_bad,
            storage,
            log,
        } => {
            init_tracing(&log);
            let source = ImportSource {
                file,
                format,
                user,
                assistant,
                origin,
            };
            import(
                &storage,
                &source,
                domain::transfer::ImportOptions { skip_bad },
            )
            .await
        }
        Command::PrintSchema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "command failed");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), CommandError> {
    let bind = config.bind;
    let config_metrics = config.metrics;
    let database = config.database();
    let app = server::build_app(config).await?;
    let listener = server::bind(bind).await?;
    let addr = listener.local_addr().map_err(CommandError::Serve)?;
    tracing::info!(?database, "database ready");
    tracing::info!(
        "chatql listening on http://{addr} — GraphiQL at http://{addr}/ , API at http://{addr}/graphql"
    );
    if let MetricsAt::Bind(metrics) = config_metrics {
        tracing::info!("metrics at http://{metrics}/metrics");
    }
    tracing::info!(
        "get a token: `{} token --user <name> --create`, then send `Authorization: Bearer <token>`",
        this_command()
    );
    let trigger = app.shutdown().clone();
    tokio::spawn(async move {
        server::shutdown_signal().await;
        trigger.cancel();
    });
    server::serve(app, listener)
        .await
        .map_err(CommandError::Serve)
}

/// How the person reading the log runs chatql again: through cargo when cargo started
/// this process (it sets `CARGO` and `CARGO_MANIFEST_DIR` for what it runs), else the
/// program as it was invoked (an installed binary's name or path).
fn this_command() -> String {
    let by_cargo =
        std::env::var_os("CARGO").is_some() || std::env::var_os("CARGO_MANIFEST_DIR").is_some();
    if by_cargo {
        return "cargo run --release --".to_owned();
    }
    std::env::args_os()
        .next()
        .map(|program| program.to_string_lossy().into_owned())
        .filter(|program| !program.is_empty())
        .unwrap_or_else(|| "chatql".to_owned())
}

async fn migrate(storage: &StorageArgs) -> Result<(), CommandError> {
    let pool = db::DbPool::connect(&storage.database(), 1)?;
    let applied = pool.run_migrations().await?;
    tracing::info!(applied, "migrations applied");
    server::use_search_config(&pool, &storage.search_config).await?;
    Ok(())
}

/// One connection to a database that must exist already: connecting to a SQLite file that
/// is not there would create an empty database, and back up or export that.
fn connect_existing(storage: &StorageArgs) -> Result<db::DbPool, CommandError> {
    let database = storage.database();
    if let DatabaseTarget::Sqlite(file, _) = &database
        && !file.exists()
    {
        return Err(CommandError::NoDatabase(file.display().to_string()));
    }
    Ok(db::DbPool::connect(&database, 1)?)
}

async fn backup(storage: &StorageArgs, path: &Path) -> Result<(), CommandError> {
    if path.exists() {
        return Err(CommandError::BackupExists(path.display().to_string()));
    }
    let pool = connect_existing(storage)?;
    let started = Instant::now();
    match db::backup::copy_sqlite_into(&pool, path).await? {
        db::backup::BackupOutcome::Written => {
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "backup written to {} ({bytes} bytes) in {:.1} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        db::backup::BackupOutcome::NotSqlite => Err(CommandError::BackupNotSqlite),
    }
}

async fn export(
    storage: &StorageArgs,
    request: &domain::transfer::ExportRequest,
) -> Result<(), CommandError> {
    let pool = connect_existing(storage)?;
    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let summary = domain::transfer::export(&pool, request, &mut out).await?;
    eprintln!(
        "exported {} users, {} chats, {} members, {} messages ({} edits, {} reactions, \
         {} mentions, {} pins), {} sessions, {} blocks, {} thread reads in {:.1} s",
        summary.users,
        summary.chats,
        summary.members,
        summary.messages,
        summary.edits,
        summary.reactions,
        summary.mentions,
        summary.pins,
        summary.sessions,
        summary.blocks,
        summary.thread_reads,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `chatql import` reads, and how.
struct ImportSource {
    file: Option<PathBuf>,
    format: ImportFormat,
    user: Option<String>,
    assistant: String,
    origin: Option<String>,
}

/// A reader that counts the bytes read through it (for the progress bar).
struct CountingReader<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// The input file (or stdin), and its size when it is a regular file.
fn open_input(file: Option<&Path>) -> Result<(Box<dyn std::io::Read>, Option<u64>), CommandError> {
    let opened = match file {
        Some(path) if path != Path::new("-") => std::fs::File::open(path)
            .map_err(|e| CommandError::Input(path.display().to_string(), e))?,
        // stdin redirected from a file has a size too (a pipe has none).
        _ => {
            use std::os::fd::AsFd;
            let stdin = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| CommandError::Input("stdin".to_owned(), e))?;
            std::fs::File::from(stdin)
        }
    };
    let size = opened
        .metadata()
        .ok()
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len());
    Ok((Box::new(opened), size))
}

async fn import(
    storage: &StorageArgs,
    source: &ImportSource,
    options: domain::transfer::ImportOptions,
) -> Result<(), CommandError> {
    use domain::transfer::{ImportInput, foreign};
    let (input, size) = open_input(source.file.as_deref())?;
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut input = std::io::BufReader::with_capacity(
        1 << 16,
        CountingReader {
            inner: input,
            read: read.clone(),
        },
    );
    let read_whole = |input: &mut dyn std::io::Read| {
        let mut text = String::new();
        input
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|e| CommandError::Input("the input".to_owned(), e))
    };
    let input = match source.format {
        ImportFormat::Chatql => ImportInput::Dump(input),
        ImportFormat::Openai => {
            let options = foreign::openai::OpenAiOptions {
                user: source.user.clone().unwrap_or_default(),
                assistant: source.assistant.clone(),
                origin: source.origin.clone(),
            };
            ImportInput::Converted(foreign::openai::convert(
                &read_whole(&mut input)?,
                &options,
            )?)
        }
        ImportFormat::Frontend => ImportInput::Converted(foreign::frontend::convert(
            &read_whole(&mut input)?,
            source.origin.as_deref(),
        )?),
    };
    let pool = db::DbPool::connect(&storage.database(), 2)?;
    pool.run_migrations().await?;
    server::use_search_config(&pool, &storage.search_config).await?;
    let started = Instant::now();
    // A dump from a file: a bar over its bytes; converted records: over their count (the
    // document is read already); a dump from a pipe: counts and rate only.
    let (total, in_bytes) = match (&input, size) {
        (ImportInput::Dump(_), Some(size)) => (Some(size), true),
        (ImportInput::Dump(_), None) => (None, false),
        (ImportInput::Converted(items), _) => (Some(items.len() as u64), false),
    };
    let bar = import_progress_bar(total, in_bytes);
    let summary = domain::transfer::import(&pool, input, options, |so_far| {
        bar.set_position(if in_bytes {
            read.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            so_far.lines
        });
        bar.set_message(format!(
            "{} messages ({:.0}/s), {} users, {} chats added; {} already there",
            so_far.messages,
            so_far.messages as f64 / started.elapsed().as_secs_f64().max(0.001),
            so_far.users,
            so_far.chats,
            so_far.existing
        ));
    })
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    for (place, reason) in &summary.skipped {
        eprintln!("skipped {place}: {reason}");
    }
    eprintln!(
        "imported {} records in {:.1} s: added {} users, {} chats, {} messages and {} other rows; \
         {} already there; {} bad lines or items skipped",
        summary.lines,
        started.elapsed().as_secs_f64(),
        summary.users,
        summary.chats,
        summary.messages,
        summary.others,
        summary.existing,
        summary.skipped_count
    );
    Ok(())
}

/// The import's progress on stderr, when stderr is a terminal: a bar when the size of
/// the input is known (`in_bytes`: in bytes, else in records), a spinner otherwise.
fn import_progress_bar(total: Option<u64>, in_bytes: bool) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
    }
    let (bar, template) = match (total, in_bytes) {
        (Some(total), true) => (
            ProgressBar::new(total),
            "{bar:30} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec}, ~{eta} left: {msg}",
        ),
        (Some(total), false) => (
            ProgressBar::new(total),
            "{bar:30} {percent:>3}% {pos}/{len} records, ~{eta} left: {msg}",
        ),
        (None, _) => (
            ProgressBar::new_spinner(),
            "{spinner} {pos} records {per_sec}: {msg}",
        ),
    };
    match ProgressStyle::with_template(template) {
        Ok(style) => bar.with_style(style),
        Err(_) => bar,
    }
}

async fn token(config: Config, user: &str, create: bool, ttl: u64) -> Result<(), CommandError> {
    let app = server::build_app(config).await?;
    let mut conn = app.db().conn().await?;
    let by_name = db::users::find_by_username(&mut conn, user).await?;
    let by_id = match UserId::from_global(user) {
        Ok(id) if by_name.is_none() => db::users::find(&mut conn, id).await?,
        _ => None,
    };
    drop(conn);
    let found = match by_name.or(by_id) {
        Some(found) => found,
        None if create => {
            domain::users::create_unchecked(
                &app,
                domain::users::CreateUser {
                    username: user.to_owned(),
                    ..Default::default()
                },
            )
            .await?
        }
        None => return Err(CommandError::NoSuchUser(user.to_owned())),
    };
    let token =
        app.auth()
            .issue_token(found.id, found.token_generation, Duration::from_secs(ttl))?;
    println!("{token}");
    eprintln!(
        "token for {} ({}); send it as `Authorization: Bearer <token>`",
        found.username,
        found.id.to_global()
    );
    Ok(())
}
