//! Statistics of a chat, of a user's chats and of the whole server, exact on a known data
//! set: every role, the four stream endings, a retraction, two sessions, two days.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::assistant::{APPEND, FINISH, start_reply};
use crate::common::*;

const FIGURES: &str = "messages retractedMessages
  byRole { role count } byKind { kind count } streamedReplies { state count }
  averageReplyLength sessions activeDays activeChats activeSenders
  firstActivityAt lastActivityAt since until";

const SEND_AS: &str = "mutation($c: ID!, $t: String!, $r: MessageRole) {
  sendMessage(input: {chatId: $c, content: $t, role: $r}) { id } }";
fn chat_statistics() -> String {
    format!(
        "query($c: ID!, $s: DateTime, $u: DateTime) {{ chat(id: $c) {{ statistics(since: $s, until: $u) {{ {FIGURES} }} }} }}"
    )
}

fn user_statistics() -> String {
    format!("query($u: ID!) {{ user(id: $u) {{ statistics {{ {FIGURES} }} }} }}")
}

fn server_statistics() -> String {
    format!("{{ statistics {{ {FIGURES} }} }}")
}

/// A bot reply streamed as `delta` and ended with `state` (or left streaming).
async fn streamed(
    bot: &Client,
    chat: &str,
    delta: &str,
    state: Option<&str>,
) -> TestResult<String> {
    let id = start_reply(bot, chat).await?;
    bot.ok(APPEND, json!({"m": id, "d": delta})).await?;
    if let Some(state) = state {
        bot.ok(FINISH, json!({"m": id, "s": state})).await?;
    }
    Ok(id)
}

/// The `createdAt` of each message of a chat, oldest first, as the API shows it.
async fn created_times(client: &Client, chat: &str) -> TestResult<Vec<String>> {
    let data = client
        .ok(
            "query($c: ID!) { chat(id: $c) { messages(first: 100) { nodes { createdAt } } } }",
            json!({"c": chat}),
        )
        .await?;
    let nodes = data["chat"]["messages"]["nodes"]
        .as_array()
        .ok_or("no messages")?;
    let mut times: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["createdAt"].as_str().map(str::to_owned))
        .collect();
    times.sort();
    Ok(times)
}

/// UTC days among RFC 3339 timestamps.
fn days(times: &[String]) -> usize {
    times
        .iter()
        .map(|t| t.get(..10).unwrap_or(t))
        .collect::<BTreeSet<_>>()
        .len()
}

