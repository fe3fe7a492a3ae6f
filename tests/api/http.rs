//! GraphQL over HTTP: the spec's own audit suite, the schema contract, transport rules,
//! limits and health endpoints.

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn passes_every_graphql_over_http_audit() -> TestResult {
    let server = TestServer::start().await?;
    let report = node_script("graphql-http", "http-audits.mjs", &[server.url()]).await?;
    assert!(report.contains("all audits ok"), "{report}");
    Ok(())
}

#[test]
fn committed_schema_is_what_the_server_prints() -> TestResult {
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql"),
    )?;
    assert!(
        committed == chatql::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- print-schema > schema.graphql`"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn get_runs_queries_but_not_mutations() -> TestResult {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    let response = http
        .get(server.url())
        .query(&[("query", "{ __typename }")])
        .header("accept", "application/graphql-response+json")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("application/graphql-response+json")
    );
    assert_eq!(
        response.json::<serde_json::Value>().await?,
        json!({"data": {"__typename": "Query"}})
    );

    let response = http
        .get(server.url())
        .query(&[("query", "mutation { leaveChat(chatId: \"x\") }")])
        .send()
        .await?;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    let response = http
        .post(server.url())
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await?;
    assert_eq!(response.status(), 415);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_q_values_choose_the_response_type() -> TestResult {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    let cases = [
        (
            "application/json;q=0.5, application/graphql-response+json",
            Some("application/graphql-response+json"),
        ),
        (
            "application/graphql-response+json;q=0, application/json",
            Some("application/json"),
        ),
        (
            "text/html;q=0.9, application/json",
            Some("application/json"),
        ),
        (
            "application/json, application/graphql-response+json",
            Some("application/json"),
        ),
        (
            "application/graphql-response+json, application/json",
            Some("application/graphql-response+json"),
        ),
        (
            "application/json;q=0.8, application/graphql-response+json;q=0.9",
            Some("application/graphql-response+json"),
        ),
        // Wildcards give the legacy type; a refused type stays refused under a wildcard.
        ("*/*", Some("application/json")),
        (
            "application/*;q=0.5, application/graphql-response+json;q=0.4",
            Some("application/json"),
        ),
        (
            "application/json;q=0, */*",
            Some("application/graphql-response+json"),
        ),
        ("application/json;q=0", None),
        (
            "application/json;q=0, application/graphql-response+json;q=0.0",
            None,
        ),
        ("text/plain", None),
    ];
    for (accept, expected) in cases {
        for post in [false, true] {
            let request = if post {
                http.post(server.url())
                    .json(&json!({ "query": "{ __typename }" }))
            } else {
                http.get(server.url()).query(&[("query", "{ __typename }")])
            };
            let response = request.header("accept", accept).send().await?;
            let content_type = response.headers()["content-type"].to_str()?.to_owned();
            match expected {
                Some(media) => {
                    assert_eq!(response.status(), 200, "{accept}");
                    assert!(content_type.starts_with(media), "{accept}: {content_type}");
                    let body: serde_json::Value = response.json().await?;
                    assert_eq!(body["data"]["__typename"], "Query");
                }
                None => assert_eq!(response.status(), 406, "{accept}"),
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_checked_and_never_silently_ignored() -> TestResult {
    let server = TestServer::start().await?;
    let forged = server.anonymous().with_token("not.a.token");
    let response = forged.send("{ __typename }", json!({})).await?;
    assert_eq!(response.status, 401);
    assert_eq!(response.codes(), vec!["UNAUTHENTICATED"]);
    let wrong_admin = Client::new(server.url(), None, Some("wrong".into()));
    assert_eq!(
        wrong_admin.code("{ __typename }", json!({})).await?,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        server.anonymous().code("{ me { id } }", json!({})).await?,
        "UNAUTHENTICATED"
    );
    // The admin key is the application backend, not a user.
    assert_eq!(
        server.admin().code("{ me { id } }", json!({})).await?,
        "FORBIDDEN"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn depth_complexity_and_body_limits_give_clear_errors() -> TestResult {
    let server =
        TestServer::start_with(&["--max-query-depth", "4", "--max-body-bytes", "2048"]).await?;
    let alice = server.user("alice").await?;
    let deep = "{ me { id } chats { nodes { lastMessage { chat { lastMessage { id } } } } } }";
    let response = server.client(&alice).send(deep, json!({})).await?;
    assert_eq!(response.status, 400);
    assert_eq!(response.codes(), vec!["LIMIT_EXCEEDED"]);
    assert!(response.body.get("data").is_none());

    let huge = format!("{{ __typename }} # {}", "x".repeat(4096));
    let response = reqwest::Client::new()
        .post(server.url())
        .json(&json!({ "query": huge }))
        .send()
        .await?;
    assert_eq!(response.status(), 413);

    let bad_syntax = server.client(&alice).send("{ me { id ", json!({})).await?;
    assert_eq!(
        (bad_syntax.status, bad_syntax.codes()),
        (400, vec!["BAD_USER_INPUT".to_owned()])
    );
    // An unknown argument is the client's mistake, not a limit, whatever it is called.
    let unknown = server
        .client(&alice)
        .send("{ chats(limit: 5) { nodes { id } } }", json!({}))
        .await?;
    assert_eq!(
        (unknown.status, unknown.codes()),
        (400, vec!["BAD_USER_INPUT".to_owned()])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_graphiql_are_served() -> TestResult {
    let server = TestServer::start().await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/healthz")).send().await?.status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz")).send().await?.status(),
        200
    );
    let page = http.get(format!("{base}/")).send().await?.text().await?;
    assert!(page.contains("graphiql"), "GraphiQL page expected");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mutations_are_rate_limited_per_user() -> TestResult {
    let server = TestServer::start_with(&["--mutations-per-minute", "3"]).await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?; // alice's 1st mutation
    send(&server, &alice, &chat, "two").await?;
    send(&server, &alice, &chat, "three").await?;
    let say = "mutation($c: ID!) { sendMessage(input: {chatId: $c, content: \"four\"}) { id } }";
    let limited = server.client(&alice).send(say, json!({"c": chat})).await?;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.codes(), vec!["RATE_LIMITED"]);
    // Nothing was stored; queries, other users and the admin key go on.
    let page = server
        .client(&alice)
        .ok(
            "query($c: ID!) { messages(chatId: $c) { nodes { content } } }",
            json!({"c": chat}),
        )
        .await?;
    assert_eq!(
        page["messages"]["nodes"],
        json!([{"content": "two"}, {"content": "three"}])
    );
    send(&server, &bob, &chat, "bob is fine").await?;
    server.user("carol").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_may_send_the_headers_graphql_clients_and_tracers_add() -> TestResult {
    let server = TestServer::start().await?;
    let requested = "authorization, content-type, apollographql-client-name, \
        apollographql-client-version, traceparent, tracestate, baggage, sentry-trace, x-request-id";
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.url())
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", requested)
        .send()
        .await?;
    assert_eq!(preflight.status(), 200);
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in requested.split(", ") {
        assert!(allowed.contains(header), "{header} not in {allowed}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_credential_is_an_error_without_a_location() -> TestResult {
    let server = TestServer::start().await?;
    let answer = server
        .anonymous()
        .with_token("forged")
        .send("{ me { id } }", json!({}))
        .await?;
    assert_eq!(answer.codes(), ["UNAUTHENTICATED"]);
    // GraphQL locations are 1-based; a credential has no place in the document.
    assert!(
        answer.errors()[0].get("locations").is_none(),
        "{}",
        answer.body
    );
    Ok(())
}

/// POSTs a batch (a JSON array of requests) as `user`.
async fn post_batch(
    server: &TestServer,
    token: &str,
    batch: serde_json::Value,
) -> TestResult<(u16, serde_json::Value)> {
    let response = reqwest::Client::new()
        .post(server.url())
        .header("accept", "application/graphql-response+json")
        .bearer_auth(token)
        .json(&batch)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_runs_each_operation_on_its_own() -> TestResult {
    let server = TestServer::start_with(&["--mutations-per-minute", "3"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?; // 1 of 3 mutations
    let send = |text: &str| {
        json!({
            "query": "mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { content } }",
            "variables": { "c": chat, "t": text },
        })
    };
    let (status, results) = post_batch(
        &server,
        &alice.token,
        json!([
            { "query": "{ me { username } }" },
            send("one"),
            { "query": "{ nope }" },
            { "variables": {} },
            send("two"),
            send("three"),
        ]),
    )
    .await?;
    assert_eq!(status, 200);
    let results = results.as_array().ok_or("not an array")?;
    assert_eq!(results.len(), 6);
    assert_eq!(results[0]["data"]["me"]["username"], "alice");
    assert_eq!(results[1]["data"]["sendMessage"]["content"], "one");
    // A bad operation fails alone.
    assert_eq!(
        results[2]["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    assert_eq!(
        results[3]["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    // Each mutation counts against the rate limit: 3 per minute, one used by createChat.
    assert_eq!(results[4]["data"]["sendMessage"]["content"], "two");
    assert_eq!(
        results[5]["errors"][0]["extensions"]["code"],
        "RATE_LIMITED"
    );

    // A batch is bounded.
    let many: Vec<serde_json::Value> = (0..17)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, body) = post_batch(&server, &alice.token, json!(many)).await?;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let (status, _) = post_batch(&server, &alice.token, json!([])).await?;
    assert_eq!(status, 400);
    Ok(())
}
