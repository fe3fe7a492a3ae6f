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
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
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
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()?;
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
