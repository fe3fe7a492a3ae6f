//! Chats and membership: creating chats, who sees them, direct chats (also under
//! concurrency), settings, deletion and clearing, the chat list's order, filters and pages,
//! members and roles, per-member pinning and muting.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

mod conversations;
mod lifecycle;
mod list;
mod members;

const CREATE_CHAT: &str = "mutation($input: CreateChatInput!) {
  createChat(input: $input) {
    id kind name description category avatarUrl metadata memberCount
    createdBy { id }
    myMembership { role }
  }
}";

const CHAT: &str = "query($c: ID!) { chat(id: $c) { id kind name memberCount } }";

const OPEN_DIRECT: &str =
    "mutation($u: ID!) { openDirectChat(userId: $u) { id kind memberCount } }";

const UPDATE_CHAT: &str = "mutation($c: ID!, $input: UpdateChatInput!) {
  updateChat(id: $c, input: $input) { id name description category avatarUrl metadata }
}";

const DELETE_CHAT: &str = "mutation($c: ID!) { deleteChat(id: $c) }";

const CLEAR_CHAT: &str = "mutation($c: ID!) { clearChat(id: $c) }";

const CHATS: &str = "query($first: Int, $after: String, $filter: ChatFilter) {
  chats(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id name kind pinned lastActivityAt unreadCount } }
    pageInfo { hasNextPage endCursor }
  }
}";

const MEMBERS: &str = "query($c: ID!, $first: Int, $after: String) {
  chat(id: $c) {
    members(first: $first, after: $after) {
      edges { cursor node { role user { id username } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

const ADD_MEMBERS: &str = "mutation($c: ID!, $u: [ID!]!, $r: MemberRole) {
  addMembers(chatId: $c, userIds: $u, role: $r) { role user { id username } }
}";

const REMOVE_MEMBER: &str = "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }";

const LEAVE: &str = "mutation($c: ID!) { leaveChat(chatId: $c) }";

const SET_ROLE: &str = "mutation($c: ID!, $u: ID!, $r: MemberRole!) {
  setMemberRole(chatId: $c, userId: $u, role: $r) { role user { username } }
}";

const MESSAGES: &str = "query($c: ID!) { messages(chatId: $c) { nodes { id content } } }";

const MESSAGE: &str = "query($m: ID!) { message(id: $m) { id content } }";

/// The chat ids of a `chats` page, in order.
fn chat_ids(data: &Value) -> Vec<String> {
    data["chats"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The caller's whole chat list (one page of up to 100), ids in order.
async fn my_chats(client: &Client, filter: Value) -> TestResult<Vec<String>> {
    let data = client
        .ok(CHATS, json!({ "first": 100, "filter": filter }))
        .await?;
    Ok(chat_ids(&data))
}

/// `(username, role)` of every member of a chat, in list order, read as `viewer`.
async fn roles(client: &Client, chat: &str) -> TestResult<Vec<(String, String)>> {
    let data = client
        .ok(MEMBERS, json!({ "c": chat, "first": 100 }))
        .await?;
    Ok(data["chat"]["members"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    (
                        e["node"]["user"]["username"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        e["node"]["role"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Owned `(username, role)` pairs for comparisons.
fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(u, r)| ((*u).to_owned(), (*r).to_owned()))
        .collect()
}

/// The member count of a chat as `client` sees it.
async fn member_count(client: &Client, chat: &str) -> TestResult<i64> {
    int_at(
        &client.ok(CHAT, json!({ "c": chat })).await?,
        "/chat/memberCount",
    )
}

/// A group chat named `name` owned by `owner`; returns its id.
async fn named_group(
    server: &TestServer,
    owner: &TestUser,
    name: &str,
    extra: Value,
) -> TestResult<String> {
    let mut input = json!({ "kind": "GROUP", "name": name });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let data = server
        .client(owner)
        .ok(CREATE_CHAT, json!({ "input": input }))
        .await?;
    str_at(&data, "/createChat/id")
}

/// The id of a chat that existed once and was deleted: a well-formed id of no chat.
async fn deleted_chat_id(server: &TestServer, owner: &TestUser) -> TestResult<String> {
    let chat = group(server, owner, &[]).await?;
    server
        .client(owner)
        .ok(DELETE_CHAT, json!({ "c": chat }))
        .await?;
    Ok(chat)
}

/// The id of a user that existed once and was deleted.
async fn deleted_user_id(server: &TestServer, username: &str) -> TestResult<String> {
    let gone = server.user(username).await?;
    server
        .admin()
        .ok(
            "mutation($id: ID!) { deleteUser(id: $id) }",
            json!({ "id": gone.id }),
        )
        .await?;
    Ok(gone.id)
}
