//! Full-text search of messages. PostgreSQL matches a generated `tsvector` column through
//! its GIN index; SQLite matches the FTS5 table `messages_search` that triggers keep in
//! step (see the search migrations). The two speak different SQL, so each backend has its
//! statement here; both return the same thing: matching messages, best first, each with
//! its rank and a snippet whose matched words sit between [`MARK_START`] and [`MARK_END`].
//!
//! Ranking every match of a common word in ten million messages would read them all, so
//! a search ranks its newest [`RANK_WINDOW`] matches: both backends reach those through
//! the id order (newest first) and stop there.

use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Double, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::messages::{Message, TimeRange};
use super::schema::members;
use super::{DbConn, DbPool, DbResult, SqliteConn};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};
use crate::vocabulary::search::{Phrase, SearchQuery};

/// How many of the newest matches a search ranks.
pub const RANK_WINDOW: i64 = 1_000;
/// Marks where a matched word starts in a snippet (a private-use character, which message
/// text practically never holds).
pub const MARK_START: char = '\u{E000}';
/// Marks where a matched word ends in a snippet.
pub const MARK_END: char = '\u{E001}';
/// Words of context a snippet shows around the matches (the domain cuts SQLite's).
pub const SNIPPET_WORDS: usize = 24;
/// Above this many chats, SQLite filters a user's chats in the join instead of in the
/// FTS5 expression (one `chat_id` term per chat).
const MAX_CHAT_TERMS: i64 = 500;

/// The messages of which chats a search looks through.
#[derive(Clone, Copy, Debug)]
pub enum SearchScope {
    /// One chat.
    Chat(ChatId),
    /// Every chat this user is a member of.
    ChatsOf(UserId),
}

/// What a search keeps besides the words: where, whose, and when.
#[derive(Clone, Copy, Debug)]
pub struct SearchFilter {
    pub scope: SearchScope,
    pub sender: Option<UserId>,
    pub range: TimeRange,
}

/// A place in a search's order (rank descending, then id descending); a page starts
/// strictly after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchPosition {
    pub rank: f64,
    pub id: MessageId,
}

/// A matching message with its rank (higher is better; comparable within one search
/// only) and a snippet of its content with the matches marked.
#[derive(Debug, QueryableByName)]
pub struct SearchHit {
    #[diesel(embed)]
    pub message: Message,
    #[diesel(sql_type = Double)]
    pub rank: f64,
    #[diesel(sql_type = Text)]
    pub snippet: String,
}

impl SearchHit {
    /// This hit's place in the order.
    pub fn position(&self) -> SearchPosition {
        SearchPosition {
            rank: self.rank,
            id: self.message.id,
        }
    }
}

/// The columns of [`Message`], from the `messages` table aliased `m`.
const MESSAGE_COLUMNS: &str = "m.id, m.chat_id, m.sender_id, m.role, m.kind, m.content, \
     m.data, m.parent_id, m.client_id, m.stream_state, m.created_at, m.edited_at, \
     m.retracted_at, m.trace_id, m.session_id";

/// Up to `limit` messages matching `query` under `filter`, after `after`, best first.
/// `text_search_config` is PostgreSQL's configuration for parsing the query (the one the
/// column was built with); SQLite's tokenizer is fixed in its table.
pub async fn search(
    conn: &mut DbConn,
    text_search_config: &str,
    query: &SearchQuery,
    filter: &SearchFilter,
    after: Option<SearchPosition>,
    limit: usize,
) -> DbResult<Vec<SearchHit>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match conn {
        DbConn::Pg(c) => search_pg(c, text_search_config, query, filter, after, limit).await,
        DbConn::Sqlite(c) => search_sqlite(c, query, filter, after, limit).await,
    }
}

/// Numbered bind placeholders (`$n` on PostgreSQL, `?n` on SQLite), handed out in the
/// order the values are bound.
struct Placeholders {
    prefix: char,
    next: usize,
}

impl Placeholders {
    fn new(prefix: char) -> Self {
        Self { prefix, next: 0 }
    }