fn counts(figures: &Value, list: &str, key: &str) -> Vec<(String, i64)> {
    figures[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i[key].as_str().unwrap_or_default().to_owned(),
                        i["count"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected
        .iter()
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn statistics_count_a_known_conversation_exactly() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, eve) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("eve").await?,
    );
    let bot = server.bot("helper").await?;
    let (a, b, helper) = (
        server.client(&alice),
        server.client(&bob),
        server.client(&bot),
    );
    let chat = group(&server, &alice, &[&bob, &bot]).await?;

    // Session 1: a question two days ago, then today a system prompt, a reply of each
    // ending, and a retracted message.
    let hello = send(&server, &alice, &chat, "hello").await?;
    backdate(&server, &hello, 2 * 24 * 3600).await?;
    send(&server, &bob, &chat, "hi").await?;
    a.ok(SEND_AS, json!({"c": chat, "t": "be brief", "r": "SYSTEM"}))
        .await?;
    helper
        .ok(SEND_AS, json!({"c": chat, "t": "Hello there"}))
        .await?; // 11 characters
    streamed(&helper, &chat, "abcd", Some("COMPLETE")).await?; // 4
    let cut = streamed(&helper, &chat, "xy", None).await?;
    a.ok(
        "mutation($m: ID!) { interruptReply(messageId: $m) { id } }",
        json!({"m": cut}),
    )
    .await?;
    streamed(&helper, &chat, "zzz", Some("FAILED")).await?;
    streamed(&helper, &chat, "q", None).await?;
    let oops = send(&server, &bob, &chat, "oops").await?;
    b.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": oops}),
    )
    .await?;
    // Session 2.
    a.ok(
        "mutation($c: ID!) { startSession(chatId: $c) { id } }",
        json!({"c": chat}),
    )
    .await?;
    send(&server, &alice, &chat, "new topic").await?;

    let times = created_times(&a, &chat).await?;
    assert_eq!(times.len(), 10);
    let data = a.ok(&chat_statistics(), json!({"c": chat})).await?;
    let figures = &data["chat"]["statistics"];
    assert_eq!(figures["messages"], 9, "{figures}");
    assert_eq!(figures["retractedMessages"], 1);
    assert_eq!(
        counts(figures, "byRole", "role"),
        pairs(&[("USER", 3), ("ASSISTANT", 5), ("SYSTEM", 1)])
    );
    assert_eq!(
        counts(figures, "byKind", "kind"),
        pairs(&[("TEXT", 9), ("IMAGE", 0), ("FILE", 0), ("SYSTEM", 0)])
    );
    assert_eq!(
        counts(figures, "streamedReplies", "state"),
        pairs(&[
            ("STREAMING", 1),
            ("COMPLETE", 1),
            ("INTERRUPTED", 1),
            ("FAILED", 1)
        ])
    );
    // Finished replies only: "Hello there" and "abcd".
    assert_eq!(figures["averageReplyLength"], 7.5);
    assert_eq!(figures["sessions"], 2);
    assert_eq!(figures["activeDays"], json!(days(&times)));
    assert!(days(&times) >= 2);
    assert_eq!(figures["activeChats"], 1);
    assert_eq!(figures["activeSenders"], 3);
    assert_eq!(figures["firstActivityAt"], json!(times[0]));
    assert_eq!(figures["lastActivityAt"], json!(times[9]));
    assert_eq!(
        (&figures["since"], &figures["until"]),
        (&Value::Null, &Value::Null)
    );

    // A range that leaves out the backdated question.
    let data = a
        .ok(&chat_statistics(), json!({"c": chat, "s": times[1]}))
        .await?;
    let recent = &data["chat"]["statistics"];
    assert_eq!(recent["messages"], 8);
    assert_eq!(counts(recent, "byRole", "role")[0], ("USER".to_owned(), 2));
    assert_eq!(recent["firstActivityAt"], json!(times[1]));
    assert_eq!(recent["since"], json!(times[1]));
    assert_eq!(recent["activeDays"], json!(days(&times[1..])));
    // An empty range, and one that ends before it starts.
    let data = a
        .ok(
            &chat_statistics(),
            json!({"c": chat, "s": times[1], "u": times[1]}),
        )
        .await?;
    let empty = &data["chat"]["statistics"];
    assert_eq!(
        (
            &empty["messages"],
            &empty["sessions"],
            &empty["averageReplyLength"],
            &empty["firstActivityAt"]
        ),
        (&json!(0), &json!(0), &Value::Null, &Value::Null)
    );
    assert_eq!(
        a.code(
            &chat_statistics(),
            json!({"c": chat, "s": times[2], "u": times[1]})
        )
        .await?,
        "BAD_USER_INPUT"
    );

    // A user's statistics cover the chats they are in: Alice's second chat counts, Eve's
    // chat with the bot does not (but does for the bot).
    let other = group(&server, &alice, &[&bot]).await?;
    send(&server, &alice, &other, "elsewhere").await?;
    let evechat = group(&server, &eve, &[&bot]).await?;
    send(&server, &eve, &evechat, "eve's question").await?;
    let mine = a.ok(&user_statistics(), json!({"u": alice.id})).await?;
    let mine = &mine["user"]["statistics"];
    assert_eq!(
        (
            &mine["messages"],
            &mine["activeChats"],
            &mine["activeSenders"]
        ),
        (&json!(10), &json!(2), &json!(3))
    );
    let bots = server
        .admin()
        .ok(&user_statistics(), json!({"u": bot.id}))
        .await?;
    let bots = &bots["user"]["statistics"];
    assert_eq!(
        (&bots["messages"], &bots["activeChats"]),
        (&json!(11), &json!(3))
    );
    assert_eq!(
        b.code(&user_statistics(), json!({"u": alice.id})).await?,
        "FORBIDDEN"
    );

    // The server's totals: the admin key only.
    let all = server.admin().ok(&server_statistics(), json!({})).await?;
    let all = &all["statistics"];
    assert_eq!(
        (&all["messages"], &all["activeChats"], &all["activeSenders"]),
        (&json!(11), &json!(3), &json!(4))
    );
    assert_eq!(all["sessions"], 4);
    assert_eq!(a.code(&server_statistics(), json!({})).await?, "FORBIDDEN");
    assert_eq!(
        server
            .anonymous()
            .code(&server_statistics(), json!({}))
            .await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_chats_with_statistics_is_refused_before_it_runs() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let answer = server
        .client(&alice)
        .send(
            "{ chats(first: 100) { nodes { statistics { messages } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(answer.codes(), vec!["LIMIT_EXCEEDED"], "{}", answer.body);
    // One chat's statistics fit.
    let chat = group(&server, &alice, &[]).await?;
    let one = server
        .client(&alice)
        .ok(
            "query($c: ID!) { chat(id: $c) { statistics { messages } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(one["chat"]["statistics"]["messages"], 0);
    Ok(())
}
