//! The subscription root: thin resolvers that open a feed (`domain::feeds`) in the open
//! phase and show one of its items in the render phase (see `live`).

use async_graphql::{Context, Result, Subscription};
use futures_util::stream::{self, BoxStream, StreamExt};

use super::events::chat::ChatEvent;
use super::events::inbox::UserEvent;
use super::live::{Feed, Item, Phase, phase};
use super::types::MessageNode;
use super::{app, caller_id};
use crate::db;
use crate::domain::feeds::chat::{ChatFeed, ChatFeedItem};
use crate::domain::feeds::inbox::InboxFeed;
use crate::domain::messages::decode_message_cursor;
use crate::error::AppError;
use crate::events::EventKind;
use crate::vocabulary::ids::{ChatId, MessageId};

/// The root subscription type.
#[derive(Default)]
pub struct Subscription;

/// The stream a root resolver returns: nothing in the open phase, the item in the render
/// phase.
type Shown<T> = BoxStream<'static, T>;

fn nothing<T: Send + 'static>() -> Shown<T> {
    stream::empty().boxed()
}

fn one<T: Send + 'static>(item: T) -> Shown<T> {
    stream::once(std::future::ready(item)).boxed()
}

/// Opens a chat feed (subscribing first, then checking membership) and leaves it with
/// `phase`.
async fn open_chat(
    ctx: &Context<'_>,
    phase: &Phase,
    chat: ChatId,
    thread: Option<MessageId>,
    after: Option<String>,
    feed: impl FnOnce(ChatFeed) -> Feed,
) -> Result<()> {
    let after = after.as_deref().map(decode_message_cursor).transpose()?;
    let opened = ChatFeed::open_in(app(ctx)?, caller_id(ctx)?, chat, thread, after).await?;
    phase.opened(feed(opened));
    Ok(())
}

/// Live feeds over WebSocket (graphql-transport-ws or the legacy graphql-ws).
#[Subscription]
impl Subscription {
    /// Everything that happens in a chat (members only). With `after` (a message cursor)
    /// every message after it is replayed first, then the feed goes live with no gap and
    /// no duplicate. A subscriber that falls behind gets `ResyncRequired`; a member who is
    /// removed gets their own `MemberLeft` and the feed ends. With `threadId` (a message of
    /// the chat), only that thread: events about the message and its replies, the chat's
    /// `ChatUpdated`, and what ends the feed (the message's deletion too); `after` then
    /// replays its replies.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        after: Option<String>,
        thread_id: Option<MessageId>,
    ) -> Result<Shown<Result<ChatEvent>>> {
        let phase = phase(ctx)?;
        if let Phase::Open(_) = phase {
            open_chat(ctx, phase, chat_id, thread_id, after, Feed::Chat).await?;
            return Ok(nothing());
        }
        Ok(match phase.take_item() {
            Some(Item::Chat(chat, item)) => one(item
                .map(|item| ChatEvent::from_item(chat, item))
                .map_err(async_graphql::Error::from)),
            _ => nothing(),
        })
    }

    /// The caller's inbox across all their chats: new messages with unread counts, unread
    /// count changes, chats added, removed and updated.
    async fn my_events(&self, ctx: &Context<'_>) -> Result<Shown<UserEvent>> {
        let phase = phase(ctx)?;
        if let Phase::Open(_) = phase {
            let feed = InboxFeed::open(app(ctx)?, caller_id(ctx)?).await?;
            phase.opened(Feed::Inbox(feed));
            return Ok(nothing());
        }
        Ok(match phase.take_item() {
            Some(Item::Inbox(item)) => one(UserEvent::from_item(item)),
            _ => nothing(),
        })
    }

    /// New messages in a chat (members only): the simple form of `chatEvents`. A
    /// subscriber that falls behind gets a `LIMIT_EXCEEDED` error and the feed ends.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
    ) -> Result<Shown<Result<MessageNode>>> {
        let phase = phase(ctx)?;
        if let Phase::Open(_) = phase {
            open_chat(ctx, phase, chat_id, None, None, Feed::NewMessages).await?;
            return Ok(nothing());
        }
        let Some(Item::NewMessages(item)) = phase.take_item() else {
            return Ok(nothing());
        };
        let shown = match item {
            Ok(ChatFeedItem::Live(event)) => match event.kind {
                EventKind::MessageAdded { message_id, .. } => {
                    let app = app(ctx)?;
                    let found = event
                        .message(|| async {
                            let mut conn = app.db().conn().await?;
                            db::messages::find(&mut conn, message_id).await
                        })
                        .await;
                    match found {
                        // Deleted before it was shown: nothing to show.
                        Ok(row) => row.map(|m| Ok(MessageNode::loaded(m))),
                        Err(e) => Some(Err(AppError::from(e).into())),
                    }
                }
                _ => None,
            },
            Ok(ChatFeedItem::Resync { .. }) => Some(Err(AppError::LimitExceeded(
                "this subscriber fell behind and missed messages; re-query and resubscribe".into(),
            )
            .into())),
            Ok(ChatFeedItem::Replayed(message)) => Some(Ok(MessageNode::loaded(message))),
            Err(e) => Some(Err(e.into())),
        };
        Ok(shown.map_or_else(nothing, one))
    }
}
