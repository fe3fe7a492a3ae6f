//! The test harness: a real chatql server on an ephemeral port over a fresh database of the
//! backend under test (`CHATQL_TEST_BACKEND=sqlite|postgres`), and a GraphQL client.

#![allow(dead_code)]

pub mod process;
pub mod tokens;
pub mod ws;

pub use process::ServerProcess;
pub use tokens::{craft_token, craft_token_with, unsigned_token};

use std::sync::atomic::{AtomicUsize, Ordering};

use chatql::app::App;
use chatql::config::Config;
use serde_json::{Value, json};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const ADMIN_KEY: &str = "test-admin-key";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789";

/// Which database the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// Fails unless the suite runs against PostgreSQL: for the tests marked `#[ignore]` as
/// PostgreSQL-only, which `scripts/test` runs in its PostgreSQL pass only.
pub fn require_postgres() -> TestResult {
    match backend() {
        TestBackend::Postgres => Ok(()),
        TestBackend::Sqlite => {
            Err("this test needs PostgreSQL: run it with CHATQL_TEST_BACKEND=postgres".into())
        }
    }
}

pub fn backend() -> TestBackend {
    match std::env::var("CHATQL_TEST_BACKEND").as_deref() {
        Ok("postgres") => TestBackend::Postgres,
        _ => TestBackend::Sqlite,
    }
}

/// A database for one test: a SQLite file in a temp dir, or a new PostgreSQL database.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub async fn new() -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        let url = match backend() {
            TestBackend::Sqlite => dir.path().join("test.db").display().to_string(),
            TestBackend::Postgres => create_pg_database().await?,
        };
        Ok(Self { url, dir })
    }
}

async fn create_pg_database() -> TestResult<String> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let base = std::env::var("CHATQL_TEST_PG_URL")
        .map_err(|_| "CHATQL_TEST_BACKEND=postgres needs CHATQL_TEST_PG_URL")?;
    let name = format!(
        "chatql_t{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    );
    let mut conn = AsyncPgConnection::establish(&base).await?;
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (prefix, _) = base
        .rsplit_once('/')
        .ok_or("CHATQL_TEST_PG_URL must end in /<database>")?;
    Ok(format!("{prefix}/{name}"))
}

/// A running server with its own database.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub app: App,
    pub db: TestDb,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.app.shutdown().cancel();
    }
}

/// A user with a token.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