    fn take(&mut self) -> String {
        self.next += 1;
        format!("{}{}", self.prefix, self.next)
    }
}

/// The condition on `m` that keeps the chats of the user bound at `param`.
fn in_chats_of(param: &str) -> String {
    format!("m.chat_id IN (SELECT chat_id FROM members WHERE user_id = {param})")
}

/// The parts both statements end with, with their placeholders: the `AND …` conditions of
/// the sender and time filters on `m`, the `WHERE` of the page boundary on the ranked
/// candidates (`rank`, `id`), and the page size.
struct Tail {
    conditions: String,
    boundary: String,
    limit: String,
}

impl Tail {
    fn new(
        filter: &SearchFilter,
        after: Option<SearchPosition>,
        placeholders: &mut Placeholders,
    ) -> Self {
        let mut conditions = String::new();
        if filter.sender.is_some() {
            conditions.push_str(&format!(" AND m.sender_id = {}", placeholders.take()));
        }
        if filter.range.since.is_some() {
            conditions.push_str(&format!(" AND m.created_at >= {}", placeholders.take()));
        }
        if filter.range.until.is_some() {
            conditions.push_str(&format!(" AND m.created_at < {}", placeholders.take()));
        }
        let boundary = match after {
            Some(_) => format!(
                "WHERE (rank, id) < ({}, {})",
                placeholders.take(),
                placeholders.take()
            ),
            None => String::new(),
        };
        Self {
            conditions,
            boundary,
            limit: placeholders.take(),
        }
    }
}

/// Binds the values of a [`Tail`], in its order.
macro_rules! bind_tail {
    ($query:expr, $filter:expr, $after:expr, $limit:expr) => {{
        let mut query = $query;
        if let Some(sender) = $filter.sender {
            query = query.bind::<BigInt, _>(sender.0);
        }
        if let Some(since) = $filter.range.since {
            query = query.bind::<Timestamp, _>(since);
        }
        if let Some(until) = $filter.range.until {
            query = query.bind::<Timestamp, _>(until);
        }
        if let Some(position) = $after {
            query = query
                .bind::<Double, _>(position.rank)
                .bind::<BigInt, _>(position.id.0);
        }
        query.bind::<BigInt, _>($limit)
    }};
}

async fn search_pg(
    c: &mut AsyncPgConnection,
    text_search_config: &str,
    query: &SearchQuery,
    filter: &SearchFilter,
    after: Option<SearchPosition>,
    limit: i64,
) -> DbResult<Vec<SearchHit>> {
    // $1 the configuration, $2 the text, $3 the chat or user; the function call is
    // written out where it is used (not in a CTE), so the planner sees a constant query
    // and can estimate how many rows a word matches. A common word walks the newest
    // messages and stops at the window; a rare one takes the GIN index's bitmap of every
    // match and fetches each from the heap to sort by id: EXPLAIN on 10M, a word in 1 of
    // 1,000 messages visits 10,000 heap pages (58 ms when cached, 130 ms from the OS cache),
    // the cost of a user-wide search. GIN cannot hand out matches newest first.
    let mut placeholders = Placeholders::new('$');
    let (config, text, scope_param) = (
        placeholders.take(),
        placeholders.take(),
        placeholders.take(),
    );
    let tsquery = format!("websearch_to_tsquery({config}::regconfig, {text})");
    let scope = match filter.scope {
        SearchScope::Chat(_) => format!("m.chat_id = {scope_param}"),
        SearchScope::ChatsOf(_) => in_chats_of(&scope_param),
    };
    let Tail {
        conditions,
        boundary,
        limit: limit_param,
    } = Tail::new(filter, after, &mut placeholders);
    let sql = format!(
        "WITH candidates AS (\
             SELECT m.id, m.search_vector FROM messages m \
             WHERE m.search_vector @@ {tsquery} AND m.retracted_at IS NULL AND {scope}{conditions} \
             ORDER BY m.id DESC LIMIT {RANK_WINDOW}), \
         ranked AS (\
             SELECT id, ts_rank_cd(search_vector, {tsquery})::float8 AS rank FROM candidates), \
         page AS (\
             SELECT id, rank FROM ranked {boundary} ORDER BY rank DESC, id DESC LIMIT {limit_param}) \
         SELECT {MESSAGE_COLUMNS}, page.rank, \
             ts_headline({config}::regconfig, m.content, {tsquery}, \
             'StartSel=\"{MARK_START}\", StopSel=\"{MARK_END}\", MaxWords={SNIPPET_WORDS}, \
              MinWords=8, ShortWord=2') AS snippet \
         FROM page JOIN messages m ON m.id = page.id \
         ORDER BY page.rank DESC, page.id DESC"
    );
    let scope_id = match filter.scope {
        SearchScope::Chat(chat) => chat.0,
        SearchScope::ChatsOf(user) => user.0,
    };
    let statement = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<Text, _>(text_search_config.to_owned())
        .bind::<Text, _>(query.text().to_owned())
        .bind::<BigInt, _>(scope_id);
    Ok(bind_tail!(statement, filter, after, limit).load(c).await?)
}

