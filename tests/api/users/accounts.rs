//! User accounts: created, updated and deleted by the backend with the admin key, usernames
//! unique and well formed, users editing their own profile, deleted users' messages.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_a_user_who_can_query_me() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let data = server
        .client(&alice)
        .ok("{ me { id username displayName isBot } }", json!({}))
        .await?;
    assert_eq!(str_at(&data, "/me/id")?, alice.id);
    assert_eq!(str_at(&data, "/me/username")?, "alice");
    // With no display name, the username is shown.
    assert_eq!(str_at(&data, "/me/displayName")?, "alice");
    assert_eq!(data["me"]["isBot"], json!(false));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backend_creates_updates_and_deletes_users_with_the_admin_key() -> TestResult {
    let server = TestServer::start().await?;
    let admin = server.admin();
    let data = admin
        .ok(
            CREATE_USER,
            json!({ "input": {
                "username": "helper.bot-1",
                "displayName": "Helper",
                "avatarUrl": "https://example.com/h.png",
                "isBot": true,
                "metadata": { "model": "m-1", "tags": ["a", "b"] },
            }}),
        )
        .await?;
    let id = str_at(&data, "/createUser/id")?;
    assert_eq!(
        data["createUser"],
        json!({
            "id": id,
            "username": "helper.bot-1",
            "displayName": "Helper",
            "avatarUrl": "https://example.com/h.png",
            "isBot": true,
            "metadata": { "model": "m-1", "tags": ["a", "b"] },
        })
    );

    let data = admin
        .ok(
            UPDATE_USER,
            json!({ "id": id, "input": { "displayName": "Helper v2" } }),
        )
        .await?;
    assert_eq!(str_at(&data, "/updateUser/displayName")?, "Helper v2");
    assert_eq!(
        str_at(&data, "/updateUser/avatarUrl")?,
        "https://example.com/h.png"
    );

    // The change is stored, not just echoed.
    let data = admin.ok(USER_BY_ID, json!({ "id": id })).await?;
    assert_eq!(str_at(&data, "/user/displayName")?, "Helper v2");

    let data = admin.ok(DELETE_USER, json!({ "id": id })).await?;
    assert_eq!(data["deleteUser"], json!(true));
    let data = admin.ok(USER_BY_ID, json!({ "id": id })).await?;
    assert_eq!(data["user"], Value::Null);
    // Deleting or updating again: there is nobody to delete or update.
    assert_eq!(
        admin.code(DELETE_USER, json!({ "id": id })).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        admin
            .code(
                UPDATE_USER,
                json!({ "id": id, "input": { "displayName": "x" } })
            )
            .await?,
        "NOT_FOUND"
    );
    // The username is free again.
    admin
        .ok(
            CREATE_USER,
            json!({ "input": { "username": "helper.bot-1" } }),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn user_management_needs_the_admin_key() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let create = json!({ "input": { "username": "mallory" } });
    let delete = json!({ "id": bob.id });
    let token = json!({ "id": bob.id });

    // A user token acts only as that user: FORBIDDEN.
    let as_alice = server.client(&alice);
    assert_eq!(
        as_alice.code(CREATE_USER, create.clone()).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_alice.code(DELETE_USER, delete.clone()).await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_alice.code(ISSUE_TOKEN, token.clone()).await?,
        "FORBIDDEN"
    );
    // Not even for herself.
    assert_eq!(
        as_alice
            .code(DELETE_USER, json!({ "id": alice.id }))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        as_alice
            .code(ISSUE_TOKEN, json!({ "id": alice.id }))
            .await?,
        "FORBIDDEN"
    );

    // No credentials at all: UNAUTHENTICATED.
    let anonymous = server.anonymous();
    assert_eq!(
        anonymous.code(CREATE_USER, create.clone()).await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        anonymous.code(DELETE_USER, delete.clone()).await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        anonymous.code(ISSUE_TOKEN, token.clone()).await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        anonymous
            .code(
                UPDATE_USER,
                json!({ "id": bob.id, "input": { "displayName": "x" } })
            )
            .await?,
        "UNAUTHENTICATED"
    );

    // A wrong admin key is a bad credential, never silently anonymous or admin.
    for key in [
        "wrong-key",
        "test-admin-key-",
        "TEST-ADMIN-KEY",
        &ADMIN_KEY[..ADMIN_KEY.len() - 1],
    ] {
        let wrong = admin_with_key(&server, key);
        assert_eq!(
            wrong.code(CREATE_USER, create.clone()).await?,
            "UNAUTHENTICATED",
            "admin key {key:?}"
        );
        assert_eq!(
            wrong.code(DELETE_USER, delete.clone()).await?,
            "UNAUTHENTICATED"
        );
        assert_eq!(
            wrong.code(ISSUE_TOKEN, token.clone()).await?,
            "UNAUTHENTICATED"
        );
    }

    // Nothing happened: mallory does not exist and bob is still there.
    let data = as_alice.ok(USER_BY_NAME, json!({ "u": "mallory" })).await?;
    assert_eq!(data["user"], Value::Null);
    let data = as_alice.ok(USER_BY_NAME, json!({ "u": "bob" })).await?;
    assert_eq!(str_at(&data, "/user/id")?, bob.id);
    let data = server.client(&bob).ok(ME, json!({})).await?;
    assert_eq!(str_at(&data, "/me/id")?, bob.id);

    // The right key does what the others could not.
    let data = server.admin().ok(CREATE_USER, create).await?;
    assert_eq!(str_at(&data, "/createUser/username")?, "mallory");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn usernames_are_unique_and_well_formed() -> TestResult {
    let server = TestServer::start().await?;
    let admin = server.admin();
    let create = |name: &str| json!({ "input": { "username": name } });
    admin.ok(CREATE_USER, create("alice")).await?;
    assert_eq!(admin.code(CREATE_USER, create("alice")).await?, "CONFLICT");
    // Unique regardless of case: "Alice" cannot sit beside "alice". (Usernames are ASCII
    // letters, digits, `_`, `-` and `.`, so no Unicode look-alikes: "émile" is refused.)
    for twin in ["Alice", "ALICE", "aLiCe"] {
        assert_eq!(
            admin.code(CREATE_USER, create(twin)).await?,
            "CONFLICT",
            "{twin}"
        );
    }

    let too_long = "a".repeat(65);
    for bad in [
        "",
        "has space",
        "tab\there",
        "émile",
        "a/b",
        "semi;colon",
        "@alice",
        too_long.as_str(),
    ] {
        assert_eq!(
            admin.code(CREATE_USER, create(bad)).await?,
            "BAD_USER_INPUT",
            "username {bad:?}"
        );
    }
    // Letters, digits, `_`, `-` and `.`, up to 64 characters, are fine.
    let longest = "b".repeat(64);
    for good in ["a.b-c_d", "X9", "0", longest.as_str()] {
        let data = admin.ok(CREATE_USER, create(good)).await?;
        assert_eq!(str_at(&data, "/createUser/username")?, good);
    }
    // Other fields are checked too.
    assert_eq!(
        admin
            .code(
                CREATE_USER,
                json!({ "input": { "username": "long-name", "displayName": "n".repeat(201) } })
            )
            .await?,
        "BAD_USER_INPUT"
    );

    // Only the valid ones (and the first alice) were stored.
    let data = admin.ok(USERS, json!({ "first": 100 })).await?;
    let mut names = usernames(&data);
    names.sort();
    let mut expected = vec![
        "0".to_owned(),
        "X9".to_owned(),
        "a.b-c_d".to_owned(),
        "alice".to_owned(),
        longest,
    ];
    expected.sort();
    assert_eq!(names, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_updates_their_own_profile_and_nobody_elses() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let as_alice = server.client(&alice);

    let data = as_alice
        .ok(
            UPDATE_USER,
            json!({ "id": alice.id, "input": {
                "displayName": "Alice L.",
                "avatarUrl": "https://example.com/a.png",
                "metadata": { "theme": "dark" },
            }}),
        )
        .await?;
    assert_eq!(
        data["updateUser"],
        json!({
            "id": alice.id,
            "username": "alice",
            "displayName": "Alice L.",
            "avatarUrl": "https://example.com/a.png",
            "metadata": { "theme": "dark" },
        })
    );

    // Bob may not touch Alice's profile; it stays as it was.
    assert_eq!(
        server
            .client(&bob)
            .code(
                UPDATE_USER,
                json!({ "id": alice.id, "input": { "displayName": "hacked" } })
            )
            .await?,
        "FORBIDDEN"
    );

    // An omitted field stays; `null` clears, and the display name falls back to the username.
    let data = as_alice
        .ok(
            UPDATE_USER,
            json!({ "id": alice.id, "input": { "displayName": null } }),
        )
        .await?;
    assert_eq!(str_at(&data, "/updateUser/displayName")?, "alice");
    assert_eq!(
        str_at(&data, "/updateUser/avatarUrl")?,
        "https://example.com/a.png"
    );
    assert_eq!(data["updateUser"]["metadata"], json!({ "theme": "dark" }));

    // The same with a literal null in the document, for the avatar.
    let data = as_alice
        .ok(
            "mutation($id: ID!) { updateUser(id: $id, input: {avatarUrl: null}) { displayName avatarUrl metadata } }",
            json!({ "id": alice.id }),
        )
        .await?;
    assert_eq!(
        data["updateUser"],
        json!({ "displayName": "alice", "avatarUrl": null, "metadata": { "theme": "dark" } })
    );

    // An empty input changes nothing.
    let data = as_alice
        .ok(UPDATE_USER, json!({ "id": alice.id, "input": {} }))
        .await?;
    assert_eq!(data["updateUser"]["metadata"], json!({ "theme": "dark" }));

    // Everybody sees the stored state.
    let data = server
        .client(&bob)
        .ok(
            "query($id: ID) { user(id: $id) { displayName avatarUrl metadata } }",
            json!({ "id": alice.id }),
        )
        .await?;
    assert_eq!(
        data["user"],
        json!({ "displayName": "alice", "avatarUrl": null, "metadata": { "theme": "dark" } })
    );

    // Limits hold for updates too.
    assert_eq!(
        as_alice
            .code(
                UPDATE_USER,
                json!({ "id": alice.id, "input": { "displayName": "n".repeat(201) } })
            )
            .await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_users_messages_stay_without_a_sender() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let message = send(&server, &bob, &chat, "bye all").await?;
    server
        .admin()
        .ok(DELETE_USER, json!({ "id": bob.id }))
        .await?;
    let data = server
        .client(&alice)
        .ok(
            "query($c: ID!, $m: ID!) {
               message(id: $m) { content sender { id } }
               chat(id: $c) { memberCount members { nodes { user { username } } } }
             }",
            json!({ "c": chat, "m": message }),
        )
        .await?;
    assert_eq!(
        data,
        json!({
            "message": { "content": "bye all", "sender": null },
            "chat": { "memberCount": 1, "members": { "nodes": [{ "user": { "username": "alice" } }] } },
        })
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_signups_for_one_username_create_one_user() -> TestResult {
    let server = TestServer::start().await?;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let admin = server.admin();
            tokio::spawn(async move {
                admin
                    .send(CREATE_USER, json!({ "input": { "username": "popular" } }))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let response = task.await??;
        match response.codes().first().map(String::as_str) {
            None => created += 1,
            Some("CONFLICT") => {}
            Some(other) => return Err(format!("unexpected {other}: {}", response.body).into()),
        }
    }
    assert_eq!(created, 1);
    let data = server.admin().ok(USERS, json!({ "s": "popular" })).await?;
    assert_eq!(usernames(&data), ["popular"]);
    Ok(())
}
