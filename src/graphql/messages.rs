//! Message queries and mutations (thin: parse ids, call `domain::messages`, wrap).

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, Result, SimpleObject};

use super::loaders::UserKey;
use super::scalars::DateTime;
use super::types::{
    MemberNode, MessageConnection, MessageNode, MessagePageArgs, connection, message_page,
    search_connection,
};
use super::{absent_unless_visible, app, caller, caller_id, loaders};
use crate::db::messages::{HistoryFilter, TimeRange};
use crate::domain::sending::{self, SendMessage, SendQueues};
use crate::domain::{messages, pins, reactions, receipts, search, threads};
use crate::vocabulary::cursor::PageRequest;
use crate::vocabulary::enums::{MessageKind, MessageRole, StreamState};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

/// A message another system already has, for `importMessages`.
#[derive(Debug, InputObject)]
#[graphql(name = "ImportedMessageInput")]
pub struct ImportedMessage {
    /// Who sent it: a member of the chat (held to the rules of a send: ASSISTANT from bots,
    /// SYSTEM from the chat's OWNER or ADMIN).
    pub sender_id: UserId,
    /// When it was sent (at most a minute ahead of this server's clock). Messages are
    /// ordered by when they are stored; this is the time they show.
    pub created_at: DateTime,
    /// The text.
    pub content: String,
    /// What it carries (default TEXT).
    pub kind: Option<MessageKind>,
    /// LLM-style role (default USER, or ASSISTANT for bots).
    pub role: Option<MessageRole>,
    /// The message this one replies to (stored before this call).
    pub parent_id: Option<MessageId>,
    /// The other system's id for the message: with the sender, what makes a repeated
    /// import return the stored message instead of a copy.
    pub client_id: String,
    /// Free-form data.
    pub data: Option<serde_json::Value>,
}

/// Message queries.
#[derive(Default)]
pub struct MessageQuery;

#[Object]
impl MessageQuery {
    /// A message in one of the caller's chats; null when there is no such message or the
    /// caller is not in its chat.
    async fn message(&self, ctx: &Context<'_>, id: MessageId) -> Result<Option<MessageNode>> {
        let message = messages::get(app(ctx)?, caller_id(ctx)?, id).await;
        Ok(absent_unless_visible(message)?.map(MessageNode::loaded))
    }

    /// A chat's messages: `first/after` reads oldest→newest, `last/before` reads back from
    /// the newest. `since`/`until` keep only messages created at or after / before then.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, last, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn messages(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        since: Option<DateTime>,
        until: Option<DateTime>,
    ) -> Result<MessageConnection> {
        let args = MessagePageArgs {
            first,
            after,
            last,
            before,
            since,
            until,
        };
        message_page(ctx, chat_id, args).await
    }

    /// The caller's unread messages in a chat, oldest first.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    async fn unread_messages(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        first: Option<i32>,
    ) -> Result<MessageConnection> {
        let app = app(ctx)?;
        let page = PageRequest::forward(first, None, app.config().max_page_size)?;
        let rows = messages::unread(app, caller_id(ctx)?, chat_id, page.limit).await?;
        Ok(connection(
            rows,
            messages::message_cursor,
            MessageNode::loaded,
        ))
    }

    /// Full-text search over the messages the caller can read: every chat they are a
    /// member of, or only `chatId` (FORBIDDEN for a non-member, as `messages`). All words must occur
    /// (stemmed: `deploying` finds `deployed`), `"quoted words"` together in that order,
    /// `or` between two words takes either, `-word` excludes. `sender` keeps one user's
    /// messages, `from`/`until` those created at or after / before then. Best matches
    /// first (among the newest 1,000 matches; ties newest first), each edge with its
    /// `searchMatch` (rank and highlighted snippet); page on with `after`. Retracted and
    /// deleted messages never match. A text with no word to look for is BAD_USER_INPUT;
    /// over 256 characters or 32 words and phrases, LIMIT_EXCEEDED.
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(first, None, crate::vocabulary::cursor::DEFAULT_PAGE_SIZE, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn search_messages(
        &self,
        ctx: &Context<'_>,
        query: String,
        chat_id: Option<ChatId>,
        sender: Option<UserId>,
        from: Option<DateTime>,
        until: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<MessageConnection> {
        let app = app(ctx)?;
        let page = PageRequest::forward(first, after, app.config().max_page_size)?;
        let request = search::SearchRequest {
            text: &query,
            chat: chat_id,
            sender,
            range: TimeRange {
                since: from.map(|t| t.0),
                until: until.map(|t| t.0),
            },
        };
        let results = search::search(app, caller_id(ctx)?, request, &page).await?;
        Ok(search_connection(results))
    }

    /// The conversation as the next LLM turn should see it: the newest `last` (default
    /// 50, at most 1000) messages, oldest first, as `{role, content}` entries ready for a
    /// chat-completion request. Left out: retracted messages, messages without content,
    /// replies that `FAILED` or are still `STREAMING` (unless `includeFailed` /
    /// `includeStreaming`); an `INTERRUPTED` reply keeps what was streamed. `maxTokens`
    /// keeps the newest messages whose estimated tokens (4 characters a token, plus 4 per
    /// message) fit; `from` starts at that message (inclusive).
    #[graphql(
        complexity = "crate::graphql::connection::page_cost(None, last, crate::domain::messages::DEFAULT_HISTORY, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn history(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        last: Option<i32>,
        max_tokens: Option<i32>,
        from: Option<MessageId>,
        include_failed: Option<bool>,
        include_streaming: Option<bool>,
    ) -> Result<Vec<HistoryEntry>> {
        let request = messages::HistoryRequest {
            last,
            max_tokens,
            filter: HistoryFilter {
                include_failed: include_failed.unwrap_or(false),
                include_streaming: include_streaming.unwrap_or(false),
                from,
            },
        };
        let rows = messages::history(app(ctx)?, caller_id(ctx)?, chat_id, request).await?;
        Ok(rows
            .into_iter()
            .map(|m| HistoryEntry {
                message_id: m.id,
                role: m.role,
                content: m.content,
                sender_id: m.sender_id,
            })
            .collect())
    }
}

