//! `chatEvents` and `myEvents`: every kind of event in order, members only, resume after a
//! cursor, resync when behind, streamed replies, removal, typing.

use super::*;

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
    // Events load their message when delivered, and the message is deleted further down:
    // take the events up to the edit first, so the edit's event still finds it.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ws.next("1").await?);
    }
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
