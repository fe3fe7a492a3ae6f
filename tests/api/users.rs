//! Users and identity: admin-key management, tokens, `me`, lookups, search and paging.

use std::collections::HashSet;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;

const CREATE_USER: &str = "mutation($input: CreateUserInput!) {
  createUser(input: $input) { id username displayName avatarUrl isBot metadata }
}";
const UPDATE_USER: &str = "mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { id username displayName avatarUrl metadata }
}";
const DELETE_USER: &str = "mutation($id: ID!) { deleteUser(id: $id) }";
const ISSUE_TOKEN: &str =
    "mutation($id: ID!, $ttl: Int) { issueToken(userId: $id, ttlSeconds: $ttl) }";
const USER_BY_ID: &str = "query($id: ID) { user(id: $id) { id username displayName } }";
const USER_BY_NAME: &str = "query($u: String) { user(username: $u) { id username } }";
const ME: &str = "{ me { id username } }";
const USERS: &str = "query($s: String, $first: Int, $after: String) {
  users(search: $s, first: $first, after: $after) {
    edges { cursor node { id username } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// A client that sends `key` as the admin key.
fn admin_with_key(server: &TestServer, key: &str) -> Client {
    Client::new(server.url(), None, Some(key.to_owned()))
}

/// A client that sends `token` as its bearer token.
fn with_token(server: &TestServer, token: &str) -> Client {
    server.anonymous().with_token(token)
}

/// An HS256 token for `sub` signed with `secret`, issued at `iat`, expiring at `exp`
/// (seconds since the epoch).
fn craft_token(secret: &str, sub: &str, iat: i64, exp: i64) -> TestResult<String> {
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &json!({ "sub": sub, "iat": iat, "exp": exp }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// The usernames of a `users` page, in order.
fn usernames(data: &Value) -> Vec<String> {
    data["users"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["username"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The usernames matching `search`, sorted (the order is id order, which is not the point).
async fn search(client: &Client, term: &str) -> TestResult<Vec<String>> {
    let data = client.ok(USERS, json!({ "s": term, "first": 100 })).await?;
    let mut names = usernames(&data);
    names.sort();
    Ok(names)
}

/// Creates a user with a display name through the admin key; returns its id.
async fn create_named(server: &TestServer, username: &str, display: &str) -> TestResult<String> {
    let data = server
        .admin()
        .ok(
            CREATE_USER,
            json!({ "input": { "username": username, "displayName": display } }),
        )
        .await?;
    str_at(&data, "/createUser/id")
}

/// The id of a user that existed once and was deleted: a well-formed id nobody has.
async fn deleted_user_id(server: &TestServer, username: &str) -> TestResult<String> {
    let gone = server.user(username).await?;
    server
        .admin()
        .ok(DELETE_USER, json!({ "id": gone.id }))
        .await?;
    Ok(gone.id)
}

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
async fn me_refuses_missing_forged_tampered_and_expired_tokens() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let now = chrono::Utc::now().timestamp();

    // A token crafted with the server's secret works: the crafting below is right.
    let good = craft_token(JWT_SECRET, &alice.id, now, now + 600)?;
    let data = with_token(&server, &good).ok(ME, json!({})).await?;
    assert_eq!(str_at(&data, "/me/id")?, alice.id);

    assert_eq!(
        server.anonymous().code(ME, json!({})).await?,
        "UNAUTHENTICATED"
    );
    // The admin key is no user.
    assert_eq!(server.admin().code(ME, json!({})).await?, "FORBIDDEN");

    // The same claims signed with another secret.
    let forged = craft_token("some-other-secret-0123456789", &alice.id, now, now + 600)?;
    assert_eq!(
        with_token(&server, &forged).code(ME, json!({})).await?,
        "UNAUTHENTICATED"
    );

    // A real token with its signature altered.
    let (unsigned, signature) = alice
        .token
        .rsplit_once('.')
        .ok_or("a JWT has three parts")?;
    let flipped: String = signature
        .chars()
        .rev()
        .collect::<String>()
        .replace('A', "B");
    for tampered in [
        format!("{unsigned}.{flipped}"),
        format!("{unsigned}."),
        format!("{unsigned}.{signature}x"),
    ] {
        assert_eq!(
            with_token(&server, &tampered).code(ME, json!({})).await?,
            "UNAUTHENTICATED",
            "tampered token {tampered}"
        );
    }

    // A real signature of Alice's token over Bob's claims.
    let bob = server.user("bob").await?;
    let (bob_claims, _) = bob.token.rsplit_once('.').ok_or("a JWT has three parts")?;
    let swapped = format!("{bob_claims}.{signature}");
    assert_eq!(
        with_token(&server, &swapped).code(ME, json!({})).await?,
        "UNAUTHENTICATED"
    );

    // Signed by the server's secret but expired a minute ago.
    let expired = craft_token(JWT_SECRET, &alice.id, now - 3600, now - 60)?;
    assert_eq!(
        with_token(&server, &expired).code(ME, json!({})).await?,
        "UNAUTHENTICATED"
    );

    // `alg: none` with no signature.
    let none = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims =
            b64.encode(json!({ "sub": alice.id, "iat": now, "exp": now + 600 }).to_string());
        format!("{header}.{claims}.")
    };
    assert_eq!(
        with_token(&server, &none).code(ME, json!({})).await?,
        "UNAUTHENTICATED"
    );

    // Right secret, but the subject is not a user id.
    let not_a_user = craft_token(JWT_SECRET, "alice", now, now + 600)?;
    assert_eq!(
        with_token(&server, &not_a_user).code(ME, json!({})).await?,
        "UNAUTHENTICATED"
    );

    for garbage in ["not-a-jwt", "a.b.c", "Bearer"] {
        assert_eq!(
            with_token(&server, garbage).code(ME, json!({})).await?,
            "UNAUTHENTICATED",
            "token {garbage:?}"
        );
    }

    // A bad token is refused even for operations that need no identity.
    assert_eq!(
        with_token(&server, &expired)
            .code(USER_BY_NAME, json!({ "u": "alice" }))
            .await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_users_token_stops_working() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let as_bob = server.client(&bob);
    as_bob.ok(ME, json!({})).await?;

    server
        .admin()
        .ok(DELETE_USER, json!({ "id": bob.id }))
        .await?;
    assert_eq!(as_bob.code(ME, json!({})).await?, "UNAUTHENTICATED");
    // A user created afterwards never inherits the id (and so the old token).
    let carol = server.user("carol").await?;
    assert_ne!(carol.id, bob.id);
    assert_eq!(as_bob.code(ME, json!({})).await?, "UNAUTHENTICATED");
    // Nor can the old token act: creating a chat or opening one is refused, not a crash.
    assert_eq!(
        as_bob
            .code(
                "mutation { createChat(input: {kind: GROUP, name: \"ghost\"}) { id } }",
                json!({})
            )
            .await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        as_bob
            .code(
                "mutation($u: ID!) { openDirectChat(userId: $u) { id } }",
                json!({ "u": alice.id })
            )
            .await?,
        "UNAUTHENTICATED"
    );
    // Alice's chat list shows no trace of Bob's attempts.
    let data = server
        .client(&alice)
        .ok("{ chats { nodes { id } } }", json!({}))
        .await?;
    assert_eq!(data["chats"]["nodes"], json!([]));
    // A fresh token for the deleted user cannot be minted either.
    assert_eq!(
        server
            .admin()
            .code(ISSUE_TOKEN, json!({ "id": bob.id }))
            .await?,
        "NOT_FOUND"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_token_checks_the_user_and_the_lifetime() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let admin = server.admin();

    let ghost = deleted_user_id(&server, "ghost").await?;
    assert_eq!(
        admin.code(ISSUE_TOKEN, json!({ "id": ghost })).await?,
        "NOT_FOUND"
    );
    assert_eq!(
        admin
            .code(ISSUE_TOKEN, json!({ "id": "not-an-id" }))
            .await?,
        "BAD_USER_INPUT"
    );
    for ttl in [0, -1, -86400, 366 * 24 * 3600 + 1, i32::MAX] {
        assert_eq!(
            admin
                .code(ISSUE_TOKEN, json!({ "id": alice.id, "ttl": ttl }))
                .await?,
            "BAD_USER_INPUT",
            "ttl {ttl}"
        );
    }

    // A short-lived token works and carries the asked lifetime.
    let data = admin
        .ok(ISSUE_TOKEN, json!({ "id": alice.id, "ttl": 120 }))
        .await?;
    let token = str_at(&data, "/issueToken")?;
    let data = with_token(&server, &token).ok(ME, json!({})).await?;
    assert_eq!(str_at(&data, "/me/username")?, "alice");
    let claims = {
        use base64::Engine;
        let payload = token.split('.').nth(1).ok_or("a JWT has a payload")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
        serde_json::from_slice::<Value>(&bytes)?
    };
    assert_eq!(claims["sub"], json!(alice.id));
    let lifetime = int_at(&claims, "/exp")? - int_at(&claims, "/iat")?;
    assert_eq!(lifetime, 120);
    // The longest allowed lifetime is fine.
    admin
        .ok(
            ISSUE_TOKEN,
            json!({ "id": alice.id, "ttl": 366 * 24 * 3600 }),
        )
        .await?;
    Ok(())
}

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
