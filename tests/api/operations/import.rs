//! `chatql import`: a dump of every kind of row read into a fresh database of this run's
//! backend (SQLite → PostgreSQL in the PostgreSQL run: the documented move) exports again
//! the same apart from ids; importing it twice adds nothing; unread counts survive; a bad
//! line is refused with its number, or skipped with `--skip-bad`.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Value, json};

use super::export::{Seeded, records, seed};
use crate::common::*;

pub(super) fn import(
    database_url: &str,
    dump: &str,
    args: &[&str],
) -> TestResult<std::process::Output> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
        .args(["import", "--database-url", database_url])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(dump.as_bytes())?;
    Ok(child.wait_with_output()?)
}

/// A client signed in as `username` on `server` (whose user ids are not the seed's).
pub(super) async fn client_for(server: &TestServer, username: &str) -> TestResult<Client> {
    let admin = server.admin();
    let id = str_at(
        &admin
            .ok(
                "query($n: String!) { user(username: $n) { id } }",
                json!({"n": username}),
            )
            .await?,
        "/user/id",
    )?;
    let token = str_at(
        &admin
            .ok(
                "mutation($u: ID!) { issueToken(userId: $u) }",
                json!({"u": id}),
            )
            .await?,
        "/issueToken",
    )?;
    Ok(Client::new(server.url(), Some(token), None))
}

pub(super) fn succeeded(output: &std::process::Output) -> TestResult<String> {
    let stderr = String::from_utf8(output.stderr.clone())?;
    assert!(output.status.success(), "{stderr}");
    Ok(stderr)
}

