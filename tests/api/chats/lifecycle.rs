//! A chat's life: creating groups (and refusing bad members), who sees a chat, direct chats
//! opened once (also under concurrency), settings, deletion, clearing, `node(id)`.

use super::*;

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
    assert_absent(&as_eve, CHAT, json!({ "c": chat })).await?;
    assert_eq!(
        as_eve.code(MESSAGES, json!({ "c": chat })).await?,
        "FORBIDDEN"
    );
    assert_absent(&as_eve, MEMBERS, json!({ "c": chat })).await?;
    // A message of a chat one is not in is answered like a missing one.
    assert_absent(&as_eve, MESSAGE, json!({ "m": message })).await?;
    let node = "query($id: ID!) { node(id: $id) { id } }";
    assert_absent(&as_eve, node, json!({ "id": chat })).await?;
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

    // A chat that does not exist is null (NOT_FOUND for its messages); a malformed id is the
    // client's error.
    let gone = deleted_chat_id(&server, &alice).await?;
    assert_absent(&as_bob, CHAT, json!({ "c": gone })).await?;
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
        assert_absent(&as_bob, MESSAGE, json!({ "m": message })).await?;
    }
    for user in [&alice, &bob, &carol] {
        let client = server.client(user);
        assert_absent(&client, CHAT, json!({ "c": chat })).await?;
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
    assert_absent(&as_bob, MESSAGE, json!({ "m": first })).await?;
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
    // Null, exactly as for an id that names nothing (and no error, which would null a
    // Relay query's whole `data`).
    assert_absent(&server.client(&eve), node, json!({ "id": chat })).await?;
    assert_eq!(
        server.anonymous().code(node, json!({ "id": chat })).await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}
