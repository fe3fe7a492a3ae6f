//! AI-assistant conversations: a member stops a streaming reply, and the history the next
//! model turn gets.

use serde_json::{Value, json};

use crate::common::ws::WsClient;
use crate::common::*;

pub(super) const START: &str =
    "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"\", stream: true}) { id } }";
pub(super) const APPEND: &str =
    "mutation($m: ID!, $d: String!) { appendMessageContent(id: $m, delta: $d) { content } }";
pub(super) const FINISH: &str =
    "mutation($m: ID!, $s: StreamState!) { finishMessage(id: $m, state: $s) { streamState } }";
const INTERRUPT: &str =
    "mutation($m: ID!) { interruptReply(messageId: $m) { id content streamState } }";

const FEED: &str = "subscription($c: ID!) { chatEvents(chatId: $c) {
  __typename
  ... on MessageAdded { message { content } }
  ... on ReplyInterrupted { messageId message { content streamState } interruptedBy { username } }
} }";
const BOT_INBOX: &str = "subscription { myEvents {
  __typename
  ... on InboxMessage { message { content } }
  ... on ReplyInterrupted { chatId messageId interruptedBy { username } }
} }";

pub(super) async fn start_reply(bot: &Client, chat: &str) -> TestResult<String> {
    let started = bot.ok(START, json!({"c": chat})).await?;
    str_at(&started, "/sendMessage/id")
}

