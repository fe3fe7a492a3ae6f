//! How one case is run and what came back: an HTTP request, or a socket that
//! initialises, subscribes and (when allowed) is shown live.

use serde_json::{Value, json};

use super::world::{Caller, SECRET, World, unique};
use crate::common::ws::{Incoming, WsClient};
use crate::common::*;

/// The outcome of one case, as the table writes it: `OK`, `NULL` (no error, the field
/// is null), an `extensions.code`, or `closed <code>` for a socket.
pub type Outcome = String;

/// Runs an HTTP case: its outcome and the whole response body. A 5xx is an error.
pub async fn http_outcome(
    client: &Client,
    document: &str,
    variables: Value,
) -> TestResult<(Outcome, String)> {
    let response = client.send(document, variables).await?;
    let body = response.body.to_string();
    if response.status >= 500 {
        return Ok((format!("HTTP {}", response.status), body));
    }
    let outcome = match response.codes().first() {
        Some(code) => code.clone(),
        None if response.status != 200 => format!("HTTP {} without an error", response.status),
        None => match response.data().as_object().and_then(|o| o.values().next()) {
            Some(Value::Null) => "NULL".to_owned(),
            Some(_) => "OK".to_owned(),
            None => format!("no data: {body}"),
        },
    };
    Ok((outcome, body))
}

/// Who makes a live subscription deliver something, so the test knows it is live.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// The owner sends into the chat.
    OwnerInChat,
    /// The buddy sends into the lobby.
    BuddyInLobby,
}

/// A subscription to run: over which subprotocol, the operation, and how to show it live.
pub struct Subscription<'a> {
    pub protocol: &'a str,
    pub document: &'a str,
    pub variables: Value,
    pub probe: Probe,
}

/// Runs a WebSocket case: connect, `connection_init` as `caller`, subscribe. Returns the
/// outcome and every text received. When `OK` is expected the subscription must go live
/// (shown by a probe); for a caller who may not read the chat, the owner then plants
/// more secrets and the feed is read up to a sentinel, so what it delivered is checked.
pub async fn ws_outcome(
    server: &TestServer,
    world: &World,
    caller: Caller,
    subscription: Subscription<'_>,
    expected: &str,
) -> TestResult<(Outcome, String)> {
    let Subscription {
        protocol,
        document,
        variables,
        probe,
    } = subscription;
    let mut ws = WsClient::connect(server, protocol).await?;
    ws.send(json!({"type": "connection_init", "payload": world.init_payload(caller)?}))
        .await?;
    let mut seen = String::new();
    loop {
        match ws.recv_or_closed().await? {
            Incoming::Closed(closed) => return Ok((format!("closed {}", closed.code), seen)),
            // Expected to be refused at the door: accepting is already the wrong answer.
            Incoming::Message(m)
                if m["type"] == "connection_ack" && expected.starts_with("closed") =>
            {
                return Ok(("connection_ack".to_owned(), seen));
            }
            Incoming::Message(m) if m["type"] == "connection_ack" => break,
            // The legacy protocol says why before it closes.
            Incoming::Message(m) if m["type"] == "connection_error" => {
                seen.push_str(&m.to_string());
            }
            Incoming::Message(m) => return Ok((format!("unexpected {m}"), m.to_string())),
        }
    }
    ws.subscribe("s", document, variables).await?;
    if expected == "OK" {
        // A message the subscription delivers, sent where its probe sends.
        let deliver = async |text: String| {
            match probe {
                Probe::OwnerInChat => send(server, &world.owner, &world.chat, &text).await,
                Probe::BuddyInLobby => send(server, &world.buddy, &world.lobby, &text).await,
            }
            .map(drop)
        };
        match ws.until_live_collecting("s", deliver).await {
            Ok(consumed) => consumed.iter().for_each(|m| seen.push_str(&m.to_string())),
            Err(e) => return Ok((format!("not live: {e}"), seen)),
        }
        if !caller.reads_the_chat() {
            send(
                server,
                &world.owner,
                &world.chat,
                &format!("{SECRET} later"),
            )
            .await?;
            let sentinel = format!("sentinel-{}", unique());
            deliver(sentinel.clone()).await?;
            loop {
                let message = ws.recv().await?;
                seen.push_str(&message.to_string());
                if message.to_string().contains(&sentinel) {
                    break;
                }
            }
        }
        return Ok(("OK".to_owned(), seen));
    }
    loop {
        let message = match ws.recv_or_closed().await {
            Ok(Incoming::Message(m)) => m,
            Ok(Incoming::Closed(closed)) => return Ok((format!("closed {}", closed.code), seen)),
            Err(e) => return Ok((format!("no answer: {e}"), seen)),
        };
        seen.push_str(&message.to_string());
        if message["id"] != "s" {
            continue;
        }
        // graphql-transport-ws sends every error, graphql-ws the first.
        let code = |errors: &Value| {
            let first = if errors.is_array() {
                &errors[0]
            } else {
                errors
            };
            first["extensions"]["code"]
                .as_str()
                .unwrap_or("<no code>")
                .to_owned()
        };
        let payload = &message["payload"];
        return Ok(match message["type"].as_str() {
            Some("error") => (code(payload), seen),
            Some("next" | "data") if payload.get("errors").is_some() => {
                (code(&payload["errors"]), seen)
            }
            Some("next" | "data") => (format!("delivered {payload}"), seen),
            _ => (format!("unexpected {message}"), seen),
        });
    }
}
