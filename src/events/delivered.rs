//! An event on its way to subscribers, with what they compute from it once and share: the
//! message it names, and the text each kind of subscription makes of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use super::Event;
use crate::db::messages::Message;
use crate::vocabulary::ids::UserId;

/// An event as subscribers receive it: the event plus what is computed from it once, by
/// whichever subscriber needs it first, and shared by all the others (one query, one
/// rendering per event, not one per subscriber). It dereferences to the [`Event`].
#[derive(Debug)]
pub struct Delivered {
    event: Event,
    /// Its place among everything this process published (set when published), so that a
    /// receiver opened after it can tell it was published before (see `routes`).
    sequence: AtomicU64,
    message: OnceCell<Option<Message>>,
    renditions: Mutex<HashMap<RenditionKey, Arc<OnceCell<Rendition>>>>,
}

/// Renders an event for one operation, as one of its subscribers, ahead of them all (see
/// `routes`: a chat's events are rendered before its feeds are woken).
pub trait RenderAhead: Send + Sync {
    /// The operation's rendering of `event` (kept with the event by the caller).
    fn render(self: Arc<Self>, event: Arc<Delivered>) -> BoxFuture<'static, Rendition>;
}

/// Which rendering of an event: the operation it is rendered for (whatever identifies its
/// output, e.g. a document with its variables).
#[derive(Clone, Debug)]
pub struct RenditionKey {
    /// Identifies the operation whose output this is.
    operation: Arc<str>,
    /// Of `operation`, computed once per subscription rather than once per event and
    /// subscriber (the text is a whole document).
    hash: u64,
}

impl RenditionKey {
    /// The key of the operation `operation` identifies.
    pub fn new(operation: Arc<str>) -> Self {
        use std::hash::{Hash, Hasher};
        // Fixed keys, so every subscriber of the operation computes the same hash; the
        // map hashes it again with its own random keys, and equal hashes still compare
        // the texts.
        let mut hasher = std::hash::DefaultHasher::new();
        operation.hash(&mut hasher);
        Self {
            operation,
            hash: hasher.finish(),
        }
    }
}

impl PartialEq for RenditionKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.operation, &other.operation) || self.operation == other.operation
    }
}

impl Eq for RenditionKey {}

impl std::hash::Hash for RenditionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// An event rendered for one operation.
#[derive(Clone, Debug)]
pub struct Rendition {
    /// The output; `None` when the operation shows nothing of this event.
    pub text: Option<Arc<str>>,
    /// Set when the output depends on who looks: it is valid for this viewer only, and
    /// every other renders their own.
    pub only_for: Option<UserId>,
}

impl Delivered {
    /// An event about to be delivered, nothing computed from it yet.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            sequence: AtomicU64::new(0),
            message: OnceCell::new(),
            renditions: Mutex::new(HashMap::new()),
        }
    }

    /// An event about to be delivered that names `message`, as the transaction that
    /// emitted it stored it.
    pub fn with_message(event: Event, message: Message) -> Self {
        Self {
            message: OnceCell::new_with(Some(Some(message))),
            ..Self::new(event)
        }
    }

    /// Its place in publish order (0 until published).
    pub(super) fn sequence(&self) -> u64 {
        self.sequence.load(Ordering::Relaxed)
    }

    /// Numbered once, by the publisher, before any receiver can see it.
    pub(super) fn set_sequence(&self, sequence: u64) {
        self.sequence.store(sequence, Ordering::Relaxed);
    }

    /// The event's message as loaded by `load` the first time any subscriber asked.
    pub async fn message<E, F>(&self, load: impl FnOnce() -> F) -> Result<Option<Message>, E>
    where
        F: Future<Output = Result<Option<Message>, E>>,
    {
        self.message.get_or_try_init(load).await.cloned()
    }

    /// The rendering `key` names, made by `render` for the first subscriber that asks;
    /// the others wait for it and share it.
    pub async fn rendition<F>(&self, key: RenditionKey, render: impl FnOnce() -> F) -> Rendition
    where
        F: Future<Output = Rendition>,
    {
        let cell = {
            // Each update is one insert, so a poisoned map is still consistent.
            let mut renditions = self.renditions.lock().unwrap_or_else(|e| e.into_inner());
            renditions.entry(key).or_default().clone()
        };
        cell.get_or_init(render).await.clone()
    }

    /// The rendering `key` names if it is made already (`None` while it is being made).
    pub fn rendition_made(&self, key: &RenditionKey) -> Option<Rendition> {
        let renditions = self.renditions.lock().unwrap_or_else(|e| e.into_inner());
        renditions.get(key)?.get().cloned()
    }
}

impl std::ops::Deref for Delivered {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}
