//! Live operations (subscriptions) run in two phases, so that one event is shown once to
//! everyone it reaches rather than once per subscriber:
//!
//! 1. **Open**: the operation executes once per subscriber with [`Phase::Open`]: its root
//!    resolver checks the arguments and the caller, opens the feed (`domain::feeds`) and
//!    leaves it here instead of streaming it. Every refusal is the one the client always
//!    got, from the same resolver.
//! 2. **Render**: each feed item executes the same document again with
//!    [`Phase::Render`], the root resolver yielding just that item, and becomes the text
//!    of a response. A live event is rendered once per operation (document, operation
//!    name, variables) for every subscriber it reaches — the first to get it executes,
//!    the others wait for that text and send the same bytes ([`Delivered::rendition`]).
//!    A selection whose output depends on the viewer (any resolver that asks who calls,
//!    `caller()`, marks the rendering) is rendered again per viewer. Each operation live
//!    on a chat registers its [`Renderer`] with the broker, whose stage renders the chat's
//!    events once per operation before the feeds are woken (`events::routes`): then every
//!    subscriber finds the text made.
//!
//! What stays per subscriber is what the feed decides: which events it delivers, the
//! replay of `after`, resync on lag, the end on removal. Those items (replayed messages,
//! `ResyncRequired`, errors) are rendered for their subscriber alone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Context, Positioned, Request, Response, Variables};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use super::documents::ParsedDocuments;
use super::{ChatSchema, response_text, with_codes, with_request_data};
use crate::app::App;
use crate::auth::Caller;
use crate::domain::feeds::chat::{ChatFeed, ChatFeedItem, ChatFeedStep, FeedFilter};
use crate::domain::feeds::inbox::{InboxFeed, InboxItem};
use crate::error::{AppError, AppResult};
use crate::events::{
    Delivered, DirectFeed, HandBack, Offer, Offered, RenderAhead, Rendition, RenditionKey,
};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// A subscription's feed, as its root resolver opened it.
pub(crate) enum Feed {
    /// `chatEvents`.
    Chat(ChatFeed),
    /// `messageAdded`: new messages only, ending after an error or a lag.
    NewMessages(ChatFeed),
    /// `myEvents`.
    Inbox(InboxFeed),
}

/// One feed item, for its root resolver to show.
pub(crate) enum Item {
    Chat(ChatId, AppResult<ChatFeedItem>),
    NewMessages(AppResult<ChatFeedItem>),
    Inbox(InboxItem),
}

/// What the subscription root's resolvers do in this execution (request data).
pub(crate) enum Phase {
    /// Open the feed and leave it here (shared with [`open`], which takes it after the
    /// execution); yield nothing.
    Open(Arc<Mutex<Option<Feed>>>),
    /// Yield this item (taken by the first resolver that asks).
    Render(Mutex<Option<Box<Item>>>),
}

impl Phase {
    /// Leaves the opened feed for [`open`] (in the open phase; ignored otherwise).
    pub(crate) fn opened(&self, feed: Feed) {
        if let Phase::Open(slot) = self {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(feed);
        }
    }

    /// The item to render, once.
    pub(crate) fn take_item(&self) -> Option<Item> {
        match self {
            Phase::Render(item) => item
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .map(|item| *item),
            Phase::Open(_) => None,
        }
    }
}

/// The phase of this execution; subscriptions run only through [`open`] (the WebSocket).
pub(crate) fn phase<'c>(ctx: &Context<'c>) -> AppResult<&'c Phase> {
    ctx.data_opt::<Phase>().ok_or_else(|| {
        AppError::BadInput("subscriptions are served over WebSocket at /graphql".into())
    })
}

/// Set by [`super::caller`] when a resolver asked who calls: the output then depends on
/// the viewer and is not shared with other viewers.
pub(crate) struct ViewerProbe(Arc<AtomicBool>);

