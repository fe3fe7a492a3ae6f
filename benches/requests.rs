//! Request-path load tool (not a timed test): throughput, latency and CPU per request of
//! the everyday queries and mutations, on SQLite or PostgreSQL.
//!
//! Seeds a fresh database itself, in seconds, with set-based SQL (no API calls): 10 users,
//! 100 group chats of 4 members with `--messages` (default 1,000) messages each, every 20th
//! a reply to an earlier message of its chat. User 1, the bench user, is in all 100 chats.
//! `--big-chat-messages M` adds one more chat with M messages, the most recently active one,
//! whose members are users 1–4; user 4 has read none of it. Every derived column is written
//! as the server itself keeps it: `chats.last_message_id`/`last_activity_at`, and each
//! member's read and delivery watermark at the last message they sent (senders have read
//! what they wrote). The schema comes from `chatql migrate`; the seed is checked against
//! the API (unread count, last message, chat count) before anything is measured.
//!
//! Then, for each workload, it starts the release server as its own process on a free
//! loopback port (mutation rate limit off), and C closed-loop clients, each on its own
//! HTTP/1.1 keep-alive connection, send a request, await the answer and repeat: a warm-up,
//! then a measured window. Per workload it prints requests, req/s, latency p50/p99/max,
//! errors (a non-2xx status, or an `errors` array in the body), the server process's CPU
//! per request (utime+stime from `/proc`), its RSS afterwards, and on PostgreSQL the
//! cluster's CPU per request: the postmaster (the parent of this tool's own backend, found
//! with `pg_backend_pid()`), all its children and the children that exited in the window
//! (its cutime/cstime). That counts every database of the cluster, so use a quiet server.
//! Client and server share the machine's cores. A markdown table for the README ends the
//! report.
//!
//! ```text
//! cargo build --release                                     # the server binary it starts
//! cargo bench --bench requests                              # SQLite, every workload
//! cargo bench --bench requests -- --postgres                # a throwaway PostgreSQL 15
//! cargo bench --bench requests -- --database-url postgres://user@host/postgres
//! cargo bench --bench requests -- --postgres --big-chat-messages 10000000
//! cargo bench --bench requests -- --workloads newest50,chatlist --duration 30
//! cargo bench --bench requests -- --server-bin old/chatql --compare-bin target/release/chatql
//! ```
//!
//! Workloads (`--workloads`, default all; the `-big` ones need `--big-chat-messages`), in
//! the order they run whatever the order given, with their default concurrency
//! (`--concurrency` sets one for all):
//! - `newest50` (32): the chat and its newest 50 messages, one chat;
//! - `newest50-random` (32): the same for a random chat of the 100, per request;
//! - `before` (32): the 50 messages before a cursor about 500 messages back;
//! - `chatlist` (32): `chats(first: 20)` with unread counts and last messages;
//! - `newest50-big`, `chatlist-big` (as user 4, who read nothing) and `unread-big` (the big
//!   chat's `unreadCount` as user 4), 32 each;
//! - `send-one` (8): `sendMessage` into one chat, from its 4 members; `--client-ids` adds an
//!   idempotency key as clients do;
//! - `send-spread` (32): sends to random chats, from random members;
//! - `markread` (32): `markRead` of a random chat of the bench user;
//! - `markread-big` (32): `markRead` of the big chat by its 4 members;
//! - `stats-chat` (8): `Chat.statistics` of a random chat of the 100, all time;
//! - `stats-user-hour` (4): the bench user's `User.statistics` (101 chats) over the last hour;
//! - `stats-big-day` (4): the big chat's statistics over the last day (86,400 messages);
//! - `stats-all-day` (1) and `stats-all` (1): the admin key's `statistics` of every chat over
//!   the last day, and over all time (every message: a full pass);
//! - `search-chat` (8): `searchMessages` of a random topic word in a random chat of the 100
//!   (every message ends in one of 1,000 topic words, `topic0`…`topic999`, so a word is in
//!   one message in 1,000); `search-all` (8): the same across all the bench user's chats;
//!   `search-common` (8): `lorem`, a word of every message, across all of them (the ranked
//!   window's worst case). First 20, with snippets.
//!
//! Reads thus see the seeded data, and `chatlist-big`/`unread-big` run before
//! `markread-big` moves user 4's watermark.
//!
//! `--database-url postgres://…` names a server: the tool creates a database
//! `bench_requests_<pid>` there and drops it at the end; `--postgres` first starts a
//! throwaway cluster with `scripts/pg-throwaway` (fsync off) and stops it at the end.
//! `--keep` keeps the database (and the cluster, or the SQLite file) and prints where.
//! `--compare-bin B` runs each workload against `--server-bin` (A) and then B on the same
//! database, restarting the server in between; both rows are printed. Sends add messages,
//! so later workloads see slightly more data. Exits non-zero when a request failed, the
//! server died, a workload completed no request in its window, or the seed did not match
//! what the API reports.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chatql::vocabulary::ids::{ChatId, MessageId, UserId};
use clap::{Parser, ValueEnum};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};

