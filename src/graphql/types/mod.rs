//! The entity types of the schema (User, Chat, Member, Message), the `Node` interface and
//! connection helpers. The types are defined here and their fields resolved in one file
//! each: the entities name each other (a chat has messages, a message its chat), so the
//! definitions sit below the resolvers that use them.

use async_graphql::connection::PageInfo;
use async_graphql::{Context, ID, Interface, Object, Result, SimpleObject};

pub use super::connection::connection;
use super::connection::{RelayConnection, connection_type, page_info};
use super::lazy::LazyRow;
use super::loaders::{BlocksKey, ChatKey, MessageKey, Unread, UnreadKey, UserKey};
use super::{app, caller_id, loaders, with_checked_memberships};
use crate::db;
use crate::db::messages::TimeRange;
use crate::domain::messages::{self, UNREAD_COUNT_CAP};
use crate::domain::search::{self, SearchResult, Snippet};
use crate::graphql::scalars::DateTime;
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};

mod chat;
mod member;
mod message;
mod session;
mod statistics;
mod user;

pub use statistics::StatisticsNode;

/// What one statistics field adds to an operation's complexity: it aggregates every message
/// of its scope and range, so a document cannot ask for many at once (a page of 100 chats'
/// statistics is over the default limit).
pub const STATISTICS_COST: usize = 100;

/// The `since`/`until` arguments of a statistics field.
pub(crate) fn statistics_range(since: Option<DateTime>, until: Option<DateTime>) -> TimeRange {
    TimeRange {
        since: since.map(|t| t.0),
        until: until.map(|t| t.0),
    }
}

/// An unread count as loaded: exact up to one above the cap, which tells "exactly the
/// cap" from "more".
#[derive(Clone, Copy)]
pub(crate) struct UnreadCount(i64);

/// Whether the calling user blocks `user` (false for the admin key).
pub(crate) async fn blocked_by_caller(ctx: &Context<'_>, user: UserId) -> Result<bool> {
    let Ok(caller) = crate::graphql::caller(ctx).user_id() else {
        return Ok(false);
    };
    let blocked = loaders(ctx)?.load_one(BlocksKey(caller)).await?;
    Ok(blocked.is_some_and(|list| list.contains(&user)))
}

impl UnreadCount {
    /// `user_id`'s unread count in a chat.
    pub(crate) async fn load(ctx: &Context<'_>, chat_id: ChatId, user_id: UserId) -> Result<Self> {
        let count = loaders(ctx)?
            .load_one(UnreadKey {
                chat_id,
                user_id,
                of: Unread::Messages,
            })
            .await?;
        Ok(Self(count.unwrap_or(0)))
    }

    /// `user_id`'s unread mentions in a chat.
    pub(crate) async fn load_mentions(
        ctx: &Context<'_>,
        chat_id: ChatId,
        user_id: UserId,
    ) -> Result<Self> {
        let count = loaders(ctx)?
            .load_one(UnreadKey {
                chat_id,
                user_id,
                of: Unread::Mentions,
            })
            .await?;
        Ok(Self(count.unwrap_or(0)))
    }

    /// What a client is shown: exact up to the cap, the cap above it.
    pub(crate) fn shown(self) -> i32 {
        i32::try_from(self.0.min(UNREAD_COUNT_CAP)).unwrap_or(i32::MAX)
    }

    /// True when there are more unread messages than [`UnreadCount::shown`] says.
    pub(crate) fn capped(self) -> bool {
        self.0 > UNREAD_COUNT_CAP
    }
}

connection_type!(UserConnection, UserEdge, UserNode, "users", "user");
connection_type!(ChatConnection, ChatEdge, ChatNode, "chats", "chat");
connection_type!(
    MemberConnection,
    MemberEdge,
    MemberNode,
    "members",
    "member"
);
connection_type!(
    SessionConnection,
    SessionEdge,
    SessionNode,
    "sessions",
    "session"
);
connection_type!(
    MessageConnection,
    MessageEdge,
    MessageNode,
    "messages",
    "message",
    {
        /// How the message matched, in `searchMessages`; null in every other list.
        search_match: SearchMatch
    }
);

/// How a message matched a search.
#[derive(Clone, SimpleObject)]
pub struct SearchMatch {
    /// How well it matched: higher is better. Ranks compare within one search only.
    pub rank: f64,
    /// The part of the content around the matched words, as plain text.
    pub snippet: String,
    /// Where the matched words are in `snippet`, in UTF-16 code units (the indices of a
    /// JavaScript, Java or Kotlin string), in order.
    pub highlights: Vec<TextRange>,
    /// `snippet` with HTML special characters escaped and each match in
    /// `<mark>…</mark>`: safe to render as HTML.
    pub snippet_html: String,
}