impl TestServer {
    pub async fn start() -> TestResult<Self> {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra `--flag value` arguments.
    pub async fn start_with(extra: &[&str]) -> TestResult<Self> {
        let db = TestDb::new().await?;
        Self::start_on(db, extra).await
    }

    /// Starts a server over an existing database (e.g. a second instance).
    pub async fn start_on(db: TestDb, extra: &[&str]) -> TestResult<Self> {
        let data_dir = db.dir.path().display().to_string();
        let mut args = vec![
            "chatql",
            "--database-url",
            &db.url,
            "--data-dir",
            &data_dir,
            "--jwt-secret",
            JWT_SECRET,
            "--admin-key",
            ADMIN_KEY,
            "--pool-size",
            "8",
            "--bind",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let config = Config::from_args(args)?;
        let app = chatql::server::build_app(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(chatql::server::serve(app.clone(), listener));
        Ok(Self { addr, app, db })
    }

    /// A second server instance on the same database.
    pub async fn sibling(&self, extra: &[&str]) -> TestResult<Self> {
        let db = TestDb {
            url: self.db.url.clone(),
            dir: tempfile::tempdir()?,
        };
        Self::start_on(db, extra).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    pub fn anonymous(&self) -> Client {
        Client::new(self.url(), None, None)
    }

    pub fn admin(&self) -> Client {
        Client::new(self.url(), None, Some(ADMIN_KEY.to_owned()))
    }

    pub fn client(&self, user: &TestUser) -> Client {
        Client::new(self.url(), Some(user.token.clone()), None)
    }

    /// Creates a user through the API (admin key) and mints their token.
    pub async fn user(&self, username: &str) -> TestResult<TestUser> {
        self.user_with(username, false).await
    }

    pub async fn bot(&self, username: &str) -> TestResult<TestUser> {
        self.user_with(username, true).await
    }

    async fn user_with(&self, username: &str, is_bot: bool) -> TestResult<TestUser> {
        let admin = self.admin();
        let data = admin
            .ok(
                "mutation($u: String!, $b: Boolean) { createUser(input: {username: $u, isBot: $b}) { id } }",
                json!({"u": username, "b": is_bot}),
            )
            .await?;
        let id = str_at(&data, "/createUser/id")?;
        let data = admin
            .ok(
                "mutation($id: ID!) { issueToken(userId: $id) }",
                json!({ "id": id }),
            )
            .await?;
        Ok(TestUser {
            id,
            username: username.to_owned(),
            token: str_at(&data, "/issueToken")?,
        })
    }
}

/// A GraphQL-over-HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    admin_key: Option<String>,
}

/// A GraphQL response.
#[derive(Debug)]
pub struct Gql {
    pub status: u16,
    pub body: Value,
}

impl Gql {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn errors(&self) -> Vec<Value> {
        self.body["errors"].as_array().cloned().unwrap_or_default()
    }

    /// The codes of all errors, in order.
    pub fn codes(&self) -> Vec<String> {
        self.errors()
            .iter()
            .map(|e| {
                e["extensions"]["code"]
                    .as_str()
                    .unwrap_or("<none>")
                    .to_owned()
            })
            .collect()
    }
}

impl Client {
    pub fn new(url: String, token: Option<String>, admin_key: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url,
            token,
            admin_key,
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self::new(self.url.clone(), Some(token.to_owned()), None)
    }

    /// Sends a request and returns status and body, whatever they are.
    pub async fn send(&self, query: &str, variables: Value) -> TestResult<Gql> {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = &self.admin_key {
            request = request.header("x-admin-key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        Ok(Gql { status, body })
    }

    /// Runs an operation that must succeed; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> TestResult<Value> {
        let response = self.send(query, variables).await?;
        if !response.errors().is_empty() || response.status != 200 {
            return Err(format!(
                "expected success, got {}: {}",
                response.status, response.body
            )
            .into());
        }
        Ok(response.body["data"].clone())
    }

    /// Runs an operation that must fail; returns the first error's code.
    pub async fn code(&self, query: &str, variables: Value) -> TestResult<String> {
        let response = self.send(query, variables).await?;
        let codes = response.codes();
        match codes.first() {
            Some(code) => Ok(code.clone()),
            None => Err(format!("expected an error, got {}", response.body).into()),
        }
    }
}

/// `owner` removes `member` from `chat` (a call that must succeed).
pub async fn remove_member(
    server: &TestServer,
    owner: &TestUser,
    chat: &str,
    member: &TestUser,
) -> TestResult {
    server
        .client(owner)
        .ok(
            "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }",
            json!({"c": chat, "u": member.id}),
        )
        .await?;
    Ok(())
}

/// The string at a JSON pointer.
pub fn str_at(value: &Value, pointer: &str) -> TestResult<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no string at {pointer} in {value}").into())
}

/// The `field` strings of the objects in the array at a JSON pointer (empty when there is
/// no array), e.g. the usernames of a list of users.
pub fn strings_at(value: &Value, pointer: &str, field: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The integer at a JSON pointer.
pub fn int_at(value: &Value, pointer: &str) -> TestResult<i64> {
    value
        .pointer(pointer)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("no integer at {pointer} in {value}").into())
}

/// Creates a group chat owned by `owner` with `members`; returns its id.
pub async fn group(
    server: &TestServer,
    owner: &TestUser,
    members: &[&TestUser],
) -> TestResult<String> {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let data = server
        .client(owner)
        .ok(
            "mutation($m: [ID!]) { createChat(input: {kind: GROUP, name: \"team\", memberIds: $m}) { id } }",
            json!({ "m": ids }),
        )
        .await?;
    str_at(&data, "/createChat/id")
}

/// Sends a text message; returns its id.
pub async fn send(
    server: &TestServer,
    user: &TestUser,
    chat: &str,
    content: &str,
) -> TestResult<String> {
    let data = server
        .client(user)
        .ok(
            "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }",
            json!({ "c": chat, "t": content }),
        )
        .await?;
    str_at(&data, "/sendMessage/id")
}

/// Asserts that a lookup (`chat`, `message`, `node`) answers null and no error: what a
/// caller gets for an id that names nothing or something they may not see, alike.
pub async fn assert_absent(client: &Client, query: &str, variables: Value) -> TestResult {
    let answer = client.send(query, variables).await?;
    assert!(answer.errors().is_empty(), "{}", answer.body);
    let data = answer.data().as_object().ok_or("no data")?;
    assert!(
        !data.is_empty() && data.values().all(Value::is_null),
        "{}",
        answer.body
    );
    Ok(())
}

/// Moves a message's creation time into the past, as if it had been sent `secs` ago.
pub async fn backdate(server: &TestServer, message: &str, secs: i64) -> TestResult {
    use chatql::db::schema::messages;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let id = chatql::vocabulary::ids::MessageId::from_global(message).map_err(|e| e.to_string())?;
    let at = chatql::domain::now() - chrono::Duration::seconds(secs);
    let mut conn = server.app.db().conn().await?;
    chatql::with_conn!(&mut conn, |c| diesel::update(messages::table.find(id.0))
        .set(messages::created_at.eq(at))
        .execute(c)
        .await)?;
    Ok(())
}

/// The samples of an exposition text, by series (name and labels as written).
pub fn samples(text: &str) -> TestResult<std::collections::HashMap<String, f64>> {
    let mut found = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("not a sample: {line}"))?;
        found.insert(series.to_owned(), value.parse::<f64>()?);
    }
    Ok(found)
}

/// The `/metrics` samples at `url`, checked to be OpenMetrics text.
pub async fn scrape(url: &str) -> TestResult<std::collections::HashMap<String, f64>> {
    let response = reqwest::get(url).await?;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str()?.to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await?;
    assert!(text.ends_with("# EOF\n"), "{text}");
    samples(&text)
}

/// Runs a Node script of `tests/js` (whose dependency `package` must be installed there)
/// with these arguments; its standard output, once it exited 0. Any other exit is an error
/// showing what it printed.
pub async fn node_script(package: &str, script: &str, args: &[String]) -> TestResult<String> {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !js.join("node_modules").join(package).exists() {
        return Err("tests/js/node_modules is missing: run `npm ci --prefix tests/js` (./scripts/test does)".into());
    }
    let run = tokio::process::Command::new("node")
        .arg(js.join(script))
        .args(args)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    if !run.status.success() {
        return Err(format!(
            "{script} failed ({}):\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        )
        .into());
    }
    Ok(stdout)
}
