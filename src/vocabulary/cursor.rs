//! Opaque keyset cursors and page-size rules for Relay connections.
//!
//! A cursor is base64url of `<kind>:<fields…>`; it names a position in a keyset order, never
//! an offset, so it stays valid while rows are inserted around it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::InvalidInput;

/// Encodes cursor `fields` under `kind`.
pub fn encode(kind: &str, fields: &[i64]) -> String {
    use std::fmt::Write as _;
    // One buffer: a page of 50 encodes 50 cursors, and each part's own String showed up
    // in the allocator's share of the read path.
    let mut text = String::with_capacity(kind.len() + 21 * fields.len());
    text.push_str(kind);
    for field in fields {
        // Writing into a String cannot fail.
        let _ = write!(text, ":{field}");
    }
    URL_SAFE_NO_PAD.encode(text)
}

/// Decodes a cursor of `kind` carrying exactly `arity` fields; anything else is `BAD_USER_INPUT`.
pub fn decode(kind: &str, cursor: &str, arity: usize) -> Result<Vec<i64>, InvalidInput> {
    let invalid = || InvalidInput::Malformed(format!("invalid cursor `{cursor}`"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    if parts.next() != Some(kind) {
        return Err(invalid());
    }
    let fields = parts
        .map(|p| p.parse::<i64>().map_err(|_| invalid()))
        .collect::<Result<Vec<_>, _>>()?;
    if fields.len() != arity {
        return Err(invalid());
    }
    Ok(fields)
}

/// Which way a page is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `first`/`after`: from the start of the order onwards.
    Forward,
    /// `last`/`before`: from the end of the order backwards.
    Backward,
}

/// A validated page request: direction, size and the decoded boundary cursor.
#[derive(Clone, Debug)]
pub struct PageRequest {
    /// Reading direction.
    pub direction: Direction,
    /// Number of items wanted.
    pub limit: usize,
    /// Raw `after` (forward) or `before` (backward) cursor.
    pub cursor: Option<String>,
}

/// Default page size when a client gives neither `first` nor `last`.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// A size argument (`first`, `last`) of a plain list: `default` when absent, else within
/// `0..=max`.
pub fn list_size(
    name: &str,
    n: Option<i32>,
    default: usize,
    max: usize,
) -> Result<usize, InvalidInput> {
    let Some(n) = n else {
        return Ok(default.min(max));
    };
    let n = usize::try_from(n)
        .map_err(|_| InvalidInput::Malformed(format!("`{name}` must not be negative")))?;
    if n > max {
        return Err(InvalidInput::TooLarge(format!(
            "`{name}` may be at most {max}"
        )));
    }
    Ok(n)
}

impl PageRequest {
    /// Validates Relay arguments: sizes within `0..=max`, and `first` and `last` not mixed.
    pub fn from_args(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        max: usize,
    ) -> Result<Self, InvalidInput> {
        let check = |name: &str, n: i32| list_size(name, Some(n), 0, max);
        match (first, last) {
            (Some(_), Some(_)) => Err(InvalidInput::Malformed(
                "pass `first` or `last`, not both".into(),
            )),
            (_, Some(n)) => {
                if after.is_some() {
                    return Err(InvalidInput::Malformed(
                        "`after` goes with `first`, not `last`".into(),
                    ));
                }
                Ok(Self {
                    direction: Direction::Backward,
                    limit: check("last", n)?,
                    cursor: before,
                })
            }
            (first, None) => {
                if before.is_some() && first.is_none() {
                    // `before` alone reads backwards from it, like `last: default`.
                    return Ok(Self {
                        direction: Direction::Backward,
                        limit: DEFAULT_PAGE_SIZE.min(max),
                        cursor: before,
                    });
                }
                if before.is_some() {
                    return Err(InvalidInput::Malformed(
                        "`before` goes with `last`, not `first`".into(),
                    ));
                }
                Ok(Self {
                    direction: Direction::Forward,
                    limit: match first {
                        Some(n) => check("first", n)?,
                        None => DEFAULT_PAGE_SIZE.min(max),
                    },
                    cursor: after,
                })
            }
        }
    }

    /// A forward page of `first` items (for fields with only `first`/`after`).
    pub fn forward(
        first: Option<i32>,
        after: Option<String>,
        max: usize,
    ) -> Result<Self, InvalidInput> {
        Self::from_args(first, after, None, None, max)
    }
}

/// One page of keyset results, in display order, with what lies beyond each end.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items, in the order of the list (never reversed for backward reads).
    pub items: Vec<T>,
    /// More items exist after the last one.
    pub has_next_page: bool,
    /// More items exist before the first one.
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `limit + 1` in reading order: the extra row only
    /// tells whether more exist. Backward reads are flipped back into list order.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest) -> Self {
        let more = rows.len() > request.limit;
        rows.truncate(request.limit);
        let has_cursor = request.cursor.is_some();
        match request.direction {
            Direction::Forward => Page {
                items: rows,
                has_next_page: more,
                has_previous_page: has_cursor,
            },
            Direction::Backward => {
                rows.reverse();
                Page {
                    items: rows,
                    has_next_page: has_cursor,
                    has_previous_page: more,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode("msg", &[7]);
        assert_eq!(decode("msg", &c, 1).ok(), Some(vec![7]));
        assert!(decode("chat", &c, 1).is_err());
        assert!(decode("msg", "%%%", 1).is_err());
        assert!(decode("msg", &encode("msg", &[1, 2]), 1).is_err());
    }

    #[test]
    fn page_size_is_capped() {
        assert!(PageRequest::from_args(Some(101), None, None, None, 100).is_err());
        assert!(PageRequest::from_args(Some(-1), None, None, None, 100).is_err());
        assert!(PageRequest::from_args(Some(1), None, Some(1), None, 100).is_err());
        let page = PageRequest::from_args(None, None, None, None, 100).ok();
        assert_eq!(page.map(|p| p.limit), Some(DEFAULT_PAGE_SIZE));
    }
}
