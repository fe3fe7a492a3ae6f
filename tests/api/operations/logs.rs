//! The log of a real `chatql serve` process as an operator reads it: one line per GraphQL
//! operation, no terminal colour codes in a pipe, and a token hint naming the binary.

use serde_json::json;

use crate::common::*;

/// The process as an installed binary runs: not under cargo, whose variables the test
/// inherits.
fn not_by_cargo(command: &mut std::process::Command) {
    command.env_remove("CARGO").env_remove("CARGO_MANIFEST_DIR");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_operation_logs_one_line_and_a_pipe_gets_no_colour_codes() -> TestResult {
    let db = TestDb::new().await?;
    let (server, mut logs) =
        ServerProcess::start_logged(&db.url, db.dir.path(), not_by_cargo).await?;
    let alice = server.user("alice").await?;
    server
        .client(&alice)
        .send("query WhoAmI { me { id } }", json!({}))
        .await?;
    let line = logs.wait_for(|l| l.contains(r#"name="WhoAmI""#))?;
    for field in [
        "chatql::request: graphql",
        "operation=query",
        &format!("user={}", alice.id),
        "outcome=ok",
        "code=-",
        "status=200",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "no `{field}` in {line}");
    }
    // A refused one says why; the admin key is logged as such.
    server
        .admin()
        .send("mutation Nobody { deleteUser(id: \"nope\") }", json!({}))
        .await?;
    let refused = logs.wait_for(|l| l.contains(r#"name="Nobody""#))?;
    assert!(refused.contains("user=admin"), "{refused}");
    assert!(refused.contains("operation=mutation"), "{refused}");
    assert!(!refused.contains("outcome=ok"), "{refused}");
    assert_eq!(
        logs.seen
            .iter()
            .filter(|l| l.contains(r#"name="WhoAmI""#))
            .count(),
        1,
        "one line per operation"
    );
    // Standard error is a pipe here: plain text, no ANSI escape sequences.
    let everything = logs.seen.join("\n");
    assert!(
        !everything.contains("\u{1b}["),
        "colour codes in a pipe:\n{everything}"
    );
    assert!(everything.contains(" INFO "), "{everything}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_hint_names_the_binary_unless_cargo_runs_it() -> TestResult {
    let db = TestDb::new().await?;
    let binary = env!("CARGO_BIN_EXE_chatql");
    let (_installed, mut logs) =
        ServerProcess::start_logged(&db.url, db.dir.path(), not_by_cargo).await?;
    let hint = logs.wait_for(|l| l.contains("get a token"))?;
    assert!(
        hint.contains(&format!("`{binary} token --user <name> --create`")),
        "{hint}"
    );
    assert!(!hint.contains("cargo run"), "{hint}");

    let db = TestDb::new().await?;
    let (_by_cargo, mut logs) = ServerProcess::start_logged(&db.url, db.dir.path(), |command| {
        command.env("CARGO", "cargo");
    })
    .await?;
    let hint = logs.wait_for(|l| l.contains("get a token"))?;
    assert!(
        hint.contains("`cargo run --release -- token --user"),
        "{hint}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_messages_trace_id_is_in_the_log_with_the_message() -> TestResult {
    let db = TestDb::new().await?;
    let (server, mut logs) =
        ServerProcess::start_logged(&db.url, db.dir.path(), not_by_cargo).await?;
    let alice = server.user("alice").await?;
    let client = server.client(&alice);
    let chat = client
        .ok(
            "mutation { createChat(input: {kind: GROUP, name: \"t\"}) { id } }",
            json!({}),
        )
        .await?;
    let chat = str_at(&chat, "/createChat/id")?;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sent = client
        .ok(
            "mutation($c: ID!, $t: String) { sendMessage(input: {chatId: $c, content: \"hi\", traceId: $t}) { id } }",
            json!({"c": chat, "t": trace}),
        )
        .await?;
    let message = str_at(&sent, "/sendMessage/id")?;
    let line = logs.wait_for(|l| l.contains(trace))?;
    assert!(line.contains("message sent"), "{line}");
    assert!(line.contains(&message), "{line}");
    Ok(())
}
