//! The caller's chat list: its order (pinned first, then the most recent), pages without gaps
//! or repeats, filters.

use super::*;

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
