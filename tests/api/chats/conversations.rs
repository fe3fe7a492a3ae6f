//! Conversations as an app keeps them: get-or-create by the app's own key, status and tags,
//! the chat list in other orders and time ranges, `updatedAt`, messages by time.

use super::*;

const CREATE_KEYED: &str = "mutation($k: String, $t: [String!]) {
  createChat(input: {kind: ASSISTANT, name: \"conv\", externalKey: $k, tags: $t}) { id externalKey tags status }
}";

const LIST: &str = "query($f: ChatFilter, $o: ChatOrderInput, $first: Int, $after: String) {
  chats(filter: $f, orderBy: $o, first: $first, after: $after) {
    nodes { id name }
    pageInfo { hasNextPage endCursor }
  }
}";

async fn names(client: &Client, filter: Value, order: Value) -> TestResult<Vec<String>> {
    let data = client
        .ok(LIST, json!({"f": filter, "o": order, "first": 50}))
        .await?;
    Ok(data["chats"]["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

async fn named(client: &Client, name: &str, tags: Value) -> TestResult<String> {
    let data = client
        .ok(
            "mutation($n: String!, $t: [String!]) { createChat(input: {kind: GROUP, name: $n, tags: $t}) { id } }",
            json!({"n": name, "t": tags}),
        )
        .await?;
    str_at(&data, "/createChat/id")
}

/// Waits (bounded) until the clock is past `time`, so the next write gets a later
/// millisecond than what is compared with it.
async fn clock_past(time: &str) -> TestResult {
    let time = chrono::DateTime::parse_from_rfc3339(time)?;
    for _ in 0..1000 {
        if chrono::Utc::now() > time {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    Err("the clock did not move".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_with_an_external_key_gets_the_same_chat_even_when_calls_race() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let a = server.client(&alice);
    let racers = (0..8).map(|_| a.ok(CREATE_KEYED, json!({"k": "conv-1"})));
    let created = futures_util::future::try_join_all(racers).await?;
    let ids: HashSet<&str> = created
        .iter()
        .filter_map(|d| d["createChat"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "{created:?}");
    let id = ids.into_iter().next().unwrap_or_default().to_owned();
    assert_eq!(created[0]["createChat"]["externalKey"], "conv-1");
    assert_eq!(names(&a, json!({}), Value::Null).await?, ["conv"]);
    // Looked up by the key; another user's key space is their own.
    let by_key = "query($k: String!) { chatByExternalKey(externalKey: $k) { id } }";
    let found = a.ok(by_key, json!({"k": "conv-1"})).await?;
    assert_eq!(found["chatByExternalKey"]["id"], id.as_str());
    assert_eq!(
        a.ok(by_key, json!({"k": "nope"})).await?["chatByExternalKey"],
        Value::Null
    );
    let b = server.client(&bob);
    assert_eq!(
        b.ok(by_key, json!({"k": "conv-1"})).await?["chatByExternalKey"],
        Value::Null
    );
    let bobs = b.ok(CREATE_KEYED, json!({"k": "conv-1"})).await?;
    assert_ne!(bobs["createChat"]["id"], id.as_str());
    // A DIRECT chat has no key; a bad key is refused; a chat one left is a conflict.
    assert_eq!(
        a.code(
            "mutation($u: [ID!]) { createChat(input: {kind: DIRECT, memberIds: $u, externalKey: \"d\"}) { id } }",
            json!({"u": [bob.id]}),
        )
        .await?,
        "BAD_USER_INPUT"
    );
    let long = "k".repeat(201);
    assert_eq!(
        a.code(CREATE_KEYED, json!({"k": ""})).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        a.code(CREATE_KEYED, json!({"k": long})).await?,
        "BAD_USER_INPUT"
    );
    b.ok(
        "mutation($c: ID!) { leaveChat(chatId: $c) }",
        json!({"c": bobs["createChat"]["id"]}),
    )
    .await?;
    assert_eq!(
        b.code(CREATE_KEYED, json!({"k": "conv-1"})).await?,
        "CONFLICT"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_tags_filter_the_chat_list() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let a = server.client(&alice);
    let support = named(&a, "support", json!(["work", " urgent ", "work"])).await?;
    named(&a, "planning", json!(["work"])).await?;
    named(&a, "holiday", json!([])).await?;
    let tags = "query($c: ID!) { chat(id: $c) { tags status } }";
    assert_eq!(
        a.ok(tags, json!({"c": support})).await?["chat"],
        json!({"tags": ["urgent", "work"], "status": "ACTIVE"})
    );
    let update =
        "mutation($c: ID!, $i: UpdateChatInput!) { updateChat(id: $c, input: $i) { tags status } }";
    let archived = a
        .ok(
            update,
            json!({"c": support, "i": {"status": "ARCHIVED", "tags": ["done"]}}),
        )
        .await?;
    assert_eq!(
        archived["updateChat"],
        json!({"tags": ["done"], "status": "ARCHIVED"})
    );
    let by_name = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        by_name(names(&a, json!({"status": "ACTIVE"}), Value::Null).await?),
        ["holiday", "planning"]
    );
    assert_eq!(
        names(&a, json!({"status": "ARCHIVED"}), Value::Null).await?,
        ["support"]
    );
    assert_eq!(
        names(&a, json!({"tag": "work"}), Value::Null).await?,
        ["planning"]
    );
    assert_eq!(
        names(&a, json!({"tag": "done"}), Value::Null).await?,
        ["support"]
    );
    assert!(
        names(&a, json!({"tag": "nothing"}), Value::Null)
            .await?
            .is_empty()
    );
    for bad in [
        json!([""]),
        json!(["x".repeat(51)]),
        json!((0..21).map(|n| format!("t{n}")).collect::<Vec<_>>()),
    ] {
        assert_eq!(
            a.code(update, json!({"c": support, "i": {"tags": bad}}))
                .await?,
            "BAD_USER_INPUT"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_list_orders_by_creation_update_or_activity_both_ways_and_by_time_range()
-> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let a = server.client(&alice);
    let created_at = "query($c: ID!) { chat(id: $c) { createdAt updatedAt } }";
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let id = named(&a, name, json!([])).await?;
        let times = a.ok(created_at, json!({"c": id})).await?;
        clock_past(&str_at(&times, "/chat/createdAt")?).await?;
        ids.push(id);
    }
    // Activity in the first, a rename of the second (which moves its updatedAt).
    send(&server, &alice, &ids[0], "hi").await?;
    let before = a.ok(created_at, json!({"c": ids[1]})).await?;
    clock_past(&str_at(&before, "/chat/updatedAt")?).await?;
    let renamed = a
        .ok(
            "mutation($c: ID!) { updateChat(id: $c, input: {name: \"second\"}) { updatedAt } }",
            json!({"c": ids[1]}),
        )
        .await?;
    assert!(str_at(&renamed, "/updateChat/updatedAt")? > str_at(&before, "/chat/updatedAt")?);

    let order = |field: &str, direction: &str| json!({"field": field, "direction": direction});
    assert_eq!(
        names(&a, json!({}), Value::Null).await?,
        ["first", "third", "second"]
    );
    assert_eq!(
        names(&a, json!({}), order("CREATED", "ASC")).await?,
        ["first", "second", "third"]
    );
    assert_eq!(
        names(&a, json!({}), order("CREATED", "DESC")).await?,
        ["third", "second", "first"]
    );
    assert_eq!(
        names(&a, json!({}), order("UPDATED", "DESC")).await?[0],
        "second"
    );
    assert_eq!(
        names(&a, json!({}), order("LAST_ACTIVITY", "ASC")).await?,
        ["second", "third", "first"]
    );
    // A time range over the ordering time.
    let second = a.ok(created_at, json!({"c": ids[1]})).await?;
    let since = str_at(&second, "/chat/createdAt")?;
    assert_eq!(
        names(&a, json!({"since": since}), order("CREATED", "ASC")).await?,
        ["second", "third"]
    );
    assert_eq!(
        names(&a, json!({"until": since}), order("CREATED", "ASC")).await?,
        ["first"]
    );
    // Paging one by one in another order sees each chat once, in order; a cursor of one
    // order is refused by another.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = a
            .ok(
                LIST,
                json!({"o": order("CREATED", "ASC"), "first": 1, "after": after}),
            )
            .await?;
        seen.extend(
            page["chats"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned)),
        );
        if page["chats"]["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["chats"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(seen, ["first", "second", "third"]);
    let page = a
        .ok(LIST, json!({"o": order("CREATED", "ASC"), "first": 1}))
        .await?;
    let cursor = str_at(&page, "/chats/pageInfo/endCursor")?;
    assert_eq!(
        a.code(LIST, json!({"first": 1, "after": cursor})).await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clearing_a_chat_moves_its_updated_at_and_messages_filter_by_time() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let a = server.client(&alice);
    let chat = group(&server, &alice, &[]).await?;
    let created = "query($m: ID!) { message(id: $m) { createdAt } }";
    let mut times = Vec::new();
    for text in ["one", "two", "three"] {
        let id = send(&server, &alice, &chat, text).await?;
        let at = str_at(
            &a.ok(created, json!({"m": id})).await?,
            "/message/createdAt",
        )?;
        clock_past(&at).await?;
        times.push(at);
    }
    let window = "query($c: ID!, $s: DateTime, $u: DateTime) {
      messages(chatId: $c, first: 10, since: $s, until: $u) { nodes { content } }
    }";
    let contents = |data: &Value| -> Vec<String> {
        data["messages"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n["content"].as_str().map(str::to_owned))
            .collect()
    };
    let since_two = a.ok(window, json!({"c": chat, "s": times[1]})).await?;
    assert_eq!(contents(&since_two), ["two", "three"]);
    let until_two = a.ok(window, json!({"c": chat, "u": times[1]})).await?;
    assert_eq!(contents(&until_two), ["one"]);
    let just_two = a
        .ok(window, json!({"c": chat, "s": times[1], "u": times[2]}))
        .await?;
    assert_eq!(contents(&just_two), ["two"]);

    let updated = "query($c: ID!) { chat(id: $c) { updatedAt } }";
    let before = str_at(&a.ok(updated, json!({"c": chat})).await?, "/chat/updatedAt")?;
    clock_past(&before).await?;
    a.ok(
        "mutation($c: ID!) { clearChat(id: $c) }",
        json!({"c": chat}),
    )
    .await?;
    let after = str_at(&a.ok(updated, json!({"c": chat})).await?, "/chat/updatedAt")?;
    assert!(after > before, "{before} → {after}");
    Ok(())
}
