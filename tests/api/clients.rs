//! What frontend clients' caches and links rely on: automatic persisted queries, batching,
//! and mutations that answer with what a normalized cache needs (ids on every object,
//! memberships included) — checked by Apollo Client itself and by hand.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn apollo_client_keeps_its_cache_fresh_and_speaks_persisted_queries_and_batches() -> TestResult
{
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let args = [server.url(), alice.token.clone(), bob.token.clone(), chat];
    let out = node_script("@apollo/client", "apollo.mjs", &args).await?;
    for step in [
        "normalized cache: ok",
        "persisted queries: ok",
        "batching: ok",
    ] {
        assert!(out.contains(step), "{out}");
    }
    Ok(())
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post(server: &TestServer, token: &str, body: Value) -> TestResult<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(server.url())
        .header("accept", "application/graphql-response+json")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

async fn get(
    server: &TestServer,
    token: &str,
    params: &[(&str, String)],
) -> TestResult<(u16, Value)> {
    let response = reqwest::Client::new()
        .get(server.url())
        .header("accept", "application/graphql-response+json")
        .bearer_auth(token)
        .query(params)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

fn code(body: &Value) -> Option<&str> {
    body.pointer("/errors/0/extensions/code")
        .and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persisted_query_runs_by_its_hash_once_sent_with_it() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let query = "{ me { username } }";
    let hash = sha256_hex(query);
    // Unknown hash: the code (and message) Apollo's link looks for, and no data.
    let (status, body) = post(
        &server,
        &alice.token,
        json!({ "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), Some("PERSISTED_QUERY_NOT_FOUND"), "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(body.get("data").is_none(), "{body}");
    // A query that does not hash to the hash is refused and not kept.
    let (status, body) = post(
        &server,
        &alice.token,
        json!({ "query": "{ __typename }", "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    // Sent with its hash, the query runs and is kept...
    let (status, body) = post(
        &server,
        &alice.token,
        json!({ "query": query, "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"me": {"username": "alice"}}))
    );
    // ...so the hash alone runs it, over POST and GET, for anyone (as themselves).
    let bob = server.user("bob").await?;
    let (status, body) = post(
        &server,
        &bob.token,
        json!({ "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"me": {"username": "bob"}}))
    );
    let extensions = persisted(&hash).to_string();
    let (status, body) = get(&server, &alice.token, &[("extensions", extensions)]).await?;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"me": {"username": "alice"}}))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persisted_mutation_still_needs_post_and_bad_extensions_are_refused() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let mutation = "mutation { markMessagesRead(messageIds: []) }";
    let hash = sha256_hex(mutation);
    let (status, body) = post(
        &server,
        &alice.token,
        json!({ "query": mutation, "extensions": persisted(&hash) }),
    )
    .await?;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"markMessagesRead": 0})),
        "{body}"
    );
    let (status, _) = get(
        &server,
        &alice.token,
        &[("extensions", persisted(&hash).to_string())],
    )
    .await?;
    assert_eq!(
        status, 405,
        "a mutation named by its hash must not run over GET"
    );
    for bad in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } }),
        json!({ "persistedQuery": { "version": 1, "sha256Hash": "abc" } }),
        json!({ "persistedQuery": { "version": 1 } }),
    ] {
        let (status, body) = post(&server, &alice.token, json!({ "extensions": bad })).await?;
        assert_eq!(
            (status, code(&body)),
            (400, Some("BAD_USER_INPUT")),
            "{body}"
        );
    }
    Ok(())
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn memberships_have_ids_that_node_resolves_for_members_only() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, eve) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("eve").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    send(&server, &alice, &chat, "hi").await?;
    let read = server
        .client(&bob)
        .ok(
            "mutation($c: ID!) { markRead(chatId: $c) { id unreadCount chat { id unreadCount myMembership { id } } } }",
            json!({ "c": chat }),
        )
        .await?;
    let member = str_at(&read, "/markRead/id")?;
    assert_eq!(read["markRead"]["chat"]["unreadCount"], 0);
    assert_eq!(
        read["markRead"]["chat"]["myMembership"]["id"],
        member.as_str()
    );
    // The same membership has the same id wherever it appears, and another's differs.
    let listed = server
        .client(&alice)
        .ok(
            "query($c: ID!) { chat(id: $c) { members { nodes { id user { username } } } } }",
            json!({ "c": chat }),
        )
        .await?;
    let nodes = listed["chat"]["members"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bobs = nodes.iter().find(|n| n["user"]["username"] == "bob");
    assert_eq!(bobs.map(|n| &n["id"]), Some(&json!(member)));
    assert!(nodes.iter().filter(|n| n["id"] == json!(member)).count() == 1);
    let node = "query($id: ID!) { node(id: $id) { id ... on Member { user { username } role } } }";
    let found = server
        .client(&alice)
        .ok(node, json!({ "id": member }))
        .await?;
    assert_eq!(found["node"]["user"]["username"], "bob");
    assert_eq!(found["node"]["id"], member.as_str());
    // An outsider gets null, as for an id that names nothing.
    assert_absent(&server.client(&eve), node, json!({ "id": member })).await?;
    Ok(())
}