impl ViewerProbe {
    pub(crate) fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a live operation needs besides its request.
pub struct LiveContext {
    pub app: App,
    pub schema: ChatSchema,
    pub documents: ParsedDocuments,
    pub caller: Caller,
    /// The operation's type, when it parsed (a query or mutation runs once, as usual).
    pub operation: Option<OperationType>,
    /// Largest response text; a bigger one becomes a `LIMIT_EXCEEDED` error.
    pub max_bytes: usize,
}

/// An operation after its open phase.
pub enum Opened {
    /// A feed is open: its items follow.
    Live(Box<LiveOperation>),
    /// No feed was opened (refused, or nothing to stream): these responses are all.
    Done(Vec<Response>),
}

/// Runs the open phase of `request` (see the module comment).
pub async fn open(mut request: Request, context: LiveContext) -> Opened {
    let template = Template::of(&mut request);
    let slot = Arc::new(Mutex::new(None));
    let request = with_request_data(
        request,
        &context.app,
        context.caller.clone(),
        context.operation,
    )
    .data(Phase::Open(slot.clone()));
    let responses: Vec<Response> = context.schema.execute_stream(request).collect().await;
    let feed = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    // Feeds open for users only (their resolvers ask for the caller's id).
    let (feed, viewer) = match (feed, context.caller.user_id()) {
        (Some(feed), Ok(viewer)) if responses.is_empty() => (feed, viewer),
        _ => return Opened::Done(responses),
    };
    let shows = match &feed {
        Feed::Chat(feed) => Shows::Chat(feed.chat()),
        Feed::NewMessages(feed) => Shows::NewMessages(feed.chat()),
        Feed::Inbox(_) => Shows::Inbox,
    };
    let renderer = Arc::new(Renderer {
        context,
        template,
        viewer,
        shows,
    });
    let mut shared_key = renderer.template.key.clone();
    if let Shows::Chat(chat) | Shows::NewMessages(chat) = shows {
        let ahead: Arc<dyn RenderAhead> = renderer.clone();
        let broker = renderer.context.app.broker();
        shared_key = broker.render_ahead(chat, shared_key, Arc::downgrade(&ahead));
    }
    Opened::Live(Box::new(LiveOperation {
        renderer,
        shared_key,
        feed,
        ended: false,
        writer: None,
        viewer_independent: true,
    }))
}

/// What identifies an operation's output: its document, operation name and the variables
/// its output can depend on.
struct Template {
    query: String,
    operation_name: Option<String>,
    variables: Variables,
    /// The three as one key.
    key: RenditionKey,
}

impl Template {
    /// The template of an admitted request (its document parsed, when it parses).
    fn of(request: &mut Request) -> Self {
        let operation_name = request.operation_name.clone();
        let shown = request
            .parsed_query()
            .ok()
            .and_then(|document| variables_shown(document, operation_name.as_deref()));
        // Variables only the root field's arguments use (`chatId`, `after`) choose the
        // feed, not how its events look: subscribers resuming from different cursors
        // still share renderings.
        let keyed: Vec<_> = request
            .variables
            .iter()
            .filter(|(name, _)| {
                shown
                    .as_ref()
                    .is_none_or(|shown| shown.contains(name.as_str()))
            })
            .collect();
        let variables = serde_json::to_string(&keyed).unwrap_or_default();
        let name = operation_name.as_deref().unwrap_or("");
        Self {
            key: RenditionKey::new(format!("{name}\n{variables}\n{}", request.query).into()),
            query: request.query.clone(),
            operation_name,
            variables: request.variables.clone(),
        }
    }
}

/// The variables an operation's output can depend on: those used anywhere but in its
/// root fields' arguments (nested arguments, directives, fragments). `None` when the
/// operation is not found.
fn variables_shown(document: &ExecutableDocument, name: Option<&str>) -> Option<HashSet<String>> {
    let operation = document
        .operations
        .iter()
        .find(|(op, _)| name.is_none() || op.map(|n| n.as_str()) == name)?
        .1;
    let mut used = HashSet::new();
    directive_variables(&operation.node.directives, &mut used);
    for item in &operation.node.selection_set.node.items {
        match &item.node {
            // A root field's arguments pick the feed; its directives change the output.
            Selection::Field(field) => {
                directive_variables(&field.node.directives, &mut used);
                selection_variables(&field.node.selection_set.node, &mut used);
            }
            _ => selection_variables_of(&item.node, &mut used),
        }
    }
    for fragment in document.fragments.values() {
        directive_variables(&fragment.node.directives, &mut used);
        selection_variables(&fragment.node.selection_set.node, &mut used);
    }
    Some(used)
}

/// Adds the variables an argument's value names to `used`. (The parser's value type is not
/// exported by name, so this is a macro; converting a copy to a constant visits each.)
macro_rules! note_variables {
    ($value:expr, $used:expr) => {{
        let _ = $value.clone().into_const_with(|name| {
            $used.insert(name.to_string());
            Ok::<_, std::convert::Infallible>(async_graphql::Value::Null)
        });
    }};
}

fn selection_variables(set: &SelectionSet, used: &mut HashSet<String>) {
    for item in &set.items {
        selection_variables_of(&item.node, used);
    }
}

fn selection_variables_of(selection: &Selection, used: &mut HashSet<String>) {
    match selection {
        Selection::Field(field) => {
            for (_, value) in &field.node.arguments {
                note_variables!(value.node, used);
            }
            directive_variables(&field.node.directives, used);
            selection_variables(&field.node.selection_set.node, used);
        }
        Selection::FragmentSpread(spread) => directive_variables(&spread.node.directives, used),
        Selection::InlineFragment(inline) => {
            directive_variables(&inline.node.directives, used);
            selection_variables(&inline.node.selection_set.node, used);
        }
    }
}

fn directive_variables(directives: &[Positioned<Directive>], used: &mut HashSet<String>) {
    for directive in directives {
        for (_, value) in &directive.node.arguments {
            note_variables!(value.node, used);
        }
    }
}

/// An open live operation of one subscriber: its feed, and how its items are rendered.
pub struct LiveOperation {
    /// Shared with the broker's stage, which renders live events with it ahead of the
    /// feeds (it holds it weakly: it goes with the operation).
    renderer: Arc<Renderer>,
    /// The operation's key as the stage keeps its renderings (see `Broker::render_ahead`).
    shared_key: RenditionKey,
    feed: Feed,
    ended: bool,
    /// Writes the operation's frames without its task, for the chat's stage (see
    /// [`LiveOperation::write_directly`]).
    writer: Option<Arc<dyn FrameWriter>>,
    /// Until a shared text proved valid for another viewer only: the stage's texts then
    /// do not fit this subscriber, and it stays off the stage.
    viewer_independent: bool,
}

/// Writes one subscription's frames to its socket at once, without waiting (the
/// WebSocket's side of [`LiveOperation::write_directly`]).
pub trait FrameWriter: Send + Sync {
    /// Writes, or queues behind what the socket is writing, the frame carrying
    /// `payload`; refused when the socket has no room now, or is closing.
    fn try_write(&self, payload: &str) -> Result<(), WriteRefused>;
}

/// The socket could not take a frame now.
#[derive(Debug)]
pub struct WriteRefused;

/// How one subscriber's operation renders its items.
pub(crate) struct Renderer {
    context: LiveContext,
    template: Template,
    /// The viewer, for renderings that depend on who looks.
    viewer: UserId,
    shows: Shows,
}

/// Which kind of feed the operation shows.
#[derive(Clone, Copy)]
enum Shows {
    Chat(ChatId),
    NewMessages(ChatId),
    Inbox,
}

impl LiveOperation {
    /// Lets the chat's stage write this operation's live events through `writer` while
    /// its feed keeps up (see `events::routes`): [`LiveOperation::next`] then waits
    /// until the stage hands the feed back, and never sees the events written meanwhile.
    pub fn write_directly(&mut self, writer: Arc<dyn FrameWriter>) {
        self.writer = Some(writer);
    }

