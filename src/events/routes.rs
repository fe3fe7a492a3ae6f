//! Who hears which event: a channel per chat with open chat feeds, one per user with an
//! open inbox, and one for account events. An event wakes only the feeds it concerns: a
//! message in one chat costs nothing to the subscribers of the others.
//!
//! Inboxes (`myEvents`) follow the chats of their user. The set is kept here, at publish
//! time, so that a join routes the chat's next events to the user's inbox with no gap:
//! `MemberJoined` of a user adds the chat to what their inbox follows before the next
//! event of that chat is routed. Until an inbox has read its chats it hears every chat
//! (see [`Receiver::follow`]); a followed set may hold more chats than the user is in
//! (a removal this instance missed), never fewer, since the feed filters what it gets.
//!
//! Rendering ahead: a chat whose live operations registered a renderer
//! ([`Routes::render_ahead`]) gets a stage, a task that renders each of its events once per
//! operation and only then wakes the chat's feeds. Without it every subscriber of a big
//! chat is woken at once, and the one rendering the event (it loads the message) is queued
//! behind all the others, which wait for its text: 10,000 of them made the first delivery
//! ~15 ms late and polled every subscriber twice. An event the stage still holds was
//! published before any feed that subscribes meanwhile, so receivers skip events
//! numbered before they opened: the stage delays the chat's events, never reorders or
//! adds to them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::{Delivered, EventKind, RenderAhead, Rendition, RenditionKey, Scope};
use crate::metrics::Metrics;
use crate::vocabulary::ids::{ChatId, UserId};

type Sender = broadcast::Sender<Arc<Delivered>>;

/// Longest the stage waits for one rendering before it lets the feeds have the event
/// anyway (they then render it themselves, as without a stage).
const RENDER_AHEAD_LIMIT: Duration = Duration::from_secs(2);

/// A chat's listeners.
#[derive(Default)]
struct ChatRoute {
    /// The chat feeds' channel, while any is open.
    feeds: Option<Sender>,
    /// Users whose inbox follows the chat.
    followers: HashSet<UserId>,
    /// The stage's queue, while the chat has renderers: the chat's events go there and
    /// on to `feeds` once rendered.
    stage: Option<mpsc::UnboundedSender<Arc<Delivered>>>,
    /// The renderers of each operation live on the chat (any one of them renders it).
    ahead: HashMap<RenditionKey, Cohort>,
    /// The last event sent (or, by the stage, about to be sent) to `feeds`: a feed may
    /// attach to the stage once it has seen it (see "Writing ahead of the feeds" below).
    to_feeds: u64,
    /// Feeds attached since the stage's last event, for its next one.
    joining: Vec<Attached>,
}

impl ChatRoute {
    /// Where the chat's next event goes: its stage, or straight to its feeds.
    fn deliver(&mut self, event: &Arc<Delivered>) {
        if let Some(stage) = &self.stage
            && stage.send(event.clone()).is_ok()
        {
            return;
        }
        if let Some(feeds) = &self.feeds {
            self.to_feeds = event.sequence();
            // An error only means nobody listens right now.
            let _ = feeds.send(event.clone());
        }
    }
}

/// The renderers registered for one operation on one chat. Dropped ones are pruned from
/// the end as the stage looks for a live one, and all at once when the list doubled.
#[derive(Default)]
struct Cohort {
    renderers: Vec<Weak<dyn RenderAhead>>,
    /// Length after the last full prune.
    pruned_to: usize,
}

impl Cohort {
    fn add(&mut self, renderer: Weak<dyn RenderAhead>) {
        if self.renderers.len() >= 2 * self.pruned_to.max(8) {
            self.renderers.retain(|r| r.strong_count() > 0);
            self.pruned_to = self.renderers.len();
        }
        self.renderers.push(renderer);
    }

    /// A renderer still alive; `None` when all are gone.
    fn live_one(&mut self) -> Option<Arc<dyn RenderAhead>> {
        while let Some(last) = self.renderers.last() {
            if let Some(renderer) = last.upgrade() {
                return Some(renderer);
            }
            self.renderers.pop();
        }
        None
    }
}

/// A user's open inboxes.
struct UserRoute {
    sender: Sender,
    /// The chats whose events reach the inboxes.
    follows: HashSet<ChatId>,
    /// Inboxes still reading their chats: until then they hear every chat.
    pending: usize,
}

#[derive(Default)]
struct Table {
    /// Events published so far: the last one's sequence number.
    published: u64,
    chats: HashMap<ChatId, ChatRoute>,
    users: HashMap<UserId, UserRoute>,
    /// Users with an inbox that has not read its chats yet.
    pending: HashSet<UserId>,
}

