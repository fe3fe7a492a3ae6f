//! Subscription fan-out load tool (not a timed test).
//!
//! Starts the release server binary as its own process on a free loopback port over a
//! temporary SQLite database (or `--database-url postgres://…`, or `--postgres`: a
//! throwaway PostgreSQL 15 cluster), creates one sender and the subscriber users through
//! the API (admin key), puts them in chats, opens N graphql-transport-ws sockets each
//! holding K `chatEvents(chatId)` subscriptions (ids "1".."K", one per chat of its user),
//! waits until every subscription is live, then sends M messages over HTTP whose content
//! carries a sequence number and the send time; message i goes to chat i mod A (the A
//! active chats). Every subscription records when each message arrived; the tool reports
//! deliveries expected and received, events lost (must be 0, counted per socket and
//! subscription), out-of-order deliveries, latency percentiles (overall and for the
//! biggest chat), when each message reached its first and its last subscriber (the
//! slowest five named), delivery throughput and the server's memory per subscription and
//! per socket.
//!
//! ```text
//! cargo build --release                  # the server binary this tool starts
//! # 1,000 subscribers on one chat; 100 on one chat (the "alone" figures to compare with)
//! cargo bench --bench fanout -- --subscribers 1000 --messages 100
//! cargo bench --bench fanout -- --subscribers 100 --messages 100
//! # 10,000 on one chat, and spread over 100 chats (`ulimit -n 10500` first: client and
//! # server each hold one descriptor per socket, up to the hard limit)
//! cargo bench --bench fanout -- --subscribers 10000
//! cargo bench --bench fanout -- --subscribers 10000 --chats 100 --messages 1000
//! # the same 10,000 with a Zipf spread (chat 0 the biggest; compare it with the alone run)
//! cargo bench --bench fanout -- --subscribers 10000 --chats 100 --zipf 1.0 --messages 1000
//! # 50,000 subscriptions over 1,000 chats: 10,000 sockets × 5, messages to 10 chats only
//! cargo bench --bench fanout -- --subscribers 10000 --subscriptions-per-socket 5 \
//!     --chats 1000 --active-chats 10 --messages 1000
//! # 20 slow readers on chat 0 that stop reading, with 4 KB messages
//! cargo bench --bench fanout -- --subscribers 1000 --slow-readers 20 --content-bytes 4000 \
//!     --messages 2000
//! # two instances on one PostgreSQL database: sockets on instance 1, sends via instance 2
//! cargo bench --bench fanout -- --postgres --instances 2 --subscribers 1000
//! # an existing PostgreSQL database (fresh, created for this run)
//! cargo bench --bench fanout -- --database-url postgres://user@host/bench_x
//! ```
//!
//! Who subscribes to what: sockets are dealt round-robin over the subscriber users
//! (`--users`, default one per socket); each user is a member of `--subscriptions-per-socket`
//! chats and every socket of theirs subscribes to each. Users' chats are dealt round-robin
//! over `--chats`, or with `--zipf S` by weight 1/rank^S (chat 0 the biggest). Chats from
//! `--active-chats` on get no messages: their subscriptions are idle and must receive no
//! `MessageAdded` (the liveness probes, sent to every chat before the measurement, aside).
//!
//! `--slow-readers N` adds N sockets on chat 0 (a user of their own) with a small
//! `SO_RCVBUF` that stop reading once their subscription is live. The first half of the
//! messages goes out before they connect (the baseline), the second half with them
//! present; both halves' latencies are printed. At the end each slow reader drains its
//! socket and the tool prints what became of it: closed by the server (1013: too far
//! behind), `ResyncRequired`, or everything delivered. They count neither for the loss
//! check nor for the latency figures. `--content-bytes` pads the messages so buffers fill.
//!
//! `--instances 2` (PostgreSQL only) starts a second server on the same database: the
//! sockets connect to instance 1, every send (probes too) goes through instance 2, and the
//! memory figures are instance 1's. `--viewer-fields` also selects `chat { unreadCount }`
//! on each message, which depends on the viewer and so is rendered per subscriber.
//!
//! Other options: `--rate R` messages per second, `--timeout SECS`, `--event-buffer`,
//! `--pool-size`, `--ws-max-outgoing-bytes`, `--server-bin PATH`, `--server-log FILTER`;
//! see `-- --help`.
//!
//! Client and server share the machine (and its clock), so latency includes the client's
//! own scheduling. Exits non-zero when an event was lost, an idle subscription got a
//! message, a send failed, a socket failed, or the run hit `--timeout`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod common;
use common::{
    Backend, Database, Memory, Server, cluster_cpu_time, cpu_time, memory, percentile,
    postmaster_pid, redact, server_binary,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T = ()> = std::result::Result<T, BoxError>;

const ADMIN_KEY: &str = "fanout-bench-admin-key";
const JWT_SECRET: &str = "fanout-bench-jwt-secret-0123456789";
/// Users created (or tokens minted) per GraphQL request, as aliased mutations.
const USER_BATCH: usize = 100;
/// The server refuses more members per `createChat`/`addMembers` call.
const MEMBERS_PER_CALL: usize = 500;
/// Set-up requests (chat creations, probes) in flight at once.
const SETUP_CONCURRENCY: usize = 4;
/// File descriptors kept free beyond one per socket (pool, logs, listeners, HTTP client).
const FD_SLACK: u64 = 256;
/// A drain without a single new delivery for this long has stalled.
const STALL: Duration = Duration::from_secs(15);
/// A draining slow reader that receives nothing for this long has got all it will get.
const SLOW_QUIET: Duration = Duration::from_secs(3);
/// The server's default `--max-message-length` (characters).
const SERVER_MAX_MESSAGE_LENGTH: usize = 10_000;
/// Each client socket's WebSocket read buffer.
const READ_BUFFER_BYTES: usize = 1024;
/// The message fields every subscription selects. [`content_of`] finds the content by its
/// key, so no other selected field may be named `content`.
const MESSAGE_FIELDS: &str = "content";
/// `--viewer-fields`: plus one that depends on who looks (the caller's unread count).
const VIEWER_MESSAGE_FIELDS: &str = "content chat { unreadCount }";

/// Subscription fan-out benchmark for chatql.
#[derive(Parser, Debug, Clone)]
#[command(name = "fanout")]
struct Opts {
    /// Subscriber WebSockets to open.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// `chatEvents` subscriptions per socket (ids "1".."K"), one per chat of its user; each
    /// user is a member of this many chats.
    #[arg(long, default_value_t = 1)]
    subscriptions_per_socket: usize,
    /// Subscriber users; sockets are dealt round-robin over them (default: one per socket).
    #[arg(long)]
    users: Option<usize>,
    /// Chats; the users' memberships are spread over them (see --zipf).
    #[arg(long, default_value_t = 1)]
    chats: usize,
    /// Zipf exponent S: memberships are dealt over the chats with weights 1/rank^S, chat 0
    /// the biggest. 0: round-robin, every chat the same size.
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Messages go to the first A chats only, message i to chat i mod A; subscriptions on
    /// the other chats are idle (default: all chats are active).
    #[arg(long)]
    active_chats: Option<usize>,
    /// Messages to send.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Pad each message's content to about this many bytes.
    #[arg(long, default_value_t = 0)]
    content_bytes: usize,
    /// Messages per second (default: as fast as sequential sends go).
    #[arg(long)]
    rate: Option<f64>,
    /// Extra sockets on chat 0 that stop reading once subscribed; their fate is reported.
    #[arg(long, default_value_t = 0)]
    slow_readers: usize,
    /// `SO_RCVBUF` of the slow readers' TCP sockets, in bytes (the kernel doubles it).
    #[arg(long, default_value_t = 4096)]
    slow_reader_rcvbuf: u32,
    /// Select a viewer-dependent field too (`chat { unreadCount }` on each message).
    #[arg(long)]
    viewer_fields: bool,
    /// Server instances on the same (PostgreSQL) database: with 2, subscribers connect to
    /// instance 1 and every send goes through instance 2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    instances: u8,
    /// Seconds the whole run may take once the server is ready; then it reports what it
    /// has and fails. (10,000 subscribers on one chat take about 125 s on 2 cores.)
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Database for the server; default a SQLite file in a temporary directory. A
    /// PostgreSQL database should be fresh (created for this run).
    #[arg(long)]
    database_url: Option<String>,
    /// Start a throwaway PostgreSQL 15 cluster (`scripts/pg-throwaway`, fsync off) and a
    /// fresh database on it for the run.
    #[arg(long, conflicts_with = "database_url")]
    postgres: bool,
    /// Server `--event-buffer` (events a subscriber may lag before `ResyncRequired`).
    #[arg(long, default_value_t = 4096)]
    event_buffer: usize,
    /// Server `--pool-size` (default: the server's default).
    #[arg(long)]
    pool_size: Option<usize>,
    /// Server `--ws-max-outgoing-bytes`: bytes queued for a socket before it is closed
    /// with 1013 (default: the server's default).
    #[arg(long)]
    ws_max_outgoing_bytes: Option<usize>,
    /// Sockets connecting and subscribing at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Server binary (default: the release `chatql` cargo builds alongside this bench).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Server log filter (`RUST_LOG`); the log goes to a file shown on failure.
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Benchmark name filters passed by cargo; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

impl Opts {
    fn active_chats(&self) -> usize {
        self.active_chats.unwrap_or(self.chats)
    }

    fn uses_postgres(&self) -> bool {
        self.postgres
            || self.database_url.as_deref().is_some_and(|url| {
                url.starts_with("postgres://") || url.starts_with("postgresql://")
            })
    }

    fn subscription_document(&self) -> String {
        let fields = if self.viewer_fields {
            VIEWER_MESSAGE_FIELDS
        } else {
            MESSAGE_FIELDS
        };
        format!(
            "subscription($chat: ID!) {{ chatEvents(chatId: $chat) {{ __typename ... on MessageAdded {{ message {{ {fields} }} }} }} }}"
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
            eprintln!("fanout: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------
// Pre-flight checks

/// The soft and hard open-file limits of this process, from `/proc/self/limits`.
fn open_file_limits() -> Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or("no `Max open files` line in /proc/self/limits")?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| -> Result<u64> {
        match v {
            Some("unlimited") => Ok(u64::MAX),
            Some(v) => Ok(v.parse()?),
            None => Err("malformed `Max open files` line".into()),
        }
    };
    let soft = parse(fields.next())?;
    let hard = parse(fields.next())?;
    Ok((soft, hard))
}

fn check_fd_limit(sockets: usize) -> Result {
    let (soft, hard) = open_file_limits()?;
    let needed = sockets as u64 + FD_SLACK;
    if soft < needed {
        let hint = if hard >= needed {
            format!(
                "run `ulimit -n {}` in this shell first",
                hard.min(65536).max(needed)
            )
        } else {
            format!(
                "the hard limit is {hard}: raise it (e.g. /etc/security/limits.conf, \
                 `LimitNOFILE=`, or `ulimit -Hn` as root) and then `ulimit -n {needed}`, or \
                 hold more subscriptions per socket (--subscriptions-per-socket)"
            )
        };
        return Err(format!(
            "{sockets} sockets need at least {needed} open files per process (client and \
             server each hold one descriptor per socket), but the soft limit is {soft}: {hint}"
        )
        .into());
    }
    Ok(())
}

/// Refuses option combinations the run cannot honour.
fn check_options(opts: &Opts) -> Result {
    if opts.subscribers == 0 || opts.chats == 0 || opts.messages == 0 {
        return Err("--subscribers, --chats and --messages must be at least 1".into());
    }
    let per_socket = opts.subscriptions_per_socket;
    if per_socket == 0 || per_socket > opts.chats {
        return Err("--subscriptions-per-socket must be between 1 and --chats".into());
    }
    let users = opts.users.unwrap_or(opts.subscribers);
    if users == 0 || users > opts.subscribers {
        return Err("--users must be between 1 and --subscribers".into());
    }
    if opts.zipf == 0.0 && users * per_socket < opts.chats {
        return Err(
            "--users × --subscriptions-per-socket must be at least --chats (every chat gets \
             subscribers with the round-robin spread)"
                .into(),
        );
    }
    if !opts.zipf.is_finite() || opts.zipf < 0.0 {
        return Err("--zipf must be a finite exponent of at least 0".into());
    }
    let active = opts.active_chats();
    if active == 0 || active > opts.chats {
        return Err("--active-chats must be between 1 and --chats".into());
    }
    if opts.slow_readers > 0 && opts.messages < 2 {
        return Err(
            "--slow-readers needs at least 2 --messages (half before, half with them)".into(),
        );
    }
    if opts.instances > 1 && !opts.uses_postgres() {
        return Err(
            "--instances 2 needs a PostgreSQL database (--postgres or --database-url postgres://…): \
             instances share events through it"
                .into(),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Who subscribes to what

/// The subscriber users' memberships and the subscriptions of every socket.
struct Layout {
    sockets: usize,
    per_socket: usize,
    users: usize,
    /// Per user: its chats; subscription j (id j + 1) of each of its sockets is on the
    /// j-th.
    user_chats: Vec<Vec<usize>>,
    /// Chats 0..active get messages.
    active: usize,
    /// Subscriptions (socket, id) per chat.
    subscriptions_per_chat: Vec<u64>,
}

impl Layout {
    fn new(opts: &Opts) -> Self {
        let users = opts.users.unwrap_or(opts.subscribers);
        let (chats, per_socket) = (opts.chats, opts.subscriptions_per_socket);
        let user_chats: Vec<Vec<usize>> = if opts.zipf == 0.0 {
            (0..users)
                .map(|u| {
                    (0..per_socket)
                        .map(|j| (u * per_socket + j) % chats)
                        .collect()
                })
                .collect()
        } else {
            // The memberships chat by chat (chat 0's first), dealt to users in turn: a run
            // of one chat is at most `users` long, so no user gets a chat twice.
            let quotas = zipf_quotas(users * per_socket, chats, users, opts.zipf);
            let slots: Vec<usize> = quotas
                .iter()
                .enumerate()
                .flat_map(|(chat, n)| std::iter::repeat_n(chat, *n))
                .collect();
            (0..users)
                .map(|u| (0..per_socket).map(|j| slots[j * users + u]).collect())
                .collect()
        };
        let mut subscriptions_per_chat = vec![0u64; chats];
        for socket in 0..opts.subscribers {
            for chat in &user_chats[socket % users] {
                subscriptions_per_chat[*chat] += 1;
            }
        }
        Layout {
            sockets: opts.subscribers,
            per_socket,
            users,
            user_chats,
            active: opts.active_chats(),
            subscriptions_per_chat,
        }
    }

    fn subscriptions(&self) -> usize {
        self.sockets * self.per_socket
    }

    fn chats_of_socket(&self, socket: usize) -> &[usize] {
        &self.user_chats[socket % self.users]
    }

    /// Per chat: the indexes of its member users.
    fn members(&self) -> Vec<Vec<usize>> {
        let mut members = vec![Vec::new(); self.subscriptions_per_chat.len()];
        for (user, chats) in self.user_chats.iter().enumerate() {
            for chat in chats {
                members[*chat].push(user);
            }
        }
        members
    }

    /// The active chat with the most subscriptions (the first of equals).
    fn biggest_chat(&self) -> usize {
        let counts = &self.subscriptions_per_chat[..self.active];
        let max = counts.iter().max().copied().unwrap_or(0);
        counts.iter().position(|n| *n == max).unwrap_or(0)
    }

    fn idle_subscriptions(&self) -> u64 {
        self.subscriptions_per_chat[self.active..].iter().sum()
    }
}

/// `total` memberships over `chats` in proportion to 1/rank^s, none above `cap`, rounded
/// by largest remainder. Needs `total <= chats × cap`.
fn zipf_quotas(total: usize, chats: usize, cap: usize, s: f64) -> Vec<usize> {
    let weights: Vec<f64> = (1..=chats).map(|rank| (rank as f64).powf(-s)).collect();
    let cap_f = cap as f64;
    // Chats whose share passes the cap get the cap; the others share the rest, again.
    let mut capped = vec![false; chats];
    let mut shares = vec![0.0; chats];
    loop {
        let n_capped = capped.iter().filter(|c| **c).count();
        let left = total as f64 - n_capped as f64 * cap_f;
        let free_weight: f64 = weights
            .iter()
            .zip(&capped)
            .filter(|(_, c)| !**c)
            .map(|(w, _)| w)
            .sum();
        let mut newly_capped = false;
        for chat in 0..chats {
            shares[chat] = if capped[chat] {
                cap_f
            } else {
                left * weights[chat] / free_weight
            };
            if !capped[chat] && shares[chat] > cap_f {
                capped[chat] = true;
                newly_capped = true;
            }
        }
        if !newly_capped {
            break;
        }
    }
    let mut quotas: Vec<usize> = shares
        .iter()
        .map(|share| (share.floor() as usize).min(cap))
        .collect();
    let mut short = total.saturating_sub(quotas.iter().sum());
    let mut by_remainder: Vec<usize> = (0..chats).collect();
    by_remainder.sort_by(|a, b| {
        let fraction = |c: usize| shares[c] - shares[c].floor();
        fraction(*b).total_cmp(&fraction(*a)).then(a.cmp(b))
    });
    while short > 0 {
        let before = short;
        for chat in &by_remainder {
            if short > 0 && quotas[*chat] < cap {
                quotas[*chat] += 1;
                short -= 1;
            }
        }
        if short == before {
            break;
        }
    }
    quotas
}

/// What every task needs to know about the messages.
struct Plan {
    messages: usize,
    /// Message i goes to chat i mod `active`.
    active: usize,
    /// Messages from here on are sent with the slow readers present (`messages` without
    /// slow readers).
    split: usize,
}

impl Plan {
    fn chat_of(&self, seq: usize) -> usize {
        seq % self.active
    }

    /// 0: before the slow readers joined, 1: with them.
    fn window_of(&self, seq: usize) -> usize {
        usize::from(seq >= self.split)
    }
}

// ---------------------------------------------------------------------------------------
// The server processes

async fn start_servers(
    opts: &Opts,
    bin: &Path,
    database: &Database,
    workdir: &Path,
    layout: &Layout,
) -> Result<Vec<Server>> {
    let sockets = layout.sockets + opts.slow_readers;
    let socket_cap = (sockets + 16).to_string();
    let subscription_cap = (layout.subscriptions() + opts.slow_readers + 16).to_string();
    let mut servers = Vec::new();
    for instance in 1..=opts.instances {
        let data_dir = workdir.join(format!("server{instance}"));
        std::fs::create_dir_all(&data_dir)?;
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--database-url".into(),
            database.url.clone(),
            "--admin-key".into(),
            ADMIN_KEY.into(),
            "--jwt-secret".into(),
            JWT_SECRET.into(),
            "--max-sockets-per-user".into(),
            socket_cap.clone(),
            "--max-subscriptions-per-user".into(),
            subscription_cap.clone(),
            "--event-buffer".into(),
            opts.event_buffer.to_string(),
            // One sender sends every message: the per-user mutation limit would cap the run.
            "--mutations-per-minute".into(),
            "0".into(),
            // Set-up creates users and mints tokens USER_BATCH at a time.
            "--max-mutations-per-request".into(),
            USER_BATCH.to_string(),
            // Every subscriber connects from 127.0.0.1, many at once.
            "--ws-max-pending-per-ip".into(),
            socket_cap.clone(),
            "--ws-max-pending".into(),
            socket_cap.clone(),
        ];
        if let Some(pool) = opts.pool_size {
            args.extend(["--pool-size".into(), pool.to_string()]);
        }
        if let Some(bytes) = opts.ws_max_outgoing_bytes {
            args.extend(["--ws-max-outgoing-bytes".into(), bytes.to_string()]);
        }
        if opts.content_bytes > SERVER_MAX_MESSAGE_LENGTH {
            args.extend([
                "--max-message-length".into(),
                opts.content_bytes.to_string(),
            ]);
        }
        let log = data_dir.join("server.log");
        servers.push(Server::start(bin, &args, &opts.server_log, log).await?);
    }
    Ok(servers)
}

/// A process's thread count (`Threads` in `/proc/<pid>/status`).
fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line["Threads:".len()..].trim().parse().ok()
}

/// The first server that exited, and how.
fn exited(servers: &mut [Server]) -> Option<String> {
    servers.iter_mut().enumerate().find_map(|(i, server)| {
        server
            .exited()
            .map(|status| format!("instance {} exited ({status})", i + 1))
    })
}

// ---------------------------------------------------------------------------------------
// GraphQL over HTTP

#[derive(Clone)]
struct Gql {
    http: reqwest::Client,
    url: String,
}

enum Auth<'a> {
    Admin,
    Bearer(&'a str),
}

impl Gql {
    async fn call(&self, auth: Auth<'_>, query: &str, variables: Value) -> Result<Value> {
        let request = self
            .http
            .post(&self.url)
            .header(
                "accept",
                "application/graphql-response+json, application/json",
            )
            .json(&json!({"query": query, "variables": variables}));
        let request = match auth {
            Auth::Admin => request.header("x-admin-key", ADMIN_KEY),
            Auth::Bearer(token) => request.bearer_auth(token),
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

/// A user id and token.
#[derive(Clone)]
struct User {
    id: String,
    token: String,
}

/// Creates users named `names` (admin key), batching aliased mutations per request.
async fn create_users(gql: &Gql, names: &[String]) -> Result<Vec<User>> {
    let batches = names.chunks(USER_BATCH).map(|chunk| {
        let gql = gql.clone();
        let chunk = chunk.to_vec();
        async move {
            let mut create = String::from("mutation {");
            for (i, name) in chunk.iter().enumerate() {
                let name = serde_json::to_string(name)?;
                create.push_str(&format!(
                    " u{i}: createUser(input: {{username: {name}}}) {{ id }}"
                ));
            }
            create.push_str(" }");
            let data = gql.call(Auth::Admin, &create, json!({})).await?;
            let ids = (0..chunk.len())
                .map(|i| str_at(&data, &format!("/u{i}/id")))
                .collect::<Result<Vec<_>>>()?;
            let mut issue = String::from("mutation {");
            for (i, id) in ids.iter().enumerate() {
                let id = serde_json::to_string(id)?;
                issue.push_str(&format!(
                    " t{i}: issueToken(userId: {id}, ttlSeconds: 86400)"
                ));
            }
            issue.push_str(" }");
            let data = gql.call(Auth::Admin, &issue, json!({})).await?;
            ids.into_iter()
                .enumerate()
                .map(|(i, id)| {
                    Ok(User {
                        id,
                        token: str_at(&data, &format!("/t{i}"))?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        }
    });
    let mut users = Vec::with_capacity(names.len());
    let mut results = futures_util::stream::iter(batches).buffered(SETUP_CONCURRENCY);
    while let Some(batch) = results.next().await {
        users.extend(batch?);
    }
    Ok(users)
}

/// Creates a group chat owned by `owner` with `members`, adding them in allowed batches.
async fn create_chat(gql: &Gql, owner: &User, name: &str, members: &[String]) -> Result<String> {
    let mut batches = members.chunks(MEMBERS_PER_CALL);
    let first = batches.next().unwrap_or_default();
    let data = gql
        .call(
            Auth::Bearer(&owner.token),
            "mutation($name: String!, $members: [ID!]) { createChat(input: {kind: GROUP, name: $name, memberIds: $members}) { id } }",
            json!({"name": name, "members": first}),
        )
        .await?;
    let chat_id = str_at(&data, "/createChat/id")?;
    for batch in batches {
        gql.call(
            Auth::Bearer(&owner.token),
            "mutation($chat: ID!, $users: [ID!]!) { addMembers(chatId: $chat, userIds: $users) { role } }",
            json!({"chat": chat_id, "users": batch}),
        )
        .await?;
    }
    Ok(chat_id)
}

async fn send_message(gql: &Gql, sender: &User, chat_id: &str, content: &str) -> Result {
    gql.call(
        Auth::Bearer(&sender.token),
        "mutation($chat: ID!, $content: String!) { sendMessage(input: {chatId: $chat, content: $content}) { id } }",
        json!({"chat": chat_id, "content": content}),
    )
    .await?;
    Ok(())
}

/// A benchmark message's content: "m <seq> <sent µs>", padded with `x` to `bytes`.
fn message_content(seq: usize, sent_at: u64, bytes: usize) -> String {
    let mut content = format!("m {seq} {sent_at}");
    let padding = bytes.saturating_sub(content.len() + 1);
    if padding > 0 {
        content.push(' ');
        content.extend(std::iter::repeat_n('x', padding));
    }
    content
}

// ---------------------------------------------------------------------------------------
// Subscribers

/// Counts deliveries and keeps the newest one's receive time, in stripes by socket: one
/// counter that every delivery of every client thread bumps moves its cache line back
/// and forth between the cores, 10,000 times per message.
struct Deliveries {
    stripes: Vec<DeliveryStripe>,
}

#[derive(Default)]
#[repr(align(64))]
struct DeliveryStripe {
    count: AtomicU64,
    /// µs since the epoch.
    last_us: AtomicU64,
}

impl Deliveries {
    const STRIPES: usize = 16;

    fn new() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| DeliveryStripe::default())
                .collect(),
        }
    }

    fn record(&self, socket: usize, received_at: u64) {
        let stripe = &self.stripes[socket % Self::STRIPES];
        stripe.count.fetch_add(1, Ordering::Relaxed);
        stripe.last_us.fetch_max(received_at, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.count.load(Ordering::SeqCst))
            .sum()
    }

    fn last_us(&self) -> u64 {
        let last = self
            .stripes
            .iter()
            .map(|s| s.last_us.load(Ordering::SeqCst));
        last.max().unwrap_or(0)
    }
}

/// State the coordinator watches while subscriber tasks run.
struct Shared {
    /// Per subscription (socket × per_socket + id − 1): the highest probe number it
    /// received (0: none yet).
    probe_seen: Vec<AtomicU32>,
    /// Sockets that sent their `subscribe` messages.
    subscribed: AtomicUsize,
    /// Sockets or subscriptions that failed or ended.
    ended: AtomicUsize,
    /// Measured deliveries (first copies of benchmark messages) to normal subscribers.
    delivered: Deliveries,
    /// Slow readers that subscribed, saw a probe (went live), failed before that, and
    /// finished draining.
    slow_subscribed: AtomicUsize,
    slow_live: AtomicUsize,
    slow_failed: AtomicUsize,
    slow_done: AtomicUsize,
}

/// What every subscriber task shares.
struct TaskContext {
    shared: Shared,
    plan: Plan,
    /// `127.0.0.1:<port>` and `ws://…/graphql` of the instance the sockets use.
    addr: String,
    url: String,
    document: String,
    connecting: Semaphore,
}

/// What one subscription saw.
#[derive(Default)]
struct SubStats {
    chat: usize,
    /// Bit per sequence number (empty for an idle subscription).
    seen: Vec<u64>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    last_seq: Option<usize>,
    /// Benchmark messages of another chat, or unknown sequence numbers.
    foreign: u64,
    /// Benchmark messages on an idle subscription (its chat gets none).
    idle_messages: u64,
    /// `ResyncRequired` events: the server says events were missed.
    resyncs: u64,
    /// Message frames that also carry GraphQL errors (e.g. from a viewer field).
    errors: u64,
    /// Other events (not `MessageAdded` with content), by `__typename` or message type.
    other: BTreeMap<String, u64>,
    /// Latencies in µs, per window (see [`Plan::window_of`]).
    latencies_us: [Vec<u32>; 2],
    /// Each first copy's sequence number and latency (µs), for the per-message spread.
    arrivals: Vec<(u32, u32)>,
    /// Why the subscription ended before the run did.
    ended: Option<String>,
}

/// What a message content was.
enum Recorded {
    Probe(u32),
    /// The first copy of a benchmark message.
    Delivered,
    /// Anything else (counted in the stats).
    Other,
}

impl SubStats {
    fn new(chat: usize, plan: &Plan) -> Self {
        let active = chat < plan.active;
        let expected = if active {
            plan.messages.div_ceil(plan.active)
        } else {
            0
        };
        let words = if active {
            plan.messages.div_ceil(64)
        } else {
            0
        };
        SubStats {
            chat,
            seen: vec![0; words],
            latencies_us: [Vec::with_capacity(expected), Vec::new()],
            arrivals: Vec::with_capacity(expected),
            ..SubStats::default()
        }
    }

    /// Records one message content received at `received_at`.
    fn record(&mut self, plan: &Plan, content: &str, received_at: u64) -> Recorded {
        if let Some(probe) = content.strip_prefix("probe ") {
            // "probe <round> <chat>"
            return probe
                .split(' ')
                .next()
                .and_then(|r| r.parse::<u32>().ok())
                .map_or(Recorded::Other, Recorded::Probe);
        }
        let parsed = content.strip_prefix("m ").and_then(|rest| {
            // "<seq> <sent µs>[ <padding>]"
            let mut parts = rest.splitn(3, ' ');
            let seq = parts.next()?.parse::<usize>().ok()?;
            let sent = parts.next()?.parse::<u64>().ok()?;
            Some((seq, sent))
        });
        let Some((seq, sent_at)) = parsed else {
            let shown: String = content.chars().take(40).collect();
            *self.other.entry(format!("content {shown:?}")).or_default() += 1;
            return Recorded::Other;
        };
        if self.chat >= plan.active {
            self.idle_messages += 1;
            return Recorded::Other;
        }
        if seq >= plan.messages || plan.chat_of(seq) != self.chat {
            self.foreign += 1;
            return Recorded::Other;
        }
        let (word, bit) = (seq / 64, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return Recorded::Other;
        }
        self.seen[word] |= bit;
        self.received += 1;
        if self.last_seq.is_some_and(|last| seq < last) {
            self.out_of_order += 1;
        }
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        let latency = u32::try_from(received_at.saturating_sub(sent_at)).unwrap_or(u32::MAX);
        self.latencies_us[plan.window_of(seq)].push(latency);
        self.arrivals
            .push((u32::try_from(seq).unwrap_or(u32::MAX), latency));
        Recorded::Delivered
    }

    /// Counts a `next` without message content.
    fn event(&mut self, typename: String) {
        if typename == "ResyncRequired" {
            self.resyncs += 1;
        }
        *self.other.entry(typename).or_default() += 1;
    }
}

/// What one subscriber socket saw.
#[derive(Default)]
struct SocketStats {
    /// One per subscription, in id order.
    subs: Vec<SubStats>,
    /// Frames for an id the socket did not subscribe with.
    unknown_id: u64,
    /// Why the socket ended before the run did.
    ended: Option<String>,
}

struct SocketSpec {
    index: usize,
    token: String,
    /// Per subscription: the chat's id and index.
    chats: Vec<(String, usize)>,
}

async fn subscriber(
    spec: SocketSpec,
    ctx: Arc<TaskContext>,
    mut stop: watch::Receiver<bool>,
) -> SocketStats {
    let shared = &ctx.shared;
    let mut stats = SocketStats {
        subs: spec
            .chats
            .iter()
            .map(|(_, chat)| SubStats::new(*chat, &ctx.plan))
            .collect(),
        ..SocketStats::default()
    };
    let subscriptions: Vec<&str> = spec.chats.iter().map(|(id, _)| id.as_str()).collect();
    let opened = async {
        let _permit = ctx.connecting.acquire().await?;
        open_socket(&ctx, &spec.token, None, &subscriptions).await
    };
    let mut socket = tokio::select! {
        opened = opened => match opened {
            Ok(socket) => socket,
            Err(e) => {
                stats.ended = Some(format!("connect/subscribe failed: {e}"));
                shared.ended.fetch_add(1, Ordering::SeqCst);
                return stats;
            }
        },
        _ = stop.changed() => {
            stats.ended = Some("stopped before it subscribed".into());
            return stats;
        }
    };
    shared.subscribed.fetch_add(1, Ordering::SeqCst);
    let first_probe_slot = spec.index * stats.subs.len();
    let mut open = stats.subs.len();
    // Made once, not per frame: a `changed()` polled anew after every frame joins and
    // leaves the watch's waiter list each time, a lock shared by all 10,000 sockets.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            frame = socket.next() => {
                let received_at = now_us();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        stats.ended = Some(format!("closed by the server: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        stats.ended = Some(format!("socket error: {e}"));
                        break;
                    }
                    None => {
                        stats.ended = Some("socket ended".into());
                        break;
                    }
                };
                let text = text.as_str();
                if let Some(content) = content_of(text) {
                    let Some(sub) = subscription_index(id_of(text), stats.subs.len()) else {
                        stats.unknown_id += 1;
                        continue;
                    };
                    if text.contains(r#""errors":"#) {
                        stats.subs[sub].errors += 1;
                    }
                    match stats.subs[sub].record(&ctx.plan, content, received_at) {
                        Recorded::Probe(round) => {
                            shared.probe_seen[first_probe_slot + sub].fetch_max(round, Ordering::SeqCst);
                        }
                        Recorded::Delivered => {
                            shared.delivered.record(spec.index, received_at);
                        }
                        Recorded::Other => {}
                    }
                    continue;
                }
                match classify(text) {
                    Frame::Ping => {
                        let pong = Message::Text(r#"{"type":"pong"}"#.into());
                        if let Err(e) = socket.send(pong).await {
                            stats.ended = Some(format!("pong failed: {e}"));
                            break;
                        }
                    }
                    Frame::Pong => {}
                    Frame::Event { id, typename } => {
                        match subscription_index(id.as_deref(), stats.subs.len()) {
                            Some(sub) => stats.subs[sub].event(typename),
                            None => stats.unknown_id += 1,
                        }
                    }
                    Frame::End { id, what } => {
                        let Some(sub) = subscription_index(id.as_deref(), stats.subs.len()) else {
                            stats.ended = Some(format!("unexpected frame: {what}"));
                            break;
                        };
                        if stats.subs[sub].ended.is_none() {
                            stats.subs[sub].ended = Some(format!("subscription ended: {what}"));
                            shared.ended.fetch_add(1, Ordering::SeqCst);
                            open -= 1;
                        }
                        if open == 0 {
                            return stats;
                        }
                    }
                }
            }
            _ = &mut stopped => return stats,
        }
    }
    shared.ended.fetch_add(1, Ordering::SeqCst);
    stats
}

type Socket = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects (with `SO_RCVBUF` set to `receive_buffer` when given), authenticates as
/// `token` and subscribes to each chat id of `chats` (ids "1", "2", …); bounded.
async fn open_socket(
    ctx: &TaskContext,
    token: &str,
    receive_buffer: Option<u32>,
    chats: &[&str],
) -> Result<Socket> {
    let attempt = async {
        let mut request = ctx.url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
        // Small buffers keep 10,000 client sockets lean (tungstenite's default read buffer
        // is 128 KiB per socket), and cheap: tungstenite zeroes the buffer's free part
        // before every read. Frames here are a few hundred bytes; a longer one is read
        // whole all the same (the buffer grows to the frame's length).
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0);
        let (mut socket, _) = match receive_buffer {
            None => {
                tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?
            }
            Some(bytes) => {
                // Set before connecting, so that the window the kernel offers is small.
                let tcp = tokio::net::TcpSocket::new_v4()?;
                tcp.set_recv_buffer_size(bytes)?;
                let stream = tcp.connect(ctx.addr.parse()?).await?;
                stream.set_nodelay(true)?;
                let stream = MaybeTlsStream::Plain(stream);
                tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?
            }
        };
        let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
        socket.send(Message::Text(init.to_string().into())).await?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str())?;
                    match value["type"].as_str() {
                        Some("connection_ack") => break,
                        Some("ping") => {
                            socket
                                .send(Message::Text(r#"{"type":"pong"}"#.into()))
                                .await?;
                        }
                        _ => return Err(format!("expected connection_ack, got {value}").into()),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("closed during init: {frame:?}").into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("socket ended during init".into()),
            }
        }
        for (i, chat_id) in chats.iter().enumerate() {
            let subscribe = json!({
                "id": (i + 1).to_string(),
                "type": "subscribe",
                "payload": {"query": ctx.document, "variables": {"chat": chat_id}},
            });
            socket
                .send(Message::Text(subscribe.to_string().into()))
                .await?;
        }
        Ok::<_, BoxError>(socket)
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .map_err(|_| "timed out connecting")?
}

/// The message content in a `next` frame, found without a full JSON parse. Our contents
/// hold no quotes or escapes.
fn content_of(text: &str) -> Option<&str> {
    const KEY: &str = r#""content":""#;
    let start = text.find(KEY)? + KEY.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The operation id of a frame, found without a full JSON parse: the frame's `id` comes
/// before its payload, which selects no field named `id`.
fn id_of(text: &str) -> Option<&str> {
    const KEY: &str = r#""id":""#;
    let start = text.find(KEY)? + KEY.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The index of subscription `id` ("1".."count").
fn subscription_index(id: Option<&str>, count: usize) -> Option<usize> {
    let n: usize = id?.parse().ok()?;
    (1..=count).contains(&n).then(|| n - 1)
}

enum Frame {
    Ping,
    Pong,
    /// A `next` without message content: its `__typename`.
    Event {
        id: Option<String>,
        typename: String,
    },
    /// `error`, `complete` or anything unexpected: the subscription (or socket) is over.
    End {
        id: Option<String>,
        what: String,
    },
}

fn classify(text: &str) -> Frame {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Frame::End {
            id: None,
            what: format!("unparsable frame {text}"),
        };
    };
    let id = value["id"].as_str().map(str::to_owned);
    match value["type"].as_str() {
        Some("ping") => Frame::Ping,
        Some("pong") => Frame::Pong,
        Some("next") if value["payload"].get("errors").is_none() => {
            let event = &value["payload"]["data"]["chatEvents"];
            let typename = match event["__typename"].as_str().unwrap_or("?") {
                // A MessageAdded whose message could not be loaded.
                "MessageAdded" => format!("MessageAdded without content: {event}"),
                other => other.to_owned(),
            };
            Frame::Event { id, typename }
        }
        _ => Frame::End {
            id,
            what: text.to_owned(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Slow readers

/// What one slow reader saw, and how its socket ended.
#[derive(Default)]
struct SlowStats {
    sub: SubStats,
    /// The server's close frame: code and reason.
    closed: Option<(u16, String)>,
    /// How the socket ended otherwise (error, end without a close frame), or why the
    /// reader never got going.
    ended: Option<String>,
}

impl SlowStats {
    /// Its fate in a few words, without figures (so that equal fates group).
    fn fate(&self, expected: u64) -> String {
        let resynced = if self.sub.resyncs > 0 {
            "got ResyncRequired, then "
        } else {
            ""
        };
        match (&self.closed, &self.ended) {
            (Some((code, reason)), _) => format!("{resynced}closed by the server: {code} {reason}"),
            (None, Some(ended)) => format!("{resynced}{ended}"),
            (None, None) if self.sub.received >= expected && self.sub.resyncs == 0 => {
                "got everything".to_owned()
            }
            (None, None) => format!("{resynced}went quiet ({SLOW_QUIET:?} without a frame)"),
        }
    }
}

struct SlowSpec {
    index: usize,
    token: String,
    /// Chat 0's id.
    chat_id: String,
    /// `SO_RCVBUF`, bytes.
    receive_buffer: u32,
}

/// A socket on chat 0 that reads until its subscription is live, then reads nothing until
/// told to drain (`drain` carries how many messages it should get).
async fn slow_reader(
    spec: SlowSpec,
    ctx: Arc<TaskContext>,
    mut stop: watch::Receiver<bool>,
    mut drain: watch::Receiver<Option<u64>>,
) -> SlowStats {
    let shared = &ctx.shared;
    let mut stats = SlowStats {
        sub: SubStats::new(0, &ctx.plan),
        ..SlowStats::default()
    };
    let opened = async {
        let _permit = ctx.connecting.acquire().await?;
        open_socket(
            &ctx,
            &spec.token,
            Some(spec.receive_buffer),
            &[&spec.chat_id],
        )
        .await
    };
    let mut socket = tokio::select! {
        opened = opened => match opened {
            Ok(socket) => socket,
            Err(e) => {
                stats.ended = Some(format!("slow reader {}: connect/subscribe failed: {e}", spec.index));
                shared.slow_failed.fetch_add(1, Ordering::SeqCst);
                return stats;
            }
        },
        _ = stop.changed() => return stats,
    };
    shared.slow_subscribed.fetch_add(1, Ordering::SeqCst);

    // Live once a probe arrives (any: it subscribed after the earlier rounds).
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = stop.changed() => return stats,
        };
        let failure = match frame {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                if content_of(text).is_some_and(|c| c.starts_with("probe ")) {
                    break;
                }
                if let Frame::Ping = classify(text)
                    && let Err(e) = socket
                        .send(Message::Text(r#"{"type":"pong"}"#.into()))
                        .await
                {
                    Some(format!("pong failed: {e}"))
                } else {
                    None
                }
            }
            Some(Ok(Message::Close(frame))) => Some(format!("closed before going live: {frame:?}")),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(format!("socket error before going live: {e}")),
            None => Some("socket ended before going live".into()),
        };
        if let Some(failure) = failure {
            stats.ended = Some(format!("slow reader {}: {failure}", spec.index));
            shared.slow_failed.fetch_add(1, Ordering::SeqCst);
            return stats;
        }
    }
    shared.slow_live.fetch_add(1, Ordering::SeqCst);

    // Not reading: the server's queue for this socket and the kernel's buffers fill.
    let expected = tokio::select! {
        expected = drain.wait_for(Option::is_some) => match expected {
            Ok(expected) => expected.unwrap_or(0),
            Err(_) => return stats,
        },
        _ = stop.changed() => return stats,
    };

    // Drain: whatever is there, until the server closes, everything came, or it is quiet.
    while stats.sub.received < expected {
        let frame = tokio::select! {
            frame = tokio::time::timeout(SLOW_QUIET, socket.next()) => frame,
            _ = stop.changed() => break,
        };
        let Ok(frame) = frame else {
            break;
        };
        let received_at = now_us();
        match frame {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                if let Some(content) = content_of(text) {
                    stats.sub.record(&ctx.plan, content, received_at);
                } else if let Frame::Event { typename, .. } = classify(text) {
                    stats.sub.event(typename);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                stats.closed = Some(frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                }));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) | None => {
                stats.ended =
                    Some("the server dropped the connection without a close frame".into());
                break;
            }
            Some(Err(e)) => {
                stats.ended = Some(format!("socket error ({e})"));
                break;
            }
        }
    }
    shared.slow_done.fetch_add(1, Ordering::SeqCst);
    stats
}

// ---------------------------------------------------------------------------------------
// The run

/// Phases, for the timeout message.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Setup,
    Connecting,
    Probing,
    Sending,
    Draining,
    SlowReadersConnecting,
    SlowReadersDraining,
    Done,
}

/// CPU time used so far (or in a window): per instance, the database cluster, this tool.
struct CpuUse {
    servers: Vec<Option<Duration>>,
    database: Option<Duration>,
    client: Option<Duration>,
}

impl CpuUse {
    fn now(servers: &[Server], postmaster: Option<u32>) -> Self {
        CpuUse {
            servers: servers
                .iter()
                .map(|s| cpu_time(&s.pid.to_string()))
                .collect(),
            database: postmaster.and_then(cluster_cpu_time),
            client: cpu_time("self"),
        }
    }

    /// Combines `self` and `other` figure by figure.
    fn zip_with(
        &self,
        other: &CpuUse,
        f: impl Fn(Duration, Duration) -> Option<Duration>,
    ) -> CpuUse {
        let both = |a: Option<Duration>, b: Option<Duration>| f(a?, b?);
        CpuUse {
            servers: self
                .servers
                .iter()
                .zip(&other.servers)
                .map(|(a, b)| both(*a, *b))
                .collect(),
            database: both(self.database, other.database),
            client: both(self.client, other.client),
        }
    }

    /// What was used from `before` until `self`.
    fn since(&self, before: &CpuUse) -> CpuUse {
        self.zip_with(before, Duration::checked_sub)
    }

    fn plus(&self, other: &CpuUse) -> CpuUse {
        self.zip_with(other, Duration::checked_add)
    }
}

/// One stretch of sends and the drain of their deliveries.
#[derive(Default)]
struct WindowTimings {
    seqs: Range<usize>,
    send_started_us: u64,
    send: Option<Duration>,
    drain: Option<Duration>,
    /// Deliveries counted from the first send to the end of the drain.
    delivered: u64,
    /// The newest delivery at the end of the drain, µs since the epoch.
    last_delivery_us: u64,
}

#[derive(Default)]
struct Timings {
    setup: Option<Duration>,
    connect: Option<Duration>,
    live: Option<Duration>,
    probes: u32,
    slow_connect: Option<Duration>,
    slow_drain: Option<Duration>,
    windows: Vec<WindowTimings>,
    /// `sendMessage` round trips, µs.
    send_latencies_us: Vec<u32>,
    /// CPU time used in the windows (sends and drains).
    cpu: Option<CpuUse>,
}

struct Run {
    opts: Opts,
    layout: Layout,
    ctx: Arc<TaskContext>,
    /// Set-up calls go to instance 1, sends (and probes) to the last instance.
    setup_gql: Gql,
    send_gql: Gql,
    stop: watch::Sender<bool>,
    drain: watch::Sender<Option<u64>>,
    tasks: Vec<JoinHandle<SocketStats>>,
    slow_tasks: Vec<JoinHandle<SlowStats>>,
    chat_ids: Vec<String>,
    /// Per message: whether `sendMessage` succeeded.
    sent_ok: Vec<bool>,
    send_errors: Vec<String>,
    phase: Phase,
    probe_round: u32,
    timings: Timings,
    postmaster: Option<u32>,
    rss_before: Option<u64>,
    rss_live: Option<u64>,
    /// Instance 1's threads before any socket and once all are live.
    threads_before: Option<u64>,
    threads_live: Option<u64>,
    client_rss_before: Option<u64>,
    client_rss_live: Option<u64>,
}

impl Run {
    async fn drive(&mut self, servers: &mut [Server]) -> Result {
        let opts = self.opts.clone();

        // Users and chats.
        let started = Instant::now();
        let tag = format!("fo{}_{}", now_us() % 1_000_000_000, std::process::id());
        let mut names = vec![format!("{tag}_sender")];
        names.extend((0..self.layout.users).map(|i| format!("{tag}_u{i}")));
        if opts.slow_readers > 0 {
            names.push(format!("{tag}_slow"));
        }
        let mut users = create_users(&self.setup_gql, &names).await?.into_iter();
        let sender = users.next().ok_or("no sender was created")?;
        let subscribers: Vec<User> = users.by_ref().take(self.layout.users).collect();
        let slow_user = users.next();
        let chats = self
            .layout
            .members()
            .into_iter()
            .enumerate()
            .map(|(chat, members)| {
                let mut ids: Vec<String> =
                    members.iter().map(|u| subscribers[*u].id.clone()).collect();
                if chat == 0
                    && let Some(slow) = &slow_user
                {
                    ids.push(slow.id.clone());
                }
                let (gql, sender, name) = (&self.setup_gql, &sender, format!("{tag} chat {chat}"));
                async move { create_chat(gql, sender, &name, &ids).await }
            });
        let mut created = futures_util::stream::iter(chats).buffered(SETUP_CONCURRENCY);
        while let Some(id) = created.next().await {
            self.chat_ids.push(id?);
        }
        drop(created);
        self.timings.setup = Some(started.elapsed());

        // Sockets.
        self.phase = Phase::Connecting;
        self.rss_before = servers[0].memory().map(|m| m.rss);
        self.threads_before = threads(servers[0].pid);
        self.client_rss_before = memory("self").map(|m| m.rss);
        let started = Instant::now();
        for index in 0..self.layout.sockets {
            let spec = SocketSpec {
                index,
                token: subscribers[index % self.layout.users].token.clone(),
                chats: self
                    .layout
                    .chats_of_socket(index)
                    .iter()
                    .map(|chat| (self.chat_ids[*chat].clone(), *chat))
                    .collect(),
            };
            self.tasks.push(tokio::spawn(subscriber(
                spec,
                self.ctx.clone(),
                self.stop.subscribe(),
            )));
        }
        let shared = &self.ctx.shared;
        while shared.subscribed.load(Ordering::SeqCst) < self.layout.sockets {
            let ended = shared.ended.load(Ordering::SeqCst);
            if ended > 0 {
                return Err(format!("{ended} socket(s) failed or ended while connecting").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.timings.connect = Some(started.elapsed());

        // Probe until every subscription delivers: the protocol has no "ready" signal.
        self.phase = Phase::Probing;
        let started = Instant::now();
        let all_chats: Vec<usize> = (0..opts.chats).collect();
        let target = self.layout.subscriptions();
        self.probe_until_live(&sender, &all_chats, target, |shared, round| {
            let live = shared
                .probe_seen
                .iter()
                .filter(|seen| seen.load(Ordering::SeqCst) >= round)
                .count();
            let failed = shared.ended.load(Ordering::SeqCst);
            (
                live,
                (failed > 0).then(|| format!("{failed} socket(s) ended before going live")),
            )
        })
        .await?;
        self.timings.live = Some(started.elapsed());
        self.rss_live = servers[0].memory().map(|m| m.rss);
        self.threads_live = threads(servers[0].pid);
        self.client_rss_live = memory("self").map(|m| m.rss);

        // Messages: all of them, or half before and half with the slow readers.
        let split = self.ctx.plan.split;
        self.send_window(&sender, 0..split, servers).await?;
        if let Some(slow_user) = slow_user {
            self.start_slow_readers(&slow_user, &sender).await?;
            self.send_window(&sender, split..opts.messages, servers)
                .await?;
            self.drain_slow_readers().await;
        }
        self.phase = Phase::Done;
        Ok(())
    }

    /// Sends probes to `chats` (round after round while one stalls) until `live` reports
    /// `target` for the current round, or a failure.
    async fn probe_until_live(
        &mut self,
        sender: &User,
        chats: &[usize],
        target: usize,
        live: impl Fn(&Shared, u32) -> (usize, Option<String>),
    ) -> Result {
        let shared = &self.ctx.shared;
        loop {
            self.probe_round += 1;
            self.timings.probes += 1;
            let round = self.probe_round;
            let probes =
                chats.iter().map(|chat| {
                    let (gql, chat_id) = (&self.send_gql, &self.chat_ids[*chat]);
                    async move {
                        send_message(gql, sender, chat_id, &format!("probe {round} {chat}")).await
                    }
                });
            let mut sent = futures_util::stream::iter(probes).buffer_unordered(SETUP_CONCURRENCY);
            while let Some(result) = sent.next().await {
                result?;
            }
            drop(sent);
            // Wait while the round makes progress; resend when it stalls.
            let mut best = 0;
            let mut last_progress = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (now, failure) = live(shared, round);
                if let Some(failure) = failure {
                    return Err(failure.into());
                }
                if now >= target {
                    return Ok(());
                }
                if now > best {
                    best = now;
                    last_progress = Instant::now();
                } else if last_progress.elapsed() > Duration::from_millis(1000) {
                    break;
                }
            }
        }
    }

    /// Sends messages `seqs` (at `--rate`), then waits until every subscriber got them.
    async fn send_window(
        &mut self,
        sender: &User,
        seqs: Range<usize>,
        servers: &mut [Server],
    ) -> Result {
        self.phase = Phase::Sending;
        let shared = &self.ctx.shared;
        let cpu_before = CpuUse::now(servers, self.postmaster);
        let delivered_before = shared.delivered.total();
        // In the list from the start, so that a run cut short still shows it.
        let window = self.timings.windows.len();
        self.timings.windows.push(WindowTimings {
            seqs: seqs.clone(),
            send_started_us: now_us(),
            ..WindowTimings::default()
        });
        let started = Instant::now();
        let tokio_start = tokio::time::Instant::now();
        for (i, seq) in seqs.enumerate() {
            if let Some(rate) = self.opts.rate.filter(|r| *r > 0.0) {
                let at = tokio_start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(at).await;
            }
            let chat = self.ctx.plan.chat_of(seq);
            let sent_at = now_us();
            let content = message_content(seq, sent_at, self.opts.content_bytes);
            let result = send_message(&self.send_gql, sender, &self.chat_ids[chat], &content).await;
            let round_trip = now_us().saturating_sub(sent_at);
            self.timings
                .send_latencies_us
                .push(u32::try_from(round_trip).unwrap_or(u32::MAX));
            self.sent_ok.push(result.is_ok());
            if let Err(e) = result
                && self.send_errors.len() < 5
            {
                self.send_errors.push(format!("message {seq}: {e}"));
            }
        }
        self.timings.windows[window].send = Some(started.elapsed());

        // Deliveries.
        self.phase = Phase::Draining;
        let expected = self.expected_total();
        let started = Instant::now();
        let mut delivered = shared.delivered.total();
        let mut last_progress = Instant::now();
        let outcome = loop {
            if delivered >= expected {
                break Ok(());
            }
            if let Some(exit) = exited(servers) {
                break Err(exit);
            }
            if last_progress.elapsed() > STALL {
                break Err(format!(
                    "deliveries stalled at {delivered} of {expected} for {} s",
                    STALL.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = shared.delivered.total();
            if now > delivered {
                delivered = now;
                last_progress = Instant::now();
            }
        };
        let timings = &mut self.timings.windows[window];
        timings.drain = Some(started.elapsed());
        timings.delivered = delivered - delivered_before;
        timings.last_delivery_us = shared.delivered.last_us();
        let used = CpuUse::now(servers, self.postmaster).since(&cpu_before);
        self.timings.cpu = Some(match &self.timings.cpu {
            Some(earlier) => earlier.plus(&used),
            None => used,
        });
        outcome.map_err(Into::into)
    }

    /// Connects the slow readers and waits until each subscription delivers a probe.
    async fn start_slow_readers(&mut self, slow_user: &User, sender: &User) -> Result {
        self.phase = Phase::SlowReadersConnecting;
        let started = Instant::now();
        let count = self.opts.slow_readers;
        for index in 0..count {
            let spec = SlowSpec {
                index,
                token: slow_user.token.clone(),
                chat_id: self.chat_ids[0].clone(),
                receive_buffer: self.opts.slow_reader_rcvbuf,
            };
            self.slow_tasks.push(tokio::spawn(slow_reader(
                spec,
                self.ctx.clone(),
                self.stop.subscribe(),
                self.drain.subscribe(),
            )));
        }
        let shared = &self.ctx.shared;
        while shared.slow_subscribed.load(Ordering::SeqCst) < count {
            let failed = shared.slow_failed.load(Ordering::SeqCst);
            if failed > 0 {
                return Err(format!("{failed} slow reader(s) failed while connecting").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.probe_until_live(sender, &[0], count, |shared, _| {
            let failed = shared.slow_failed.load(Ordering::SeqCst);
            (
                shared.slow_live.load(Ordering::SeqCst),
                (failed > 0).then(|| format!("{failed} slow reader(s) ended before going live")),
            )
        })
        .await?;
        self.timings.slow_connect = Some(started.elapsed());
        Ok(())
    }

    /// Lets the slow readers read what reached them; waits until each has its fate.
    async fn drain_slow_readers(&mut self) {
        self.phase = Phase::SlowReadersDraining;
        let started = Instant::now();
        let _ = self.drain.send(Some(self.slow_expected()));
        let shared = &self.ctx.shared;
        // Each reader stops once it has everything, is closed, or is quiet for SLOW_QUIET.
        let limit = STALL + SLOW_QUIET;
        let mut done = shared.slow_done.load(Ordering::SeqCst);
        let mut last_progress = Instant::now();
        while done < self.opts.slow_readers && last_progress.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = shared.slow_done.load(Ordering::SeqCst);
            if now > done {
                done = now;
                last_progress = Instant::now();
            }
        }
        self.timings.slow_drain = Some(started.elapsed());
    }

    /// Per chat: the benchmark messages sent to it successfully.
    fn sent_per_chat(&self) -> Vec<u64> {
        let mut per_chat = vec![0u64; self.opts.chats];
        for (seq, ok) in self.sent_ok.iter().enumerate() {
            if *ok {
                per_chat[self.ctx.plan.chat_of(seq)] += 1;
            }
        }
        per_chat
    }

    /// Deliveries due to the normal subscriptions for what was sent so far.
    fn expected_total(&self) -> u64 {
        self.sent_per_chat()
            .iter()
            .zip(&self.layout.subscriptions_per_chat)
            .map(|(sent, subscriptions)| sent * subscriptions)
            .sum()
    }

    /// Messages due to each slow reader: those sent to chat 0 while they were there.
    fn slow_expected(&self) -> u64 {
        let plan = &self.ctx.plan;
        self.sent_ok
            .iter()
            .enumerate()
            .filter(|(seq, ok)| **ok && plan.window_of(*seq) == 1 && plan.chat_of(*seq) == 0)
            .count() as u64
    }

    /// Stops every subscriber and gathers what they saw.
    async fn collect(&mut self) -> (Vec<SocketStats>, Vec<SlowStats>) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let sockets = join_all(self.tasks.drain(..), deadline, |ended| SocketStats {
            ended: Some(ended),
            ..SocketStats::default()
        })
        .await;
        let slow = join_all(self.slow_tasks.drain(..), deadline, |ended| SlowStats {
            ended: Some(ended),
            ..SlowStats::default()
        })
        .await;
        (sockets, slow)
    }
}

/// The tasks' results; `failed` stands in for one that failed or did not stop in time.
async fn join_all<T>(
    tasks: impl Iterator<Item = JoinHandle<T>>,
    deadline: tokio::time::Instant,
    failed: impl Fn(String) -> T,
) -> Vec<T> {
    let mut all = Vec::new();
    for mut task in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(stats)) => all.push(stats),
            Ok(Err(e)) => all.push(failed(format!("task failed: {e}"))),
            Err(_) => {
                task.abort();
                all.push(failed("did not stop in time".into()));
            }
        }
    }
    all
}

async fn run(opts: Opts) -> Result<bool> {
    check_options(&opts)?;
    check_fd_limit(opts.subscribers + opts.slow_readers)?;
    let bin = server_binary(opts.server_bin.as_ref())?;
    let workdir = tempfile::Builder::new().prefix("chatql-fanout").tempdir()?;
    let database = match &opts.database_url {
        // Used as given (the server creates its schema).
        Some(url) => Database {
            backend: if opts.uses_postgres() {
                Backend::Postgres
            } else {
                Backend::Sqlite
            },
            url: url.clone(),
            pg: None,
        },
        None => {
            let sqlite = workdir.path().join("fanout.db");
            Database::create("fanout", None, opts.postgres, &sqlite).await?
        }
    };
    let outcome = tokio::select! {
        outcome = run_on(&opts, &bin, &database, workdir.path()) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    let finished = database.finish(false).await;
    let passed = outcome?;
    finished?;
    Ok(passed)
}

async fn run_on(opts: &Opts, bin: &Path, database: &Database, workdir: &Path) -> Result<bool> {
    let layout = Layout::new(opts);
    let mut servers = start_servers(opts, bin, database, workdir, &layout).await?;
    let postmaster = match database.backend {
        Backend::Postgres => {
            let mut conn = AsyncPgConnection::establish(&database.url).await?;
            postmaster_pid(&mut conn).await?
        }
        Backend::Sqlite => None,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let (subscribed_to, sent_through) = match servers.as_slice() {
        [only] => (only, only),
        [first, .., last] => (first, last),
        [] => return Err("no server started".into()),
    };
    let split = if opts.slow_readers > 0 {
        opts.messages / 2
    } else {
        opts.messages
    };
    let ctx = Arc::new(TaskContext {
        shared: Shared {
            probe_seen: (0..layout.subscriptions())
                .map(|_| AtomicU32::new(0))
                .collect(),
            subscribed: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            delivered: Deliveries::new(),
            slow_subscribed: AtomicUsize::new(0),
            slow_live: AtomicUsize::new(0),
            slow_failed: AtomicUsize::new(0),
            slow_done: AtomicUsize::new(0),
        },
        plan: Plan {
            messages: opts.messages,
            active: opts.active_chats(),
            split,
        },
        addr: subscribed_to.addr.clone(),
        url: format!("ws://{}/graphql", subscribed_to.addr),
        document: opts.subscription_document(),
        connecting: Semaphore::new(opts.connect_concurrency.max(1)),
    });
    let (stop, _) = watch::channel(false);
    let (drain, _) = watch::channel(None);
    let mut run = Run {
        opts: opts.clone(),
        layout,
        ctx,
        setup_gql: Gql {
            http: http.clone(),
            url: subscribed_to.graphql_url(),
        },
        send_gql: Gql {
            http,
            url: sent_through.graphql_url(),
        },
        stop,
        drain,
        tasks: Vec::new(),
        slow_tasks: Vec::new(),
        chat_ids: Vec::new(),
        sent_ok: Vec::new(),
        send_errors: Vec::new(),
        phase: Phase::Setup,
        probe_round: 0,
        timings: Timings::default(),
        postmaster,
        rss_before: None,
        rss_live: None,
        threads_before: None,
        threads_live: None,
        client_rss_before: None,
        client_rss_live: None,
    };
    let limit = Duration::from_secs(opts.timeout);
    let outcome = match tokio::time::timeout(limit, run.drive(&mut servers)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e} (during {:?})", run.phase)),
        Err(_) => Err(format!(
            "timed out after {} s during {:?}",
            opts.timeout, run.phase
        )),
    };
    let memory_after: Vec<Option<Memory>> = servers.iter().map(Server::memory).collect();
    let server_exit = exited(&mut servers);
    let (sockets, slow) = run.collect().await;
    let log_tails: Vec<String> = servers.iter().map(|s| s.log_tail(20)).collect();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    for server in servers {
        server.stop().await;
    }

    let description = match &opts.database_url {
        Some(url) => redact(url),
        None if database.pg.as_ref().is_some_and(|pg| pg.cluster.is_some()) => format!(
            "{} (throwaway PostgreSQL cluster, fsync off)",
            database.describe()
        ),
        None => database.describe(),
    };
    let passed = Report {
        run: &run,
        sockets: &sockets,
        slow: &slow,
        memory_after: &memory_after,
        addrs: &addrs,
        database: &description,
        failure: outcome.as_ref().err(),
    }
    .print();
    if outcome.is_err() || !passed {
        if let Some(exit) = server_exit {
            println!("{exit}");
        }
        for (i, tail) in log_tails.iter().enumerate() {
            if !tail.is_empty() {
                println!("--- server log, instance {} (tail) ---\n{tail}", i + 1);
            }
        }
    }
    Ok(outcome.is_ok() && passed)
}

// ---------------------------------------------------------------------------------------
// Report

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// "p50 …  p90 …  p99 …  max …   (n=…)" of unsorted µs latencies, in ms.
fn latency_line(latencies: &mut [u32]) -> String {
    latencies.sort_unstable();
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}   (n={})",
        percentile(latencies, 0.50),
        percentile(latencies, 0.90),
        percentile(latencies, 0.99),
        latencies
            .last()
            .map_or(f64::NAN, |m| f64::from(*m) / 1000.0),
        latencies.len()
    )
}

struct Report<'a> {
    run: &'a Run,
    sockets: &'a [SocketStats],
    slow: &'a [SlowStats],
    memory_after: &'a [Option<Memory>],
    addrs: &'a [String],
    database: &'a str,
    failure: Option<&'a String>,
}

impl Report<'_> {
    fn subs(&self) -> impl Iterator<Item = &SubStats> {
        self.sockets.iter().flat_map(|s| &s.subs)
    }

    fn sum(&self, f: impl Fn(&SubStats) -> u64) -> u64 {
        self.subs().map(f).sum()
    }

    /// Latencies (µs) of window `window` (None: both) on chat `chat` (None: all).
    fn latencies(&self, window: Option<usize>, chat: Option<usize>) -> Vec<u32> {
        self.subs()
            .filter(|s| chat.is_none_or(|c| s.chat == c))
            .flat_map(|s| {
                s.latencies_us
                    .iter()
                    .enumerate()
                    .filter(|(w, _)| window.is_none_or(|want| want == *w))
                    .flat_map(|(_, l)| l.iter().copied())
            })
            .collect()
    }

    /// Prints the figures; true when nothing was lost and nothing failed.
    fn print(&self) -> bool {
        let run = self.run;
        let (opts, layout, t) = (&run.opts, &run.layout, &run.timings);
        let sent = run.sent_ok.iter().filter(|ok| **ok).count();
        let send_failed = run.sent_ok.len() - sent;
        let sent_per_chat = run.sent_per_chat();
        let expected = run.expected_total();
        let received = self.sum(|s| s.received);
        let lost = expected.saturating_sub(received);
        let duplicates = self.sum(|s| s.duplicates);
        let out_of_order = self.sum(|s| s.out_of_order);
        let foreign = self.sum(|s| s.foreign);
        let idle_messages = self.sum(|s| s.idle_messages);
        let resyncs = self.sum(|s| s.resyncs);
        let errors = self.sum(|s| s.errors);
        let unknown_id: u64 = self.sockets.iter().map(|s| s.unknown_id).sum();
        let mut other: BTreeMap<&str, u64> = BTreeMap::new();
        for s in self.subs() {
            for (kind, n) in &s.other {
                *other.entry(kind.as_str()).or_default() += n;
            }
        }
        let ended: Vec<&String> = self
            .sockets
            .iter()
            .filter_map(|s| s.ended.as_ref())
            .chain(self.subs().filter_map(|s| s.ended.as_ref()))
            .collect();
        let reported = self.subs().count();
        let short = self
            .subs()
            .filter(|s| s.chat < layout.active && s.received < sent_per_chat[s.chat])
            .count()
            + layout.subscriptions().saturating_sub(reported);
        let per_chat = &layout.subscriptions_per_chat;
        let active_per_chat = &per_chat[..layout.active];
        let biggest = layout.biggest_chat();

        println!();
        println!("chatql subscription fan-out");
        println!(
            "config: database={} sockets={} subscriptions-per-socket={} users={} chats={} \
             active-chats={} zipf={} messages={} content-bytes={} rate={} viewer-fields={} \
             slow-readers={} event-buffer={} pool-size={} ws-max-outgoing-bytes={} instances={} \
             connect-concurrency={} timeout={} s",
            self.database,
            layout.sockets,
            layout.per_socket,
            layout.users,
            opts.chats,
            layout.active,
            opts.zipf,
            opts.messages,
            opts.content_bytes,
            opts.rate
                .map_or_else(|| "max (sequential)".to_owned(), |r| format!("{r}/s")),
            opts.viewer_fields,
            opts.slow_readers,
            opts.event_buffer,
            opts.pool_size
                .map_or_else(|| "server default".to_owned(), |p| p.to_string()),
            opts.ws_max_outgoing_bytes
                .map_or_else(|| "server default".to_owned(), |b| b.to_string()),
            opts.instances,
            opts.connect_concurrency,
            opts.timeout,
        );
        println!("  subscription: {}", run.ctx.document);
        match self.addrs {
            [only] => println!("  server: {only}"),
            [first, .., last] => println!(
                "  servers: sockets on instance 1 ({first}), every send through instance {} ({last}); RSS figures are instance 1's",
                self.addrs.len()
            ),
            [] => {}
        }
        let first: Vec<String> = per_chat.iter().take(5).map(u64::to_string).collect();
        println!(
            "  subscriptions per chat: min {} max {} (active chats: min {} max {}); chats 0..{}: {}; biggest active chat: chat {biggest}",
            per_chat.iter().min().copied().unwrap_or(0),
            per_chat.iter().max().copied().unwrap_or(0),
            active_per_chat.iter().min().copied().unwrap_or(0),
            active_per_chat.iter().max().copied().unwrap_or(0),
            first.len(),
            first.join(", "),
        );
        let mut phases = format!(
            "phases: setup (users, tokens, chats) {}, connect+subscribe {}, all live {} ({} probe round(s))",
            secs(t.setup),
            secs(t.connect),
            secs(t.live),
            t.probes,
        );
        for (i, w) in t.windows.iter().enumerate() {
            if i == 1 {
                phases.push_str(&format!(
                    ", slow readers connect+live {}",
                    secs(t.slow_connect)
                ));
            }
            phases.push_str(&format!(
                ", send {}..{} {}, drain after last send {}",
                w.seqs.start,
                w.seqs.end,
                secs(w.send),
                secs(w.drain)
            ));
        }
        if t.slow_drain.is_some() {
            phases.push_str(&format!(", slow readers' drain {}", secs(t.slow_drain)));
        }
        println!("{phases}");
        println!("sockets                     {}", layout.sockets);
        println!(
            "subscriptions               {} ({} per socket); idle (no messages): {} on {} chat(s)",
            layout.subscriptions(),
            layout.per_socket,
            layout.idle_subscriptions(),
            opts.chats - layout.active
        );
        println!(
            "chats                       {} ({} active)",
            opts.chats, layout.active
        );
        // A rate only when every send finished (not cut short by --timeout).
        let send_time: Option<Duration> = t.windows.iter().map(|w| w.send).sum();
        let send_rate = send_time.filter(|d| !d.is_zero()).map_or_else(
            || "-".to_owned(),
            |d| format!("{:.1}", sent as f64 / d.as_secs_f64()),
        );
        println!(
            "messages sent               {sent} of {} ({send_failed} failed), {send_rate} msg/s",
            opts.messages,
        );
        for e in &run.send_errors {
            println!("  send error: {e}");
        }
        let mut round_trips = t.send_latencies_us.clone();
        round_trips.sort_unstable();
        println!(
            "sendMessage round trip ms   p50 {:.2}  p99 {:.2}  max {:.2}",
            percentile(&round_trips, 0.50),
            percentile(&round_trips, 0.99),
            round_trips
                .last()
                .map_or(f64::NAN, |m| f64::from(*m) / 1000.0),
        );
        println!("deliveries expected         {expected}");
        println!("deliveries received         {received}");
        let stopped_early = if self.failure.is_some() {
            "; the run stopped early, so some may still have been on their way"
        } else {
            ""
        };
        println!(
            "EVENTS LOST                 {lost}   (subscriptions missing any: {short}{stopped_early})"
        );
        println!("duplicates                  {duplicates}");
        println!("out of order                {out_of_order}");
        println!("wrong chat / unknown seq    {foreign}");
        println!("messages on idle subs       {idle_messages}");
        println!("ResyncRequired received     {resyncs}");
        println!("messages with errors        {errors}");
        if unknown_id > 0 {
            println!("frames for unknown ids      {unknown_id}");
        }
        if !other.is_empty() {
            println!("other frames:");
            for (kind, n) in other.iter().take(10) {
                println!("  {n:>8} × {kind}");
            }
        }
        if !ended.is_empty() {
            println!("sockets/subscriptions ended early {}", ended.len());
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &ended {
                *reasons.entry(e.as_str()).or_default() += 1;
            }
            for (reason, n) in reasons.iter().take(5) {
                println!("  {n:>8} × {reason}");
            }
        }
        println!(
            "latency ms                  {}",
            latency_line(&mut self.latencies(None, None))
        );
        println!(
            "  biggest chat (chat {biggest}, {} subscriptions, {} messages): {}",
            per_chat.get(biggest).copied().unwrap_or(0),
            sent_per_chat.get(biggest).copied().unwrap_or(0),
            latency_line(&mut self.latencies(None, Some(biggest)))
        );
        self.print_per_message();
        if opts.slow_readers > 0 {
            let split = run.ctx.plan.split;
            println!(
                "  without slow readers (messages 0..{split}):        {}",
                latency_line(&mut self.latencies(Some(0), None))
            );
            println!(
                "  with {} slow readers (messages {split}..{}): {}",
                opts.slow_readers,
                opts.messages,
                latency_line(&mut self.latencies(Some(1), None))
            );
            println!(
                "  chat 0 (the slow readers' chat) without:         {}",
                latency_line(&mut self.latencies(Some(0), Some(0)))
            );
            println!(
                "  chat 0 (the slow readers' chat) with:            {}",
                latency_line(&mut self.latencies(Some(1), Some(0)))
            );
        }
        for w in &t.windows {
            let window = w.last_delivery_us.saturating_sub(w.send_started_us) as f64 / 1e6;
            if w.delivered > 0 && window > 0.0 {
                println!(
                    "delivery throughput         {:.0} deliveries/s   ({} over {window:.2} s, first send to last delivery of messages {}..{})",
                    w.delivered as f64 / window,
                    w.delivered,
                    w.seqs.start,
                    w.seqs.end
                );
            } else {
                println!("delivery throughput         -");
            }
        }
        self.print_memory();
        self.print_cpu();
        self.print_slow_readers();
        let passed = self.failure.is_none()
            && lost == 0
            && send_failed == 0
            && resyncs == 0
            && foreign == 0
            && idle_messages == 0
            && errors == 0
            && duplicates == 0
            && ended.is_empty();
        match self.failure {
            Some(reason) => println!("RESULT: FAIL ({reason})"),
            None if passed => println!("RESULT: PASS (0 events lost)"),
            None => println!(
                "RESULT: FAIL (events lost, sends failed, sockets ended, idle subscriptions got messages or wrong deliveries)"
            ),
        }
        passed
    }

    /// When each message reached its first and its last subscriber: a tail made by a
    /// few slow messages shows here, not in the overall percentiles.
    fn print_per_message(&self) {
        let mut spans: BTreeMap<u32, (u32, u32, u32)> = BTreeMap::new();
        for &(seq, latency) in self.subs().flat_map(|s| &s.arrivals) {
            let span = spans.entry(seq).or_insert((u32::MAX, 0, 0));
            span.0 = span.0.min(latency);
            span.1 = span.1.max(latency);
            span.2 += 1;
        }
        if spans.is_empty() {
            return;
        }
        let mut first: Vec<u32> = spans.values().map(|s| s.0).collect();
        println!("first subscriber, per msg   {}", latency_line(&mut first));
        let mut last: Vec<u32> = spans.values().map(|s| s.1).collect();
        println!("last subscriber, per msg    {}", latency_line(&mut last));
        let mut slowest: Vec<(&u32, &(u32, u32, u32))> = spans.iter().collect();
        slowest.sort_by_key(|(_, span)| std::cmp::Reverse(span.1));
        let shown: Vec<String> = slowest
            .iter()
            .take(5)
            .map(|(seq, (first, last, n))| {
                format!(
                    "#{seq} {:.1}..{:.1} ms ({n})",
                    f64::from(*first) / 1e3,
                    f64::from(*last) / 1e3
                )
            })
            .collect();
        println!("  slowest (first..last)     {}", shown.join(", "));
    }

    fn print_memory(&self) {
        let run = self.run;
        let layout = &run.layout;
        let after = self.memory_after.first().copied().flatten();
        match (run.rss_before, run.rss_live) {
            (Some(before), Some(live)) => {
                let delta = live.saturating_sub(before);
                println!(
                    "server RSS                  before sockets {}, all live {} (+{}), after messages {}, peak {}",
                    mib(before),
                    mib(live),
                    mib(delta),
                    after.map_or_else(|| "-".to_owned(), |m| mib(m.rss)),
                    after.map_or_else(|| "-".to_owned(), |m| mib(m.peak)),
                );
                println!(
                    "memory per subscription     {:.0} bytes   (RSS delta / {} subscriptions)",
                    delta as f64 / layout.subscriptions() as f64,
                    layout.subscriptions()
                );
                println!(
                    "memory per socket           {:.0} bytes   (RSS delta / {} sockets, {} subscription(s) each)",
                    delta as f64 / layout.sockets as f64,
                    layout.sockets,
                    layout.per_socket
                );
            }
            (Some(before), None) => {
                println!("server RSS                  before sockets {}", mib(before));
            }
            _ => println!("server RSS                  -"),
        }
        if let (Some(before), Some(live)) = (run.threads_before, run.threads_live) {
            // SQLite calls run on blocking threads: a burst of subscribes can add many,
            // each with its stack in the RSS delta.
            println!("server threads              before sockets {before}, all live {live}");
        }
        for (i, memory) in self.memory_after.iter().enumerate().skip(1) {
            if let Some(m) = memory {
                println!(
                    "instance {} RSS              after messages {}, peak {}   (no sockets; sends)",
                    i + 1,
                    mib(m.rss),
                    mib(m.peak)
                );
            }
        }
        if let (Some(before), Some(live)) = (run.client_rss_before, run.client_rss_live) {
            println!(
                "client RSS                  before sockets {}, all live {} ({:.0} bytes per socket, {} B read buffer)",
                mib(before),
                mib(live),
                live.saturating_sub(before) as f64 / layout.sockets as f64,
                READ_BUFFER_BYTES
            );
        }
    }

    fn print_cpu(&self) {
        let t = &self.run.timings;
        let Some(cpu) = &t.cpu else {
            println!("CPU                         -");
            return;
        };
        let window: Duration = t
            .windows
            .iter()
            .map(|w| w.send.unwrap_or_default() + w.drain.unwrap_or_default())
            .sum();
        let servers: Vec<String> = match cpu.servers.as_slice() {
            [only] => vec![secs(*only)],
            all => all
                .iter()
                .enumerate()
                .map(|(i, used)| format!("instance {} {}", i + 1, secs(*used)))
                .collect(),
        };
        let database = cpu.database.map_or_else(String::new, |d| {
            format!(", database cluster {}", secs(Some(d)))
        });
        println!(
            "CPU, sends and drains ({:.2} s wall): server {}{database}, client {}  (on {} cores)",
            window.as_secs_f64(),
            servers.join(", "),
            secs(cpu.client),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        );
    }

    fn print_slow_readers(&self) {
        let opts = &self.run.opts;
        if opts.slow_readers == 0 {
            return;
        }
        let expected = self.run.slow_expected();
        println!(
            "slow readers                {} on chat 0 (SO_RCVBUF {} bytes, reading nothing from going live until the end); {expected} messages due to each",
            opts.slow_readers, opts.slow_reader_rcvbuf
        );
        // Fate → (readers, fewest and most messages received, ResyncRequired in all).
        let mut fates: BTreeMap<String, (usize, u64, u64, u64)> = BTreeMap::new();
        for reader in self.slow {
            let entry = fates
                .entry(reader.fate(expected))
                .or_insert((0, u64::MAX, 0, 0));
            entry.0 += 1;
            entry.1 = entry.1.min(reader.sub.received);
            entry.2 = entry.2.max(reader.sub.received);
            entry.3 += reader.sub.resyncs;
        }
        for (fate, (n, fewest, most, resyncs)) in &fates {
            println!(
                "  {n:>8} × {fate}   (received {fewest}..{most} of {expected}, ResyncRequired {resyncs})"
            );
        }
        let duplicates: u64 = self.slow.iter().map(|r| r.sub.duplicates).sum();
        let out_of_order: u64 = self.slow.iter().map(|r| r.sub.out_of_order).sum();
        if duplicates + out_of_order > 0 {
            println!("  slow readers' duplicates {duplicates}, out of order {out_of_order}");
        }
    }
}
