//! What a request must pass before async-graphql validates and runs it, checked once for
//! both transports: a bounded number of tokens (50,000 duplicate directives would be
//! parsed, then validated into 50,000 errors), no NUL in any string (PostgreSQL text cannot
//! hold one, and SQLite would store it), and a bounded number of mutation fields (each one
//! counts against the rate limit and may write).

use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Request, ServerError};
use async_graphql_value::{ConstValue, Value};

use super::documents::ParsedDocuments;
use crate::config::Config;
use crate::error::{ErrorCode, request_error};

/// The operation a request selects, as far as admission needs it.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    pub ty: OperationType,
    /// Root fields of a mutation (aliases and fragments counted); 0 for other operations.
    pub mutation_fields: usize,
}

/// How deep fragment spreads are followed when counting mutation fields (a cycle is
/// refused by validation later; this only bounds the count's work).
const MAX_SPREAD_DEPTH: usize = 8;

/// Checks `request` (parsing it once, or taking it from `documents`) and returns the
/// operation it selects: `None` when it does not parse or selects no operation (execution
/// then says why). Refusals are errors with their `extensions.code`.
pub fn admit(
    request: &mut Request,
    documents: &ParsedDocuments,
    config: &Config,
) -> Result<Option<Operation>, ServerError> {
    if exceeds_tokens(&request.query, config.max_query_tokens) {
        return Err(request_error(
            format!(
                "the document has more than {} tokens",
                config.max_query_tokens
            ),
            ErrorCode::LimitExceeded,
        ));
    }
    if request.variables.values().any(const_holds_nul) {
        return Err(nul_refusal());
    }
    let name = request.operation_name.clone();
    let Some(document) = documents.parse(request) else {
        return Ok(None);
    };
    if document_holds_nul(document) {
        return Err(nul_refusal());
    }
    let selected = match name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|(_, op)| op),
        None => document.operations.iter().next().map(|(_, op)| op),
    };
    let Some(selected) = selected else {
        return Ok(None);
    };
    let ty = selected.node.ty;
    let mutation_fields = match ty {
        OperationType::Mutation => count_fields(document, &selected.node.selection_set.node, 0),
        OperationType::Query | OperationType::Subscription => 0,
    };
    if mutation_fields > config.max_mutations_per_request {
        return Err(request_error(
            format!(
                "at most {} mutation fields per request",
                config.max_mutations_per_request
            ),
            ErrorCode::LimitExceeded,
        ));
    }
    Ok(Some(Operation {
        ty,
        mutation_fields,
    }))
}

fn nul_refusal() -> ServerError {
    request_error(
        "strings may not contain the NUL character (U+0000)",
        ErrorCode::BadUserInput,
    )
}

/// True when `text` has more than `max` GraphQL tokens. A lexer's count, close enough
/// for a bound: names, numbers, strings and punctuators count one each; whitespace,
/// commas and comments none.
fn exceeds_tokens(text: &str, max: usize) -> bool {
    let bytes = text.as_bytes();
    let (mut at, mut count) = (0, 0usize);
    while at < bytes.len() {
        let rest = &bytes[at..];
        let (length, is_token) = match rest[0] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => (1, false),
            b'#' => {
                let line = rest.iter().position(|b| matches!(b, b'\n' | b'\r'));
                (line.unwrap_or(rest.len()), false)
            }
            b'"' if rest.starts_with(b"\"\"\"") => (block_string_len(rest), true),
            b'"' => (string_len(rest), true),
            b'.' if rest.starts_with(b"...") => (3, true),
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let name = rest
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
                (name.unwrap_or(rest.len()), true)
            }
            b'-' | b'0'..=b'9' => {
                let number = rest[1..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')));
                (1 + number.unwrap_or(rest.len() - 1), true)
            }
            _ => (1, true),
        };
        at += length;
        if is_token {
            count += 1;
            if count > max {
                return true;
            }
        }
    }
    false
}

