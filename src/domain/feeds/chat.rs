//! A chat's events for one member, with gapless resume: the feed subscribes before it
//! reads, replays the backlog after a message, and then goes live. A subscriber that falls
//! behind the channel's capacity is told to resync; an event is never dropped silently.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast::error::RecvError;

use crate::app::App;
use crate::db;
use crate::db::messages::Message;
use crate::domain::access::{MEMBERSHIP_RECHECK, first_membership_recheck, member_of};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::{Delivered, DirectFeed, Event, EventKind, HandBack, Receiver};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// Messages read from the database per replay batch.
const REPLAY_BATCH: i64 = 100;

/// What a chat feed yields.
#[derive(Clone, Debug)]
pub enum ChatFeedItem {
    /// A message from the backlog replay (`after`), sent before going live.
    Replayed(Message),
    /// A live event.
    Live(Arc<Delivered>),
    /// The subscriber missed events; it must re-query after `last_message_id`.
    Resync { last_message_id: Option<MessageId> },
}

/// A chat's events for one member, optionally resuming after a message.
pub struct ChatFeed {
    app: App,
    user: UserId,
    chat: ChatId,
    live: Receiver,
    /// A thread feed's root: only its replies' events (and its own) are delivered.
    thread: Option<MessageId>,
    backlog: VecDeque<Message>,
    /// Where the replay continues; `None` once it has caught up.
    replay_after: Option<MessageId>,
    /// Everything up to here came from the replay: live copies are dropped.
    replayed_up_to: MessageId,
    /// Newest message delivered, for the resync cursor.
    last_message_id: Option<MessageId>,
    finished: bool,
    /// An event handed back by the chat's stage (see [`ChatFeed::attach`]), handled
    /// before anything its receiver holds.
    handed_back: Option<Arc<Delivered>>,
    /// Fires when membership is checked again if nothing else checks it first (one timer
    /// per feed, reset after each check, not one per event).
    recheck: Pin<Box<tokio::time::Sleep>>,
}

impl ChatFeed {
    /// Subscribes to the live feed first, then checks membership, so nothing committed
    /// after this call can be missed; with `after`, messages after it are replayed first.
    pub async fn open(
        app: &App,
        user: UserId,
        chat: ChatId,
        after: Option<MessageId>,
    ) -> AppResult<Self> {
        Self::open_in(app, user, chat, None, after).await
    }

    /// [`ChatFeed::open`] for one thread of the chat: the events about `thread` (its
    /// root message) and its replies, and those that end the feed; with `after`, its
    /// replies after it are replayed first. A root that is not a message of the chat is
    /// `NOT_FOUND`.
    pub async fn open_in(
        app: &App,
        user: UserId,
        chat: ChatId,
        thread: Option<MessageId>,
        after: Option<MessageId>,
    ) -> AppResult<Self> {
        let live = app.broker().subscribe_chat(chat);
        let mut conn = app.db().conn().await?;
        member_of(&mut conn, chat, user).await?;
        if let Some(root) = thread {
            let found = db::messages::find(&mut conn, root).await?;
            if found.is_none_or(|m| m.chat_id != chat) {
                return Err(AppError::NotFound("thread"));
            }
        }
        Ok(Self {
            app: app.clone(),
            user,
            chat,
            live,
            thread,
            backlog: VecDeque::new(),
            replay_after: after,
            replayed_up_to: after.unwrap_or(MessageId(0)),
            last_message_id: after,
            finished: false,
            handed_back: None,
            recheck: Box::pin(tokio::time::sleep(first_membership_recheck())),
        })
    }

    /// The chat it follows.
    pub fn chat(&self) -> ChatId {
        self.chat
    }

    /// Who sees which event in this feed, from now on while it is live.
    pub fn filter(&self) -> FeedFilter {
        FeedFilter {
            chat: self.chat,
            user: self.user,
            thread: self.thread,
            replayed_up_to: self.replayed_up_to,
        }
    }

    /// Once the feed is live and has handed on everything it received: has the chat's
    /// stage offer its events to `direct` from the next one on, instead of this feed
    /// (`events::routes`), until the stage hands the feed back ([`ChatFeed::resume`]).
    /// `false` when it cannot now; the feed goes on as before.
    pub fn attach(&self, direct: Weak<dyn DirectFeed>) -> bool {
        let idle = !self.finished
            && self.replay_after.is_none()
            && self.backlog.is_empty()
            && self.handed_back.is_none();
        idle && self.live.attach(direct)
    }

    /// The feed back from the stage: it handles `back.event` next, then listens on
    /// `back.receiver`. `last_message_id` is the newest message delivered meanwhile.
    pub fn resume(&mut self, back: HandBack, last_message_id: Option<MessageId>) {
        self.live = back.receiver;
        self.handed_back = Some(back.event);
        self.last_message_id = self.last_message_id.max(last_message_id);
    }

