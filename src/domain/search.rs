//! Full-text search over the messages a user can read: the chats they are a member of
//! (one of them, or all), optionally only one sender's and only a time window, best
//! matches first, with a snippet of each message showing where it matched.

use std::ops::Range;

use crate::app::App;
use crate::db;
use crate::db::messages::{Message, TimeRange};
use crate::db::search::{
    MARK_END, MARK_START, SNIPPET_WORDS, SearchFilter, SearchPosition, SearchScope,
};
use crate::domain::access;
use crate::error::AppResult;
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::ids::{ChatId, MessageId, UserId};
use crate::vocabulary::search::SearchQuery;

/// Cursor kind of search results: a rank and a message id.
const SEARCH_CURSOR: &str = "hit";

/// What to search for and where.
pub struct SearchRequest<'a> {
    pub text: &'a str,
    /// One chat (members only), or every chat of the caller.
    pub chat: Option<ChatId>,
    pub sender: Option<UserId>,
    pub range: TimeRange,
}

/// A message that matched, with how well and where.
pub struct SearchResult {
    pub message: Message,
    /// Higher is better; comparable within one search only.
    pub rank: f64,
    pub snippet: Snippet,
    position: SearchPosition,
}

/// A piece of a message's content around its matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    /// Where the matched words are in `text` (byte ranges, in order, not overlapping).
    pub highlights: Vec<Range<usize>>,
}

/// The cursor of a search result: its place in the order, exactly (the rank's bits).
pub fn result_cursor(result: &SearchResult) -> String {
    let bits = i64::from_ne_bytes(result.position.rank.to_bits().to_ne_bytes());
    cursor::encode(SEARCH_CURSOR, &[bits, result.position.id.0])
}

fn decode_result_cursor(raw: &str) -> AppResult<SearchPosition> {
    let fields = cursor::decode(SEARCH_CURSOR, raw, 2)?;
    let bits = u64::from_ne_bytes(fields[0].to_ne_bytes());
    Ok(SearchPosition {
        rank: f64::from_bits(bits),
        id: MessageId(fields[1]),
    })
}

/// A page of the messages matching `request` that `caller` can read, best first; within
/// one rank, newest first. A search in a chat the caller is not in is refused as a
/// page of its messages would be.
pub async fn search(
    app: &App,
    caller: UserId,
    request: SearchRequest<'_>,
    page: &PageRequest,
) -> AppResult<Page<SearchResult>> {
    let query = SearchQuery::parse(request.text)?;
    let after = page
        .cursor
        .as_deref()
        .map(decode_result_cursor)
        .transpose()?;
    let mut conn = app.db().conn().await?;
    let scope = match request.chat {
        Some(chat) => {
            access::member_of(&mut conn, chat, caller).await?;
            SearchScope::Chat(chat)
        }
        None => SearchScope::ChatsOf(caller),
    };
    let filter = SearchFilter {
        scope,
        sender: request.sender,
        range: request.range,
    };
    let hits = db::search::search(
        &mut conn,
        &app.config().storage.search_config,
        &query,
        &filter,
        after,
        page.limit + 1,
    )
    .await?;
    let results = hits
        .into_iter()
        .map(|hit| {
            let position = hit.position();
            let snippet = Snippet::from_marked(&hit.snippet, &hit.message.content)
                .around_matches(SNIPPET_WORDS);
            SearchResult {
                message: hit.message,
                rank: hit.rank,
                snippet,
                position,
            }
        })
        .collect();
    Ok(Page::from_rows(results, page))
}