    /// The text of the next response; `None` when the feed has ended.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        loop {
            if self.ended {
                return None;
            }
            // Boxed only when attached: the wait lives as long as the stage writes.
            let ended = match self.attach() {
                Some(attached) => Box::pin(self.while_attached(attached)).await,
                None => None,
            };
            let item = match &mut self.feed {
                Feed::Chat(feed) => match ended {
                    Some(ended) => Item::Chat(feed.chat(), ended),
                    None => Item::Chat(feed.chat(), feed.next().await?),
                },
                Feed::NewMessages(feed) => {
                    let item = match ended {
                        Some(ended) => ended,
                        None => feed.next().await?,
                    };
                    // An error (a lag is one here) is the last item.
                    self.ended =
                        !matches!(item, Ok(ChatFeedItem::Live(_) | ChatFeedItem::Replayed(_)));
                    Item::NewMessages(item)
                }
                Feed::Inbox(feed) => Item::Inbox(feed.next().await?),
            };
            // Boxed: rendering executes the document, and this future lives as long as
            // the subscription, idle or not.
            let renderer = &self.renderer;
            let text = match shared_event(&item) {
                Some(event) => Box::pin(renderer.render_shared(&event, item)).await,
                None => Box::pin(renderer.execute(item)).await.text,
            };
            if let Some(text) = text {
                return Some(text);
            }
        }
    }

    /// Attaches the chat feed to its stage when it can (a writer is set, the feed is
    /// idle and live, the output the same for every viewer).
    fn attach(&self) -> Option<Attached> {
        let writer = self.writer.clone()?;
        let (Feed::Chat(feed) | Feed::NewMessages(feed)) = &self.feed else {
            return None;
        };
        if !self.viewer_independent {
            return None;
        }
        let (back, handed_back) = tokio::sync::oneshot::channel();
        let direct = Arc::new(DirectSubscriber {
            filter: feed.filter(),
            key: self.shared_key.clone(),
            viewer: self.renderer.viewer,
            writer,
            state: Mutex::new(DirectState {
                open: true,
                back: Some(back),
                last_message_id: None,
                other_viewers_text: false,
            }),
        });
        let weak = Arc::downgrade(&direct) as Weak<dyn DirectFeed>;
        feed.attach(weak).then_some(Attached {
            direct,
            handed_back,
        })
    }

    /// While the stage writes the feed's events: until it hands the feed back (`None`,
    /// the feed resumed) or the membership check, which goes on meanwhile, ends it (the
    /// last item).
    async fn while_attached(&mut self, attached: Attached) -> Option<AppResult<ChatFeedItem>> {
        let (Feed::Chat(feed) | Feed::NewMessages(feed)) = &mut self.feed else {
            return None;
        };
        let outcome = tokio::select! {
            back = attached.handed_back => Ok(back),
            ended = feed.recheck_membership() => Err(ended),
        };
        let state = attached.direct.detach();
        if state.other_viewers_text {
            self.viewer_independent = false;
        }
        match outcome {
            Ok(Ok(back)) => {
                feed.resume(back, state.last_message_id);
                None
            }
            // The sender is dropped only with the subscriber, which this holds.
            Ok(Err(_)) => None,
            Err(ended) => Some(ended),
        }
    }
}