fn typename(event: &Value, root: &str) -> String {
    event[root]["__typename"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_stops_a_streaming_reply_and_its_bot_is_told() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, eve) = (server.user("alice").await?, server.user("eve").await?);
    let bot = server.bot("helper").await?;
    let chat = group(&server, &alice, &[&bot]).await?;
    let (a, b) = (server.client(&alice), server.client(&bot));

    // The bot's inbox first: the probes that show Alice's feed live reach it too, as
    // `InboxMessage`s, which its reads below pass over.
    let mut inbox = WsClient::user(&server, &bot).await?;
    inbox.subscribe("i", BOT_INBOX, json!({})).await?;
    inbox
        .until_live("i", async |m| {
            send(&server, &alice, &chat, &m).await.map(drop)
        })
        .await?;
    let mut feed = WsClient::user(&server, &alice).await?;
    feed.subscribe("f", FEED, json!({"c": chat})).await?;
    feed.until_live("f", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;

    let reply = start_reply(&b, &chat).await?;
    b.ok(APPEND, json!({"m": reply, "d": "Half an "})).await?;
    let stopped = a.ok(INTERRUPT, json!({"m": reply})).await?;
    assert_eq!(
        stopped["interruptReply"],
        json!({"id": reply, "content": "Half an ", "streamState": "INTERRUPTED"})
    );

    // Alice's feed: the reply's start, then the interruption (deltas are not selected).
    assert_eq!(
        typename(&feed.next("f").await?, "chatEvents"),
        "MessageAdded"
    );
    let mut event = feed.next("f").await?;
    while typename(&event, "chatEvents") == "MessageDelta" {
        event = feed.next("f").await?;
    }
    assert_eq!(
        event["chatEvents"],
        json!({
            "__typename": "ReplyInterrupted",
            "messageId": reply,
            "message": {"content": "Half an ", "streamState": "INTERRUPTED"},
            "interruptedBy": {"username": "alice"},
        })
    );
    // The bot's own feed tells it to stop, whichever chat it is in.
    let mut told = inbox.next("i").await?;
    while typename(&told, "myEvents") == "InboxMessage" {
        told = inbox.next("i").await?;
    }
    assert_eq!(
        told["myEvents"],
        json!({
            "__typename": "ReplyInterrupted",
            "chatId": chat,
            "messageId": reply,
            "interruptedBy": {"username": "alice"},
        })
    );

    // The bot's further appends and its finish are refused, saying why.
    let late = b.send(APPEND, json!({"m": reply, "d": "answer"})).await?;
    assert_eq!(late.codes(), ["CONFLICT"], "{}", late.body);
    assert!(
        late.body.to_string().contains("interrupted"),
        "{}",
        late.body
    );
    let finish = b.send(FINISH, json!({"m": reply, "s": "COMPLETE"})).await?;
    assert_eq!(finish.codes(), ["CONFLICT"], "{}", finish.body);

    // A second interrupt changes nothing and tells nobody: the next event is the next
    // message.
    let again = a.ok(INTERRUPT, json!({"m": reply})).await?;
    assert_eq!(again["interruptReply"]["streamState"], "INTERRUPTED");
    assert_eq!(again["interruptReply"]["content"], "Half an ");
    send(&server, &alice, &chat, "after").await?;
    assert_eq!(
        feed.next("f").await?["chatEvents"],
        json!({"__typename": "MessageAdded", "message": {"content": "after"}})
    );

    // Outsiders cannot, and only streamed replies can be interrupted.
    assert_eq!(
        server
            .client(&eve)
            .code(INTERRUPT, json!({"m": reply}))
            .await?,
        "NOT_FOUND"
    );
    let plain = send(&server, &alice, &chat, "plain").await?;
    assert_eq!(a.code(INTERRUPT, json!({"m": plain})).await?, "CONFLICT");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_racing_the_bots_appends_keeps_exactly_what_was_appended() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bot = server.bot("helper").await?;
    let chat = group(&server, &alice, &[&bot]).await?;
    let (a, b) = (server.client(&alice), server.client(&bot));
    let mut cut_short = 0;
    for round in 0..8 {
        let reply = start_reply(&b, &chat).await?;
        let appends = async {
            let mut outcomes = Vec::new();
            for n in 0..12 {
                let answer = b
                    .send(APPEND, json!({"m": reply, "d": format!("{n},")}))
                    .await?;
                outcomes.push((format!("{n},"), answer.codes()));
            }
            TestResult::Ok(outcomes)
        };
        let interrupt = async {
            // Let the bot get going for a varying number of appends first.
            for _ in 0..round {
                tokio::task::yield_now().await;
            }
            a.ok(INTERRUPT, json!({"m": reply})).await
        };
        let (outcomes, stopped) = tokio::join!(appends, interrupt);
        let (outcomes, stopped) = (outcomes?, stopped?);
        let accepted: Vec<&str> = outcomes
            .iter()
            .take_while(|(_, codes)| codes.is_empty())
            .map(|(delta, _)| delta.as_str())
            .collect();
        if accepted.len() < outcomes.len() {
            cut_short += 1;
        }
        // Once one append is refused, every later one is, and with CONFLICT.
        for (_, codes) in &outcomes[accepted.len()..] {
            assert_eq!(codes, &["CONFLICT"], "round {round}: {outcomes:?}");
        }
        let stored = a
            .ok(
                "query($m: ID!) { message(id: $m) { content streamState } }",
                json!({"m": reply}),
            )
            .await?;
        assert_eq!(
            stored["message"],
            json!({"content": accepted.concat(), "streamState": "INTERRUPTED"}),
            "round {round}: {outcomes:?}"
        );
        // The interrupt answered what was stored at that moment: every accepted append.
        let answered = str_at(&stopped, "/interruptReply/content")?;
        assert_eq!(
            answered,
            accepted.concat(),
            "round {round}: appends after the interrupt landed"
        );
    }
    // The interrupt went out with the appends: it must have stopped some reply midway.
    assert!(cut_short > 0, "no round had an append refused");
    Ok(())
}

const HISTORY: &str = "query($c: ID!, $last: Int, $max: Int, $from: ID, $failed: Boolean, $streaming: Boolean) {
  history(chatId: $c, last: $last, maxTokens: $max, from: $from, includeFailed: $failed, includeStreaming: $streaming) {
    role apiRole content name messageId
  }
}";