impl Table {
    fn unfollow(&mut self, user: UserId, chat: ChatId) {
        if let Some(route) = self.users.get_mut(&user) {
            route.follows.remove(&chat);
        }
        if let Some(route) = self.chats.get_mut(&chat) {
            route.followers.remove(&user);
            if route.feeds.is_none() && route.followers.is_empty() {
                self.chats.remove(&chat);
            }
        }
    }

    fn follow(&mut self, user: UserId, chat: ChatId) {
        if let Some(route) = self.users.get_mut(&user) {
            route.follows.insert(chat);
            self.chats.entry(chat).or_default().followers.insert(user);
        }
    }
}

/// The routing table of one process.
pub(super) struct Routes {
    capacity: usize,
    table: Mutex<Table>,
    /// Counts what the stages write ahead of the feeds.
    metrics: Metrics,
    /// Account events (`Scope::User`) and `Scope::Everywhere`, for process-wide listeners
    /// such as the token cache. Always open, so it is no entry of the table.
    accounts: Sender,
}

/// Where a receiver listens.
#[derive(Clone, Copy)]
enum Listening {
    Chat(ChatId),
    User(UserId),
    Accounts,
}

impl Routes {
    /// Routes whose channels each hold `capacity` events a receiver may lag behind.
    pub(super) fn new(capacity: usize, metrics: Metrics) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Self {
            capacity,
            table: Mutex::new(Table::default()),
            metrics,
            accounts: broadcast::channel(capacity).0,
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every update leaves the table consistent between statements, so a panic in
        // another holder leaves nothing half-done that matters.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers `event` to every receiver it concerns, in publish order per channel (the
    /// table is held while sending, so two publishes cannot interleave).
    pub(super) fn publish(&self, event: Arc<Delivered>) {
        let mut table = self.table();
        table.published += 1;
        event.set_sequence(table.published);
        match event.scope {
            Scope::Chat(chat) => {
                let mut reached: Vec<UserId> = Vec::new();
                if let Some(route) = table.chats.get_mut(&chat) {
                    route.deliver(&event);
                    reached.extend(route.followers.iter().copied());
                }
                reached.extend(table.pending.iter().copied());
                // The user a membership change is about hears it even when their inbox
                // does not follow the chat yet (a join).
                let subject = match &event.kind {
                    EventKind::MemberJoined { user_id } | EventKind::MemberLeft { user_id } => {
                        Some(*user_id)
                    }
                    _ => None,
                };
                reached.extend(subject);
                reached.sort_unstable();
                reached.dedup();
                for user in &reached {
                    if let Some(route) = table.users.get(user) {
                        let _ = route.sender.send(event.clone());
                    }
                }
                match &event.kind {
                    EventKind::MemberJoined { user_id } => table.follow(*user_id, chat),
                    EventKind::MemberLeft { user_id } => table.unfollow(*user_id, chat),
                    EventKind::ChatDeleted => {
                        let followers: Vec<UserId> = table
                            .chats
                            .get(&chat)
                            .map(|route| route.followers.iter().copied().collect())
                            .unwrap_or_default();
                        for user in followers {
                            table.unfollow(user, chat);
                        }
                    }
                    _ => {}
                }
            }
            Scope::User(user) => {
                if let Some(route) = table.users.get(&user) {
                    let _ = route.sender.send(event.clone());
                }
                let _ = self.accounts.send(event);
            }
            Scope::Everywhere => {
                for route in table.chats.values_mut() {
                    route.deliver(&event);
                }
                for route in table.users.values() {
                    let _ = route.sender.send(event.clone());
                }
                let _ = self.accounts.send(event);
            }
        }
    }

    /// A receiver of `chat`'s events (and of `Scope::Everywhere`), from now on.
    pub(super) fn chat(self: &Arc<Self>, chat: ChatId) -> Receiver {
        self.chat_from(chat, None)
    }

    /// A receiver of `chat`'s events numbered after `sequence`, for a feed the stage
    /// hands back (see "Writing ahead of the feeds" below): the stage still holds the
    /// chat's later events.
    pub(super) fn chat_after(self: &Arc<Self>, chat: ChatId, sequence: u64) -> Receiver {
        self.chat_from(chat, Some(sequence))
    }

    fn chat_from(self: &Arc<Self>, chat: ChatId, after: Option<u64>) -> Receiver {
        let mut table = self.table();
        let from = after.unwrap_or(table.published) + 1;
        let route = table.chats.entry(chat).or_default();
        let inner = match &route.feeds {
            Some(feeds) => feeds.subscribe(),
            None => {
                let (feeds, inner) = broadcast::channel(self.capacity);
                route.feeds = Some(feeds);
                inner
            }
        };
        Receiver {
            inner,
            routes: self.clone(),
            listening: Listening::Chat(chat),
            pending: false,
            from,
            seen: from - 1,
        }
    }

    /// A receiver of the events `user`'s inbox needs: until [`Receiver::follow`] names the
    /// user's chats, every chat's.
    pub(super) fn user(self: &Arc<Self>, user: UserId) -> Receiver {
        let mut table = self.table();
        let inner = match table.users.get_mut(&user) {
            Some(route) => {
                route.pending += 1;
                route.sender.subscribe()
            }
            None => {
                let (sender, inner) = broadcast::channel(self.capacity);
                table.users.insert(
                    user,
                    UserRoute {
                        sender,
                        follows: HashSet::new(),
                        pending: 1,
                    },
                );
                inner
            }
        };
        table.pending.insert(user);
        Receiver {
            inner,
            routes: self.clone(),
            listening: Listening::User(user),
            pending: true,
            from: table.published + 1,
            seen: table.published,
        }
    }

    /// A receiver of account events (`Scope::User`) and `Scope::Everywhere`.
    pub(super) fn accounts(self: &Arc<Self>) -> Receiver {
        let table = self.table();
        Receiver {
            inner: self.accounts.subscribe(),
            routes: self.clone(),
            listening: Listening::Accounts,
            pending: false,
            from: table.published + 1,
            seen: table.published,
        }
    }

    /// See [`super::Broker::render_ahead`]. Nothing is registered when no feed of the
    /// chat is open (the renderer's own feed closed already).
    pub(super) fn render_ahead(
        self: &Arc<Self>,
        chat: ChatId,
        key: RenditionKey,
        renderer: Weak<dyn RenderAhead>,
    ) -> RenditionKey {
        let mut table = self.table();
        let Some(route) = table.chats.get_mut(&chat) else {
            return key;
        };
        if route.feeds.is_none() {
            return key;
        }
        let entry = route.ahead.entry(key);
        let key = entry.key().clone();
        entry.or_default().add(renderer);
        if route.stage.is_none() {
            let (stage, queue) = mpsc::unbounded_channel();
            route.stage = Some(stage);
            tokio::spawn(run_stage(self.clone(), chat, queue));
        }
        key
    }

    /// A live renderer of each operation registered on `chat`; operations whose
    /// renderers are all gone are forgotten.
    fn renderers(&self, chat: ChatId) -> Vec<(RenditionKey, Arc<dyn RenderAhead>)> {
        let mut table = self.table();
        let Some(route) = table.chats.get_mut(&chat) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        route.ahead.retain(|key, cohort| match cohort.live_one() {
            Some(renderer) => {
                found.push((key.clone(), renderer));
                true
            }
            None => false,
        });
        found
    }

    /// Receivers open on every channel.
    pub(super) fn receiver_count(&self) -> usize {
        let table = self.table();
        let chats: usize = table
            .chats
            .values()
            .filter_map(|r| r.feeds.as_ref())
            .map(Sender::receiver_count)
            .sum();
        let users: usize = table
            .users
            .values()
            .map(|r| r.sender.receiver_count())
            .sum();
        chats + users + self.accounts.receiver_count()
    }

    /// Channels open (chats with feeds, users with inboxes), for tests and metrics.
    pub(super) fn channel_count(&self) -> usize {
        let table = self.table();
        table.chats.values().filter(|r| r.feeds.is_some()).count() + table.users.len()
    }
}

/// One feed's view of the events routed to it. Dropping it closes its channel when it was
/// the last receiver there, and forgets what its inbox followed.
pub struct Receiver {
    inner: broadcast::Receiver<Arc<Delivered>>,
    routes: Arc<Routes>,
    listening: Listening,
    /// An inbox receiver that has not named its chats yet.
    pending: bool,
    /// The first sequence number published after it opened: a stage may still forward
    /// older events (see the module comment).
    from: u64,
    /// The number of the last event received (or `from - 1`).
    seen: u64,
}

impl Receiver {
    /// The next event, or how many were missed ([`RecvError::Lagged`]).
    pub async fn recv(&mut self) -> Result<Arc<Delivered>, RecvError> {
        loop {
            let event = self.inner.recv().await?;
            self.seen = event.sequence();
            if event.sequence() >= self.from {
                return Ok(event);
            }
        }
    }

