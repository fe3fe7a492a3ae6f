//! `importMessages` (admin key): messages another system already has, stored with their
//! own senders and times, all or none, once per `clientId`, seen live like sends.

use serde_json::{Value, json};

use crate::common::ws::WsClient;
use crate::common::*;

const IMPORT: &str = "mutation($c: ID!, $m: [ImportedMessageInput!]!) {
  importMessages(chatId: $c, messages: $m) { id content createdAt role clientId sender { username } }
}";

fn imported(sender: &TestUser, at: &str, content: &str, client_id: &str) -> Value {
    json!({"senderId": sender.id, "createdAt": at, "content": content, "clientId": client_id})
}

async fn count(server: &TestServer, user: &TestUser, chat: &str) -> TestResult<usize> {
    let page = server
        .client(user)
        .ok(
            "query($c: ID!) { messages(chatId: $c, first: 100) { nodes { id } } }",
            json!({"c": chat}),
        )
        .await?;
    Ok(page["messages"]["nodes"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_messages_keep_sender_and_time_arrive_live_and_only_once() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let chat = group(&server, &alice, &[&bob, &carol]).await?;

    let mut ws = WsClient::user(&server, &carol).await?;
    ws.subscribe(
        "1",
        "subscription($c: ID!) { chatEvents(chatId: $c) { __typename
           ... on MessageAdded { message { content createdAt sender { username } } } } }",
        json!({"c": chat}),
    )
    .await?;
    ws.until_live("1", async |m: String| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;

    let batch = json!([
        imported(
            &alice,
            "2024-05-01T08:00:00Z",
            "from the old system",
            "legacy-1"
        ),
        imported(
            &bob,
            "2024-05-01T08:01:30.250Z",
            "a reply there",
            "legacy-2"
        ),
    ]);
    let stored = server
        .admin()
        .ok(IMPORT, json!({"c": chat, "m": batch}))
        .await?;
    let messages = &stored["importMessages"];
    assert_eq!(messages[0]["createdAt"], "2024-05-01T08:00:00.000Z");
    assert_eq!(messages[0]["sender"]["username"], "alice");
    assert_eq!(messages[0]["clientId"], "legacy-1");
    assert_eq!(messages[1]["createdAt"], "2024-05-01T08:01:30.250Z");
    assert_eq!(messages[1]["sender"]["username"], "bob");
    assert_eq!(messages[1]["role"], "USER");

    // Live, in order, as their senders' messages with their times.
    for (expected, who, at) in [
        ("from the old system", "alice", "2024-05-01T08:00:00.000Z"),
        ("a reply there", "bob", "2024-05-01T08:01:30.250Z"),
    ] {
        let event = ws.next("1").await?;
        let message = &event["chatEvents"]["message"];
        assert_eq!(message["content"], expected, "{event}");
        assert_eq!(message["sender"]["username"], who);
        assert_eq!(message["createdAt"], at);
    }
    // The chat's activity does not go back to their times (sessions and the chat list go
    // by it), and its last message is the last stored.
    let state = server
        .client(&carol)
        .ok(
            "query($c: ID!) { chat(id: $c) { lastActivityAt lastMessage { content } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(state["chat"]["lastMessage"]["content"], "a reply there");
    let activity = str_at(&state, "/chat/lastActivityAt")?;
    assert!(activity.as_str() > "2025", "{activity}");
    // Unread for carol (the probe and the two), not for their senders.
    let unread = "query($c: ID!) { chat(id: $c) { unreadCount } }";
    let carol_unread = server.client(&carol).ok(unread, json!({"c": chat})).await?;
    assert_eq!(carol_unread["chat"]["unreadCount"], 3);

    // The same sync again: the same messages, nothing new, no event.
    let before = count(&server, &alice, &chat).await?;
    let again = server
        .admin()
        .ok(IMPORT, json!({"c": chat, "m": batch}))
        .await?;
    assert_eq!(
        strings_at(&again, "/importMessages", "id"),
        strings_at(&stored, "/importMessages", "id")
    );
    assert_eq!(count(&server, &alice, &chat).await?, before);
    let marker = send(&server, &alice, &chat, "after the repeat").await?;
    let event = ws.next("1").await?;
    assert_eq!(
        event["chatEvents"]["message"]["content"], "after the repeat",
        "the repeated import published nothing ({marker}): {event}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_is_for_the_admin_key_and_all_or_nothing() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let outsider = server.user("outsider").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let one = json!([imported(&alice, "2024-05-01T08:00:00Z", "hi", "x-1")]);

    // A user's token may not speak for others.
    let code = server
        .client(&alice)
        .code(IMPORT, json!({"c": chat, "m": one}))
        .await?;
    assert_eq!(code, "FORBIDDEN");

    // One bad message (a sender outside the chat) and none is stored.
    let mixed = json!([
        imported(&alice, "2024-05-01T08:00:00Z", "fine", "x-2"),
        imported(&outsider, "2024-05-01T08:00:01Z", "not a member", "x-3"),
    ]);
    let code = server
        .admin()
        .code(IMPORT, json!({"c": chat, "m": mixed}))
        .await?;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(count(&server, &alice, &chat).await?, 0);

    // A person's words are not the model's; a time ahead of the clock; no clientId;
    // too many at once.
    let mut as_assistant = imported(&bob, "2024-05-01T08:00:00Z", "as the model", "x-4");
    as_assistant["role"] = json!("ASSISTANT");
    let code = server
        .admin()
        .code(IMPORT, json!({"c": chat, "m": [as_assistant]}))
        .await?;
    assert_eq!(code, "FORBIDDEN");
    let future = json!([imported(&alice, "2999-01-01T00:00:00Z", "later", "x-5")]);
    let code = server
        .admin()
        .code(IMPORT, json!({"c": chat, "m": future}))
        .await?;
    assert_eq!(code, "BAD_USER_INPUT");
    let code = server
        .admin()
        .code(
            IMPORT,
            json!({"c": chat, "m": [{"senderId": alice.id, "createdAt": "2024-05-01T08:00:00Z", "content": "x"}]}),
        )
        .await?;
    assert_eq!(code, "BAD_USER_INPUT");
    let many: Vec<Value> = (0..101)
        .map(|i| imported(&alice, "2024-05-01T08:00:00Z", "many", &format!("m-{i}")))
        .collect();
    let code = server
        .admin()
        .code(IMPORT, json!({"c": chat, "m": many}))
        .await?;
    assert_eq!(code, "LIMIT_EXCEEDED");
    assert_eq!(count(&server, &alice, &chat).await?, 0);

    // A hundred is fine, and a chat that does not exist is not found.
    let hundred: Vec<Value> = (0..100)
        .map(|i| imported(&alice, "2024-05-01T08:00:00Z", "many", &format!("m-{i}")))
        .collect();
    server
        .admin()
        .ok(IMPORT, json!({"c": chat, "m": hundred}))
        .await?;
    assert_eq!(count(&server, &alice, &chat).await?, 100);
    let gone = group(&server, &alice, &[&bob]).await?;
    server
        .client(&alice)
        .ok(
            "mutation($c: ID!) { deleteChat(id: $c) }",
            json!({"c": gone}),
        )
        .await?;
    let code = server
        .admin()
        .code(IMPORT, json!({"c": gone, "m": one}))
        .await?;
    assert_eq!(code, "NOT_FOUND");
    Ok(())
}
