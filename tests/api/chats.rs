//! Chats and membership: creating chats, who sees them, direct chats (also under
//! concurrency), settings, deletion and clearing, the chat list's order, filters and pages,
//! members and roles, per-member pinning and muting.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

const CREATE_CHAT: &str = "mutation($input: CreateChatInput!) {
  createChat(input: $input) {
    id kind name description category avatarUrl metadata memberCount
    createdBy { id }
    myMembership { role }
  }
}";
const CHAT: &str = "query($c: ID!) { chat(id: $c) { id kind name memberCount } }";
const OPEN_DIRECT: &str =
    "mutation($u: ID!) { openDirectChat(userId: $u) { id kind memberCount } }";
const UPDATE_CHAT: &str = "mutation($c: ID!, $input: UpdateChatInput!) {
  updateChat(id: $c, input: $input) { id name description category avatarUrl metadata }
}";
const DELETE_CHAT: &str = "mutation($c: ID!) { deleteChat(id: $c) }";
const CLEAR_CHAT: &str = "mutation($c: ID!) { clearChat(id: $c) }";
const CHATS: &str = "query($first: Int, $after: String, $filter: ChatFilter) {
  chats(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id name kind pinned lastActivityAt unreadCount } }
    pageInfo { hasNextPage endCursor }
  }
}";
const MEMBERS: &str = "query($c: ID!, $first: Int, $after: String) {
  chat(id: $c) {
    members(first: $first, after: $after) {
      edges { cursor node { role user { id username } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";
const ADD_MEMBERS: &str = "mutation($c: ID!, $u: [ID!]!, $r: MemberRole) {
  addMembers(chatId: $c, userIds: $u, role: $r) { role user { id username } }
}";
const REMOVE_MEMBER: &str = "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }";
const LEAVE: &str = "mutation($c: ID!) { leaveChat(chatId: $c) }";
const SET_ROLE: &str = "mutation($c: ID!, $u: ID!, $r: MemberRole!) {
  setMemberRole(chatId: $c, userId: $u, role: $r) { role user { username } }
}";
const MESSAGES: &str = "query($c: ID!) { messages(chatId: $c) { nodes { id content } } }";
const MESSAGE: &str = "query($m: ID!) { message(id: $m) { id content } }";

/// The chat ids of a `chats` page, in order.
fn chat_ids(data: &Value) -> Vec<String> {
    data["chats"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The caller's whole chat list (one page of up to 100), ids in order.
async fn my_chats(client: &Client, filter: Value) -> TestResult<Vec<String>> {
    let data = client
        .ok(CHATS, json!({ "first": 100, "filter": filter }))
        .await?;
    Ok(chat_ids(&data))
}

/// `(username, role)` of every member of a chat, in list order, read as `viewer`.
async fn roles(client: &Client, chat: &str) -> TestResult<Vec<(String, String)>> {
    let data = client
        .ok(MEMBERS, json!({ "c": chat, "first": 100 }))
        .await?;
    Ok(data["chat"]["members"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    (
                        e["node"]["user"]["username"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        e["node"]["role"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Owned `(username, role)` pairs for comparisons.
fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(u, r)| ((*u).to_owned(), (*r).to_owned()))
        .collect()
}

/// The member count of a chat as `client` sees it.
async fn member_count(client: &Client, chat: &str) -> TestResult<i64> {
    int_at(
        &client.ok(CHAT, json!({ "c": chat })).await?,
        "/chat/memberCount",
    )
}

/// A group chat named `name` owned by `owner`; returns its id.
async fn named_group(
    server: &TestServer,
    owner: &TestUser,
    name: &str,
    extra: Value,
) -> TestResult<String> {
    let mut input = json!({ "kind": "GROUP", "name": name });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let data = server
        .client(owner)
        .ok(CREATE_CHAT, json!({ "input": input }))
        .await?;
    str_at(&data, "/createChat/id")
}

/// The id of a chat that existed once and was deleted: a well-formed id of no chat.
async fn deleted_chat_id(server: &TestServer, owner: &TestUser) -> TestResult<String> {
    let chat = group(server, owner, &[]).await?;
    server
        .client(owner)
        .ok(DELETE_CHAT, json!({ "c": chat }))
        .await?;
    Ok(chat)
}

/// The id of a user that existed once and was deleted.
async fn deleted_user_id(server: &TestServer, username: &str) -> TestResult<String> {
    let gone = server.user(username).await?;
    server
        .admin()
        .ok(
            "mutation($id: ID!) { deleteUser(id: $id) }",
            json!({ "id": gone.id }),
        )
        .await?;
    Ok(gone.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_creator_owns_a_new_group_and_the_others_are_members() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let as_alice = server.client(&alice);

    // Duplicates and the creator herself in `memberIds` are harmless.
    let data = as_alice
        .ok(
            CREATE_CHAT,
            json!({ "input": {
                "kind": "GROUP",
                "name": "Launch",
                "description": "Ship it",
                "category": "work",
                "avatarUrl": "https://example.com/l.png",
                "metadata": { "color": "teal" },
                "memberIds": [bob.id, carol.id, bob.id, alice.id],
            }}),
        )
        .await?;
    let chat = str_at(&data, "/createChat/id")?;
    assert_eq!(
        data["createChat"],
        json!({
            "id": chat,
            "kind": "GROUP",
            "name": "Launch",
            "description": "Ship it",
            "category": "work",
            "avatarUrl": "https://example.com/l.png",
            "metadata": { "color": "teal" },
            "memberCount": 3,
            "createdBy": { "id": alice.id },
            "myMembership": { "role": "OWNER" },
        })
    );
    assert_eq!(
        roles(&as_alice, &chat).await?,
        pairs(&[("alice", "OWNER"), ("bob", "MEMBER"), ("carol", "MEMBER")])
    );
    // Bob sees the chat, as a MEMBER, in his list.
    let as_bob = server.client(&bob);
    let data = as_bob
        .ok(
            "query($c: ID!) { chat(id: $c) { name myMembership { role user { id } } } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(
        data["chat"],
        json!({ "name": "Launch", "myMembership": { "role": "MEMBER", "user": { "id": bob.id } } })
    );
    assert_eq!(my_chats(&as_bob, json!({})).await?, vec![chat.clone()]);

    // A chat with nobody else, and an assistant chat with a bot.
    let data = as_alice
        .ok(CREATE_CHAT, json!({ "input": { "kind": "GROUP" } }))
        .await?;
    assert_eq!(data["createChat"]["memberCount"], json!(1));
    assert_eq!(data["createChat"]["name"], Value::Null);
    let bot = server.bot("helper").await?;
    let data = as_alice
        .ok(
            CREATE_CHAT,
            json!({ "input": { "kind": "ASSISTANT", "memberIds": [bot.id] } }),
        )
        .await?;
    assert_eq!(data["createChat"]["kind"], json!("ASSISTANT"));
    assert_eq!(data["createChat"]["memberCount"], json!(2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_with_an_unknown_or_malformed_member_is_not_created() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let as_alice = server.client(&alice);
    let ghost = deleted_user_id(&server, "ghost").await?;

    let with_members = |ids: Value| json!({ "input": { "kind": "GROUP", "memberIds": ids } });
    assert_eq!(
        as_alice
            .code(CREATE_CHAT, with_members(json!([bob.id, ghost])))
            .await?,
        "NOT_FOUND"
    );
    assert_eq!(
        as_alice
            .code(CREATE_CHAT, with_members(json!([bob.id, "not-an-id"])))
            .await?,
        "BAD_USER_INPUT"
    );
    let chat = group(&server, &alice, &[]).await?;
    // A chat id is not a user id.
    assert_eq!(
        as_alice
            .code(CREATE_CHAT, with_members(json!([chat])))
            .await?,
        "BAD_USER_INPUT"
    );
    // Only the one good chat exists; Bob was added to nothing.
    assert_eq!(my_chats(&as_alice, json!({})).await?, [chat]);
    assert_eq!(
        my_chats(&server.client(&bob), json!({})).await?,
        Vec::<String>::new()
    );

    // Limits, and who may create chats at all.
    assert_eq!(
        as_alice
            .code(
                CREATE_CHAT,
                json!({ "input": { "kind": "GROUP", "name": "n".repeat(201) } })
            )
            .await?,
        "BAD_USER_INPUT"
    );
    let input = json!({ "input": { "kind": "GROUP" } });
    assert_eq!(
        server.anonymous().code(CREATE_CHAT, input.clone()).await?,
        "UNAUTHENTICATED"
    );
    // The admin key acts as no user, so it cannot own a chat.
    assert_eq!(server.admin().code(CREATE_CHAT, input).await?, "FORBIDDEN");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_members_see_a_chat_its_messages_and_its_members() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let eve = server.user("eve").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let message = send(&server, &alice, &chat, "secret plans").await?;

    // Bob, a member, can read all of it: the checks below are about membership.
    let as_bob = server.client(&bob);
    as_bob.ok(CHAT, json!({ "c": chat })).await?;
    as_bob.ok(MESSAGES, json!({ "c": chat })).await?;
    as_bob.ok(MEMBERS, json!({ "c": chat })).await?;
    as_bob.ok(MESSAGE, json!({ "m": message })).await?;

    let as_eve = server.client(&eve);
    assert_eq!(as_eve.code(CHAT, json!({ "c": chat })).await?, "FORBIDDEN");
    assert_eq!(
        as_eve.code(MESSAGES, json!({ "c": chat })).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_eve.code(MEMBERS, json!({ "c": chat })).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_eve.code(MESSAGE, json!({ "m": message })).await?,
        "FORBIDDEN"
    );
    let node = "query($id: ID!) { node(id: $id) { id } }";
    assert_eq!(as_eve.code(node, json!({ "id": chat })).await?, "FORBIDDEN");
    // Nor does any of it leak in the response.
    let response = as_eve
        .send(
            "query($c: ID!) { chat(id: $c) { name members { nodes { user { username } } } messages { nodes { content } } } }",
            json!({ "c": chat }),
        )
        .await?;
    assert!(!response.body.to_string().contains("secret plans"));
    assert_eq!(response.data()["chat"], Value::Null);
    // Eve's list does not show it.
    assert_eq!(my_chats(&as_eve, json!({})).await?, Vec::<String>::new());

    // A chat that does not exist is NOT_FOUND; a malformed id is the client's error.
    let gone = deleted_chat_id(&server, &alice).await?;
    assert_eq!(as_bob.code(CHAT, json!({ "c": gone })).await?, "NOT_FOUND");
    assert_eq!(
        as_bob.code(MESSAGES, json!({ "c": gone })).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        as_bob.code(CHAT, json!({ "c": "garbage" })).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        as_bob.code(CHAT, json!({ "c": bob.id })).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        server.anonymous().code(CHAT, json!({ "c": chat })).await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_chat_is_opened_once_from_either_side() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let as_alice = server.client(&alice);
    let as_bob = server.client(&bob);

    let data = as_alice.ok(OPEN_DIRECT, json!({ "u": bob.id })).await?;
    let chat = str_at(&data, "/openDirectChat/id")?;
    assert_eq!(
        data["openDirectChat"],
        json!({ "id": chat, "kind": "DIRECT", "memberCount": 2 })
    );
    let again = as_alice.ok(OPEN_DIRECT, json!({ "u": bob.id })).await?;
    assert_eq!(str_at(&again, "/openDirectChat/id")?, chat);
    let from_bob = as_bob.ok(OPEN_DIRECT, json!({ "u": alice.id })).await?;
    assert_eq!(str_at(&from_bob, "/openDirectChat/id")?, chat);
    // createChat(kind: DIRECT) with the same person is the same chat.
    let data = as_bob
        .ok(
            CREATE_CHAT,
            json!({ "input": { "kind": "DIRECT", "memberIds": [alice.id] } }),
        )
        .await?;
    assert_eq!(str_at(&data, "/createChat/id")?, chat);

    // Both are plain members of it, and each has exactly this one chat.
    assert_eq!(
        roles(&as_alice, &chat).await?,
        pairs(&[("alice", "MEMBER"), ("bob", "MEMBER")])
    );
    assert_eq!(my_chats(&as_alice, json!({})).await?, vec![chat.clone()]);
    assert_eq!(my_chats(&as_bob, json!({})).await?, vec![chat.clone()]);

    // A DIRECT chat has exactly one other member, and its members are fixed.
    let carol = server.user("carol").await?;
    assert_eq!(
        as_alice
            .code(
                CREATE_CHAT,
                json!({ "input": { "kind": "DIRECT", "memberIds": [bob.id, carol.id] } })
            )
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        as_alice
            .code(ADD_MEMBERS, json!({ "c": chat, "u": [carol.id] }))
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(member_count(&as_alice, &chat).await?, 2);

    assert_eq!(
        as_alice
            .code(REMOVE_MEMBER, json!({ "c": chat, "u": bob.id }))
            .await?,
        "BAD_USER_INPUT"
    );

    // Alice leaves it; opening it again brings her back to the same chat.
    as_alice.ok(LEAVE, json!({ "c": chat })).await?;
    assert_eq!(my_chats(&as_alice, json!({})).await?, Vec::<String>::new());
    let data = as_alice.ok(OPEN_DIRECT, json!({ "u": bob.id })).await?;
    assert_eq!(
        data["openDirectChat"],
        json!({ "id": chat, "kind": "DIRECT", "memberCount": 2 })
    );
    as_alice.ok(MESSAGES, json!({ "c": chat })).await?;
    assert_eq!(my_chats(&as_alice, json!({})).await?, vec![chat.clone()]);
    // If Bob left, Alice opening it brings him back too: her messages reach him.
    as_bob.ok(LEAVE, json!({ "c": chat })).await?;
    assert_eq!(member_count(&as_alice, &chat).await?, 1);
    as_alice.ok(OPEN_DIRECT, json!({ "u": bob.id })).await?;
    send(&server, &alice, &chat, "still there?").await?;
    let data = as_bob
        .ok(
            "query($c: ID!) { chat(id: $c) { unreadCount memberCount } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(data["chat"], json!({ "unreadCount": 1, "memberCount": 2 }));

    // Unknown and malformed users.
    let ghost = deleted_user_id(&server, "ghost").await?;
    assert_eq!(
        as_alice.code(OPEN_DIRECT, json!({ "u": ghost })).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        as_alice.code(OPEN_DIRECT, json!({ "u": "nope" })).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(my_chats(&as_alice, json!({})).await?, [chat]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_opens_of_a_direct_chat_make_exactly_one_chat() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            // Half of the calls from each side.
            let (client, other) = if i % 2 == 0 {
                (server.client(&alice), bob.id.clone())
            } else {
                (server.client(&bob), alice.id.clone())
            };
            tokio::spawn(async move { client.ok(OPEN_DIRECT, json!({ "u": other })).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(str_at(&task.await??, "/openDirectChat/id")?);
    }
    assert_eq!(ids.len(), 1, "every call returns the same chat: {ids:?}");
    let chat = ids.into_iter().next().ok_or("one id")?;

    for user in [&alice, &bob] {
        let client = server.client(user);
        assert_eq!(
            my_chats(&client, json!({ "kind": "DIRECT" })).await?,
            vec![chat.clone()]
        );
        assert_eq!(my_chats(&client, json!({})).await?, vec![chat.clone()]);
        assert_eq!(member_count(&client, &chat).await?, 2);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_and_admins_change_settings_and_members_may_not() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let chat = named_group(
        &server,
        &alice,
        "Team",
        json!({ "description": "daily", "category": "work", "metadata": { "v": 1 },
                "memberIds": [bob.id, carol.id] }),
    )
    .await?;
    let as_alice = server.client(&alice);

    let data = as_alice
        .ok(
            UPDATE_CHAT,
            json!({ "c": chat, "input": { "name": "Team A", "avatarUrl": "https://example.com/t.png" } }),
        )
        .await?;
    assert_eq!(
        data["updateChat"],
        json!({
            "id": chat, "name": "Team A", "description": "daily", "category": "work",
            "avatarUrl": "https://example.com/t.png", "metadata": { "v": 1 },
        })
    );

    // An ADMIN may change settings too.
    server
        .client(&alice)
        .ok(SET_ROLE, json!({ "c": chat, "u": bob.id, "r": "ADMIN" }))
        .await?;
    let data = server
        .client(&bob)
        .ok(
            UPDATE_CHAT,
            json!({ "c": chat, "input": { "description": "twice daily" } }),
        )
        .await?;
    assert_eq!(str_at(&data, "/updateChat/description")?, "twice daily");

    // A MEMBER may not, and nothing changes.
    let as_carol = server.client(&carol);
    assert_eq!(
        as_carol
            .code(
                UPDATE_CHAT,
                json!({ "c": chat, "input": { "name": "Carol's" } })
            )
            .await?,
        "FORBIDDEN"
    );
    let data = as_carol.ok(CHAT, json!({ "c": chat })).await?;
    assert_eq!(str_at(&data, "/chat/name")?, "Team A");

    // `null` clears a field; omitted fields stay.
    let data = as_alice
        .ok(
            UPDATE_CHAT,
            json!({ "c": chat, "input": { "description": null, "metadata": null } }),
        )
        .await?;
    assert_eq!(
        data["updateChat"],
        json!({
            "id": chat, "name": "Team A", "description": null, "category": "work",
            "avatarUrl": "https://example.com/t.png", "metadata": null,
        })
    );
    let data = as_alice
        .ok(
            "mutation($c: ID!) { updateChat(id: $c, input: {category: null}) { name category } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(
        data["updateChat"],
        json!({ "name": "Team A", "category": null })
    );

    // Limits, non-members, unknown chats.
    assert_eq!(
        as_alice
            .code(
                UPDATE_CHAT,
                json!({ "c": chat, "input": { "description": "d".repeat(2001) } })
            )
            .await?,
        "BAD_USER_INPUT"
    );
    let eve = server.user("eve").await?;
    assert_eq!(
        server
            .client(&eve)
            .code(UPDATE_CHAT, json!({ "c": chat, "input": { "name": "x" } }))
            .await?,
        "FORBIDDEN"
    );
    let gone = deleted_chat_id(&server, &alice).await?;
    assert_eq!(
        as_alice
            .code(UPDATE_CHAT, json!({ "c": gone, "input": { "name": "x" } }))
            .await?,
        "NOT_FOUND"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_chat_takes_its_messages_with_it() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let other = group(&server, &alice, &[&bob]).await?;
    let first = send(&server, &alice, &chat, "one").await?;
    let second = send(&server, &bob, &chat, "two").await?;
    let kept = send(&server, &bob, &other, "elsewhere").await?;
    server
        .client(&alice)
        .ok(SET_ROLE, json!({ "c": chat, "u": carol.id, "r": "ADMIN" }))
        .await?;

    // Only an OWNER may delete a group: not a MEMBER, not an ADMIN.
    for user in [&bob, &carol] {
        assert_eq!(
            server
                .client(user)
                .code(DELETE_CHAT, json!({ "c": chat }))
                .await?,
            "FORBIDDEN"
        );
    }
    let as_bob = server.client(&bob);
    as_bob.ok(MESSAGE, json!({ "m": first })).await?;

    let data = server
        .client(&alice)
        .ok(DELETE_CHAT, json!({ "c": chat }))
        .await?;
    assert_eq!(data["deleteChat"], json!(true));
    for message in [&first, &second] {
        assert_eq!(
            as_bob.code(MESSAGE, json!({ "m": message })).await?,
            "NOT_FOUND"
        );
    }
    for user in [&alice, &bob, &carol] {
        let client = server.client(user);
        assert_eq!(client.code(CHAT, json!({ "c": chat })).await?, "NOT_FOUND");
        assert!(!my_chats(&client, json!({})).await?.contains(&chat));
    }
    assert_eq!(
        server
            .client(&alice)
            .code(DELETE_CHAT, json!({ "c": chat }))
            .await?,
        "NOT_FOUND"
    );
    // The other chat is untouched.
    let data = as_bob.ok(MESSAGE, json!({ "m": kept })).await?;
    assert_eq!(str_at(&data, "/message/content")?, "elsewhere");
    assert_eq!(my_chats(&as_bob, json!({})).await?, [other]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clearing_a_chat_deletes_its_messages_and_keeps_the_chat() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let first = send(&server, &alice, &chat, "one").await?;
    send(&server, &bob, &chat, "two").await?;
    // A reply, so messages point at each other.
    server
        .client(&bob)
        .ok(
            "mutation($c: ID!, $p: ID!) { sendMessage(input: {chatId: $c, content: \"re: one\", parentId: $p}) { id } }",
            json!({ "c": chat, "p": first }),
        )
        .await?;
    let as_alice = server.client(&alice);
    let as_bob = server.client(&bob);

    assert_eq!(
        as_bob.code(CLEAR_CHAT, json!({ "c": chat })).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_bob.ok(MESSAGES, json!({ "c": chat })).await?["messages"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let data = as_alice.ok(CLEAR_CHAT, json!({ "c": chat })).await?;
    assert_eq!(data["clearChat"], json!(3));
    let state = "query($c: ID!) { chat(id: $c) { id name memberCount unreadCount lastMessage { id } messages { nodes { id } } } }";
    let data = as_bob.ok(state, json!({ "c": chat })).await?;
    assert_eq!(
        data["chat"],
        json!({
            "id": chat, "name": "team", "memberCount": 2, "unreadCount": 0,
            "lastMessage": null, "messages": { "nodes": [] },
        })
    );
    assert_eq!(
        as_bob.code(MESSAGE, json!({ "m": first })).await?,
        "NOT_FOUND"
    );
    // Clearing an empty chat deletes nothing.
    let data = as_alice.ok(CLEAR_CHAT, json!({ "c": chat })).await?;
    assert_eq!(data["clearChat"], json!(0));

    // The chat goes on.
    let next = send(&server, &alice, &chat, "fresh start").await?;
    let data = as_bob.ok(state, json!({ "c": chat })).await?;
    assert_eq!(str_at(&data, "/chat/lastMessage/id")?, next);
    assert_eq!(int_at(&data, "/chat/unreadCount")?, 1);
    assert_eq!(data["chat"]["messages"]["nodes"], json!([{ "id": next }]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_list_shows_pinned_chats_first_then_the_most_recent() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let a = named_group(&server, &alice, "A", json!({ "memberIds": [bob.id] })).await?;
    let b = named_group(&server, &alice, "B", json!({})).await?;
    let c = named_group(&server, &alice, "C", json!({})).await?;
    let as_alice = server.client(&alice);
    let pin =
        "mutation($c: ID!, $p: Boolean!) { setChatPinned(chatId: $c, pinned: $p) { pinned } }";

    // Newest first.
    assert_eq!(
        my_chats(&as_alice, json!({})).await?,
        [c.clone(), b.clone(), a.clone()]
    );
    // A pinned chat goes first, whatever its age.
    as_alice.ok(pin, json!({ "c": b, "p": true })).await?;
    assert_eq!(
        my_chats(&as_alice, json!({})).await?,
        [b.clone(), c.clone(), a.clone()]
    );
    // A message into the oldest chat brings it to the top of the unpinned ones.
    send(&server, &bob, &a, "bump").await?;
    assert_eq!(
        my_chats(&as_alice, json!({})).await?,
        [b.clone(), a.clone(), c.clone()]
    );
    // Unpinned, B falls back to its place by activity.
    as_alice.ok(pin, json!({ "c": b, "p": false })).await?;
    let data = as_alice.ok(CHATS, json!({})).await?;
    assert_eq!(chat_ids(&data), [a.clone(), c.clone(), b.clone()]);
    // The order is the one `lastActivityAt` says.
    let times: Vec<String> = data["chats"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["lastActivityAt"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted);
    // Pins are per user: Bob's list is not affected by Alice's pins.
    as_alice.ok(pin, json!({ "c": c, "p": true })).await?;
    assert_eq!(my_chats(&server.client(&bob), json!({})).await?, [a]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_list_pages_without_gaps_or_repeats() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(named_group(&server, &alice, &format!("chat {i}"), json!({})).await?);
    }
    let as_alice = server.client(&alice);
    // Pin one from the middle, so pages cross from pinned to unpinned.
    as_alice
        .ok(
            "mutation($c: ID!) { setChatPinned(chatId: $c, pinned: true) { pinned } }",
            json!({ "c": created[3] }),
        )
        .await?;
    let whole = my_chats(&as_alice, json!({})).await?;
    assert_eq!(whole.len(), 7);
    assert_eq!(whole[0], created[3]);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let data = as_alice
            .ok(CHATS, json!({ "first": 2, "after": after }))
            .await?;
        let page = chat_ids(&data);
        assert!(page.len() <= 2);
        seen.extend(page);
        if data["chats"]["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = Some(str_at(&data, "/chats/pageInfo/endCursor")?);
    }
    assert_eq!(seen, whole);

    assert_eq!(
        as_alice.code(CHATS, json!({ "first": 101 })).await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        as_alice.code(CHATS, json!({ "after": "garbage" })).await?,
        "BAD_USER_INPUT"
    );
    // A member-list cursor is not a chat-list cursor.
    let data = as_alice
        .ok(MEMBERS, json!({ "c": created[0], "first": 1 }))
        .await?;
    let member_cursor = str_at(&data, "/chat/members/edges/0/cursor")?;
    assert_eq!(
        as_alice
            .code(CHATS, json!({ "after": member_cursor }))
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        server.anonymous().code(CHATS, json!({})).await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_list_filters_by_kind_category_and_unread() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let bot = server.bot("helper").await?;
    let work = named_group(
        &server,
        &alice,
        "work",
        json!({ "category": "work", "memberIds": [bob.id] }),
    )
    .await?;
    let home = named_group(&server, &alice, "home", json!({ "category": "home" })).await?;
    let data = server
        .client(&alice)
        .ok(OPEN_DIRECT, json!({ "u": bob.id }))
        .await?;
    let direct = str_at(&data, "/openDirectChat/id")?;
    let data = server
        .client(&alice)
        .ok(
            CREATE_CHAT,
            json!({ "input": { "kind": "ASSISTANT", "category": "work", "memberIds": [bot.id] } }),
        )
        .await?;
    let assistant = str_at(&data, "/createChat/id")?;
    let as_alice = server.client(&alice);

    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        my_chats(&as_alice, json!({ "kind": "DIRECT" })).await?,
        vec![direct.clone()]
    );
    assert_eq!(
        sorted(my_chats(&as_alice, json!({ "kind": "GROUP" })).await?),
        sorted(vec![work.clone(), home.clone()])
    );
    assert_eq!(
        my_chats(&as_alice, json!({ "kind": "ASSISTANT" })).await?,
        vec![assistant.clone()]
    );
    assert_eq!(
        sorted(my_chats(&as_alice, json!({ "category": "work" })).await?),
        sorted(vec![work.clone(), assistant.clone()])
    );
    assert_eq!(
        my_chats(&as_alice, json!({ "category": "work", "kind": "GROUP" })).await?,
        vec![work.clone()]
    );
    assert_eq!(
        my_chats(&as_alice, json!({ "category": "nope" })).await?,
        Vec::<String>::new()
    );
    assert_eq!(my_chats(&as_alice, json!({})).await?.len(), 4);

    // Unread: only messages from others count.
    let unread = json!({ "unreadOnly": true });
    assert_eq!(
        my_chats(&as_alice, unread.clone()).await?,
        Vec::<String>::new()
    );
    send(&server, &alice, &home, "note to self").await?;
    assert_eq!(
        my_chats(&as_alice, unread.clone()).await?,
        Vec::<String>::new()
    );
    send(&server, &bob, &direct, "psst").await?;
    send(&server, &bob, &work, "standup?").await?;
    // Which of the two comes first depends on the clock's milliseconds; the order is the
    // subject of `the_chat_list_shows_pinned_chats_first_then_the_most_recent`.
    assert_eq!(
        sorted(my_chats(&as_alice, unread.clone()).await?),
        sorted(vec![work.clone(), direct.clone()])
    );
    assert_eq!(
        my_chats(&as_alice, json!({ "unreadOnly": true, "kind": "DIRECT" })).await?,
        vec![direct.clone()]
    );
    // Reading a chat takes it off the unread list.
    as_alice
        .ok(
            "mutation($c: ID!) { markRead(chatId: $c) { unreadCount } }",
            json!({ "c": work }),
        )
        .await?;
    assert_eq!(
        my_chats(&as_alice, unread.clone()).await?,
        vec![direct.clone()]
    );
    // unreadOnly: false is no filter.
    assert_eq!(
        my_chats(&as_alice, json!({ "unreadOnly": false }))
            .await?
            .len(),
        4
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_listed_in_pages() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let mut others = Vec::new();
    for i in 0..6 {
        others.push(server.user(&format!("member{i}")).await?);
    }
    let refs: Vec<&TestUser> = others.iter().collect();
    let chat = group(&server, &alice, &refs).await?;
    let as_member = server.client(&others[2]);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let data = as_member
            .ok(MEMBERS, json!({ "c": chat, "first": 3, "after": after }))
            .await?;
        let connection = &data["chat"]["members"];
        let edges = connection["edges"].as_array().cloned().unwrap_or_default();
        assert!(edges.len() <= 3);
        seen.extend(
            edges
                .iter()
                .filter_map(|e| e["node"]["user"]["username"].as_str().map(str::to_owned)),
        );
        if connection["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = Some(str_at(&data, "/chat/members/pageInfo/endCursor")?);
    }
    let mut expected = vec!["alice".to_owned()];
    expected.extend((0..6).map(|i| format!("member{i}")));
    assert_eq!(seen, expected);
    assert_eq!(member_count(&as_member, &chat).await?, 7);

    // The default page holds them all; limits and bad cursors are refused.
    let data = as_member.ok(MEMBERS, json!({ "c": chat })).await?;
    assert_eq!(
        data["chat"]["members"]["edges"].as_array().map(Vec::len),
        Some(7)
    );
    assert_eq!(
        as_member
            .code(MEMBERS, json!({ "c": chat, "first": 101 }))
            .await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        as_member
            .code(MEMBERS, json!({ "c": chat, "after": "garbage" }))
            .await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_and_admins_add_members_and_only_owners_grant_power() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let dave = server.user("dave").await?;
    let erin = server.user("erin").await?;
    let frank = server.user("frank").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    send(&server, &bob, &chat, "before carol came").await?;
    let as_alice = server.client(&alice);
    let as_bob = server.client(&bob);

    // A MEMBER may not add anyone.
    assert_eq!(
        as_bob
            .code(ADD_MEMBERS, json!({ "c": chat, "u": [carol.id] }))
            .await?,
        "FORBIDDEN"
    );
    let data = as_alice
        .ok(ADD_MEMBERS, json!({ "c": chat, "u": [carol.id] }))
        .await?;
    assert_eq!(
        data["addMembers"],
        json!([{ "role": "MEMBER", "user": { "id": carol.id, "username": "carol" } }])
    );
    // Carol is in: she sees the chat, with the history before she came counted as read.
    let data = server
        .client(&carol)
        .ok(
            "query($c: ID!) { chat(id: $c) { unreadCount messages { nodes { content } } } }",
            json!({ "c": chat }),
        )
        .await?;
    assert_eq!(
        data["chat"],
        json!({ "unreadCount": 0, "messages": { "nodes": [{ "content": "before carol came" }] } })
    );

    // Adding is idempotent: existing members keep their role and are returned as they are.
    let data = as_alice
        .ok(
            ADD_MEMBERS,
            json!({ "c": chat, "u": [carol.id, dave.id, dave.id], "r": "MODERATOR" }),
        )
        .await?;
    let mut returned: Vec<(String, String)> = data["addMembers"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    (
                        m["user"]["username"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        m["role"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    returned.sort();
    assert_eq!(
        returned,
        pairs(&[("carol", "MEMBER"), ("dave", "MODERATOR")])
    );
    assert_eq!(member_count(&as_alice, &chat).await?, 4);

    // An ADMIN may add members, but not hand out ADMIN or OWNER.
    as_alice
        .ok(SET_ROLE, json!({ "c": chat, "u": bob.id, "r": "ADMIN" }))
        .await?;
    as_bob
        .ok(ADD_MEMBERS, json!({ "c": chat, "u": [erin.id] }))
        .await?;
    for role in ["ADMIN", "OWNER"] {
        assert_eq!(
            as_bob
                .code(
                    ADD_MEMBERS,
                    json!({ "c": chat, "u": [frank.id], "r": role })
                )
                .await?,
            "FORBIDDEN"
        );
    }
    // An OWNER may.
    let data = as_alice
        .ok(
            ADD_MEMBERS,
            json!({ "c": chat, "u": [frank.id], "r": "ADMIN" }),
        )
        .await?;
    assert_eq!(data["addMembers"][0]["role"], json!("ADMIN"));

    // One unknown user fails the whole call: nobody of it is added.
    let gina = server.user("gina").await?;
    let ghost = deleted_user_id(&server, "ghost").await?;
    assert_eq!(
        as_alice
            .code(ADD_MEMBERS, json!({ "c": chat, "u": [gina.id, ghost] }))
            .await?,
        "NOT_FOUND"
    );
    assert_eq!(
        server
            .client(&gina)
            .code(CHAT, json!({ "c": chat }))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_alice
            .code(ADD_MEMBERS, json!({ "c": chat, "u": ["bogus"] }))
            .await?,
        "BAD_USER_INPUT"
    );
    // A non-member may not add people (not even themself).
    assert_eq!(
        server
            .client(&gina)
            .code(ADD_MEMBERS, json!({ "c": chat, "u": [gina.id] }))
            .await?,
        "FORBIDDEN"
    );

    assert_eq!(
        roles(&as_alice, &chat).await?,
        pairs(&[
            ("alice", "OWNER"),
            ("bob", "ADMIN"),
            ("carol", "MEMBER"),
            ("dave", "MODERATOR"),
            ("erin", "MEMBER"),
            ("frank", "ADMIN"),
        ])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_adds_of_the_same_user_all_succeed_once() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[]).await?;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = server.client(&alice);
            let vars = json!({ "c": chat, "u": [bob.id] });
            tokio::spawn(async move { client.ok(ADD_MEMBERS, vars).await })
        })
        .collect();
    for task in tasks {
        let data = task.await??;
        assert_eq!(data["addMembers"][0]["user"]["id"], json!(bob.id));
    }
    assert_eq!(member_count(&server.client(&alice), &chat).await?, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_and_admins_remove_members_within_their_rank() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let dave = server.user("dave").await?;
    let chat = group(&server, &alice, &[&bob, &carol, &dave]).await?;
    let as_alice = server.client(&alice);
    let as_bob = server.client(&bob);
    let as_carol = server.client(&carol);
    as_alice
        .ok(SET_ROLE, json!({ "c": chat, "u": bob.id, "r": "ADMIN" }))
        .await?;

    // A MEMBER may remove nobody.
    assert_eq!(
        as_carol
            .code(REMOVE_MEMBER, json!({ "c": chat, "u": dave.id }))
            .await?,
        "FORBIDDEN"
    );
    // An ADMIN removes a MEMBER, who then loses access.
    let data = as_bob
        .ok(REMOVE_MEMBER, json!({ "c": chat, "u": carol.id }))
        .await?;
    assert_eq!(data["removeMember"], json!(true));
    assert_eq!(
        as_carol.code(CHAT, json!({ "c": chat })).await?,
        "FORBIDDEN"
    );
    assert_eq!(my_chats(&as_carol, json!({})).await?, Vec::<String>::new());
    // …but not the OWNER.
    assert_eq!(
        as_bob
            .code(REMOVE_MEMBER, json!({ "c": chat, "u": alice.id }))
            .await?,
        "FORBIDDEN"
    );
    // Removing someone who is not a member.
    assert_eq!(
        as_bob
            .code(REMOVE_MEMBER, json!({ "c": chat, "u": carol.id }))
            .await?,
        "NOT_FOUND"
    );
    // The OWNER removes the ADMIN.
    as_alice
        .ok(REMOVE_MEMBER, json!({ "c": chat, "u": bob.id }))
        .await?;
    assert_eq!(as_bob.code(CHAT, json!({ "c": chat })).await?, "FORBIDDEN");
    // The removed ADMIN has no power left.
    assert_eq!(
        as_bob
            .code(REMOVE_MEMBER, json!({ "c": chat, "u": dave.id }))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        roles(&as_alice, &chat).await?,
        pairs(&[("alice", "OWNER"), ("dave", "MEMBER")])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn members_leave_and_the_last_owner_hands_over_first() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let chat = group(&server, &alice, &[&bob, &carol]).await?;
    let as_alice = server.client(&alice);
    let as_bob = server.client(&bob);
    let as_carol = server.client(&carol);

    let data = as_bob.ok(LEAVE, json!({ "c": chat })).await?;
    assert_eq!(data["leaveChat"], json!(true));
    assert_eq!(as_bob.code(CHAT, json!({ "c": chat })).await?, "FORBIDDEN");
    assert_eq!(my_chats(&as_bob, json!({})).await?, Vec::<String>::new());
    // Leaving twice: no longer a member.
    assert_eq!(as_bob.code(LEAVE, json!({ "c": chat })).await?, "FORBIDDEN");

    // The only OWNER cannot leave others without one…
    assert_eq!(
        as_alice.code(LEAVE, json!({ "c": chat })).await?,
        "CONFLICT"
    );
    // …nor remove herself that way.
    assert_eq!(
        as_alice
            .code(REMOVE_MEMBER, json!({ "c": chat, "u": alice.id }))
            .await?,
        "CONFLICT"
    );
    assert_eq!(member_count(&as_alice, &chat).await?, 2);
    // Once Carol owns it too, Alice may go.
    as_alice
        .ok(SET_ROLE, json!({ "c": chat, "u": carol.id, "r": "OWNER" }))
        .await?;
    as_alice.ok(LEAVE, json!({ "c": chat })).await?;
    assert_eq!(roles(&as_carol, &chat).await?, pairs(&[("carol", "OWNER")]));
    // The last member may leave.
    as_carol.ok(LEAVE, json!({ "c": chat })).await?;
    assert_eq!(
        as_carol.code(CHAT, json!({ "c": chat })).await?,
        "FORBIDDEN"
    );
    let gone = deleted_chat_id(&server, &alice).await?;
    assert_eq!(
        as_alice.code(LEAVE, json!({ "c": gone })).await?,
        "NOT_FOUND"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_owners_leaving_at_once_never_leave_a_chat_without_one() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    for round in 0..5 {
        let chat = group(&server, &alice, &[&bob, &carol]).await?;
        server
            .client(&alice)
            .ok(SET_ROLE, json!({ "c": chat, "u": bob.id, "r": "OWNER" }))
            .await?;
        let leaves: Vec<_> = [&alice, &bob]
            .into_iter()
            .map(|owner| {
                let client = server.client(owner);
                let vars = json!({ "c": chat });
                tokio::spawn(async move { client.send(LEAVE, vars).await })
            })
            .collect();
        let mut left = 0;
        for task in leaves {
            let response = task.await??;
            match response.codes().first().map(String::as_str) {
                None => left += 1,
                Some("CONFLICT") => {}
                Some(other) => return Err(format!("unexpected {other}").into()),
            }
        }
        assert_eq!(left, 1, "round {round}: exactly one owner may leave");
        let remaining = roles(&server.client(&carol), &chat).await?;
        assert_eq!(remaining.len(), 2, "round {round}: {remaining:?}");
        assert!(
            remaining.iter().any(|(_, role)| role == "OWNER"),
            "round {round}: {remaining:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_change_by_rank() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let dave = server.user("dave").await?;
    let chat = group(&server, &alice, &[&bob, &carol, &dave]).await?;
    let as_alice = server.client(&alice);
    let as_bob = server.client(&bob);
    let role = |u: &TestUser, r: &str| json!({ "c": chat, "u": u.id, "r": r });

    // A MEMBER changes nobody's role, not even their own.
    assert_eq!(
        server
            .client(&carol)
            .code(SET_ROLE, role(&carol, "MODERATOR"))
            .await?,
        "FORBIDDEN"
    );
    let data = as_alice.ok(SET_ROLE, role(&bob, "ADMIN")).await?;
    assert_eq!(
        data["setMemberRole"],
        json!({ "role": "ADMIN", "user": { "username": "bob" } })
    );
    // An ADMIN manages MODERATOR and MEMBER…
    as_bob.ok(SET_ROLE, role(&carol, "MODERATOR")).await?;
    as_bob.ok(SET_ROLE, role(&carol, "MEMBER")).await?;
    as_bob.ok(SET_ROLE, role(&dave, "MODERATOR")).await?;
    // …but grants neither ADMIN nor OWNER, and touches no OWNER.
    assert_eq!(
        as_bob.code(SET_ROLE, role(&carol, "ADMIN")).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_bob.code(SET_ROLE, role(&carol, "OWNER")).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_bob.code(SET_ROLE, role(&bob, "OWNER")).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_bob.code(SET_ROLE, role(&alice, "MEMBER")).await?,
        "FORBIDDEN"
    );
    // The only OWNER cannot step down…
    assert_eq!(
        as_alice.code(SET_ROLE, role(&alice, "ADMIN")).await?,
        "CONFLICT"
    );
    // …until there is another.
    as_alice.ok(SET_ROLE, role(&carol, "OWNER")).await?;
    as_alice.ok(SET_ROLE, role(&alice, "MEMBER")).await?;
    assert_eq!(
        roles(&as_alice, &chat).await?,
        pairs(&[
            ("alice", "MEMBER"),
            ("bob", "ADMIN"),
            ("carol", "OWNER"),
            ("dave", "MODERATOR"),
        ])
    );
    // Alice, now a MEMBER, has lost her powers.
    assert_eq!(
        as_alice.code(SET_ROLE, role(&dave, "MEMBER")).await?,
        "FORBIDDEN"
    );

    // Non-members, unknown users, DIRECT chats.
    let eve = server.user("eve").await?;
    assert_eq!(
        server
            .client(&carol)
            .code(SET_ROLE, role(&eve, "MEMBER"))
            .await?,
        "NOT_FOUND"
    );
    let data = as_alice.ok(OPEN_DIRECT, json!({ "u": bob.id })).await?;
    let direct = str_at(&data, "/openDirectChat/id")?;
    assert_eq!(
        as_alice
            .code(SET_ROLE, json!({ "c": direct, "u": bob.id, "r": "ADMIN" }))
            .await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pinning_and_muting_are_each_members_own() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let as_alice = server.client(&alice);
    let flags = "query($c: ID!) { chat(id: $c) { pinned muted myMembership { pinned muted } } }";
    let set_pinned = "mutation($c: ID!, $v: Boolean!) { setChatPinned(chatId: $c, pinned: $v) { pinned muted user { id } } }";
    let set_muted = "mutation($c: ID!, $v: Boolean!) { setChatMuted(chatId: $c, muted: $v) { pinned muted user { id } } }";
    let both = |p: bool, m: bool| json!({ "chat": { "pinned": p, "muted": m, "myMembership": { "pinned": p, "muted": m } } });

    assert_eq!(
        as_alice.ok(flags, json!({ "c": chat })).await?,
        both(false, false)
    );
    let data = as_alice
        .ok(set_pinned, json!({ "c": chat, "v": true }))
        .await?;
    assert_eq!(
        data["setChatPinned"],
        json!({ "pinned": true, "muted": false, "user": { "id": alice.id } })
    );
    assert_eq!(
        as_alice.ok(flags, json!({ "c": chat })).await?,
        both(true, false)
    );
    let data = as_alice
        .ok(set_muted, json!({ "c": chat, "v": true }))
        .await?;
    assert_eq!(
        data["setChatMuted"],
        json!({ "pinned": true, "muted": true, "user": { "id": alice.id } })
    );
    assert_eq!(
        as_alice.ok(flags, json!({ "c": chat })).await?,
        both(true, true)
    );
    // Bob's view of the same chat is his own.
    assert_eq!(
        server.client(&bob).ok(flags, json!({ "c": chat })).await?,
        both(false, false)
    );
    // Setting a flag twice is fine; clearing works.
    as_alice
        .ok(set_muted, json!({ "c": chat, "v": true }))
        .await?;
    as_alice
        .ok(set_pinned, json!({ "c": chat, "v": false }))
        .await?;
    assert_eq!(
        as_alice.ok(flags, json!({ "c": chat })).await?,
        both(false, true)
    );
    as_alice
        .ok(set_muted, json!({ "c": chat, "v": false }))
        .await?;
    assert_eq!(
        as_alice.ok(flags, json!({ "c": chat })).await?,
        both(false, false)
    );

    // Only members have these settings.
    let eve = server.user("eve").await?;
    assert_eq!(
        server
            .client(&eve)
            .code(set_pinned, json!({ "c": chat, "v": true }))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .client(&eve)
            .code(set_muted, json!({ "c": chat, "v": true }))
            .await?,
        "FORBIDDEN"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn node_resolves_a_chat_for_its_members() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = named_group(
        &server,
        &alice,
        "Book club",
        json!({ "memberIds": [bob.id] }),
    )
    .await?;
    let node = "query($id: ID!) { node(id: $id) { __typename id ... on Chat { name kind } } }";
    let data = server.client(&bob).ok(node, json!({ "id": chat })).await?;
    assert_eq!(
        data["node"],
        json!({ "__typename": "Chat", "id": chat, "name": "Book club", "kind": "GROUP" })
    );
    let eve = server.user("eve").await?;
    assert_eq!(
        server
            .client(&eve)
            .code(node, json!({ "id": chat }))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server.anonymous().code(node, json!({ "id": chat })).await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}
