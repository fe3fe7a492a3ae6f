//! Read state: replies, status, readBy, history, and unread counts up to their cap.

use super::*;

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
    // Marking a message of a chat one is not in is refused like a missing one, and
    // changes nothing.
    let outsider = server.user("outsider").await?;
    assert_eq!(
        server
            .client(&outsider)
            .code(read, json!({"ids": [question]}))
            .await?,
        "NOT_FOUND"
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
async fn unread_counts_are_exact_up_to_the_cap_and_say_when_they_are_capped() -> TestResult {
    // 1,000 sends: more than the default rate limit (each mutation field counts).
    let server = TestServer::start_with(&["--mutations-per-minute", "0"]).await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    // 1,000 messages from bob, 25 per request (the most a request may hold) as aliased
    // mutations.
    let mut ids = Vec::new();
    for batch in 0..40 {
        let fields: Vec<String> = (0..25)
            .map(|i| {
                format!(
                    "m{i}: sendMessage(input: {{chatId: $c, content: \"{batch}-{i}\"}}) {{ id }}"
                )
            })
            .collect();
        let query = format!("mutation($c: ID!) {{ {} }}", fields.join(" "));
        let data = server.client(&bob).ok(&query, json!({"c": chat})).await?;
        for i in 0..25 {
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
async fn a_later_member_never_counts_as_having_read_earlier_messages() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let earlier = send(&server, &alice, &chat, "before carol").await?;
    server
        .client(&bob)
        .ok(
            "mutation($c: ID!) { markRead(chatId: $c) { lastReadMessageId } }",
            json!({ "c": chat }),
        )
        .await?;
    // Carol joins afterwards: her read mark starts at the newest message, which is not a
    // read of it.
    server
        .client(&alice)
        .ok(
            "mutation($c: ID!, $u: [ID!]!) { addMembers(chatId: $c, userIds: $u) { role } }",
            json!({ "c": chat, "u": [carol.id] }),
        )
        .await?;
    let status = "query($m: ID!) { message(id: $m) { status readBy { nodes { username } } } }";
    let data = server
        .client(&alice)
        .ok(status, json!({ "m": earlier }))
        .await?;
    assert_eq!(
        data["message"]["readBy"]["nodes"],
        json!([{ "username": "bob" }])
    );
    // Everyone who was there has read it.
    assert_eq!(str_at(&data, "/message/status")?, "READ");
    // A message after she joined counts her like anyone.
    let later = send(&server, &alice, &chat, "after carol").await?;
    let data = server
        .client(&alice)
        .ok(status, json!({ "m": later }))
        .await?;
    assert_eq!(str_at(&data, "/message/status")?, "SENT");
    assert_eq!(data["message"]["readBy"]["nodes"], json!([]));
    Ok(())
}
