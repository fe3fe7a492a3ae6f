//! Subscription fan-out load tool (not a timed test).
//!
//! Starts the release server binary as its own process on a free loopback port over a
//! temporary SQLite database (or `--database-url postgres://…`), creates one sender and S
//! subscriber users through the API (admin key), puts the subscribers in one chat or
//! spread over `--chats K`, opens N graphql-transport-ws sockets each subscribed to
//! `chatEvents(chatId)`, waits until every subscription is live, then sends M messages
//! over HTTP whose content carries a sequence number and the send time. Every subscriber
//! records when each message arrived; the tool reports deliveries expected and received,
//! events lost (must be 0), out-of-order deliveries, latency percentiles, delivery
//! throughput and the server's memory per open subscription.
//!
//! ```text
//! cargo build --release                       # the server binary this tool starts
//! cargo bench --bench fanout -- --subscribers 1000 --messages 100
//! ulimit -n 65536                             # before 10,000 sockets (up to the hard limit)
//! cargo bench --bench fanout -- --subscribers 10000             # one chat
//! cargo bench --bench fanout -- --subscribers 10000 --chats 100 --messages 1000
//! psql "$PG" -c 'CREATE DATABASE bench_x'
//! cargo bench --bench fanout -- --database-url postgres://user@host/bench_x
//! ```
//!
//! Options: `--users S` (sockets dealt round-robin over S users; default one user per
//! socket), `--rate R` messages per second, `--timeout SECS`, `--event-buffer`,
//! `--pool-size`, `--server-bin PATH`, `--server-log FILTER`; see `-- --help`.
//!
//! Client and server share the machine (and its clock), so latency includes the client's
//! own scheduling. Exits non-zero when an event was lost, a send failed, a socket failed,
//! or the run hit `--timeout`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T = ()> = std::result::Result<T, BoxError>;

const ADMIN_KEY: &str = "fanout-bench-admin-key";
const JWT_SECRET: &str = "fanout-bench-jwt-secret-0123456789";
/// Users created (or tokens minted) per GraphQL request, as aliased mutations.
const USER_BATCH: usize = 100;
/// The server refuses more members per `createChat`/`addMembers` call.
const MEMBERS_PER_CALL: usize = 500;
/// File descriptors kept free beyond one per socket (pool, logs, listeners, HTTP client).
const FD_SLACK: u64 = 256;
/// A drain without a single new delivery for this long has stalled.
const STALL: Duration = Duration::from_secs(15);
const SUBSCRIPTION: &str = "subscription($chat: ID!) { chatEvents(chatId: $chat) { __typename ... on MessageAdded { message { content } } } }";

/// Subscription fan-out benchmark for chatql.
#[derive(Parser, Debug, Clone)]
#[command(name = "fanout")]
struct Opts {
    /// Subscriber WebSockets to open, one `chatEvents` subscription each.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Subscriber users; sockets are dealt round-robin over them (default: one per socket).
    #[arg(long)]
    users: Option<usize>,
    /// Chats; subscriber users are spread round-robin over them; message i goes to chat
    /// i mod K.
    #[arg(long, default_value_t = 1)]
    chats: usize,
    /// Messages to send.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Messages per second (default: as fast as sequential sends go).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds the whole run may take once the server is ready; then it reports what it
    /// has and fails. (10,000 subscribers on one chat take about 125 s on 2 cores.)
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Database for the server; default a SQLite file in a temporary directory. A
    /// PostgreSQL database should be fresh (created for this run).
    #[arg(long)]
    database_url: Option<String>,
    /// Server `--event-buffer` (events a subscriber may lag before `ResyncRequired`).
    #[arg(long, default_value_t = 4096)]
    event_buffer: usize,
    /// Server `--pool-size` (default: the server's default).
    #[arg(long)]
    pool_size: Option<usize>,
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
                 `LimitNOFILE=`, or `ulimit -Hn` as root) and then `ulimit -n {needed}`"
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

