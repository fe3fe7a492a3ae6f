//! Configuration: one `Config` read from flags and environment variables, validated at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// When SQLite acknowledges a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    /// Once it is on disk (`synchronous = FULL`): an acknowledged message survives a power
    /// loss or an OS crash.
    Full,
    /// Once it is in the write-ahead log (`synchronous = NORMAL`): it survives a crash of
    /// chatql, but the newest commits may be lost on power loss or an OS crash.
    Normal,
}

impl SqliteSynchronous {
    /// The `PRAGMA synchronous` value.
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

/// Where `/metrics` is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAt {
    /// On the API's own listener (`--bind`), next to `/graphql`.
    Api,
    /// Nowhere.
    Off,
    /// Only on a listener of its own at this address (not on the API's).
    Bind(SocketAddr),
}

impl std::str::FromStr for MetricsAt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "api" => Ok(MetricsAt::Api),
            "off" => Ok(MetricsAt::Off),
            address => address.parse().map(MetricsAt::Bind).map_err(|_| {
                format!("`{address}` is neither `api`, `off` nor an address like 127.0.0.1:9100")
            }),
        }
    }
}

/// Where the data lives: what every command that opens the database needs.
#[derive(Clone, Debug, Args)]
pub struct StorageArgs {
    /// Database: a SQLite file path (or `sqlite://path`) or a `postgres://` URL.
    /// Default: `chatql.db` in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the default SQLite file and generated secrets.
    #[arg(long, env = "CHATQL_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// When SQLite acknowledges a commit: `full` (on disk, survives power loss; the
    /// default) or `normal` (in the write-ahead log: faster, the newest commits may be
    /// lost on power loss). No effect on PostgreSQL.
    #[arg(
        long,
        env = "CHATQL_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSynchronous,

    /// PostgreSQL text search configuration for message search (`english`, `simple`,
    /// `german`, …: how words are split and stemmed). Changing it rebuilds the search
    /// column at the next start. SQLite always splits on Unicode word boundaries and stems
    /// English words.
    #[arg(long, env = "CHATQL_SEARCH_CONFIG", default_value = "english")]
    pub search_config: String,
}

impl StorageArgs {
    /// The database to use: `DATABASE_URL` or the default SQLite file in the data dir.
    pub fn database(&self) -> DatabaseTarget {
        match self.database_url.as_deref() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseTarget::Postgres(url.to_owned())
            }
            Some(url) => DatabaseTarget::Sqlite(
                PathBuf::from(
                    url.strip_prefix("sqlite://")
                        .or_else(|| url.strip_prefix("sqlite:"))
                        .unwrap_or(url),
                ),
                self.sqlite_synchronous,
            ),
            None => {
                DatabaseTarget::Sqlite(self.data_dir.join("chatql.db"), self.sqlite_synchronous)
            }
        }
    }
}

/// Attachments: where their bytes are kept and what an upload may be.
#[derive(Clone, Debug, Args)]
pub struct MediaArgs {
    /// Where attachment bytes are stored: a directory (or `file:///dir`), or
    /// `s3://bucket[/prefix]` for S3-compatible storage (credentials, region and endpoint
    /// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP`). Default: `media` in the data directory.
    #[arg(long, env = "CHATQL_MEDIA_STORE")]
    pub media_store: Option<String>,

    /// The server's public base URL (`https://chat.example.com`), put before the paths of
    /// media URLs; without it they are paths (`/media/…`), to resolve against the API's
    /// address.
    #[arg(long, env = "CHATQL_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Largest file sent inline with a GraphQL multipart request, in bytes.
    #[arg(long, env = "CHATQL_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Largest file sent by the two-step upload (`requestUpload`, then a PUT), in bytes.
    #[arg(long, env = "CHATQL_MAX_LARGE_UPLOAD_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_large_upload_bytes: u64,

