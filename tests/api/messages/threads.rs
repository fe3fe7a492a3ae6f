//! Threads: a message's replies paged alone, its reply count and latest reply time, a
//! chat's threads by latest reply, unread replies per member, a thread-only live feed.

use super::*;
use crate::common::ws::WsClient;

const REPLY: &str = "mutation($c: ID!, $p: ID!, $t: String!) {
  sendMessage(input: {chatId: $c, parentId: $p, content: $t}) { id createdAt }
}";
const THREAD: &str = "query($m: ID!, $first: Int, $after: String) { message(id: $m) {
  replyCount lastReplyAt threadUnreadCount
  replies(first: $first, after: $after) {
    nodes { content } pageInfo { hasNextPage endCursor }
  }
} }";
const THREADS: &str = "query($c: ID!, $first: Int, $after: String) { chat(id: $c) {
  threads(first: $first, after: $after) {
    nodes { content replyCount } pageInfo { hasNextPage endCursor }
  }
} }";

async fn reply(
    server: &TestServer,
    user: &TestUser,
    chat: &str,
    parent: &str,
    text: &str,
) -> TestResult<Value> {
    server
        .client(user)
        .ok(REPLY, json!({"c": chat, "p": parent, "t": text}))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_page_alone_and_threads_list_by_latest_reply() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, mallory) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("mallory").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let first = send(&server, &alice, &chat, "first topic").await?;
    let second = send(&server, &alice, &chat, "second topic").await?;
    send(&server, &alice, &chat, "no replies").await?;
    for n in 0..3 {
        reply(&server, &bob, &chat, &first, &format!("re first {n}")).await?;
    }
    let newest = reply(&server, &bob, &chat, &second, "re second").await?;
    let a = server.client(&alice);

    // Replies page oldest first, by themselves.
    let page = a.ok(THREAD, json!({"m": first, "first": 2})).await?;
    assert_eq!(
        strings_at(&page, "/message/replies/nodes", "content"),
        ["re first 0", "re first 1"]
    );
    assert_eq!(page["message"]["replyCount"], 3);
    let after = str_at(&page, "/message/replies/pageInfo/endCursor")?;
    let rest = a
        .ok(THREAD, json!({"m": first, "first": 2, "after": after}))
        .await?;
    assert_eq!(
        strings_at(&rest, "/message/replies/nodes", "content"),
        ["re first 2"]
    );
    assert_eq!(rest["message"]["replies"]["pageInfo"]["hasNextPage"], false);
    let second_thread = a.ok(THREAD, json!({"m": second})).await?;
    assert_eq!(
        second_thread["message"]["lastReplyAt"],
        newest["sendMessage"]["createdAt"]
    );

    // Threads: the latest reply first; a new reply moves its thread up.
    let list = a.ok(THREADS, json!({"c": chat})).await?;
    assert_eq!(
        strings_at(&list, "/chat/threads/nodes", "content"),
        ["second topic", "first topic"]
    );
    reply(&server, &alice, &chat, &first, "bump").await?;
    let list = a.ok(THREADS, json!({"c": chat, "first": 1})).await?;
    assert_eq!(
        strings_at(&list, "/chat/threads/nodes", "content"),
        ["first topic"]
    );
    assert_eq!(list["chat"]["threads"]["nodes"][0]["replyCount"], 4);
    let after = str_at(&list, "/chat/threads/pageInfo/endCursor")?;
    let next = a
        .ok(THREADS, json!({"c": chat, "first": 1, "after": after}))
        .await?;
    assert_eq!(
        strings_at(&next, "/chat/threads/nodes", "content"),
        ["second topic"]
    );
    assert_eq!(next["chat"]["threads"]["pageInfo"]["hasNextPage"], false);

    // Deleting a thread's only reply takes it off the list.
    let only = str_at(&newest, "/sendMessage/id")?;
    a.ok(
        "mutation($m: ID!) { deleteMessage(id: $m) }",
        json!({"m": only}),
    )
    .await?;
    let list = a.ok(THREADS, json!({"c": chat})).await?;
    assert_eq!(
        strings_at(&list, "/chat/threads/nodes", "content"),
        ["first topic"]
    );

    // Outsiders see neither.
    assert_absent(&server.client(&mallory), THREAD, json!({"m": first})).await?;
    let refused = server
        .client(&mallory)
        .send(THREADS, json!({"c": chat}))
        .await?;
    assert!(refused.data()["chat"].is_null(), "{}", refused.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_unread_counts_follow_the_chat_and_thread_read_marks() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, mallory) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("mallory").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let root = send(&server, &alice, &chat, "plan").await?;
    let r1 = reply(&server, &bob, &chat, &root, "one").await?;
    reply(&server, &bob, &chat, &root, "two").await?;
    reply(&server, &alice, &chat, &root, "mine").await?;
    let a = server.client(&alice);
    let unread = |data: &Value| data["message"]["threadUnreadCount"].clone();
    // Alice's own reply is not unread for her; sending it read the chat up to it, though,
    // so bob's earlier replies are read through the chat's watermark.
    assert_eq!(unread(&a.ok(THREAD, json!({"m": root})).await?), 0);
    reply(&server, &bob, &chat, &root, "three").await?;
    reply(&server, &bob, &chat, &root, "four").await?;
    assert_eq!(unread(&a.ok(THREAD, json!({"m": root})).await?), 2);

    // The thread mark moves up to a reply, never back.
    let mark = "mutation($m: ID!, $u: ID) { markThreadRead(messageId: $m, upToMessageId: $u) { threadUnreadCount } }";
    let replies = a
        .ok(
            "query($m: ID!) { message(id: $m) { replies(last: 2) { nodes { id } } } }",
            json!({"m": root}),
        )
        .await?;
    let three = str_at(&replies, "/message/replies/nodes/0/id")?;
    let data = a.ok(mark, json!({"m": root, "u": three})).await?;
    assert_eq!(data["markThreadRead"]["threadUnreadCount"], 1);
    let r1 = str_at(&r1, "/sendMessage/id")?;
    let data = a.ok(mark, json!({"m": root, "u": r1})).await?;
    assert_eq!(data["markThreadRead"]["threadUnreadCount"], 1);
    let data = a.ok(mark, json!({"m": root})).await?;
    assert_eq!(data["markThreadRead"]["threadUnreadCount"], 0);
    // The mark does not read the chat: those replies are still unread in it.
    let chat_unread = a
        .ok(
            "query($c: ID!) { chat(id: $c) { unreadCount } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(chat_unread["chat"]["unreadCount"], 2);

    // A message that is not a reply of this thread is refused; an outsider finds nothing.
    assert_eq!(
        a.code(mark, json!({"m": root, "u": root})).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        server
            .client(&mallory)
            .code(mark, json!({"m": root}))
            .await?,
        "NOT_FOUND"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thread_feed_carries_only_its_thread() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let root = send(&server, &alice, &chat, "thread").await?;
    let other = send(&server, &alice, &chat, "other thread").await?;
    reply(&server, &bob, &chat, &root, "early").await?;
    let early_cursor = {
        let page = server
            .client(&alice)
            .ok(
                "query($m: ID!) { message(id: $m) { replies { edges { cursor } } } }",
                json!({"m": root}),
            )
            .await?;
        str_at(&page, "/message/replies/edges/0/cursor")?
    };
    let feed = "subscription($c: ID!, $t: ID, $after: String) {
      chatEvents(chatId: $c, threadId: $t, after: $after) {
        __typename
        ... on MessageAdded { message { content parent { id } } }
        ... on MessageEdited { message { content } }
        ... on ReactionChanged { emoji }
      }
    }";
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe("1", feed, json!({"c": chat, "t": root}))
        .await?;
    ws.until_live("1", async |m| {
        reply(&server, &bob, &chat, &root, &m).await.map(drop)
    })
    .await?;

    let b = server.client(&bob);
    // Outside the thread: a chat message, a reply elsewhere, typing: none arrives.
    send(&server, &bob, &chat, "main timeline").await?;
    reply(&server, &bob, &chat, &other, "elsewhere").await?;
    b.ok(
        "mutation($c: ID!) { setTyping(chatId: $c, typing: true) }",
        json!({"c": chat}),
    )
    .await?;
    // In it: a reply, a reaction on the root, an edit of a reply.
    let r = reply(&server, &bob, &chat, &root, "in thread").await?;
    b.ok(
        "mutation($m: ID!) { addReaction(messageId: $m, emoji: \"👍\") { id } }",
        json!({"m": root}),
    )
    .await?;
    b.ok(
        "mutation($m: ID!) { editMessage(id: $m, content: \"in thread!\") { id } }",
        json!({"m": str_at(&r, "/sendMessage/id")?}),
    )
    .await?;
    let first = ws.next("1").await?;
    assert_eq!(first["chatEvents"]["__typename"], "MessageAdded");
    assert!(
        first["chatEvents"]["message"]["content"] == "in thread"
            || first["chatEvents"]["message"]["content"] == "in thread!",
        "{first}"
    );
    assert_eq!(first["chatEvents"]["message"]["parent"]["id"], root);
    assert_eq!(
        ws.next("1").await?["chatEvents"],
        json!({"__typename": "ReactionChanged", "emoji": "👍"})
    );
    assert_eq!(
        ws.next("1").await?["chatEvents"],
        json!({"__typename": "MessageEdited", "message": {"content": "in thread!"}})
    );

    // `after` replays the thread's replies only.
    let mut replay = WsClient::user(&server, &alice).await?;
    replay
        .subscribe(
            "2",
            feed,
            json!({"c": chat, "t": root, "after": early_cursor}),
        )
        .await?;
    // The replay comes first, in order: the first feed's probe, then "in thread" as it is now.
    let mut texts = Vec::new();
    for _ in 0..2 {
        let event = replay.next("2").await?;
        texts.push(str_at(&event, "/chatEvents/message/content")?);
    }
    assert_eq!(texts, ["probe-0", "in thread!"]);
    // Then it is live, on the thread alone.
    send(&server, &bob, &chat, "main again").await?;
    reply(&server, &bob, &chat, &root, "live again").await?;
    let event = replay.next("2").await?;
    assert_eq!(str_at(&event, "/chatEvents/message/content")?, "live again");

    // The first feed saw that reply too; deleting the thread's message then ends it
    // after its MessageDeleted.
    let seen = ws.next("1").await?;
    assert_eq!(str_at(&seen, "/chatEvents/message/content")?, "live again");
    server
        .client(&alice)
        .ok(
            "mutation($m: ID!) { deleteMessage(id: $m) }",
            json!({"m": root}),
        )
        .await?;
    assert_eq!(
        ws.next("1").await?["chatEvents"]["__typename"],
        "MessageDeleted"
    );
    let end = ws.recv().await?;
    assert_eq!(end, json!({"id": "1", "type": "complete"}), "{end}");

    // A thread of another chat, or no such message, is not found.
    let elsewhere = group(&server, &bob, &[]).await?;
    let foreign = send(&server, &bob, &elsewhere, "not yours").await?;
    let mut bad = WsClient::user(&server, &alice).await?;
    bad.subscribe("3", feed, json!({"c": chat, "t": foreign}))
        .await?;
    let answer = bad.recv().await?;
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{answer}"
    );
    Ok(())
}
