//! Messages: sending, dedupe, paging both ways, edits, retractions, deletions, replies,
//! read state and unread counts, history, and the cost of a page.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

mod assistant;
mod changes;
mod cost;
mod importing;
mod mentions;
mod paging;
mod pins;
mod reactions;
mod reading;
mod search;
mod sending;
mod statistics;
mod threads;

const PAGE: &str = "query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  messages(chatId: $c, first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id content } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

fn contents(data: &Value) -> Vec<String> {
    data["messages"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["content"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the whole chat page by page in one direction.
async fn read_all(
    client: &Client,
    chat: &str,
    forward: bool,
    size: i64,
) -> TestResult<Vec<String>> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let vars = if forward {
            json!({"c": chat, "first": size, "after": cursor})
        } else {
            json!({"c": chat, "last": size, "before": cursor})
        };
        let data = client.ok(PAGE, vars).await?;
        let mut page = contents(&data);
        let info = &data["messages"]["pageInfo"];
        if forward {
            seen.extend(page);
            if info["hasNextPage"] != json!(true) {
                return Ok(seen);
            }
            cursor = info["endCursor"].as_str().map(str::to_owned);
        } else {
            page.extend(seen);
            seen = page;
            if info["hasPreviousPage"] != json!(true) {
                return Ok(seen);
            }
            cursor = info["startCursor"].as_str().map(str::to_owned);
        }
    }
}
