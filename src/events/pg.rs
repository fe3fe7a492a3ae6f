//! The PostgreSQL bridge between instances: every event published here is NOTIFYed on
//! one channel, and every instance LISTENs on it and hands on what other instances sent,
//! so a subscriber on instance B sees what was sent through instance A.
//!
//! Payloads carry ids only (they must stay under PostgreSQL's 8,000-byte limit). When the
//! listening connection drops, it reconnects with backoff and then tells every local
//! subscriber to resync, since events sent meanwhile were missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Broker, Delivered, Event, EventKind};
use crate::db::{self, DbPool};

/// PostgreSQL rejects NOTIFY payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// Most events sent in one NOTIFY statement.
const MAX_BATCH: usize = 256;

/// An event on the wire, with the instance that sent it.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: u64,
    /// This instance's count of events sent. PostgreSQL folds identical payloads sent in
    /// one transaction into one; the count keeps two equal events (typing on, off, on)
    /// apart.
    #[serde(default)]
    seq: u64,
    event: Event,
}

/// Builds a broker wired to PostgreSQL: local publishes are NOTIFYed, notifications from
/// other instances are delivered locally. Both tasks stop when `shutdown` is cancelled.
pub fn bridged_broker(
    capacity: usize,
    db: DbPool,
    url: String,
    shutdown: CancellationToken,
) -> Broker {
    let mut bytes = [0u8; 8];
    // A collision between two instances' random origins is negligible; falling back to the
    // process id keeps start-up infallible.
    let origin = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::from(std::process::id()),
    };
    let (outbox, outbox_rx) = mpsc::unbounded_channel();
    let broker = Broker::new(capacity).with_remote(outbox);
    tokio::spawn(notify_loop(db, origin, outbox_rx, shutdown.clone()));
    tokio::spawn(listen_loop(broker.clone(), url, origin, shutdown));
    broker
}

/// Sends the published events as NOTIFYs, in publish order: whatever is queued when the
/// previous statement returns goes out together in one statement (one transaction), so a
/// burst of sends costs the database one commit, not one per event.
async fn notify_loop(
    db: DbPool,
    origin: u64,
    mut outbox: mpsc::UnboundedReceiver<Arc<Delivered>>,
    shutdown: CancellationToken,
) {
    let mut seq: u64 = 0;
    let mut queued = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = outbox.recv_many(&mut queued, MAX_BATCH) => if received == 0 { return },
            () = shutdown.cancelled() => return,
        }
        let payloads: Vec<String> = queued
            .drain(..)
            .map(|event| {
                seq += 1;
                encode(origin, seq, &event)
            })
            .collect();
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = db.notify(&payloads).await {
            tracing::warn!(error = %e, "NOTIFY failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The NOTIFY payload of `event`: a `ResyncRequired` for its chat when the event is too
/// big to carry, so other instances' subscribers resync instead of losing it silently.
fn encode(origin: u64, seq: u64, event: &Event) -> String {
    let payload = envelope(origin, seq, event.clone());
    if payload.len() <= MAX_PAYLOAD {
        return payload;
    }
    tracing::warn!(
        bytes = payload.len(),
        "event too large for NOTIFY; sending a resync"
    );
    envelope(
        origin,
        seq,
        Event {
            scope: event.scope,
            kind: EventKind::ResyncRequired,
        },
    )
}

fn envelope(origin: u64, seq: u64, event: Event) -> String {
    serde_json::to_string(&Envelope { origin, seq, event }).unwrap_or_default()
}

/// LISTENs on a dedicated connection and delivers other instances' events locally;
/// reconnects after a drop and then asks every subscriber to resync.
async fn listen_loop(broker: Broker, url: String, origin: u64, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut had_connection = false;
    loop {
        match db::listen(&url).await {
            Ok(mut conn) => {
                backoff = Duration::from_millis(100);
                if had_connection {
                    tracing::info!("event listener reconnected; asking subscribers to resync");
                    broker.publish_local(Event::resync_everywhere());
                }
                had_connection = true;
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                loop {
                    let notification = tokio::select! {
                        n = notifications.next() => n,
                        () = shutdown.cancelled() => return,
                    };
                    match notification {
                        Some(Ok(notification)) => deliver(&broker, origin, &notification.payload),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "event listener connection failed");
                            break;
                        }
                        None => {
                            tracing::warn!("event listener connection closed");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the event listener"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn deliver(broker: &Broker, origin: u64, payload: &str) {
    match serde_json::from_str::<Envelope>(payload) {
        // Our own events were delivered locally when published.
        Ok(envelope) if envelope.origin == origin => {}
        Ok(envelope) => broker.publish_local(envelope.event),
        Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notification"),
    }
}