async fn search_sqlite(
    c: &mut SqliteConn,
    query: &SearchQuery,
    filter: &SearchFilter,
    after: Option<SearchPosition>,
    limit: i64,
) -> DbResult<Vec<SearchHit>> {
    use diesel::{ExpressionMethods, QueryDsl};

    let mut placeholders = Placeholders::new('?');
    let expression_param = placeholders.take();
    // A user's chats go into the match expression as `chat_id` terms (see the migration),
    // unless there are so many that the join filters them better. Measured on 10M with a
    // user in all 100 chats, the terms beat filtering the newest matches in the join
    // (33 ms of CPU for a rare word, against 40 ms for the join after a probe of the newest
    // 5,000 matches chose it): FTS5 skips through the chats' postings.
    let (chats, member_param) = match filter.scope {
        SearchScope::Chat(chat) => (Some(vec![chat]), None),
        SearchScope::ChatsOf(user) => {
            let chats: Vec<ChatId> = members::table
                .filter(members::user_id.eq(user))
                .select(members::chat_id)
                .limit(MAX_CHAT_TERMS + 1)
                .load(c)
                .await?;
            if chats.is_empty() {
                return Ok(Vec::new());
            }
            if chats.len() > MAX_CHAT_TERMS as usize {
                (None, Some(placeholders.take()))
            } else {
                (Some(chats), None)
            }
        }
    };
    let expression = fts5_expression(query, chats.as_deref());
    let member_condition = member_param
        .as_ref()
        .map(|p| format!(" AND {}", in_chats_of(p)))
        .unwrap_or_default();
    let Tail {
        conditions,
        boundary,
        limit: limit_param,
    } = Tail::new(filter, after, &mut placeholders);
    // The rank is how many times the message matches (the marks highlight() sets), as
    // PostgreSQL's ts_rank_cd weighs how often and how close the words occur, without how
    // rare they are. Not bm25: its IDF reads every posting of every phrase once per
    // search, all ten million for a common word or a user's chat_id terms. The snippet is
    // cut from the same highlighted text (`domain::search`): snippet() would need the
    // page's rows matched again by rowid, and each such lookup walks the words' postings
    // anew (23 ms per row for a common word on 1M rows). With both, a common word across
    // 10M completed no search in 20 s.
    let sql = format!(
        "WITH candidates AS (\
             SELECT messages_search.rowid AS id, \
                 highlight(messages_search, 0, '{MARK_START}', '{MARK_END}') AS marked \
             FROM messages_search JOIN messages m ON m.id = messages_search.rowid \
             WHERE messages_search MATCH {expression_param} AND m.retracted_at IS NULL\
             {member_condition}{conditions} \
             ORDER BY messages_search.rowid DESC LIMIT {RANK_WINDOW}), \
         ranked AS (\
             SELECT id, marked, \
                 CAST(length(marked) - length(replace(marked, '{MARK_START}', '')) AS REAL) AS rank \
             FROM candidates), \
         page AS (\
             SELECT id, rank, marked FROM ranked {boundary} ORDER BY rank DESC, id DESC LIMIT {limit_param}) \
         SELECT {MESSAGE_COLUMNS}, page.rank, page.marked AS snippet \
         FROM page JOIN messages m ON m.id = page.id \
         ORDER BY page.rank DESC, page.id DESC"
    );
    let mut statement = diesel::sql_query(sql)
        .into_boxed::<Sqlite>()
        .bind::<Text, _>(expression);
    if let (Some(_), SearchScope::ChatsOf(user)) = (&member_param, filter.scope) {
        statement = statement.bind::<BigInt, _>(user.0);
    }
    Ok(bind_tail!(statement, filter, after, limit).load(c).await?)
}