    /// Most files in one multipart request.
    #[arg(long, env = "CHATQL_MAX_UPLOADS_PER_REQUEST", default_value_t = 10)]
    pub max_uploads_per_request: usize,

    /// Accepted upload types, as sniffed from the bytes: `type/subtype` or `type/*`,
    /// comma-separated.
    #[arg(
        long,
        env = "CHATQL_UPLOAD_TYPES",
        value_delimiter = ',',
        default_value = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,\
application/zip,audio/*,video/*,\
application/vnd.openxmlformats-officedocument.wordprocessingml.document,\
application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,\
application/vnd.openxmlformats-officedocument.presentationml.presentation,\
application/vnd.oasis.opendocument.text"
    )]
    pub upload_types: Vec<String>,

    /// Most pixels an uploaded image may have (its header is read before any pixel is
    /// decoded; more is refused as a likely decompression bomb).
    #[arg(long, env = "CHATQL_MAX_IMAGE_PIXELS", default_value_t = 50_000_000)]
    pub max_image_pixels: u64,

    /// How long a signed media URL (`Attachment.url`, `thumbnailUrl`) stays valid, in
    /// seconds (at least this, at most a quarter more).
    #[arg(long, env = "CHATQL_MEDIA_URL_TTL_SECS", default_value_t = 3600)]
    pub media_url_ttl_secs: u64,

    /// How long an upload no message carries is kept, in seconds.
    #[arg(long, env = "CHATQL_PENDING_UPLOAD_TTL_SECS", default_value_t = 24 * 3600)]
    pub pending_upload_ttl_secs: u64,

    /// Seconds between sweeps removing expired uploads and bytes nothing references.
    #[arg(long, env = "CHATQL_MEDIA_SWEEP_SECS", default_value_t = 300)]
    pub media_sweep_secs: u64,
}

/// How the process logs: what every command needs.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Log format (levels via `RUST_LOG`).
    #[arg(long, env = "CHATQL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Everything the server needs to run. Every field is a flag and an environment variable.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CHATQL_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub storage: StorageArgs,

    /// Where `/metrics` (Prometheus) is served: `api` (on `--bind`, next to `/graphql`),
    /// `off`, or an address (then only on a listener of its own there).
    #[arg(long, env = "CHATQL_METRICS", default_value = "api")]
    pub metrics: MetricsAt,

    /// Maximum number of pooled database connections.
    #[arg(long, env = "CHATQL_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,

    /// Secret for signing JWTs (HS256). Generated and stored in the data dir when absent.
    #[arg(long, env = "CHATQL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Admin key (sent as `X-Admin-Key`) for user management and `issueToken`.
    /// Generated and stored in the data dir when absent.
    #[arg(long, env = "CHATQL_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Largest page a connection field returns (`first`/`last` above it is an error).
    #[arg(long, env = "CHATQL_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: usize,

    /// Longest message content, in characters.
    #[arg(long, env = "CHATQL_MAX_MESSAGE_LENGTH", default_value_t = 10_000)]
    pub max_message_length: usize,

    /// How long after sending a message its sender may edit it, in seconds (0 = no limit).
    #[arg(long, env = "CHATQL_EDIT_WINDOW_SECS", default_value_t = 300)]
    pub edit_window_secs: u64,

    /// Allowed CORS origins, comma-separated; `*` allows any origin.
    #[arg(
        long,
        env = "CHATQL_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub media: MediaArgs,

    /// Largest accepted HTTP request body, in bytes.
    #[arg(long, env = "CHATQL_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest response (or subscription message) sent, in bytes; a bigger one is replaced
    /// by a `LIMIT_EXCEEDED` error.
    #[arg(long, env = "CHATQL_MAX_RESPONSE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Deepest accepted query nesting.
    #[arg(long, env = "CHATQL_MAX_QUERY_DEPTH", default_value_t = 16)]
    pub max_query_depth: usize,

    /// Highest accepted query complexity: one point per field, a list field's items counted
    /// as many times as it may return them (`first`/`last`, else the default page).
    #[arg(long, env = "CHATQL_MAX_QUERY_COMPLEXITY", default_value_t = 5000)]
    pub max_query_complexity: usize,

    /// Most tokens (names, punctuators, values) in one GraphQL document, checked before it
    /// is parsed.
    #[arg(long, env = "CHATQL_MAX_QUERY_TOKENS", default_value_t = 10_000)]
    pub max_query_tokens: usize,

    /// Most mutation fields (aliases included) in one request; each also counts against
    /// the rate limit.
    #[arg(long, env = "CHATQL_MAX_MUTATIONS_PER_REQUEST", default_value_t = 25)]
    pub max_mutations_per_request: usize,

    /// Interval between WebSocket keep-alive pings, in seconds.
    #[arg(long, env = "CHATQL_WS_KEEPALIVE_SECS", default_value_t = 30)]
    pub ws_keepalive_secs: u64,

    /// How long a new WebSocket may take to send `connection_init`, in seconds.
    #[arg(long, env = "CHATQL_WS_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_init_timeout_secs: u64,

    /// Largest WebSocket message (and frame) a client may send, in bytes; a bigger one
    /// closes the socket with 1009.
    #[arg(long, env = "CHATQL_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Most WebSockets from one peer address that have not completed `connection_init`;
    /// more are refused with HTTP 429 before the upgrade.
    #[arg(long, env = "CHATQL_WS_MAX_PENDING_PER_IP", default_value_t = 16)]
    pub ws_max_pending_per_ip: usize,

    /// Most WebSockets in all that have not completed `connection_init`; more are refused
    /// with HTTP 429 before the upgrade.
    #[arg(long, env = "CHATQL_WS_MAX_PENDING", default_value_t = 1024)]
    pub ws_max_pending: usize,

    /// Most bytes queued for one WebSocket and not yet written to it; a client that falls
    /// further behind is closed with 1013 (try again later).
    #[arg(long, env = "CHATQL_WS_MAX_OUTGOING_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub ws_max_outgoing_bytes: usize,

    /// Most WebSockets one user may hold open at once.
    #[arg(long, env = "CHATQL_MAX_SOCKETS_PER_USER", default_value_t = 16)]
    pub max_sockets_per_user: usize,

    /// Most subscriptions one user may hold open at once, over all their sockets.
    #[arg(long, env = "CHATQL_MAX_SUBSCRIPTIONS_PER_USER", default_value_t = 64)]
    pub max_subscriptions_per_user: usize,

    /// Mutations one user may send per minute (0 = unlimited); the admin key is not limited.
    #[arg(long, env = "CHATQL_MUTATIONS_PER_MINUTE", default_value_t = 600)]
    pub mutations_per_minute: u32,

    /// Seconds a `setTyping(typing: true)` lasts unless sent again.
    #[arg(long, env = "CHATQL_TYPING_TTL_SECS", default_value_t = 6)]
    pub typing_ttl_secs: u64,

    /// Seconds without a message after which the next one opens a new session of its chat
    /// (0 = sessions end only by `endSession`/`startSession`).
    #[arg(long, env = "CHATQL_SESSION_TIMEOUT_SECS", default_value_t = 900)]
    pub session_timeout_secs: u64,

    /// Events buffered per subscriber before it is told to resync (`ResyncRequired`).
    #[arg(long, env = "CHATQL_EVENT_BUFFER", default_value_t = 1024)]
    pub event_buffer: usize,
}

/// Which database a URL points at. Its `Debug` form (what the "database ready" log line
/// prints) hides a PostgreSQL URL's password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A PostgreSQL URL, passed on unchanged.
    Postgres(String),
    /// A SQLite file, and when commits are acknowledged.
    Sqlite(PathBuf, SqliteSynchronous),
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseTarget::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&without_password(url))
                .finish(),
            DatabaseTarget::Sqlite(path, synchronous) => f
                .debug_tuple("Sqlite")
                .field(path)
                .field(synchronous)
                .finish(),
        }
    }
}

/// `scheme://user:secret@host/…` as `scheme://user:***@host/…`; other URLs unchanged.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _secret)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[derive(Parser)]
struct ConfigOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Parses a config from command-line style arguments (the first is the program name),
    /// falling back to environment variables and defaults.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        ConfigOnly::try_parse_from(args).map(|only| only.config)
    }

    /// The configuration of a command that takes only `storage` and a JWT secret on its
    /// command line (`token`): everything else from the environment and the defaults.
    pub fn for_storage(
        storage: StorageArgs,
        jwt_secret: Option<String>,
    ) -> Result<Self, clap::Error> {
        let mut config = Self::from_args(["chatql"])?;
        config.storage = storage;
        config.jwt_secret = jwt_secret.or(config.jwt_secret);
        Ok(config)
    }

    /// Checks values that clap cannot; called once at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool_size == 0 {
            return Err("pool size must be at least 1".into());
        }
        if self.max_page_size == 0 {
            return Err("max page size must be at least 1".into());
        }
        if self.max_message_length == 0 {
            return Err("max message length must be at least 1".into());
        }
        if self.ws_max_message_bytes < 1024 {
            // Below this a connection_init with a token no longer fits.
            return Err("ws max message bytes must be at least 1024".into());
        }
        if self.ws_max_pending_per_ip == 0 || self.ws_max_pending == 0 {
            return Err("ws max pending sockets (per IP and in all) must be at least 1".into());
        }
        if self.ws_max_outgoing_bytes == 0 {
            return Err("ws max outgoing bytes must be at least 1".into());
        }
        if self.media.max_upload_bytes == 0 || self.media.max_large_upload_bytes == 0 {
            return Err("upload size limits must be at least 1 byte".into());
        }
        if self.media.media_sweep_secs == 0 {
            return Err("media sweep interval must be at least 1 second".into());
        }
        if matches!(&self.jwt_secret, Some(secret) if secret.len() < 16) {
            return Err("JWT secret must be at least 16 characters".into());
        }
        Ok(())
    }

    /// The database to use: `DATABASE_URL` or the default SQLite file in the data dir.
    pub fn database(&self) -> DatabaseTarget {
        self.storage.database()
    }

    /// The edit window; `None` means unlimited.
    pub fn edit_window(&self) -> Option<Duration> {
        (self.edit_window_secs > 0).then(|| Duration::from_secs(self.edit_window_secs))
    }

    /// Where attachment bytes are stored (`--media-store`, else `media` in the data dir).
    pub fn media_store(&self) -> String {
        match &self.media.media_store {
            Some(url) => url.clone(),
            None => self.storage.data_dir.join("media").display().to_string(),
        }
    }

    /// Path of a secret file kept in the data dir.
    pub fn secret_path(&self, name: &str) -> PathBuf {
        self.storage.data_dir.join(name)
    }
}

/// Reads a secret from `path`, or generates a random one, stores it there (mode 0600) and
/// returns it with `generated = true` so the caller can warn.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<(String, bool)> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok((existing, false));
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &secret)?;
    Ok((secret, true))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::{DatabaseTarget, without_password};

    #[test]
    fn the_logged_database_url_hides_its_password() {
        let url = "postgres://chat:s3cr3t:x@db.internal:5432/chatql?sslmode=require";
        let shown = format!("{:?}", DatabaseTarget::Postgres(url.into()));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("postgres://chat:***@db.internal:5432/chatql?sslmode=require"),
            "{shown}"
        );
        for unchanged in [
            "postgres://chat@db/chatql",
            "postgres://db/chatql?user=a@b",
            "not a url",
        ] {
            assert_eq!(without_password(unchanged), unchanged);
        }
    }
}
