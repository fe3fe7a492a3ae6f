//! A socket's outgoing queue, bounded in frames and in bytes.
//!
//! Frames from subscription tasks wait for one of a fixed number of slots, so a slow
//! client holds its own feeds back (they lag and get `ResyncRequired`) rather than the
//! server. Every frame also counts its bytes until the writer has handed it to the socket;
//! a frame that would take the queue past its byte budget is not queued, and the socket
//! is closed instead (see [`Outgoing::overflowed`]): a client that does not read cannot
//! make the server hold more than the budget (plus one message, when the queue was empty).
//!
//! A subscription frame that finds nothing queued and the socket free is written by its
//! own task, not handed to the writer task: one task wake-up per delivery instead of two
//! (the hop cost ~8–10 % of the server's CPU fanning out to 1,000 sockets). Order holds:
//! a frame goes directly only when no other frame is queued or being written.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The writer is gone: the socket is closing anyway.
    Closed,
    /// The frame would take the queue past its byte budget; the socket is to be closed.
    Overflow,
    /// Every slot is taken ([`Outgoing::try_send`] only).
    Full,
}

/// A frame on its way to the socket, with the bytes and the slot it holds until sent; no
/// frame when it stands for one written directly whose flush the writer is to finish.
pub struct Queued {
    message: Option<Message>,
    _bytes: Reserved,
    _slot: Option<OwnedSemaphorePermit>,
}

/// The socket's write half.
type Sink = SplitSink<WebSocket, Message>;

/// The sending side; cheap to clone (one per subscription task).
#[derive(Clone)]
pub struct Outgoing {
    tx: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
}

/// What the writer task holds of the queue: the shared socket, but no sender (the writer
/// ends once every sender is gone).
pub struct WriterSide(Arc<Shared>);

struct Shared {
    /// Bytes of the frames queued or being written, direct ones included: zero means
    /// nothing is waiting, so a frame may go directly without passing one queued earlier.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// Slots for subscription frames; control frames do not take one.
    slots: Arc<Semaphore>,
    overflow: CancellationToken,
    /// The socket, once the writer has it and until it ends; whoever writes holds it.
    sink: Mutex<Option<Sink>>,
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
            sink: Mutex::new(None),
        });
        (Self { tx, shared }, rx)
    }

    /// The writer task's handle on the socket (see [`write_all`]).
    pub fn writer_side(&self) -> WriterSide {
        WriterSide(Arc::clone(&self.shared))
    }

    /// Sends a frame of a subscription: written at once when nothing else is queued and
    /// the socket is free, else queued (waiting for a free slot).
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self.write_now(message)? {
            None => Ok(()),
            Some((message, bytes)) => self.queue(message, bytes).await,
        }
    }

    /// [`Outgoing::send`] without waiting: the frame is refused with
    /// [`SendError::Full`] when it would wait for a slot.
    pub fn try_send(&self, message: Message) -> Result<(), SendError> {
        let Some((message, bytes)) = self.write_now(message)? else {
            return Ok(());
        };
        let slot = match Arc::clone(&self.shared.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(TryAcquireError::NoPermits) => return Err(SendError::Full),
            Err(TryAcquireError::Closed) => return Err(SendError::Closed),
        };
        self.push(Some(message), bytes, Some(slot))
    }

    /// Writes `message` when nothing else is queued and the socket is free; else gives
    /// it back, its bytes counted, to be queued.
    fn write_now(&self, message: Message) -> Result<Option<(Message, Reserved)>, SendError> {
        let Some(claimed) = self.claim_idle(&message) else {
            // Bytes first, so a frame waiting for its slot is already counted.
            let bytes = self.reserve(&message)?;
            return Ok(Some((message, bytes)));
        };
        let Ok(mut socket) = self.shared.sink.try_lock() else {
            // The writer has the socket: queue behind it.
            return Ok(Some((message, claimed)));
        };
        let Some(sink) = socket.as_mut() else {
            // Not handed to the writer yet, or the socket is gone (the queue says which).
            return Ok(Some((message, claimed)));
        };
        // Never waits on the client: a socket that cannot take the frame now gets it
        // through the queue, so a client that stops reading still fills the queue up to
        // its byte budget and is closed (see the module comment). Nobody is woken when it
        // could: the writer task takes over whatever is left.
        let mut cx = Context::from_waker(Waker::noop());
        match sink.poll_ready_unpin(&mut cx) {
            Poll::Pending => return Ok(Some((message, claimed))),
            Poll::Ready(Err(_)) => return Err(SendError::Closed),
            Poll::Ready(Ok(())) => {}
        }
        if sink.start_send_unpin(message).is_err() {
            return Err(SendError::Closed);
        }
        match sink.poll_flush_unpin(&mut cx) {
            Poll::Ready(Ok(())) => Ok(None),
            Poll::Ready(Err(_)) => Err(SendError::Closed),
            // Part of it is still to go: the writer finishes the flush, and the frame's
            // bytes stay counted (and later frames behind it) until then.
            Poll::Pending => self.push(None, claimed, None).map(|()| None),
        }
    }

    /// Counts `message` as the only frame in flight when nothing is queued or being
    /// written; `None` otherwise.
    fn claim_idle(&self, message: &Message) -> Option<Reserved> {
        let bytes = frame_bytes(message);
        self.shared
            .queued_bytes
            .compare_exchange(0, bytes, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Reserved {
                shared: Arc::clone(&self.shared),
                bytes,
            })
    }

    /// Queues a frame whose bytes are counted, once a slot is free.
    async fn queue(&self, message: Message, bytes: Reserved) -> Result<(), SendError> {
        let slot = Arc::clone(&self.shared.slots)
            .acquire_owned()
            .await
            .map_err(|_| SendError::Closed)?;
        self.push(Some(message), bytes, Some(slot))
    }

    /// Queues a control frame of the connection itself (ack, pong, keep-alive, errors)
    /// without waiting, so the connection keeps reading and timing while the client is
    /// slow; they still count against the byte budget.
    pub fn send_now(&self, message: Message) -> Result<(), SendError> {
        let bytes = self.reserve(&message)?;
        self.push(Some(message), bytes, None)
    }

    /// Queues the close frame, over budget or not: it is the last frame.
    pub fn send_close(&self, message: Message) -> Result<(), SendError> {
        let bytes = Reserved {
            shared: Arc::clone(&self.shared),
            bytes: 0,
        };
        self.push(Some(message), bytes, None)
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
        message: Option<Message>,
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

/// The socket's writer for queued frames: every frame, from the connection or its
/// subscription tasks, leaves in queue order (and after any written directly before it);
/// ends after the close frame, when the socket fails, or once every sender is gone.
pub async fn write_all(sink: Sink, mut queue: mpsc::UnboundedReceiver<Queued>, side: WriterSide) {
    let shared = side.0;
    *shared.sink.lock().await = Some(sink);
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
        let mut socket = shared.sink.lock().await;
        let Some(sink) = socket.as_mut() else {
            break;
        };
        let mut closing = false;
        for queued in &batch {
            let Some(message) = &queued.message else {
                continue; // written already; the flush below finishes it
            };
            closing = matches!(message, Message::Close(_));
            // The clone shares the payload.
            if sink.feed(message.clone()).await.is_err() {
                break 'writing;
            }
            if closing {
                break;
            }
        }
        if sink.flush().await.is_err() || closing {
            break;
        }
        drop(socket);
        batch.clear();
    }
    // Taken out, so a subscription task finds the socket gone rather than writing after
    // the close frame.
    let sink = shared.sink.lock().await.take();
    if let Some(mut sink) = sink {
        let _ = sink.close().await;
    }
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
