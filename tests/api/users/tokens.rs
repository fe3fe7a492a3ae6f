//! Credentials: missing, forged, tampered and expired tokens, a deleted user's token, and
//! `issueToken`.

use super::*;

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