mod common;
use common::{
    Backend, Database, Server, clear_server_env, cluster_cpu_time, cpu_time, percentile,
    postmaster_pid, server_binary,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T = ()> = std::result::Result<T, BoxError>;

const ADMIN_KEY: &str = "requests-bench-admin-key";
const JWT_SECRET: &str = "requests-bench-jwt-secret-0123456789";
/// Users 1..=USERS; user 1 is the bench user.
const USERS: i64 = 10;
/// Group chats 1..=CHATS (the big chat, if any, is CHATS + 1).
const CHATS: i64 = 100;
/// Every REPLY_EVERY-th message replies to an earlier one.
const REPLY_EVERY: i64 = 20;
/// Token index (user id − 1) of the bench user.
const BENCH_USER: usize = 0;
/// The caller index that stands for the admin key.
const ADMIN: usize = usize::MAX;
/// The user who is in the big chat and has read none of it.
const BIG_READER: i64 = 4;
/// How far back the `before` workload starts, in messages.
const BEFORE_DEPTH: usize = 500;
const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                     tempor incididunt ut labore et dolore magna aliqua";

/// The selection of a page of messages, shared by the `newest50*` and `before` workloads.
macro_rules! page_selection {
    () => {
        "edges { cursor node { id sender { id } content createdAt editedAt retracted parent { id } } } pageInfo { hasPreviousPage startCursor }"
    };
}
const NEWEST: &str = concat!(
    "query($id: ID!) { chat(id: $id) { id name } messages(chatId: $id, last: 50) { ",
    page_selection!(),
    " } }"
);
const BEFORE: &str = concat!(
    "query($id: ID!, $before: String!) { chat(id: $id) { id name } ",
    "messages(chatId: $id, last: 50, before: $before) { ",
    page_selection!(),
    " } }"
);
const CHAT_LIST: &str =
    "{ chats(first: 20) { edges { node { name unreadCount lastMessage { content } } } } }";
/// The figures the statistics workloads ask for: all of them.
macro_rules! statistics_figures {
    () => {
        "messages byRole { role count } byKind { kind count } streamedReplies { state count } \
         averageReplyLength sessions activeDays activeChats activeSenders firstActivityAt \
         lastActivityAt"
    };
}
const CHAT_STATISTICS: &str = concat!(
    "query($id: ID!, $since: DateTime) { chat(id: $id) { statistics(since: $since) { ",
    statistics_figures!(),
    " } } }"
);
const USER_STATISTICS: &str = concat!(
    "query($id: ID!, $since: DateTime) { user(id: $id) { statistics(since: $since) { ",
    statistics_figures!(),
    " } } }"
);
const SERVER_STATISTICS: &str = concat!(
    "query($since: DateTime) { statistics(since: $since) { ",
    statistics_figures!(),
    " } }"
);
const SEARCH: &str = "query($q: String!, $chat: ID) { searchMessages(query: $q, chatId: $chat, first: 20) { edges { cursor node { id content createdAt sender { id } } searchMatch { rank snippetHtml } } pageInfo { hasNextPage } } }";
/// How many topic words the seed spreads over the messages (see [`messages_sql`]).
const TOPICS: usize = 1000;
const UNREAD: &str = "query($id: ID!) { chat(id: $id) { unreadCount } }";
const SEND: &str = "mutation($chat: ID!, $content: String!, $clientId: String) { sendMessage(input: {chatId: $chat, content: $content, clientId: $clientId}) { id chat { id } sender { id } content createdAt } }";
const MARK_READ: &str =
    "mutation($chat: ID!) { markRead(chatId: $chat) { lastReadMessageId unreadCount } }";

/// Request-path benchmark for chatql.
#[derive(Parser, Debug, Clone)]
#[command(name = "requests")]
struct Opts {
    /// Seconds each workload is measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds each workload runs before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Concurrent clients for every workload (default: 8 for send-one, 32 for the others).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Workloads to run, comma-separated (default: all that the data set allows).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<Workload>,
    /// Messages per group chat.
    #[arg(long, default_value_t = 1000)]
    messages: u32,
    /// Adds one chat with this many messages (e.g. 10000000) and the `-big` workloads.
    #[arg(long)]
    big_chat_messages: Option<u32>,
    /// A PostgreSQL server (`postgres://…`, any database): a fresh database is created on it
    /// and dropped at the end. Default: a SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Start a throwaway PostgreSQL 15 cluster (`scripts/pg-throwaway`, fsync off) and use it.
    #[arg(long, conflicts_with = "database_url")]
    postgres: bool,
    /// Keep the database (and the throwaway cluster or SQLite file) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Server binary (default: the release `chatql` cargo builds alongside this bench).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A second server binary: each workload runs against --server-bin, then this one.
    #[arg(long)]
    compare_bin: Option<PathBuf>,
    /// Server `--pool-size` (default: the server's default).
    #[arg(long)]
    pool_size: Option<usize>,
    /// Send a unique `clientId` with every `sendMessage`, as real clients do.
    #[arg(long)]
    client_ids: bool,
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Server log filter (`RUST_LOG`); logs go to files shown on failure.
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Benchmark name filters passed by cargo; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    #[value(name = "newest50")]
    Newest50,
    #[value(name = "newest50-random")]
    Newest50Random,
    #[value(name = "before")]
    Before,
    #[value(name = "chatlist")]
    Chatlist,
    #[value(name = "newest50-big")]
    Newest50Big,
    #[value(name = "chatlist-big")]
    ChatlistBig,
    #[value(name = "unread-big")]
    UnreadBig,
    #[value(name = "send-one")]
    SendOne,
    #[value(name = "send-spread")]
    SendSpread,
    #[value(name = "markread")]
    Markread,
    #[value(name = "markread-big")]
    MarkreadBig,
    #[value(name = "stats-chat")]
    StatsChat,
    #[value(name = "stats-user-hour")]
    StatsUserHour,
    #[value(name = "stats-big-day")]
    StatsBigDay,
    #[value(name = "stats-all-day")]
    StatsAllDay,
    #[value(name = "stats-all")]
    StatsAll,
    #[value(name = "search-chat")]
    SearchChat,
    #[value(name = "search-all")]
    SearchAll,
    #[value(name = "search-common")]
    SearchCommon,
}

impl Workload {
    /// Every workload, in the order they run.
    const ALL: [Workload; 19] = [
        Workload::Newest50,
        Workload::Newest50Random,
        Workload::Before,
        Workload::Chatlist,
        Workload::Newest50Big,
        Workload::ChatlistBig,
        Workload::UnreadBig,
        Workload::SendOne,
        Workload::SendSpread,
        Workload::Markread,
        Workload::MarkreadBig,
        Workload::StatsChat,
        Workload::StatsUserHour,
        Workload::StatsBigDay,
        Workload::StatsAllDay,
        Workload::StatsAll,
        Workload::SearchChat,
        Workload::SearchAll,
        Workload::SearchCommon,
    ];

    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }

    fn default_concurrency(self) -> usize {
        match self {
            Workload::SendOne
            | Workload::StatsChat
            | Workload::SearchChat
            | Workload::SearchAll
            | Workload::SearchCommon => 8,
            Workload::StatsUserHour | Workload::StatsBigDay => 4,
            Workload::StatsAllDay | Workload::StatsAll => 1,
            _ => 32,
        }
    }

    fn needs_big_chat(self) -> bool {
        matches!(
            self,
            Workload::Newest50Big
                | Workload::ChatlistBig
                | Workload::UnreadBig
                | Workload::MarkreadBig
                | Workload::StatsBigDay
        )
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(opts).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("requests: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Seconds since the Unix epoch.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The checked-out commit, marked when tracked files have uncommitted changes.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{commit} + uncommitted changes"),
        _ => commit,
    }
}

// ---------------------------------------------------------------------------------------
// The data set

/// One seeded chat, as the seed writes it and the workloads address it.
struct SeedChat {
    id: i64,
    name: String,
    /// User ids; the first is the OWNER (and creator), the others MEMBERs.
    members: Vec<i64>,
    /// Message `s` (numbered from 1) is sent by `senders[s % senders.len()]`.
    senders: Vec<i64>,
    /// Message `s` has id `base_id + s`.
    base_id: i64,
    messages: i64,
    /// When the newest message was sent (seconds since the epoch); message `s` is
    /// `messages - s` seconds older.
    end: i64,
}

