//! A socket's outgoing queue, bounded in frames and in bytes.
//!
//! Frames from subscription tasks wait for one of a fixed number of slots, so a slow
//! client holds its own feeds back (they lag and get `ResyncRequired`) rather than the
//! server. Every frame also counts its bytes until the writer has handed it to the socket;
//! a frame that would take the queue past its byte budget is not queued, and the socket
//! is closed instead (see [`Outgoing::overflowed`]): a client that does not read cannot
//! make the server hold more than the budget (plus one message, when the queue was empty).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The writer is gone: the socket is closing anyway.
    Closed,
    /// The frame would take the queue past its byte budget; the socket is to be closed.
    Overflow,
}

/// A frame on its way to the socket, with the bytes and the slot it holds until sent.
pub struct Queued {
    pub message: Message,
    _bytes: Reserved,
    _slot: Option<OwnedSemaphorePermit>,
}

/// The sending side; cheap to clone (one per subscription task).
#[derive(Clone)]
pub struct Outgoing {
    tx: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
}

struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// Slots for subscription frames; control frames do not take one.
    slots: Arc<Semaphore>,
    overflow: CancellationToken,
}

/// Bytes counted against the budget until dropped (sent, or discarded with the queue).
struct Reserved {
    shared: Arc<Shared>,
    bytes: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.shared
            .queued_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Outgoing {
    /// A queue of at most `max_frames` subscription frames and `max_bytes` bytes, and the
    /// receiving end for the writer.
    pub fn channel(max_frames: usize, max_bytes: usize) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        // Unbounded in frames only as a channel: the slots and the byte budget bound it.
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            slots: Arc::new(Semaphore::new(max_frames.max(1))),
            overflow: CancellationToken::new(),
        });
        (Self { tx, shared }, rx)
    }

    /// Queues a frame of a subscription, waiting for a free slot.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        // Bytes first, so a frame waiting for its slot is already counted.
        let bytes = self.reserve(&message)?;
        let slot = Arc::clone(&self.shared.slots)
            .acquire_owned()
            .await
            .map_err(|_| SendError::Closed)?;
        self.push(message, bytes, Some(slot))
    }

    /// Queues a control frame of the connection itself (ack, pong, keep-alive, errors)
    /// without waiting, so the connection keeps reading and timing while the client is
    /// slow; they still count against the byte budget.
    pub fn send_now(&self, message: Message) -> Result<(), SendError> {
        let bytes = self.reserve(&message)?;
        self.push(message, bytes, None)
    }

    /// Queues the close frame, over budget or not: it is the last frame.
    pub fn send_close(&self, message: Message) -> Result<(), SendError> {
        let bytes = Reserved {
            shared: Arc::clone(&self.shared),
            bytes: 0,
        };
        self.push(message, bytes, None)
    }

    /// Completes once a frame was refused for the byte budget.
    pub fn overflowed(&self) -> WaitForCancellationFuture<'_> {
        self.shared.overflow.cancelled()
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> usize {
        self.shared.max_bytes
    }

    fn reserve(&self, message: &Message) -> Result<Reserved, SendError> {
        let bytes = frame_bytes(message);
        let max = self.shared.max_bytes;
        // A frame larger than the whole budget still goes when nothing else is queued
        // (it is bounded by --max-response-bytes), or it could never be sent.
        let reserved =
            self.shared
                .queued_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                    (queued == 0 || queued.saturating_add(bytes) <= max).then(|| queued + bytes)
                });
        match reserved {
            Ok(_) => Ok(Reserved {
                shared: Arc::clone(&self.shared),
                bytes,
            }),
            Err(_) => {
                self.shared.overflow.cancel();
                Err(SendError::Overflow)
            }
        }
    }

    fn push(
        &self,
        message: Message,
        bytes: Reserved,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<(), SendError> {
        self.tx
            .send(Queued {
                message,
                _bytes: bytes,
                _slot: slot,
            })
            .map_err(|_| SendError::Closed)
    }
}

/// Frames written to the socket with one flush, at most: what queued up while the
/// previous flush went out leaves together (one `send` call instead of one each).
const MAX_BATCH: usize = 16;

/// The socket's one writer: every frame, from the connection or its subscription tasks,
/// leaves in queue order; ends after the close frame, when the socket fails, or once every
/// sender is gone.
pub async fn write_all(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    // Frames keep their bytes counted (and slots taken) until the socket has them.
    let mut batch: Vec<Queued> = Vec::new();
    'writing: while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut closing = false;
        for queued in &batch {
            closing = matches!(queued.message, Message::Close(_));
            // The clone shares the payload.
            if sink.feed(queued.message.clone()).await.is_err() {
                break 'writing;
            }
            if closing {
                break;
            }
        }
        if sink.flush().await.is_err() || closing {
            break;
        }
        batch.clear();
    }
    let _ = sink.close().await;
}

/// What a frame weighs against the budget: its payload.
fn frame_bytes(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(frame) => frame.as_ref().map_or(0, |f| f.reason.len()) + 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: usize) -> Message {
        Message::Text("x".repeat(bytes).into())
    }

    #[tokio::test]
    async fn bytes_are_bounded_and_released_once_sent() {
        let (outgoing, mut rx) = Outgoing::channel(64, 100);
        assert_eq!(outgoing.send(text(60)).await, Ok(()));
        assert_eq!(outgoing.send_now(text(40)), Ok(()));
        assert_eq!(outgoing.send_now(text(1)), Err(SendError::Overflow));
        // The refusal is reported once and for all.
        outgoing.overflowed().await;
        drop(rx.recv().await);
        assert_eq!(outgoing.send(text(50)).await, Ok(()));
        assert_eq!(outgoing.send_close(text(1000)), Ok(()));
    }

    #[tokio::test]
    async fn one_frame_over_the_budget_goes_when_the_queue_is_empty() {
        let (outgoing, _rx) = Outgoing::channel(64, 10);
        assert_eq!(outgoing.send(text(50)).await, Ok(()));
        assert_eq!(outgoing.send(text(1)).await, Err(SendError::Overflow));
    }
}
