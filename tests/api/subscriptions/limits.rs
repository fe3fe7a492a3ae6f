//! The socket's own bounds: the size of a client message (1009), close reasons that fit a
//! close frame (4400), sockets awaiting `connection_init` (HTTP 429), the outgoing queue in
//! bytes (1013) and clients that stop answering keep-alives (4408).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::common::ws::{Attempt, Incoming, WAIT};

use super::*;

/// A loopback address: the server listens on 127.0.0.1, and any of 127.0.0.0/8 reaches it
/// as a different peer.
fn peer(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn open(server: &TestServer, from: IpAddr) -> TestResult<WsClient> {
    match WsClient::try_connect_from(server, "graphql-transport-ws", from).await? {
        Attempt::Open(ws) => Ok(*ws),
        Attempt::Refused(status) => Err(format!("refused from {from} with {status}").into()),
    }
}

async fn refusal(server: &TestServer, from: IpAddr) -> TestResult<u16> {
    match WsClient::try_connect_from(server, "graphql-transport-ws", from).await? {
        Attempt::Open(_) => Err(format!("a socket from {from} was accepted").into()),
        Attempt::Refused(status) => Ok(status),
    }
}

/// Opens a socket once the server has given a pending slot back: it notices a socket the
/// client dropped only asynchronously, so this polls (bounded).
async fn open_once_free(server: &TestServer, from: IpAddr) -> TestResult<WsClient> {
    let deadline = Instant::now() + WAIT;
    loop {
        match WsClient::try_connect_from(server, "graphql-transport-ws", from).await? {
            Attempt::Open(ws) => return Ok(*ws),
            Attempt::Refused(429) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Attempt::Refused(status) => {
                return Err(format!("still refused from {from} with {status}").into());
            }
        }
    }
}

async fn init(ws: &mut WsClient, user: &TestUser) -> TestResult {
    ws.send(json!({"type": "connection_init", "payload": {"token": user.token}}))
        .await?;
    let ack = ws.recv().await?;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    Ok(())
}

fn user_key(user: &TestUser) -> TestResult<i64> {
    Ok(chatql::vocabulary::ids::UserId::from_global(&user.id)
        .map_err(|e| e.to_string())?
        .0)
}

/// Waits (bounded) until `done` holds; for state the server changes asynchronously.
async fn until(what: &str, done: impl Fn() -> bool) -> TestResult {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .map_err(|_| format!("timed out waiting until {what}").into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_size_limit_closes_the_socket_with_1009() -> TestResult {
    let server = TestServer::start_with(&["--ws-max-message-bytes", "2048"]).await?;
    let alice = server.user("alice").await?;

    // Before connection_init: the frame is refused from its header, not buffered.
    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.send_text("x".repeat(4096)).await?;
    let closed = ws.closed().await?;
    assert_eq!(closed.code, 1009, "{closed:?}");
    assert_eq!(closed.reason, "message too big: at most 2048 bytes");

    // Just under the limit is fine, and after connection_init the limit still holds.
    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.send(json!({"type": "connection_init", "payload": {"token": alice.token, "padding": "x".repeat(1500)}}))
        .await?;
    assert_eq!(ws.recv().await?["type"], "connection_ack");
    let padded = format!(
        "subscription {{ myEvents {{ __typename }} }} # {}",
        "x".repeat(4096)
    );
    ws.subscribe("1", &padded, json!({})).await?;
    assert_eq!(ws.closed().await?.code, 1009);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_a_message_may_be_64_kib() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let mut ws = WsClient::user(&server, &alice).await?;
    // 60 KiB of padding in a comment: accepted, and the subscription runs.
    let padded = format!(
        "subscription {{ myEvents {{ __typename }} }} # {}",
        "x".repeat(60 * 1024)
    );
    ws.subscribe("1", &padded, json!({})).await?;
    ws.send(json!({"type": "ping"})).await?;
    assert_eq!(ws.recv().await?, json!({"type": "pong"}));
    ws.send_text("x".repeat(64 * 1024 + 1)).await?;
    assert_eq!(ws.closed().await?.code, 1009);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_message_type_closes_with_4400_and_a_reason_that_fits() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;

    // serde's text for an unknown variant lists every known one: longer than the 123
    // bytes a close reason may have, which used to fail the close (1006).
    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.send(json!({"type": "nonsense"})).await?;
    let closed = ws.closed().await?;
    assert_eq!(closed.code, 4400, "{closed:?}");
    assert!(
        closed
            .reason
            .starts_with("invalid message: unknown variant `nonsense`"),
        "{closed:?}"
    );
    assert!(closed.reason.len() <= 123, "{closed:?}");

    // Cut among two-byte characters, on an authenticated legacy socket: still a valid
    // close frame (the client would reject a reason that is not UTF-8).
    let mut ws = WsClient::connect(&server, "graphql-ws").await?;
    init(&mut ws, &alice).await?;
    ws.send(json!({"type": "é".repeat(100)})).await?;
    let closed = ws.closed().await?;
    assert_eq!(closed.code, 4400, "{closed:?}");
    assert!(
        (100..=123).contains(&closed.reason.len()),
        "{}",
        closed.reason.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_awaiting_init_are_capped_per_address_and_in_all() -> TestResult {
    let server =
        TestServer::start_with(&["--ws-max-pending-per-ip", "2", "--ws-max-pending", "3"]).await?;
    let alice = server.user("alice").await?;
    let mut first = open(&server, peer(1)).await?;
    let _second = open(&server, peer(1)).await?;
    assert_eq!(
        refusal(&server, peer(1)).await?,
        429,
        "a third from one address"
    );
    let _other = open(&server, peer(2)).await?;
    assert_eq!(refusal(&server, peer(3)).await?, 429, "a fourth in all");

    // A socket that completed connection_init no longer counts (nor do refused ones).
    init(&mut first, &alice).await?;
    let _third = open(&server, peer(1)).await?;
    assert_eq!(refusal(&server, peer(1)).await?, 429);
    // The authenticated socket works as ever.
    first.send(json!({"type": "ping"})).await?;
    assert_eq!(first.recv().await?, json!({"type": "pong"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_way_out_gives_the_pending_slot_back() -> TestResult {
    let server = TestServer::start_with(&[
        "--ws-max-pending-per-ip",
        "1",
        "--ws-init-timeout-secs",
        "2",
        "--ws-max-message-bytes",
        "2048",
    ])
    .await?;
    let alice = server.user("alice").await?;
    let here = peer(1);

    // The init timeout: the slot is free by the time the close arrives.
    let mut ws = open(&server, here).await?;
    assert_eq!(refusal(&server, here).await?, 429);
    assert_eq!(ws.closed().await?.code, 4408);

    // A refused connection_init.
    let mut ws = open(&server, here).await?;
    ws.send(json!({"type": "connection_init", "payload": {"token": "forged"}}))
        .await?;
    assert_eq!(ws.closed().await?.code, 4403);

    // A bad message.
    let mut ws = open(&server, here).await?;
    ws.send(json!({"type": "nonsense"})).await?;
    assert_eq!(ws.closed().await?.code, 4400);

    // An oversized one.
    let mut ws = open(&server, here).await?;
    ws.send_text("x".repeat(4096)).await?;
    assert_eq!(ws.closed().await?.code, 1009);

    // The client going away.
    let ws = open(&server, here).await?;
    drop(ws);
    let mut ws = open_once_free(&server, here).await?;

    // connection_init done: the authenticated socket stays, its slot is free.
    init(&mut ws, &alice).await?;
    let _next = open(&server, here).await?;
    Ok(())
}

/// `n` aliases of the content of each new message: one event weighs `n` times its content.
fn heavy_feed(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: content")).collect();
    format!(
        "subscription($c: ID!) {{ messageAdded(chatId: $c) {{ {} }} }}",
        fields.join(" ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_closed_once_its_queue_passes_the_byte_budget() -> TestResult
{
    let server = TestServer::start_with(&[
        "--ws-max-outgoing-bytes",
        "65536",
        "--max-message-length",
        "10000",
    ])
    .await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("big", &heavy_feed(100), json!({"c": chat}))
        .await?;
    ws.until_live("big", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;

    // 12 events of about 1 MB each, more than the socket's kernel buffers take, while
    // the client reads nothing. The old queue held 64 frames of any size.
    let published = 12;
    let content = "x".repeat(10_000);
    for _ in 0..published {
        send(&server, &alice, &chat, &content).await?;
    }
    // The server gives up on the socket (its subscription ends) without the client
    // having read a byte.
    let key = user_key(&alice)?;
    until("the slow socket's subscription ended", || {
        server.app.presence().subscriptions.count(key) == 0
    })
    .await?;

    // Reading now: what had already left, then the close; the rest was never queued.
    let mut delivered = 0;
    let closed = loop {
        match ws.recv_or_closed().await? {
            Incoming::Message(message) if message["type"] == "next" => delivered += 1,
            Incoming::Message(other) => return Err(format!("unexpected {other}").into()),
            Incoming::Closed(closed) => break closed,
        }
    };
    assert_eq!(closed.code, 1013, "{closed:?}");
    assert_eq!(
        closed.reason,
        "too far behind: over 65536 bytes queued for this socket"
    );
    assert!(
        delivered < published,
        "all {published} heavy events were queued for a client that read nothing"
    );

    // Other sockets are unaffected.
    let mut other = WsClient::user(&server, &alice).await?;
    other.send(json!({"type": "ping"})).await?;
    assert_eq!(other.recv().await?, json!({"type": "pong"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_answers_pings_is_closed_with_4408() -> TestResult {
    let server = TestServer::start_with(&["--ws-keepalive-secs", "1"]).await?;
    let alice = server.user("alice").await?;
    let mut ws = WsClient::connect(&server, "graphql-transport-ws").await?;
    ws.send(json!({"type": "connection_init", "payload": {"token": alice.token}}))
        .await?;
    assert_eq!(ws.recv_raw().await?["type"], "connection_ack");
    let since = Instant::now();
    // It reads the pings but never sends `pong` (nor anything else).
    assert_eq!(ws.recv_raw().await?, json!({"type": "ping"}));
    let closed = tokio::time::timeout(WAIT, ws.closed()).await??;
    let after = since.elapsed();
    assert_eq!(closed.code, 4408, "{closed:?}");
    assert_eq!(
        closed.reason,
        "keep-alive timeout: nothing received for 2 s"
    );
    // Two intervals of silence, then the next tick.
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(8),
        "{after:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_client_that_reads_nothing_is_closed_with_4408() -> TestResult {
    let server = TestServer::start_with(&["--ws-keepalive-secs", "1"]).await?;
    let alice = server.user("alice").await?;
    let mut ws = WsClient::connect(&server, "graphql-ws").await?;
    init(&mut ws, &alice).await?;
    // Not reading, its WebSocket answers no ping frames either: the server lets go.
    let key = user_key(&alice)?;
    until("the silent socket was closed", || {
        !server.app.presence().is_online(key)
    })
    .await?;
    let closed = ws.closed().await?;
    assert_eq!(closed.code, 4408, "{closed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_answer_keep_alives_stay_connected() -> TestResult {
    let server = TestServer::start_with(&["--ws-keepalive-secs", "1"]).await?;
    let alice = server.user("alice").await?;
    // graphql-transport-ws: `recv_or_closed` answers each `ping` with `pong`.
    let mut transport = WsClient::user(&server, &alice).await?;
    // graphql-ws: the client's WebSocket answers ping frames while it reads.
    let mut legacy = WsClient::connect(&server, "graphql-ws").await?;
    init(&mut legacy, &alice).await?;
    // Five intervals, over twice the silence limit: neither is closed.
    let quiet = Duration::from_secs(5);
    let (transport_quiet, legacy_quiet) = tokio::join!(
        tokio::time::timeout(quiet, transport.recv_or_closed()),
        tokio::time::timeout(quiet, legacy.recv_or_closed()),
    );
    for (protocol, quiet) in [("transport", transport_quiet), ("legacy", legacy_quiet)] {
        if let Ok(what) = quiet {
            return Err(format!("the {protocol} socket did not stay quiet: {what:?}").into());
        }
    }
    transport.send(json!({"type": "ping"})).await?;
    assert_eq!(transport.recv().await?, json!({"type": "pong"}));
    let key = user_key(&alice)?;
    assert_eq!(server.app.presence().sockets.count(key), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_opened_together_are_not_pinged_together() -> TestResult {
    let server = TestServer::start_with(&["--ws-keepalive-secs", "2"]).await?;
    let alice = server.user("alice").await?;
    // Twelve sockets opened one after the other, within a few milliseconds.
    let mut sockets = Vec::new();
    for _ in 0..12 {
        let ws = WsClient::user(&server, &alice).await?;
        sockets.push((ws, Instant::now()));
    }
    // When each got its first ping, counted from its own `connection_ack`.
    let waits = futures_util::future::join_all(sockets.iter_mut().map(|(ws, acked)| async {
        let ping = ws.recv_raw().await?;
        assert_eq!(ping, json!({"type": "ping"}));
        TestResult::Ok(acked.elapsed())
    }))
    .await
    .into_iter()
    .collect::<TestResult<Vec<Duration>>>()?;
    let (Some(first), Some(last)) = (waits.iter().min(), waits.iter().max()) else {
        return Err("no socket was pinged".into());
    };
    // Each within its first interval; spread over it, not all at its end (uniformly over
    // half an interval, twelve land within 200 ms of each other once in a few million runs).
    assert!(*last <= Duration::from_millis(2_200), "{waits:?}");
    assert!(
        *last - *first >= Duration::from_millis(200),
        "sockets opened together were pinged together: {waits:?}"
    );
    Ok(())
}
