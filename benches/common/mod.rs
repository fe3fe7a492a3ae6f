//! What the load tools (`fanout`, `requests`) share: the server binary and its process,
//! a fresh database (a SQLite file, or a database on a given or throwaway PostgreSQL
//! server), readers of `/proc` for memory and CPU time, and percentiles.
//!
//! Included by each bench with `mod common;`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T = ()> = std::result::Result<T, BoxError>;

/// The server binary: `path`, or the release `chatql` cargo builds alongside the bench.
pub fn server_binary(path: Option<&PathBuf>) -> Result<PathBuf> {
    // Cargo builds the package's binaries with the bench (= release) profile for benches.
    let path = path
        .cloned()
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

/// The `p` quantile (0..=1) of `sorted` microseconds, in milliseconds (NaN when empty).
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

// ---------------------------------------------------------------------------------------
// The database: where it lives, creating and dropping it

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A PostgreSQL database this tool created (and drops at the end).
pub struct PgDatabase {
    /// The URL given (or the throwaway's): where the database is created and dropped from.
    pub admin_url: String,
    pub name: String,
    /// The throwaway cluster's directory, when this tool started one.
    pub cluster: Option<PathBuf>,
    /// The tool's name, for its warnings.
    tool: &'static str,
}

pub struct Database {
    pub backend: Backend,
    /// What the server gets as `--database-url`.
    pub url: String,
    /// Set when this tool created the database.
    pub pg: Option<PgDatabase>,
}

pub fn pg_throwaway() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-throwaway")
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String> {
    let host_start = url.find("://").ok_or("the database URL has no scheme")? + 3;
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let host_end = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| host_start + i);
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

/// A database URL without its password.
pub fn redact(url: &str) -> String {
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

impl Database {
    /// The SQLite file `sqlite_file` (when neither `server_url` nor `postgres` is given),
    /// or a fresh database `bench_<tool>_<pid>` on the PostgreSQL server `server_url`, or
    /// on a throwaway cluster started now when `postgres`.
    pub async fn create(
        tool: &'static str,
        server_url: Option<&str>,
        postgres: bool,
        sqlite_file: &Path,
    ) -> Result<Self> {
        let (admin_url, cluster) = match (server_url, postgres) {
            (Some(url), _) => (url.to_owned(), None),
            (None, true) => {
                let dir =
                    std::env::temp_dir().join(format!("chatql-{tool}-pg-{}", std::process::id()));
                (start_cluster(&dir).await?, Some(dir))
            }
            (None, false) => {
                return Ok(Database {
                    backend: Backend::Sqlite,
                    url: sqlite_file.display().to_string(),
                    pg: None,
                });
            }
        };
        let pg = PgDatabase {
            admin_url,
            name: format!("bench_{tool}_{}", std::process::id()),
            cluster,
            tool,
        };
        let created = async {
            let mut conn = AsyncPgConnection::establish(&pg.admin_url).await?;
            conn.batch_execute(&format!("CREATE DATABASE {}", pg.name))
                .await?;
            with_database(&pg.admin_url, &pg.name)
        }
        .await;
        match created {
            Ok(url) => Ok(Database {
                backend: Backend::Postgres,
                url,
                pg: Some(pg),
            }),
            Err(e) => {
                if let Some(dir) = &pg.cluster {
                    stop_cluster(tool, dir).await;
                }
                Err(format!("creating database {}: {e}", pg.name).into())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("SQLite, temporary file {}", self.url),
            Backend::Postgres => redact(&self.url),
        }
    }

    /// Drops the database this tool created and stops the throwaway cluster, unless `keep`.
    pub async fn finish(&self, keep: bool) -> Result {
        let Some(pg) = &self.pg else {
            if keep {
                println!("kept the SQLite database: {}", self.url);
            }
            return Ok(());
        };
        if keep {
            println!("kept the database: {}", redact(&self.url));
            if let Some(dir) = &pg.cluster {
                println!(
                    "the throwaway cluster is still running; stop it with `{} stop {}`",
                    pg_throwaway().display(),
                    dir.display()
                );
            }
            return Ok(());
        }
        let dropped = async {
            let mut conn = AsyncPgConnection::establish(&pg.admin_url).await?;
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name))
                .await?;
            Ok::<_, BoxError>(())
        }
        .await;
        if let Some(dir) = &pg.cluster {
            stop_cluster(pg.tool, dir).await;
        }
        dropped.map_err(|e| format!("dropping database {}: {e}", pg.name).into())
    }
}

/// Starts a throwaway cluster in `dir`; returns its URL.
async fn start_cluster(dir: &Path) -> Result<String> {
    let output = tokio::process::Command::new(pg_throwaway())
        .arg("start")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!(
            "scripts/pg-throwaway start failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

async fn stop_cluster(tool: &str, dir: &Path) {
    let stopped = tokio::process::Command::new(pg_throwaway())
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .status()
        .await;
    if !matches!(stopped, Ok(status) if status.success()) {
        eprintln!(
            "{tool}: warning: could not stop the throwaway cluster in {}",
            dir.display()
        );
    }
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The PostgreSQL postmaster's pid (the parent of `conn`'s backend), when the server runs
/// on this machine.
pub async fn postmaster_pid(conn: &mut AsyncPgConnection) -> Result<Option<u32>> {
    use diesel_async::RunQueryDsl;
    let rows: Vec<Pid> = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .load(conn)
        .await?;
    let Some(backend) = rows.into_iter().next() else {
        return Ok(None);
    };
    let parent = proc_stat(&backend.pid.to_string()).map(|s| s.ppid);
    Ok(parent.filter(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "postgres")
    }))
}

// ---------------------------------------------------------------------------------------
// The server process

/// Flags decide; the caller's environment must not reconfigure the server.
pub fn clear_server_env(command: &mut tokio::process::Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        // The runtime's too: the bench's own thread count is the client's, not the server's.
        if key_text.starts_with("CHATQL_") || key == "DATABASE_URL" || key == "TOKIO_WORKER_THREADS"
        {
            command.env_remove(key);
        }
    }
}

