//! Automatic persisted queries, as Apollo Client's `PersistedQueryLink` speaks them: a
//! request may name its document by the SHA-256 of its text
//! (`extensions.persistedQuery = { version: 1, sha256Hash }`) instead of sending it. An
//! unknown hash is answered `PERSISTED_QUERY_NOT_FOUND`, the client sends the text once with
//! the hash, and from then on the hash alone is enough (over GET too, so a CDN can cache).
//!
//! The lookup happens once per request, before parsing; execution is untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// The only version of the protocol there is.
const VERSION: u64 = 1;

/// Documents longer than this are not kept: the client then sends them in full each time
/// (after a `PERSISTED_QUERY_NOT_FOUND`), which still works.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// How many documents are kept: with [`MAX_DOCUMENT_BYTES`] at most 64 MiB of text, and an
/// app's whole set of operations fits many times over.
const CAPACITY: usize = 1024;

/// Why a request's persisted-query extension cannot be served.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PersistedQueryError {
    /// The hash is not known (yet): the client should send the document with it.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// The document sent does not hash to the given hash.
    #[error("the query's SHA-256 is not the given `sha256Hash`")]
    HashMismatch,
    /// The extension is not `{ version: 1, sha256Hash: "<64 hex digits>" }`.
    #[error("invalid `persistedQuery` extension: {0}")]
    Invalid(&'static str),
}

/// A bounded map from document hash to document text, shared by every request. When full,
/// an arbitrary entry makes room (as in [`super::documents::ParsedDocuments`]): a client
/// hashing endless distinct documents only churns the map.
#[derive(Clone, Default)]
pub struct PersistedQueries {
    by_hash: Arc<Mutex<HashMap<[u8; 32], Arc<str>>>>,
}

impl PersistedQueries {
    /// The document text a request runs: its `query` when it has one (kept under its hash
    /// when the request names one), else the text kept under the hash it names. `None`
    /// when the request has neither a query nor a persisted-query extension.
    pub fn resolve(
        &self,
        query: Option<String>,
        extensions: Option<&serde_json::Value>,
    ) -> Result<Option<String>, PersistedQueryError> {
        let Some(hash) = requested_hash(extensions)? else {
            return Ok(query);
        };
        match query {
            Some(text) => {
                if <[u8; 32]>::from(Sha256::digest(text.as_bytes())) != hash {
                    return Err(PersistedQueryError::HashMismatch);
                }
                if text.len() <= MAX_DOCUMENT_BYTES {
                    self.keep(hash, &text);
                }
                Ok(Some(text))
            }
            None => self
                .by_hash
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&hash)
                .map(|text| Some(text.to_string()))
                .ok_or(PersistedQueryError::NotFound),
        }
    }

    fn keep(&self, hash: [u8; 32], text: &str) {
        let mut by_hash = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        if by_hash.contains_key(&hash) {
            return;
        }
        if by_hash.len() >= CAPACITY
            && let Some(evicted) = by_hash.keys().next().copied()
        {
            by_hash.remove(&evicted);
        }
        by_hash.insert(hash, Arc::from(text));
    }

    /// How many documents are kept (for tests).
    pub fn len(&self) -> usize {
        self.by_hash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no document is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The hash named by `extensions.persistedQuery`, if the request names one.
fn requested_hash(
    extensions: Option<&serde_json::Value>,
) -> Result<Option<[u8; 32]>, PersistedQueryError> {
    let Some(persisted) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    if persisted.get("version").and_then(serde_json::Value::as_u64) != Some(VERSION) {
        return Err(PersistedQueryError::Invalid(
            "only `version: 1` is supported",
        ));
    }
    let hex = persisted
        .get("sha256Hash")
        .and_then(serde_json::Value::as_str)
        .ok_or(PersistedQueryError::Invalid(
            "`sha256Hash` must be a string",
        ))?;
    parse_hex_sha256(hex)
        .map(Some)
        .ok_or(PersistedQueryError::Invalid(
            "`sha256Hash` must be 64 hexadecimal digits",
        ))
}

fn parse_hex_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extension(hash: &str) -> serde_json::Value {
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
    }

    /// SHA-256 of `{ __typename }`, as `printf '{ __typename }' | sha256sum` prints it.
    const TYPENAME_HASH: &str = "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b";

    #[test]
    fn a_hash_is_known_once_its_document_was_sent_with_it() {
        let queries = PersistedQueries::default();
        let ext = extension(TYPENAME_HASH);
        assert_eq!(
            queries.resolve(None, Some(&ext)),
            Err(PersistedQueryError::NotFound)
        );
        let sent = queries.resolve(Some("{ __typename }".into()), Some(&ext));
        assert_eq!(sent, Ok(Some("{ __typename }".to_owned())));
        assert_eq!(
            queries.resolve(None, Some(&ext)),
            Ok(Some("{ __typename }".to_owned()))
        );
        assert_eq!(queries.len(), 1);
    }

    #[test]
    fn a_wrong_or_malformed_hash_is_refused_and_nothing_is_kept() {
        let queries = PersistedQueries::default();
        let wrong = extension(&"0".repeat(64));
        assert_eq!(
            queries.resolve(Some("{ __typename }".into()), Some(&wrong)),
            Err(PersistedQueryError::HashMismatch)
        );
        for bad in ["abc", &"g".repeat(64), &"é".repeat(32)] {
            assert!(matches!(
                queries.resolve(None, Some(&extension(bad))),
                Err(PersistedQueryError::Invalid(_))
            ));
        }
        let v2 =
            serde_json::json!({ "persistedQuery": { "version": 2, "sha256Hash": TYPENAME_HASH } });
        assert!(matches!(
            queries.resolve(None, Some(&v2)),
            Err(PersistedQueryError::Invalid(_))
        ));
        assert!(queries.is_empty());
    }

    #[test]
    fn without_the_extension_the_query_is_used_as_sent() {
        let queries = PersistedQueries::default();
        let other = serde_json::json!({ "tracing": true });
        assert_eq!(
            queries.resolve(Some("{ a }".into()), Some(&other)),
            Ok(Some("{ a }".to_owned()))
        );
        assert_eq!(queries.resolve(None, None), Ok(None));
    }

    #[test]
    fn the_map_stays_bounded() {
        let queries = PersistedQueries::default();
        for n in 0..CAPACITY + 10 {
            let text = format!("{{ q{n}: __typename }}");
            let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            assert!(queries.resolve(Some(text), Some(&extension(&hex))).is_ok());
        }
        assert_eq!(queries.len(), CAPACITY);
    }
}
