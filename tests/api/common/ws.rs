//! A GraphQL-over-WebSocket test client (graphql-transport-ws or legacy graphql-ws) over a
//! real socket. Every wait is bounded, so a missing event fails the test instead of
//! hanging it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{TestResult, TestServer, TestUser};

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl WsClient {
    pub async fn connect(server: &TestServer, protocol: &str) -> TestResult<Self> {
        Self::connect_url(&server.ws_url(), protocol).await
    }

    pub async fn connect_url(url: &str, protocol: &str) -> TestResult<Self> {
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse()?);
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        Ok(Self { socket })
    }

    /// Connects with graphql-transport-ws and authenticates as `user`.
    pub async fn user(server: &TestServer, user: &TestUser) -> TestResult<Self> {
        Self::user_at(&server.ws_url(), user).await
    }

    /// Like [`WsClient::user`], for a server at `url`.
    pub async fn user_at(url: &str, user: &TestUser) -> TestResult<Self> {
        let mut client = Self::connect_url(url, "graphql-transport-ws").await?;
        client
            .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", user.token)}}))
            .await?;
        let ack = client.recv().await?;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        Ok(client)
    }

    pub async fn send(&mut self, message: Value) -> TestResult {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await?;
        Ok(())
    }

    /// The next protocol message, answering and skipping keep-alive pings; the socket
    /// closing instead is an error.
    pub async fn recv(&mut self) -> TestResult<Value> {
        match self.recv_or_closed().await? {
            Incoming::Message(value) => Ok(value),
            Incoming::Closed(closed) => {
                Err(format!("socket closed: {} {}", closed.code, closed.reason).into())
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code and reason.
    pub async fn closed(&mut self) -> TestResult<Closed> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .map_err(|_| "timed out waiting for the socket to close")?;
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ok(Closed {
                        code: frame.code.into(),
                        reason: frame.reason.to_string(),
                    });
                }
                Some(Ok(Message::Close(None))) | None => {
                    return Ok(Closed {
                        code: 1005,
                        reason: String::new(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Starts an operation under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) -> TestResult {
        self.send(json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}))
            .await
    }

    /// The payload of the next `next` message for `id` (any other message is an error).
    pub async fn next(&mut self, id: &str) -> TestResult<Value> {
        let message = self.recv().await?;
        if message["type"] != "next" || message["id"] != id {
            return Err(format!("expected next for {id}, got {message}").into());
        }
        if message["payload"].get("errors").is_some() {
            return Err(format!("errors in payload: {message}").into());
        }
        Ok(message["payload"]["data"].clone())
    }
}

impl WsClient {
    /// A subscription is live once it delivers an event published after the subscribe
    /// message; the protocol has no "ready" signal. Sends numbered probes (via `probe`)
    /// until the newest one arrives, consuming the probes seen on the way (and anything
    /// other operations on this socket received meanwhile), so the subscription's next
    /// event is whatever the test does next.
    pub async fn until_live(
        &mut self,
        id: &str,
        probe: impl AsyncFnMut(String) -> TestResult,
    ) -> TestResult {
        self.until_live_collecting(id, probe).await.map(drop)
    }

    /// [`WsClient::until_live`], returning every message it consumed on the way (the
    /// probe that showed the subscription live included), e.g. to check what a feed
    /// replayed.
    pub async fn until_live_collecting(
        &mut self,
        id: &str,
        mut probe: impl AsyncFnMut(String) -> TestResult,
    ) -> TestResult<Vec<Value>> {
        let mut consumed = Vec::new();
        for attempt in 0..50 {
            let marker = format!("probe-{attempt}");
            probe(marker.clone()).await?;
            // Messages of other operations on this socket are skipped.
            while let Ok(message) =
                tokio::time::timeout(Duration::from_millis(200), self.recv()).await
            {
                let message = message?;
                let live = message["id"] == id && message.to_string().contains(&marker);
                consumed.push(message);
                if live {
                    return Ok(consumed);
                }
            }
        }
        Err(format!("subscription {id} never went live").into())
    }
}

impl WsClient {
    /// The next text message as it is, pings included.
    pub async fn recv_raw(&mut self) -> TestResult<Value> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .map_err(|_| "timed out waiting for a message")?;
            match frame {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("socket closed: {frame:?}").into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("socket ended".into()),
            }
        }
    }
}

/// What a socket delivered next: a protocol message, or its close.
#[derive(Debug)]
pub enum Incoming {
    Message(Value),
    Closed(Closed),
}

impl WsClient {
    /// The next protocol message (answering and skipping keep-alive pings) or, if the
    /// server closes the socket instead, how it closed.
    pub async fn recv_or_closed(&mut self) -> TestResult<Incoming> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .map_err(|_| "timed out waiting for a message or the close")?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str())?;
                    match value["type"].as_str() {
                        Some("ping") => self.send(json!({"type": "pong"})).await?,
                        Some("ka") => {}
                        _ => return Ok(Incoming::Message(value)),
                    }
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ok(Incoming::Closed(Closed {
                        code: frame.code.into(),
                        reason: frame.reason.to_string(),
                    }));
                }
                Some(Ok(Message::Close(None))) | None => {
                    return Ok(Incoming::Closed(Closed {
                        code: 1005,
                        reason: String::new(),
                    }));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}

/// How an attempt to open a WebSocket ended.
pub enum Attempt {
    Open(Box<WsClient>),
    /// Refused with this HTTP status before the upgrade.
    Refused(u16),
}

impl WsClient {
    /// Opens a socket to `server` from the loopback address `source` (any of 127.0.0.0/8
    /// reaches a server on 127.0.0.1), or reports the HTTP status that refused it.
    pub async fn try_connect_from(
        server: &TestServer,
        protocol: &str,
        source: std::net::IpAddr,
    ) -> TestResult<Attempt> {
        let tcp = tokio::net::TcpSocket::new_v4()?;
        tcp.bind(std::net::SocketAddr::new(source, 0))?;
        let stream = tcp.connect(server.addr).await?;
        let mut request = server.ws_url().into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse()?);
        match tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await {
            Ok((socket, _)) => Ok(Attempt::Open(Box::new(Self { socket }))),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Ok(Attempt::Refused(response.status().as_u16()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one text frame as it is (not necessarily JSON, of any size).
    pub async fn send_text(&mut self, text: String) -> TestResult {
        self.socket.send(Message::Text(text.into())).await?;
        Ok(())
    }
}
