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

use async_graphql::InputObject;
use chrono::NaiveDateTime;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::app::App;
use crate::db::members::Member;
use crate::db::messages::Message;
use crate::db::messages::NewMessage;
use crate::db::{self, DbConn};
use crate::domain::access::{not_a_member, senders_locked};
use crate::domain::attachments::{self, Attachable};
use crate::domain::blocks;
use crate::domain::mentions::{self, Mentionable};
use crate::domain::messages::check_content;
use crate::domain::sessions::session_for_send;
use crate::domain::{check_trace_id, json_to_text, now};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind, Tx};
use crate::vocabulary::enums::{ChatKind, MessageKind, MessageRole, StreamState};
use crate::vocabulary::ids::{AttachmentId, ChatId, MessageId, SessionId, UserId};

/// Longest client-chosen idempotency key.
pub const MAX_CLIENT_ID: usize = 128;

// The GraphQL input itself (its doc comments are the schema's descriptions), not a copy
// mapped onto a domain command.
/// A message to send.
#[derive(Debug, InputObject)]
#[graphql(name = "SendMessageInput")]
pub struct SendMessage {
    /// The chat to send to.
    pub chat_id: ChatId,
    /// The text (not blank unless `stream` is true; at most the configured length).
    pub content: String,
    /// What it carries (default TEXT). SYSTEM is for the chat's OWNER or ADMIN.
    pub kind: Option<MessageKind>,
    /// LLM-style role (default USER, or ASSISTANT for bots). ASSISTANT is for bot users
    /// only; SYSTEM for the chat's OWNER or ADMIN.
    pub role: Option<MessageRole>,
    /// The message this one replies to.
    pub parent_id: Option<MessageId>,
    /// Client-chosen idempotency key: resending with the same key returns the original.
    pub client_id: Option<String>,
    /// Free-form data.
    pub data: Option<serde_json::Value>,
    /// True starts an assistant reply in STREAMING state (bot users only).
    pub stream: Option<bool>,
    /// The caller's trace id (e.g. an assistant pipeline's W3C trace id), stored with the
    /// message and logged, so a trace can be followed through chatql: at most 128
    /// printable ASCII characters.
    pub trace_id: Option<String>,
    /// Members this message mentions (at most 50), besides the members its content names
    /// as `@username`. Each must be a member of the chat.
    pub mentions: Option<Vec<UserId>>,
    /// Pending uploads of the sender's into this chat (`uploadAttachment`, or
    /// `requestUpload` and its PUT) that the message carries, in this order: at most 10.
    /// A message with attachments may have empty content.
    pub attachment_ids: Option<Vec<AttachmentId>>,
    /// When it was sent, for messages imported from another system (`importMessages`);
    /// a send is stored at the time it arrives. Not part of the GraphQL input.
    #[graphql(skip)]
    pub sent_at: Option<NaiveDateTime>,
}

impl SendMessage {
    /// Whether this starts an assistant reply in the STREAMING state (its content may
    /// then start empty).
    fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    fn attachment_ids(&self) -> &[AttachmentId] {
        self.attachment_ids.as_deref().unwrap_or_default()
    }
}

/// Most sends one transaction stores.
const MAX_BATCH: usize = 64;

/// A send waiting for its chat's next transaction.
struct Queued {
    caller: UserId,
    input: SendMessage,
    reply: oneshot::Sender<AppResult<Message>>,
}

/// The sends waiting, per chat: one per server (the GraphQL schema holds it). A chat has
/// an entry exactly while a task is storing its sends (see [`submit`]).
#[derive(Clone)]
pub struct SendQueues {
    app: App,
    waiting: Arc<Mutex<HashMap<i64, Vec<Queued>>>>,
}

impl SendQueues {
    /// Queues for sends through `app`.
    pub fn new(app: App) -> Self {
        Self {
            app,
            waiting: Arc::default(),
        }
    }

