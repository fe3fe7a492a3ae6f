//! Blocking: listed and reversible; no direct chat either way while it lasts; in shared
//! groups the blocked user's messages are flagged for the blocker, never alert them and
//! never mention them; the blocked user sees no difference.

use super::*;
use crate::common::ws::WsClient;

const BLOCK: &str = "mutation($u: ID!) { blockUser(userId: $u) { username blockedByMe } }";
const UNBLOCK: &str = "mutation($u: ID!) { unblockUser(userId: $u) { username blockedByMe } }";
const BLOCKED: &str = "{ blockedUsers { username } }";
const OPEN: &str = "mutation($u: ID!) { openDirectChat(userId: $u) { id } }";

#[tokio::test(flavor = "multi_thread")]
async fn blocks_are_listed_reversible_and_stop_direct_chats_both_ways() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let (a, b) = (server.client(&alice), server.client(&bob));
    let direct = str_at(
        &a.ok(OPEN, json!({"u": bob.id})).await?,
        "/openDirectChat/id",
    )?;
    send(&server, &bob, &direct, "hi alice").await?;

    let data = a.ok(BLOCK, json!({"u": bob.id})).await?;
    assert_eq!(
        data["blockUser"],
        json!({"username": "bob", "blockedByMe": true})
    );
    a.ok(BLOCK, json!({"u": bob.id})).await?;
    a.ok(BLOCK, json!({"u": carol.id})).await?;
    assert_eq!(
        strings_at(
            &a.ok(BLOCKED, json!({})).await?,
            "/blockedUsers",
            "username"
        ),
        ["carol", "bob"]
    );
    // Private: bob's own list and view of alice do not change.
    assert_eq!(
        strings_at(
            &b.ok(BLOCKED, json!({})).await?,
            "/blockedUsers",
            "username"
        ),
        Vec::<String>::new()
    );
    let seen = b
        .ok(
            "query($u: ID!) { user(id: $u) { blockedByMe } }",
            json!({"u": alice.id}),
        )
        .await?;
    assert_eq!(seen["user"]["blockedByMe"], false);

    // Neither opens the direct chat or sends into it; the history stays readable.
    assert_eq!(b.code(OPEN, json!({"u": alice.id})).await?, "FORBIDDEN");
    assert_eq!(a.code(OPEN, json!({"u": bob.id})).await?, "FORBIDDEN");
    let say =
        "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"still there?\"}) { id } }";
    let refused = b.send(say, json!({"c": direct})).await?;
    assert_eq!(refused.codes(), vec!["FORBIDDEN"], "{}", refused.body);
    let refused = a.send(say, json!({"c": direct})).await?;
    assert_eq!(refused.codes(), vec!["FORBIDDEN"], "{}", refused.body);
    let history = a
        .ok(
            "query($c: ID!) { messages(chatId: $c) { nodes { content senderBlocked } } }",
            json!({"c": direct}),
        )
        .await?;
    assert_eq!(
        history["messages"]["nodes"],
        json!([{"content": "hi alice", "senderBlocked": true}])
    );

    // Blocking oneself or nobody is refused.
    assert_eq!(
        a.code(BLOCK, json!({"u": alice.id})).await?,
        "BAD_USER_INPUT"
    );
    let nobody = chatql::vocabulary::ids::UserId(9_999).to_global();
    assert_eq!(a.code(BLOCK, json!({"u": nobody})).await?, "NOT_FOUND");

    // Unblocked, they talk again; unblocking twice changes nothing.
    let data = a.ok(UNBLOCK, json!({"u": bob.id})).await?;
    assert_eq!(
        data["unblockUser"],
        json!({"username": "bob", "blockedByMe": false})
    );
    a.ok(UNBLOCK, json!({"u": bob.id})).await?;
    assert_eq!(
        strings_at(
            &a.ok(BLOCKED, json!({})).await?,
            "/blockedUsers",
            "username"
        ),
        ["carol"]
    );
    b.ok(OPEN, json!({"u": alice.id})).await?;
    b.ok(say, json!({"c": direct})).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_shared_group_a_blocked_senders_messages_are_flagged_and_silent() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &carol, &[&alice, &bob]).await?;
    let a = server.client(&alice);
    a.ok(BLOCK, json!({"u": bob.id})).await?;

    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe(
        "1",
        "subscription { myEvents { __typename
          ... on InboxMessage { message { content senderBlocked } notify mentionsMe }
        } }",
        json!({}),
    )
    .await?;
    ws.until_live("1", async |m| {
        send(&server, &carol, &chat, &m).await.map(drop)
    })
    .await?;

    // Bob still sends to the group, but his message does not alert alice, nor mention her.
    let sent = server
        .client(&bob)
        .ok(
            "mutation($c: ID!, $m: [ID!]) { sendMessage(input: {chatId: $c, content: \"@alice @carol look\", mentions: $m}) { mentions { username } } }",
            json!({"c": chat, "m": [alice.id]}),
        )
        .await?;
    assert_eq!(
        sent["sendMessage"]["mentions"],
        json!([{"username": "carol"}])
    );
    assert_eq!(
        ws.next("1").await?["myEvents"],
        json!({"__typename": "InboxMessage",
               "message": {"content": "@alice @carol look", "senderBlocked": true},
               "notify": false, "mentionsMe": false})
    );
    // Carol's messages alert as before.
    send(&server, &carol, &chat, "lunch").await?;
    let event = ws.next("1").await?;
    assert_eq!(event["myEvents"]["notify"], true);
    assert_eq!(event["myEvents"]["message"]["senderBlocked"], false);

    // Carol, who blocked no one, sees bob's message unflagged.
    let page = server
        .client(&carol)
        .ok(
            "query($c: ID!) { messages(chatId: $c, last: 2) { nodes { senderBlocked } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(
        page["messages"]["nodes"],
        json!([{"senderBlocked": false}, {"senderBlocked": false}])
    );
    let mentions = a
        .ok(
            "query($c: ID!) { chat(id: $c) { unreadMentionCount } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(mentions["chat"]["unreadMentionCount"], 0);
    Ok(())
}
