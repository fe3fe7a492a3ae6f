//! Revocation: a deleted user's token, a validly signed token for a user that never existed,
//! and tokens revoked with `revokeTokens` are refused everywhere (UNAUTHENTICATED over HTTP,
//! 4403 on the socket), open sockets holding them close, and the chats a deleted user was in
//! hear that they left.

use super::*;
use crate::common::ws::WsClient;

const REVOKE: &str = "mutation($id: ID!) { revokeTokens(userId: $id) }";
const FEED: &str = "subscription($c: ID!) { chatEvents(chatId: $c) {
  __typename
  ... on MessageAdded { message { content } }
  ... on MemberLeft { userId user { username } }
  ... on MemberUpdated { userId role }
} }";

/// Every query a user could make with the token, each asserted UNAUTHENTICATED.
async fn refused_everywhere(client: &Client, user_id: &str, chat: Option<&str>) -> TestResult {
    let mut operations = vec![
        (ME.to_owned(), json!({})),
        ("{ users { nodes { id } } }".to_owned(), json!({})),
        (USER_BY_ID.to_owned(), json!({ "id": user_id })),
        (
            "query($id: ID!) { node(id: $id) { id } }".to_owned(),
            json!({ "id": user_id }),
        ),
        ("{ chats { nodes { id } } }".to_owned(), json!({})),
        (
            "mutation { createChat(input: {kind: GROUP, name: \"ghost\"}) { id } }".to_owned(),
            json!({}),
        ),
    ];
    if let Some(chat) = chat {
        operations.push((
            "query($c: ID!) { chat(id: $c) { id } }".to_owned(),
            json!({ "c": chat }),
        ));
        operations.push((
            "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"boo\"}) { id } }"
                .to_owned(),
            json!({ "c": chat }),
        ));
    }
    for (query, variables) in operations {
        let answer = client.send(&query, variables).await?;
        assert_eq!(
            answer.codes(),
            ["UNAUTHENTICATED"],
            "{query}: {:?}",
            answer.errors()
        );
        assert_eq!(answer.data(), &Value::Null, "{query}: nothing is answered");
    }
    Ok(())
}

/// A fresh socket with `token` is refused with 4403 at `connection_init`.
async fn socket_refused(server: &TestServer, token: &str) -> TestResult {
    let mut ws = WsClient::connect(server, "graphql-transport-ws").await?;
    ws.send(
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}),
    )
    .await?;
    assert_eq!(ws.closed().await?.code, 4403);
    Ok(())
}

