//! Membership: listing members, adding, removing and leaving (also concurrently), roles by
//! rank, and each member's own pinning and muting.

use super::*;

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
    assert_absent(&server.client(&gina), CHAT, json!({ "c": chat })).await?;
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
    assert_absent(&as_carol, CHAT, json!({ "c": chat })).await?;
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
    assert_absent(&as_bob, CHAT, json!({ "c": chat })).await?;
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
    assert_absent(&as_bob, CHAT, json!({ "c": chat })).await?;
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
    assert_absent(&as_carol, CHAT, json!({ "c": chat })).await?;
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

    // They are each member's own: the member list shows them on the caller's membership
    // only, null on everyone else's.
    as_alice
        .ok(set_pinned, json!({ "c": chat, "v": true }))
        .await?;
    let list = "query($c: ID!) { chat(id: $c) { members { nodes { user { id } pinned muted } } } }";
    for (viewer, viewer_id) in [(&as_alice, &alice.id), (&server.client(&bob), &bob.id)] {
        let data = viewer.ok(list, json!({ "c": chat })).await?;
        let nodes = data["chat"]["members"]["nodes"]
            .as_array()
            .ok_or("no members")?;
        assert_eq!(nodes.len(), 2);
        for node in nodes {
            if node["user"]["id"] == json!(viewer_id) {
                assert!(
                    node["pinned"].is_boolean() && node["muted"].is_boolean(),
                    "{node}"
                );
            } else {
                assert_eq!(
                    (&node["pinned"], &node["muted"]),
                    (&Value::Null, &Value::Null),
                    "{node}"
                );
            }
        }
    }

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
