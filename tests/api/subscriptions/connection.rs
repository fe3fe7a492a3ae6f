//! The socket itself: credentials and close codes, token expiry, the legacy protocol, caps
//! and presence, the real `graphql-ws` client, teardown on close.

use super::*;

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
    // Over HTTP the token works until then...
    server.client(&short).ok("{ me { id } }", json!({})).await?;
    let closed = ws.closed().await?;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4403, "token expired")
    );
    // ...and not a moment after: one clock rule for both transports (HTTP used to accept
    // it for the rest of its expiry second).
    assert_eq!(
        server
            .client(&short)
            .code("{ me { id } }", json!({}))
            .await?,
        "UNAUTHENTICATED"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn the_graphql_ws_client_itself_authenticates_queries_and_follows_a_chat() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    node_script(
        "graphql-ws",
        "ws-smoke.mjs",
        &[server.ws_url(), alice.token.clone()],
    )
    .await?;
    let args = [
        server.ws_url(),
        server.url(),
        alice.token.clone(),
        bob.token.clone(),
        chat,
    ];
    let out = node_script("graphql-ws", "ws-chat.mjs", &args).await?;
    assert!(
        out.contains("ws-chat: ok: one, two, three, four, five"),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_a_socket_releases_everything_it_held() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let baseline = server.app.broker().receiver_count();
    let channels = server.app.broker().channel_count();
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
    // Alice's inbox and the chat's feeds.
    assert_eq!(server.app.broker().channel_count(), channels + 2);
    let key = chatql::vocabulary::ids::UserId::from_global(&alice.id)
        .map_err(|e| e.to_string())?
        .0;
    assert!(server.app.presence().is_online(key));
    drop(ws);
    // The server notices the closed socket asynchronously: wait (bounded) for the release.
    let released = async {
        while server.app.broker().receiver_count() != baseline
            || server.app.broker().channel_count() != channels
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

#[tokio::test(flavor = "multi_thread")]
async fn the_graphql_ws_client_reconnects_with_a_fresh_token_after_expiry() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    // The client mints its own tokens for Alice (the first lasting 2 s) through the admin
    // key, as an app refreshing its token would.
    let args = [
        server.ws_url(),
        server.url(),
        ADMIN_KEY.to_owned(),
        alice.id.clone(),
        bob.token.clone(),
        chat,
    ];
    let out = node_script("graphql-ws", "ws-refresh.mjs", &args).await?;
    assert!(out.contains("ws-refresh: ok: closed 4403"), "{out}");
    Ok(())
}
