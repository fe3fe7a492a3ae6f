//! `/metrics`: series move with what the server does, and it is where the config says.

use std::collections::HashMap;

use serde_json::json;

use crate::common::ws::WsClient;
use crate::common::*;

fn value(samples: &HashMap<String, f64>, series: &str) -> TestResult<f64> {
    samples
        .get(series)
        .copied()
        .ok_or_else(|| format!("no series {series}").into())
}

fn metrics_url(server: &TestServer) -> String {
    format!("http://{}/metrics", server.addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_with_requests_sockets_and_events() -> TestResult {
    let server = TestServer::start_with(&["--mutations-per-minute", "20"]).await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let before = scrape(&metrics_url(&server)).await?;

    // A query, a mutation, and a request over the rate limit (21 mutations at once).
    server.client(&bob).ok("{ me { id } }", json!({})).await?;
    send(&server, &alice, &chat, "hello").await?;
    let too_many: String = (0..21)
        .map(|i| format!("m{i}: setTyping(chatId: $c, typing: true) "))
        .collect();
    let limited = server
        .client(&carol)
        .send(
            &format!("mutation($c: ID!) {{ {too_many} }}"),
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(limited.status, 429, "{}", limited.body);
    // A socket with a live subscription that receives an event.
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe(
        "feed",
        "subscription($c: ID!) { chatEvents(chatId: $c) { ... on MessageAdded { message { content } } } }",
        json!({"c": chat}),
    )
    .await?;
    ws.until_live("feed", async |marker| {
        send(&server, &alice, &chat, &marker).await.map(drop)
    })
    .await?;

    let after = scrape(&metrics_url(&server)).await?;
    let grew = |series: &str| -> TestResult<f64> {
        Ok(value(&after, series)? - value(&before, series).unwrap_or(0.0))
    };
    assert!(grew(r#"chatql_http_requests_total{operation="query",outcome="ok"}"#)? >= 1.0);
    assert!(grew(r#"chatql_http_requests_total{operation="mutation",outcome="ok"}"#)? >= 2.0);
    assert_eq!(
        grew(r#"chatql_http_requests_total{operation="mutation",outcome="rate_limited"}"#)?,
        1.0
    );
    assert_eq!(
        grew(r#"chatql_rate_limited_total{limit="mutations"}"#)?,
        1.0
    );
    assert!(grew(r#"chatql_http_request_duration_seconds_count{operation="query"}"#)? >= 1.0);
    assert!(
        grew(r#"chatql_http_request_duration_seconds_bucket{le="+Inf",operation="mutation"}"#)?
            >= 2.0
    );
    assert_eq!(grew("chatql_ws_connections")?, 1.0);
    assert_eq!(grew("chatql_subscriptions_active")?, 1.0);
    assert!(grew(r#"chatql_events_published_total{kind="message_added"}"#)? >= 2.0);
    assert!(grew("chatql_events_delivered_total")? >= 1.0);
    assert!(after.contains_key("chatql_resyncs_total"));
    // The pool, read at the scrape (the test server's pool has 8 connections).
    assert_eq!(value(&after, "chatql_db_pool_max")?, 8.0);
    assert!(value(&after, r#"chatql_db_pool_connections{state="idle"}"#)? >= 1.0);
    assert!(after.contains_key(r#"chatql_db_pool_connections{state="in_use"}"#));
    assert!(after.contains_key("chatql_db_pool_waiting"));

    // The socket and its subscription are given back when it goes.
    ws.send(json!({"type": "complete", "id": "feed"})).await?;
    drop(ws);
    let deadline = std::time::Instant::now() + crate::common::ws::WAIT;
    loop {
        let now = scrape(&metrics_url(&server)).await?;
        let gone = value(&now, "chatql_ws_connections")?
            == value(&before, "chatql_ws_connections")?
            && value(&now, "chatql_subscriptions_active")? == 0.0;
        if gone {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err("the closed socket is still counted".into());
        }
        // The server notices a closed socket asynchronously: poll, bounded.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_be_off_or_on_a_listener_of_their_own() -> TestResult {
    let off = TestServer::start_with(&["--metrics", "off"]).await?;
    assert_eq!(reqwest::get(metrics_url(&off)).await?.status(), 404);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let address = format!("127.0.0.1:{port}");
    let apart = TestServer::start_with(&["--metrics", &address]).await?;
    assert_eq!(reqwest::get(metrics_url(&apart)).await?.status(), 404);
    apart.anonymous().ok("{ __typename }", json!({})).await?;
    let own = scrape(&format!("http://{address}/metrics")).await?;
    assert!(
        value(
            &own,
            r#"chatql_http_requests_total{operation="query",outcome="ok"}"#
        )? >= 1.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_sent_to_a_lagging_subscriber_is_counted() -> TestResult {
    let server = TestServer::start_with(&["--event-buffer", "4"]).await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe(
        "feed",
        "subscription($c: ID!) { chatEvents(chatId: $c) { __typename ... on MessageAdded { message { content } } } }",
        json!({"c": chat}),
    )
    .await?;
    ws.until_live("feed", async |marker| {
        send(&server, &alice, &chat, &marker).await.map(drop)
    })
    .await?;
    let before = scrape(&metrics_url(&server)).await?;

    // A burst far larger than the buffer, published faster than any subscriber reads.
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
    let mut resyncs_seen = 0.0;
    loop {
        let event = ws.next("feed").await?;
        match event["chatEvents"]["__typename"].as_str() {
            Some("ResyncRequired") => resyncs_seen += 1.0,
            Some("MessageAdded") if event["chatEvents"]["message"]["content"] == "after" => break,
            _ => {}
        }
    }
    assert!(resyncs_seen >= 1.0, "the burst made no resync");

    let after = scrape(&metrics_url(&server)).await?;
    let grew = |series: &str| -> TestResult<f64> {
        Ok(value(&after, series)? - value(&before, series).unwrap_or(0.0))
    };
    assert_eq!(grew("chatql_resyncs_total")?, resyncs_seen);
    assert!(grew(r#"chatql_events_published_total{kind="typing"}"#)? >= 2000.0);
    Ok(())
}