impl SeedChat {
    /// One second before the first message.
    fn created_at(&self) -> i64 {
        self.end - self.messages
    }

    fn message_time(&self, seq: i64) -> i64 {
        self.end - (self.messages - seq)
    }

    /// The number of the last message `user` sent, if any.
    fn last_sent_by(&self, user: i64) -> Option<i64> {
        let slots = self.senders.len() as i64;
        self.senders
            .iter()
            .zip(0i64..)
            .filter(|(sender, _)| **sender == user)
            .map(|(_, slot)| self.messages - (self.messages - slot).rem_euclid(slots))
            .filter(|seq| *seq >= 1)
            .max()
    }

    /// Messages from others after `user`'s watermark (the last message they sent).
    fn unread_for(&self, user: i64) -> i64 {
        self.messages - self.last_sent_by(user).unwrap_or(0)
    }

    fn gid(&self) -> String {
        ChatId(self.id).to_global()
    }
}

struct DataSet {
    chats: Vec<SeedChat>,
    big: Option<SeedChat>,
    /// When the users were created.
    users_created: i64,
}

impl DataSet {
    /// Chat c's members are user 1 and three of users 2–10; all four send, in turn. The
    /// big chat (users 1–4; 1–3 send) is the most recently active, then chat 100, 99, …
    fn new(messages: i64, big: Option<i64>) -> Self {
        let newest = now_secs() - 60;
        let chats: Vec<SeedChat> = (1..=CHATS)
            .map(|c| {
                let mut members = vec![1];
                members.extend((0..3).map(|k| 2 + ((c - 1) * 3 + k) % (USERS - 1)));
                // Rotated per chat, so who sent last differs from chat to chat.
                let senders = (0..4).map(|k| members[((k + c) % 4) as usize]).collect();
                SeedChat {
                    id: c,
                    name: format!("chat {c}"),
                    members,
                    senders,
                    base_id: (c - 1) * messages,
                    messages,
                    end: newest - (CHATS + 1 - c),
                }
            })
            .collect();
        let big = big.map(|m| SeedChat {
            id: CHATS + 1,
            name: "big chat".into(),
            members: vec![1, 2, 3, BIG_READER],
            senders: vec![1, 2, 3],
            base_id: CHATS * messages,
            messages: m,
            end: newest,
        });
        let oldest = chats
            .iter()
            .chain(&big)
            .map(SeedChat::created_at)
            .min()
            .unwrap_or(newest);
        DataSet {
            chats,
            big,
            users_created: oldest - 3600,
        }
    }

    fn all_chats(&self) -> impl Iterator<Item = &SeedChat> {
        self.chats.iter().chain(&self.big)
    }

    fn message_count(&self) -> i64 {
        self.all_chats().map(|c| c.messages).sum()
    }
}

/// A timestamp literal in the form diesel writes for SQLite (whole seconds, UTC), which
/// PostgreSQL reads as well.
fn sql_time(epoch: i64) -> Result<String> {
    let time = chrono::DateTime::from_timestamp(epoch, 0).ok_or("timestamp out of range")?;
    Ok(format!("'{}'", time.format("%Y-%m-%d %H:%M:%S")))
}

/// Users, chats and memberships: few rows, written out.
fn rows_sql(data: &DataSet) -> Result<String> {
    let at = sql_time(data.users_created)?;
    let users: Vec<String> = (1..=USERS)
        .map(|u| format!("({u}, 'bench_user_{u}', 'Bench User {u}', {at}, {at})"))
        .collect();
    let mut sql = format!(
        "INSERT INTO users (id, username, display_name, created_at, updated_at) VALUES {};\n",
        users.join(", ")
    );
    let mut chats = Vec::new();
    let mut members = Vec::new();
    for chat in data.all_chats() {
        let created = sql_time(chat.created_at())?;
        let last = if chat.messages > 0 {
            (chat.base_id + chat.messages).to_string()
        } else {
            "NULL".into()
        };
        chats.push(format!(
            "({}, 'GROUP', '{}', {}, {last}, {created}, {created}, {})",
            chat.id,
            chat.name,
            chat.members[0],
            sql_time(chat.end)?
        ));
        for (index, user) in chat.members.iter().enumerate() {
            let role = if index == 0 { "OWNER" } else { "MEMBER" };
            // What sendMessage leaves: read and delivered up to one's own last message.
            let (read, read_at) = match chat.last_sent_by(*user) {
                Some(seq) => (
                    (chat.base_id + seq).to_string(),
                    sql_time(chat.message_time(seq))?,
                ),
                None => ("NULL".into(), "NULL".into()),
            };
            members.push(format!(
                "({}, {user}, '{role}', {created}, {read}, {read_at}, {read})",
                chat.id
            ));
        }
    }
    writeln!(
        sql,
        "INSERT INTO chats (id, kind, name, created_by, last_message_id, created_at, updated_at, \
         last_activity_at) VALUES {};",
        chats.join(", ")
    )?;
    writeln!(
        sql,
        "INSERT INTO members (chat_id, user_id, role, joined_at, last_read_message_id, \
         last_read_at, last_delivered_message_id) VALUES {};",
        members.join(", ")
    )?;
    Ok(sql)
}