    /// While attached: checks membership when it is due, as [`ChatFeed::next`] does; the
    /// end of the feed when the subscriber is no longer a member. Cancel-safe (a check
    /// cancelled midway is skipped until the next is due).
    pub async fn recheck_membership(&mut self) -> AppResult<ChatFeedItem> {
        loop {
            self.recheck.as_mut().await;
            if let Some(ended) = Box::pin(self.end_unless_member()).await {
                return ended;
            }
        }
    }

    /// The next item; `None` when the feed ended (the member left, the chat was deleted).
    pub async fn next(&mut self) -> Option<AppResult<ChatFeedItem>> {
        if self.finished {
            return None;
        }
        while let Some(after) = self.replay_after {
            if let Some(message) = self.backlog.pop_front() {
                self.last_message_id = Some(message.id);
                return Some(Ok(ChatFeedItem::Replayed(message)));
            }
            // Boxed, like every database call of a feed: a future holds the space of its
            // largest await point for as long as it lives, and an idle feed waits on its
            // channel for hours (see `graphql::live`).
            let batch = Box::pin(self.replay_batch(after)).await;
            match batch {
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e.into()));
                }
                Ok(batch) if batch.is_empty() => self.replay_after = None,
                Ok(batch) => {
                    let newest = batch.last().map_or(after, |m| m.id);
                    self.replay_after = Some(newest);
                    self.replayed_up_to = newest;
                    self.backlog.extend(batch);
                }
            }
        }
        loop {
            if let Some(event) = self.handed_back.take() {
                if let Some(item) = self.live_item(event).await {
                    return Some(item);
                }
                continue;
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                () = self.recheck.as_mut() => {
                    // A removal whose event this feed never saw (another instance's bridge
                    // dropped it) still ends the feed, at the latest after this interval.
                    if let Some(ended) = Box::pin(self.end_unless_member()).await {
                        return Some(ended);
                    }
                    continue;
                }
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => return Some(Box::pin(self.resync()).await),
                Err(RecvError::Closed) => return None,
            };
            if let Some(item) = self.live_item(event).await {
                return Some(item);
            }
        }
    }

    /// What a live event makes of the feed's next item; `None` when it is not for it.
    async fn live_item(&mut self, event: Arc<Delivered>) -> Option<AppResult<ChatFeedItem>> {
        match self.filter().step(&event) {
            ChatFeedStep::Skip => return None,
            ChatFeedStep::Resync => return Some(Box::pin(self.resync()).await),
            ChatFeedStep::Deliver => {}
            ChatFeedStep::DeliverLast => self.finished = true,
        }
        if let EventKind::MessageAdded { message_id, .. } = &event.kind {
            self.last_message_id = self.last_message_id.max(Some(*message_id));
        }
        self.app.metrics().event_delivered();
        Some(Ok(ChatFeedItem::Live(event)))
    }
}

/// Who sees which event in one member's chat feed once it is live: the one place that
/// decides it, with an arm for every kind of event.
#[derive(Clone, Copy, Debug)]
pub struct FeedFilter {
    chat: ChatId,
    user: UserId,
    /// A thread feed's root.
    thread: Option<MessageId>,
    /// Messages up to here came from the replay.
    replayed_up_to: MessageId,
}

/// What a live event means to a member's chat feed.
pub enum ChatFeedStep {
    /// Not for this feed.
    Skip,
    /// Deliver it.
    Deliver,
    /// Deliver it, and end the feed (the member left, the chat is gone).
    DeliverLast,
    /// Events were missed.
    Resync,
}

impl FeedFilter {
    /// What `event` means to the feed.
    pub fn step(&self, event: &Event) -> ChatFeedStep {
        if !event.concerns(self.chat) {
            return ChatFeedStep::Skip;
        }
        if let Some(root) = self.thread {
            return self.thread_step(root, event);
        }
        let me = self.user;
        match &event.kind {
            EventKind::MessageAdded { message_id, .. } => {
                if *message_id <= self.replayed_up_to {
                    ChatFeedStep::Skip // already sent by the replay
                } else {
                    ChatFeedStep::Deliver
                }
            }
            // Members do not hear themselves typing.
            EventKind::Typing { user_id, .. } if *user_id == me => ChatFeedStep::Skip,
            EventKind::MemberLeft { user_id } if *user_id == me => ChatFeedStep::DeliverLast,
            EventKind::ChatDeleted => ChatFeedStep::DeliverLast,
            EventKind::ResyncRequired => ChatFeedStep::Resync,
            // About a user's account, in no chat (`concerns` is false for it); the user's
            // socket closes on its own.
            EventKind::TokensRevoked => ChatFeedStep::Skip,
            EventKind::MessageEdited { .. }
            | EventKind::MessageRetracted { .. }
            | EventKind::MessageDeleted { .. }
            | EventKind::MessageDelta { .. }
            | EventKind::ReplyInterrupted { .. }
            | EventKind::ReactionChanged { .. }
            | EventKind::MessagePinned { .. }
            | EventKind::MessageUnpinned { .. }
            | EventKind::SessionStarted { .. }
            | EventKind::SessionEnded { .. }
            | EventKind::ReadReceipt { .. }
            | EventKind::DeliveryReceipt { .. }
            | EventKind::Typing { .. }
            | EventKind::MemberJoined { .. }
            | EventKind::MemberLeft { .. }
            | EventKind::MemberUpdated { .. }
            | EventKind::ChatUpdated => ChatFeedStep::Deliver,
        }
    }

