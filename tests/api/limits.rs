//! Amplification and resource bounds: query cost counts page sizes (nested pages and
//! aliases are refused before they run), each mutation field counts against the rate limit
//! and a request holds a bounded number of them, stored JSON is bounded, validation errors
//! and responses are capped, documents are bounded in tokens, and no string may hold NUL.

use serde_json::{Value, json};

use crate::common::*;

/// A chat of Alice's with a few messages.
async fn chat_with_messages(server: &TestServer, alice: &TestUser, n: usize) -> TestResult<String> {
    let chat = group(server, alice, &[]).await?;
    for i in 0..n {
        send(
            server,
            alice,
            &chat,
            &format!("message {i} {}", "x".repeat(100)),
        )
        .await?;
    }
    Ok(chat)
}

async fn message_count(client: &Client, chat: &str) -> TestResult<usize> {
    let data = client
        .ok(
            "query($c: ID!) { messages(chatId: $c, last: 100) { nodes { id } } }",
            json!({ "c": chat }),
        )
        .await?;
    Ok(data["messages"]["nodes"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_pages_and_aliases_cost_what_they_may_return() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = chat_with_messages(&server, &alice, 3).await?;
    let client = server.client(&alice);

    // An everyday page is fine: the newest 100 with their senders.
    client
        .ok(
            "query($c: ID!) { chat(id: $c) { messages(last: 100) { nodes { id content createdAt sender { id username displayName } } } } }",
            json!({ "c": chat }),
        )
        .await?;
    // Pages inside pages multiply: refused before anything runs, however few messages
    // there are.
    let nested = "query($c: ID!) { chat(id: $c) { messages(first: 100) { nodes { chat {
        messages(first: 100) { nodes { chat { messages(first: 100) { nodes { id } } } } } } } } } }";
    let answer = client.send(nested, json!({ "c": chat })).await?;
    assert_eq!(answer.codes(), ["LIMIT_EXCEEDED"], "{:?}", answer.body);
    assert_eq!(answer.status, 400, "refused before execution");
    // Aliases add up.
    let aliases: Vec<String> = (0..20)
        .map(|i| format!("a{i}: messages(chatId: $c, first: 100) {{ nodes {{ id content sender {{ username }} }} }}"))
        .collect();
    let query = format!("query($c: ID!) {{ {} }}", aliases.join(" "));
    let answer = client.send(&query, json!({ "c": chat })).await?;
    assert_eq!(answer.codes(), ["LIMIT_EXCEEDED"], "{:?}", answer.body);
    // Without `first`, a page is the default 20: two aliases of that are fine.
    client
        .ok(
            "query($c: ID!) { a: messages(chatId: $c) { nodes { id } } b: messages(chatId: $c) { nodes { id } } }",
            json!({ "c": chat }),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_mutation_field_counts_against_the_rate_limit() -> TestResult {
    let server = TestServer::start_with(&["--mutations-per-minute", "10"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?; // 1 of 10
    let client = server.client(&alice);
    let aliased = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("t{i}: setTyping(chatId: $c, typing: true)"))
            .collect();
        format!("mutation($c: ID!) {{ {} }}", fields.join(" "))
    };
    // Ten more do not fit in the nine left: refused whole, nothing counted.
    let answer = client.send(&aliased(10), json!({ "c": chat })).await?;
    assert_eq!(answer.codes(), ["RATE_LIMITED"], "{:?}", answer.body);
    client.ok(&aliased(9), json!({ "c": chat })).await?;
    assert_eq!(
        client.code(&aliased(1), json!({ "c": chat })).await?,
        "RATE_LIMITED"
    );
    // More than 25 mutation fields in one request are refused whatever the limit, through
    // fragments too.
    let unlimited = TestServer::start_with(&["--mutations-per-minute", "0"]).await?;
    let bob = unlimited.user("bob").await?;
    let own = group(&unlimited, &bob, &[]).await?;
    let client = unlimited.client(&bob);
    let sends: Vec<String> = (0..26)
        .map(|i| format!("s{i}: sendMessage(input: {{chatId: $c, content: \"hi {i}\"}}) {{ id }}"))
        .collect();
    let query = format!("mutation($c: ID!) {{ {} }}", sends.join(" "));
    let answer = client.send(&query, json!({ "c": own })).await?;
    assert_eq!(answer.codes(), ["LIMIT_EXCEEDED"], "{:?}", answer.body);
    let split = format!(
        "mutation($c: ID!) {{ ...A ...B }} fragment A on Mutation {{ {} }} fragment B on Mutation {{ {} }}",
        sends[..13].join(" "),
        sends[13..].join(" ")
    );
    let answer = client.send(&split, json!({ "c": own })).await?;
    assert_eq!(answer.codes(), ["LIMIT_EXCEEDED"], "{:?}", answer.body);
    assert_eq!(message_count(&client, &own).await?, 0, "nothing was sent");
    client
        .ok(
            &format!("mutation($c: ID!) {{ {} }}", sends[..25].join(" ")),
            json!({ "c": own }),
        )
        .await?;
    assert_eq!(message_count(&client, &own).await?, 25);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_json_is_bounded() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let client = server.client(&alice);
    let big = json!({ "blob": "x".repeat(70 * 1024) });
    let send = "mutation($c: ID!, $d: JSON) { sendMessage(input: {chatId: $c, content: \"hi\", data: $d}) { id } }";
    assert_eq!(
        client.code(send, json!({ "c": chat, "d": big })).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(message_count(&client, &chat).await?, 0);
    let update = "mutation($c: ID!, $d: JSON) { updateChat(id: $c, input: {metadata: $d}) { id } }";
    assert_eq!(
        client.code(update, json!({ "c": chat, "d": big })).await?,
        "BAD_USER_INPUT"
    );
    // Up to 64 KiB is fine.
    let fits = json!({ "blob": "x".repeat(60 * 1024) });
    client.ok(send, json!({ "c": chat, "d": fits })).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_errors_and_responses_are_bounded() -> TestResult {
    let server = TestServer::start_with(&["--max-response-bytes", "4000"]).await?;
    let alice = server.user("alice").await?;
    let chat = chat_with_messages(&server, &alice, 40).await?;
    let client = server.client(&alice);

    // 50,000 directives: refused for its size before it is parsed.
    let huge = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(50_000));
    let answer = client.send(&huge, json!({})).await?;
    assert_eq!(
        answer.codes(),
        ["LIMIT_EXCEEDED"],
        "{}",
        answer.body["errors"][0]
    );
    // 1,000 repeated mistakes within the token limit: at most 50 errors and a summary.
    let repeated = format!("{{ {} }}", "nope ".repeat(1_000));
    let answer = client.send(&repeated, json!({})).await?;
    let errors = answer.errors();
    assert_eq!(errors.len(), 51, "{}", answer.body);
    assert!(
        errors[50]["message"]
            .as_str()
            .is_some_and(|m| m.contains("950 more"))
    );
    assert!(answer.codes().iter().all(|c| c == "BAD_USER_INPUT"));
    // A response over the limit is replaced by an error; a small one passes.
    let page = "query($c: ID!) { messages(chatId: $c, first: 40) { nodes { content } } }";
    let answer = client.send(page, json!({ "c": chat })).await?;
    assert_eq!(answer.codes(), ["LIMIT_EXCEEDED"], "{}", answer.body);
    assert_eq!(answer.data(), &Value::Null);
    client
        .ok(
            "query($c: ID!) { messages(chatId: $c, first: 2) { nodes { content } } }",
            json!({ "c": chat }),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_string_input_may_hold_nul() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let message = send(&server, &alice, &chat, "hello").await?;
    let client = server.client(&alice);
    let nul = "a\u{0}b";
    let cases = [
        (
            "mutation($c: ID!, $s: String!) { sendMessage(input: {chatId: $c, content: $s}) { id } }",
            json!({ "c": chat, "s": nul }),
        ),
        (
            "mutation($c: ID!, $s: String) { sendMessage(input: {chatId: $c, content: \"hi\", clientId: $s}) { id } }",
            json!({ "c": chat, "s": nul }),
        ),
        (
            "mutation($m: ID!, $s: String!) { editMessage(id: $m, content: $s) { id } }",
            json!({ "m": message, "s": nul }),
        ),
        (
            "mutation($c: ID!, $s: String) { updateChat(id: $c, input: {name: $s}) { id } }",
            json!({ "c": chat, "s": nul }),
        ),
        (
            "mutation($c: ID!, $s: String) { updateChat(id: $c, input: {category: $s}) { id } }",
            json!({ "c": chat, "s": nul }),
        ),
        (
            "mutation($u: ID!, $s: String) { updateUser(id: $u, input: {displayName: $s}) { id } }",
            json!({ "u": alice.id, "s": nul }),
        ),
        (
            "query($s: String) { users(search: $s) { nodes { id } } }",
            json!({ "s": "\u{0}" }),
        ),
        (
            "query($s: String) { chats(filter: {category: $s}) { nodes { id } } }",
            json!({ "s": nul }),
        ),
        (
            "mutation($c: ID!, $d: JSON) { sendMessage(input: {chatId: $c, content: \"hi\", data: $d}) { id } }",
            json!({ "c": chat, "d": { "k": nul } }),
        ),
        // In the document itself, as an escape.
        (
            "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"a\\u0000b\"}) { id } }",
            json!({ "c": chat }),
        ),
    ];
    for (query, variables) in cases {
        let answer = client.send(query, variables).await?;
        assert_eq!(
            answer.codes(),
            ["BAD_USER_INPUT"],
            "{query}: {}",
            answer.body
        );
    }
    // Nothing was stored, and the one message is intact.
    let data = client
        .ok(
            "query($c: ID!) { messages(chatId: $c) { nodes { content } } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(data["messages"]["nodes"], json!([{ "content": "hello" }]));
    Ok(())
}
