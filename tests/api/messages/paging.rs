//! Paging a chat's messages both ways while messages arrive, and validating page arguments.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn paging_both_ways_skips_and_repeats_nothing_while_messages_arrive() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    for i in 0..25 {
        send(&server, &alice, &chat, &format!("m{i:03}")).await?;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("m{i:03}")).collect();
    let client = server.client(&bob);

    // Forward from the oldest while Alice keeps writing: the first 25 come in order, once,
    // and newer ones follow them in order.
    let writer = {
        let (server_url, token, chat) = (server.url(), alice.token.clone(), chat.clone());
        tokio::spawn(async move {
            let client = Client::new(server_url, Some(token), None);
            for i in 25..45 {
                client
                    .ok(
                        "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }",
                        json!({"c": chat, "t": format!("m{i:03}")}),
                    )
                    .await?;
            }
            TestResult::Ok(())
        })
    };
    let forward = read_all(&client, &chat, true, 4).await?;
    writer.await??;
    assert_eq!(&forward[..25], &expected[..]);
    let mut sorted = forward.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, forward,
        "forward pages are ordered and repeat nothing"
    );

    // Backward from the newest, after the writer finished: all 45, ascending, once.
    let backward = read_all(&client, &chat, false, 7).await?;
    let all: Vec<String> = (0..45).map(|i| format!("m{i:03}")).collect();
    assert_eq!(backward, all);

    // A final forward read sees exactly the same.
    assert_eq!(read_all(&client, &chat, true, 10).await?, all);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn page_arguments_are_validated() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let client = server.client(&alice);
    assert_eq!(
        client.code(PAGE, json!({"c": chat, "first": 101})).await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        client.code(PAGE, json!({"c": chat, "first": -1})).await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        client
            .code(PAGE, json!({"c": chat, "after": "garbage"}))
            .await?,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        client
            .code(PAGE, json!({"c": chat, "first": 1, "last": 1}))
            .await?,
        "BAD_USER_INPUT"
    );
    // A chat cursor is not a message cursor.
    let chats = client
        .ok("{ chats { edges { cursor } } }", json!({}))
        .await?;
    let chat_cursor = str_at(&chats, "/chats/edges/0/cursor")?;
    assert_eq!(
        client
            .code(PAGE, json!({"c": chat, "after": chat_cursor}))
            .await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}
