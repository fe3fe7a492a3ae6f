//! What a page costs in statements: constant with senders, nothing for sender or reply ids,
//! one membership check with the newest page.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_messages_with_senders_costs_a_constant_number_of_queries() -> TestResult {
    let server = TestServer::start().await?;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(server.user(&format!("u{i}")).await?);
    }
    let others: Vec<&TestUser> = users[1..].iter().collect();
    let chat = group(&server, &users[0], &others).await?;
    for i in 0..50 {
        send(&server, &users[i % 5], &chat, &format!("m{i}")).await?;
    }
    let query = "query($c: ID!, $n: Int) { messages(chatId: $c, last: $n) { nodes { content sender { username } chat { name } replyCount status parent { id } } } }";
    let client = server.client(&users[0]);
    let mut cost = Vec::new();
    for n in [5, 50] {
        let before = server.app.db().statements_executed();
        let data = client.ok(query, json!({"c": chat, "n": n})).await?;
        cost.push(server.app.db().statements_executed() - before);
        assert_eq!(
            data["messages"]["nodes"].as_array().map(Vec::len),
            Some(n as usize)
        );
    }
    // Five loaded fields over 50 messages: one batched statement each. A loaded machine
    // may split a batch when items arrive after the loader's 1 ms window, so the bound is
    // "far fewer than one per message", which any per-row loading breaks.
    assert!(cost[1] < 25, "statements for 5 vs 50 messages: {cost:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_with_sender_ids_loads_no_users() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    for i in 0..10 {
        send(&server, if i % 2 == 0 { &alice } else { &bob }, &chat, "hi").await?;
    }
    let client = server.client(&alice);
    let mut cost = Vec::new();
    for selection in ["id", "id sender { id }", "id sender { id username }"] {
        let query = format!(
            "query($c: ID!) {{ messages(chatId: $c, last: 10) {{ nodes {{ {selection} }} }} }}"
        );
        // The pool also runs background statements (the NOTIFYs of the sends above), which
        // only ever add: the least of three runs is the query's own cost.
        let mut runs = Vec::new();
        let mut data = Value::Null;
        for _ in 0..3 {
            let before = server.app.db().statements_executed();
            data = client.ok(&query, json!({"c": chat})).await?;
            runs.push(server.app.db().statements_executed() - before);
        }
        cost.push(runs.into_iter().min().unwrap_or(u64::MAX));
        if selection.contains("sender") {
            let senders: HashSet<&str> = data["messages"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["sender"]["id"].as_str())
                .collect();
            assert_eq!(senders, HashSet::from([alice.id.as_str(), bob.id.as_str()]));
        }
    }
    // The sender's id is on the message row; only other fields load the user.
    assert_eq!(cost[0], cost[1], "statements: {cost:?}");
    assert_eq!(cost[2], cost[1] + 1, "statements: {cost:?}");
    Ok(())
}

/// The least statement count of three runs of `query` (the pool's background NOTIFYs only
/// ever add), and the last answer.
async fn least_cost(
    server: &TestServer,
    client: &Client,
    query: &str,
    variables: Value,
) -> TestResult<(u64, Value)> {
    let mut runs = Vec::new();
    let mut data = Value::Null;
    for _ in 0..3 {
        let before = server.app.db().statements_executed();
        data = client.ok(query, variables.clone()).await?;
        runs.push(server.app.db().statements_executed() - before);
    }
    Ok((runs.into_iter().min().unwrap_or(u64::MAX), data))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_with_its_newest_page_checks_membership_once_and_reply_ids_load_nothing()
-> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let first = send(&server, &alice, &chat, "question").await?;
    let reply = server
        .client(&bob)
        .ok(
            "mutation($c: ID!, $p: ID!) { sendMessage(input: {chatId: $c, content: \"answer\", parentId: $p}) { id } }",
            json!({"c": chat, "p": first}),
        )
        .await?;
    let reply = str_at(&reply, "/sendMessage/id")?;
    let client = server.client(&alice);
    let vars = json!({"c": chat});
    let page = "messages(chatId: $c, last: 10) { nodes { id parent { id } } }";
    let (page_alone, _) = least_cost(
        &server,
        &client,
        &format!("query($c: ID!) {{ {page} }}"),
        vars.clone(),
    )
    .await?;
    let (with_chat, data) = least_cost(
        &server,
        &client,
        &format!("query($c: ID!) {{ chat(id: $c) {{ id name }} {page} }}"),
        vars.clone(),
    )
    .await?;
    // `chat(id)` and `messages(chatId)` resolve side by side and share one check.
    assert_eq!(
        with_chat, page_alone,
        "statements alone {page_alone}, with chat {with_chat}"
    );
    assert_eq!(data["chat"]["name"], json!("team"));
    assert_eq!(
        data["messages"]["nodes"],
        json!([{"id": first, "parent": null}, {"id": reply, "parent": {"id": first}}])
    );
    // The parent's id is on the reply's row; its other fields load it.
    let (with_parent_content, data) = least_cost(
        &server,
        &client,
        "query($c: ID!) { messages(chatId: $c, last: 10) { nodes { id parent { id content } } } }",
        vars,
    )
    .await?;
    assert_eq!(with_parent_content, page_alone + 1);
    assert_eq!(
        data["messages"]["nodes"][1]["parent"]["content"],
        json!("question")
    );
    // A removed member's next query is refused: nothing outlives the operation.
    remove_member(&server, &alice, &chat, &bob).await?;
    let query = format!("query($c: ID!) {{ chat(id: $c) {{ id }} {page} }}");
    let code = server.client(&bob).code(&query, json!({"c": chat})).await?;
    assert_eq!(code, "FORBIDDEN");
    Ok(())
}