/// A feed attached to its chat's stage, as its task holds it.
struct Attached {
    direct: Arc<DirectSubscriber>,
    handed_back: tokio::sync::oneshot::Receiver<HandBack>,
}

/// What the stage offers an attached feed's events to: the feed's filter, the
/// operation's shared text, and the socket (see `events::routes`).
struct DirectSubscriber {
    filter: FeedFilter,
    key: RenditionKey,
    viewer: UserId,
    writer: Arc<dyn FrameWriter>,
    /// Locked for each offer, so that once detached nothing more is written.
    state: Mutex<DirectState>,
}

struct DirectState {
    open: bool,
    /// Taken when the stage hands the feed back.
    back: Option<tokio::sync::oneshot::Sender<HandBack>>,
    /// The newest message written, for the feed's resync cursor.
    last_message_id: Option<MessageId>,
    /// A shared text valid for another viewer only was offered.
    other_viewers_text: bool,
}

impl DirectSubscriber {
    /// Stops the stage writing (an offer under way finishes first); what it did.
    fn detach(&self) -> DirectState {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open = false;
        DirectState {
            open: false,
            back: state.back.take(),
            last_message_id: state.last_message_id,
            other_viewers_text: state.other_viewers_text,
        }
    }
}

impl DirectFeed for DirectSubscriber {
    fn offer(&self, offer: &mut Offer<'_>) -> Offered {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.open {
            return Offered::Gone;
        }
        let event = offer.event();
        match self.filter.step(event) {
            ChatFeedStep::Skip => return Offered::Kept,
            ChatFeedStep::Deliver => {}
            // Ends or resyncs the feed: its task's part.
            ChatFeedStep::DeliverLast | ChatFeedStep::Resync => return Offered::HandBack,
        }
        // Not made when the stage was catching up, or gave up waiting on it.
        let Some(rendition) = offer.rendition(&self.key) else {
            return Offered::HandBack;
        };
        if rendition
            .only_for
            .is_some_and(|viewer| viewer != self.viewer)
        {
            state.other_viewers_text = true;
            return Offered::HandBack;
        }
        if let Some(text) = &rendition.text
            && self.writer.try_write(text).is_err()
        {
            // The task waits for room (and lags, if it must), as without the stage.
            return Offered::HandBack;
        }
        if let crate::events::EventKind::MessageAdded { message_id, .. } = &event.kind {
            state.last_message_id = state.last_message_id.max(Some(*message_id));
        }
        offer.written();
        Offered::Kept
    }

    fn hand_back(&self, back: HandBack) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open = false;
        if let Some(sender) = state.back.take() {
            // Its task gone, nothing is left to resume.
            let _ = sender.send(back);
        }
    }
}

