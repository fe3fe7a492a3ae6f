//! Shared execution: subscribers of one chat running the same operation get a live event
//! rendered once, the same payload on every socket; a selection that depends on who looks
//! stays per viewer. Counted by `chatql_event_renders_total{by}` on `/metrics`.

use super::*;

const EXECUTED: &str = r#"chatql_event_renders_total{by="executed"}"#;
const SHARED: &str = r#"chatql_event_renders_total{by="shared"}"#;

/// Nothing in it depends on the viewer.
const PLAIN: &str = "subscription($c: ID!) { chatEvents(chatId: $c) {
  __typename ... on MessageAdded { message { content sender { username } } } } }";

/// `myMembership` and `unreadCount` are the viewer's own.
const PER_VIEWER: &str = "subscription($c: ID!) { chatEvents(chatId: $c) {
  __typename ... on MessageAdded { message { content chat { unreadCount myMembership { role } } } } } }";

async fn renders(server: &TestServer) -> TestResult<(f64, f64)> {
    let samples = scrape(&format!("http://{}/metrics", server.addr)).await?;
    let get = |series: &str| samples.get(series).copied().unwrap_or(0.0);
    Ok((get(EXECUTED), get(SHARED)))
}

/// Reads each socket's subscription "1" until the message `marker` arrives, so every
/// socket is past everything sent before it; returns what each got for it.
async fn each_receives(sockets: &mut [WsClient], marker: &str) -> TestResult<Vec<Value>> {
    let mut got = Vec::new();
    for ws in sockets.iter_mut() {
        loop {
            let message = ws.recv().await?;
            if message["id"] == "1" && message.to_string().contains(marker) {
                got.push(message["payload"].clone());
                break;
            }
        }
    }
    Ok(got)
}

