//! A real `chatql serve` OS process, for what an in-process server cannot show: several
//! processes on one database, and a process killed with SIGKILL.

use serde_json::json;

use super::{ADMIN_KEY, Client, JWT_SECRET, TestResult, TestUser, str_at};

/// A `chatql serve` process on a free loopback port; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    base: String,
}

impl ServerProcess {
    pub async fn start(database_url: &str, data_dir: &std::path::Path) -> TestResult<Self> {
        Self::start_with(database_url, data_dir, &[]).await
    }

    /// Starts a process with extra `--flag value` arguments of `serve`, and waits (bounded)
    /// until its `/readyz` answers 200.
    pub async fn start_with(
        database_url: &str,
        data_dir: &std::path::Path,
        extra: &[&str],
    ) -> TestResult<Self> {
        Self::spawn(database_url, data_dir, extra, |command| {
            command.env("RUST_LOG", "warn");
        })
        .await
    }

    /// Starts a process whose standard error is read into [`Logs`], with its environment
    /// as `environment` leaves it (the test's own, less `RUST_LOG` and `NO_COLOR`: the
    /// process logs as it does by default).
    pub async fn start_logged(
        database_url: &str,
        data_dir: &std::path::Path,
        environment: impl FnOnce(&mut std::process::Command),
    ) -> TestResult<(Self, Logs)> {
        let mut process = Self::spawn(database_url, data_dir, &[], |command| {
            command
                .env_remove("RUST_LOG")
                .env_remove("NO_COLOR")
                .stderr(std::process::Stdio::piped());
            environment(command);
        })
        .await?;
        let pipe = process.child.stderr.take().ok_or("no stderr pipe")?;
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok((
            process,
            Logs {
                lines,
                seen: Vec::new(),
            },
        ))
    }

    async fn spawn(
        database_url: &str,
        data_dir: &std::path::Path,
        extra: &[&str],
        configure: impl FnOnce(&mut std::process::Command),
    ) -> TestResult<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chatql"));
        command
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--jwt-secret", JWT_SECRET, "--admin-key", ADMIN_KEY])
            .args(extra)
            .stdout(std::process::Stdio::null());
        configure(&mut command);
        let child = command.spawn()?;
        let mut process = Self {
            child,
            base: format!("127.0.0.1:{port}"),
        };
        // Ready when /readyz answers (bounded polling).
        let ready = format!("http://{}/readyz", process.base);
        for _ in 0..200 {
            if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                return Err(format!("chatql serve exited before it was ready: {status}").into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err("chatql serve did not become ready".into())
    }

    pub fn http(&self) -> String {
        format!("http://{}/graphql", self.base)
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/graphql", self.base)
    }

    /// A client holding the admin key.
    pub fn admin(&self) -> Client {
        Client::new(self.http(), None, Some(ADMIN_KEY.into()))
    }

    /// A client acting as `user`.
    pub fn client(&self, user: &TestUser) -> Client {
        Client::new(self.http(), Some(user.token.clone()), None)
    }

    /// Creates a user through the admin key and mints their token.
    pub async fn user(&self, username: &str) -> TestResult<TestUser> {
        let admin = self.admin();
        let data = admin
            .ok(
                "mutation($u: String!) { createUser(input: {username: $u}) { id } }",
                json!({"u": username}),
            )
            .await?;
        let id = str_at(&data, "/createUser/id")?;
        let token = admin
            .ok(
                "mutation($u: ID!) { issueToken(userId: $u) }",
                json!({"u": id}),
            )
            .await?;
        Ok(TestUser {
            id,
            username: username.into(),
            token: str_at(&token, "/issueToken")?,
        })
    }

    /// Kills the process with SIGKILL (no shutdown of any kind runs) and reaps it.
    pub fn kill9(&mut self) -> TestResult {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// What a [`ServerProcess::start_logged`] process wrote to standard error, line by line.
pub struct Logs {
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Logs {
    /// The first line (read so far or arriving within the bound) that `wanted` accepts.
    pub fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> TestResult<String> {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return Ok(line.clone());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|_| {
                format!(
                    "no such log line; the log so far:\n{}",
                    self.seen.join("\n")
                )
            })?;
            self.seen.push(line.clone());
            if wanted(&line) {
                return Ok(line);
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