    /// For a chat feed that has handled every event it received: has the chat's stage
    /// offer `feed` the chat's events from its next one on (see "Writing ahead of the
    /// feeds" below), while this receiver stays open unread. `false` (nothing changes)
    /// when the chat has no stage, or an event sent to the feeds is still unread here.
    pub fn attach(&self, feed: Weak<dyn DirectFeed>) -> bool {
        let Listening::Chat(chat) = self.listening else {
            return false;
        };
        let mut table = self.routes.table();
        let Some(route) = table.chats.get_mut(&chat) else {
            return false;
        };
        if route.stage.is_none() || self.seen < route.to_feeds || !self.inner.is_empty() {
            return false;
        }
        route.joining.push(Attached {
            feed,
            from: self.from,
        });
        true
    }

    /// For an inbox: routes `chats`' events to it from now on (added to what it follows
    /// already). The first call ends the time it heard every chat.
    pub fn follow(&mut self, chats: impl IntoIterator<Item = ChatId>) {
        let Listening::User(user) = self.listening else {
            return;
        };
        let mut table = self.routes.table();
        for chat in chats {
            table.follow(user, chat);
        }
        if std::mem::take(&mut self.pending) {
            Self::end_pending(&mut table, user);
        }
    }

    fn end_pending(table: &mut Table, user: UserId) {
        if let Some(route) = table.users.get_mut(&user) {
            route.pending = route.pending.saturating_sub(1);
            if route.pending == 0 {
                table.pending.remove(&user);
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut table = self.routes.table();
        if let (true, Listening::User(user)) = (self.pending, self.listening) {
            Self::end_pending(&mut table, user);
        }
        // `inner` is still alive here: it is the last when the count is one. Nobody can
        // subscribe in between, subscribing takes the table too.
        match self.listening {
            Listening::Chat(chat) => {
                if let Some(route) = table.chats.get_mut(&chat) {
                    let last = route
                        .feeds
                        .as_ref()
                        .is_some_and(|f| f.receiver_count() <= 1);
                    if last {
                        route.feeds = None;
                        // Its queue closed, the stage ends after what it holds.
                        route.stage = None;
                        route.ahead.clear();
                        route.joining.clear();
                        if route.followers.is_empty() {
                            table.chats.remove(&chat);
                        }
                    }
                }
            }
            Listening::User(user) => {
                let last = table
                    .users
                    .get(&user)
                    .is_some_and(|r| r.sender.receiver_count() <= 1);
                if last {
                    if let Some(route) = table.users.remove(&user) {
                        for chat in route.follows {
                            table.unfollow(user, chat);
                        }
                    }
                    table.pending.remove(&user);
                }
            }
            Listening::Accounts => {}
        }
    }
}

/// A chat's stage (see the module comment): renders each event for every operation live
/// on the chat, then hands it to the chat's feeds and writes it to those attached to it
/// (see "Writing ahead of the feeds" below), in the order published. Far behind (a
/// channel's worth of events queued), it hands them on unrendered to catch up: the feeds
/// render what they need, as without a stage (attached ones are handed back for it).
async fn run_stage(
    routes: Arc<Routes>,
    chat: ChatId,
    mut queue: mpsc::UnboundedReceiver<Arc<Delivered>>,
) {
    let shards = Shards::new();
    while let Some(event) = queue.recv().await {
        if queue.len() < routes.capacity {
            for (key, renderer) in routes.renderers(chat) {
                let rendering = event.rendition(key, || renderer.render(event.clone()));
                // Past the limit the rendering is dropped, and whoever asks next makes it.
                let _ = tokio::time::timeout(RENDER_AHEAD_LIMIT, rendering).await;
            }
        }
        // Sent outside the table: waking a big chat's feeds takes milliseconds, and the
        // other chats' publishes need the table meanwhile. While the chat has a stage its
        // events all come through here, so the order holds (a stage before this one,
        // still draining, sends only events older than every receiver opened since).
        let (feeds, joining) = {
            let mut table = routes.table();
            match table.chats.get_mut(&chat) {
                Some(route) => {
                    route.to_feeds = event.sequence();
                    (route.feeds.clone(), std::mem::take(&mut route.joining))
                }
                None => (None, Vec::new()),
            }
        };
        if let Some(feeds) = feeds {
            let _ = feeds.send(event.clone());
        }
        shards.join(joining);
        shards.offer(&routes, chat, &event).await;
    }
}

// ---------------------------------------------------------------------------------------
// Writing ahead of the feeds
//
// A chat's stage (see `run_stage` above) writes each event to the
// sockets of the feeds that keep up, itself, instead of waking one task per subscriber.
// With 10,000 subscribers on a chat, waking, polling and parking each one's task cost
// about a quarter of the server's CPU per delivery.
//
// A feed whose task is idle and has read everything its channel was given *attaches*
// ([`super::Receiver::attach`]); from the stage's next event on, the stage offers it
// every event of the chat, in publish order, and the feed writes what it shows at once
// ([`DirectFeed::offer`]). Whatever needs more than that (an event that ends the feed or
// resyncs it, a text valid for another viewer only, a socket with no room right now) is
// *handed back*: the feed's task gets that event and a receiver of everything after it,
// and goes on as an ordinary feed until it has caught up again. The stage hands back
// before it sends the chat's next event anywhere, so nothing is missed or doubled.
//
// The attached feeds are split in one shard per worker thread, offered in parallel.

/// A live feed the stage can write to without waking its task.
pub trait DirectFeed: Send + Sync {
    /// Shows the offered event to the feed's subscriber if it can, right now, without
    /// waiting. Called by one shard at a time, in publish order.
    fn offer(&self, offer: &mut Offer<'_>) -> Offered;
    /// Gives the feed back to its task, with the event the task is to handle first.
    fn hand_back(&self, back: HandBack);
}

/// What became of an offered event.
pub enum Offered {
    /// Written, or not for this feed: offer it the next.
    Kept,
    /// The feed detached itself (it is ending): forget it.
    Gone,
    /// The feed's task must handle this event (see "Writing ahead of the feeds").
    HandBack,
}

/// One event as a shard offers it to its feeds. What every feed takes of the event is
/// fetched once per shard and kept here: each feed fetching it from the event itself
/// would take the event's lock and bump reference counts in memory that both shards
/// write, 10,000 times per event on a big chat. Likewise the feeds written to are counted
/// here, and added to the metrics once.
pub struct Offer<'a> {
    event: &'a Arc<Delivered>,
    /// The renderings feeds asked for, as they were when first asked: one made later (it
    /// was not when the stage gave up waiting on it) is left to the tasks of the feeds
    /// that wanted it.
    renditions: HashMap<RenditionKey, Option<Rendition>>,
    written: u64,
}

impl<'a> Offer<'a> {
    fn new(event: &'a Arc<Delivered>) -> Self {
        Self {
            event,
            renditions: HashMap::new(),
            written: 0,
        }
    }

    /// The event offered.
    pub fn event(&self) -> &'a Arc<Delivered> {
        self.event
    }

    /// The rendering `key` names, if it was made (see [`Delivered::rendition_made`]).
    pub fn rendition(&mut self, key: &RenditionKey) -> Option<&Rendition> {
        // Looked up before any clone: cloning the key per feed would bump the count of
        // one `Arc` that every subscriber of the operation shares, on both shards.
        if !self.renditions.contains_key(key) {
            let made = self.event.rendition_made(key);
            self.renditions.insert(key.clone(), made);
        }
        self.renditions.get(key)?.as_ref()
    }

    /// Counts a feed the event was written to, with its operation's shared rendering.
    pub fn written(&mut self) {
        self.written += 1;
    }
}

/// A feed given back to its task.
pub struct HandBack {
    /// The first event the task handles.
    pub event: Arc<Delivered>,
    /// The chat's events after `event`.
    pub receiver: Receiver,
}

/// An attached feed, from the first event it is offered.
pub(super) struct Attached {
    pub(super) feed: Weak<dyn DirectFeed>,
    /// Events numbered before it belong to the feed's task (see `routes::Receiver`).
    pub(super) from: u64,
}

/// Offers between yields of a shard: its worker serves other tasks in between, and a
/// task polled once may write to only so many sockets before tokio's budget makes
/// every write wait (which here would hand every feed back).
const OFFERS_PER_YIELD: usize = 32;

type Shard = Arc<Mutex<Vec<Attached>>>;

/// The attached feeds of one chat's stage.
pub(super) struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// One shard per worker thread of the runtime.
    pub(super) fn new() -> Self {
        let count = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .max(1);
        Self {
            shards: (0..count).map(|_| Shard::default()).collect(),
        }
    }