/// Opens a socket per user with subscription "1" on `query`, each live.
async fn subscribed(
    server: &TestServer,
    users: &[&TestUser],
    chat: &str,
    query: &str,
) -> TestResult<Vec<WsClient>> {
    let mut sockets = Vec::new();
    for user in users {
        let mut ws = WsClient::user(server, user).await?;
        ws.subscribe("1", query, json!({"c": chat})).await?;
        ws.until_live("1", async |m| {
            send(server, users[0], chat, &m).await.map(drop)
        })
        .await?;
        sockets.push(ws);
    }
    // Past every probe on every socket.
    send(server, users[0], chat, "settled").await?;
    each_receives(&mut sockets, "settled").await?;
    Ok(sockets)
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_of_one_operation_share_one_rendering_of_each_event() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let mut sockets = subscribed(&server, &[&alice, &bob, &carol], &chat, PLAIN).await?;

    let (executed, shared) = renders(&server).await?;
    send(&server, &bob, &chat, "once for all").await?;
    let payloads = each_receives(&mut sockets, "once for all").await?;
    let expected = json!({"data": {"chatEvents": {"__typename": "MessageAdded",
        "message": {"content": "once for all", "sender": {"username": "bob"}}}}});
    assert_eq!(payloads, vec![expected.clone(), expected.clone(), expected]);
    // One execution, ahead of the three subscribers, who all reused its text.
    assert_eq!(renders(&server).await?, (executed + 1.0, shared + 3.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stage_writes_to_subscribers_that_keep_up_without_their_tasks() -> TestResult {
    const WRITTEN: &str = "chatql_events_written_ahead_total";
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let mut sockets = subscribed(&server, &[&alice, &bob, &carol], &chat, PLAIN).await?;
    let written = |samples: &std::collections::HashMap<String, f64>| {
        samples.get(WRITTEN).copied().unwrap_or(0.0)
    };
    let metrics = format!("http://{}/metrics", server.addr);
    let before = written(&scrape(&metrics).await?);
    for n in 0..5 {
        let content = format!("written ahead {n}");
        send(&server, &bob, &chat, &content).await?;
        let payloads = each_receives(&mut sockets, &content).await?;
        assert!(
            payloads
                .iter()
                .all(|p| p["data"]["chatEvents"]["message"]["content"] == content)
        );
    }
    // A subscription's task attaches to the stage once it has handed on what it got, and
    // stays attached while it keeps up: at most its first message here could still have
    // come through its task.
    let grew = written(&scrape(&metrics).await?) - before;
    assert!(
        (12.0..=15.0).contains(&grew),
        "{grew} of 15 written by the stage"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selection_that_depends_on_the_viewer_is_rendered_per_viewer() -> TestResult {
    let server = TestServer::start().await?;
    let (owner, member) = (server.user("owner").await?, server.user("member").await?);
    let chat = group(&server, &owner, &[&member]).await?;
    // The owner twice (two devices), the member once.
    let mut sockets = subscribed(&server, &[&owner, &member, &owner], &chat, PER_VIEWER).await?;
    // The member's unread count before the next message.
    let unread = server
        .client(&member)
        .ok(
            "query($c: ID!) { chat(id: $c) { unreadCount } }",
            json!({"c": chat}),
        )
        .await?["chat"]["unreadCount"]
        .as_i64()
        .ok_or("no unread count")?;

    let (executed, shared) = renders(&server).await?;
    send(&server, &owner, &chat, "whose view").await?;
    let payloads = each_receives(&mut sockets, "whose view").await?;
    let view = |p: &Value| p["data"]["chatEvents"]["message"]["chat"].clone();
    assert_eq!(
        view(&payloads[0]),
        json!({"unreadCount": 0, "myMembership": {"role": "OWNER"}}),
        "{payloads:?}"
    );
    assert_eq!(
        view(&payloads[1]),
        json!({"unreadCount": unread + 1, "myMembership": {"role": "MEMBER"}}),
        "{payloads:?}"
    );
    assert_eq!(
        payloads[2], payloads[0],
        "the owner's two sockets see the same"
    );
    // Executed for each viewer at least. Only the first rendering is kept with the event
    // (see `graphql::live`), made ahead as one of the subscribers: whoever it was made as
    // reuses it, the others execute their own. So one count per socket, plus that first.
    let (executed_now, shared_now) = renders(&server).await?;
    assert_eq!(executed_now + shared_now, executed + shared + 4.0);
    assert!(executed_now - executed >= 2.0, "{executed_now} {executed}");
    assert!(shared_now - shared >= 1.0, "{shared_now} {shared}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_with_other_variables_or_documents_render_their_own() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut plain = subscribed(&server, &[&alice], &chat, PLAIN).await?;
    // The same fields under another operation name: another operation.
    let named = PLAIN.replacen("subscription(", "subscription Named(", 1);
    let mut other = subscribed(&server, &[&bob], &chat, &named).await?;
    send(&server, &alice, &chat, "settle both").await?;
    each_receives(&mut plain, "settle both").await?;
    each_receives(&mut other, "settle both").await?;

    let (executed, shared) = renders(&server).await?;
    send(&server, &alice, &chat, "two operations").await?;
    let a = each_receives(&mut plain, "two operations").await?;
    let b = each_receives(&mut other, "two operations").await?;
    assert_eq!(a, b, "the same fields show the same");
    // One execution per operation, each reused by its one subscriber.
    assert_eq!(renders(&server).await?, (executed + 2.0, shared + 2.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_resuming_from_different_cursors_share_the_live_renderings() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    send(&server, &alice, &chat, "before").await?;
    let cursor = server
        .client(&bob)
        .ok(
            "query($c: ID!) { messages(chatId: $c, last: 1) { edges { cursor } } }",
            json!({"c": chat}),
        )
        .await?["messages"]["edges"][0]["cursor"]
        .clone();
    const RESUMING: &str = "subscription($c: ID!, $after: String) {
      chatEvents(chatId: $c, after: $after) { __typename ... on MessageAdded { message { content } } } }";
    let mut sockets = Vec::new();
    for (user, variables) in [
        (&alice, json!({"c": chat})),
        (&bob, json!({"c": chat, "after": cursor})),
    ] {
        let mut ws = WsClient::user(&server, user).await?;
        ws.subscribe("1", RESUMING, variables).await?;
        ws.until_live("1", async |m| {
            send(&server, &alice, &chat, &m).await.map(drop)
        })
        .await?;
        sockets.push(ws);
    }
    send(&server, &alice, &chat, "settled").await?;
    each_receives(&mut sockets, "settled").await?;

    let (executed, shared) = renders(&server).await?;
    send(&server, &alice, &chat, "after either cursor").await?;
    let payloads = each_receives(&mut sockets, "after either cursor").await?;
    assert_eq!(payloads[0], payloads[1]);
    assert_eq!(renders(&server).await?, (executed + 1.0, shared + 2.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sent_message_reaches_its_subscribers_without_being_read_back() -> TestResult {
    const CONTENT_ONLY: &str = "subscription($c: ID!) { chatEvents(chatId: $c) {
      __typename ... on MessageAdded { message { content } } } }";
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    // The least of three sends: background statements (NOTIFYs) only ever add.
    let mut alone = Vec::new();
    for n in 0..3 {
        let before = server.app.db().statements_executed();
        send(&server, &bob, &chat, &format!("alone {n}")).await?;
        alone.push(server.app.db().statements_executed() - before);
    }
    let mut sockets = subscribed(&server, &[&alice, &bob], &chat, CONTENT_ONLY).await?;
    let mut watched = Vec::new();
    for n in 0..3 {
        let content = format!("watched {n}");
        let before = server.app.db().statements_executed();
        send(&server, &bob, &chat, &content).await?;
        let payloads = each_receives(&mut sockets, &content).await?;
        watched.push(server.app.db().statements_executed() - before);
        for payload in payloads {
            assert_eq!(
                payload["data"]["chatEvents"]["message"]["content"], content,
                "{payload}"
            );
        }
    }
    // The event carries the row its transaction stored: showing it to the subscribers
    // costs no statement beyond the send's own.
    assert_eq!(
        watched.iter().min(),
        alone.iter().min(),
        "statements per send, without and with subscribers: {alone:?} {watched:?}"
    );
    Ok(())
}
