//! The subscription root: thin wrappers that open a feed (`domain::feeds`) and map its
//! items to GraphQL events.

use async_graphql::{Context, Result, Subscription};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};

use super::events::chat::ChatEvent;
use super::events::inbox::UserEvent;
use super::types::MessageNode;
use super::{app, caller_id};
use crate::db;
use crate::domain::feeds::chat::{ChatFeed, ChatFeedItem};
use crate::domain::feeds::inbox::InboxFeed;
use crate::domain::messages::decode_message_cursor;
use crate::error::AppError;
use crate::events::EventKind;
use crate::vocabulary::ids::ChatId;

/// The root subscription type.
#[derive(Default)]
pub struct Subscription;

/// Live feeds over WebSocket (graphql-transport-ws or the legacy graphql-ws).
#[Subscription]
impl Subscription {
    /// Everything that happens in a chat (members only). With `after` (a message cursor)
    /// every message after it is replayed first, then the feed goes live with no gap and
    /// no duplicate. A subscriber that falls behind gets `ResyncRequired`; a member who is
    /// removed gets their own `MemberLeft` and the feed ends.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<ChatEvent>> + use<>> {
        let app = app(ctx)?;
        let after = after.as_deref().map(decode_message_cursor).transpose()?;
        let feed = ChatFeed::open(app, caller_id(ctx)?, chat_id, after).await?;
        Ok(stream::unfold(feed, move |mut feed| async move {
            let item = feed.next().await?;
            let event = item
                .map(|item| ChatEvent::from_item(chat_id, item))
                .map_err(async_graphql::Error::from);
            Some((event, feed))
        }))
    }

    /// The caller's inbox across all their chats: new messages with unread counts, unread
    /// count changes, chats added, removed and updated.
    async fn my_events(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = UserEvent> + use<>> {
        let me = caller_id(ctx)?;
        let feed = InboxFeed::open(app(ctx)?, me).await?;
        Ok(stream::unfold(feed, move |mut feed| async move {
            let item = feed.next().await?;
            Some((UserEvent::from_item(item), feed))
        }))
    }

    /// New messages in a chat (members only): the simple form of `chatEvents`. A
    /// subscriber that falls behind gets a `LIMIT_EXCEEDED` error and the feed ends.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
    ) -> Result<impl Stream<Item = Result<MessageNode>> + use<>> {
        let app = app(ctx)?.clone();
        let feed = ChatFeed::open(&app, caller_id(ctx)?, chat_id, None).await?;
        let items = stream::unfold(feed, |mut feed| async move {
            let item = feed.next().await?;
            Some((item, feed))
        });
        Ok(items
            .filter_map(move |item| {
                let app = app.clone();
                async move {
                    match item {
                        Ok(ChatFeedItem::Live(event)) => match event.kind {
                            EventKind::MessageAdded { message_id, .. } => {
                                let found = event
                                    .message(|| async {
                                        let mut conn = app.db().conn().await?;
                                        db::messages::find(&mut conn, message_id).await
                                    })
                                    .await;
                                match found {
                                    Ok(row) => row.map(|m| Ok(MessageNode::loaded(m))),
                                    Err(e) => Some(Err(AppError::from(e).into())),
                                }
                            }
                            _ => None,
                        },
                        Ok(ChatFeedItem::Resync { .. }) => Some(Err(AppError::LimitExceeded(
                            "this subscriber fell behind and missed messages; re-query and resubscribe"
                                .into(),
                        )
                        .into())),
                        Ok(ChatFeedItem::Replayed(message)) => Some(Ok(MessageNode::loaded(message))),
                        Err(e) => Some(Err(e.into())),
                    }
                }
            })
            // An error is the last item: the subscriber must re-query and resubscribe.
            .scan(false, |ended, item| {
                let next = (!*ended).then(|| {
                    *ended = item.is_err();
                    item
                });
                std::future::ready(next)
            }))
    }
}