/// Message mutations.
#[derive(Default)]
pub struct MessageMutation;

#[Object]
impl MessageMutation {
    /// Sends a message (members only). A repeated `clientId` returns the original message.
    async fn send_message(&self, ctx: &Context<'_>, input: SendMessage) -> Result<MessageNode> {
        let queues = ctx.data::<SendQueues>()?;
        Ok(MessageNode::loaded(
            queues.send(caller_id(ctx)?, input).await?,
        ))
    }

    /// Stores messages another system already has, each with its sender and time (admin
    /// key; at most 100 per call): all of them or none, in order. A `clientId` already
    /// stored for its sender returns that message instead, so a repeated sync adds
    /// nothing. Subscribers and unread counts see them as they see sends.
    async fn import_messages(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        messages: Vec<ImportedMessage>,
    ) -> Result<Vec<MessageNode>> {
        let imported = messages
            .into_iter()
            .map(|message| sending::Imported {
                sender: message.sender_id,
                input: SendMessage {
                    chat_id,
                    content: message.content,
                    kind: message.kind,
                    role: message.role,
                    parent_id: message.parent_id,
                    client_id: Some(message.client_id),
                    data: message.data,
                    stream: None,
                    trace_id: None,
                    mentions: None,
                    attachment_ids: None,
                    sent_at: Some(message.created_at.0),
                },
            })
            .collect();
        Ok(sending::import(app(ctx)?, caller(ctx), chat_id, imported)
            .await?
            .into_iter()
            .map(MessageNode::loaded)
            .collect())
    }