/// A `chatql serve` process on a loopback port of its own, killed when dropped.
pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    log_path: PathBuf,
}

impl Server {
    /// Starts `bin serve --bind <a free loopback port>` with `args`, logging (at
    /// `log_filter`) to `log_path`, and waits until it is ready.
    pub async fn start<S: AsRef<OsStr>>(
        bin: &Path,
        args: impl IntoIterator<Item = S>,
        log_filter: &str,
        log_path: PathBuf,
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&log_path)?;
        let mut command = tokio::process::Command::new(bin);
        command
            .args(["serve", "--bind", &addr])
            .args(args)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        clear_server_env(&mut command);
        let child = command.spawn()?;
        let pid = child.id().ok_or("the server exited at once")?;
        let mut server = Server {
            child,
            pid,
            addr,
            log_path,
        };
        if let Err(e) = server.wait_ready(Duration::from_secs(60)).await {
            let tail = server.log_tail(30);
            server.stop().await;
            return Err(format!("{e}\n--- server log (tail) ---\n{tail}").into());
        }
        Ok(server)
    }

    /// Polls `/readyz` until it answers 200, for at most `limit`.
    async fn wait_ready(&mut self, limit: Duration) -> Result {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// The server's memory now (None once it is gone).
    pub fn memory(&self) -> Option<Memory> {
        memory(&self.pid.to_string())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

// ---------------------------------------------------------------------------------------
// /proc

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmRSS`.
    pub rss: u64,
    /// `VmHWM`: the peak resident size.
    #[allow(dead_code, reason = "fanout reports it, requests does not")]
    pub peak: u64,
}

/// The memory of a process (`self` or a pid), from `/proc/<process>/status`.
pub fn memory(process: &str) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

/// The fields of `/proc/<pid>/stat` used here; times in clock ticks.
struct ProcStat {
    ppid: u32,
    /// utime + stime.
    own: u64,
    /// cutime + cstime: children that exited and were waited for.
    children: u64,
}

fn proc_stat(process: &str) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at `state`.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ProcStat {
        ppid: u32::try_from(field(1)?).ok()?,
        own: field(11)? + field(12)?,
        children: field(13)? + field(14)?,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

fn ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

/// CPU time (user + system) a process (`self` or a pid) used so far.
pub fn cpu_time(process: &str) -> Option<Duration> {
    proc_stat(process).map(|s| ticks(s.own))
}

/// CPU time a PostgreSQL cluster used so far: the postmaster, its live children, and the
/// children that already exited (which the postmaster has waited for).
pub fn cluster_cpu_time(postmaster: u32) -> Option<Duration> {
    let root = proc_stat(&postmaster.to_string())?;
    let mut total = root.own + root.children;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some(stat) = proc_stat(name).filter(|s| s.ppid == postmaster) {
            total += stat.own;
        }
    }
    Some(ticks(total))
}