/// A live chat feed of `user` on `chat`, proven live with a probe message from `sender`.
async fn live_feed(
    server: &TestServer,
    user: &TestUser,
    sender: &TestUser,
    chat: &str,
) -> TestResult<WsClient> {
    let mut ws = WsClient::user(server, user).await?;
    ws.subscribe("feed", FEED, json!({ "c": chat })).await?;
    ws.until_live("feed", async |m| {
        send(server, sender, chat, &m).await.map(drop)
    })
    .await?;
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_user_is_refused_everywhere_and_their_chats_hear_they_left() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let dave = server.user("dave").await?;
    // Alice is the group's only OWNER; Carol joined before Dave and both are MEMBERs, then
    // Dave is made ADMIN: the ADMIN takes over, not the longest-standing member.
    let chat = group(&server, &alice, &[&bob, &carol, &dave]).await?;
    server
        .client(&alice)
        .ok(
            "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: ADMIN) { role } }",
            json!({ "c": chat, "u": dave.id }),
        )
        .await?;
    let mut alices_feed = live_feed(&server, &alice, &bob, &chat).await?;
    let mut bobs_feed = live_feed(&server, &bob, &alice, &chat).await?;
    // Alice's feed also saw Bob's feed's probes; Bob's feed is at its newest probe.

    server
        .admin()
        .ok(DELETE_USER, json!({ "id": alice.id }))
        .await?;

    // Her open socket closes with 4403, whatever it was still to deliver.
    let closed = alices_feed.closed().await?;
    assert_eq!(closed.code, 4403, "{}", closed.reason);
    // The others hear the hand-over, then that she left (her user is gone: null).
    let updated = bobs_feed.next("feed").await?;
    assert_eq!(
        updated["chatEvents"],
        json!({"__typename": "MemberUpdated", "userId": dave.id, "role": "OWNER"})
    );
    let left = bobs_feed.next("feed").await?;
    assert_eq!(
        left["chatEvents"],
        json!({"__typename": "MemberLeft", "userId": alice.id, "user": null})
    );
    // Dave manages the group now.
    let data = server
        .client(&dave)
        .ok(
            "mutation($c: ID!) { updateChat(id: $c, input: {name: \"ours\"}) { name } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(data["updateChat"]["name"], "ours");

    // Her token answers nothing, over HTTP or a new socket.
    refused_everywhere(&server.client(&alice), &alice.id, Some(&chat)).await?;
    socket_refused(&server, &alice.token).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_token_for_a_user_that_never_existed_is_refused_everywhere() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    // A real user id, far past any user: validly signed with the server's secret.
    let ghost_id = global_id("User", key_of(&alice.id)? + 1_000_000);
    let now = chrono::Utc::now().timestamp();
    let token = craft_token(JWT_SECRET, &ghost_id, now, now + 3600)?;
    let ghost = server.client(&alice).with_token(&token);
    refused_everywhere(&ghost, &ghost_id, Some(&chat)).await?;
    socket_refused(&server, &token).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_tokens_stop_working_at_once_and_new_ones_work() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut bobs_feed = live_feed(&server, &bob, &alice, &chat).await?;

    // Only the admin key revokes.
    assert_eq!(
        server
            .client(&bob)
            .code(REVOKE, json!({ "id": bob.id }))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .anonymous()
            .code(REVOKE, json!({ "id": bob.id }))
            .await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        server
            .admin()
            .code(REVOKE, json!({ "id": "bogus" }))
            .await?,
        "BAD_USER_INPUT"
    );

    let data = server.admin().ok(REVOKE, json!({ "id": bob.id })).await?;
    assert_eq!(data["revokeTokens"], true);
    let closed = bobs_feed.closed().await?;
    assert_eq!(closed.code, 4403, "{}", closed.reason);
    refused_everywhere(&server.client(&bob), &bob.id, Some(&chat)).await?;
    socket_refused(&server, &bob.token).await?;
    // Alice's tokens were not touched.
    server.client(&alice).ok(ME, json!({})).await?;

    // A token issued afterwards works, over HTTP and on the socket; the user is still a
    // member of their chats.
    let data = server
        .admin()
        .ok(ISSUE_TOKEN, json!({ "id": bob.id }))
        .await?;
    let fresh = TestUser {
        token: str_at(&data, "/issueToken")?,
        ..bob.clone()
    };
    let me = server.client(&fresh).ok(ME, json!({})).await?;
    assert_eq!(me["me"]["username"], "bob");
    live_feed(&server, &fresh, &alice, &chat).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "PostgreSQL only: instances share events through it"]
async fn a_revocation_on_one_instance_closes_sockets_on_another() -> TestResult {
    require_postgres()?;
    let server = TestServer::start().await?;
    let other = server.sibling(&[]).await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    // Bob's token is known (cached) on the other instance before the revocation.
    other.client(&bob).ok(ME, json!({})).await?;
    let mut feed = live_feed(&other, &bob, &alice, &chat).await?;

    server.admin().ok(REVOKE, json!({ "id": bob.id })).await?;
    let closed = feed.closed().await?;
    assert_eq!(closed.code, 4403, "{}", closed.reason);
    refused_everywhere(&other.client(&bob), &bob.id, Some(&chat)).await?;
    Ok(())
}

/// The key of a global id (base64url of `<Type>:<key>`).
fn key_of(id: &str) -> TestResult<i64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id)?;
    let text = String::from_utf8(bytes)?;
    let (_, key) = text.split_once(':').ok_or("not a global id")?;
    Ok(key.parse()?)
}

fn global_id(kind: &str, key: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{key}"))
}