    /// Replaces a message's content (sender only, inside the edit window); the previous
    /// content goes into `edits`. Saving the same content again changes nothing.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        id: MessageId,
        content: String,
    ) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            messages::edit(app(ctx)?, caller_id(ctx)?, id, &content).await?,
        ))
    }

    /// Retracts a message (sender only): it stays as a tombstone, its content hidden.
    async fn retract_message(&self, ctx: &Context<'_>, id: MessageId) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            messages::retract(app(ctx)?, caller_id(ctx)?, id).await?,
        ))
    }

    /// Deletes a message for good (OWNER/ADMIN/MODERATOR).
    async fn delete_message(&self, ctx: &Context<'_>, id: MessageId) -> Result<bool> {
        Ok(messages::delete(app(ctx)?, caller_id(ctx)?, id).await?)
    }

    /// Adds the caller's reaction to a message (members only): one emoji, or a shortcode
    /// such as `:thumbsup:`. Adding one that is there already changes nothing. Returns the
    /// message, with `reactions` as they are now.
    async fn add_reaction(
        &self,
        ctx: &Context<'_>,
        message_id: MessageId,
        emoji: String,
    ) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            reactions::add(app(ctx)?, caller_id(ctx)?, message_id, &emoji).await?,
        ))
    }

    /// Removes the caller's reaction from a message; removing one that is not there
    /// changes nothing.
    async fn remove_reaction(
        &self,
        ctx: &Context<'_>,
        message_id: MessageId,
        emoji: String,
    ) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            reactions::remove(app(ctx)?, caller_id(ctx)?, message_id, &emoji).await?,
        ))
    }

    /// Pins a message in its chat (OWNER or ADMIN; either member of a direct chat). At
    /// most 50 per chat; pinning a pinned message changes nothing.
    async fn pin_message(&self, ctx: &Context<'_>, id: MessageId) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            pins::pin(app(ctx)?, caller_id(ctx)?, id).await?,
        ))
    }

    /// Unpins a message (OWNER or ADMIN; either member of a direct chat).
    async fn unpin_message(&self, ctx: &Context<'_>, id: MessageId) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            pins::unpin(app(ctx)?, caller_id(ctx)?, id).await?,
        ))
    }

    /// Moves the caller's read mark in a message's thread up to one of its replies (null:
    /// the newest reply), so `threadUnreadCount` drops; never moves back. The chat's read
    /// watermark (`markRead`) is separate and covers replies too. Returns the thread's
    /// message.
    async fn mark_thread_read(
        &self,
        ctx: &Context<'_>,
        message_id: MessageId,
        up_to_message_id: Option<MessageId>,
    ) -> Result<MessageNode> {
        let (app, caller) = (app(ctx)?, caller_id(ctx)?);
        Ok(MessageNode::loaded(
            threads::mark_read(app, caller, message_id, up_to_message_id).await?,
        ))
    }

    /// Moves the caller's read watermark up to a message (null: the newest). Never moves back.
    async fn mark_read(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        up_to_message_id: Option<MessageId>,
    ) -> Result<MemberNode> {
        Ok(MemberNode(
            receipts::mark_read(app(ctx)?, caller_id(ctx)?, chat_id, up_to_message_id).await?,
        ))
    }

    /// Marks messages read (in each chat, up to the newest given); returns how many.
    async fn mark_messages_read(
        &self,
        ctx: &Context<'_>,
        message_ids: Vec<MessageId>,
    ) -> Result<i32> {
        Ok(receipts::mark_messages_read(app(ctx)?, caller_id(ctx)?, &message_ids).await?)
    }

    /// Tells the chat's other members the caller is typing (or stopped). Not stored; a
    /// `true` expires after a few seconds unless sent again.
    async fn set_typing(&self, ctx: &Context<'_>, chat_id: ChatId, typing: bool) -> Result<bool> {
        Ok(messages::set_typing(app(ctx)?, caller_id(ctx)?, chat_id, typing).await?)
    }

    /// Appends a chunk to a streaming assistant reply (its sender only); subscribers get
    /// a `MessageDelta`. Appending to a finished or interrupted message is a `CONFLICT`.
    /// `traceId` (at most 128 printable ASCII characters) replaces the message's trace id
    /// and is logged.
    async fn append_message_content(
        &self,
        ctx: &Context<'_>,
        id: MessageId,
        delta: String,
        trace_id: Option<String>,
    ) -> Result<MessageNode> {
        let caller = caller_id(ctx)?;
        let appended = messages::append(app(ctx)?, caller, id, &delta, trace_id.as_deref()).await?;
        Ok(MessageNode::loaded(appended))
    }

    /// Ends a streaming reply as COMPLETE, INTERRUPTED or FAILED (its sender only).
    async fn finish_message(
        &self,
        ctx: &Context<'_>,
        id: MessageId,
        state: StreamState,
    ) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            messages::finish(app(ctx)?, caller_id(ctx)?, id, state).await?,
        ))
    }

    /// Stops a streaming reply (any member of its chat): it ends `INTERRUPTED` with what
    /// was streamed so far kept, and its bot gets `ReplyInterrupted` (in `chatEvents` and
    /// its `myEvents`); the bot's later `appendMessageContent` is a `CONFLICT`. A reply
    /// that is no longer streaming is returned unchanged (interrupting twice is a no-op).
    async fn interrupt_reply(
        &self,
        ctx: &Context<'_>,
        message_id: MessageId,
    ) -> Result<MessageNode> {
        Ok(MessageNode::loaded(
            messages::interrupt(app(ctx)?, caller_id(ctx)?, message_id).await?,
        ))
    }

    /// Moves the caller's delivery watermark up to a message. Never moves back.
    async fn mark_delivered(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        up_to_message_id: MessageId,
    ) -> Result<MemberNode> {
        Ok(MemberNode(
            receipts::mark_delivered(app(ctx)?, caller_id(ctx)?, chat_id, up_to_message_id).await?,
        ))
    }
}

/// One entry of a chat's history in LLM chat-completion form.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct HistoryEntry {
    /// `USER`, `ASSISTANT` or `SYSTEM`.
    pub role: MessageRole,
    /// The message text.
    pub content: String,
    #[graphql(skip)]
    pub message_id: MessageId,
    #[graphql(skip)]
    pub sender_id: Option<UserId>,
}

#[ComplexObject]
impl HistoryEntry {
    /// The role as chat-completion APIs spell it: `system`, `user` or `assistant`.
    async fn api_role(&self) -> &'static str {
        match self.role {
            MessageRole::System => "system",
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }
    /// The message's id (e.g. to pass as `from`).
    async fn message_id(&self) -> ID {
        self.message_id.into()
    }
    /// Sender's display name, for multi-party prompts.
    async fn name(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let Some(id) = self.sender_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(UserKey(id))
            .await?
            .map(|u| u.display_name.unwrap_or(u.username)))
    }
}
