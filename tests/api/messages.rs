//! Messages: sending, dedupe, paging both ways, edits, retractions, deletions, replies,
//! read state and unread counts, history, and the cost of a page.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

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

#[tokio::test(flavor = "multi_thread")]
async fn a_group_conversation_with_exact_unread_counts() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    send(&server, &alice, &chat, "hi all").await?;
    send(&server, &bob, &chat, "hi alice").await?;
    let last = send(&server, &alice, &chat, "lunch?").await?;

    let unread = "query($c: ID!) { chat(id: $c) { unreadCount myMembership { unreadCount } } }";
    let count = |data: Value| int_at(&data, "/chat/unreadCount");
    // Sending marks what came before as read (the sender has seen the chat).
    assert_eq!(
        count(server.client(&alice).ok(unread, json!({"c": chat})).await?)?,
        0
    );
    assert_eq!(
        count(server.client(&bob).ok(unread, json!({"c": chat})).await?)?,
        1
    );
    assert_eq!(
        count(server.client(&carol).ok(unread, json!({"c": chat})).await?)?,
        3
    );

    // Carol reads up to the first message: two left; then everything: none.
    let first = server
        .client(&carol)
        .ok(PAGE, json!({"c": chat, "first": 1}))
        .await?;
    let first_id = str_at(&first, "/messages/edges/0/node/id")?;
    let mark = "mutation($c: ID!, $m: ID) { markRead(chatId: $c, upToMessageId: $m) { unreadCount lastReadMessageId } }";
    let data = server
        .client(&carol)
        .ok(mark, json!({"c": chat, "m": first_id}))
        .await?;
    assert_eq!(int_at(&data, "/markRead/unreadCount")?, 2);
    let data = server
        .client(&carol)
        .ok(mark, json!({"c": chat, "m": null}))
        .await?;
    assert_eq!(int_at(&data, "/markRead/unreadCount")?, 0);
    assert_eq!(str_at(&data, "/markRead/lastReadMessageId")?, last);
    // The watermark never moves back.
    let data = server
        .client(&carol)
        .ok(mark, json!({"c": chat, "m": first_id}))
        .await?;
    assert_eq!(str_at(&data, "/markRead/lastReadMessageId")?, last);
    assert_eq!(int_at(&data, "/markRead/unreadCount")?, 0);

    // The chat list shows the same counts; unreadOnly filters.
    let list = "{ chats(filter: {unreadOnly: true}) { nodes { id unreadCount } } }";
    let data = server.client(&carol).ok(list, json!({})).await?;
    assert_eq!(data["chats"]["nodes"].as_array().map(Vec::len), Some(0));
    let data = server.client(&bob).ok(list, json!({})).await?;
    assert_eq!(int_at(&data, "/chats/nodes/0/unreadCount")?, 1);

    // unreadMessages lists exactly what is unread for Bob, oldest first.
    let data = server
        .client(&bob)
        .ok(
            "query($c: ID!) { unreadMessages(chatId: $c) { nodes { content } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(
        data["unreadMessages"]["nodes"],
        json!([{"content": "lunch?"}])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_content_and_non_members_are_refused_and_nothing_is_stored() -> TestResult {
    let server = TestServer::start_with(&["--max-message-length", "10"]).await?;
    let alice = server.user("alice").await?;
    let mallory = server.user("mallory").await?;
    let chat = group(&server, &alice, &[]).await?;
    let send_q =
        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }";
    let client = server.client(&alice);
    assert_eq!(
        client.code(send_q, json!({"c": chat, "t": "   "})).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        client
            .code(send_q, json!({"c": chat, "t": "x".repeat(11)}))
            .await?,
        "BAD_USER_INPUT"
    );
    // The limit counts characters, not bytes.
    client
        .ok(send_q, json!({"c": chat, "t": "é".repeat(10)}))
        .await?;
    assert_eq!(
        server
            .client(&mallory)
            .code(send_q, json!({"c": chat, "t": "hi"}))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .anonymous()
            .code(send_q, json!({"c": chat, "t": "hi"}))
            .await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        client
            .code(send_q, json!({"c": "bogus", "t": "hi"}))
            .await?,
        "BAD_USER_INPUT"
    );
    let data = client.ok(PAGE, json!({"c": chat})).await?;
    assert_eq!(contents(&data), vec!["é".repeat(10)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_send_with_the_same_client_id_is_stored_once() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let send_q = "mutation($c: ID!, $k: String) { sendMessage(input: {chatId: $c, content: \"once\", clientId: $k}) { id clientId } }";
    let client = server.client(&alice);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let client = client.clone();
            let chat = chat.clone();
            tokio::spawn(async move { client.ok(send_q, json!({"c": chat, "k": "k-1"})).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(str_at(&task.await??, "/sendMessage/id")?);
    }
    assert_eq!(ids.len(), 1, "every retry returns the same message");
    let data = client.ok(PAGE, json!({"c": chat})).await?;
    assert_eq!(contents(&data), vec!["once"]);
    // Another key is another message.
    client.ok(send_q, json!({"c": chat, "k": "k-2"})).await?;
    assert_eq!(
        contents(&client.ok(PAGE, json!({"c": chat})).await?).len(),
        2
    );
    Ok(())
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

#[tokio::test(flavor = "multi_thread")]
async fn paging_both_ways_skips_and_repeats_nothing_while_messages_arrive() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    for i in 0..25 {
        send(&server, &alice, &chat, &format!("m{i:03}")).await?;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("m{i:03}")).collect();
    let client = server.client(&bob);

    // Forward from the oldest while Alice keeps writing: the first 25 come in order, once,
    // and newer ones follow them in order.
    let writer = {
        let (server_url, token, chat) = (server.url(), alice.token.clone(), chat.clone());
        tokio::spawn(async move {
            let client = Client::new(server_url, Some(token), None);
            for i in 25..45 {
                client
                    .ok(
                        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }",
                        json!({"c": chat, "t": format!("m{i:03}")}),
                    )
                    .await?;
            }
            TestResult::Ok(())
        })
    };
    let forward = read_all(&client, &chat, true, 4).await?;
    writer.await??;
    assert_eq!(&forward[..25], &expected[..]);
    let mut sorted = forward.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, forward,
        "forward pages are ordered and repeat nothing"
    );

    // Backward from the newest, after the writer finished: all 45, ascending, once.
    let backward = read_all(&client, &chat, false, 7).await?;
    let all: Vec<String> = (0..45).map(|i| format!("m{i:03}")).collect();
    assert_eq!(backward, all);

    // A final forward read sees exactly the same.
    assert_eq!(read_all(&client, &chat, true, 10).await?, all);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn page_arguments_are_validated() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let client = server.client(&alice);
    assert_eq!(
        client.code(PAGE, json!({"c": chat, "first": 101})).await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        client.code(PAGE, json!({"c": chat, "first": -1})).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        client
            .code(PAGE, json!({"c": chat, "after": "garbage"}))
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        client
            .code(PAGE, json!({"c": chat, "first": 1, "last": 1}))
            .await?,
        "BAD_USER_INPUT"
    );
    // A chat cursor is not a message cursor.
    let chats = client
        .ok("{ chats { edges { cursor } } }", json!({}))
        .await?;
    let chat_cursor = str_at(&chats, "/chats/edges/0/cursor")?;
    assert_eq!(
        client
            .code(PAGE, json!({"c": chat, "after": chat_cursor}))
            .await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_retractions_and_deletions_follow_the_rules() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let id = send(&server, &bob, &chat, "original").await?;
    let edit =
        "mutation($m: ID!, $t: String!) { editMessage(id: $m, content: $t) { content editedAt } }";
    let retract = "mutation($m: ID!) { retractMessage(id: $m) { content retracted data } }";
    let delete = "mutation($m: ID!) { deleteMessage(id: $m) }";

    assert_eq!(
        server
            .client(&alice)
            .code(edit, json!({"m": id, "t": "hacked"}))
            .await?,
        "FORBIDDEN"
    );
    let data = server
        .client(&bob)
        .ok(edit, json!({"m": id, "t": "fixed"}))
        .await?;
    assert_eq!(str_at(&data, "/editMessage/content")?, "fixed");
    assert!(data["editMessage"]["editedAt"].is_string());
    assert_eq!(
        server
            .client(&bob)
            .code(edit, json!({"m": id, "t": ""}))
            .await?,
        "BAD_USER_INPUT"
    );

    assert_eq!(
        server
            .client(&alice)
            .code(retract, json!({"m": id}))
            .await?,
        "FORBIDDEN"
    );
    let data = server.client(&bob).ok(retract, json!({"m": id})).await?;
    assert_eq!(
        data["retractMessage"],
        json!({"content": "", "retracted": true, "data": null})
    );
    // Everyone sees the tombstone; it cannot be edited back.
    let seen = server
        .client(&alice)
        .ok(
            "query($m: ID!) { message(id: $m) { content retracted } }",
            json!({"m": id}),
        )
        .await?;
    assert_eq!(seen["message"], json!({"content": "", "retracted": true}));
    assert_eq!(
        server
            .client(&bob)
            .code(edit, json!({"m": id, "t": "back"}))
            .await?,
        "CONFLICT"
    );

    // Only OWNER/ADMIN/MODERATOR delete; the sender as a plain MEMBER cannot.
    let other = send(&server, &bob, &chat, "to delete").await?;
    assert_eq!(
        server
            .client(&bob)
            .code(delete, json!({"m": other}))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .client(&alice)
            .ok(delete, json!({"m": other}))
            .await?["deleteMessage"],
        json!(true)
    );
    assert_eq!(
        server
            .client(&alice)
            .code(
                "query($m: ID!) { message(id: $m) { id } }",
                json!({"m": other})
            )
            .await?,
        "NOT_FOUND"
    );
    // The chat's last message falls back to the newest remaining one.
    let data = server
        .client(&alice)
        .ok(
            "query($c: ID!) { chat(id: $c) { lastMessage { id } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(str_at(&data, "/chat/lastMessage/id")?, id);
    Ok(())
}

/// Moves a message's creation time into the past, as if it had been sent `secs` ago.
async fn backdate(server: &TestServer, message: &str, secs: i64) -> TestResult {
    use chatql::db::schema::messages;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let id = chatql::vocabulary::ids::MessageId::from_global(message).map_err(|e| e.to_string())?;
    let at = chatql::domain::now() - chrono::Duration::seconds(secs);
    let mut conn = server.app.db().conn().await?;
    chatql::with_conn!(&mut conn, |c| diesel::update(messages::table.find(id.0))
        .set(messages::created_at.eq(at))
        .execute(c)
        .await)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_after_the_window_are_refused_unless_the_window_is_unlimited() -> TestResult {
    let edit = "mutation($m: ID!, $t: String!) { editMessage(id: $m, content: $t) { content } }";
    let server = TestServer::start_with(&["--edit-window-secs", "60"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let recent = send(&server, &alice, &chat, "recent").await?;
    let old = send(&server, &alice, &chat, "old").await?;
    backdate(&server, &old, 61).await?;
    server
        .client(&alice)
        .ok(edit, json!({"m": recent, "t": "v2"}))
        .await?;
    assert_eq!(
        server
            .client(&alice)
            .code(edit, json!({"m": old, "t": "v2"}))
            .await?,
        "FORBIDDEN"
    );

    let unlimited = TestServer::start_with(&["--edit-window-secs", "0"]).await?;
    let alice = unlimited.user("alice").await?;
    let chat = group(&unlimited, &alice, &[]).await?;
    let old = send(&unlimited, &alice, &chat, "old").await?;
    backdate(&unlimited, &old, 365 * 24 * 3600).await?;
    unlimited
        .client(&alice)
        .ok(edit, json!({"m": old, "t": "v2"}))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_status_read_by_and_history() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let question = send(&server, &alice, &chat, "question?").await?;
    let reply = "mutation($c: ID!, $p: ID!) { sendMessage(input: {chatId: $c, content: \"answer\", parentId: $p}) { parent { id } } }";
    let data = server
        .client(&bob)
        .ok(reply, json!({"c": chat, "p": question}))
        .await?;
    assert_eq!(str_at(&data, "/sendMessage/parent/id")?, question);

    let status =
        "query($m: ID!) { message(id: $m) { replyCount status readBy { nodes { username } } } }";
    let data = server
        .client(&alice)
        .ok(status, json!({"m": question}))
        .await?;
    // Bob's own reply moves only his watermark to his reply, which is past the question, so
    // Bob counts as having read it; Carol has neither read nor received it: SENT.
    assert_eq!(int_at(&data, "/message/replyCount")?, 1);
    assert_eq!(str_at(&data, "/message/status")?, "SENT");

    assert_eq!(
        data["message"]["readBy"]["nodes"],
        json!([{"username": "bob"}])
    );

    let delivered = "mutation($c: ID!, $m: ID!) { markDelivered(chatId: $c, upToMessageId: $m) { lastDeliveredMessageId } }";
    let data = server
        .client(&carol)
        .ok(delivered, json!({"c": chat, "m": question}))
        .await?;
    assert_eq!(
        str_at(&data, "/markDelivered/lastDeliveredMessageId")?,
        question
    );
    let data = server
        .client(&alice)
        .ok(status, json!({"m": question}))
        .await?;
    assert_eq!(str_at(&data, "/message/status")?, "DELIVERED");

    let read = "mutation($ids: [ID!]!) { markMessagesRead(messageIds: $ids) }";
    assert_eq!(
        int_at(
            &server
                .client(&carol)
                .ok(read, json!({"ids": [question]}))
                .await?,
            "/markMessagesRead"
        )?,
        1
    );
    let data = server
        .client(&alice)
        .ok(status, json!({"m": question}))
        .await?;
    assert_eq!(str_at(&data, "/message/status")?, "READ");
    assert_eq!(
        data["message"]["readBy"]["nodes"],
        json!([{"username": "bob"}, {"username": "carol"}])
    );
    // Marking a message of a chat one is not in is refused, and changes nothing.
    let outsider = server.user("outsider").await?;
    assert_eq!(
        server
            .client(&outsider)
            .code(read, json!({"ids": [question]}))
            .await?,
        "FORBIDDEN"
    );

    let data = server
        .client(&alice)
        .ok(
            "query($c: ID!) { history(chatId: $c) { role content } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(
        data["history"],
        json!([{"role": "USER", "content": "question?"}, {"role": "USER", "content": "answer"}])
    );
    Ok(())
}

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
async fn concurrent_writers_all_succeed_without_lock_errors() -> TestResult {
    let server = TestServer::start().await?;
    let mut writers = Vec::new();
    let mut chats = Vec::new();
    for i in 0..4 {
        let user = server.user(&format!("w{i}")).await?;
        chats.push(group(&server, &user, &[]).await?);
        writers.push(user);
    }
    let shared = group(
        &server,
        &writers[0],
        &writers[1..].iter().collect::<Vec<_>>(),
    )
    .await?;
    let mut tasks = Vec::new();
    for (i, user) in writers.iter().enumerate() {
        for target in [chats[i].clone(), shared.clone()] {
            let client = server.client(user);
            tasks.push(tokio::spawn(async move {
                for n in 0..15 {
                    client
                        .ok(
                            "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }",
                            json!({"c": target, "t": format!("{n}")}),
                        )
                        .await?;
                }
                TestResult::Ok(())
            }));
        }
    }
    for task in tasks {
        task.await??;
    }
    let all = read_all(&server.client(&writers[0]), &shared, true, 100).await?;
    assert_eq!(
        all.len(),
        60,
        "every concurrent send to the shared chat is stored once"
    );
    for (i, chat) in chats.iter().enumerate() {
        assert_eq!(
            read_all(&server.client(&writers[i]), chat, true, 100)
                .await?
                .len(),
            15
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_counts_are_exact_up_to_the_cap_and_say_when_they_are_capped() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    // 1,000 messages from bob, 50 per request as aliased mutations.
    let mut ids = Vec::new();
    for batch in 0..20 {
        let fields: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    "m{i}: sendMessage(input: {{chatId: $c, content: \"{batch}-{i}\"}}) {{ id }}"
                )
            })
            .collect();
        let query = format!("mutation($c: ID!) {{ {} }}", fields.join(" "));
        let data = server.client(&bob).ok(&query, json!({"c": chat})).await?;
        for i in 0..50 {
            ids.push(str_at(&data, &format!("/m{i}/id"))?);
        }
    }
    let as_alice = server.client(&alice);
    let state = "query($c: ID!) {
      chat(id: $c) { unreadCount unreadCountCapped myMembership { unreadCount unreadCountCapped } }
      chats(first: 5) { edges { node { unreadCount unreadCountCapped } } }
    }";
    let read = |data: Value| -> TestResult<(i64, bool, i64, bool, i64, bool)> {
        let flag = |p: &str| data.pointer(p).and_then(Value::as_bool).ok_or("no flag");
        Ok((
            int_at(&data, "/chat/unreadCount")?,
            flag("/chat/unreadCountCapped")?,
            int_at(&data, "/chat/myMembership/unreadCount")?,
            flag("/chat/myMembership/unreadCountCapped")?,
            int_at(&data, "/chats/edges/0/node/unreadCount")?,
            flag("/chats/edges/0/node/unreadCountCapped")?,
        ))
    };
    // 1,000 unread: more than the cap, shown as 999 and flagged.
    let data = as_alice.ok(state, json!({"c": chat})).await?;
    assert_eq!(read(data)?, (999, true, 999, true, 999, true));
    // Retracting one leaves exactly 999: the same number, no longer capped.
    server
        .client(&bob)
        .ok(
            "mutation($m: ID!) { retractMessage(id: $m) { id } }",
            json!({"m": ids[999]}),
        )
        .await?;
    let data = as_alice.ok(state, json!({"c": chat})).await?;
    assert_eq!(read(data)?, (999, false, 999, false, 999, false));
    // Reading up to the 500th leaves the 499 live ones after it.
    let data = as_alice
        .ok(
            "mutation($c: ID!, $m: ID) { markRead(chatId: $c, upToMessageId: $m) { unreadCount unreadCountCapped } }",
            json!({"c": chat, "m": ids[499]}),
        )
        .await?;
    assert_eq!(int_at(&data, "/markRead/unreadCount")?, 499);
    assert_eq!(data["markRead"]["unreadCountCapped"], json!(false));
    // Bob's own messages never count for him.
    let data = server.client(&bob).ok(state, json!({"c": chat})).await?;
    assert_eq!(read(data)?, (0, false, 0, false, 0, false));
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

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sends_into_one_chat_each_get_their_own_answer() -> TestResult {
    let server = TestServer::start().await?;
    let mut users = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        users.push(server.user(name).await?);
    }
    let chat = group(&server, &users[0], &[&users[1], &users[2], &users[3]]).await?;
    let elsewhere = group(&server, &users[0], &[]).await?;
    let foreign = send(&server, &users[0], &elsewhere, "not in the team chat").await?;
    let send_query = "mutation($c: ID!, $t: String!, $k: String, $p: ID) {
      sendMessage(input: {chatId: $c, content: $t, clientId: $k, parentId: $p}) { id content }
    }";
    // Four members send 20 messages each at once; every fifth is sent twice at the same
    // time with one clientId, and every seventh names a parent from another chat.
    let mut tasks = Vec::new();
    for (u, user) in users.iter().enumerate() {
        let client = server.client(user);
        let (chat, foreign) = (chat.clone(), foreign.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..20 {
                let text = format!("{u}-{n}");
                if n % 7 == 6 {
                    let vars = json!({"c": chat, "t": text, "p": foreign});
                    let code = client.code(send_query, vars).await?;
                    assert_eq!(code, "BAD_USER_INPUT");
                    continue;
                }
                let key = (n % 5 == 0).then(|| format!("key-{u}-{n}"));
                let vars = json!({"c": chat, "t": text, "k": key});
                let (first, second) = if key.is_some() {
                    let (a, b) = tokio::join!(
                        client.ok(send_query, vars.clone()),
                        client.ok(send_query, vars)
                    );
                    let (a, b) = (a?, b?);
                    assert_eq!(
                        a["sendMessage"], b["sendMessage"],
                        "one message per clientId"
                    );
                    (a, Some(b))
                } else {
                    (client.ok(send_query, vars).await?, None)
                };
                drop(second);
                assert_eq!(str_at(&first, "/sendMessage/content")?, text);
                mine.push(str_at(&first, "/sendMessage/id")?);
            }
            TestResult::Ok(mine)
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        sent.push(task.await??);
    }
    let stored = read_all(&server.client(&users[0]), &chat, true, 100).await?;
    let expected: usize = sent.iter().map(Vec::len).sum();
    assert_eq!(stored.len(), expected, "each accepted send is stored once");
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), expected);
    // Each sender's own messages are stored in the order they were sent.
    for u in 0..users.len() {
        let own: Vec<&String> = stored
            .iter()
            .filter(|t| t.starts_with(&format!("{u}-")))
            .collect();
        let mut in_order = own.clone();
        in_order.sort_by_key(|t| t[2..].parse::<u32>().unwrap_or(u32::MAX));
        assert_eq!(own, in_order);
    }
    // The chat points at its newest message; each sender has read up to their own newest.
    let newest_id = {
        let data = server
            .client(&users[0])
            .ok(
                "query($c: ID!) { messages(chatId: $c, last: 1) { nodes { id } } }",
                json!({"c": chat}),
            )
            .await?;
        str_at(&data, "/messages/nodes/0/id")?
    };
    for (user, mine) in users.iter().zip(&sent) {
        let data = server
            .client(user)
            .ok(
                "query($c: ID!) { chat(id: $c) { lastMessage { id } myMembership { lastReadMessageId } } }",
                json!({"c": chat}),
            )
            .await?;
        assert_eq!(str_at(&data, "/chat/lastMessage/id")?, newest_id);
        let read = str_at(&data, "/chat/myMembership/lastReadMessageId")?;
        assert_eq!(
            &read,
            mine.last().ok_or("sent nothing")?,
            "read up to their own newest"
        );
    }
    Ok(())
}