/// One set-based INSERT of a chat's messages: `generate_series` on PostgreSQL, a recursive
/// CTE on SQLite.
fn messages_sql(backend: Backend, chat: &SeedChat) -> Result<String> {
    let (n, base) = (chat.messages, chat.base_id);
    let mut sender = format!("CASE s % {}", chat.senders.len());
    for (slot, user) in chat.senders.iter().enumerate() {
        write!(sender, " WHEN {slot} THEN {user}")?;
    }
    sender.push_str(" END");
    let created_at = match backend {
        Backend::Postgres => format!(
            "TIMESTAMP {} - INTERVAL '1 second' * ({n} - s)",
            sql_time(chat.end)?
        ),
        Backend::Sqlite => format!(
            "strftime('%Y-%m-%d %H:%M:%S', {} - ({n} - s), 'unixepoch')",
            chat.end
        ),
    };
    let insert = format!(
        "INSERT INTO messages (id, chat_id, sender_id, role, kind, content, parent_id, created_at) \
         SELECT {base} + s, {chat}, {sender}, 'USER', 'TEXT', \
         'message ' || s || ': ' || substr('{LOREM}', 1, CAST(10 + (s * 37) % 80 AS INTEGER)) \
         || ' topic' || ((s * 7919) % {TOPICS}), \
         CASE WHEN s % {REPLY_EVERY} = 0 THEN {base} + s - 1 - (s / {REPLY_EVERY}) % 50 END, \
         {created_at} FROM",
        chat = chat.id,
    );
    Ok(match backend {
        Backend::Postgres => {
            format!("{insert} generate_series(CAST(1 AS BIGINT), {n}) AS g(s);\n")
        }
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(s) AS (SELECT 1 UNION ALL SELECT s + 1 FROM g WHERE s < {n}) \
             {insert} g;\n"
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Seeding

/// A connection for seeding, to either backend.
enum SeedConn {
    Pg(Box<AsyncPgConnection>),
    Sqlite(SyncConnectionWrapper<diesel::SqliteConnection>),
}

#[derive(QueryableByName)]
struct NamedSql {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

impl SeedConn {
    async fn open(database: &Database) -> Result<Self> {
        Ok(match database.backend {
            Backend::Postgres => {
                SeedConn::Pg(Box::new(AsyncPgConnection::establish(&database.url).await?))
            }
            Backend::Sqlite => {
                SeedConn::Sqlite(SyncConnectionWrapper::establish(&database.url).await?)
            }
        })
    }

    async fn execute(&mut self, sql: &str) -> Result {
        match self {
            SeedConn::Pg(c) => c.batch_execute(sql).await?,
            SeedConn::Sqlite(c) => c.batch_execute(sql).await?,
        }
        Ok(())
    }

    /// The secondary indexes of `messages` that back no constraint, as (name, definition).
    async fn message_indexes(&mut self) -> Result<Vec<NamedSql>> {
        use diesel_async::RunQueryDsl;
        Ok(match self {
            SeedConn::Pg(c) => {
                diesel::sql_query(
                    "SELECT CAST(indexrelid::regclass AS TEXT) AS name, \
                     pg_get_indexdef(indexrelid) AS sql FROM pg_index \
                     WHERE indrelid = 'messages'::regclass AND NOT indisprimary \
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)",
                )
                .load(c)
                .await?
            }
            SeedConn::Sqlite(c) => {
                diesel::sql_query(
                    "SELECT name, sql FROM sqlite_master \
                     WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL",
                )
                .load(c)
                .await?
            }
        })
    }

    /// PostgreSQL: the postmaster's pid (the parent of this connection's backend), when
    /// the server runs on this machine.
    async fn postmaster_pid(&mut self) -> Result<Option<u32>> {
        match self {
            SeedConn::Pg(c) => postmaster_pid(c).await,
            SeedConn::Sqlite(_) => Ok(None),
        }
    }

    /// PostgreSQL: the durability settings, for the report header.
    async fn durability(&mut self) -> Result<String> {
        use diesel_async::RunQueryDsl;
        let SeedConn::Pg(c) = self else {
            return Ok(String::new());
        };
        let mut parts = Vec::new();
        for name in ["fsync", "synchronous_commit", "full_page_writes"] {
            let rows: Vec<Setting> =
                diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
                    .load(c)
                    .await?;
            if let Some(row) = rows.into_iter().next() {
                parts.push(format!("{name}={}", row.value));
            }
        }
        Ok(parts.join(" "))
    }
}

#[derive(Default)]
struct SeedTimes {
    migrate: Duration,
    insert: Duration,
    indexes: Duration,
    analyze: Duration,
    /// PostgreSQL: whether foreign-key triggers were skipped (needs a superuser).
    fk_checks_skipped: bool,
}

/// Runs the server's migrations with `bin`.
async fn migrate(bin: &Path, database: &Database, workdir: &Path) -> Result {
    let mut command = tokio::process::Command::new(bin);
    command
        .arg("migrate")
        .arg("--database-url")
        .arg(&database.url)
        .arg("--data-dir")
        .arg(workdir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    clear_server_env(&mut command);
    let output = command.output().await?;
    if !output.status.success() {
        return Err(format!(
            "`chatql migrate` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Creates the schema (`chatql migrate`) and fills it with `data`.
async fn seed(
    bin: &Path,
    database: &Database,
    data: &DataSet,
    workdir: &Path,
    conn: &mut SeedConn,
) -> Result<SeedTimes> {
    let mut times = SeedTimes::default();
    let started = Instant::now();
    migrate(bin, database, workdir).await?;
    times.migrate = started.elapsed();

    match conn {
        SeedConn::Pg(_) => {
            conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'")
                .await?;
            // The data is consistent by construction; without a superuser the checks run.
            times.fk_checks_skipped = conn
                .execute("SET session_replication_role = replica")
                .await
                .is_ok();
        }
        SeedConn::Sqlite(_) => {
            // A rollback journal instead of WAL: the WAL would grow to the size of the data
            // and be copied again. The server switches back to WAL when it connects.
            conn.execute(
                "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; \
                 PRAGMA cache_size = -262144; PRAGMA foreign_keys = OFF",
            )
            .await?;
        }
    }
    let backend = database.backend;
    let mut sql = String::from("BEGIN;\n");
    sql.push_str(&rows_sql(data)?);
    for chat in data.all_chats() {
        sql.push_str(&messages_sql(backend, chat)?);
    }
    sql.push_str("COMMIT;\n");

    // Indexes are built once after the load, which is much faster than row by row.
    let started = Instant::now();
    let indexes = conn.message_indexes().await?;
    for index in &indexes {
        conn.execute(&format!("DROP INDEX {}", index.name)).await?;
    }
    conn.execute(&sql).await?;
    times.insert = started.elapsed();

    let started = Instant::now();
    for index in &indexes {
        conn.execute(&index.sql).await?;
    }
    times.indexes = started.elapsed();

    let started = Instant::now();
    match backend {
        Backend::Postgres => {
            // Explicit ids do not advance identity sequences.
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users)); \
                 SELECT setval(pg_get_serial_sequence('chats', 'id'), (SELECT max(id) FROM chats)); \
                 SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages));",
            )
            .await?;
            // VACUUM as well: it sets the visibility map (index-only scans), and autovacuum
            // will not start on the fresh rows in the middle of a measurement.
            conn.execute("VACUUM (ANALYZE)").await?;
        }
        Backend::Sqlite => conn.execute("ANALYZE").await?,
    }
    times.analyze = started.elapsed();
    Ok(times)
}

// ---------------------------------------------------------------------------------------
// The server process

/// Starts the server on `database`, logging to `log_path` (its directory is the data dir).
async fn start_server(
    opts: &Opts,
    bin: &Path,
    database: &Database,
    log_path: PathBuf,
) -> Result<Server> {
    let data_dir = log_path
        .parent()
        .ok_or("log path has no directory")?
        .as_os_str()
        .to_owned();
    let mut args: Vec<OsString> = vec![
        "--database-url".into(),
        database.url.clone().into(),
        "--data-dir".into(),
        data_dir,
        "--admin-key".into(),
        ADMIN_KEY.into(),
        "--jwt-secret".into(),
        JWT_SECRET.into(),
        // Thousands of sends per user and minute: the per-user limit would cap the run.
        "--mutations-per-minute".into(),
        "0".into(),
    ];
    if let Some(pool) = opts.pool_size {
        args.extend(["--pool-size".into(), pool.to_string().into()]);
    }
    Server::start(bin, args, &opts.server_log, log_path).await
}

/// CPU time of the server, the database cluster and this client at one moment.
struct CpuSample {
    at: Instant,
    server: Option<Duration>,
    database: Option<Duration>,
    client: Option<Duration>,
}

impl CpuSample {
    fn take(server_pid: u32, postmaster: Option<u32>) -> Self {
        CpuSample {
            at: Instant::now(),
            server: cpu_time(&server_pid.to_string()),
            database: postmaster.and_then(cluster_cpu_time),
            client: cpu_time("self"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// GraphQL over HTTP (set-up; the load loop has its own lean client)

struct Gql {
    http: reqwest::Client,
    url: String,
}

impl Gql {
    /// Calls the API as `token` (or with the admin key); GraphQL errors are errors.
    async fn call(&self, token: Option<&str>, query: &str, variables: Value) -> Result<Value> {
        let request = self
            .http
            .post(&self.url)
            .json(&json!({"query": query, "variables": variables}));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request.header("x-admin-key", ADMIN_KEY),
        };
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if let Some(errors) = body.get("errors") {
            return Err(format!("HTTP {status}: {errors}").into());
        }
        Ok(body["data"].clone())
    }
}

fn str_at(value: &Value, pointer: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no string at {pointer} in {value}").into())
}

/// A chat as the load loop addresses it.
struct ChatRef {
    gid: String,
    /// Token indexes of its members.
    members: Vec<usize>,
}

impl ChatRef {
    fn new(chat: &SeedChat) -> Self {
        ChatRef {
            gid: chat.gid(),
            members: chat
                .members
                .iter()
                .map(|u| usize::try_from(u - 1).unwrap_or_default())
                .collect(),
        }
    }
}

/// Everything the workloads need: tokens, chat ids, a cursor.
struct Plan {
    /// The bench user's global id.
    bench_user: String,
    /// Token of user `i + 1` at index `i`.
    tokens: Vec<String>,
    chats: Vec<ChatRef>,
    big: Option<ChatRef>,
    /// A cursor about BEFORE_DEPTH messages back in chat 1.
    before_cursor: String,
    /// How many messages back `before_cursor` is.
    before_depth: usize,
    client_ids: bool,
}

/// Mints tokens, checks the seed against the API and finds the `before` cursor.
async fn prepare(server: &Server, data: &DataSet, opts: &Opts) -> Result<Plan> {
    let gql = Gql {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(opts.timeout))
            .build()?,
        url: server.graphql_url(),
    };
    let mut mint = String::from("mutation {");
    for user in 1..=USERS {
        let id = serde_json::to_string(&UserId(user).to_global())?;
        write!(
            mint,
            " t{user}: issueToken(userId: {id}, ttlSeconds: 86400)"
        )?;
    }
    mint.push_str(" }");
    let minted = gql.call(None, &mint, json!({})).await?;
    let tokens = (1..=USERS)
        .map(|user| str_at(&minted, &format!("/t{user}")))
        .collect::<Result<Vec<_>>>()?;
    let bench = Some(tokens[BENCH_USER].as_str());

    // The seed as the server sees it.
    let first = data.chats.first().ok_or("no chats")?;
    let seen = gql
        .call(
            bench,
            "query($id: ID!) { chat(id: $id) { unreadCount memberCount lastMessage { id } } }",
            json!({"id": first.gid()}),
        )
        .await?;
    let expected = json!({"chat": {
        "unreadCount": first.unread_for(1),
        "memberCount": first.members.len(),
        "lastMessage": {"id": MessageId(first.base_id + first.messages).to_global()},
    }});
    if seen != expected {
        return Err(
            format!("the seed does not match the API: expected {expected}, got {seen}").into(),
        );
    }
    let mut listed = 0;
    let mut after: Option<String> = None;
    loop {
        let page = gql
            .call(
                bench,
                "query($after: String) { chats(first: 100, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }",
                json!({"after": after}),
            )
            .await?;
        listed += page["chats"]["nodes"].as_array().map_or(0, Vec::len);
        if page["chats"]["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = Some(str_at(&page, "/chats/pageInfo/endCursor")?);
    }
    let expected_chats = data.all_chats().count();
    if listed != expected_chats {
        return Err(
            format!("the bench user lists {listed} chats, expected {expected_chats}").into(),
        );
    }

    // Page back from the newest message of chat 1, 100 at a time.
    let mut before: Option<String> = None;
    let mut depth = 0;
    while depth < BEFORE_DEPTH {
        let page = gql
            .call(
                bench,
                "query($id: ID!, $before: String) { messages(chatId: $id, last: 100, before: $before) { pageInfo { hasPreviousPage startCursor } } }",
                json!({"id": first.gid(), "before": before}),
            )
            .await?;
        let Ok(cursor) = str_at(&page, "/messages/pageInfo/startCursor") else {
            break;
        };
        before = Some(cursor);
        depth += 100;
        if page["messages"]["pageInfo"]["hasPreviousPage"] != json!(true) {
            break;
        }
    }
    Ok(Plan {
        tokens,
        bench_user: UserId(1).to_global(),
        chats: data.chats.iter().map(ChatRef::new).collect(),
        big: data.big.as_ref().map(ChatRef::new),
        before_cursor: before.ok_or("chat 1 has no messages to page back through")?,
        before_depth: depth.min(usize::try_from(first.messages).unwrap_or(0)),
        client_ids: opts.client_ids,
    })
}

// ---------------------------------------------------------------------------------------
// The load loop

/// xorshift64*: enough randomness to pick chats, without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Rng((seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(nanos)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

impl Plan {
    fn big(&self) -> Result<&ChatRef> {
        self.big
            .as_ref()
            .ok_or_else(|| "this workload needs --big-chat-messages".into())
    }

    fn chat(&self, index: usize) -> Result<&ChatRef> {
        self.chats.get(index).ok_or_else(|| "no such chat".into())
    }

    /// The next request of `task`: the token index to send it as and the JSON body.
    fn request(
        &self,
        workload: Workload,
        task: usize,
        seq: u64,
        rng: &mut Rng,
    ) -> Result<(usize, Vec<u8>)> {
        let (user, query, variables) = match workload {
            Workload::Newest50 => (BENCH_USER, NEWEST, json!({"id": self.chat(0)?.gid})),
            Workload::Newest50Random => {
                let chat = self.chat(rng.below(self.chats.len()))?;
                (BENCH_USER, NEWEST, json!({"id": chat.gid}))
            }
            Workload::Newest50Big => (BENCH_USER, NEWEST, json!({"id": self.big()?.gid})),
            Workload::Before => (
                BENCH_USER,
                BEFORE,
                json!({"id": self.chat(0)?.gid, "before": self.before_cursor}),
            ),
            Workload::Chatlist => (BENCH_USER, CHAT_LIST, json!({})),
            Workload::ChatlistBig => (big_reader(), CHAT_LIST, json!({})),
            Workload::UnreadBig => (big_reader(), UNREAD, json!({"id": self.big()?.gid})),
            Workload::SendOne | Workload::SendSpread => {
                let (chat, sender) = if workload == Workload::SendOne {
                    let chat = self.chat(0)?;
                    (chat, chat.members[task % chat.members.len()])
                } else {
                    let chat = self.chat(rng.below(self.chats.len()))?;
                    (chat, chat.members[rng.below(chat.members.len())])
                };
                let client_id = self.client_ids.then(|| format!("{:016x}", rng.next()));
                let variables = json!({
                    "chat": chat.gid,
                    "content": format!("bench message {task}.{seq}"),
                    "clientId": client_id,
                });
                (sender, SEND, variables)
            }
            Workload::Markread => {
                let chat = self.chat(rng.below(self.chats.len()))?;
                (BENCH_USER, MARK_READ, json!({"chat": chat.gid}))
            }
            Workload::MarkreadBig => {
                let big = self.big()?;
                let member = big.members[task % big.members.len()];
                (member, MARK_READ, json!({"chat": big.gid}))
            }
            Workload::StatsChat => {
                let chat = self.chat(rng.below(self.chats.len()))?;
                (BENCH_USER, CHAT_STATISTICS, json!({"id": chat.gid}))
            }
            Workload::StatsUserHour => {
                let variables = json!({"id": self.bench_user, "since": ago(3600)});
                (BENCH_USER, USER_STATISTICS, variables)
            }
            Workload::StatsBigDay => {
                let variables = json!({"id": self.big()?.gid, "since": ago(24 * 3600)});
                (BENCH_USER, CHAT_STATISTICS, variables)
            }
            Workload::StatsAllDay => (ADMIN, SERVER_STATISTICS, json!({"since": ago(24 * 3600)})),
            Workload::StatsAll => (ADMIN, SERVER_STATISTICS, json!({})),
            Workload::SearchChat => {
                let chat = self.chat(rng.below(self.chats.len()))?;
                let variables = json!({"q": topic(rng), "chat": chat.gid});
                (BENCH_USER, SEARCH, variables)
            }
            Workload::SearchAll => (BENCH_USER, SEARCH, json!({"q": topic(rng)})),
            Workload::SearchCommon => (BENCH_USER, SEARCH, json!({"q": "lorem"})),
        };
        let body = serde_json::to_vec(&json!({"query": query, "variables": variables}))?;
        Ok((user, body))
    }
}

/// A random one of the seed's topic words (each in 1 of every `TOPICS` messages).
fn topic(rng: &mut Rng) -> String {
    format!("topic{}", rng.below(TOPICS))
}

/// `secs` seconds ago, as a `DateTime` argument.
fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn big_reader() -> usize {
    usize::try_from(BIG_READER - 1).unwrap_or_default()
}

/// What one client task saw.
#[derive(Default)]
struct TaskStats {
    /// Latencies (µs) of the requests that completed inside the measured window.
    latencies_us: Vec<u32>,
    /// Failed requests over the whole run, warm-up included.
    errors: u64,
    first_error: Option<String>,
}

impl TaskStats {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message);
        }
    }
}

/// One request; a non-2xx status or a GraphQL `errors` entry is an error.
async fn send(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> std::result::Result<(), String> {
    let request = match token {
        Some(token) => client.post(url).bearer_auth(token),
        None => client.post(url).header("x-admin-key", ADMIN_KEY),
    };
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::ACCEPT,
            "application/graphql-response+json, application/json",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?;
    // A scan for the key is cheaper than parsing every page; our contents hold no quotes.
    let has_errors = bytes.windows(8).any(|w| w == b"\"errors\"");
    if status.is_success() && !has_errors {
        return Ok(());
    }
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let first = parsed.as_ref().and_then(|v| v.pointer("/errors/0"));
    Err(match first {
        Some(error) => format!(
            "HTTP {status}: {} ({})",
            error["message"].as_str().unwrap_or("?"),
            error
                .pointer("/extensions/code")
                .and_then(Value::as_str)
                .unwrap_or("no code")
        ),
        None => format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ),
    })
}

/// A closed-loop client: request, await, repeat until `end`.
async fn client_task(
    plan: Arc<Plan>,
    workload: Workload,
    task: usize,
    url: String,
    window: (Instant, Instant),
    timeout: Duration,
) -> TaskStats {
    let (start, end) = window;
    let mut stats = TaskStats::default();
    // One client per task, holding at most one idle connection: one keep-alive connection.
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            stats.error(format!("building the HTTP client: {e}"));
            return stats;
        }
    };
    let mut rng = Rng::new(task as u64);
    let mut seq = 0u64;
    while Instant::now() < end {
        let (user, body) = match plan.request(workload, task, seq, &mut rng) {
            Ok(request) => request,
            Err(e) => {
                stats.error(e.to_string());
                break;
            }
        };
        seq += 1;
        let token = (user != ADMIN).then(|| plan.tokens.get(user).map_or("", String::as_str));
        let sent = Instant::now();
        let outcome = send(&client, &url, token, body).await;
        let done = Instant::now();
        if done >= start && done <= end {
            let micros = done.duration_since(sent).as_micros();
            stats
                .latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
        if let Err(message) = outcome {
            stats.error(message);
        }
    }
    stats
}

/// One workload against one server binary.
struct Measured {
    workload: Workload,
    /// "A" or "B" when comparing, else empty.
    label: &'static str,
    concurrency: usize,
    window: Duration,
    /// Sorted.
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    server_cpu: Option<Duration>,
    database_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    rss: Option<u64>,
    /// Why the server is gone, if it died, with its log's tail.
    died: Option<String>,
}

struct Bench<'a> {
    opts: &'a Opts,
    database: &'a Database,
    workdir: &'a Path,
    plan: Arc<Plan>,
    postmaster: Option<u32>,
}

impl Bench<'_> {
    async fn measure(
        &self,
        workload: Workload,
        bin: &Path,
        label: &'static str,
    ) -> Result<Measured> {
        let log = self
            .workdir
            .join(format!("server-{}{label}.log", workload.name()));
        let mut server = start_server(self.opts, bin, self.database, log).await?;
        let concurrency = self
            .opts
            .concurrency
            .unwrap_or_else(|| workload.default_concurrency());
        let now = Instant::now();
        let start = now + Duration::from_secs_f64(self.opts.warmup);
        let end = start + Duration::from_secs_f64(self.opts.duration);
        let timeout = Duration::from_secs(self.opts.timeout);
        let tasks: Vec<_> = (0..concurrency)
            .map(|task| {
                tokio::spawn(client_task(
                    self.plan.clone(),
                    workload,
                    task,
                    server.graphql_url(),
                    (start, end),
                    timeout,
                ))
            })
            .collect();
        tokio::time::sleep_until(start.into()).await;
        let before = CpuSample::take(server.pid, self.postmaster);
        tokio::time::sleep_until(end.into()).await;
        let after = CpuSample::take(server.pid, self.postmaster);

        let mut measured = Measured {
            workload,
            label,
            concurrency,
            window: after.at.duration_since(before.at),
            latencies_us: Vec::new(),
            errors: 0,
            first_error: None,
            server_cpu: cpu_between(before.server, after.server),
            database_cpu: cpu_between(before.database, after.database),
            client_cpu: cpu_between(before.client, after.client),
            rss: None,
            died: None,
        };
        // Requests still in flight finish (uncounted) before the next workload starts.
        let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(10);
        for mut task in tasks {
            let stats = match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(stats)) => stats,
                Ok(Err(e)) => {
                    let mut stats = TaskStats::default();
                    stats.error(format!("client task failed: {e}"));
                    stats
                }
                Err(_) => {
                    task.abort();
                    let mut stats = TaskStats::default();
                    stats.error("client task did not finish in time".into());
                    stats
                }
            };
            measured.latencies_us.extend(stats.latencies_us);
            measured.errors += stats.errors;
            if measured.first_error.is_none() {
                measured.first_error = stats.first_error;
            }
        }
        measured.latencies_us.sort_unstable();
        measured.rss = server.memory().map(|m| m.rss);
        if let Some(status) = server.exited() {
            measured.died = Some(format!(
                "the server exited ({status})\n--- server log (tail) ---\n{}",
                server.log_tail(30)
            ));
        }
        server.stop().await;
        Ok(measured)
    }
}