/// Length of the `"…"` string at the start of `rest` (to the line's end if unclosed).
fn string_len(rest: &[u8]) -> usize {
    let mut at = 1;
    while at < rest.len() {
        match rest[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            b'\n' | b'\r' => return at,
            _ => at += 1,
        }
    }
    rest.len()
}

/// Length of the `"""…"""` block string at the start of `rest` (`\"""` does not close it).
fn block_string_len(rest: &[u8]) -> usize {
    let mut at = 3;
    while at < rest.len() {
        if rest[at..].starts_with(b"\\\"\"\"") {
            at += 4;
        } else if rest[at..].starts_with(b"\"\"\"") {
            return at + 3;
        } else {
            at += 1;
        }
    }
    rest.len()
}

fn const_holds_nul(value: &ConstValue) -> bool {
    match value {
        ConstValue::String(text) => text.contains('\0'),
        ConstValue::List(items) => items.iter().any(const_holds_nul),
        ConstValue::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || const_holds_nul(value)),
        ConstValue::Null
        | ConstValue::Number(_)
        | ConstValue::Boolean(_)
        | ConstValue::Binary(_)
        | ConstValue::Enum(_) => false,
    }
}

fn value_holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => items.iter().any(value_holds_nul),
        Value::Object(fields) => fields.values().any(value_holds_nul),
        Value::Variable(_)
        | Value::Null
        | Value::Number(_)
        | Value::Boolean(_)
        | Value::Binary(_)
        | Value::Enum(_) => false,
    }
}

fn arguments_hold_nul(arguments: &[(Positioned<Name>, Positioned<Value>)]) -> bool {
    arguments
        .iter()
        .any(|(_, value)| value_holds_nul(&value.node))
}

fn directives_hold_nul(directives: &[Positioned<Directive>]) -> bool {
    directives
        .iter()
        .any(|d| arguments_hold_nul(&d.node.arguments))
}

fn selection_holds_nul(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            arguments_hold_nul(&field.node.arguments)
                || directives_hold_nul(&field.node.directives)
                || selection_holds_nul(&field.node.selection_set.node)
        }
        Selection::FragmentSpread(spread) => directives_hold_nul(&spread.node.directives),
        Selection::InlineFragment(inline) => {
            directives_hold_nul(&inline.node.directives)
                || selection_holds_nul(&inline.node.selection_set.node)
        }
    })
}

/// True when any string literal of the document (arguments, directives, variable
/// defaults) holds a NUL.
fn document_holds_nul(document: &ExecutableDocument) -> bool {
    let operations = document.operations.iter().any(|(_, op)| {
        op.node.variable_definitions.iter().any(|v| {
            v.node
                .default_value
                .as_ref()
                .is_some_and(|d| const_holds_nul(&d.node))
                || directives_hold_nul(&v.node.directives)
        }) || directives_hold_nul(&op.node.directives)
            || selection_holds_nul(&op.node.selection_set.node)
    });
    operations
        || document.fragments.values().any(|fragment| {
            directives_hold_nul(&fragment.node.directives)
                || selection_holds_nul(&fragment.node.selection_set.node)
        })
}

/// The root fields of a selection set, through fragments.
fn count_fields(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> usize {
    if depth > MAX_SPREAD_DEPTH {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => {
                count_fields(document, &inline.node.selection_set.node, depth + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |fragment| {
                    count_fields(document, &fragment.node.selection_set.node, depth + 1)
                }),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_counted_like_a_lexer_would() {
        let count = |text: &str| (0..100).find(|max| !exceeds_tokens(text, *max));
        assert_eq!(count("{ a }"), Some(3));
        assert_eq!(count("{ a, b } # a comment { { {"), Some(4));
        assert_eq!(
            count(r#"query($x: Int = -1.5e+3) { f(s: "a \" { b", t: """x""") }"#),
            Some(20)
        );
        assert_eq!(count("{ ...F } fragment F on Q { a }"), Some(11));
        let repeated = "{ a @b ".repeat(1000);
        assert!(exceeds_tokens(&repeated, 3999) && !exceeds_tokens(&repeated, 4000));
    }
}