/// The FTS5 match expression of a search, limited to `chats` when given. Words hold only
/// letters and digits (see `vocabulary::search`), so quoting them needs no escaping.
fn fts5_expression(query: &SearchQuery, chats: Option<&[ChatId]>) -> String {
    fn phrase(p: &Phrase) -> String {
        format!("content : \"{}\"", p.0.join(" "))
    }
    fn any_of(items: Vec<String>) -> String {
        format!("({})", items.join(" OR "))
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(chats) = chats {
        parts.push(any_of(
            chats
                .iter()
                .map(|chat| format!("chat_id : \"{}\"", chat.0))
                .collect(),
        ));
    }
    for group in query.required() {
        parts.push(any_of(group.iter().map(phrase).collect()));
    }
    let mut expression = format!("({})", parts.join(" AND "));
    for excluded in query.excluded() {
        expression = format!("({expression} NOT {})", phrase(excluded));
    }
    expression
}

#[derive(QueryableByName)]
struct ConfigName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Makes PostgreSQL's search column use the text search configuration `name`: when the
/// column was built with another one, it is rebuilt (every message parsed again, which
/// takes a while on a big table) in one transaction, so instances starting together
/// rebuild it once. Returns the configuration replaced, if any. An unknown name is an
/// error. Nothing to do on SQLite, whose tokenizer is fixed in its table.
pub async fn use_text_search_config(pool: &DbPool, name: &str) -> DbResult<Option<String>> {
    if !pool.is_postgres() {
        return Ok(None);
    }
    pool.transaction(async |conn| {
        let DbConn::Pg(c) = conn else {
            return Ok(None);
        };
        let c: &mut AsyncPgConnection = c;
        let stored: ConfigName =
            diesel::sql_query("SELECT text_search_config AS name FROM search_settings FOR UPDATE")
                .get_result(c)
                .await?;
        // The canonical spelling, and an error for a configuration that does not exist.
        let wanted: ConfigName = diesel::sql_query("SELECT CAST($1::regconfig AS text) AS name")
            .bind::<Text, _>(name)
            .get_result(c)
            .await?;
        if stored.name == wanted.name {
            return Ok(None);
        }
        let literal = format!("'{}'", wanted.name.replace('\'', "''"));
        c.batch_execute(&format!(
            "ALTER TABLE messages DROP COLUMN search_vector; \
             ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (\
                 CASE WHEN retracted_at IS NULL THEN to_tsvector({literal}::regconfig, content) END\
             ) STORED; \
             CREATE INDEX messages_search_idx ON messages USING GIN (search_vector); \
             UPDATE search_settings SET text_search_config = {literal};"
        ))
        .await?;
        Ok(Some(stored.name))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expression(text: &str, chats: Option<&[ChatId]>) -> String {
        match SearchQuery::parse(text) {
            Ok(query) => fts5_expression(&query, chats),
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    #[test]
    fn fts5_expressions() {
        assert_eq!(
            expression(r#"deploy "on friday" or monday -wip"#, None),
            r#"(((content : "deploy") AND (content : "on friday" OR content : "monday")) NOT content : "wip")"#
        );
        assert_eq!(
            expression("deploy", Some(&[ChatId(3), ChatId(4)])),
            r#"((chat_id : "3" OR chat_id : "4") AND (content : "deploy"))"#
        );
    }
}