/// CPU time used between two samples.
fn cpu_between(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    after?.checked_sub(before?)
}

// ---------------------------------------------------------------------------------------
// The run

fn selected_workloads(opts: &Opts) -> Result<Vec<Workload>> {
    let big = opts.big_chat_messages.is_some();
    if let Some(w) = opts.workloads.iter().find(|w| w.needs_big_chat() && !big) {
        return Err(format!("workload {} needs --big-chat-messages", w.name()).into());
    }
    Ok(Workload::ALL
        .into_iter()
        .filter(|w| {
            if opts.workloads.is_empty() {
                big || !w.needs_big_chat()
            } else {
                opts.workloads.contains(w)
            }
        })
        .collect())
}

async fn run(opts: Opts) -> Result<bool> {
    if opts.duration <= 0.0 || opts.warmup < 0.0 {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    if opts.messages == 0 || opts.concurrency == Some(0) || opts.big_chat_messages == Some(0) {
        return Err("--messages, --concurrency and --big-chat-messages must be at least 1".into());
    }
    let workloads = selected_workloads(&opts)?;
    let mut bins = vec![("A", server_binary(opts.server_bin.as_ref())?)];
    if let Some(b) = &opts.compare_bin {
        bins.push(("B", server_binary(Some(b))?));
    }
    if bins.len() == 1 {
        bins[0].0 = "";
    }
    let workdir = tempfile::Builder::new()
        .prefix("chatql-requests")
        .tempdir()?;
    let database = Database::create(
        "requests",
        opts.database_url.as_deref(),
        opts.postgres,
        &workdir.path().join("bench.db"),
    )
    .await?;
    let outcome = tokio::select! {
        outcome = bench(&opts, &workloads, &bins, &database, workdir.path()) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    let finished = database.finish(opts.keep).await;
    if opts.keep && database.backend == Backend::Sqlite {
        let _ = workdir.keep();
    }
    let passed = outcome?;
    finished?;
    Ok(passed)
}

async fn bench(
    opts: &Opts,
    workloads: &[Workload],
    bins: &[(&'static str, PathBuf)],
    database: &Database,
    workdir: &Path,
) -> Result<bool> {
    let (_, first_bin) = bins.first().ok_or("no server binary")?;
    let data = DataSet::new(
        i64::from(opts.messages),
        opts.big_chat_messages.map(i64::from),
    );
    let mut conn = SeedConn::open(database).await?;
    let started = Instant::now();
    let times = seed(first_bin, database, &data, workdir, &mut conn).await?;
    let seed_total = started.elapsed();
    let postmaster = conn.postmaster_pid().await?;
    let durability = conn.durability().await?;
    drop(conn);

    print_header(
        opts,
        database,
        &data,
        bins,
        &durability,
        postmaster.is_some(),
    );
    println!(
        "seed: {} messages in {:.1} s (migrate {:.1} s, insert {:.1} s, indexes {:.1} s, {} {:.1} s){}",
        data.message_count(),
        seed_total.as_secs_f64(),
        times.migrate.as_secs_f64(),
        times.insert.as_secs_f64(),
        times.indexes.as_secs_f64(),
        if database.backend == Backend::Postgres {
            "vacuum+analyze"
        } else {
            "analyze"
        },
        times.analyze.as_secs_f64(),
        if database.backend == Backend::Postgres && !times.fk_checks_skipped {
            "; foreign keys checked row by row (not a superuser)"
        } else {
            ""
        }
    );

    let server = start_server(opts, first_bin, database, workdir.join("server-setup.log")).await?;
    let plan = prepare(&server, &data, opts).await;
    server.stop().await;
    let plan = plan?;
    if workloads.contains(&Workload::Before) {
        println!(
            "before: pages 50 messages back from {} messages before the newest of chat 1",
            plan.before_depth
        );
    }
    println!();
    println!("{}", row_header(bins.len() > 1));
    let bench = Bench {
        opts,
        database,
        workdir,
        plan: Arc::new(plan),
        postmaster,
    };
    let mut results = Vec::new();
    let mut passed = true;
    for workload in workloads {
        for (label, bin) in bins {
            let measured = bench.measure(*workload, bin, label).await?;
            println!("{}", row(&measured));
            if let Some(error) = &measured.first_error {
                println!("    first error: {error}");
            }
            if let Some(died) = &measured.died {
                println!("    {died}");
            }
            // A workload that completed nothing in its window (every request slower than
            // the window) is a failure too, not a row of NaN.
            if measured.latencies_us.is_empty() {
                println!("    no request completed inside the measured window");
            }
            passed &= measured.errors == 0
                && measured.died.is_none()
                && !measured.latencies_us.is_empty();
            results.push(measured);
        }
    }
    println!();
    print_table(&results, bins, database, &data);
    println!(
        "\nRESULT: {}",
        if passed {
            "PASS (no errors)"
        } else {
            "FAIL (errors, a server died, or a workload completed nothing)"
        }
    );
    Ok(passed)
}

// ---------------------------------------------------------------------------------------
// Report

fn per_request(cpu: Option<Duration>, requests: usize) -> String {
    match cpu {
        Some(cpu) if requests > 0 => format!("{:.2}", cpu.as_secs_f64() * 1000.0 / requests as f64),
        _ => "-".into(),
    }
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".into(),
        |b| format!("{:.0}", b as f64 / (1024.0 * 1024.0)),
    )
}

fn print_header(
    opts: &Opts,
    database: &Database,
    data: &DataSet,
    bins: &[(&'static str, PathBuf)],
    durability: &str,
    cluster_cpu: bool,
) {
    println!("chatql request-path benchmark");
    println!("commit {}", git_commit());
    for (label, bin) in bins {
        let space = if label.is_empty() { "" } else { " " };
        println!("server{space}{label}: {}", bin.display());
    }
    let cluster = match database.pg.as_ref().map(|pg| pg.cluster.is_some()) {
        Some(true) => " (throwaway cluster started by this tool, scripts/pg-throwaway)",
        _ => "",
    };
    let settings = if durability.is_empty() {
        String::new()
    } else {
        format!(" — {durability}")
    };
    println!("database: {}{cluster}{settings}", database.describe());
    if database.backend == Backend::Postgres && !cluster_cpu {
        println!("  (the PostgreSQL server's processes are not visible here: no database CPU)");
    }
    let big = data.big.as_ref().map_or_else(String::new, |b| {
        format!(
            ", plus a big chat with {} messages (users 1-4; user 4 read none)",
            b.messages
        )
    });
    println!(
        "data: {USERS} users, {CHATS} group chats of 4 with {} messages each (every {REPLY_EVERY}th a reply){big}",
        opts.messages
    );
    println!(
        "load: closed loop, one HTTP/1.1 keep-alive connection per client, warm-up {} s, measured {} s per workload, server restarted per workload; {} cores shared by client and server",
        opts.warmup,
        opts.duration,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
}

fn row_header(compare: bool) -> String {
    format!(
        "{:<16}{} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10} {:>10} {:>10} {:>8}",
        "workload",
        if compare { " bin" } else { "" },
        "conc",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "srv ms/req",
        "db ms/req",
        "cli ms/req",
        "RSS MiB"
    )
}

fn row(m: &Measured) -> String {
    let requests = m.latencies_us.len();
    format!(
        "{:<16}{} {:>4} {:>8} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>10} {:>10} {:>10} {:>8}",
        m.workload.name(),
        if m.label.is_empty() {
            String::new()
        } else {
            format!(" {:>3}", m.label)
        },
        m.concurrency,
        requests,
        requests as f64 / m.window.as_secs_f64().max(1e-9),
        percentile(&m.latencies_us, 0.50),
        percentile(&m.latencies_us, 0.99),
        m.latencies_us
            .last()
            .map_or(f64::NAN, |v| f64::from(*v) / 1000.0),
        m.errors,
        per_request(m.server_cpu, requests),
        per_request(m.database_cpu, requests),
        per_request(m.client_cpu, requests),
        mib(m.rss),
    )
}

fn print_table(
    results: &[Measured],
    bins: &[(&'static str, PathBuf)],
    database: &Database,
    data: &DataSet,
) {
    let compare = bins.len() > 1;
    let backend = match (database.backend, database.pg.as_ref()) {
        (Backend::Sqlite, _) => "SQLite",
        (Backend::Postgres, Some(pg)) if pg.cluster.is_some() => "PostgreSQL 15 (fsync off)",
        (Backend::Postgres, _) => "PostgreSQL",
    };
    let big = data.big.as_ref().map_or_else(String::new, |b| {
        format!(", big chat {} messages", b.messages)
    });
    let binaries: Vec<String> = bins
        .iter()
        .map(|(label, bin)| {
            if label.is_empty() {
                format!("`{}`", bin.display())
            } else {
                format!("{label} = `{}`", bin.display())
            }
        })
        .collect();
    println!(
        "Commit {}, {}, {backend}, {} messages per chat{big}:",
        git_commit(),
        binaries.join(", "),
        data.chats.first().map_or(0, |c| c.messages),
    );
    println!();
    println!(
        "| workload |{} clients | req/s | p50 / p99 / max ms | errors | server CPU ms/req | database CPU ms/req | server RSS MiB |",
        if compare { " binary |" } else { "" }
    );
    println!(
        "|---|{}---|---|---|---|---|---|---|",
        if compare { "---|" } else { "" }
    );
    for m in results {
        let requests = m.latencies_us.len();
        println!(
            "| {} |{} {} | {:.0} | {:.2} / {:.2} / {:.2} | {} | {} | {} | {} |",
            m.workload.name(),
            if compare {
                format!(" {} |", m.label)
            } else {
                String::new()
            },
            m.concurrency,
            requests as f64 / m.window.as_secs_f64().max(1e-9),
            percentile(&m.latencies_us, 0.50),
            percentile(&m.latencies_us, 0.99),
            m.latencies_us
                .last()
                .map_or(f64::NAN, |v| f64::from(*v) / 1000.0),
            m.errors,
            per_request(m.server_cpu, requests),
            per_request(m.database_cpu, requests),
            mib(m.rss),
        );
    }
}
