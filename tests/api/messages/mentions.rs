//! Mentions: by id and as `@username`, members only; unread mention counts per member;
//! `myEvents` tells a mentioned member to notify even in a muted chat.

use super::*;
use crate::common::ws::WsClient;

const SEND: &str = "mutation($c: ID!, $t: String!, $m: [ID!]) {
  sendMessage(input: {chatId: $c, content: $t, mentions: $m}) { id mentions { username } }
}";
const COUNTS: &str = "query($c: ID!) { chat(id: $c) {
  unreadMentionCount unreadCount myMembership { unreadMentionCount }
} }";

#[tokio::test(flavor = "multi_thread")]
async fn a_message_mentions_members_by_id_and_by_username() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol, dave, mallory) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
        server.user("dave").await?,
        server.user("mallory").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol, &dave]).await?;
    let a = server.client(&alice);

    // By id, and by name in any case; the sender, non-members, e-mail addresses and
    // unknown names mention no one.
    let data = a
        .ok(
            SEND,
            json!({"c": chat, "m": [dave.id],
                   "t": "@BOB, ask @alice and @mallory; mail carol@example.com or @nobody."}),
        )
        .await?;
    assert_eq!(
        strings_at(&data, "/sendMessage/mentions", "username"),
        ["bob", "dave"]
    );
    let data = a
        .ok(
            SEND,
            json!({"c": chat, "t": "thanks @carol.", "m": [dave.id, dave.id]}),
        )
        .await?;
    assert_eq!(
        strings_at(&data, "/sendMessage/mentions", "username"),
        ["carol", "dave"]
    );
    let plain = a.ok(SEND, json!({"c": chat, "t": "no one"})).await?;
    assert_eq!(
        strings_at(&plain, "/sendMessage/mentions", "username"),
        Vec::<String>::new()
    );

    // Naming a non-member by id is refused, and nothing is sent.
    let refused = a
        .send(SEND, json!({"c": chat, "t": "psst", "m": [mallory.id]}))
        .await?;
    assert_eq!(refused.codes(), vec!["BAD_USER_INPUT"], "{}", refused.body);
    // At most 50 users.
    let many: Vec<String> = (1..=51)
        .map(|n| chatql::vocabulary::ids::UserId(1_000 + n).to_global())
        .collect();
    let refused = a
        .send(SEND, json!({"c": chat, "t": "all", "m": many}))
        .await?;
    assert_eq!(refused.codes(), vec!["LIMIT_EXCEEDED"], "{}", refused.body);
    let page = a
        .ok(
            "query($c: ID!) { messages(chatId: $c, last: 10) { nodes { content mentions { username } } } }",
            json!({"c": chat}),
        )
        .await?;
    let nodes = page["messages"]["nodes"].as_array().ok_or("no nodes")?;
    assert_eq!(nodes.len(), 3, "{page}");
    assert_eq!(
        nodes[0]["mentions"],
        json!([{"username": "bob"}, {"username": "dave"}])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_mentions_count_per_member_until_read_or_retracted() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let (a, b, c) = (
        server.client(&alice),
        server.client(&bob),
        server.client(&carol),
    );
    a.ok(SEND, json!({"c": chat, "t": "hi @bob"})).await?;
    let second = a
        .ok(SEND, json!({"c": chat, "t": "again", "m": [bob.id]}))
        .await?;
    a.ok(SEND, json!({"c": chat, "t": "everyone else"})).await?;

    let seen = b.ok(COUNTS, json!({"c": chat})).await?;
    assert_eq!(
        seen["chat"],
        json!({"unreadMentionCount": 2, "unreadCount": 3, "myMembership": {"unreadMentionCount": 2}})
    );
    assert_eq!(
        c.ok(COUNTS, json!({"c": chat})).await?["chat"]["unreadMentionCount"],
        0
    );
    // Everyone sees a member's count on their membership, like their unread count.
    let members = a
        .ok(
            "query($c: ID!) { chat(id: $c) { members { nodes { user { username } unreadMentionCount } } } }",
            json!({"c": chat}),
        )
        .await?;
    let bobs = members["chat"]["members"]["nodes"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["user"]["username"] == "bob"))
        .ok_or("no bob")?;
    assert_eq!(bobs["unreadMentionCount"], 2);

    // An edit that names carol mentions her too, and keeps the mention of bob.
    let second = str_at(&second, "/sendMessage/id")?;
    let edited = a
        .ok(
            "mutation($m: ID!) { editMessage(id: $m, content: \"again, @carol\") { mentions { username } } }",
            json!({"m": second}),
        )
        .await?;
    assert_eq!(
        edited["editMessage"]["mentions"],
        json!([{"username": "bob"}, {"username": "carol"}])
    );
    let carols = c.ok(COUNTS, json!({"c": chat})).await?;
    assert_eq!(carols["chat"]["unreadMentionCount"], 1);

    // A retracted mention no longer counts, nor shows.
    let retracted = a
        .ok(
            "mutation($m: ID!) { retractMessage(id: $m) { mentions { username } } }",
            json!({"m": second}),
        )
        .await?;
    assert_eq!(retracted["retractMessage"]["mentions"], json!([]));
    assert_eq!(
        b.ok(COUNTS, json!({"c": chat})).await?["chat"]["unreadMentionCount"],
        1
    );
    // Reading clears it.
    b.ok(
        "mutation($c: ID!) { markRead(chatId: $c) { unreadCount } }",
        json!({"c": chat}),
    )
    .await?;
    assert_eq!(
        b.ok(COUNTS, json!({"c": chat})).await?["chat"]["unreadMentionCount"],
        0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mention_notifies_in_a_muted_chat() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    server
        .client(&bob)
        .ok(
            "mutation($c: ID!) { setChatMuted(chatId: $c, muted: true) { muted } }",
            json!({"c": chat}),
        )
        .await?;
    let mut ws = WsClient::user(&server, &bob).await?;
    ws.subscribe(
        "1",
        "subscription { myEvents { __typename
          ... on InboxMessage { message { content } mentionsMe notify unreadMentionCount }
          ... on UnreadCountChanged { unreadMentionCount }
        } }",
        json!({}),
    )
    .await?;
    ws.until_live("1", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;
    let a = server.client(&alice);

    // Muted: the chat list still gets the message, but no alert...
    a.ok(SEND, json!({"c": chat, "t": "lunch?"})).await?;
    assert_eq!(
        ws.next("1").await?["myEvents"],
        json!({"__typename": "InboxMessage", "message": {"content": "lunch?"},
               "mentionsMe": false, "notify": false, "unreadMentionCount": 0})
    );
    // ...unless it mentions bob.
    a.ok(SEND, json!({"c": chat, "t": "@bob lunch?"})).await?;
    assert_eq!(
        ws.next("1").await?["myEvents"],
        json!({"__typename": "InboxMessage", "message": {"content": "@bob lunch?"},
               "mentionsMe": true, "notify": true, "unreadMentionCount": 1})
    );
    // Unmuted, every message alerts.
    server
        .client(&bob)
        .ok(
            "mutation($c: ID!) { setChatMuted(chatId: $c, muted: false) { muted } }",
            json!({"c": chat}),
        )
        .await?;
    a.ok(SEND, json!({"c": chat, "t": "now?"})).await?;
    loop {
        let event = ws.next("1").await?;
        if event["myEvents"]["__typename"] == "InboxMessage" {
            assert_eq!(event["myEvents"]["notify"], true);
            assert_eq!(event["myEvents"]["mentionsMe"], false);
            break;
        }
    }
    Ok(())
}