/// A page of search results as a message connection whose edges say how each matched.
pub fn search_connection(page: Page<SearchResult>) -> MessageConnection {
    let edges: Vec<MessageEdge> = page
        .items
        .into_iter()
        .map(|result| MessageEdge {
            cursor: search::result_cursor(&result),
            search_match: Some(SearchMatch::of(&result.snippet, result.rank)),
            node: MessageNode::loaded(result.message),
        })
        .collect();
    let page_info = page_info(
        page.has_previous_page,
        page.has_next_page,
        edges.first().map(|e| &e.cursor),
        edges.last().map(|e| &e.cursor),
    );
    MessageConnection { edges, page_info }
}

impl SearchMatch {
    fn of(snippet: &Snippet, rank: f64) -> Self {
        let utf16 = |byte: usize| {
            let units = snippet
                .text
                .get(..byte)
                .map_or(0, |s| s.encode_utf16().count());
            i32::try_from(units).unwrap_or(i32::MAX)
        };
        let mut html = String::with_capacity(snippet.text.len() + 16);
        let mut at = 0;
        for range in &snippet.highlights {
            escape_html(
                &mut html,
                snippet.text.get(at..range.start).unwrap_or_default(),
            );
            html.push_str("<mark>");
            escape_html(
                &mut html,
                snippet.text.get(range.clone()).unwrap_or_default(),
            );
            html.push_str("</mark>");
            at = range.end;
        }
        escape_html(&mut html, snippet.text.get(at..).unwrap_or_default());
        Self {
            rank,
            snippet: snippet.text.clone(),
            highlights: snippet
                .highlights
                .iter()
                .map(|r| TextRange {
                    start: utf16(r.start),
                    end: utf16(r.end),
                })
                .collect(),
            snippet_html: html,
        }
    }
}

/// Appends `text` with the characters HTML gives a meaning escaped.
fn escape_html(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// A range of a string: from `start` (inclusive) to `end` (exclusive).
#[derive(Clone, SimpleObject)]
pub struct TextRange {
    /// Index of the first code unit.
    pub start: i32,
    /// Index after the last code unit.
    pub end: i32,
}

/// Anything with a global id (Relay object identification).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "The globally unique, opaque id."))]
pub enum Node {
    /// A user.
    User(UserNode),
    /// A chat.
    Chat(ChatNode),
    /// A message.
    Message(MessageNode),
    /// A membership.
    Member(MemberNode),
    /// A session of a chat.
    Session(SessionNode),
}

/// Defines an entity backed by a row that loads lazily: the row, or only the id until a
/// field needs more, so a nested `{ id }` (a message's `sender`, `chat` or `parent`)
/// costs no query.
macro_rules! lazy_node {
    ($(#[$doc:meta])* $node:ident($id:ty, $row:ty), $key:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $node(LazyRow<$id, $row>);

        impl $node {
            /// The entity whose row is at hand.
            pub fn loaded(row: $row) -> Self {
                Self(LazyRow::loaded(row.id, row))
            }

            /// The entity known by id only (a foreign key, so the row exists); its row
            /// loads through the request's loaders when a field other than `id` is asked
            /// for.
            pub fn by_id(id: $id) -> Self {
                Self(LazyRow::by_id(id))
            }

            async fn row(&self, ctx: &Context<'_>) -> Result<&$row> {
                self.0.get(ctx, $key(self.0.id), $what).await
            }
        }
    };
}

lazy_node!(
    /// A person or bot that takes part in chats.
    UserNode(UserId, db::users::User),
    UserKey,
    "user"
);
lazy_node!(
    /// A conversation: direct, group or assistant.
    ChatNode(ChatId, db::chats::Chat),
    ChatKey,
    "chat"
);
lazy_node!(
    /// A message in a chat (a parent's foreign key is cleared when the parent is deleted,
    /// so an id means a message of the same chat).
    MessageNode(MessageId, db::messages::Message),
    MessageKey,
    "message"
);

/// A user's membership in a chat.
#[derive(Clone)]
pub struct MemberNode(pub db::members::Member);

/// A session of a chat.
#[derive(Clone)]
pub struct SessionNode(pub db::sessions::Session);

/// The arguments of `Chat.messages` and `Query.messages`.
pub struct MessagePageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
    pub since: Option<DateTime>,
    pub until: Option<DateTime>,
}

/// Resolves a page of a chat's messages for `Chat.messages` and `Query.messages`.
pub async fn message_page(
    ctx: &Context<'_>,
    chat: ChatId,
    args: MessagePageArgs,
) -> Result<MessageConnection> {
    let app = app(ctx)?;
    let max = app.config().max_page_size;
    let page = PageRequest::from_args(args.first, args.after, args.last, args.before, max)?;
    let range = TimeRange {
        since: args.since.map(|t| t.0),
        until: args.until.map(|t| t.0),
    };
    let caller = caller_id(ctx)?;
    let rows = with_checked_memberships(ctx, async |checked| {
        messages::list(app, caller, chat, range, &page, checked).await
    })
    .await?;
    Ok(connection(
        rows,
        messages::message_cursor,
        MessageNode::loaded,
    ))
}
