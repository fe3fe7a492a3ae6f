//! `chatql export`: every kind of row as a JSON line, in dependency order, and the
//! `--chat`, `--user` and `--since` selections.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::common::*;

pub fn export(database_url: &str, args: &[&str]) -> TestResult<std::process::Output> {
    Ok(std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
        .args(["export", "--database-url", database_url])
        .args(args)
        .output()?)
}

/// The dump's lines, parsed; fails when the export did.
pub fn records(database_url: &str, args: &[&str]) -> TestResult<Vec<Value>> {
    let output = export(database_url, args)?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = Vec::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        lines.push(serde_json::from_str::<Value>(line)?);
    }
    Ok(lines)
}

pub fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

pub fn number(global: &str) -> TestResult<i64> {
    Ok(chatql::vocabulary::ids::MessageId::from_global(global)
        .map(|id| id.0)
        .or_else(|_| chatql::vocabulary::ids::ChatId::from_global(global).map(|id| id.0))
        .or_else(|_| chatql::vocabulary::ids::UserId::from_global(global).map(|id| id.0))
        .map_err(|e| e.to_string())?)
}

/// What [`seed`] made.
pub struct Seeded {
    pub alice: TestUser,
    pub bob: TestUser,
    pub carol: TestUser,
    pub dave: TestUser,
    pub team: String,
    pub other: String,
    pub hello: String,
    pub reply: String,
    pub edited: String,
    pub oops: String,
}

