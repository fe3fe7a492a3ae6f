//! Finding users: by id or username, search, paging, `node(id)`.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn users_are_looked_up_by_id_or_username() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let as_bob = server.client(&bob);

    let data = as_bob.ok(USER_BY_ID, json!({ "id": alice.id })).await?;
    assert_eq!(
        data["user"],
        json!({ "id": alice.id, "username": "alice", "displayName": "alice" })
    );
    let data = as_bob.ok(USER_BY_NAME, json!({ "u": "alice" })).await?;
    assert_eq!(data["user"], json!({ "id": alice.id, "username": "alice" }));
    // The admin key may look users up too.
    let data = server
        .admin()
        .ok(USER_BY_NAME, json!({ "u": "bob" }))
        .await?;
    assert_eq!(str_at(&data, "/user/id")?, bob.id);

    // Unknown users are null, not errors.
    let data = as_bob.ok(USER_BY_NAME, json!({ "u": "nobody" })).await?;
    assert_eq!(data["user"], Value::Null);
    let ghost = deleted_user_id(&server, "ghost").await?;
    let data = as_bob.ok(USER_BY_ID, json!({ "id": ghost })).await?;
    assert_eq!(data["user"], Value::Null);

    // Exactly one of id and username.
    let both = "query($id: ID, $u: String) { user(id: $id, username: $u) { id } }";
    assert_eq!(
        as_bob
            .code(both, json!({ "id": alice.id, "u": "alice" }))
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(as_bob.code(both, json!({})).await?, "BAD_USER_INPUT");
    assert_eq!(
        as_bob.code(USER_BY_ID, json!({ "id": "garbage" })).await?,
        "BAD_USER_INPUT"
    );
    // A chat id is not a user id.
    let chat = group(&server, &alice, &[&bob]).await?;
    assert_eq!(
        as_bob.code(USER_BY_ID, json!({ "id": chat })).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        server
            .anonymous()
            .code(USER_BY_NAME, json!({ "u": "alice" }))
            .await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn user_search_ignores_case_and_matches_wildcards_literally() -> TestResult {
    let server = TestServer::start().await?;
    create_named(&server, "alice", "Wonder Alice").await?;
    create_named(&server, "bob", "Bob the Builder").await?;
    create_named(&server, "pct", "100% Bob").await?;
    create_named(&server, "pcts", "1000 Bob").await?;
    create_named(&server, "bs", r"back\slash").await?;
    create_named(&server, "emile", "Émile Ärger").await?;
    let viewer = server.user("x_y").await?;
    server.user("xay").await?;
    server.user("ALICE.2").await?;
    let client = server.client(&viewer);

    // Case-insensitive, on username and on display name.
    assert_eq!(search(&client, "alice").await?, ["ALICE.2", "alice"]);
    assert_eq!(search(&client, "WONDER").await?, ["alice"]);
    assert_eq!(search(&client, "builder").await?, ["bob"]);
    assert_eq!(search(&client, "BoB").await?, ["bob", "pct", "pcts"]);
    // Beyond ASCII too, on both backends.
    assert_eq!(search(&client, "émile").await?, ["emile"]);
    assert_eq!(search(&client, "ÄRGER").await?, ["emile"]);
    // LIKE wildcards match themselves, not anything.
    assert_eq!(search(&client, "x_y").await?, ["x_y"]);
    assert_eq!(search(&client, "_").await?, ["x_y"]);
    assert_eq!(search(&client, "%").await?, ["pct"]);
    assert_eq!(search(&client, "0% b").await?, ["pct"]);
    assert_eq!(search(&client, "1%0").await?, Vec::<String>::new());
    assert_eq!(search(&client, r"\").await?, ["bs"]);
    assert_eq!(search(&client, r"k\s").await?, ["bs"]);
    // No match is an empty page.
    assert_eq!(search(&client, "zzz").await?, Vec::<String>::new());
    // No search (or a blank one) lists everybody.
    assert_eq!(search(&client, "").await?.len(), 9);
    assert_eq!(search(&client, "   ").await?.len(), 9);
    let data = client.ok(USERS, json!({ "first": 100 })).await?;
    assert_eq!(usernames(&data).len(), 9);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn users_page_through_everyone_without_gaps_or_repeats() -> TestResult {
    let server = TestServer::start().await?;
    let viewer = server.user("viewer").await?;
    for i in 0..24 {
        server.user(&format!("user{i:02}")).await?;
    }
    let client = server.client(&viewer);

    // The default page is 20.
    let data = client.ok(USERS, json!({})).await?;
    assert_eq!(usernames(&data).len(), 20);
    assert_eq!(data["users"]["pageInfo"]["hasNextPage"], json!(true));

    // Pages of 7, with a user created in the middle of the walk: it shows up at the end.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = client
            .ok(USERS, json!({ "first": 7, "after": after }))
            .await?;
        let page = usernames(&data);
        assert!(page.len() <= 7);
        seen.extend(page);
        pages += 1;
        if pages == 2 {
            server.user("latecomer").await?;
        }
        if data["users"]["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = Some(str_at(&data, "/users/pageInfo/endCursor")?);
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen.len(), 26, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 26, "{seen:?}");
    assert_eq!(seen.first().map(String::as_str), Some("viewer"));
    assert_eq!(seen.last().map(String::as_str), Some("latecomer"));

    // Every edge's cursor continues right after that edge.
    let data = client.ok(USERS, json!({ "first": 3 })).await?;
    let second_cursor = str_at(&data, "/users/edges/1/cursor")?;
    let data_after = client
        .ok(USERS, json!({ "first": 1, "after": second_cursor }))
        .await?;
    assert_eq!(usernames(&data_after), [usernames(&data)[2].clone()]);

    // The page size is capped; a negative one is invalid.
    assert_eq!(
        client.code(USERS, json!({ "first": 101 })).await?,
        "LIMIT_EXCEEDED"
    );
    let data = client.ok(USERS, json!({ "first": 100 })).await?;
    assert_eq!(usernames(&data).len(), 26);
    assert_eq!(
        client.code(USERS, json!({ "first": -1 })).await?,
        "BAD_USER_INPUT"
    );
    // Malformed cursors are the client's error.
    for bad in ["garbage", "", "dXNlcjp4", "%%%"] {
        assert_eq!(
            client.code(USERS, json!({ "after": bad })).await?,
            "BAD_USER_INPUT",
            "cursor {bad:?}"
        );
    }
    // A cursor from another list is not a user cursor.
    let chat = group(&server, &viewer, &[]).await?;
    let data = client
        .ok("{ chats { edges { cursor } } }", json!({}))
        .await?;
    let chat_cursor = str_at(&data, "/chats/edges/0/cursor")?;
    assert!(!chat.is_empty());
    assert_eq!(
        client.code(USERS, json!({ "after": chat_cursor })).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        server.anonymous().code(USERS, json!({})).await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn node_resolves_a_user() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let node = "query($id: ID!) { node(id: $id) { __typename id ... on User { username } } }";
    let data = server
        .client(&bob)
        .ok(node, json!({ "id": alice.id }))
        .await?;
    assert_eq!(
        data["node"],
        json!({ "__typename": "User", "id": alice.id, "username": "alice" })
    );
    let ghost = deleted_user_id(&server, "ghost").await?;
    let data = server.client(&bob).ok(node, json!({ "id": ghost })).await?;
    assert_eq!(data["node"], Value::Null);
    assert_eq!(
        server
            .client(&bob)
            .code(node, json!({ "id": "garbage" }))
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        server
            .anonymous()
            .code(node, json!({ "id": alice.id }))
            .await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}
