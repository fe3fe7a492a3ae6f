//! Users and identity: admin-key management, tokens, `me`, lookups, search and paging.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

mod accounts;
mod blocking;
mod lookup;
mod revocation;
mod tokens;

const CREATE_USER: &str = "mutation($input: CreateUserInput!) {
  createUser(input: $input) { id username displayName avatarUrl isBot metadata }
}";

const UPDATE_USER: &str = "mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { id username displayName avatarUrl metadata }
}";

const DELETE_USER: &str = "mutation($id: ID!) { deleteUser(id: $id) }";

const ISSUE_TOKEN: &str =
    "mutation($id: ID!, $ttl: Int) { issueToken(userId: $id, ttlSeconds: $ttl) }";

const USER_BY_ID: &str = "query($id: ID) { user(id: $id) { id username displayName } }";

const USER_BY_NAME: &str = "query($u: String) { user(username: $u) { id username } }";

const ME: &str = "{ me { id username } }";

const USERS: &str = "query($s: String, $first: Int, $after: String) {
  users(search: $s, first: $first, after: $after) {
    edges { cursor node { id username } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// A client that sends `key` as the admin key.
fn admin_with_key(server: &TestServer, key: &str) -> Client {
    Client::new(server.url(), None, Some(key.to_owned()))
}

/// A client that sends `token` as its bearer token.
fn with_token(server: &TestServer, token: &str) -> Client {
    server.anonymous().with_token(token)
}

/// The usernames of a `users` page, in order.
fn usernames(data: &Value) -> Vec<String> {
    data["users"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["username"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The usernames matching `search`, sorted (the order is id order, which is not the point).
async fn search(client: &Client, term: &str) -> TestResult<Vec<String>> {
    let data = client.ok(USERS, json!({ "s": term, "first": 100 })).await?;
    let mut names = usernames(&data);
    names.sort();
    Ok(names)
}

/// Creates a user with a display name through the admin key; returns its id.
async fn create_named(server: &TestServer, username: &str, display: &str) -> TestResult<String> {
    let data = server
        .admin()
        .ok(
            CREATE_USER,
            json!({ "input": { "username": username, "displayName": display } }),
        )
        .await?;
    str_at(&data, "/createUser/id")
}

/// The id of a user that existed once and was deleted: a well-formed id nobody has.
async fn deleted_user_id(server: &TestServer, username: &str) -> TestResult<String> {
    let gone = server.user(username).await?;
    server
        .admin()
        .ok(DELETE_USER, json!({ "id": gone.id }))
        .await?;
    Ok(gone.id)
}
