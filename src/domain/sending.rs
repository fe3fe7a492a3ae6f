//! Sends to one chat, grouped: while one transaction for a chat runs, the sends that
//! arrive for that chat queue up, and the next transaction stores all of them at once.
//!
//! Every send to a chat must wait for the previous one's commit (the chat's lock keeps ids
//! visible in order), so under load a hot chat is limited by how many transactions it can
//! run one after another, not by how much work each send is. One transaction per batch
//! shares the BEGIN, the lock and the COMMIT among its sends. Each send keeps its own
//! checks and its own answer; events are published after the commit, in id order.
//!
//! One task per chat runs these transactions, so sends from this process take turns here
//! and never queue on PostgreSQL's row lock, where waiting costs the database dearly:
//! every commit wakes all waiters to re-check the row (measured: 8 concurrent senders into
//! one chat spent ~0.5 ms more database CPU per send). The row lock still orders sends
//! from other instances.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::app::App;
use crate::db::messages::Message;
use crate::domain::ids::UserId;
use crate::domain::messages::{self, SendMessage};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind};

/// Most sends one transaction stores.
const MAX_BATCH: usize = 64;

/// A send waiting for its chat's next transaction.
struct Queued {
    caller: UserId,
    input: SendMessage,
    reply: oneshot::Sender<AppResult<Message>>,
}

/// The sends waiting, per chat. A chat has an entry exactly while a task is storing its
/// sends (see [`submit`]).
#[derive(Default)]
pub struct SendQueues {
    waiting: Mutex<HashMap<i64, Vec<Queued>>>,
}

impl SendQueues {
    fn waiting(&self) -> MutexGuard<'_, HashMap<i64, Vec<Queued>>> {
        // Every change is a push or a take; a poisoned map is still consistent.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a send; true when no task is storing this chat's sends yet.
    fn push(&self, chat_id: i64, send: Queued) -> bool {
        match self.waiting().entry(chat_id) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(send);
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(vec![send]);
                true
            }
        }
    }

    /// The next sends of a chat, oldest first; none (and the chat's entry removed, so the
    /// next send starts a new task) when nothing is waiting.
    fn take(&self, chat_id: i64) -> Vec<Queued> {
        let mut waiting = self.waiting();
        let Some(queue) = waiting.get_mut(&chat_id) else {
            return Vec::new();
        };
        if queue.is_empty() {
            waiting.remove(&chat_id);
            return Vec::new();
        }
        let count = queue.len().min(MAX_BATCH);
        queue.drain(..count).collect()
    }

    /// Drops a chat's entry and what waits in it (their senders get an error).
    fn abandon(&self, chat_id: i64) {
        self.waiting().remove(&chat_id);
    }
}

/// Stores a send with the others waiting for its chat and returns its message.
pub async fn submit(app: &App, caller: UserId, input: SendMessage) -> AppResult<Message> {
    let chat_id = input.chat_id.0;
    let (reply, answer) = oneshot::channel();
    let send = Queued {
        caller,
        input,
        reply,
    };
    if app.sends().push(chat_id, send) {
        // Its own task: a client that hangs up must not cancel the others' sends.
        tokio::spawn(store_queued(app.clone(), chat_id));
    }
    answer
        .await
        .map_err(|_| AppError::Internal("a queued send was dropped".into()))?
}

/// Removes the chat's entry if the task storing its sends panics, so later sends start a
/// new task instead of waiting forever.
struct AbandonOnPanic<'a> {
    app: &'a App,
    chat_id: i64,
}

impl Drop for AbandonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.app.sends().abandon(self.chat_id);
        }
    }
}

/// Stores a chat's queued sends, batch after batch, until none are waiting.
async fn store_queued(app: App, chat_id: i64) {
    let _guard = AbandonOnPanic { app: &app, chat_id };
    loop {
        let batch = app.sends().take(chat_id);
        if batch.is_empty() {
            return;
        }
        store_batch(&app, chat_id, batch).await;
    }
}

/// Stores a batch in one transaction and answers each send. When the transaction fails as
/// a whole (a database error: a lost race on a `clientId`, a dropped connection), each send
/// is retried in a transaction of its own, so one cannot fail the others.
async fn store_batch(app: &App, chat_id: i64, batch: Vec<Queued>) {
    let together = app
        .db()
        .transaction(async |conn| {
            let mut outcomes = Vec::with_capacity(batch.len());
            for send in &batch {
                match messages::store(conn, send.caller, &send.input).await {
                    Err(AppError::Db(e)) => return Err(AppError::Db(e)),
                    outcome => outcomes.push(outcome),
                }
            }
            Ok(outcomes)
        })
        .await;
    let outcomes = match together {
        Ok(outcomes) => outcomes,
        Err(e) => {
            if batch.len() > 1 {
                tracing::debug!(error = %e, sends = batch.len(), "batch failed; storing one by one");
            }
            let mut outcomes = Vec::with_capacity(batch.len());
            for send in &batch {
                outcomes.push(messages::store_alone(app, send.caller, &send.input).await);
            }
            outcomes
        }
    };
    let added: Vec<Event> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Ok((message, true)) => Some(Event {
                chat_id,
                kind: EventKind::MessageAdded {
                    message_id: message.id,
                    sender_id: message.sender_id,
                },
            }),
            _ => None,
        })
        .collect();
    app.broker().publish(added);
    for (send, outcome) in batch.into_iter().zip(outcomes) {
        // The sender may have hung up; its message is stored all the same.
        let _ = send.reply.send(outcome.map(|(message, _)| message));
    }
}