fn server_binary(opts: &Opts) -> Result<PathBuf> {
    // Cargo builds the package's binaries with the bench (= release) profile for benches.
    let path = opts
        .server_bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_chatql")));
    if !path.is_file() {
        return Err(format!(
            "server binary {} not found: build it first with `cargo build --release` \
             (or pass --server-bin)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// The server process

struct Server {
    child: tokio::process::Child,
    pid: u32,
    addr: String,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(opts: &Opts, bin: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("chatql-fanout").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let database_url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| dir.path().join("fanout.db").display().to_string());
        let caps = (opts.subscribers + 16).to_string();
        let mut args: Vec<String> = [
            "serve",
            "--bind",
            &addr,
            "--data-dir",
            &dir.path().display().to_string(),
            "--database-url",
            &database_url,
            "--admin-key",
            ADMIN_KEY,
            "--jwt-secret",
            JWT_SECRET,
            "--max-sockets-per-user",
            &caps,
            "--max-subscriptions-per-user",
            &caps,
            "--event-buffer",
            &opts.event_buffer.to_string(),
            // One sender sends every message: the per-user mutation limit would cap the run.
            "--mutations-per-minute",
            "0",
            // Every subscriber connects from 127.0.0.1, many at once.
            "--ws-max-pending-per-ip",
            &caps,
            "--ws-max-pending",
            &caps,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some(pool) = opts.pool_size {
            args.extend(["--pool-size".to_owned(), pool.to_string()]);
        }
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = tokio::process::Command::new(bin);
        command
            .args(&args)
            .env("RUST_LOG", &opts.server_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // Flags decide; the caller's environment must not reconfigure the server.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHATQL_") || key == "DATABASE_URL" {
                command.env_remove(key);
            }
        }
        let child = command.spawn()?;
        let pid = child.id().ok_or("the server exited at once")?;
        Ok(Self {
            child,
            pid,
            addr,
            log_path,
            _dir: dir,
        })
    }

    /// Polls `/readyz` until it answers 200, for at most `limit`.
    async fn wait_ready(&mut self, http: &reqwest::Client, limit: Duration) -> Result {
        let until = Instant::now() + limit;
        let url = format!("http://{}/readyz", self.addr);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("the server exited during start-up ({status})").into());
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!("/readyz did not answer 200 within {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    /// Resident and peak resident memory in bytes (`VmRSS`, `VmHWM`).
    fn memory(&self) -> Result<(u64, u64)> {
        memory(&self.pid.to_string())
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Resident and peak resident memory in bytes (`VmRSS`, `VmHWM`) of a process
/// (`self` or a pid).
fn memory(process: &str) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/{process}/status"))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process used so far, from `/proc/<process>/stat`.
fn cpu_time(process: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at `state`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
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
    let mut results = futures_util::stream::iter(batches).buffered(4);
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

// ---------------------------------------------------------------------------------------
// Subscribers

/// State the coordinator watches while subscriber tasks run.
struct Shared {
    /// Per socket: the highest probe number it received (0: none yet).
    probe_seen: Vec<AtomicU32>,
    /// Sockets that sent their `subscribe` message.
    subscribed: AtomicUsize,
    /// Sockets that failed or ended.
    ended: AtomicUsize,
    /// Measured deliveries (first copies of benchmark messages).
    delivered: AtomicU64,
    /// Receive time of the newest delivery, µs since the epoch.
    last_delivery_us: AtomicU64,
}

/// What one subscriber saw.
#[derive(Default)]
struct SubStats {
    chat: usize,
    /// Bit per sequence number.
    seen: Vec<u64>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Benchmark messages of another chat, or unknown sequence numbers.
    foreign: u64,
    /// `ResyncRequired` events: the server says events were missed.
    resyncs: u64,
    /// Other events (not `MessageAdded` with content), by `__typename` or message type.
    other: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    /// Why the socket ended before the run did.
    ended: Option<String>,
}

struct SubscriberSpec {
    index: usize,
    url: String,
    token: String,
    chat_id: String,
    chat: usize,
    chats: usize,
    messages: usize,
}

async fn subscriber(
    spec: SubscriberSpec,
    shared: Arc<Shared>,
    connecting: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> SubStats {
    let mut stats = SubStats {
        chat: spec.chat,
        seen: vec![0; spec.messages.div_ceil(64)],
        latencies_us: Vec::with_capacity(spec.messages.div_ceil(spec.chats)),
        ..SubStats::default()
    };
    let opened = async {
        let _permit = connecting.acquire().await?;
        open_subscription(&spec).await
    };
    let socket = tokio::select! {
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
    let mut socket = socket;
    let mut last_seq: Option<usize> = None;
    loop {
        tokio::select! {
            biased;
            frame = socket.next() => {
                let received_at = now_us();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        let text = text.as_str();
                        if let Some(content) = content_of(text) {
                            record(&spec, &shared, &mut stats, &mut last_seq, content, received_at);
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
                            Frame::Event(typename) => {
                                if typename == "ResyncRequired" {
                                    stats.resyncs += 1;
                                }
                                *stats.other.entry(typename).or_default() += 1;
                            }
                            Frame::End(what) => {
                                stats.ended = Some(format!("subscription ended: {what}"));
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        stats.ended = Some(format!("closed by the server: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        stats.ended = Some(format!("socket error: {e}"));
                        break;
                    }
                    None => {
                        stats.ended = Some("socket ended".into());
                        break;
                    }
                }
            }
            _ = stop.changed() => return stats,
        }
    }
    shared.ended.fetch_add(1, Ordering::SeqCst);
    stats
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, authenticates and subscribes; bounded.
async fn open_subscription(spec: &SubscriberSpec) -> Result<Socket> {
    let attempt = async {
        let mut request = spec.url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
        // Small buffers keep 10,000 client sockets lean (tungstenite's default read buffer
        // is 128 KiB per socket); frames here are a few hundred bytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
        let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", spec.token)}});
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
        let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION, "variables": {"chat": spec.chat_id}}});
        socket
            .send(Message::Text(subscribe.to_string().into()))
            .await?;
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

enum Frame {
    Ping,
    Pong,
    /// A `next` without message content: its `__typename`.
    Event(String),
    /// `error`, `complete` or anything unexpected: the subscription is over.
    End(String),
}

fn classify(text: &str) -> Frame {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Frame::End(format!("unparsable frame {text}"));
    };
    match value["type"].as_str() {
        Some("ping") => Frame::Ping,
        Some("pong") => Frame::Pong,
        Some("next") if value["payload"].get("errors").is_none() => {
            let event = &value["payload"]["data"]["chatEvents"];
            let typename = event["__typename"].as_str().unwrap_or("?");
            if typename == "MessageAdded" {
                // A MessageAdded whose message could not be loaded.
                Frame::Event(format!("MessageAdded without content: {event}"))
            } else {
                Frame::Event(typename.to_owned())
            }
        }
        _ => Frame::End(text.to_owned()),
    }
}

/// Records one message content received at `received_at`.
fn record(
    spec: &SubscriberSpec,
    shared: &Shared,
    stats: &mut SubStats,
    last_seq: &mut Option<usize>,
    content: &str,
    received_at: u64,
) {
    if let Some(probe) = content.strip_prefix("probe ") {
        // "probe <round> <chat>"
        if let Some(round) = probe.split(' ').next().and_then(|r| r.parse::<u32>().ok()) {
            shared.probe_seen[spec.index].fetch_max(round, Ordering::SeqCst);
        }
        return;
    }
    let parsed = content.strip_prefix("m ").and_then(|rest| {
        let (seq, sent) = rest.split_once(' ')?;
        Some((seq.parse::<usize>().ok()?, sent.parse::<u64>().ok()?))
    });
    let Some((seq, sent_at)) = parsed else {
        *stats
            .other
            .entry(format!("content {content:?}"))
            .or_default() += 1;
        return;
    };
    if seq >= spec.messages || seq % spec.chats != spec.chat {
        stats.foreign += 1;
        return;
    }
    let (word, bit) = (seq / 64, 1u64 << (seq % 64));
    if stats.seen[word] & bit != 0 {
        stats.duplicates += 1;
        return;
    }
    stats.seen[word] |= bit;
    stats.received += 1;
    if last_seq.is_some_and(|last| seq < last) {
        stats.out_of_order += 1;
    }
    *last_seq = Some(last_seq.map_or(seq, |last| last.max(seq)));
    let latency = received_at.saturating_sub(sent_at);
    stats
        .latencies_us
        .push(u32::try_from(latency).unwrap_or(u32::MAX));
    shared.delivered.fetch_add(1, Ordering::Relaxed);
    shared
        .last_delivery_us
        .fetch_max(received_at, Ordering::Relaxed);
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
    Done,
}

#[derive(Default)]
struct Timings {
    setup: Option<Duration>,
    connect: Option<Duration>,
    live: Option<Duration>,
    probes: u32,
    send_started_us: u64,
    send: Option<Duration>,
    drain: Option<Duration>,
    /// `sendMessage` round trips, µs.
    send_latencies_us: Vec<u32>,
    /// CPU time used from the first send to the end of the drain: (server, client).
    cpu_server: Option<Duration>,
    cpu_client: Option<Duration>,
}

struct Run {
    opts: Opts,
    gql: Gql,
    ws_url: String,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<SubStats>>,
    chat_ids: Vec<String>,
    sender: Option<User>,
    /// Per message: whether `sendMessage` succeeded.
    sent_ok: Vec<bool>,
    send_errors: Vec<String>,
    phase: Phase,
    timings: Timings,
    rss_before: Option<u64>,
    rss_live: Option<u64>,
    client_rss_before: Option<u64>,
    client_rss_live: Option<u64>,
}

impl Run {
    async fn drive(&mut self, server: &mut Server) -> Result {
        let opts = self.opts.clone();
        let users = opts.users.unwrap_or(opts.subscribers);

        // Users and chats.
        let started = Instant::now();
        let tag = format!("fo{}_{}", now_us() % 1_000_000_000, std::process::id());
        let mut names = vec![format!("{tag}_sender")];
        names.extend((0..users).map(|i| format!("{tag}_u{i}")));
        let mut created = create_users(&self.gql, &names).await?;
        let subscribers = created.split_off(1);
        let sender = created.pop().ok_or("no sender was created")?;
        for chat in 0..opts.chats {
            let members: Vec<String> = subscribers
                .iter()
                .skip(chat)
                .step_by(opts.chats)
                .map(|u| u.id.clone())
                .collect();
            let id =
                create_chat(&self.gql, &sender, &format!("{tag} chat {chat}"), &members).await?;
            self.chat_ids.push(id);
        }
        self.sender = Some(sender.clone());
        self.timings.setup = Some(started.elapsed());

        // Sockets.
        self.phase = Phase::Connecting;
        self.rss_before = Some(server.memory()?.0);
        self.client_rss_before = Some(memory("self")?.0);
        let started = Instant::now();
        let connecting = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
        for index in 0..opts.subscribers {
            let user = index % users;
            let chat = user % opts.chats;
            let spec = SubscriberSpec {
                index,
                url: self.ws_url.clone(),
                token: subscribers[user].token.clone(),
                chat_id: self.chat_ids[chat].clone(),
                chat,
                chats: opts.chats,
                messages: opts.messages,
            };
            self.tasks.push(tokio::spawn(subscriber(
                spec,
                self.shared.clone(),
                connecting.clone(),
                self.stop.subscribe(),
            )));
        }
        loop {
            let subscribed = self.shared.subscribed.load(Ordering::SeqCst);
            let ended = self.shared.ended.load(Ordering::SeqCst);
            if ended > 0 {
                return Err(format!("{ended} socket(s) failed or ended while connecting").into());
            }
            if subscribed == opts.subscribers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.timings.connect = Some(started.elapsed());

        // Probe until every subscription delivers: the protocol has no "ready" signal.
        // Each subscriber gets a chat's events in order, so once all saw probe k, no
        // earlier probe is still on its way.
        self.phase = Phase::Probing;
        let started = Instant::now();
        let mut round = 0u32;
        loop {
            round += 1;
            for (chat, chat_id) in self.chat_ids.iter().enumerate() {
                send_message(
                    &self.gql,
                    &sender,
                    chat_id,
                    &format!("probe {round} {chat}"),
                )
                .await?;
            }
            // Wait while the round makes progress; resend when it stalls.
            let mut best = 0;
            let mut last_progress = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let live = self.live_count(round);
                if live == opts.subscribers {
                    break;
                }
                if live > best {
                    best = live;
                    last_progress = Instant::now();
                } else if last_progress.elapsed() > Duration::from_millis(1000) {
                    break;
                }
                let ended = self.shared.ended.load(Ordering::SeqCst);
                if ended > 0 {
                    return Err(format!("{ended} socket(s) ended before going live").into());
                }
            }
            if self.live_count(round) == opts.subscribers {
                break;
            }
        }
        self.timings.probes = round;
        self.timings.live = Some(started.elapsed());
        self.rss_live = Some(server.memory()?.0);
        self.client_rss_live = Some(memory("self")?.0);

        // Messages.
        self.phase = Phase::Sending;
        let server_pid = server.pid.to_string();
        let cpu_before = (cpu_time(&server_pid), cpu_time("self"));
        self.timings.send_started_us = now_us();
        let started = Instant::now();
        let tokio_start = tokio::time::Instant::now();
        for seq in 0..opts.messages {
            if let Some(rate) = opts.rate.filter(|r| *r > 0.0) {
                let at = tokio_start + Duration::from_secs_f64(seq as f64 / rate);
                tokio::time::sleep_until(at).await;
            }
            let chat = seq % opts.chats;
            let sent_at = now_us();
            let content = format!("m {seq} {sent_at}");
            let result = send_message(&self.gql, &sender, &self.chat_ids[chat], &content).await;
            let round_trip = now_us().saturating_sub(sent_at);
            self.timings
                .send_latencies_us
                .push(u32::try_from(round_trip).unwrap_or(u32::MAX));
            match result {
                Ok(()) => self.sent_ok.push(true),
                Err(e) => {
                    self.sent_ok.push(false);
                    if self.send_errors.len() < 5 {
                        self.send_errors.push(format!("message {seq}: {e}"));
                    }
                }
            }
        }
        self.timings.send = Some(started.elapsed());

        // Deliveries.
        self.phase = Phase::Draining;
        let expected = self.expected_total();
        let started = Instant::now();
        let mut delivered = self.shared.delivered.load(Ordering::Relaxed);
        let mut last_progress = Instant::now();
        while delivered < expected {
            if let Some(status) = server.exited() {
                return Err(format!("the server exited ({status})").into());
            }
            if last_progress.elapsed() > STALL {
                return Err(format!(
                    "deliveries stalled at {delivered} of {expected} for {} s",
                    STALL.as_secs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.shared.delivered.load(Ordering::Relaxed);
            if now > delivered {
                delivered = now;
                last_progress = Instant::now();
            }
        }
        self.timings.drain = Some(started.elapsed());
        let cpu_after = (cpu_time(&server_pid), cpu_time("self"));
        self.timings.cpu_server = cpu_after.0.zip(cpu_before.0).map(|(a, b)| a - b);
        self.timings.cpu_client = cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b);
        self.phase = Phase::Done;
        Ok(())
    }

    fn live_count(&self, round: u32) -> usize {
        self.shared
            .probe_seen
            .iter()
            .filter(|seen| seen.load(Ordering::SeqCst) >= round)
            .count()
    }

    /// Sockets per chat.
    fn sockets_per_chat(&self) -> Vec<u64> {
        let users = self.opts.users.unwrap_or(self.opts.subscribers);
        let mut per_chat = vec![0u64; self.opts.chats];
        for index in 0..self.opts.subscribers {
            per_chat[(index % users) % self.opts.chats] += 1;
        }
        per_chat
    }

    fn expected_total(&self) -> u64 {
        let per_chat = self.sockets_per_chat();
        self.sent_ok
            .iter()
            .enumerate()
            .filter(|(_, ok)| **ok)
            .map(|(seq, _)| per_chat[seq % self.opts.chats])
            .sum()
    }

    /// Stops every subscriber and gathers what they saw.
    async fn collect(&mut self) -> Vec<SubStats> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut all = Vec::with_capacity(self.tasks.len());
        for mut task in self.tasks.drain(..) {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(stats)) => all.push(stats),
                Ok(Err(e)) => all.push(SubStats {
                    ended: Some(format!("task failed: {e}")),
                    ..SubStats::default()
                }),
                Err(_) => {
                    task.abort();
                    all.push(SubStats {
                        ended: Some("did not stop in time".into()),
                        ..SubStats::default()
                    });
                }
            }
        }
        all
    }
}

async fn run(opts: Opts) -> Result<bool> {
    if opts.subscribers == 0 || opts.chats == 0 || opts.messages == 0 {
        return Err("--subscribers, --chats and --messages must be at least 1".into());
    }
    let users = opts.users.unwrap_or(opts.subscribers);
    if users == 0 || users > opts.subscribers || users < opts.chats {
        return Err("--users must be between --chats and --subscribers".into());
    }
    check_fd_limit(opts.subscribers)?;
    let bin = server_binary(&opts)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;

    let mut server = Server::start(&opts, &bin).await?;
    if let Err(e) = server.wait_ready(&http, Duration::from_secs(30)).await {
        let tail = server.log_tail(30);
        server.stop().await;
        return Err(format!("{e}\n--- server log (tail) ---\n{tail}").into());
    }
    let (stop, _) = watch::channel(false);
    let mut run = Run {
        gql: Gql {
            http,
            url: server.graphql_url(),
        },
        ws_url: server.ws_url(),
        shared: Arc::new(Shared {
            probe_seen: (0..opts.subscribers).map(|_| AtomicU32::new(0)).collect(),
            subscribed: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
        }),
        stop,
        tasks: Vec::new(),
        chat_ids: Vec::new(),
        sender: None,
        sent_ok: Vec::new(),
        send_errors: Vec::new(),
        phase: Phase::Setup,
        timings: Timings::default(),
        rss_before: None,
        rss_live: None,
        client_rss_before: None,
        client_rss_live: None,
        opts: opts.clone(),
    };
    let limit = Duration::from_secs(opts.timeout);
    let outcome = match tokio::time::timeout(limit, run.drive(&mut server)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e} (during {:?})", run.phase)),
        Err(_) => Err(format!(
            "timed out after {} s during {:?}",
            opts.timeout, run.phase
        )),
    };
    let memory_after = server.memory().ok();
    let server_exit = server.exited();
    let stats = run.collect().await;
    let log_tail = server.log_tail(20);
    server.stop().await;

    let passed = report(&run, &stats, memory_after, outcome.as_ref().err());
    if outcome.is_err() || !passed {
        if let Some(status) = server_exit {
            println!("server exited: {status}");
        }
        if !log_tail.is_empty() {
            println!("--- server log (tail) ---\n{log_tail}");
        }
    }
    Ok(outcome.is_ok() && passed)
}

// ---------------------------------------------------------------------------------------
// Report

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Prints the figures; true when nothing was lost and nothing failed.
fn report(
    run: &Run,
    stats: &[SubStats],
    memory_after: Option<(u64, u64)>,
    failure: Option<&String>,
) -> bool {
    let opts = &run.opts;
    let sent = run.sent_ok.iter().filter(|ok| **ok).count();
    let send_failed = run.sent_ok.len() - sent;
    let expected = run.expected_total();
    let received: u64 = stats.iter().map(|s| s.received).sum();
    let lost = expected.saturating_sub(received);
    let sum = |f: fn(&SubStats) -> u64| stats.iter().map(f).sum::<u64>();
    let duplicates = sum(|s| s.duplicates);
    let out_of_order = sum(|s| s.out_of_order);
    let foreign = sum(|s| s.foreign);
    let resyncs = sum(|s| s.resyncs);
    let mut other: BTreeMap<&str, u64> = BTreeMap::new();
    for s in stats {
        for (kind, n) in &s.other {
            *other.entry(kind.as_str()).or_default() += n;
        }
    }
    let ended: Vec<&String> = stats.iter().filter_map(|s| s.ended.as_ref()).collect();
    let short_subscribers = stats
        .iter()
        .filter(|s| {
            let chat_sent = run
                .sent_ok
                .iter()
                .enumerate()
                .filter(|(seq, ok)| **ok && seq % opts.chats == s.chat)
                .count() as u64;
            s.received < chat_sent
        })
        .count();
    let mut latencies: Vec<u32> = stats
        .iter()
        .flat_map(|s| s.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();

    let users = opts.users.unwrap_or(opts.subscribers);
    let per_chat = run.sockets_per_chat();
    let database = match &opts.database_url {
        Some(url) => redact(url),
        None => "SQLite (temporary file)".to_owned(),
    };
    println!();
    println!("chatql subscription fan-out");
    println!(
        "config: database={database} subscribers={} users={users} chats={} messages={} rate={} \
         event-buffer={} pool-size={} connect-concurrency={} timeout={} s",
        opts.subscribers,
        opts.chats,
        opts.messages,
        opts.rate
            .map_or_else(|| "max (sequential)".to_owned(), |r| format!("{r}/s")),
        opts.event_buffer,
        opts.pool_size
            .map_or_else(|| "server default".to_owned(), |p| p.to_string()),
        opts.connect_concurrency,
        opts.timeout,
    );
    println!(
        "  subscription: {SUBSCRIPTION}\n  sockets per chat: min {} max {}",
        per_chat.iter().min().copied().unwrap_or(0),
        per_chat.iter().max().copied().unwrap_or(0)
    );
    let t = &run.timings;
    println!(
        "phases: setup (users, tokens, chats) {}, connect+subscribe {}, all live {} ({} probe round(s)), send {}, drain after last send {}",
        secs(t.setup),
        secs(t.connect),
        secs(t.live),
        t.probes,
        secs(t.send),
        secs(t.drain)
    );
    println!("subscribers (sockets)       {}", opts.subscribers);
    println!("chats                       {}", opts.chats);
    let send_rate = t.send.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", sent as f64 / d.as_secs_f64().max(1e-9)),
    );
    println!(
        "messages sent               {sent} of {} ({send_failed} failed), {send_rate} msg/s",
        opts.messages
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
    let stopped_early = if failure.is_some() {
        "; the run stopped early, so some may still have been on their way"
    } else {
        ""
    };
    println!(
        "EVENTS LOST                 {lost}   (subscribers missing any: {short_subscribers}{stopped_early})"
    );
    println!("duplicates                  {duplicates}");
    println!("out of order                {out_of_order}");
    println!("wrong chat / unknown seq    {foreign}");
    println!("ResyncRequired received     {resyncs}");
    if !other.is_empty() {
        println!("other frames:");
        for (kind, n) in other.iter().take(10) {
            println!("  {n:>8} × {kind}");
        }
    }
    if !ended.is_empty() {
        println!("sockets ended early         {}", ended.len());
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &ended {
            *reasons.entry(e.as_str()).or_default() += 1;
        }
        for (reason, n) in reasons.iter().take(5) {
            println!("  {n:>8} × {reason}");
        }
    }
    println!(
        "latency ms                  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}   (n={})",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        latencies
            .last()
            .map_or(f64::NAN, |m| f64::from(*m) / 1000.0),
        latencies.len()
    );
    let last = run.shared.last_delivery_us.load(Ordering::Relaxed);
    if received > 0 && last > t.send_started_us {
        let window = (last - t.send_started_us) as f64 / 1e6;
        println!(
            "delivery throughput         {:.0} deliveries/s   ({received} over {window:.2} s, first send to last delivery)",
            received as f64 / window
        );
    } else {
        println!("delivery throughput         -");
    }
    match (run.rss_before, run.rss_live) {
        (Some(before), Some(live)) => {
            let delta = live.saturating_sub(before);
            println!(
                "server RSS                  before sockets {}, all live {} (+{}), after messages {}, peak {}",
                mib(before),
                mib(live),
                mib(delta),
                memory_after.map_or_else(|| "-".to_owned(), |(rss, _)| mib(rss)),
                memory_after.map_or_else(|| "-".to_owned(), |(_, hwm)| mib(hwm)),
            );
            println!(
                "memory per subscription     {:.0} bytes   (RSS delta / {} sockets, each 1 socket + 1 subscription)",
                delta as f64 / opts.subscribers as f64,
                opts.subscribers
            );
        }
        (Some(before), None) => {
            println!("server RSS                  before sockets {}", mib(before))
        }
        _ => println!("server RSS                  -"),
    }
    if let (Some(before), Some(live)) = (run.client_rss_before, run.client_rss_live) {
        println!(
            "client RSS                  before sockets {}, all live {} ({:.0} bytes per socket, 4 KiB read buffer)",
            mib(before),
            mib(live),
            live.saturating_sub(before) as f64 / opts.subscribers as f64
        );
    }
    if let (Some(server), Some(client)) = (t.cpu_server, t.cpu_client) {
        let window = t.send.unwrap_or_default() + t.drain.unwrap_or_default();
        println!(
            "CPU, first send to last delivery ({:.2} s wall): server {:.2} s, client {:.2} s  (on {} cores)",
            window.as_secs_f64(),
            server.as_secs_f64(),
            client.as_secs_f64(),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        );
    }
    let passed = failure.is_none()
        && lost == 0
        && send_failed == 0
        && resyncs == 0
        && foreign == 0
        && duplicates == 0
        && ended.is_empty();
    match failure {
        Some(reason) => println!("RESULT: FAIL ({reason})"),
        None if passed => println!("RESULT: PASS (0 events lost)"),
        None => {
            println!("RESULT: FAIL (events lost, sends failed, sockets ended or wrong deliveries)")
        }
    }
    passed
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