/// The history's `(apiRole, content)` pairs for these arguments.
async fn history(client: &Client, chat: &str, args: Value) -> TestResult<Vec<(String, String)>> {
    let mut variables = json!({"c": chat});
    if let (Some(vars), Some(extra)) = (variables.as_object_mut(), args.as_object()) {
        vars.extend(extra.clone());
    }
    let data = client.ok(HISTORY, variables).await?;
    let entries = data["history"].as_array().cloned().unwrap_or_default();
    Ok(entries
        .iter()
        .map(|e| {
            let role = e["apiRole"].as_str().unwrap_or_default();
            let expected = match role {
                "user" => "USER",
                "assistant" => "ASSISTANT",
                _ => "SYSTEM",
            };
            assert_eq!(e["role"], expected, "{e}");
            (
                role.to_owned(),
                e["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(r, c)| ((*r).to_owned(), (*c).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn history_for_the_next_turn_leaves_out_what_the_model_must_not_see() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bot = server.bot("helper").await?;
    let chat = group(&server, &alice, &[&bot]).await?;
    let (a, b) = (server.client(&alice), server.client(&bot));

    send(&server, &alice, &chat, "q1").await?;
    let failed = start_reply(&b, &chat).await?;
    b.ok(APPEND, json!({"m": failed, "d": "oops"})).await?;
    b.ok(FINISH, json!({"m": failed, "s": "FAILED"})).await?;
    let q2 = send(&server, &alice, &chat, "q2").await?;
    let empty = start_reply(&b, &chat).await?;
    b.ok(FINISH, json!({"m": empty, "s": "FAILED"})).await?;
    let answered = start_reply(&b, &chat).await?;
    b.ok(APPEND, json!({"m": answered, "d": "answer two"}))
        .await?;
    b.ok(FINISH, json!({"m": answered, "s": "COMPLETE"}))
        .await?;
    let typo = send(&server, &alice, &chat, "typo").await?;
    a.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": typo}),
    )
    .await?;
    send(&server, &alice, &chat, "q3").await?;
    let half = start_reply(&b, &chat).await?;
    b.ok(APPEND, json!({"m": half, "d": "half"})).await?;
    a.ok(INTERRUPT, json!({"m": half})).await?;
    send(&server, &alice, &chat, "q4").await?;
    let thinking = start_reply(&b, &chat).await?;
    b.ok(APPEND, json!({"m": thinking, "d": "thinking"}))
        .await?;

    let finished = turns(&[
        ("user", "q1"),
        ("user", "q2"),
        ("assistant", "answer two"),
        ("user", "q3"),
        ("assistant", "half"),
        ("user", "q4"),
    ]);
    assert_eq!(history(&a, &chat, json!({})).await?, finished);
    // Failed and streaming replies only when asked for (an empty one never: no content).
    let mut with_failed = finished.clone();
    with_failed.insert(1, ("assistant".into(), "oops".into()));
    assert_eq!(
        history(&a, &chat, json!({"failed": true})).await?,
        with_failed
    );
    let mut with_streaming = finished.clone();
    with_streaming.push(("assistant".into(), "thinking".into()));
    assert_eq!(
        history(&b, &chat, json!({"streaming": true})).await?,
        with_streaming
    );

    // A message budget and a token budget keep the newest; `from` starts at a message.
    assert_eq!(history(&a, &chat, json!({"last": 2})).await?, finished[4..]);
    // Estimated tokens: "q4", "half", "q3" cost 5 each (1 + 4 framing), "answer two" 7.
    assert_eq!(history(&a, &chat, json!({"max": 15})).await?, finished[3..]);
    assert_eq!(history(&a, &chat, json!({"max": 14})).await?, finished[4..]);
    assert_eq!(history(&a, &chat, json!({"max": 0})).await?, vec![]);
    assert_eq!(
        history(&a, &chat, json!({"from": q2})).await?,
        finished[1..]
    );
    assert_eq!(
        history(&a, &chat, json!({"from": q2, "last": 2, "max": 100})).await?,
        finished[4..]
    );
    assert_eq!(
        a.code(HISTORY, json!({"c": chat, "max": -1})).await?,
        "BAD_USER_INPUT"
    );

    // Entries name their sender and message, for multi-party prompts and `from`.
    let data = a.ok(HISTORY, json!({"c": chat, "last": 2})).await?;
    assert_eq!(data["history"][0]["name"], "helper");
    assert_eq!(data["history"][0]["messageId"], half.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_id_travels_with_the_message_and_is_checked() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bot = server.bot("helper").await?;
    let chat = group(&server, &alice, &[&bot]).await?;
    let b = server.client(&bot);
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let started = b
        .ok(
            "mutation($c: ID!, $t: String) { sendMessage(input: {chatId: $c, content: \"\", stream: true, traceId: $t}) { id traceId } }",
            json!({"c": chat, "t": trace}),
        )
        .await?;
    assert_eq!(started["sendMessage"]["traceId"], trace);
    let reply = str_at(&started, "/sendMessage/id")?;
    let append = "mutation($m: ID!, $d: String!, $t: String) { appendMessageContent(id: $m, delta: $d, traceId: $t) { traceId } }";
    // Without a trace id the message keeps its own; with one it takes the new one.
    let kept = b.ok(append, json!({"m": reply, "d": "a"})).await?;
    assert_eq!(kept["appendMessageContent"]["traceId"], trace);
    let next = b
        .ok(append, json!({"m": reply, "d": "b", "t": "turn-2"}))
        .await?;
    assert_eq!(next["appendMessageContent"]["traceId"], "turn-2");
    let read = server
        .client(&alice)
        .ok(
            "query($m: ID!) { message(id: $m) { content traceId } }",
            json!({"m": reply}),
        )
        .await?;
    assert_eq!(
        read["message"],
        json!({"content": "ab", "traceId": "turn-2"})
    );
    // A trace id goes into log lines as it is: printable ASCII, bounded, or refused.
    for bad in ["", "has space", "line\nbreak", &"x".repeat(129)] {
        assert_eq!(
            b.code(append, json!({"m": reply, "d": "c", "t": bad}))
                .await?,
            "BAD_USER_INPUT",
            "{bad:?}"
        );
        assert_eq!(
            b.code(
                "mutation($c: ID!, $t: String) { sendMessage(input: {chatId: $c, content: \"x\", traceId: $t}) { id } }",
                json!({"c": chat, "t": bad}),
            )
            .await?,
            "BAD_USER_INPUT"
        );
    }
    let unchanged = server
        .client(&alice)
        .ok(
            "query($m: ID!) { message(id: $m) { content } }",
            json!({"m": reply}),
        )
        .await?;
    assert_eq!(unchanged["message"]["content"], "ab");
    Ok(())
}

const SESSION_OF: &str =
    "query($m: ID!) { message(id: $m) { createdAt session { id startedAt endedAt active } } }";
const SESSIONS: &str = "query($c: ID!) { chat(id: $c) {
  activeSession { id }
  sessions(first: 10) { nodes { id startedAt endedAt active } }
} }";

/// Waits (bounded) until the clock is more than `seconds` past `time`.
async fn clock_beyond(time: &str, seconds: i64) -> TestResult {
    let time = chrono::DateTime::parse_from_rfc3339(time)?;
    for _ in 0..5000 {
        if chrono::Utc::now() > time + chrono::Duration::seconds(seconds) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    Err("the clock did not move".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_spell_longer_than_the_timeout_starts_a_new_session() -> TestResult {
    let server = TestServer::start_with(&["--session-timeout-secs", "1"]).await?;
    let alice = server.user("alice").await?;
    let bot = server.bot("helper").await?;
    let chat = group(&server, &alice, &[&bot]).await?;
    let a = server.client(&alice);
    let mut feed = WsClient::user(&server, &alice).await?;
    feed.subscribe(
        "f",
        "subscription($c: ID!) { chatEvents(chatId: $c) { __typename
           ... on MessageAdded { message { content } }
           ... on SessionStarted { sessionId } ... on SessionEnded { sessionId session { endedAt } } } }",
        json!({"c": chat}),
    )
    .await?;
    feed.until_live("f", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;

    let first = send(&server, &alice, &chat, "q1").await?;
    let second = send(&server, &bot, &chat, "a1").await?;
    let one = a.ok(SESSION_OF, json!({"m": first})).await?;
    let two = a.ok(SESSION_OF, json!({"m": second})).await?;
    let session_one = str_at(&one, "/message/session/id")?;
    assert_eq!(two["message"]["session"]["id"], session_one.as_str());
    assert_eq!(one["message"]["session"]["active"], true);

    // More than the timeout without a message: the next one opens a new session, and the
    // old one ended with its last message.
    let last_at = str_at(&two, "/message/createdAt")?;
    clock_beyond(&last_at, 1).await?;
    let stale = a.ok(SESSIONS, json!({"c": chat})).await?;
    assert_eq!(stale["chat"]["activeSession"], Value::Null, "{stale}");
    let third = send(&server, &alice, &chat, "q2").await?;
    let three = a.ok(SESSION_OF, json!({"m": third})).await?;
    let session_two = str_at(&three, "/message/session/id")?;
    assert_ne!(session_two, session_one);
    let listed = a.ok(SESSIONS, json!({"c": chat})).await?;
    assert_eq!(listed["chat"]["activeSession"]["id"], session_two.as_str());
    let nodes = &listed["chat"]["sessions"]["nodes"];
    assert_eq!(nodes[0]["id"], session_two.as_str());
    assert_eq!(nodes[0]["active"], true);
    assert_eq!(nodes[1]["id"], session_one.as_str());
    assert_eq!(nodes[1]["endedAt"], last_at.as_str());
    assert_eq!(nodes[1]["active"], false);

    // Subscribers heard it: the old session ended, the new one started.
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let event = feed.next("f").await?;
        let kind = event["chatEvents"]["__typename"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if kind == "SessionEnded" {
            assert_eq!(event["chatEvents"]["sessionId"], session_one.as_str());
            assert_eq!(event["chatEvents"]["session"]["endedAt"], last_at.as_str());
        }
        if kind == "SessionStarted" {
            assert_eq!(event["chatEvents"]["sessionId"], session_two.as_str());
        }
        if kind.starts_with("Session") {
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, ["SessionEnded", "SessionStarted"]);

    // A member ends the session; the next message opens another. startSession replaces it.
    let ended = a
        .ok(
            "mutation($c: ID!) { endSession(chatId: $c) { id active } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(
        ended["endSession"],
        json!({"id": session_two, "active": false})
    );
    let nothing = a
        .ok(
            "mutation($c: ID!) { endSession(chatId: $c) { id } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(nothing["endSession"], Value::Null);
    let fourth = send(&server, &alice, &chat, "q3").await?;
    let four = a.ok(SESSION_OF, json!({"m": fourth})).await?;
    let session_three = str_at(&four, "/message/session/id")?;
    assert!(session_three != session_two && session_three != session_one);
    let started = a
        .ok(
            "mutation($c: ID!) { startSession(chatId: $c) { id active } }",
            json!({"c": chat}),
        )
        .await?;
    let session_four = str_at(&started, "/startSession/id")?;
    let fifth = send(&server, &alice, &chat, "q4").await?;
    let five = a.ok(SESSION_OF, json!({"m": fifth})).await?;
    assert_eq!(five["message"]["session"]["id"], session_four.as_str());
    let listed = a.ok(SESSIONS, json!({"c": chat})).await?;
    assert_eq!(
        listed["chat"]["sessions"]["nodes"].as_array().map(Vec::len),
        Some(4)
    );

    // A session is a Relay node, for members only.
    let node = "query($id: ID!) { node(id: $id) { id ... on Session { chat { id } active } } }";
    let found = a.ok(node, json!({"id": session_four})).await?;
    assert_eq!(
        found["node"],
        json!({"id": session_four, "chat": {"id": chat}, "active": true})
    );
    let eve = server.user("eve").await?;
    assert_absent(&server.client(&eve), node, json!({"id": session_four})).await?;

    // Outsiders can do none of it.
    assert_eq!(
        server
            .client(&eve)
            .code(
                "mutation($c: ID!) { startSession(chatId: $c) { id } }",
                json!({"c": chat})
            )
            .await?,
        "FORBIDDEN"
    );

    // Clearing the chat takes its sessions with its messages; the next message opens one.
    a.ok(
        "mutation($c: ID!) { clearChat(id: $c) }",
        json!({"c": chat}),
    )
    .await?;
    let cleared = a.ok(SESSIONS, json!({"c": chat})).await?;
    assert_eq!(cleared["chat"]["sessions"]["nodes"], json!([]));
    assert_absent(&a, node, json!({"id": session_four})).await?;
    let after = send(&server, &alice, &chat, "fresh start").await?;
    let after = a.ok(SESSION_OF, json!({"m": after})).await?;
    assert!(after["message"]["session"]["id"] != session_four.as_str());
    let listed = a.ok(SESSIONS, json!({"c": chat})).await?;
    assert_eq!(
        listed["chat"]["sessions"]["nodes"].as_array().map(Vec::len),
        Some(1)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_timeout_off_a_quiet_spell_keeps_the_session() -> TestResult {
    let server = TestServer::start_with(&["--session-timeout-secs", "0"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let a = server.client(&alice);
    let first = send(&server, &alice, &chat, "one").await?;
    let one = a.ok(SESSION_OF, json!({"m": first})).await?;
    clock_beyond(&str_at(&one, "/message/createdAt")?, 1).await?;
    let second = send(&server, &alice, &chat, "two").await?;
    let two = a.ok(SESSION_OF, json!({"m": second})).await?;
    assert_eq!(
        two["message"]["session"]["id"],
        one["message"]["session"]["id"]
    );
    assert_eq!(two["message"]["session"]["active"], true);
    Ok(())
}
