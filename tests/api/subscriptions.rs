//! Live events over real WebSockets: every event kind, resume without gaps, lag, auth and
//! limits, streaming replies, the inbox, the legacy protocol and several instances.

use serde_json::{Value, json};

use crate::common::ws::WsClient;
use crate::common::*;

const CHAT_EVENTS: &str = "subscription($c: ID!, $after: String) {
  chatEvents(chatId: $c, after: $after) {
    __typename
    ... on MessageAdded { cursor message { content sender { username } } }
    ... on MessageEdited { message { content streamState } }
    ... on MessageRetracted { message { retracted content } }
    ... on MessageDeleted { messageId }
    ... on MessageDelta { delta offset }
    ... on ReadReceipt { user { username } lastReadMessageId }
    ... on DeliveryReceipt { user { username } lastDeliveredMessageId }
    ... on Typing { user { username } typing }
    ... on MemberJoined { user { username } member { role } }
    ... on MemberLeft { user { username } }
    ... on MemberUpdated { role }
    ... on ChatUpdated { chat { name } }
    ... on ChatDeleted { chatId }
    ... on ResyncRequired { lastCursor }
  }
}";

fn typename(event: &Value) -> &str {
    event["chatEvents"]["__typename"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn members_receive_every_kind_of_chat_event_in_order() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("1", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("1", async |m| {
        send(&server, &bob, &chat, &m).await.map(drop)
    })
    .await?;
    let b = server.client(&bob);
    let a = server.client(&alice);
    b.ok(
        "mutation($c: ID!) { setTyping(chatId: $c, typing: true) }",
        json!({"c": chat}),
    )
    .await?;
    let m = send(&server, &bob, &chat, "hello").await?;
    b.ok(
        "mutation($m: ID!) { editMessage(id: $m, content: \"hello!\") { id } }",
        json!({"m": m}),
    )
    .await?;
    a.ok(
        "mutation($c: ID!, $m: ID!) { markDelivered(chatId: $c, upToMessageId: $m) { role } }",
        json!({"c": chat, "m": m}),
    )
    .await?;
    let r = send(&server, &bob, &chat, "oops").await?;
    b.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": r}),
    )
    .await?;
    a.ok(
        "mutation($c: ID!, $m: ID) { markRead(chatId: $c, upToMessageId: $m) { role } }",
        json!({"c": chat, "m": r}),
    )
    .await?;
    a.ok(
        "mutation($m: ID!) { deleteMessage(id: $m) }",
        json!({"m": m}),
    )
    .await?;
    a.ok(
        "mutation($c: ID!, $u: [ID!]!) { addMembers(chatId: $c, userIds: $u) { role } }",
        json!({"c": chat, "u": [carol.id]}),
    )
    .await?;
    a.ok("mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: MODERATOR) { role } }", json!({"c": chat, "u": carol.id})).await?;
    a.ok(
        "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }",
        json!({"c": chat, "u": carol.id}),
    )
    .await?;
    a.ok(
        "mutation($c: ID!) { updateChat(id: $c, input: {name: \"renamed\"}) { id } }",
        json!({"c": chat}),
    )
    .await?;

    let mut seen = Vec::new();
    loop {
        let event = ws.next("1").await?;
        seen.push(event.clone());
        if typename(&event) == "ChatUpdated" {
            break;
        }
    }
    // Deleted only now: events load their objects at delivery, so the renamed chat must
    // still exist when ChatUpdated is delivered.
    a.ok(
        "mutation($c: ID!) { deleteChat(id: $c) }",
        json!({"c": chat}),
    )
    .await?;
    seen.push(ws.next("1").await?);
    let kinds: Vec<&str> = seen.iter().map(typename).collect();
    assert_eq!(
        kinds,
        vec![
            "Typing",
            "MessageAdded",
            "MessageEdited",
            "DeliveryReceipt",
            "MessageAdded",
            "MessageRetracted",
            "ReadReceipt",
            "DeliveryReceipt",
            "MessageDeleted",
            "MemberJoined",
            "MemberUpdated",
            "MemberLeft",
            "ChatUpdated",
            "ChatDeleted"
        ],
        "{seen:?}"
    );
    assert_eq!(seen[0]["chatEvents"]["user"]["username"], "bob");
    assert_eq!(seen[3]["chatEvents"]["user"]["username"], "alice");
    // Events carry ids and load the message as it is when delivered: by then the edit
    // may already have happened.
    let added = &seen[1]["chatEvents"]["message"];
    assert!(
        added["content"] == "hello" || added["content"] == "hello!",
        "{added}"
    );
    assert_eq!(added["sender"]["username"], "bob");
    assert_eq!(seen[2]["chatEvents"]["message"]["content"], "hello!");
    assert_eq!(
        seen[5]["chatEvents"]["message"],
        json!({"retracted": true, "content": ""})
    );
    // Objects load as they are at delivery (Carol may be gone by then); the role change
    // itself travels with the event.
    assert_eq!(seen[9]["chatEvents"]["user"]["username"], "carol");
    assert_eq!(seen[10]["chatEvents"]["role"], "MODERATOR");
    assert_eq!(seen[12]["chatEvents"]["chat"]["name"], "renamed");
    // The chat is gone, so is the feed.
    assert_eq!(ws.recv().await?, json!({"type": "complete", "id": "1"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn non_members_can_neither_subscribe_nor_overhear() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, mallory) = (server.user("alice").await?, server.user("mallory").await?);
    let chat = group(&server, &alice, &[]).await?;
    let own = group(&server, &mallory, &[]).await?;
    let mut ws = WsClient::user(&server, &mallory).await?;
    ws.subscribe("1", CHAT_EVENTS, json!({"c": chat})).await?;
    // Resolver errors travel in a `next` payload; then the operation completes.
    let refused = ws.recv().await?;
    assert_eq!(
        (refused["type"].as_str(), refused["id"].as_str()),
        (Some("next"), Some("1")),
        "{refused}"
    );
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );
    assert_eq!(ws.recv().await?, json!({"type": "complete", "id": "1"}));

    let mut inbox = WsClient::user(&server, &mallory).await?;
    inbox
        .subscribe(
            "2",
            "subscription { myEvents { __typename ... on InboxMessage { message { content } } } }",
            json!({}),
        )
        .await?;
    inbox
        .until_live("2", async |m| {
            send(&server, &mallory, &own, &m).await.map(drop)
        })
        .await?;
    let mut feed = WsClient::user(&server, &mallory).await?;
    feed.subscribe("3", CHAT_EVENTS, json!({"c": own})).await?;
    feed.until_live("3", async |m| {
        send(&server, &mallory, &own, &m).await.map(drop)
    })
    .await?;
    // Drain the inbox's copies of the second round of probes, up to the last one.
    while !inbox.next("2").await?.to_string().contains("probe") {}
    send(&server, &alice, &chat, "secret").await?;
    send(&server, &mallory, &own, "mine").await?;
    // The first event after the secret on both feeds is Mallory's own message.
    let mut seen = Vec::new();
    loop {
        let event = inbox.next("2").await?.to_string();
        assert!(!event.contains("secret"), "{event}");
        if event.contains("mine") {
            break;
        }
        seen.push(event);
    }
    assert!(seen.iter().all(|e| e.contains("probe")), "{seen:?}");
    let event = feed.next("3").await?.to_string();
    assert!(event.contains("mine"), "{event}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_or_missing_credentials_close_with_the_protocol_codes() -> TestResult {
    let server = TestServer::start_with(&["--ws-init-timeout-secs", "1"]).await?;
    let alice = server.user("alice").await?;

    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.send(json!({"type": "connection_init", "payload": {}}))
        .await?;
    assert_eq!(ws.closed().await?.code, 4403);

    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.send(json!({"type": "connection_init", "payload": {"authorization": "Bearer forged"}}))
        .await?;
    assert_eq!(ws.closed().await?.code, 4403);

    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.subscribe("1", "subscription { myEvents { __typename } }", json!({}))
        .await?;
    assert_eq!(ws.closed().await?.code, 4401);

    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    assert_eq!(
        ws.closed().await?.code,
        4408,
        "no connection_init within the timeout"
    );

    let mut ws = WsClient::user(&server, &alice).await?;
    ws.send(json!({"type": "connection_init", "payload": {"token": alice.token}}))
        .await?;
    assert_eq!(ws.closed().await?.code, 4429);

    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("x", "subscription { myEvents { __typename } }", json!({}))
        .await?;
    ws.subscribe("x", "subscription { myEvents { __typename } }", json!({}))
        .await?;
    assert_eq!(ws.closed().await?.code, 4409);

    let mut ws = WsClient::connect(&server, "graphql-ws").await?;
    ws.send(json!({"type": "connection_init", "payload": {"token": "forged"}}))
        .await?;
    let error = ws.recv().await?;
    assert_eq!(error["type"], "connection_error");
    assert_eq!(ws.closed().await?.code, 4403);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_ends_the_connection() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let data = server
        .admin()
        .ok(
            "mutation($u: ID!) { issueToken(userId: $u, ttlSeconds: 3) }",
            json!({"u": alice.id}),
        )
        .await?;
    // Expiry has one-second granularity: 3 s leaves 2–3 s to connect before it lapses.
    let short = TestUser {
        token: str_at(&data, "/issueToken")?,
        ..alice
    };
    let mut ws = WsClient::user(&server, &short).await?;
    ws.subscribe("1", "subscription { myEvents { __typename } }", json!({}))
        .await?;
    let closed = ws.closed().await?;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4401, "token expired")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_after_a_cursor_replays_then_goes_live_without_gap_or_duplicate() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut ids = Vec::new();
    for i in 1..=100 {
        ids.push(send(&server, &alice, &chat, &format!("{i}")).await?);
    }
    let page = server
        .client(&bob)
        .ok(
            "query($c: ID!) { messages(chatId: $c, first: 40) { pageInfo { endCursor } } }",
            json!({"c": chat}),
        )
        .await?;
    let fortieth = str_at(&page, "/messages/pageInfo/endCursor")?;

    // Keep sending while the replay runs.
    let writer = {
        let client = server.client(&alice);
        let chat = chat.clone();
        tokio::spawn(async move {
            for i in 101..=150 {
                client
                    .ok(
                        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }",
                        json!({"c": chat, "t": format!("{i}")}),
                    )
                    .await?;
            }
            TestResult::Ok(())
        })
    };
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe("r", CHAT_EVENTS, json!({"c": chat, "after": fortieth}))
        .await?;
    let mut received = Vec::new();
    while received.len() < 110 {
        let event = ws.next("r").await?;
        assert_eq!(typename(&event), "MessageAdded", "{event}");
        let content = str_at(&event, "/chatEvents/message/content")?;
        received.push(content.parse::<u32>()?);
    }
    writer.await??;
    let expected: Vec<u32> = (41..=150).collect();
    assert_eq!(received, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_falls_behind_is_told_to_resync_and_the_feed_goes_on() -> TestResult {
    let server = TestServer::start_with(&["--event-buffer", "4"]).await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe("1", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("1", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;
    send(&server, &alice, &chat, "before").await?;
    let first = ws.next("1").await?;
    assert_eq!(str_at(&first, "/chatEvents/message/content")?, "before");

    // A burst far larger than the buffer, published faster than any subscriber can read.
    let chat_key =
        chatql::vocabulary::ids::ChatId::from_global(&chat).map_err(|e| e.to_string())?;
    let alice_key =
        chatql::vocabulary::ids::UserId::from_global(&alice.id).map_err(|e| e.to_string())?;
    for i in 0..2000 {
        server
            .app
            .broker()
            .publish_typing(chat_key, alice_key, i % 2 == 0);
    }
    send(&server, &alice, &chat, "after").await?;

    let mut resync = None;
    loop {
        let event = ws.next("1").await?;
        match typename(&event) {
            "ResyncRequired" => resync = Some(event),
            "MessageAdded" => {
                assert_eq!(str_at(&event, "/chatEvents/message/content")?, "after");
                break;
            }
            _ => {}
        }
    }
    let resync = resync.ok_or("no ResyncRequired after the burst")?;
    assert_eq!(
        resync["chatEvents"]["lastCursor"], first["chatEvents"]["cursor"],
        "the resync cursor points at the last message delivered"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_reply_arrives_as_ordered_deltas_and_is_stored_whole() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bot = server.bot("helper").await?;
    let chat = group(&server, &alice, &[&bot]).await?;
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("s", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("s", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;

    let b = server.client(&bot);
    let started = b
        .ok(
            "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"\", stream: true}) { id role streamState } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(started["sendMessage"]["role"], "ASSISTANT");
    assert_eq!(started["sendMessage"]["streamState"], "STREAMING");
    let id = str_at(&started, "/sendMessage/id")?;
    let deltas: Vec<String> = (0..20).map(|i| format!("tok{i} ")).collect();
    let append =
        "mutation($m: ID!, $d: String!) { appendMessageContent(id: $m, delta: $d) { id } }";
    assert_eq!(
        server
            .client(&alice)
            .code(append, json!({"m": id, "d": "x"}))
            .await?,
        "FORBIDDEN"
    );
    for delta in &deltas {
        b.ok(append, json!({"m": id, "d": delta})).await?;
    }
    let finish =
        "mutation($m: ID!) { finishMessage(id: $m, state: COMPLETE) { content streamState } }";
    let done = b.ok(finish, json!({"m": id})).await?;
    let whole: String = deltas.concat();
    assert_eq!(str_at(&done, "/finishMessage/content")?, whole);
    assert_eq!(
        b.code(append, json!({"m": id, "d": "late"})).await?,
        "CONFLICT"
    );

    assert_eq!(typename(&ws.next("s").await?), "MessageAdded");
    let mut offset = 0;
    let mut streamed = String::new();
    for delta in &deltas {
        let event = ws.next("s").await?;
        assert_eq!(typename(&event), "MessageDelta", "{event}");
        assert_eq!(event["chatEvents"]["offset"], offset);
        assert_eq!(&str_at(&event, "/chatEvents/delta")?, delta);
        streamed.push_str(delta);
        offset += delta.chars().count();
    }
    let end = ws.next("s").await?;
    assert_eq!(
        end["chatEvents"]["message"],
        json!({"content": whole, "streamState": "COMPLETE"})
    );
    assert_eq!(streamed, whole);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbox_follows_new_messages_unread_counts_and_membership() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe(
        "i",
        "subscription { myEvents { __typename
            ... on InboxMessage { unreadCount message { content } }
            ... on ChatAdded { chat { name } }
            ... on ChatRemoved { chatId }
            ... on UnreadCountChanged { unreadCount } } }",
        json!({}),
    )
    .await?;
    let own = group(&server, &bob, &[]).await?;
    ws.next("i").await?; // ChatAdded for his own chat, if the feed was already live
    ws.until_live("i", async |m| send(&server, &bob, &own, &m).await.map(drop))
        .await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let added = ws.next("i").await?;
    assert_eq!(
        added["myEvents"],
        json!({"__typename": "ChatAdded", "chat": {"name": "team"}})
    );
    send(&server, &alice, &chat, "one").await?;
    send(&server, &alice, &chat, "two").await?;
    let first = ws.next("i").await?;
    let second = ws.next("i").await?;
    assert_eq!(first["myEvents"]["message"]["content"], "one");
    assert_eq!(second["myEvents"]["unreadCount"], 2);
    // Reading on another device updates the count here.
    server
        .client(&bob)
        .ok(
            "mutation($c: ID!) { markRead(chatId: $c) { role } }",
            json!({"c": chat}),
        )
        .await?;
    let read = ws.next("i").await?;
    assert_eq!(
        read["myEvents"],
        json!({"__typename": "UnreadCountChanged", "unreadCount": 0})
    );
    remove_member(&server, &alice, &chat, &bob).await?;
    let removed = ws.next("i").await?;
    assert_eq!(
        removed["myEvents"],
        json!({"__typename": "ChatRemoved", "chatId": chat})
    );
    // Messages in a chat Bob left no longer reach him.
    send(&server, &alice, &chat, "gone").await?;
    send(&server, &bob, &own, "still mine").await?;
    let next = ws.next("i").await?;
    assert_eq!(
        next["myEvents"]["message"]["content"], "still mine",
        "{next}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_member_gets_their_own_member_left_and_the_feed_ends() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe("1", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("1", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;
    remove_member(&server, &alice, &chat, &bob).await?;
    let left = ws.next("1").await?;
    assert_eq!(
        left["chatEvents"],
        json!({"__typename": "MemberLeft", "user": {"username": "bob"}})
    );
    assert_eq!(ws.recv().await?, json!({"type": "complete", "id": "1"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_legacy_protocol_carries_a_subscription_end_to_end() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let mut ws = WsClient::connect(&server, "graphql-ws").await?;
    ws.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", alice.token)}}))
        .await?;
    assert_eq!(ws.recv().await?["type"], "connection_ack");
    ws.send(json!({"type": "start", "id": "7", "payload": {
        "query": "subscription($c: ID!) { messageAdded(chatId: $c) { content } }",
        "variables": {"c": chat}}}))
        .await?;
    // Resend until the subscription is live (the protocol has no ready signal).
    let mut data = json!(null);
    for _ in 0..50 {
        send(&server, &alice, &chat, "legacy works").await?;
        if let Ok(message) =
            tokio::time::timeout(std::time::Duration::from_millis(200), ws.recv()).await
        {
            data = message?;
            break;
        }
    }
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["id"], "7");
    assert_eq!(
        data["payload"]["data"]["messageAdded"]["content"],
        "legacy works"
    );
    ws.send(json!({"type": "stop", "id": "7"})).await?;
    assert_eq!(ws.recv().await?, json!({"type": "complete", "id": "7"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn per_user_caps_and_presence() -> TestResult {
    let server = TestServer::start_with(&[
        "--max-subscriptions-per-user",
        "2",
        "--max-sockets-per-user",
        "2",
    ])
    .await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let online = "query($u: ID!) { user(id: $u) { online lastSeenAt } }";
    let before = server
        .client(&bob)
        .ok(online, json!({"u": alice.id}))
        .await?;
    assert_eq!(before["user"], json!({"online": false, "lastSeenAt": null}));

    let mut ws = WsClient::user(&server, &alice).await?;
    let now = server
        .client(&bob)
        .ok(online, json!({"u": alice.id}))
        .await?;
    assert_eq!(now["user"]["online"], true);
    assert!(now["user"]["lastSeenAt"].is_string());

    for id in ["1", "2", "3"] {
        ws.subscribe(id, "subscription { myEvents { __typename } }", json!({}))
            .await?;
    }
    let refused = ws.recv().await?;
    assert_eq!(
        (refused["type"].as_str(), refused["id"].as_str()),
        (Some("error"), Some("3"))
    );
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "LIMIT_EXCEEDED"
    );
    // Completing one frees a slot.
    ws.send(json!({"type": "complete", "id": "1"})).await?;
    ws.subscribe("4", "subscription { myEvents { __typename } }", json!({}))
        .await?;
    let _second = WsClient::user(&server, &alice).await?;
    let mut third = WsClient::connect(&server, "graphql-transport-ws").await?;
    third
        .send(json!({"type": "connection_init", "payload": {"token": alice.token}}))
        .await?;
    assert_eq!(third.closed().await?.code, 4429);
    Ok(())
}

/// Two server instances on one PostgreSQL database: Alice (on A) owns a chat with Bob,
/// whose `chatEvents` subscription "x" on B is live. Returns both servers (B must stay up),
/// Alice, the chat and Bob's socket.
async fn live_across_instances() -> TestResult<(TestServer, TestServer, TestUser, String, WsClient)>
{
    let a = TestServer::start().await?;
    let b = a.sibling(&[]).await?;
    let (alice, bob) = (a.user("alice").await?, a.user("bob").await?);
    let chat = group(&a, &alice, &[&bob]).await?;
    let mut ws = WsClient::user(&b, &bob).await?;
    ws.subscribe("x", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("x", async |m| send(&a, &alice, &chat, &m).await.map(drop))
        .await?;
    Ok((a, b, alice, chat, ws))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test runs it there (CHATQL_TEST_BACKEND=postgres)"]
async fn a_message_sent_through_one_instance_reaches_a_subscriber_on_another() -> TestResult {
    // One SQLite file serves one process; instances share events through PostgreSQL.
    require_postgres()?;
    let (a, _b, alice, chat, mut ws) = live_across_instances().await?;
    let mut expected = Vec::new();
    for i in 0..20 {
        let text = format!("via A {i}");
        send(&a, &alice, &chat, &text).await?;
        expected.push(text);
    }
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let event = ws.next("x").await?;
        received.push(str_at(&event, "/chatEvents/message/content")?);
    }
    assert_eq!(received, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test runs it there (CHATQL_TEST_BACKEND=postgres)"]
async fn a_dropped_listener_reconnects_and_subscribers_are_told_to_resync() -> TestResult {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    // The cross-instance listener exists only with PostgreSQL.
    require_postgres()?;
    let (a, _b, alice, chat, mut ws) = live_across_instances().await?;

    // Kill every LISTEN connection of this database, as a network blip would.
    let mut admin = AsyncPgConnection::establish(&a.db.url).await?;
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .await?;
    let resync = ws.next("x").await?;
    assert_eq!(typename(&resync), "ResyncRequired", "{resync}");
    // After reconnecting, events cross instances again.
    ws.until_live("x", async |m| send(&a, &alice, &chat, &m).await.map(drop))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graphql_ws_client_itself_authenticates_queries_and_follows_a_chat() -> TestResult {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !js.join("node_modules/graphql-ws").exists() {
        return Err("tests/js/node_modules is missing: run `npm ci --prefix tests/js` (./scripts/test does)".into());
    }
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let smoke = tokio::process::Command::new("node")
        .arg(js.join("ws-smoke.mjs"))
        .args([server.ws_url(), alice.token.clone()])
        .output()
        .await?;
    assert!(
        smoke.status.success(),
        "{}{}",
        String::from_utf8_lossy(&smoke.stdout),
        String::from_utf8_lossy(&smoke.stderr)
    );
    let chat_run = tokio::process::Command::new("node")
        .arg(js.join("ws-chat.mjs"))
        .args([
            server.ws_url(),
            server.url(),
            alice.token.clone(),
            bob.token.clone(),
            chat,
        ])
        .output()
        .await?;
    let out = String::from_utf8_lossy(&chat_run.stdout);
    assert!(
        chat_run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&chat_run.stderr)
    );
    assert!(
        out.contains("ws-chat: ok: one, two, three, four, five"),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_expires_on_its_own_and_idle_sockets_get_pings() -> TestResult {
    let server =
        TestServer::start_with(&["--typing-ttl-secs", "1", "--ws-keepalive-secs", "1"]).await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("t", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("t", async |m| {
        send(&server, &bob, &chat, &m).await.map(drop)
    })
    .await?;
    let typing = "mutation($c: ID!) { setTyping(chatId: $c, typing: true) }";
    server.client(&bob).ok(typing, json!({"c": chat})).await?;
    let started = ws.next("t").await?;
    assert_eq!(
        started["chatEvents"],
        json!({"__typename": "Typing", "user": {"username": "bob"}, "typing": true})
    );
    // No refresh: the server itself announces the stop.
    let stopped = ws.next("t").await?;
    assert_eq!(stopped["chatEvents"]["typing"], false);

    // An idle socket gets keep-alive pings (answered by the test client).
    let mut idle = WsClient::connect(&server, "graphql-transport-ws").await?;
    idle.send(json!({"type": "connection_init", "payload": {"token": bob.token}}))
        .await?;
    assert_eq!(idle.recv_raw().await?["type"], "connection_ack");
    assert_eq!(idle.recv_raw().await?, json!({"type": "ping"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_a_socket_releases_everything_it_held() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let baseline = server.app.broker().receiver_count();
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe(
        "2",
        "subscription { myEvents { __typename ... on InboxMessage { message { content } } } }",
        json!({}),
    )
    .await?;
    ws.until_live("2", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;
    ws.subscribe("1", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("1", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;
    assert_eq!(server.app.broker().receiver_count(), baseline + 2);
    let key = chatql::vocabulary::ids::UserId::from_global(&alice.id)
        .map_err(|e| e.to_string())?
        .0;
    assert!(server.app.presence().is_online(key));
    drop(ws);
    // The server notices the closed socket asynchronously: wait (bounded) for the release.
    let released = async {
        while server.app.broker().receiver_count() != baseline
            || server.app.presence().sockets.count(key) != 0
            || server.app.presence().subscriptions.count(key) != 0
        {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(crate::common::ws::WAIT, released)
        .await
        .map_err(|_| "subscriptions were not released after the socket closed")?;
    Ok(())
}

/// A `chatql serve` OS process on a free port, killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    base: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    async fn start(database_url: &str, data_dir: &std::path::Path) -> TestResult<Self> {
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
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let process = Self {
            child,
            base: format!("127.0.0.1:{port}"),
        };
        // Ready when /readyz answers (bounded).
        let ready = format!("http://{}/readyz", process.base);
        for _ in 0..200 {
            if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
                return Ok(process);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err("chatql serve did not become ready".into())
    }

    fn http(&self) -> String {
        format!("http://{}/graphql", self.base)
    }

    fn ws(&self) -> String {
        format!("ws://{}/graphql", self.base)
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test runs it there (CHATQL_TEST_BACKEND=postgres)"]
async fn two_server_processes_on_one_postgresql_share_live_events() -> TestResult {
    require_postgres()?;
    let db = TestDb::new().await?;
    let a = ServerProcess::start(&db.url, &db.dir.path().join("a")).await?;
    let b = ServerProcess::start(&db.url, &db.dir.path().join("b")).await?;
    let admin = Client::new(a.http(), None, Some(ADMIN_KEY.into()));
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let data = admin
            .ok(
                "mutation($u: String!) { createUser(input: {username: $u}) { id } }",
                json!({"u": name}),
            )
            .await?;
        let id = str_at(&data, "/createUser/id")?;
        let token = admin
            .ok(
                "mutation($u: ID!) { issueToken(userId: $u) }",
                json!({"u": id}),
            )
            .await?;
        users.push(TestUser {
            id,
            username: name.into(),
            token: str_at(&token, "/issueToken")?,
        });
    }
    let (alice, bob) = (&users[0], &users[1]);
    let on_a = Client::new(a.http(), Some(alice.token.clone()), None);
    let data = on_a
        .ok(
            "mutation($m: [ID!]) { createChat(input: {kind: GROUP, memberIds: $m}) { id } }",
            json!({"m": [bob.id]}),
        )
        .await?;
    let chat = str_at(&data, "/createChat/id")?;
    let say =
        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }";

    let mut ws = WsClient::user_at(&b.ws(), bob).await?;
    ws.subscribe("p", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("p", async |m| {
        on_a.ok(say, json!({"c": chat, "t": m})).await.map(drop)
    })
    .await?;
    for i in 0..10 {
        on_a.ok(say, json!({"c": chat, "t": format!("from A {i}")}))
            .await?;
    }
    for i in 0..10 {
        let event = ws.next("p").await?;
        assert_eq!(
            str_at(&event, "/chatEvents/message/content")?,
            format!("from A {i}")
        );
    }
    Ok(())
}

/// The feeds a subscription reads, driven directly so the test controls when they lag.
mod lagged_feeds {
    use chatql::domain::feeds::chat::{ChatFeed, ChatFeedItem};
    use chatql::domain::feeds::inbox::{InboxFeed, InboxItem};
    use chatql::events::EventKind;
    use chatql::vocabulary::ids::{ChatId, UserId};

    use super::*;

    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread")]
    async fn a_removed_member_whose_feeds_lagged_sees_nothing_more_of_the_chat() -> TestResult {
        let server = TestServer::start_with(&["--event-buffer", "4"]).await?;
        let owner = server.user("owner").await?;
        let member = server.user("member").await?;
        let chat = group(&server, &owner, &[&member]).await?;
        let own_chat = group(&server, &member, &[]).await?;
        let member_id = UserId::from_global(&member.id)?;
        let chat_id = ChatId::from_global(&chat)?;
        let mut chat_feed = ChatFeed::open(&server.app, member_id, chat_id, None).await?;
        let mut inbox = InboxFeed::open(&server.app, member_id).await?;
        // The member reads neither feed while more events than the buffer holds go by,
        // then is removed, then the owner sends secrets.
        for i in 0..10 {
            send(&server, &owner, &chat, &format!("filler {i}")).await?;
        }
        remove_member(&server, &owner, &chat, &member).await?;
        // Enough after the removal that its MemberLeft falls out of the buffer too.
        let secret = send(&server, &owner, &chat, "secret").await?;
        let secret_id = chatql::vocabulary::ids::MessageId::from_global(&secret)?;
        for i in 0..6 {
            send(&server, &owner, &chat, &format!("more secrets {i}")).await?;
        }
        // The chat feed ends with the member's own MemberLeft, and nothing after it.
        let mut last = None;
        while let Some(item) = tokio::time::timeout(WAIT, chat_feed.next()).await? {
            let item = item?;
            if let ChatFeedItem::Live(event) = &item {
                assert!(
                    !matches!(event.kind, EventKind::MessageAdded { message_id, .. } if message_id >= secret_id),
                    "the removed member received a message sent after the removal"
                );
            }
            last = Some(item);
        }
        match last {
            Some(ChatFeedItem::Live(event)) => {
                assert_eq!(event.kind, EventKind::MemberLeft { user_id: member_id })
            }
            other => return Err(format!("the feed ended with {other:?}").into()),
        }
        // The inbox resyncs and goes on with the member's other chats only: everything up to
        // a message in the member's own chat carries nothing from the chat they left.
        let sentinel = send(&server, &member, &own_chat, "still here").await?;
        let sentinel_id = chatql::vocabulary::ids::MessageId::from_global(&sentinel)?;
        let mut resynced = false;
        loop {
            match tokio::time::timeout(WAIT, inbox.next()).await? {
                None => return Err("the inbox ended".into()),
                Some(InboxItem::Resync) => resynced = true,
                Some(InboxItem::Live { chat, event, .. }) => {
                    assert_ne!(chat, chat_id, "inbox event from the left chat");
                    if matches!(event.kind, EventKind::MessageAdded { message_id, .. } if message_id == sentinel_id)
                    {
                        break;
                    }
                }
            }
        }
        assert!(resynced, "the lagged inbox asked for a resync");
        Ok(())
    }
}
