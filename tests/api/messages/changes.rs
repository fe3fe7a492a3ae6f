//! Changing sent messages: edits (and the edit window), retractions, deletions; a foreign
//! message answered like a missing one.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn edits_retractions_and_deletions_follow_the_rules() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let id = send(&server, &bob, &chat, "original").await?;
    let edit =
        "mutation($m: ID!, $t: String!) { editMessage(id: $m, content: $t) { content editedAt } }";
    let retract = "mutation($m: ID!) { retractMessage(id: $m) { content retracted data } }";
    let delete = "mutation($m: ID!) { deleteMessage(id: $m) }";

    assert_eq!(
        server
            .client(&alice)
            .code(edit, json!({"m": id, "t": "hacked"}))
            .await?,
        "FORBIDDEN"
    );
    let data = server
        .client(&bob)
        .ok(edit, json!({"m": id, "t": "fixed"}))
        .await?;
    assert_eq!(str_at(&data, "/editMessage/content")?, "fixed");
    assert!(data["editMessage"]["editedAt"].is_string());
    assert_eq!(
        server
            .client(&bob)
            .code(edit, json!({"m": id, "t": ""}))
            .await?,
        "BAD_USER_INPUT"
    );

    assert_eq!(
        server
            .client(&alice)
            .code(retract, json!({"m": id}))
            .await?,
        "FORBIDDEN"
    );
    let data = server.client(&bob).ok(retract, json!({"m": id})).await?;
    assert_eq!(
        data["retractMessage"],
        json!({"content": "", "retracted": true, "data": null})
    );
    // Everyone sees the tombstone; it cannot be edited back.
    let seen = server
        .client(&alice)
        .ok(
            "query($m: ID!) { message(id: $m) { content retracted } }",
            json!({"m": id}),
        )
        .await?;
    assert_eq!(seen["message"], json!({"content": "", "retracted": true}));
    assert_eq!(
        server
            .client(&bob)
            .code(edit, json!({"m": id, "t": "back"}))
            .await?,
        "CONFLICT"
    );

    // Only OWNER/ADMIN/MODERATOR delete; the sender as a plain MEMBER cannot.
    let other = send(&server, &bob, &chat, "to delete").await?;
    assert_eq!(
        server
            .client(&bob)
            .code(delete, json!({"m": other}))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .client(&alice)
            .ok(delete, json!({"m": other}))
            .await?["deleteMessage"],
        json!(true)
    );
    // A deleted message is gone: its lookup is null.
    assert_absent(
        &server.client(&alice),
        "query($m: ID!) { message(id: $m) { id } }",
        json!({"m": other}),
    )
    .await?;
    // The chat's last message falls back to the newest remaining one.
    let data = server
        .client(&alice)
        .ok(
            "query($c: ID!) { chat(id: $c) { lastMessage { id } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(str_at(&data, "/chat/lastMessage/id")?, id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_after_the_window_are_refused_unless_the_window_is_unlimited() -> TestResult {
    let edit = "mutation($m: ID!, $t: String!) { editMessage(id: $m, content: $t) { content } }";
    let server = TestServer::start_with(&["--edit-window-secs", "60"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let recent = send(&server, &alice, &chat, "recent").await?;
    let old = send(&server, &alice, &chat, "old").await?;
    backdate(&server, &old, 61).await?;
    server
        .client(&alice)
        .ok(edit, json!({"m": recent, "t": "v2"}))
        .await?;
    assert_eq!(
        server
            .client(&alice)
            .code(edit, json!({"m": old, "t": "v2"}))
            .await?,
        "FORBIDDEN"
    );

    let unlimited = TestServer::start_with(&["--edit-window-secs", "0"]).await?;
    let alice = unlimited.user("alice").await?;
    let chat = group(&unlimited, &alice, &[]).await?;
    let old = send(&unlimited, &alice, &chat, "old").await?;
    backdate(&unlimited, &old, 365 * 24 * 3600).await?;
    unlimited
        .client(&alice)
        .ok(edit, json!({"m": old, "t": "v2"}))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_message_is_answered_exactly_like_a_missing_one() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let eve = server.user("eve").await?;
    let secret_chat = group(&server, &alice, &[]).await?;
    let foreign = send(&server, &alice, &secret_chat, "secret").await?;
    let own_chat = group(&server, &eve, &[]).await?;
    // A well-formed message id that names nothing.
    let missing = {
        use base64::Engine;
        let text =
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&foreign)?)?;
        let key: i64 = text.trim_start_matches("Message:").parse()?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Message:{}", key + 1000))
    };
    let as_eve = server.client(&eve);
    let operations = [
        "mutation($m: ID!) { editMessage(id: $m, content: \"x\") { id } }",
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        "mutation($m: ID!) { deleteMessage(id: $m) }",
        "mutation($m: ID!) { markMessagesRead(messageIds: [$m]) }",
        "mutation($m: ID!, $c: ID!) { markRead(chatId: $c, upToMessageId: $m) { lastReadMessageId } }",
        "mutation($m: ID!, $c: ID!) { sendMessage(input: {chatId: $c, content: \"re\", parentId: $m}) { id } }",
    ];
    for query in operations {
        // `$c` only where the operation declares it (an unused variable is invalid).
        let variables = |m: &str| match query.contains("$c:") {
            true => json!({ "m": m, "c": own_chat }),
            false => json!({ "m": m }),
        };
        let to_foreign = as_eve.send(query, variables(&foreign)).await?;
        let to_missing = as_eve.send(query, variables(&missing)).await?;
        assert_eq!(to_foreign.codes(), ["NOT_FOUND"], "{query}");
        assert_eq!(
            (to_foreign.status, &to_foreign.errors()[0]["message"]),
            (to_missing.status, &to_missing.errors()[0]["message"]),
            "{query}"
        );
    }
    // And `node` gives null for both.
    for id in [&foreign, &missing] {
        let data = as_eve
            .ok(
                "query($id: ID!) { node(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await?;
        assert_eq!(data["node"], Value::Null);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_keep_the_previous_content_until_a_retraction() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, mallory) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("mallory").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let id = send(&server, &bob, &chat, "first").await?;
    let b = server.client(&bob);
    let edit = "mutation($m: ID!, $t: String!) { editMessage(id: $m, content: $t) { editedAt } }";
    let history = "query($m: ID!, $last: Int) { message(id: $m) {
      content createdAt edits(last: $last) { content writtenAt replacedAt }
    } }";

    let none = server.client(&alice).ok(history, json!({"m": id})).await?;
    assert_eq!(none["message"]["edits"], json!([]));
    let e1 = b.ok(edit, json!({"m": id, "t": "second"})).await?;
    // Saving the same text again is no edit: no new version, the same `editedAt`.
    let same = b.ok(edit, json!({"m": id, "t": "second"})).await?;
    assert_eq!(
        same["editMessage"]["editedAt"],
        e1["editMessage"]["editedAt"]
    );
    let e2 = b.ok(edit, json!({"m": id, "t": "third"})).await?;

    // Any member sees the versions, oldest first, each with when it was written and replaced.
    let data = server.client(&alice).ok(history, json!({"m": id})).await?;
    let message = &data["message"];
    assert_eq!(message["content"], "third");
    let edits = message["edits"].as_array().ok_or("no edits")?;
    let contents: Vec<&str> = edits.iter().filter_map(|e| e["content"].as_str()).collect();
    assert_eq!(contents, ["first", "second"]);
    assert_eq!(edits[0]["writtenAt"], message["createdAt"]);
    assert_eq!(edits[0]["replacedAt"], e1["editMessage"]["editedAt"]);
    assert_eq!(edits[1]["writtenAt"], e1["editMessage"]["editedAt"]);
    assert_eq!(edits[1]["replacedAt"], e2["editMessage"]["editedAt"]);
    // `last` takes the newest versions.
    let data = b.ok(history, json!({"m": id, "last": 1})).await?;
    assert_eq!(data["message"]["edits"][0]["content"], "second");
    assert_eq!(data["message"]["edits"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        b.code(history, json!({"m": id, "last": -1})).await?,
        "BAD_USER_INPUT"
    );
    // Outsiders see no message at all.
    assert_absent(&server.client(&mallory), history, json!({"m": id})).await?;

    // A retraction takes the history with it.
    b.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": id}),
    )
    .await?;
    let data = server.client(&alice).ok(history, json!({"m": id})).await?;
    assert_eq!(data["message"]["edits"], json!([]));
    Ok(())
}
