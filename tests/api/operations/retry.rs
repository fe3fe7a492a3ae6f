//! `Retry-After` on every 429: the mutation rate limit (and its `retryAfterSeconds` over
//! HTTP and WebSocket alike) and sockets refused before the upgrade.

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::ws::WsClient;
use crate::common::*;

const SAY: &str =
    "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"again\"}) { id } }";

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_mutation_says_when_to_retry() -> TestResult {
    let server = TestServer::start_with(&["--mutations-per-minute", "2"]).await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    send(&server, &alice, &chat, "one").await?;

    let response = reqwest::Client::new()
        .post(server.url())
        .header("accept", "application/graphql-response+json")
        .bearer_auth(&alice.token)
        .json(&json!({"query": SAY, "variables": {"c": chat}}))
        .send()
        .await?;
    assert_eq!(response.status(), 429);
    let header: u64 = response
        .headers()
        .get("retry-after")
        .ok_or("no Retry-After")?
        .to_str()?
        .parse()?;
    // The window is a minute and began a moment ago.
    assert!((55..=60).contains(&header), "Retry-After: {header}");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], header);

    // A mutation over the socket gets the same wait in its error.
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("m", SAY, json!({"c": chat})).await?;
    let refused = ws.recv().await?;
    assert_eq!(refused["type"], "error", "{refused}");
    let extensions = &refused["payload"][0]["extensions"];
    assert_eq!(extensions["code"], "RATE_LIMITED", "{refused}");
    let wait = extensions["retryAfterSeconds"]
        .as_u64()
        .ok_or("no retryAfterSeconds")?;
    assert!((1..=header).contains(&wait), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_refused_before_the_upgrade_says_when_to_retry() -> TestResult {
    let server = TestServer::start_with(&[
        "--ws-max-pending-per-ip",
        "1",
        "--ws-init-timeout-secs",
        "7",
    ])
    .await?;
    // One socket awaiting connection_init holds the address's only place.
    let _pending = WsClient::connect(&server, "graphql-transport-ws").await?;
    let mut request = server.ws_url().into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let refused = match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response,
        Ok(_) => return Err("a second pending socket was accepted".into()),
        Err(e) => return Err(e.into()),
    };
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused
        .headers()
        .get("retry-after")
        .ok_or("no Retry-After")?
        .to_str()?
        .parse()?;
    // The held socket's init timeout (7 s) ends at the latest then.
    assert!((1..=7).contains(&wait), "Retry-After: {wait}");

    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await?
        .text()
        .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"chatql_rate_limited_total{limit="ws_pending"} 1"#),
        "{metrics}"
    );
    Ok(())
}