    /// Sends a message (members only). A repeated `clientId` from the same sender in the
    /// same chat returns the original message instead of storing a duplicate.
    pub async fn send(&self, caller: UserId, input: SendMessage) -> AppResult<Message> {
        send(self, caller, input).await
    }

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

/// Sends a message (members only). A repeated `clientId` from the same sender in the same
/// chat returns the original message instead of storing a duplicate.
async fn send(queues: &SendQueues, caller: UserId, input: SendMessage) -> AppResult<Message> {
    // Checked before the send joins a batch: a refusal inside the batch's transaction
    // would fail the others' sends too.
    check_input(&queues.app, &input)?;
    let sent = submit(queues, caller, input).await?;
    if let Some(trace_id) = &sent.trace_id {
        tracing::info!(
            trace_id = %trace_id,
            message = %sent.id.to_global(),
            chat = %sent.chat_id.to_global(),
            "message sent"
        );
    }
    Ok(sent)
}

/// The checks of a send's input that need no database.
fn check_input(app: &App, input: &SendMessage) -> AppResult<()> {
    check_content(
        app,
        &input.content,
        input.stream() || !input.attachment_ids().is_empty(),
    )?;
    if let Some(client_id) = &input.client_id
        && (client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID)
    {
        return Err(AppError::BadInput(format!(
            "`clientId` must be 1–{MAX_CLIENT_ID} characters"
        )));
    }
    check_trace_id(input.trace_id.as_deref())?;
    mentions::check_requested(input.mentions.as_deref())?;
    json_to_text("data", input.data.as_ref())?;
    Ok(())
}

/// Most messages one `importMessages` call stores.
pub const MAX_IMPORTED: usize = 100;
/// How far ahead of this server's clock an imported message's time may be (the other
/// system's clock may run a little ahead).
const IMPORT_CLOCK_SKEW_SECS: i64 = 60;

/// A message from another system: who sent it, and the send (with `sent_at` and a
/// `client_id`).
pub struct Imported {
    pub sender: UserId,
    pub input: SendMessage,
}

/// Stores messages another system already has (admin key): each with its own sender
/// (a member of the chat, held to the rules of a send) and time, all of them or none, in
/// their order. A `clientId` already stored for its sender answers with that message, so
/// a sync that repeats itself adds nothing. Subscribers get them as they get sends.
pub async fn import(
    app: &App,
    caller: &crate::auth::Caller,
    chat: ChatId,
    messages: Vec<Imported>,
) -> AppResult<Vec<Message>> {
    caller.require_admin()?;
    if messages.len() > MAX_IMPORTED {
        return Err(AppError::LimitExceeded(format!(
            "at most {MAX_IMPORTED} messages per importMessages"
        )));
    }
    let latest = now() + chrono::Duration::seconds(IMPORT_CLOCK_SKEW_SECS);
    for imported in &messages {
        check_input(app, &imported.input)?;
        if imported.input.client_id.is_none() {
            return Err(AppError::BadInput(
                "an imported message needs a `clientId`".into(),
            ));
        }
        if imported.input.sent_at.is_some_and(|at| at > latest) {
            return Err(AppError::BadInput("`createdAt` is in the future".into()));
        }
    }
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let timeout = app.config().session_timeout_secs;
    app.write(async |tx| {
        let sends: Vec<(UserId, &SendMessage)> = messages
            .iter()
            .map(|imported| (imported.sender, &imported.input))
            .collect();
        store(tx, chat, &sends, timeout)
            .await?
            .into_iter()
            .map(|outcome| outcome.map(|(message, _)| message))
            .collect()
    })
    .await
}

/// What a send was: its message, and whether this send stored it (false: a repeated
/// `clientId`, answered with the message first sent with it).
type Stored = (Message, bool);

/// The writes of a batch of sends to `chat`, in order, in a transaction that only this
/// module starts (it runs one transaction per chat at a time). Each send gets its own
/// outcome: its checks fail it alone, and leave the transaction as it was. Only an
/// `AppError::Db` fails the whole batch, since the transaction is then unusable.
///
/// Everything a batch needs to read comes first, one query for all its sends: the senders'
/// memberships (which lock the chat's row before any message id is allocated, so sends to
/// one chat commit in id order, see `db::messages::insert_newest`), then the messages of
/// their `clientId`s and their parents, when they gave any. The next batch for this chat
/// waits for all of it, so it is kept to a few statements whatever the batch's size.
async fn store(
    tx: &mut Tx<'_>,
    chat: ChatId,
    sends: &[(UserId, &SendMessage)],
    session_timeout_secs: u64,
) -> AppResult<Vec<AppResult<Stored>>> {
    let mut senders: Vec<UserId> = sends.iter().map(|(caller, _)| *caller).collect();
    senders.sort_unstable();
    senders.dedup();
    // A deleted user has no memberships left: FORBIDDEN.
    let (members, activity) = match senders_locked(tx, chat, &senders).await {
        Ok(found) => found,
        // No such chat: every send fails the same way.
        Err(AppError::NotFound(what)) => {
            return Ok(sends
                .iter()
                .map(|_| Err(AppError::NotFound(what)))
                .collect());
        }
        Err(e) => return Err(e),
    };
    let client_ids: Vec<&str> = sends
        .iter()
        .filter_map(|(_, input)| input.client_id.as_deref())
        .collect();
    let mut by_client_id: HashMap<(UserId, String), Message> = HashMap::new();
    if !client_ids.is_empty() {
        for message in db::messages::find_by_client_ids(tx, chat, &senders, &client_ids).await? {
            if let (Some(sender), Some(client_id)) = (message.sender_id, message.client_id.clone())
            {
                by_client_id.insert((sender, client_id), message);
            }
        }
    }
    let parent_ids: Vec<MessageId> = sends
        .iter()
        .filter_map(|(_, input)| input.parent_id)
        .collect();
    let parents: HashMap<MessageId, ChatId> = if parent_ids.is_empty() {
        HashMap::new()
    } else {
        db::messages::chats_of(tx, &parent_ids)
            .await?
            .into_iter()
            .collect()
    };
    // Who the batch's sends may mention: looked up only when one of them names anyone.
    let mentionable = mentionable_members(tx, chat, sends).await?;
    let requested: Vec<AttachmentId> = sends
        .iter()
        .flat_map(|(_, input)| input.attachment_ids().iter().copied())
        .collect();
    let mut attachable = Attachable::load(tx, &requested).await?;
    // In a direct chat, a block either way stops both members' sends.
    let direct_blocks = match &activity {
        Some(activity) if activity.kind == ChatKind::Direct => {
            blocks::in_direct_chat(tx, chat).await?
        }
        _ => Vec::new(),
    };
    let mut mentioned = Vec::new();
    // The batch's session, decided at its first stored message (a batch whose sends all
    // fail opens none).
    let mut session = None;
    let mut outcomes = Vec::with_capacity(sends.len());
    for (caller, input) in sends {
        let Some(sender) = members.get(caller) else {
            outcomes.push(Err(not_a_member()));
            continue;
        };
        // A repeated `clientId` is answered with the original, whatever else it says.
        let key = input.client_id.clone().map(|c| (*caller, c));
        if let Some(existing) = key.as_ref().and_then(|k| by_client_id.get(k)) {
            outcomes.push(Ok((existing.clone(), false)));
            continue;
        }
        let checked = match blocks::direct_refusal(&direct_blocks, *caller) {
            Some(refused) => Err(refused),
            None => check_send(input, sender, &parents, chat),
        };
        let checked = checked.and_then(|role| {
            let names = mentionable.resolve(*caller, input.mentions.as_deref(), &input.content);
            let names = names?;
            attachable.take(chat, *caller, input.attachment_ids())?;
            Ok((role, names))
        });
        let (role, mentions) = match checked {
            Ok(checked) => checked,
            Err(refused) => {
                outcomes.push(Err(refused));
                continue;
            }
        };
        let session_id = match (session, &activity) {
            (Some(id), _) => id,
            (None, Some(activity)) => {
                let id = session_for_send(tx, chat, activity, session_timeout_secs).await?;
                session = Some(id);
                id
            }
            // A sender was found, so the chat's activity was read with it.
            (None, None) => return Err(AppError::NotFound("chat")),
        };
        let message = insert(tx, chat, *caller, input, role, session_id).await?;
        attachments::attach(tx, message.id, input.attachment_ids()).await?;
        mentioned.extend(mentions.into_iter().map(|user| (chat, message.id, user)));
        if let Some(parent) = input.parent_id {
            db::threads::set_last_reply(tx, parent, message.id).await?;
        }
        tx.emit_with_message(
            Event::in_chat(
                chat,
                EventKind::MessageAdded {
                    message_id: message.id,
                    sender_id: Some(*caller),
                },
            )
            .in_thread(input.parent_id),
            message.clone(),
        );
        if let Some(key) = key {
            by_client_id.insert(key, message.clone());
        }
        outcomes.push(Ok((message, true)));
    }
    db::mentions::insert(tx, &mentioned).await?;
    Ok(outcomes)
}

/// The members the batch's sends may mention: those whose ids they name and those whose
/// usernames their texts name (one query, and none when no send names anyone).
async fn mentionable_members(
    tx: &mut Tx<'_>,
    chat: ChatId,
    sends: &[(UserId, &SendMessage)],
) -> AppResult<Mentionable> {
    let naming: Vec<_> = sends
        .iter()
        .filter(|(_, input)| mentions::may_mention(input.mentions.as_deref(), &input.content))
        .collect();
    if naming.is_empty() {
        return Ok(Mentionable::default());
    }
    let mut ids: Vec<UserId> = naming
        .iter()
        .flat_map(|(_, input)| input.mentions.iter().flatten().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut names: Vec<String> = naming
        .iter()
        .flat_map(|(_, input)| mentions::usernames_in(&input.content))
        .collect();
    names.sort_unstable();
    names.dedup();
    let senders: Vec<UserId> = naming.iter().map(|(caller, _)| *caller).collect();
    Mentionable::load(tx, chat, &ids, &names, &senders).await
}

/// The rules a member's send must pass before it is stored; the role it is stored with.
/// `sender` is the membership and whether the sender is a bot; `parent_chats` the chat of
/// every parent the batch names.
fn check_send(
    input: &SendMessage,
    (member, sender_is_bot): &(Member, bool),
    parent_chats: &HashMap<MessageId, ChatId>,
    chat: ChatId,
) -> AppResult<MessageRole> {
    let role = input.role.unwrap_or(if *sender_is_bot {
        MessageRole::Assistant
    } else {
        MessageRole::User
    });
    // System notices speak for the chat: a plain member must not be able to fake one,
    // whether as the role or as the kind.
    let system = role == MessageRole::System || input.kind == Some(MessageKind::System);
    if system && !member.role.can_manage() {
        return Err(AppError::Forbidden(
            "only the chat's OWNER or ADMIN may send SYSTEM messages".into(),
        ));
    }
    // Assistant replies (and the streams they arrive in) come from bots: a person must not
    // pass their words off as the model's.
    if !*sender_is_bot && (role == MessageRole::Assistant || input.stream()) {
        return Err(AppError::Forbidden(
            "only bot users send ASSISTANT messages and stream replies".into(),
        ));
    }
    // A parent in another chat is answered like a missing one: whether the caller may see
    // that chat or not, the answer must not tell that the message exists.
    if let Some(parent) = input.parent_id
        && parent_chats.get(&parent) != Some(&chat)
    {
        return Err(AppError::NotFound("parent message"));
    }
    Ok(role)
}

/// Stores one checked send as its chat's newest message.
async fn insert(
    conn: &mut DbConn,
    chat: ChatId,
    caller: UserId,
    input: &SendMessage,
    role: MessageRole,
    session_id: SessionId,
) -> AppResult<Message> {
    let stored_at = now();
    Ok(db::messages::insert_newest(
        conn,
        &NewMessage {
            chat_id: chat,
            sender_id: Some(caller),
            role,
            kind: input.kind.unwrap_or(MessageKind::Text),
            content: &input.content,
            data: json_to_text("data", input.data.as_ref())?,
            parent_id: input.parent_id,
            client_id: input.client_id.as_deref(),
            stream_state: input.stream().then_some(StreamState::Streaming),
            created_at: input.sent_at.unwrap_or(stored_at),
            trace_id: input.trace_id.as_deref(),
            session_id: Some(session_id),
            stored_at: input.sent_at.map_or(stored_at, |sent| sent.max(stored_at)),
        },
    )
    .await?)
}

/// One send in its own transaction. A concurrent retry with the same `clientId` that won
/// the insert is answered with its message.
async fn store_alone(app: &App, caller: UserId, input: &SendMessage) -> AppResult<Stored> {
    let chat = input.chat_id;
    let timeout = app.config().session_timeout_secs;
    let attempt = app
        .write(async |tx| {
            let mut outcomes = store(tx, chat, &[(caller, input)], timeout).await?;
            outcomes
                .pop()
                .unwrap_or(Err(AppError::Internal("a send without an outcome".into())))
        })
        .await;
    match attempt {
        Err(AppError::Db(e)) if e.is_unique_violation() => {
            let client_id = input.client_id.as_deref().unwrap_or_default();
            let mut conn = app.db().conn().await?;
            let existing =
                db::messages::find_by_client_ids(&mut conn, chat, &[caller], &[client_id])
                    .await?
                    .into_iter()
                    .next()
                    .ok_or(AppError::Db(e))?;
            Ok((existing, false))
        }
        other => other,
    }
}

/// Stores a send with the others waiting for its chat and returns its message.
async fn submit(queues: &SendQueues, caller: UserId, input: SendMessage) -> AppResult<Message> {
    let chat_id = input.chat_id.0;
    let (reply, answer) = oneshot::channel();
    let send = Queued {
        caller,
        input,
        reply,
    };
    if queues.push(chat_id, send) {
        // Its own task: a client that hangs up must not cancel the others' sends.
        tokio::spawn(store_queued(queues.clone(), chat_id));
    }
    answer
        .await
        .map_err(|_| AppError::Internal("a queued send was dropped".into()))?
}

/// Removes the chat's entry if the task storing its sends panics, so later sends start a
/// new task instead of waiting forever.
struct AbandonOnPanic<'a> {
    queues: &'a SendQueues,
    chat_id: i64,
}

impl Drop for AbandonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.queues.abandon(self.chat_id);
        }
    }
}

