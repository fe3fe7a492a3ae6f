//! Pinned messages: managers pin and unpin, members see them newest first, events go
//! live, a retraction unpins; either member of a direct chat may pin.

use super::*;
use crate::common::ws::WsClient;

const PIN: &str =
    "mutation($m: ID!) { pinMessage(id: $m) { pinned pinnedAt pinnedBy { username } } }";
const UNPIN: &str =
    "mutation($m: ID!) { unpinMessage(id: $m) { pinned pinnedAt pinnedBy { username } } }";
const PINNED: &str =
    "query($c: ID!) { chat(id: $c) { pinnedMessages { content pinnedBy { username } } } }";

#[tokio::test(flavor = "multi_thread")]
async fn managers_pin_and_unpin_and_members_see_the_pins() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol, mallory) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
        server.user("mallory").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let (a, b, c) = (
        server.client(&alice),
        server.client(&bob),
        server.client(&carol),
    );
    a.ok(
        "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: ADMIN) { role } }",
        json!({"c": chat, "u": bob.id}),
    )
    .await?;
    let first = send(&server, &carol, &chat, "rules").await?;
    let second = send(&server, &carol, &chat, "agenda").await?;

    // A plain member may not pin, even their own message; an outsider finds nothing.
    assert_eq!(c.code(PIN, json!({"m": first})).await?, "FORBIDDEN");
    assert_eq!(
        server
            .client(&mallory)
            .code(PIN, json!({"m": first}))
            .await?,
        "NOT_FOUND"
    );
    assert_eq!(
        strings_at(
            &c.ok(PINNED, json!({"c": chat})).await?,
            "/chat/pinnedMessages",
            "content"
        ),
        Vec::<String>::new()
    );

    // The owner and an admin pin; pinning again changes nothing.
    let data = a.ok(PIN, json!({"m": first})).await?;
    assert_eq!(data["pinMessage"]["pinned"], true);
    assert!(data["pinMessage"]["pinnedAt"].is_string());
    assert_eq!(data["pinMessage"]["pinnedBy"]["username"], "alice");
    let again = b.ok(PIN, json!({"m": first})).await?;
    assert_eq!(again["pinMessage"], data["pinMessage"]);
    b.ok(PIN, json!({"m": second})).await?;

    // Every member sees them, newest pin first.
    let seen = c.ok(PINNED, json!({"c": chat})).await?;
    assert_eq!(
        strings_at(&seen, "/chat/pinnedMessages", "content"),
        ["agenda", "rules"]
    );
    assert_eq!(
        seen["chat"]["pinnedMessages"][0]["pinnedBy"]["username"],
        "bob"
    );

    // A member may not unpin; a manager may, and unpinning twice changes nothing.
    assert_eq!(c.code(UNPIN, json!({"m": second})).await?, "FORBIDDEN");
    let data = a.ok(UNPIN, json!({"m": second})).await?;
    assert_eq!(
        data["unpinMessage"],
        json!({"pinned": false, "pinnedAt": null, "pinnedBy": null})
    );
    a.ok(UNPIN, json!({"m": second})).await?;
    assert_eq!(
        strings_at(
            &c.ok(PINNED, json!({"c": chat})).await?,
            "/chat/pinnedMessages",
            "content"
        ),
        ["rules"]
    );

    // Retracting a pinned message unpins it; a retracted message cannot be pinned.
    c.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": first}),
    )
    .await?;
    assert_eq!(
        strings_at(
            &c.ok(PINNED, json!({"c": chat})).await?,
            "/chat/pinnedMessages",
            "content"
        ),
        Vec::<String>::new()
    );
    assert_eq!(a.code(PIN, json!({"m": first})).await?, "CONFLICT");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn either_member_of_a_direct_chat_pins_and_pins_are_live() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let data = server
        .client(&alice)
        .ok(
            "mutation($u: ID!) { openDirectChat(userId: $u) { id } }",
            json!({"u": bob.id}),
        )
        .await?;
    let chat = str_at(&data, "/openDirectChat/id")?;
    let message = send(&server, &alice, &chat, "address: 1 Main St").await?;

    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe(
        "1",
        "subscription($c: ID!) { chatEvents(chatId: $c) {
          __typename
          ... on MessageAdded { message { content } }
          ... on MessagePinned { messageId pinnedBy { username } message { content pinned } }
          ... on MessageUnpinned { messageId unpinnedBy { username } }
        } }",
        json!({"c": chat}),
    )
    .await?;
    ws.until_live("1", async |m| {
        send(&server, &bob, &chat, &m).await.map(drop)
    })
    .await?;

    let b = server.client(&bob);
    b.ok(PIN, json!({"m": message})).await?;
    assert_eq!(
        ws.next("1").await?["chatEvents"],
        json!({"__typename": "MessagePinned", "messageId": message,
               "pinnedBy": {"username": "bob"},
               "message": {"content": "address: 1 Main St", "pinned": true}})
    );
    // Pinning again publishes nothing; the unpin is the next event.
    b.ok(PIN, json!({"m": message})).await?;
    server
        .client(&alice)
        .ok(UNPIN, json!({"m": message}))
        .await?;
    assert_eq!(
        ws.next("1").await?["chatEvents"],
        json!({"__typename": "MessageUnpinned", "messageId": message,
               "unpinnedBy": {"username": "alice"}})
    );

    // A retraction of a pinned message unpins it, by its sender, live.
    b.ok(PIN, json!({"m": message})).await?;
    assert_eq!(
        ws.next("1").await?["chatEvents"]["__typename"],
        "MessagePinned"
    );
    server
        .client(&alice)
        .ok(
            "mutation($m: ID!) { retractMessage(id: $m) { id } }",
            json!({"m": message}),
        )
        .await?;
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let event = ws.next("1").await?;
        kinds.push(
            event["chatEvents"]["__typename"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
        if event["chatEvents"]["__typename"] == "MessageUnpinned" {
            assert_eq!(event["chatEvents"]["unpinnedBy"]["username"], "alice");
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["MessageRetracted", "MessageUnpinned"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_holds_at_most_fifty_pins() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let a = server.client(&alice);
    for n in 0..49 {
        let message = send(&server, &alice, &chat, &format!("note {n}")).await?;
        a.ok(PIN, json!({"m": message})).await?;
    }
    // Two pins at once for the last place: one gets it, the other is refused.
    let (x, y) = (
        send(&server, &alice, &chat, "x").await?,
        send(&server, &alice, &chat, "y").await?,
    );
    let (px, py) = tokio::join!(a.send(PIN, json!({"m": x})), a.send(PIN, json!({"m": y})));
    let mut codes: Vec<Vec<String>> = vec![px?.codes(), py?.codes()];
    codes.sort();
    assert_eq!(codes, vec![vec![], vec!["LIMIT_EXCEEDED".to_owned()]]);
    let one_more = send(&server, &alice, &chat, "one more").await?;
    let refused = a.send(PIN, json!({"m": one_more})).await?;
    assert_eq!(refused.codes(), vec!["LIMIT_EXCEEDED"], "{}", refused.body);
    let seen = a.ok(PINNED, json!({"c": chat})).await?;
    let pinned = strings_at(&seen, "/chat/pinnedMessages", "content");
    assert_eq!(pinned.len(), 50);
    assert!(pinned[0] == "x" || pinned[0] == "y", "{pinned:?}");
    assert_eq!(pinned[1], "note 48");
    assert!(!pinned.iter().any(|c| c == "one more"));
    Ok(())
}