/// A database with every kind of row: users, a block, two chats (with their sessions),
/// a mention, a reply (a thread, read by carol), an edit, a retraction, a reaction, a pin,
/// a read watermark, a pinned and a muted chat; two messages an hour old.
pub async fn seed(server: &TestServer) -> TestResult<Seeded> {
    let (alice, bob, carol, dave) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
        server.user("dave").await?,
    );
    let team = group(server, &alice, &[&bob, &carol]).await?;
    let other = group(server, &dave, &[&carol]).await?;
    let (a, b, c) = (
        server.client(&alice),
        server.client(&bob),
        server.client(&carol),
    );
    let hello = str_at(
        &a.ok(
            "mutation($c: ID!, $m: [ID!]) { sendMessage(input: {chatId: $c, content: \"hello @bob\", mentions: $m}) { id } }",
            json!({"c": team, "m": [bob.id]}),
        )
        .await?,
        "/sendMessage/id",
    )?;
    let reply = str_at(
        &b.ok(
            "mutation($c: ID!, $p: ID!) { sendMessage(input: {chatId: $c, content: \"a reply\", parentId: $p}) { id } }",
            json!({"c": team, "p": hello}),
        )
        .await?,
        "/sendMessage/id",
    )?;
    backdate(server, &hello, 3600).await?;
    backdate(server, &reply, 3600).await?;
    let edited = send(server, &carol, &team, "first words").await?;
    c.ok(
        "mutation($id: ID!) { editMessage(id: $id, content: \"second words\") { id } }",
        json!({"id": edited}),
    )
    .await?;
    let oops = send(server, &alice, &team, "oops").await?;
    a.ok(
        "mutation($id: ID!) { retractMessage(id: $id) { id } }",
        json!({"id": oops}),
    )
    .await?;
    b.ok(
        "mutation($id: ID!) { addReaction(messageId: $id, emoji: \"👍\") { id } }",
        json!({"id": hello}),
    )
    .await?;
    a.ok(
        "mutation($id: ID!) { pinMessage(id: $id) { id } }",
        json!({"id": hello}),
    )
    .await?;
    b.ok(
        "mutation($c: ID!, $m: ID!) { markRead(chatId: $c, upToMessageId: $m) { role } setChatPinned(chatId: $c, pinned: true) { role } }",
        json!({"c": team, "m": reply}),
    )
    .await?;
    c.ok(
        "mutation($c: ID!, $m: ID!) { setChatMuted(chatId: $c, muted: true) { role } markThreadRead(messageId: $m) { id } }",
        json!({"c": team, "m": hello}),
    )
    .await?;
    a.ok(
        "mutation($u: ID!) { blockUser(userId: $u) { id } }",
        json!({"u": dave.id}),
    )
    .await?;
    send(server, &dave, &other, "elsewhere").await?;

    Ok(Seeded {
        alice,
        bob,
        carol,
        dave,
        team,
        other,
        hello,
        reply,
        edited,
        oops,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_every_kind_of_row_in_dependency_order() -> TestResult {
    let server = TestServer::start().await?;
    let Seeded {
        alice,
        bob,
        carol,
        dave,
        team,
        other,
        hello,
        reply,
        edited,
        oops,
    } = seed(&server).await?;

    let all = records(&server.db.url, &[])?;
    let header = &all[0];
    assert_eq!(
        (&header["type"], &header["format"], &header["version"]),
        (&json!("header"), &json!("chatql-export"), &json!(1))
    );
    assert_eq!(header["chats"], Value::Null);
    // Dependency order: users, blocks, then each chat with what belongs to it.
    let kinds: Vec<&str> = all.iter().filter_map(|r| r["type"].as_str()).collect();
    let first = |kind: &str| kinds.iter().position(|k| *k == kind);
    let last = |kind: &str| kinds.iter().rposition(|k| *k == kind);
    assert!(
        last("user") < first("block") && last("block") < first("chat"),
        "{kinds:?}"
    );
    let counts = kinds.iter().fold(HashMap::new(), |mut counts, kind| {
        *counts.entry(*kind).or_insert(0) += 1;
        counts
    });
    assert_eq!(
        counts,
        HashMap::from([
            ("header", 1),
            ("user", 4),
            ("block", 1),
            ("chat", 2),
            // Every chat starts with a conversation session.
            ("session", 2),
            ("message", 5),
            ("edit", 1),
            ("reaction", 1),
            ("mention", 1),
            ("pin", 1),
            ("member", 5),
            ("thread_read", 1),
        ])
    );
    // Each chat's members come after its messages (their watermarks name messages).
    let team_number = number(&team)?;
    let team_at = all
        .iter()
        .position(|r| r["type"] == "chat" && r["id"] == team_number);
    let team_lines: Vec<&str> = kinds[team_at.ok_or("no team chat")?..]
        .iter()
        .copied()
        .take_while({
            let mut seen_chat = false;
            move |kind| {
                let again = *kind == "chat" && seen_chat;
                seen_chat |= *kind == "chat";
                !again
            }
        })
        .collect();
    assert_eq!(team_lines.first(), Some(&"chat"));
    let member_at = team_lines.iter().position(|k| *k == "member");
    let message_last = team_lines.iter().rposition(|k| *k == "message");
    assert!(message_last < member_at, "{team_lines:?}");

    // The fields, as stored.
    let messages = of_type(&all, "message");
    let by_id = |id: &str| -> TestResult<&Value> {
        let id = number(id)?;
        Ok(*messages
            .iter()
            .find(|m| m["id"] == id)
            .ok_or("message missing")?)
    };
    assert_eq!(by_id(&reply)?["parentId"], number(&hello)?);
    assert_eq!(by_id(&reply)?["senderId"], number(&bob.id)?);
    let team_session = of_type(&all, "session")
        .into_iter()
        .find(|session| session["chatId"] == number(&team).unwrap_or_default())
        .ok_or("no session of the team")?;
    assert_eq!(by_id(&reply)?["sessionId"], team_session["id"]);
    assert_eq!(by_id(&edited)?["content"], "second words");
    assert!(by_id(&edited)?["editedAt"].is_string());
    assert!(by_id(&oops)?["retractedAt"].is_string());
    assert_eq!(by_id(&oops)?["content"], "");
    assert_eq!(of_type(&all, "edit")[0]["content"], "first words");
    assert_eq!(of_type(&all, "edit")[0]["messageId"], number(&edited)?);
    let reaction = of_type(&all, "reaction")[0];
    assert_eq!(
        (&reaction["emoji"], &reaction["userId"]),
        (&json!("👍"), &json!(number(&bob.id)?))
    );
    assert_eq!(of_type(&all, "mention")[0]["userId"], number(&bob.id)?);
    assert_eq!(of_type(&all, "pin")[0]["pinnedBy"], number(&alice.id)?);
    let block = of_type(&all, "block")[0];
    assert_eq!(
        (&block["blockerId"], &block["blockedId"]),
        (&json!(number(&alice.id)?), &json!(number(&dave.id)?))
    );
    let member = |chat: &str, user: &TestUser| -> TestResult<Value> {
        let (chat, user) = (number(chat)?, number(&user.id)?);
        Ok(of_type(&all, "member")
            .into_iter()
            .find(|m| m["chatId"] == chat && m["userId"] == user)
            .ok_or("member missing")?
            .clone())
    };
    let bob_in_team = member(&team, &bob)?;
    assert_eq!(bob_in_team["lastReadMessageId"], number(&reply)?);
    assert_eq!(bob_in_team["pinned"], true);
    assert_eq!(member(&team, &carol)?["muted"], true);
    assert_eq!(member(&team, &alice)?["role"], "OWNER");
    let thread_read = of_type(&all, "thread_read")[0];
    assert_eq!(thread_read["messageId"], number(&hello)?);
    assert_eq!(thread_read["userId"], number(&carol.id)?);
    assert!(
        of_type(&all, "user")
            .iter()
            .all(|u| u.get("tokenGeneration").is_none())
    );

    // --user: the chats dave is in, and the people in them; alice's block of dave is
    // hers, and she is not in the export.
    let daves = records(&server.db.url, &["--user", &dave.id])?;
    assert_eq!(daves[0]["chats"], json!([number(&other)?]));
    let mut names: Vec<&str> = of_type(&daves, "user")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["carol", "dave"]);
    assert!(of_type(&daves, "block").is_empty());
    assert_eq!(of_type(&daves, "message").len(), 1);

    // --chat and --since: the team's messages of the last half hour, and their parts.
    let since = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    let recent = records(&server.db.url, &["--chat", &team, "--since", &since])?;
    let contents: Vec<&str> = of_type(&recent, "message")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    // (A retraction clears the content.)
    assert_eq!(contents, ["second words", ""]);
    assert_eq!(of_type(&recent, "edit").len(), 1);
    assert!(of_type(&recent, "reaction").is_empty());
    assert_eq!(of_type(&recent, "member").len(), 3);

    // Naming what is not there fails, and writes nothing.
    let missing = export(&server.db.url, &["--chat", "999999"])?;
    assert!(!missing.status.success());
    assert!(missing.stdout.is_empty());
    assert!(String::from_utf8(missing.stderr)?.contains("no chat"));
    Ok(())
}
