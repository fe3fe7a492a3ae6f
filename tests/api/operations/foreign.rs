//! `chatql import --format openai|frontend`: the example files in `tests/fixtures/import`
//! (the README's) read into this run's backend, seen through the server as their users
//! would see them, and read a second time without adding anything.

use serde_json::{Value, json};

use super::import::{client_for, import, succeeded};
use crate::common::*;

/// An example file of `tests/fixtures/import`.
fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn fixture(name: &str) -> TestResult<String> {
    Ok(std::fs::read_to_string(fixture_path(name))?)
}

/// The file read as a file argument (so the import knows its size).
fn import_file(database_url: &str, name: &str, args: &[&str]) -> TestResult<std::process::Output> {
    Ok(std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
        .args(["import", "--database-url", database_url])
        .arg(fixture_path(name))
        .args(args)
        .output()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_conversations_become_assistant_chats_with_their_history() -> TestResult {
    // Into a running server's database, whose Carol the conversations' "carol" is (the
    // case of a username does not make another user).
    let server = TestServer::start().await?;
    server.user("Carol").await?;
    let db = &server.db;
    let args = ["--format", "openai", "--user", "carol"];
    let stderr = succeeded(&import_file(&db.url, "openai-conversations.jsonl", &args)?)?;
    assert!(
        stderr.contains("added 1 users, 2 chats, 9 messages"),
        "{stderr}"
    );
    // Again, from stdin this time: nothing new.
    let text = fixture("openai-conversations.jsonl")?;
    let stderr = succeeded(&import(&db.url, &text, &args)?)?;
    assert!(
        stderr.contains("added 0 users, 0 chats, 0 messages and 0 other rows"),
        "{stderr}"
    );

    let carol = client_for(&server, "Carol").await?;
    let chats = carol
        .ok(
            "{ chats(first: 10) { nodes { id name kind unreadCount createdAt
                 members(first: 5) { nodes { role user { username isBot } } } } } }",
            json!({}),
        )
        .await?;
    let nodes = &chats["chats"]["nodes"];
    let trip = nodes
        .as_array()
        .and_then(|chats| chats.iter().find(|chat| chat["name"] == "Trip to Lisbon"))
        .ok_or("no trip chat")?;
    assert_eq!(trip["kind"], "ASSISTANT");
    assert_eq!(trip["unreadCount"], 0);
    assert_eq!(trip["createdAt"], "2024-03-01T12:00:00.000Z");
    assert_eq!(
        trip["members"]["nodes"],
        json!([
            {"role": "OWNER", "user": {"username": "Carol", "isBot": false}},
            {"role": "MEMBER", "user": {"username": "assistant", "isBot": true}}
        ])
    );
    assert_eq!(nodes.as_array().map(Vec::len), Some(2));

    let messages = carol
        .ok(
            "query($c: ID!) { messages(chatId: $c, first: 20) { nodes {
                 role kind content data createdAt sender { username } } } }",
            json!({"c": trip["id"]}),
        )
        .await?;
    let messages = messages["messages"]["nodes"]
        .as_array()
        .cloned()
        .ok_or("no messages")?;
    let summary: Vec<(Value, Value, Value)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].clone(),
                m["sender"]["username"].clone(),
                m["content"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                json!("SYSTEM"),
                Value::Null,
                json!("You are a travel planner.")
            ),
            (
                json!("USER"),
                json!("Carol"),
                json!("Three days in Lisbon in May: what should I see?")
            ),
            (
                json!("ASSISTANT"),
                json!("assistant"),
                json!("Day 1: Alfama and the castle. Day 2: Belém. Day 3: Sintra.")
            ),
            (
                json!("USER"),
                json!("Carol"),
                json!("And where should we eat?")
            ),
            (json!("ASSISTANT"), json!("assistant"), json!("")),
            (
                json!("ASSISTANT"),
                json!("assistant"),
                json!("[\"Taberna da Rua das Flores\", \"Cervejaria Ramiro\"]")
            ),
            (
                json!("ASSISTANT"),
                json!("assistant"),
                json!("Try Taberna da Rua das Flores and Cervejaria Ramiro.")
            ),
        ]
    );
    // Times as given, or the conversation's start for the system prompt before them.
    assert_eq!(messages[0]["createdAt"], "2024-03-01T12:00:00.000Z");
    assert_eq!(messages[6]["createdAt"], "2024-03-01T12:01:05.000Z");
    // What the chat model has no column for is kept as data.
    assert_eq!(
        messages[3]["data"],
        json!({"parts": [{"type": "image_url", "image_url": {"url": "https://example.com/menu.png"}}]})
    );
    assert_eq!(
        messages[4]["data"]["tool_calls"][0]["function"]["name"],
        "search_restaurants"
    );
    assert_eq!(
        messages[5]["data"],
        json!({"role": "tool", "tool_call_id": "call_1"})
    );

    // The conversation without ids or times: in order, 1 ms apart.
    let other = nodes
        .as_array()
        .and_then(|chats| chats.iter().find(|chat| chat["name"].is_null()))
        .ok_or("no untitled chat")?;
    let history = carol
        .ok(
            "query($c: ID!) { history(chatId: $c) { role content } }",
            json!({"c": other["id"]}),
        )
        .await?;
    assert_eq!(
        history["history"],
        json!([
            {"role": "USER", "content": "What is the capital of Australia?"},
            {"role": "ASSISTANT", "content": "Canberra."}
        ])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_conversation_is_refused_with_its_place_or_skipped() -> TestResult {
    let db = TestDb::new().await?;
    let text = format!(
        "{}{}\n",
        fixture("openai-conversations.jsonl")?,
        json!({"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]})
    );
    let args = ["--format", "openai", "--user", "carol"];
    let refused = import(&db.url, &text, &args)?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr)?;
    assert!(
        stderr.contains("conversation 3, message 2: unknown role `robot`"),
        "{stderr}"
    );
    let with_skip = [&args[..], &["--skip-bad"]].concat();
    let stderr = succeeded(&import(&db.url, &text, &with_skip)?)?;
    assert!(
        stderr.contains("skipped conversation 3, message 2"),
        "{stderr}"
    );
    // The refused run kept the conversations before the bad one (each chat is one
    // transaction); this one adds the rest without the bad message.
    assert!(
        stderr.contains("added 0 users, 1 chats, 1 messages"),
        "{stderr}"
    );

    let not_json = import(&db.url, "{\"messages\": [", &args)?;
    assert!(!not_json.status.success());
    assert!(String::from_utf8(not_json.stderr)?.contains("line 1"));
    let bad_name = import(
        &db.url,
        &text,
        &["--format", "openai", "--user", "no spaces"],
    )?;
    assert!(!bad_name.status.success());
    assert!(String::from_utf8(bad_name.stderr)?.contains("`no spaces`: username must be"));
    let no_user = import(&db.url, &text, &["--format", "openai"])?;
    assert!(!no_user.status.success());
    assert!(String::from_utf8(no_user.stderr)?.contains("--user"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frontends_ui_state_imports_with_its_unread_pins_and_mutes() -> TestResult {
    let db = TestDb::new().await?;
    let args = ["--format", "frontend"];
    let stderr = succeeded(&import_file(&db.url, "frontend-ui-state.json", &args)?)?;
    assert!(
        stderr.contains("added 4 users, 3 chats, 10 messages"),
        "{stderr}"
    );
    let stderr = succeeded(&import_file(&db.url, "frontend-ui-state.json", &args)?)?;
    assert!(
        stderr.contains("added 0 users, 0 chats, 0 messages and 0 other rows"),
        "{stderr}"
    );

    let server = TestServer::start_on(db, &[]).await?;
    let alice = client_for(&server, "alice").await?;
    let list = "{ chats(first: 10) { nodes { id name kind unreadCount pinned muted
                   myMembership { role } } } }";
    let chats = alice.ok(list, json!({})).await?;
    let nodes = &chats["chats"]["nodes"];
    let seen: Vec<(Value, Value, Value, Value, Value)> = nodes
        .as_array()
        .ok_or("no chats")?
        .iter()
        .map(|c| {
            (
                c["kind"].clone(),
                c["unreadCount"].clone(),
                c["pinned"].clone(),
                c["muted"].clone(),
                c["myMembership"]["role"].clone(),
            )
        })
        .collect();
    // Pinned first, then the newest activity: the assistant chat, then the group.
    assert_eq!(
        seen,
        vec![
            (
                json!("DIRECT"),
                json!(2),
                json!(true),
                json!(false),
                json!("MEMBER")
            ),
            (
                json!("ASSISTANT"),
                json!(0),
                json!(false),
                json!(false),
                json!("MEMBER")
            ),
            (
                json!("GROUP"),
                json!(1),
                json!(false),
                json!(true),
                json!("ADMIN")
            ),
        ]
    );
    // The direct chat is the one openDirectChat finds; the others have read everything.
    let bob = client_for(&server, "bob").await?;
    let bob_id = str_at(&bob.ok("{ me { id } }", json!({})).await?, "/me/id")?;
    let direct = alice
        .ok(
            "mutation($u: ID!) { openDirectChat(userId: $u) { id } }",
            json!({"u": bob_id}),
        )
        .await?;
    assert_eq!(direct["openDirectChat"]["id"], nodes[0]["id"]);
    let bobs = bob.ok(list, json!({})).await?;
    let bob_unread: Vec<Value> = bobs["chats"]["nodes"]
        .as_array()
        .ok_or("no chats")?
        .iter()
        .map(|c| c["unreadCount"].clone())
        .collect();
    assert_eq!(bob_unread, vec![json!(0), json!(0)]);

    let direct_messages = alice
        .ok(
            "query($c: ID!) { messages(chatId: $c, first: 10) { nodes {
                 content createdAt sender { username } parent { content }
                 reactions { emoji count reactedByMe } } } }",
            json!({"c": nodes[0]["id"]}),
        )
        .await?;
    assert_eq!(
        direct_messages["messages"]["nodes"],
        json!([
            {"content": "Lunch tomorrow?", "createdAt": "2024-03-01T11:00:00.000Z",
             "sender": {"username": "alice"}, "parent": null, "reactions": []},
            {"content": "Sure, where?", "createdAt": "2024-03-01T11:05:00.000Z",
             "sender": {"username": "bob"}, "parent": null,
             "reactions": [{"emoji": "👍", "count": 1, "reactedByMe": true}]},
            {"content": "The place by the river?", "createdAt": "2024-03-01T11:05:30.000Z",
             "sender": {"username": "bob"}, "parent": {"content": "Lunch tomorrow?"}, "reactions": []}
        ])
    );

    let group = alice
        .ok(
            "query($c: ID!) { chat(id: $c) {
                 members(first: 5) { nodes { role user { username } } }
                 messages(first: 10) { nodes { kind role content data retracted editedAt
                   sender { username } reactions { emoji count } } } } }",
            json!({"c": nodes[2]["id"]}),
        )
        .await?;
    let roles: std::collections::BTreeMap<String, String> = group["chat"]["members"]["nodes"]
        .as_array()
        .ok_or("no members")?
        .iter()
        .map(|m| {
            (
                m["user"]["username"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                m["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [("alice", "ADMIN"), ("bob", "MEMBER"), ("carol", "OWNER")]
            .map(|(u, r)| (u.to_owned(), r.to_owned()))
            .into()
    );
    let messages = &group["chat"]["messages"]["nodes"];
    assert_eq!(messages[0]["kind"], "SYSTEM");
    assert_eq!(messages[0]["sender"], Value::Null);
    assert_eq!(
        messages[1]["reactions"],
        json!([{"emoji": "❤️", "count": 2}, {"emoji": "😂", "count": 1}])
    );
    assert_eq!(messages[2]["retracted"], true);
    assert_eq!(messages[2]["content"], "");
    assert_eq!(messages[3]["editedAt"], "2024-02-29T09:50:00.000Z");
    assert_eq!(messages[4]["kind"], "IMAGE");
    assert_eq!(messages[4]["data"]["files"][0]["name"], "cover.png");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frontend_state_needs_its_app_and_its_users() -> TestResult {
    let db = TestDb::new().await?;
    let mut state: Value = serde_json::from_str(&fixture("frontend-ui-state.json")?)?;
    if let Some(object) = state.as_object_mut() {
        object.remove("app");
    }
    let refused = import(&db.url, &state.to_string(), &["--format", "frontend"])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8(refused.stderr)?.contains("--origin"));

    state["chats"][1]["messages"][2]["senderId"] = json!("u404");
    let args = ["--format", "frontend", "--origin", "acme-chat"];
    let refused = import(&db.url, &state.to_string(), &args)?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr)?;
    assert!(
        stderr.contains("chat 2, message 3: sender u404 is not among the users"),
        "{stderr}"
    );
    let with_skip = [&args[..], &["--skip-bad"]].concat();
    let stderr = succeeded(&import(&db.url, &state.to_string(), &with_skip)?)?;
    // Chat 1 came in with the refused run; chat 2 without its bad message, and chat 3.
    assert!(
        stderr.contains("added 0 users, 2 chats, 6 messages"),
        "{stderr}"
    );
    Ok(())
}

/// `chatql import` run on a terminal (a pseudo-terminal made by util-linux's `script`).
fn import_on_a_terminal(
    database_url: &str,
    file: &std::path::Path,
    args: &[&str],
) -> TestResult<String> {
    let mut command = format!(
        "{} import --database-url {database_url} {}",
        env!("CARGO_BIN_EXE_chatql"),
        file.display()
    );
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{text}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_a_bar_on_a_terminal_and_silent_elsewhere() -> TestResult {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "`script` (util-linux) is needed"
        );
        eprintln!("SKIPPED: no `script` to make a terminal with");
        return Ok(());
    }
    // Converted records: a bar over their count, with the counts and the rate.
    let db = TestDb::new().await?;
    let shown = import_on_a_terminal(
        &db.url,
        &fixture_path("frontend-ui-state.json"),
        &["--format", "frontend"],
    )?;
    assert!(shown.contains("100% 29/29 records"), "{shown}");
    assert!(shown.contains("10 messages ("), "{shown}");
    assert!(shown.contains("/s), 4 users, 3 chats added"), "{shown}");
    assert!(shown.contains("imported 29 records"), "{shown}");

    // A dump from a file: a bar over its bytes.
    let dump = tempfile::NamedTempFile::new()?;
    let exported = std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
        .args(["export", "--database-url", &db.url])
        .stdout(dump.reopen()?)
        .output()?;
    assert!(exported.status.success());
    let target = TestDb::new().await?;
    let shown = import_on_a_terminal(&target.url, dump.path(), &[])?;
    // "100% 6.54 KiB/6.54 KiB 128.30 KiB/s, ~0s left: 10 messages …"
    assert!(shown.contains("100% "), "{shown}");
    assert!(shown.contains(" KiB/s, ~"), "{shown}");
    assert!(shown.contains("10 messages ("), "{shown}");

    // Not on a terminal: the summary only.
    let quiet = import_file(
        &TestDb::new().await?.url,
        "frontend-ui-state.json",
        &["--format", "frontend"],
    )?;
    let stderr = String::from_utf8(quiet.stderr)?;
    assert!(!stderr.contains('%'), "{stderr}");
    assert!(stderr.starts_with("imported 29 records"), "{stderr}");
    Ok(())
}
