//! Parsed GraphQL documents kept by their text: an app sends the same few operations over
//! and over (with other variables), and parsing one took ~7 % of the server's CPU on a
//! page of messages; a copy of the parsed tree costs a fraction of that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

/// Documents longer than this are parsed every time (a few large ad-hoc queries must not
/// take the space of many everyday ones).
const MAX_DOCUMENT_BYTES: usize = 16 * 1024;

/// How many documents are kept; with [`MAX_DOCUMENT_BYTES`] that bounds the text to
/// 8 MiB, the parsed trees to a small multiple of it.
const CAPACITY: usize = 512;

/// A bounded map from query text to its parsed document, shared by every connection.
/// When full, an arbitrary entry makes room: the documents an app uses all the time are
/// parsed again at most once per eviction, and a client sending endless distinct queries
/// only churns the map, it cannot grow it.
#[derive(Clone, Default)]
pub struct ParsedDocuments {
    by_text: Arc<Mutex<HashMap<String, Arc<ExecutableDocument>>>>,
}

impl ParsedDocuments {
    /// Gives `request` its parsed document, from the map or freshly parsed (then kept).
    /// Returns the document, or `None` when the query does not parse (execution then
    /// reports why).
    pub fn parse<'r>(&self, request: &'r mut Request) -> Option<&'r ExecutableDocument> {
        let known = self
            .by_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&request.query)
            .cloned();
        if let Some(document) = known {
            request.set_parsed_query(ExecutableDocument::clone(&document));
            return request.parsed_query().ok();
        }
        let document = Arc::new(request.parsed_query().ok()?.clone());
        if request.query.len() <= MAX_DOCUMENT_BYTES {
            let mut by_text = self.by_text.lock().unwrap_or_else(PoisonError::into_inner);
            if by_text.len() >= CAPACITY
                && let Some(evicted) = by_text.keys().next().cloned()
            {
                by_text.remove(&evicted);
            }
            by_text.insert(request.query.clone(), document);
        }
        request.parsed_query().ok()
    }

    /// How many documents are kept (for tests).
    pub fn len(&self) -> usize {
        self.by_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no document is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_document_is_the_parsed_one_and_the_map_stays_bounded() {
        let documents = ParsedDocuments::default();
        let query = "query Q($id: ID!) { chat(id: $id) { id name } }";
        let first = documents.parse(&mut Request::new(query)).cloned();
        assert!(first.is_some());
        assert_eq!(documents.len(), 1);
        let mut again = Request::new(query);
        let second = documents.parse(&mut again).cloned();
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
        assert!(documents.parse(&mut Request::new("{ nope")).is_none());
        for n in 0..CAPACITY + 10 {
            documents.parse(&mut Request::new(format!("{{ q{n}: __typename }}")));
        }
        assert_eq!(documents.len(), CAPACITY);
    }
}
