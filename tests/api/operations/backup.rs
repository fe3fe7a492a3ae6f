//! `chatql backup`: a consistent copy of a live SQLite database, taken while messages are
//! being sent, that opens, passes SQLite's integrity checks and serves; PostgreSQL is
//! pointed to pg_dump.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::json;

use crate::common::*;

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn run_backup(database_url: &str, path: &std::path::Path) -> TestResult<std::process::Output> {
    Ok(std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
        .args(["backup", "--database-url", database_url])
        .arg(path)
        .output()?)
}

/// Waits (bounded) until `sent` reaches `at_least`.
async fn until_sent(sent: &AtomicUsize, at_least: usize) -> TestResult {
    for _ in 0..2_000 {
        if sent.load(Ordering::SeqCst) >= at_least {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Err(format!("the writers did not send {at_least} messages").into())
}

const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn backup_of_a_live_database_under_writes_opens_and_is_consistent() -> TestResult {
    let server = TestServer::start().await?;
    let copy = server.db.dir.path().join("copy.db");
    if backend() == TestBackend::Postgres {
        let output = run_backup(&server.db.url, &copy)?;
        assert!(!output.status.success());
        assert!(String::from_utf8(output.stderr)?.contains("pg_dump"));
        assert!(!copy.exists());
        return Ok(());
    }
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    // Writers send until told to stop; `sent` counts the sends acknowledged.
    let (sent, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, chat, sent, stop) = (
            server.client(if writer % 2 == 0 { &alice } else { &bob }),
            chat.clone(),
            sent.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                client
                    .ok(
                        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }",
                        json!({"c": chat, "t": format!("writer {writer} backup test {i}")}),
                    )
                    .await?;
                sent.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
            TestResult::Ok(())
        }));
    }
    until_sent(&sent, 40).await?;
    let before = sent.load(Ordering::SeqCst);
    let output = tokio::task::spawn_blocking({
        let (url, copy) = (server.db.url.clone(), copy.clone());
        move || run_backup(&url, &copy).map_err(|e| e.to_string())
    })
    .await??;
    let after = sent.load(Ordering::SeqCst);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Writers go on after the copy: it was taken under load, and they were not blocked.
    until_sent(&sent, after + 40).await?;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await??;
    }

    let mut db = SqliteConnection::establish(&copy.display().to_string())?;
    let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut db)?;
    assert_eq!(
        check
            .iter()
            .map(|c| c.integrity_check.as_str())
            .collect::<Vec<_>>(),
        ["ok"]
    );
    // The search index agrees with the messages it indexes (FTS5 errors if not).
    diesel::sql_query(
        "INSERT INTO messages_search (messages_search, rank) VALUES ('integrity-check', 1)",
    )
    .execute(&mut db)?;
    // A snapshot: every send acknowledged before the copy began, and none begun after it
    // ended (each writer may have had one send committed whose answer came after).
    let copied: Count =
        diesel::sql_query("SELECT count(*) AS n FROM messages WHERE content LIKE 'writer %'")
            .get_result(&mut db)?;
    let copied = usize::try_from(copied.n)?;
    assert!(
        (before..=after + WRITERS).contains(&copied),
        "{copied} messages copied, {before} sent before the backup and {after} after"
    );
    drop(db);

    // The copy serves: a server on it finds the newest copied message, by search too.
    let restored = TestServer::start_on(
        TestDb {
            url: copy.display().to_string(),
            dir: tempfile::tempdir()?,
        },
        &[],
    )
    .await?;
    let a = restored.client(&alice);
    let data = a
        .ok(
            "query($c: ID!) { messages(chatId: $c, last: 1) { nodes { content } } }",
            json!({"c": chat}),
        )
        .await?;
    let newest = str_at(&data, "/messages/nodes/0/content")?;
    let found = a
        .ok(
            "query($q: String!) { searchMessages(query: $q) { nodes { content } } }",
            json!({"q": format!("\"{newest}\"")}),
        )
        .await?;
    assert_eq!(
        strings_at(&found, "/searchMessages/nodes", "content"),
        [newest]
    );

    // No overwriting, and no backing up a database that is not there.
    let again = run_backup(&server.db.url, &copy)?;
    assert!(!again.status.success());
    assert!(String::from_utf8(again.stderr)?.contains("exists"));
    let missing = run_backup(
        &server
            .db
            .dir
            .path()
            .join("nothing.db")
            .display()
            .to_string(),
        &server.db.dir.path().join("copy2.db"),
    )?;
    assert!(!missing.status.success());
    assert!(String::from_utf8(missing.stderr)?.contains("no SQLite database"));
    Ok(())
}
