//! Sending: a group conversation end to end, refused input that stores nothing, client-id
//! dedupe, concurrent writers and concurrent sends into one chat.

use super::*;

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
                    // Answered like a missing parent (no existence oracle).
                    assert_eq!(code, "NOT_FOUND");
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

#[tokio::test(flavor = "multi_thread")]
async fn system_notices_and_assistant_replies_are_reserved() -> TestResult {
    let server = TestServer::start().await?;
    let owner = server.user("olive").await?;
    let member = server.user("mia").await?;
    let bot = server.bot("helper").await?;
    let chat = group(&server, &owner, &[&member, &bot]).await?;
    let send = "mutation($c: ID!, $k: MessageKind, $r: MessageRole, $s: Boolean) {
        sendMessage(input: {chatId: $c, content: \"notice\", kind: $k, role: $r, stream: $s}) { kind role streamState } }";
    let as_member = server.client(&member);
    // A plain member can fake neither a system notice (kind or role) nor the assistant.
    for variables in [
        json!({ "c": chat, "k": "SYSTEM" }),
        json!({ "c": chat, "r": "SYSTEM" }),
        json!({ "c": chat, "r": "ASSISTANT" }),
        json!({ "c": chat, "s": true }),
    ] {
        assert_eq!(
            as_member.code(send, variables.clone()).await?,
            "FORBIDDEN",
            "{variables}"
        );
    }
    // The OWNER posts notices; the bot replies as the assistant and streams.
    let data = server
        .client(&owner)
        .ok(send, json!({ "c": chat, "k": "SYSTEM", "r": "SYSTEM" }))
        .await?;
    assert_eq!(data["sendMessage"]["kind"], "SYSTEM");
    let data = server
        .client(&bot)
        .ok(send, json!({ "c": chat, "s": true }))
        .await?;
    assert_eq!(data["sendMessage"]["role"], "ASSISTANT");
    assert_eq!(data["sendMessage"]["streamState"], "STREAMING");
    // Only what the owner and the bot sent is stored.
    let data = as_member
        .ok(
            "query($c: ID!) { messages(chatId: $c) { nodes { kind role } } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(
        data["messages"]["nodes"],
        json!([{ "kind": "SYSTEM", "role": "SYSTEM" }, { "kind": "TEXT", "role": "ASSISTANT" }])
    );
    Ok(())
}