    /// [`ChatFeed::step`] for a thread feed: the events about its root or its replies,
    /// the chat's changes (it may have been cleared), and what ends or resyncs any feed.
    fn thread_step(&self, root: MessageId, event: &Event) -> ChatFeedStep {
        let in_thread = |message: &MessageId| *message == root || event.thread == Some(root);
        match &event.kind {
            EventKind::MessageAdded { message_id, .. } => {
                if event.thread != Some(root) || *message_id <= self.replayed_up_to {
                    ChatFeedStep::Skip
                } else {
                    ChatFeedStep::Deliver
                }
            }
            // Its replies lose their parent with it: the thread is gone, and so is the feed.
            EventKind::MessageDeleted { message_id } if *message_id == root => {
                ChatFeedStep::DeliverLast
            }
            EventKind::MessageEdited { message_id }
            | EventKind::MessageRetracted { message_id }
            | EventKind::MessageDeleted { message_id }
            | EventKind::MessageDelta { message_id, .. }
            | EventKind::ReplyInterrupted { message_id, .. }
            | EventKind::ReactionChanged { message_id, .. }
            | EventKind::MessagePinned { message_id, .. }
            | EventKind::MessageUnpinned { message_id, .. } => {
                if in_thread(message_id) {
                    ChatFeedStep::Deliver
                } else {
                    ChatFeedStep::Skip
                }
            }
            EventKind::MemberLeft { user_id } if *user_id == self.user => ChatFeedStep::DeliverLast,
            EventKind::ChatDeleted => ChatFeedStep::DeliverLast,
            EventKind::ResyncRequired => ChatFeedStep::Resync,
            EventKind::ChatUpdated => ChatFeedStep::Deliver,
            // The chat's own life, not the thread's.
            EventKind::SessionStarted { .. }
            | EventKind::SessionEnded { .. }
            | EventKind::ReadReceipt { .. }
            | EventKind::DeliveryReceipt { .. }
            | EventKind::Typing { .. }
            | EventKind::MemberJoined { .. }
            | EventKind::MemberLeft { .. }
            | EventKind::MemberUpdated { .. }
            | EventKind::TokensRevoked => ChatFeedStep::Skip,
        }
    }
}

impl ChatFeed {
    /// The next messages of the replay after `after` (a thread's replies, for a thread
    /// feed).
    async fn replay_batch(&self, after: MessageId) -> Result<Vec<Message>, db::DbError> {
        let mut conn = self.app.db().conn().await?;
        match self.thread {
            Some(root) => db::threads::replies_after(&mut conn, root, after, REPLAY_BATCH).await,
            None => db::messages::after(&mut conn, self.chat, after, REPLAY_BATCH).await,
        }
    }

    /// After missed events: the feed ends if the subscriber is no longer a member (its
    /// `MemberLeft` or the chat's deletion may be among what was missed), else it resyncs.
    async fn resync(&mut self) -> AppResult<ChatFeedItem> {
        if let Some(ended) = Box::pin(self.end_unless_member()).await {
            return ended;
        }
        self.app.metrics().resync_sent();
        Ok(ChatFeedItem::Resync {
            last_message_id: self.last_message_id,
        })
    }

    /// Ends the feed with the subscriber's own `MemberLeft` (or `ChatDeleted`) when they
    /// are no longer a member; `None` while they are.
    async fn end_unless_member(&mut self) -> Option<AppResult<ChatFeedItem>> {
        let next = tokio::time::Instant::now() + MEMBERSHIP_RECHECK;
        self.recheck.as_mut().reset(next);
        let membership = match self.app.db().conn().await {
            Ok(mut conn) => member_of(&mut conn, self.chat, self.user).await,
            Err(e) => Err(e.into()),
        };
        let kind = match membership {
            Ok(_) => return None,
            Err(e) if e.code() == ErrorCode::NotFound => EventKind::ChatDeleted,
            Err(e) if e.code() == ErrorCode::Forbidden => {
                EventKind::MemberLeft { user_id: self.user }
            }
            Err(e) => {
                self.finished = true;
                return Some(Err(e));
            }
        };
        self.finished = true;
        Some(Ok(ChatFeedItem::Live(Arc::new(Delivered::new(
            Event::in_chat(self.chat, kind),
        )))))
    }
}