    /// Adds feeds that attached, each to the smallest shard.
    pub(super) fn join(&self, joining: Vec<Attached>) {
        for attached in joining {
            let smallest = self.shards.iter().min_by_key(|shard| lock(shard).len());
            if let Some(shard) = smallest {
                lock(shard).push(attached);
            }
        }
    }

    /// Offers `event` to every attached feed, and returns once all were offered (the
    /// stage sends nothing more of the chat before: see the module comment).
    pub(super) async fn offer(&self, routes: &Arc<Routes>, chat: ChatId, event: &Arc<Delivered>) {
        let mut running = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            if !lock(shard).is_empty() {
                let offering = offer_shard(shard.clone(), routes.clone(), chat, event.clone());
                running.push(tokio::spawn(offering));
            }
        }
        for offering in running {
            // A shard that panicked put its feeds back (see `Returned`).
            let _ = offering.await;
        }
    }
}

fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, Vec<Attached>> {
    // Every update is one push or one swap of the whole list.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Offers `event` to one shard's feeds, keeping those that stay attached (compacted in
/// place: a list of thousands is not allocated again for every event).
async fn offer_shard(shard: Shard, routes: Arc<Routes>, chat: ChatId, event: Arc<Delivered>) {
    let feeds = std::mem::take(&mut *lock(&shard));
    let mut pass = Pass {
        feeds,
        read: 0,
        kept: 0,
        shard,
    };
    let sequence = event.sequence();
    let mut offer = Offer::new(&event);
    while pass.read < pass.feeds.len() {
        let attached = &pass.feeds[pass.read];
        let keep = match attached.feed.upgrade() {
            // Its subscription ended.
            None => false,
            Some(_) if sequence < attached.from => true,
            Some(feed) => match feed.offer(&mut offer) {
                Offered::Kept => true,
                Offered::Gone => false,
                Offered::HandBack => {
                    // No later event of the chat is sent before this shard is done, so
                    // the receiver misses none.
                    let receiver = routes.chat_after(chat, sequence);
                    feed.hand_back(HandBack {
                        event: event.clone(),
                        receiver,
                    });
                    false
                }
            },
        };
        if keep {
            pass.feeds.swap(pass.kept, pass.read);
            pass.kept += 1;
        }
        pass.read += 1;
        if pass.read.is_multiple_of(OFFERS_PER_YIELD) {
            tokio::task::yield_now().await;
        }
    }
    routes.metrics.events_written_ahead(offer.written);
}

/// A shard's feeds while they are offered an event: `..kept` stay, `kept..read` are
/// dropped, `read..` are still to be offered. Put back into the shard when done, and also
/// if the offering panics or is dropped, so that no attached feed is stranded.
struct Pass {
    feeds: Vec<Attached>,
    read: usize,
    kept: usize,
    shard: Shard,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut feeds = std::mem::take(&mut self.feeds);
        feeds.drain(self.kept..self.read);
        let mut shard = lock(&self.shard);
        // Feeds joined meanwhile (none do: the stage joins them between events).
        feeds.append(&mut shard);
        *shard = feeds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn chat_event(chat: i64, kind: EventKind) -> Arc<Delivered> {
        Arc::new(Delivered::new(Event::in_chat(ChatId(chat), kind)))
    }

    fn joined(chat: i64, user: i64) -> Arc<Delivered> {
        chat_event(
            chat,
            EventKind::MemberJoined {
                user_id: UserId(user),
            },
        )
    }

    /// The kinds of events waiting for `receiver`, in order.
    fn waiting(receiver: &mut Receiver) -> Vec<(Scope, &'static str)> {
        let mut got = Vec::new();
        while let Ok(event) = receiver.inner.try_recv() {
            got.push((event.scope, event.kind.label()));
        }
        got
    }

    #[test]
    fn a_chat_feed_hears_its_chat_and_resyncs_only() {
        let routes = Routes::new(16, Metrics::new());
        let mut one = routes.chat(ChatId(1));
        let mut two = routes.chat(ChatId(2));
        routes.publish(chat_event(1, EventKind::ChatUpdated));
        routes.publish(Arc::new(Delivered::new(Event::about_user(
            UserId(9),
            EventKind::TokensRevoked,
        ))));
        routes.publish(Arc::new(Delivered::new(Event::resync_everywhere())));
        assert_eq!(
            waiting(&mut one),
            [
                (Scope::Chat(ChatId(1)), "chat_updated"),
                (Scope::Everywhere, "resync_required")
            ]
        );
        assert_eq!(waiting(&mut two), [(Scope::Everywhere, "resync_required")]);
    }

    #[test]
    fn an_inbox_hears_every_chat_until_it_follows_its_own_then_only_those() {
        let routes = Routes::new(16, Metrics::new());
        let mut inbox = routes.user(UserId(7));
        routes.publish(chat_event(3, EventKind::ChatUpdated));
        assert_eq!(waiting(&mut inbox).len(), 1, "pending: every chat");
        inbox.follow([ChatId(1)]);
        routes.publish(chat_event(1, EventKind::ChatUpdated));
        routes.publish(chat_event(3, EventKind::ChatUpdated));
        assert_eq!(
            waiting(&mut inbox),
            [(Scope::Chat(ChatId(1)), "chat_updated")]
        );
    }

    #[test]
    fn a_join_routes_the_chats_next_events_to_the_inbox_and_a_leave_stops_them() {
        let routes = Routes::new(16, Metrics::new());
        let mut inbox = routes.user(UserId(7));
        inbox.follow([]);
        routes.publish(joined(5, 8)); // someone else joins: not for this inbox
        routes.publish(joined(5, 7));
        routes.publish(chat_event(5, EventKind::ChatUpdated));
        routes.publish(chat_event(5, EventKind::MemberLeft { user_id: UserId(7) }));
        routes.publish(chat_event(5, EventKind::ChatUpdated));
        assert_eq!(
            waiting(&mut inbox),
            [
                (Scope::Chat(ChatId(5)), "member_joined"),
                (Scope::Chat(ChatId(5)), "chat_updated"),
                (Scope::Chat(ChatId(5)), "member_left"),
            ]
        );
    }

    #[test]
    fn a_deleted_chat_stops_reaching_its_followers() {
        let routes = Routes::new(16, Metrics::new());
        let mut inbox = routes.user(UserId(7));
        inbox.follow([ChatId(5)]);
        routes.publish(chat_event(5, EventKind::ChatDeleted));
        routes.publish(chat_event(5, EventKind::ChatUpdated));
        assert_eq!(
            waiting(&mut inbox),
            [(Scope::Chat(ChatId(5)), "chat_deleted")]
        );
    }

    #[test]
    fn the_last_receiver_gone_closes_its_channel_and_forgets_what_it_followed() {
        let routes = Routes::new(16, Metrics::new());
        let first = routes.chat(ChatId(1));
        let second = routes.chat(ChatId(1));
        let mut inbox = routes.user(UserId(7));
        inbox.follow([ChatId(1), ChatId(2)]);
        let accounts = routes.accounts();
        assert_eq!(routes.channel_count(), 2);
        assert_eq!(routes.receiver_count(), 4);
        drop(first);
        assert_eq!(routes.channel_count(), 2, "one chat feed is still open");
        drop((second, inbox, accounts));
        assert_eq!((routes.channel_count(), routes.receiver_count()), (0, 0));
        assert!(routes.table().chats.is_empty() && routes.table().pending.is_empty());
    }

    /// Renders `rendered <kind>` once let through: `gate` holds it, `started` tells
    /// that it was called.
    struct Gated {
        gate: tokio::sync::Semaphore,
        started: tokio::sync::Notify,
    }

    impl Gated {
        fn new(permits: usize) -> Arc<Self> {
            Arc::new(Self {
                gate: tokio::sync::Semaphore::new(permits),
                started: tokio::sync::Notify::new(),
            })
        }

        fn register(self: &Arc<Self>, routes: &Arc<Routes>, chat: i64) -> RenditionKey {
            let key = RenditionKey::new("operation".into());
            let renderer: Arc<dyn RenderAhead> = self.clone();
            routes.render_ahead(ChatId(chat), key.clone(), Arc::downgrade(&renderer));
            key
        }
    }

    impl RenderAhead for Gated {
        fn render(
            self: Arc<Self>,
            event: Arc<Delivered>,
        ) -> futures_util::future::BoxFuture<'static, Rendition> {
            Box::pin(async move {
                self.started.notify_one();
                let _permit = self.gate.acquire().await;
                Rendition {
                    text: Some(format!("rendered {}", event.kind.label()).into()),
                    only_for: None,
                }
            })
        }
    }

    type Checked = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn a_chat_with_a_renderer_hears_its_events_rendered_already() -> Checked {
        let routes = Routes::new(16, Metrics::new());
        let mut feed = routes.chat(ChatId(1));
        let renderer = Gated::new(100);
        let key = renderer.register(&routes, 1);
        routes.publish(chat_event(1, EventKind::ChatUpdated));
        let event = feed.recv().await?;
        let mut rendered_again = false;
        let rendition = event
            .rendition(key, || {
                rendered_again = true;
                std::future::ready(Rendition {
                    text: None,
                    only_for: None,
                })
            })
            .await;
        assert!(!rendered_again, "the feed found the text made");
        assert_eq!(rendition.text.as_deref(), Some("rendered chat_updated"));
        Ok(())
    }

    #[tokio::test]
    async fn a_feed_opened_while_the_stage_holds_an_event_does_not_hear_it() -> Checked {
        let routes = Routes::new(16, Metrics::new());
        let mut early = routes.chat(ChatId(1));
        let renderer = Gated::new(0);
        renderer.register(&routes, 1);
        routes.publish(chat_event(1, EventKind::ChatUpdated));
        renderer.started.notified().await; // the stage holds `ChatUpdated`
        let mut late = routes.chat(ChatId(1));
        routes.publish(chat_event(1, EventKind::ChatDeleted));
        renderer.gate.add_permits(100);
        assert_eq!(late.recv().await?.kind.label(), "chat_deleted");
        assert_eq!(early.recv().await?.kind.label(), "chat_updated");
        assert_eq!(early.recv().await?.kind.label(), "chat_deleted");
        Ok(())
    }

    #[tokio::test]
    async fn the_last_feed_gone_forgets_the_chats_renderers_and_its_stage() -> Checked {
        let routes = Routes::new(16, Metrics::new());
        let feed = routes.chat(ChatId(1));
        let renderer = Gated::new(100);
        renderer.register(&routes, 1);
        assert!(routes.table().chats[&ChatId(1)].stage.is_some());
        drop(feed);
        assert!(routes.table().chats.is_empty());
        // A renderer of a chat with no feed open registers nothing.
        renderer.register(&routes, 1);
        assert!(routes.table().chats.is_empty());
        Ok(())
    }

    /// Keeps every event it is offered but `ChatDeleted`, which it hands back.
    #[derive(Default)]
    struct Attachable {
        offered: Mutex<Vec<&'static str>>,
        back: Mutex<Option<HandBack>>,
        handed_back: tokio::sync::Notify,
    }

    impl DirectFeed for Attachable {
        fn offer(&self, offer: &mut Offer<'_>) -> Offered {
            let event = offer.event();
            let label = event.kind.label();
            self.offered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(label);
            match event.kind {
                EventKind::ChatDeleted => Offered::HandBack,
                _ => Offered::Kept,
            }
        }

        fn hand_back(&self, back: HandBack) {
            *self.back.lock().unwrap_or_else(|e| e.into_inner()) = Some(back);
            self.handed_back.notify_one();
        }
    }

    #[tokio::test]
    async fn an_attached_feed_is_offered_its_chats_events_until_handed_back_with_what_follows()
    -> Checked {
        let routes = Routes::new(16, Metrics::new());
        let mut feed = routes.chat(ChatId(1));
        Gated::new(100).register(&routes, 1);
        let direct = Arc::new(Attachable::default());
        let weak = Arc::downgrade(&direct) as Weak<dyn DirectFeed>;
        routes.publish(chat_event(1, EventKind::ChatUpdated));
        let first = feed.recv().await?;
        assert_eq!(first.kind.label(), "chat_updated");
        assert!(feed.attach(weak.clone()));
        routes.publish(chat_event(
            1,
            EventKind::MessageEdited {
                message_id: crate::vocabulary::ids::MessageId(7),
            },
        ));
        routes.publish(chat_event(1, EventKind::ChatDeleted));
        routes.publish(joined(1, 8));
        direct.handed_back.notified().await;
        let back = direct.back.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut back = back.ok_or("handed back")?;
        assert_eq!(back.event.kind.label(), "chat_deleted");
        assert_eq!(
            *direct.offered.lock().unwrap_or_else(|e| e.into_inner()),
            ["message_edited", "chat_deleted"],
            "offered from the event after it attached, until it was handed back"
        );
        assert_eq!(back.receiver.recv().await?.kind.label(), "member_joined");
        Ok(())
    }

    #[tokio::test]
    async fn a_feed_with_an_event_unread_does_not_attach() -> Checked {
        let routes = Routes::new(16, Metrics::new());
        let mut feed = routes.chat(ChatId(1));
        let direct = Arc::new(Attachable::default());
        let weak = Arc::downgrade(&direct) as Weak<dyn DirectFeed>;
        assert!(!feed.attach(weak.clone()), "no stage: nothing to attach to");
        Gated::new(100).register(&routes, 1);
        let mut other = routes.chat(ChatId(1));
        routes.publish(chat_event(1, EventKind::ChatUpdated));
        other.recv().await?; // the stage sent it to the feeds
        assert!(!feed.attach(weak.clone()), "it is unread here");
        feed.recv().await?;
        assert!(feed.attach(weak));
        // (An event the stage still holds is no obstacle: it is offered to the feed.)
        Ok(())
    }

    #[test]
    fn an_inbox_dropped_before_it_followed_leaves_nothing_pending() {
        let routes = Routes::new(16, Metrics::new());
        let other = routes.user(UserId(8));
        drop(routes.user(UserId(7)));
        assert_eq!(
            routes.table().pending.iter().copied().collect::<Vec<_>>(),
            [UserId(8)]
        );
        drop(other);
        assert!(routes.table().pending.is_empty() && routes.table().users.is_empty());
    }
}