impl Snippet {
    /// Reads a snippet whose matches the database marked with [`MARK_START`] and
    /// [`MARK_END`]. Should the content itself hold a marker character, the marks cannot
    /// be told apart from it, and the snippet comes without highlights.
    fn from_marked(marked: &str, content: &str) -> Self {
        if content.contains([MARK_START, MARK_END]) {
            return Self {
                text: marked.replace([MARK_START, MARK_END], ""),
                highlights: Vec::new(),
            };
        }
        let mut text = String::with_capacity(marked.len());
        let mut highlights = Vec::new();
        let mut open: Option<usize> = None;
        for c in marked.chars() {
            match c {
                MARK_START => open = Some(text.len()),
                MARK_END => {
                    if let Some(start) = open.take() {
                        // PostgreSQL marks each word of a phrase on its own; adjacent marks
                        // with only a space between read as one highlight.
                        match highlights.last_mut() {
                            Some(last) if adjoins(&text, last, start) => last.end = text.len(),
                            _ => highlights.push(start..text.len()),
                        }
                    }
                }
                _ => text.push(c),
            }
        }
        Self { text, highlights }
    }
}

impl Snippet {
    /// At most `words` words of the text, from a few before the first match, with `…`
    /// where it was cut. PostgreSQL's ts_headline has cut already; SQLite's highlight()
    /// gives the whole message.
    fn around_matches(self, words: usize) -> Self {
        // Byte offsets where each word starts and ends.
        let mut bounds: Vec<(usize, usize)> = Vec::new();
        let mut start = None;
        for (at, c) in self.text.char_indices() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(at),
                (true, Some(from)) => {
                    bounds.push((from, at));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(from) = start {
            bounds.push((from, self.text.len()));
        }
        if bounds.len() <= words {
            return self;
        }
        let first_match = self.highlights.first().map_or(0, |r| r.start);
        let first_word = bounds
            .iter()
            .position(|&(_, end)| end > first_match)
            .unwrap_or(0);
        let from_word = first_word.saturating_sub(4).min(bounds.len() - words);
        let to_word = from_word + words - 1;
        let (from, to) = (bounds[from_word].0, bounds[to_word].1);
        let prefix = if from_word > 0 { "… " } else { "" };
        let suffix = if to_word + 1 < bounds.len() {
            " …"
        } else {
            ""
        };
        let shift = |at: usize| at - from + prefix.len();
        let highlights = self
            .highlights
            .iter()
            .filter(|r| r.start >= from && r.end <= to)
            .map(|r| shift(r.start)..shift(r.end))
            .collect();
        Self {
            text: format!(
                "{prefix}{}{suffix}",
                self.text.get(from..to).unwrap_or_default()
            ),
            highlights,
        }
    }
}

/// True when only whitespace lies between the highlight `last` and a new one at `start`.
fn adjoins(text: &str, last: &Range<usize>, start: usize) -> bool {
    text.get(last.end..start)
        .is_some_and(|between| between.chars().all(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_become_highlights() {
        let marked = format!(
            "the {MARK_START}big{MARK_END} {MARK_START}deploy{MARK_END} is {MARK_START}done{MARK_END}"
        );
        let snippet = Snippet::from_marked(&marked, "unused");
        assert_eq!(snippet.text, "the big deploy is done");
        let words: Vec<&str> = snippet
            .highlights
            .iter()
            .filter_map(|r| snippet.text.get(r.clone()))
            .collect();
        assert_eq!(words, ["big deploy", "done"]);
    }

    #[test]
    fn long_text_is_cut_around_the_first_match() {
        let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let mut marked = words.clone();
        marked[20] = format!("{MARK_START}hit{MARK_END}");
        let snippet = Snippet::from_marked(&marked.join(" "), "unused").around_matches(5);
        assert_eq!(snippet.text, "… w16 w17 w18 w19 hit …");
        let words: Vec<&str> = snippet
            .highlights
            .iter()
            .filter_map(|r| snippet.text.get(r.clone()))
            .collect();
        assert_eq!(words, ["hit"]);
        let short = Snippet::from_marked("a b", "unused").around_matches(5);
        assert_eq!(short.text, "a b");
    }

    #[test]
    fn content_holding_a_marker_gets_no_highlights() {
        let content = format!("odd {MARK_START} text");
        let marked = format!("odd {MARK_START} {MARK_START}text{MARK_END}");
        let snippet = Snippet::from_marked(&marked, &content);
        assert_eq!(snippet.text, "odd  text");
        assert!(snippet.highlights.is_empty());
    }
}