fn dump_text(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

/// A dump with every id replaced by the order its record came in (per kind), so two dumps
/// of the same data under different ids compare equal; the header's origin and time go.
fn without_ids(records: &[Value]) -> Vec<Value> {
    let mut ordinals: HashMap<(&'static str, i64), usize> = HashMap::new();
    let owner = |kind: &str| match kind {
        "user" => Some("user"),
        "chat" => Some("chat"),
        "session" => Some("session"),
        "message" => Some("message"),
        "edit" => Some("edit"),
        _ => None,
    };
    for record in records {
        if let (Some(kind), Some(id)) = (
            record["type"].as_str().and_then(owner),
            record["id"].as_i64(),
        ) {
            let next = ordinals.len();
            ordinals.entry((kind, id)).or_insert(next);
        }
    }
    let refers: [(&str, &'static str); 16] = [
        ("userId", "user"),
        ("senderId", "user"),
        ("blockerId", "user"),
        ("blockedId", "user"),
        ("createdBy", "user"),
        ("pinnedBy", "user"),
        ("chatId", "chat"),
        ("sessionId", "session"),
        ("activeSessionId", "session"),
        ("messageId", "message"),
        ("parentId", "message"),
        ("lastReadMessageId", "message"),
        ("lastDeliveredMessageId", "message"),
        ("id", "?"),
        ("directKey", "?"),
        ("origin", "?"),
    ];
    records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            let kind = record["type"].as_str().and_then(owner);
            let Some(object) = record.as_object_mut() else {
                return record;
            };
            object.remove("exportedAt");
            for (field, target) in refers {
                let Some(value) = object.get_mut(field) else {
                    continue;
                };
                let target = match (field, kind) {
                    ("id", Some(kind)) => kind,
                    ("id" | "directKey" | "origin", _) => {
                        *value = json!("-");
                        continue;
                    }
                    _ => target,
                };
                if let Some(id) = value.as_i64() {
                    *value = json!(format!(
                        "{target}#{}",
                        ordinals.get(&(target, id)).copied().unwrap_or(usize::MAX)
                    ));
                }
            }
            record
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_imports_into_a_fresh_database_the_same_and_only_once() -> TestResult {
    // The source is SQLite whatever this run's backend; the target is this run's.
    let dir = tempfile::tempdir()?;
    let source = TestServer::start_on(
        TestDb {
            url: dir.path().join("source.db").display().to_string(),
            dir,
        },
        &[],
    )
    .await?;
    let Seeded { bob, dave, .. } = seed(&source).await?;
    let unread_in_source = source
        .client(&dave)
        .ok(
            "{ chats(first: 10) { nodes { name unreadCount } } }",
            json!({}),
        )
        .await?;
    let bob_unread_in_source = source
        .client(&bob)
        .ok(
            "{ chats(first: 10) { nodes { name unreadCount } } }",
            json!({}),
        )
        .await?;
    let first = records(&source.db.url, &[])?;

    let target = TestDb::new().await?;
    let stderr = succeeded(&import(&target.url, &dump_text(&first), &[])?)?;
    assert!(
        stderr.contains("added 4 users, 2 chats, 5 messages"),
        "{stderr}"
    );
    let second = records(&target.url, &[])?;
    assert_eq!(without_ids(&second), without_ids(&first));

    // Again: nothing added, and the database exports as before.
    let stderr = succeeded(&import(&target.url, &dump_text(&first), &[])?)?;
    assert!(
        stderr.contains("added 0 users, 0 chats, 0 messages and 0 other rows"),
        "{stderr}"
    );
    assert_eq!(
        without_ids(&records(&target.url, &[])?),
        without_ids(&second)
    );

    // A server on the imported database: the same unread counts, search finds what was
    // sent, and the reply is still the thread's.
    let served = TestServer::start_on(target, &[]).await?;
    let dave_client = client_for(&served, &dave.username).await?;
    let unread = dave_client
        .ok(
            "{ chats(first: 10) { nodes { name unreadCount } } }",
            json!({}),
        )
        .await?;
    assert_eq!(unread, unread_in_source);
    let bob_client = client_for(&served, &bob.username).await?;
    let found = bob_client
        .ok(
            "{ searchMessages(query: \"hello\") { nodes { content replyCount replies(first: 5) { nodes { content } } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        found["searchMessages"]["nodes"],
        json!([{"content": "hello @bob", "replyCount": 1, "replies": {"nodes": [{"content": "a reply"}]}}])
    );
    // The thread's last reply is derived again.
    let thread = bob_client
        .ok(
            "{ searchMessages(query: \"hello\") { nodes { lastReplyAt replies(first: 1) { nodes { createdAt } } } } }",
            json!({}),
        )
        .await?;
    let root = &thread["searchMessages"]["nodes"][0];
    assert!(root["lastReplyAt"].is_string(), "{thread}");
    assert_eq!(
        root["lastReplyAt"],
        root["replies"]["nodes"][0]["createdAt"]
    );
    let unread = bob_client
        .ok(
            "{ chats(first: 10) { nodes { name unreadCount } } }",
            json!({}),
        )
        .await?;
    assert_eq!(unread, bob_unread_in_source);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_line_is_refused_with_its_number_or_skipped() -> TestResult {
    let server = TestServer::start().await?;
    seed(&server).await?;
    let mut lines: Vec<String> = records(&server.db.url, &[])?
        .iter()
        .map(Value::to_string)
        .collect();
    lines.insert(3, "{\"type\": \"user\", \"nonsense\": true}".to_owned());
    let dump = lines.join("\n");

    let target = TestDb::new().await?;
    let refused = import(&target.url, &dump, &[])?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr)?;
    assert!(stderr.contains("line 4"), "{stderr}");

    // Users are taken one by one, chats whole: the refused run kept the users before line
    // 4 and no chat. With --skip-bad the rest comes in, and the data is all there.
    let stderr = succeeded(&import(&target.url, &dump, &["--skip-bad"])?)?;
    assert!(
        stderr.contains("skipped line 4: missing field `id`"),
        "{stderr}"
    );
    assert!(stderr.contains("1 bad lines or items skipped"), "{stderr}");
    assert!(stderr.contains("2 chats, 5 messages"), "{stderr}");
    assert_eq!(
        without_ids(&records(&target.url, &[])?),
        without_ids(&records(&server.db.url, &[])?)
    );

    let header_only = import(&TestDb::new().await?.url, "{\"type\": \"user\"}\n", &[])?;
    assert!(!header_only.status.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_chat_imports_in_order_with_replies_across_its_batches() -> TestResult {
    // A chat of one message, exported, then grown in the dump to 1,201 messages (more
    // than two of the import's batches of 500), with replies to a message just before
    // (waiting in the same batch, or at a batch's edge) and far before.
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    send(&server, &alice, &chat, "the first").await?;
    let source = records(&server.db.url, &[])?;
    let at = |kind: &str| source.iter().position(|r| r["type"] == kind);
    let (first, members) = (
        at("message").ok_or("no message")?,
        at("member").ok_or("no member")?,
    );
    let template = source[first].clone();
    let base = template["id"].as_i64().ok_or("no id")?;
    let replies: HashMap<i64, i64> = [(250, 249), (499, 498), (500, 499), (501, 2), (1000, 999)]
        .into_iter()
        .collect();
    let mut dump: Vec<Value> = source[..first].to_vec();
    for i in 0..1_201_i64 {
        let mut message = template.clone();
        message["id"] = json!(base + i);
        message["content"] = json!(format!("message {i}"));
        message["clientId"] = Value::Null;
        message["parentId"] = replies.get(&i).map_or(Value::Null, |p| json!(base + p));
        dump.push(message);
    }
    for member in &source[members..] {
        let mut member = member.clone();
        if member["type"] == "member" {
            member["lastReadMessageId"] = json!(base + 1_200);
            member["lastDeliveredMessageId"] = json!(base + 1_200);
        }
        dump.push(member);
    }

    let target = TestDb::new().await?;
    let stderr = succeeded(&import(&target.url, &dump_text(&dump), &[])?)?;
    assert!(stderr.contains("1201 messages"), "{stderr}");
    assert_eq!(without_ids(&records(&target.url, &[])?), without_ids(&dump));
    // Again: every batch is found.
    let stderr = succeeded(&import(&target.url, &dump_text(&dump), &[])?)?;
    assert!(stderr.contains("0 messages"), "{stderr}");
    assert!(stderr.contains("1204 already there"), "{stderr}");
    Ok(())
}