/// Stores a chat's queued sends, batch after batch, until none are waiting.
async fn store_queued(queues: SendQueues, chat_id: i64) {
    let _guard = AbandonOnPanic {
        queues: &queues,
        chat_id,
    };
    loop {
        let batch = queues.take(chat_id);
        if batch.is_empty() {
            return;
        }
        store_batch(&queues.app, chat_id, batch).await;
    }
}

/// Stores a batch in one transaction and answers each send. When the transaction fails as
/// a whole (a database error: a lost race on a `clientId`, a dropped connection), each send
/// is retried in a transaction of its own, so one cannot fail the others.
async fn store_batch(app: &App, chat_id: i64, batch: Vec<Queued>) {
    let timeout = app.config().session_timeout_secs;
    let together = app
        .write(async |tx| {
            let sends: Vec<(UserId, &SendMessage)> = batch
                .iter()
                .map(|send| (send.caller, &send.input))
                .collect();
            store(tx, ChatId(chat_id), &sends, timeout).await
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
                outcomes.push(store_alone(app, send.caller, &send.input).await);
            }
            outcomes
        }
    };
    for (send, outcome) in batch.into_iter().zip(outcomes) {
        // The sender may have hung up; its message is stored all the same.
        let _ = send.reply.send(outcome.map(|(message, _)| message));
    }
}
