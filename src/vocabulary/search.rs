//! What a search box's text means, read the way PostgreSQL's `websearch_to_tsquery` reads
//! it, so both backends find the same messages: words must all occur, `"quoted words"`
//! must occur together in that order, `or` between two words accepts either, and a `-word`
//! must not occur. PostgreSQL parses the text itself; SQLite's FTS5 gets a match
//! expression rendered from this parse (`db::search`), never the user's text, so no input
//! is an FTS5 syntax error.

use super::InvalidInput;

/// Longest search text, in characters.
pub const MAX_QUERY_LENGTH: usize = 256;
/// Most words and phrases one search may hold.
pub const MAX_QUERY_TERMS: usize = 32;

/// Words that must occur next to each other, in this order (one word is a phrase too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phrase(pub Vec<String>);

/// A parsed search: every group must match (a group is any one of its phrases), and no
/// excluded phrase may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    text: String,
    required: Vec<Vec<Phrase>>,
    excluded: Vec<Phrase>,
}

/// One piece of the text before `or` joins pieces into groups.
enum Piece {
    Phrase { phrase: Phrase, excluded: bool },
    Or,
}

impl SearchQuery {
    /// Parses a search text; `BAD_USER_INPUT` when it has no word to look for (only
    /// punctuation, only exclusions), `LIMIT_EXCEEDED` when it is too long.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let length = text.chars().count();
        if length > MAX_QUERY_LENGTH {
            return Err(InvalidInput::TooLarge(format!(
                "the search is {length} characters; the limit is {MAX_QUERY_LENGTH}"
            )));
        }
        let pieces = pieces(text);
        let terms = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Phrase { .. }))
            .count();
        if terms > MAX_QUERY_TERMS {
            return Err(InvalidInput::TooLarge(format!(
                "the search has {terms} words and phrases; the limit is {MAX_QUERY_TERMS}"
            )));
        }
        let mut required: Vec<Vec<Phrase>> = Vec::new();
        let mut excluded = Vec::new();
        // An `or` joins the next phrase to the group before it; an `or` with no phrase on
        // one side is an ordinary word's absence, as in websearch_to_tsquery.
        let mut join_next = false;
        for piece in pieces {
            match piece {
                Piece::Or => join_next = !required.is_empty(),
                Piece::Phrase {
                    phrase,
                    excluded: true,
                } => {
                    excluded.push(phrase);
                    join_next = false;
                }
                Piece::Phrase {
                    phrase,
                    excluded: false,
                } => {
                    match required.last_mut() {
                        Some(group) if join_next => group.push(phrase),
                        _ => required.push(vec![phrase]),
                    }
                    join_next = false;
                }
            }
        }
        if required.is_empty() {
            return Err(InvalidInput::Malformed(
                "the search has no word to look for".into(),
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            required,
            excluded,
        })
    }

    /// The text as the user wrote it (what `websearch_to_tsquery` parses).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Groups that must each match: any one phrase of a group.
    pub fn required(&self) -> &[Vec<Phrase>] {
        &self.required
    }

    /// Phrases that must not occur.
    pub fn excluded(&self) -> &[Phrase] {
        &self.excluded
    }
}

/// Splits the text into phrases (quoted or single words, with their `-`) and `or`s.
fn pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(first) = rest.chars().next() else {
            break;
        };
        let (excluded, body) = match rest.strip_prefix('-') {
            Some(after) if first == '-' => (true, after),
            _ => (false, rest),
        };
        if let Some(quoted) = body.strip_prefix('"') {
            // An unclosed quote runs to the end of the text.
            let (inside, after) = quoted.split_once('"').unwrap_or((quoted, ""));
            push_phrase(&mut pieces, words(inside), excluded);
            rest = after;
            continue;
        }
        let end = body
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(body.len());
        let (word, after) = body.split_at(end);
        rest = after;
        if !excluded && word.eq_ignore_ascii_case("or") {
            pieces.push(Piece::Or);
            continue;
        }
        push_phrase(&mut pieces, words(word), excluded);
    }
    pieces
}

fn push_phrase(pieces: &mut Vec<Piece>, words: Vec<String>, excluded: bool) {
    if !words.is_empty() {
        pieces.push(Piece::Phrase {
            phrase: Phrase(words),
            excluded,
        });
    }
}

/// The words of a chunk of text: runs of letters and digits. Punctuation separates words
/// (`e-mail` is `e` then `mail`, a phrase), as both backends' tokenizers split them.
fn words(chunk: &str) -> Vec<String> {
    chunk
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> SearchQuery {
        match SearchQuery::parse(text) {
            Ok(query) => query,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn phrase(words: &[&str]) -> Phrase {
        Phrase(words.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn words_are_all_required() {
        let query = parsed("deploy  friday");
        assert_eq!(
            query.required(),
            &[vec![phrase(&["deploy"])], vec![phrase(&["friday"])]]
        );
        assert!(query.excluded().is_empty());
    }

    #[test]
    fn quotes_or_and_minus() {
        let query = parsed(r#""release notes" draft or final -wip"#);
        assert_eq!(
            query.required(),
            &[
                vec![phrase(&["release", "notes"])],
                vec![phrase(&["draft"]), phrase(&["final"])]
            ]
        );
        assert_eq!(query.excluded(), &[phrase(&["wip"])]);
    }

    #[test]
    fn punctuation_splits_words_and_unclosed_quotes_run_to_the_end() {
        let query = parsed(r#"e-mail "half open"#);
        assert_eq!(
            query.required(),
            &[
                vec![phrase(&["e", "mail"])],
                vec![phrase(&["half", "open"])]
            ]
        );
    }

    #[test]
    fn a_stray_or_is_ignored() {
        let query = parsed("or cats or");
        assert_eq!(query.required(), &[vec![phrase(&["cats"])]]);
    }

    #[test]
    fn nothing_to_look_for_is_refused() {
        for text in ["", "   ", "!!! ???", "-spam", "or"] {
            assert!(
                matches!(SearchQuery::parse(text), Err(InvalidInput::Malformed(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_QUERY_LENGTH + 1);
        assert!(matches!(
            SearchQuery::parse(&long),
            Err(InvalidInput::TooLarge(_))
        ));
        let many = vec!["w"; MAX_QUERY_TERMS + 1].join(" ");
        assert!(matches!(
            SearchQuery::parse(&many),
            Err(InvalidInput::TooLarge(_))
        ));
    }
}
