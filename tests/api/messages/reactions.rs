//! Reactions: any one emoji per user per message, normalized, grouped with counts and the
//! first users; idempotent and exact under concurrent toggles; members only; live.

use super::*;
use crate::common::ws::WsClient;

const REACTIONS: &str = "query($m: ID!) { message(id: $m) {
  reactions { emoji count reactedByMe users { username } }
} }";
const ADD: &str = "mutation($m: ID!, $e: String!) { addReaction(messageId: $m, emoji: $e) {
  reactions { emoji count reactedByMe }
} }";
const REMOVE: &str = "mutation($m: ID!, $e: String!) { removeReaction(messageId: $m, emoji: $e) {
  reactions { emoji count reactedByMe }
} }";

async fn react(client: &Client, message: &str, emoji: &str) -> TestResult<Value> {
    client.ok(ADD, json!({"m": message, "e": emoji})).await
}

#[tokio::test(flavor = "multi_thread")]
async fn reactions_group_per_emoji_with_counts_users_and_the_viewers_own() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let message = send(&server, &bob, &chat, "lunch?").await?;
    let (a, b, c) = (
        server.client(&alice),
        server.client(&bob),
        server.client(&carol),
    );

    // "❤" (no variation selector) and "❤️" are one emoji; a shortcode names one too.
    react(&a, &message, "❤").await?;
    react(&b, &message, "❤️").await?;
    let data = react(&c, &message, ":thumbsup:").await?;
    assert_eq!(
        data["addReaction"]["reactions"],
        json!([
            {"emoji": "❤️", "count": 2, "reactedByMe": false},
            {"emoji": "👍", "count": 1, "reactedByMe": true}
        ])
    );
    // Adding it again changes nothing.
    let again = react(&a, &message, "❤️").await?;
    assert_eq!(again["addReaction"]["reactions"][0]["count"], 2);

    // Each viewer sees their own reactedByMe; users in the order they reacted.
    let seen_by_alice = a.ok(REACTIONS, json!({"m": message})).await?;
    assert_eq!(
        seen_by_alice["message"]["reactions"],
        json!([
            {"emoji": "❤️", "count": 2, "reactedByMe": true,
             "users": [{"username": "alice"}, {"username": "bob"}]},
            {"emoji": "👍", "count": 1, "reactedByMe": false,
             "users": [{"username": "carol"}]}
        ])
    );
    let seen_by_carol = c.ok(REACTIONS, json!({"m": message})).await?;
    assert_eq!(
        seen_by_carol["message"]["reactions"][0]["reactedByMe"],
        false
    );
    assert_eq!(
        seen_by_carol["message"]["reactions"][1]["reactedByMe"],
        true
    );

    // Removing takes only the caller's; removing what is not there changes nothing.
    let data = a.ok(REMOVE, json!({"m": message, "e": "❤"})).await?;
    assert_eq!(
        data["removeReaction"]["reactions"],
        json!([
            {"emoji": "❤️", "count": 1, "reactedByMe": false},
            {"emoji": "👍", "count": 1, "reactedByMe": false}
        ])
    );
    a.ok(REMOVE, json!({"m": message, "e": "❤"})).await?;
    let data = c.ok(REMOVE, json!({"m": message, "e": "👍"})).await?;
    assert_eq!(
        data["removeReaction"]["reactions"],
        json!([{"emoji": "❤️", "count": 1, "reactedByMe": false}])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reactions_refuse_what_is_not_one_emoji_outsiders_and_too_many() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, mallory) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("mallory").await?,
    );
    let chat = group(&server, &alice, &[&bob]).await?;
    let message = send(&server, &bob, &chat, "hi").await?;
    let a = server.client(&alice);

    for bad in [
        "",
        "a",
        "👍👍",
        "hello",
        ":no_such_shortcode:",
        &"👍".repeat(40),
    ] {
        assert_eq!(
            a.code(ADD, json!({"m": message, "e": bad})).await?,
            "BAD_USER_INPUT",
            "{bad:?}"
        );
    }
    // A non-member is told the message does not exist, adding and removing alike.
    let m = server.client(&mallory);
    assert_eq!(
        m.code(ADD, json!({"m": message, "e": "👍"})).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        m.code(REMOVE, json!({"m": message, "e": "👍"})).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        a.ok(REACTIONS, json!({"m": message})).await?["message"]["reactions"],
        json!([])
    );

    // One user has at most 20 different emoji on a message; the 21st is refused and not kept.
    let emoji = [
        "😀", "😃", "😄", "😁", "😆", "😅", "😂", "🤣", "😊", "😇", "🙂", "🙃", "😉", "😌", "😍",
        "🥰", "😘", "😗", "😙", "😚", "😋",
    ];
    for e in &emoji[..20] {
        react(&a, &message, e).await?;
    }
    let refused = a.send(ADD, json!({"m": message, "e": emoji[20]})).await?;
    assert_eq!(refused.codes(), vec!["LIMIT_EXCEEDED"], "{}", refused.body);
    let groups = a.ok(REACTIONS, json!({"m": message})).await?;
    let groups = groups["message"]["reactions"]
        .as_array()
        .ok_or("no reactions")?;
    assert_eq!(groups.len(), 20);
    assert!(groups.iter().all(|g| g["emoji"] != emoji[20]));
    // Others still react, and an emoji already there still counts.
    let data = react(&server.client(&bob), &message, emoji[0]).await?;
    assert_eq!(data["addReaction"]["reactions"][0]["count"], 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_toggles_leave_exact_counts() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let message = send(&server, &bob, &chat, "vote").await?;
    let (a, b) = (server.client(&alice), server.client(&bob));

    for _ in 0..5 {
        // Two users at once, and the same user twice at once: both of each pair succeed.
        let (x, y, z) = tokio::join!(
            a.send(ADD, json!({"m": message, "e": "🎉"})),
            b.send(ADD, json!({"m": message, "e": "🎉"})),
            a.send(ADD, json!({"m": message, "e": "🎉"})),
        );
        for answer in [x?, y?, z?] {
            assert!(answer.errors().is_empty(), "{}", answer.body);
        }
        let groups = a.ok(REACTIONS, json!({"m": message})).await?;
        let group = &groups["message"]["reactions"][0];
        assert_eq!(
            groups["message"]["reactions"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(group["count"], 2, "{groups}");
        assert_eq!(group["reactedByMe"], true);
        // The order of two simultaneous first reactions is either.
        let users = group["users"].as_array().ok_or("no users")?;
        let mut names: Vec<&str> = users
            .iter()
            .filter_map(|u| u["username"].as_str())
            .collect();
        names.sort();
        assert_eq!(names, ["alice", "bob"]);

        let (x, y, z) = tokio::join!(
            a.send(REMOVE, json!({"m": message, "e": "🎉"})),
            a.send(REMOVE, json!({"m": message, "e": "🎉"})),
            b.send(REMOVE, json!({"m": message, "e": "🎉"})),
        );
        for answer in [x?, y?, z?] {
            assert!(answer.errors().is_empty(), "{}", answer.body);
        }
        let groups = a.ok(REACTIONS, json!({"m": message})).await?;
        assert_eq!(groups["message"]["reactions"], json!([]));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reactions_are_live_and_leave_with_a_retraction() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let message = send(&server, &bob, &chat, "ship it").await?;
    let mut ws = WsClient::user(&server, &alice).await?;
    ws.subscribe(
        "1",
        "subscription($c: ID!) { chatEvents(chatId: $c) {
          __typename
          ... on MessageAdded { message { content } }
          ... on ReactionChanged { messageId emoji added user { username }
                                   message { reactions { emoji count } } }
          ... on MessageRetracted { message { retracted reactions { emoji } } }
        } }",
        json!({"c": chat}),
    )
    .await?;
    ws.until_live("1", async |m| {
        send(&server, &bob, &chat, &m).await.map(drop)
    })
    .await?;

    let b = server.client(&bob);
    react(&b, &message, "🚀").await?;
    let event = ws.next("1").await?;
    assert_eq!(
        event["chatEvents"],
        json!({"__typename": "ReactionChanged", "messageId": message, "emoji": "🚀",
               "added": true, "user": {"username": "bob"},
               "message": {"reactions": [{"emoji": "🚀", "count": 1}]}})
    );
    // Adding it again changes nothing, so nothing is published.
    react(&b, &message, "🚀").await?;
    b.ok(REMOVE, json!({"m": message, "e": "🚀"})).await?;
    let event = ws.next("1").await?;
    assert_eq!(event["chatEvents"]["added"], false);
    assert_eq!(event["chatEvents"]["message"]["reactions"], json!([]));

    react(&server.client(&alice), &message, "👀").await?;
    assert_eq!(ws.next("1").await?["chatEvents"]["added"], true);
    b.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": message}),
    )
    .await?;
    let event = ws.next("1").await?;
    assert_eq!(
        event["chatEvents"],
        json!({"__typename": "MessageRetracted", "message": {"retracted": true, "reactions": []}})
    );
    // A retracted message takes no new reactions.
    assert_eq!(
        server
            .client(&alice)
            .code(ADD, json!({"m": message, "e": "👍"}))
            .await?,
        "CONFLICT"
    );
    Ok(())
}