impl RenderAhead for Renderer {
    fn render(self: Arc<Self>, event: Arc<Delivered>) -> BoxFuture<'static, Rendition> {
        Box::pin(async move {
            self.context.app.metrics().event_rendered(false);
            let item = self.live_item(event);
            self.execute(item).await
        })
    }
}

impl Renderer {
    /// Renders a live event once for every subscriber of this operation; when the output
    /// depends on the viewer, each other viewer renders their own. Those per-viewer texts
    /// are not kept with the event: an event stays in its chat's channel until evicted,
    /// and a text per member of a big chat would add up.
    async fn render_shared(&self, event: &Arc<Delivered>, item: Item) -> Option<Arc<str>> {
        let metrics = self.context.app.metrics();
        let key = self.template.key.clone();
        let mut executed = false;
        let rendition = event
            .rendition(key, || {
                executed = true;
                self.execute(item)
            })
            .await;
        match rendition.only_for {
            Some(viewer) if viewer != self.viewer => {
                metrics.event_rendered(false);
                self.execute(self.live_item(event.clone())).await.text
            }
            _ => {
                metrics.event_rendered(!executed);
                rendition.text
            }
        }
    }

    /// This feed's item for a live event.
    fn live_item(&self, event: Arc<Delivered>) -> Item {
        let live = Ok(ChatFeedItem::Live(event));
        match self.shows {
            Shows::Chat(chat) => Item::Chat(chat, live),
            Shows::NewMessages(_) => Item::NewMessages(live),
            // Inbox items are never shared (see `shared_event`).
            Shows::Inbox => Item::Inbox(InboxItem::Resync),
        }
    }

    /// Executes the document for one item, as this subscriber.
    async fn execute(&self, item: Item) -> Rendition {
        let context = &self.context;
        let mut request =
            Request::new(self.template.query.clone()).variables(self.template.variables.clone());
        if let Some(name) = &self.template.operation_name {
            request = request.operation_name(name.clone());
        }
        context.documents.parse(&mut request);
        let viewer_read = Arc::new(AtomicBool::new(false));
        let request = with_request_data(
            request,
            &context.app,
            context.caller.clone(),
            Some(OperationType::Subscription),
        )
        .data(Phase::Render(Mutex::new(Some(Box::new(item)))))
        .data(ViewerProbe(viewer_read.clone()));
        let response = context.schema.execute_stream(request).next().await;
        let text = response
            .map(|response| Arc::from(response_text(&with_codes(response), context.max_bytes)));
        Rendition {
            text,
            only_for: viewer_read.load(Ordering::Relaxed).then_some(self.viewer),
        }
    }
}

/// The live event an item shows when every subscriber it reaches sees it alike. Inbox
/// items are per user by nature (one user's unread counts), so never shared.
fn shared_event(item: &Item) -> Option<Arc<Delivered>> {
    match item {
        Item::Chat(_, Ok(ChatFeedItem::Live(event)))
        | Item::NewMessages(Ok(ChatFeedItem::Live(event))) => Some(event.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Checked<T = ()> = Result<T, Box<dyn std::error::Error>>;

    fn shown(query: &str, name: Option<&str>) -> Checked<Vec<String>> {
        let document = async_graphql::parser::parse_query(query)?;
        let mut shown: Vec<String> = variables_shown(&document, name)
            .ok_or("no such operation")?
            .into_iter()
            .collect();
        shown.sort();
        Ok(shown)
    }

    #[test]
    fn root_arguments_choose_the_feed_and_everything_else_shapes_the_output() -> Checked {
        let query =
            "subscription S($c: ID!, $after: String, $n: Int, $skip: Boolean!, $f: Boolean!) {
            chatEvents(chatId: $c, after: $after) @include(if: $skip) {
                ... on MessageAdded { message { chat { messages(first: $n) { nodes { id } } } } }
                ...More
            }
        }
        fragment More on MessageEdited { message @skip(if: $f) { id } }";
        assert_eq!(shown(query, Some("S"))?, ["f", "n", "skip"]);
        assert_eq!(shown(query, None)?, ["f", "n", "skip"]);
        Ok(())
    }

    #[test]
    fn an_operation_whose_variables_only_pick_the_feed_shows_none() -> Checked {
        let query = "subscription($c: ID!) { messageAdded(chatId: $c) { chat { id } node: id } }";
        assert!(shown(query, None)?.is_empty());
        let query = "subscription($c: ID!, $b: Boolean!) { chatEvents(chatId: $c) {
            ... on MessageAdded @include(if: $b) { messageId } } }";
        assert_eq!(shown(query, None)?, ["b"]);
        Ok(())
    }
}
