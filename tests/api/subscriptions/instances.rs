//! Live events across server instances on one PostgreSQL: in process, after the listener
//! drops, and between two real `chatql serve` processes.

use super::*;

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
#[ignore = "needs PostgreSQL: scripts/test runs it there (CHATQL_TEST_BACKEND=postgres)"]
async fn two_server_processes_on_one_postgresql_share_live_events() -> TestResult {
    require_postgres()?;
    let db = TestDb::new().await?;
    let a = ServerProcess::start(&db.url, &db.dir.path().join("a")).await?;
    let b = ServerProcess::start(&db.url, &db.dir.path().join("b")).await?;
    let (alice, bob) = (&a.user("alice").await?, &a.user("bob").await?);
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

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test runs it there (CHATQL_TEST_BACKEND=postgres)"]
async fn an_acknowledged_message_reaches_other_instances_even_if_its_own_dies_at_once() -> TestResult
{
    // A mutation's NOTIFY is part of its transaction: once the send is acknowledged, the
    // other instances get it even when the instance that stored it is killed right away.
    require_postgres()?;
    let db = TestDb::new().await?;
    let mut a = ServerProcess::start(&db.url, &db.dir.path().join("a")).await?;
    let b = ServerProcess::start(&db.url, &db.dir.path().join("b")).await?;
    let (alice, bob) = (a.user("alice").await?, a.user("bob").await?);
    let data = a
        .client(&alice)
        .ok(
            "mutation($m: [ID!]) { createChat(input: {kind: GROUP, memberIds: $m}) { id } }",
            json!({"m": [bob.id]}),
        )
        .await?;
    let chat = str_at(&data, "/createChat/id")?;
    let say =
        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }";
    let on_a = a.client(&alice);
    let mut ws = WsClient::user_at(&b.ws(), &bob).await?;
    ws.subscribe("p", CHAT_EVENTS, json!({"c": chat})).await?;
    ws.until_live("p", async |m| {
        on_a.ok(say, json!({"c": chat, "t": m})).await.map(drop)
    })
    .await?;
    // Eight sends at once, each acknowledged; then SIGKILL before anything else runs.
    let sends = (0..8).map(|i| {
        let client = on_a.clone();
        let chat = chat.clone();
        async move {
            client
                .ok(say, json!({"c": chat, "t": format!("last words {i}")}))
                .await
        }
    });
    for acknowledged in futures_util::future::join_all(sends).await {
        acknowledged?;
    }
    a.kill9()?;
    let mut received = std::collections::BTreeSet::new();
    while received.len() < 8 {
        let event = ws.next("p").await?;
        received.insert(str_at(&event, "/chatEvents/message/content")?);
    }
    let expected: std::collections::BTreeSet<String> =
        (0..8).map(|i| format!("last words {i}")).collect();
    assert_eq!(received, expected);
    Ok(())
}
