//! Full-text search: only the caller's chats, ranked, highlighted, paged; the query
//! syntax and filters; retracted, edited and deleted messages; bad input; and on
//! PostgreSQL a changed text search configuration.

use super::*;

const SEARCH: &str = "query($q: String!, $c: ID, $s: ID, $from: DateTime, $until: DateTime,
  $first: Int, $after: String) {
  searchMessages(query: $q, chatId: $c, sender: $s, from: $from, until: $until,
                 first: $first, after: $after) {
    edges { cursor node { id content } searchMatch { rank snippet snippetHtml highlights { start end } } }
    nodes { content }
    pageInfo { hasNextPage endCursor }
  }
}";

async fn found(client: &Client, variables: Value) -> TestResult<Vec<String>> {
    let data = client.ok(SEARCH, variables).await?;
    Ok(strings_at(&data, "/searchMessages/nodes", "content"))
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_words_in_the_callers_chats_best_first_with_highlights() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let ours = group(&server, &alice, &[&bob]).await?;
    let theirs = group(&server, &carol, &[&bob]).await?;
    send(
        &server,
        &alice,
        &ours,
        "deploy deploy deploy: the deploy checklist",
    )
    .await?;
    send(&server, &bob, &ours, "we deployed the fix yesterday").await?;
    send(&server, &alice, &ours, "lunch at noon?").await?;
    send(&server, &carol, &theirs, "secret deploy plans").await?;
    let a = server.client(&alice);

    // Stemmed ("deployed" matches), only chats alice is in, the message saying it most first.
    let data = a.ok(SEARCH, json!({"q": "deploying"})).await?;
    assert_eq!(
        strings_at(&data, "/searchMessages/nodes", "content"),
        [
            "deploy deploy deploy: the deploy checklist",
            "we deployed the fix yesterday"
        ]
    );
    let edges = &data["searchMessages"]["edges"];
    let ranks: Vec<f64> = (0..2)
        .filter_map(|i| edges[i]["searchMatch"]["rank"].as_f64())
        .collect();
    assert!(ranks.len() == 2 && ranks[0] > ranks[1], "{ranks:?}");
    let second = &edges[1]["searchMatch"];
    assert_eq!(second["snippet"], "we deployed the fix yesterday");
    assert_eq!(second["highlights"], json!([{"start": 3, "end": 11}]));
    assert_eq!(
        second["snippetHtml"],
        "we <mark>deployed</mark> the fix yesterday"
    );
    assert_eq!(data["searchMessages"]["pageInfo"]["hasNextPage"], false);

    // Bob, in both chats, finds both chats' messages; carol only her chat's.
    assert_eq!(
        found(&server.client(&bob), json!({"q": "deploy"}))
            .await?
            .len(),
        3
    );
    assert_eq!(
        found(&server.client(&carol), json!({"q": "deploy"})).await?,
        ["secret deploy plans"]
    );

    // Highlights count UTF-16 code units, and the HTML form escapes the content.
    send(&server, &alice, &ours, "🚀 x<y launch & \"go\"").await?;
    let data = a.ok(SEARCH, json!({"q": "launch"})).await?;
    let hit = &data["searchMessages"]["edges"][0]["searchMatch"];
    assert_eq!(hit["snippet"], "🚀 x<y launch & \"go\"");
    assert_eq!(hit["highlights"], json!([{"start": 7, "end": 13}]));
    assert_eq!(
        hit["snippetHtml"],
        "🚀 x&lt;y <mark>launch</mark> &amp; &quot;go&quot;"
    );
    // A match in another list has no searchMatch.
    let page = a
        .ok(
            "query($c: ID!) { messages(chatId: $c, first: 1) { edges { searchMatch { rank } } } }",
            json!({"c": ours}),
        )
        .await?;
    assert_eq!(page["messages"]["edges"][0]["searchMatch"], Value::Null);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn phrases_alternatives_exclusions_and_filters() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let first = group(&server, &alice, &[&bob]).await?;
    let second = group(&server, &alice, &[&bob]).await?;
    let early = send(&server, &alice, &first, "release notes are drafted").await?;
    send(&server, &bob, &first, "notes for the release").await?;
    send(&server, &bob, &second, "release party on friday").await?;
    send(&server, &alice, &second, "release is wip").await?;
    backdate(&server, &early, 3600).await?;
    let a = server.client(&alice);
    let search = async |q: &str, extra: Value| -> TestResult<Vec<String>> {
        let mut variables = json!({"q": q});
        if let (Some(vars), Some(extra)) = (variables.as_object_mut(), extra.as_object()) {
            vars.extend(extra.clone());
        }
        Ok(sorted(found(&a, variables).await?))
    };

    assert_eq!(
        search("\"release notes\"", json!({})).await?,
        ["release notes are drafted"]
    );
    assert_eq!(
        search("release friday or drafted", json!({})).await?,
        ["release notes are drafted", "release party on friday"]
    );
    assert_eq!(
        search("release -notes -wip", json!({})).await?,
        ["release party on friday"]
    );
    assert_eq!(
        search("release", json!({"c": second})).await?,
        ["release is wip", "release party on friday"]
    );
    assert_eq!(
        search("release", json!({"s": bob.id})).await?,
        ["notes for the release", "release party on friday"]
    );
    let half_hour_ago = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    assert_eq!(
        search("notes", json!({"from": half_hour_ago})).await?,
        ["notes for the release"]
    );
    assert_eq!(
        search("notes", json!({"until": half_hour_ago})).await?,
        ["release notes are drafted"]
    );
    // Text that looks like FTS5 or tsquery syntax is only words.
    assert_eq!(
        search("(notes*) ^release: \"", json!({})).await?,
        ["notes for the release", "release notes are drafted"]
    );
    assert_eq!(
        search("release: party!", json!({})).await?,
        ["release party on friday"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn retracted_edited_deleted_and_removed() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let (a, b) = (server.client(&alice), server.client(&bob));
    let retracted = send(&server, &bob, &chat, "an embarrassing typo").await?;
    let edited = send(&server, &bob, &chat, "meeting on tuesday").await?;
    let deleted = send(&server, &bob, &chat, "spam spam spam").await?;
    send(&server, &alice, &chat, "tuesday works, no typo").await?;

    b.ok(
        "mutation($m: ID!) { retractMessage(id: $m) { id } }",
        json!({"m": retracted}),
    )
    .await?;
    assert_eq!(
        found(&a, json!({"q": "embarrassing"})).await?,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&a, json!({"q": "typo"})).await?,
        ["tuesday works, no typo"]
    );

    b.ok(
        "mutation($m: ID!, $t: String!) { editMessage(id: $m, content: $t) { id } }",
        json!({"m": edited, "t": "meeting on wednesday"}),
    )
    .await?;
    assert_eq!(
        found(&a, json!({"q": "wednesday"})).await?,
        ["meeting on wednesday"]
    );
    assert_eq!(
        found(&a, json!({"q": "tuesday"})).await?,
        ["tuesday works, no typo"]
    );

    a.ok(
        "mutation($m: ID!) { deleteMessage(id: $m) }",
        json!({"m": deleted}),
    )
    .await?;
    assert_eq!(found(&a, json!({"q": "spam"})).await?, Vec::<String>::new());

    // A member who leaves no longer finds the chat's messages; naming it is FORBIDDEN.
    remove_member(&server, &alice, &chat, &bob).await?;
    assert_eq!(
        found(&b, json!({"q": "wednesday"})).await?,
        Vec::<String>::new()
    );
    assert_eq!(
        b.code(SEARCH, json!({"q": "wednesday", "c": chat})).await?,
        "FORBIDDEN"
    );

    // Clearing the chat takes its messages out of search as well.
    a.ok(
        "mutation($c: ID!) { clearChat(id: $c) }",
        json!({"c": chat}),
    )
    .await?;
    assert_eq!(
        found(&a, json!({"q": "tuesday"})).await?,
        Vec::<String>::new()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_through_every_match_once_best_first() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut sent = Vec::new();
    for i in 0..23 {
        // Some say "report" more often, so ranks differ, and some tie.
        let content = format!("{} {i}", vec!["report"; 1 + i % 3].join(" and "));
        send(&server, &bob, &chat, &content).await?;
        sent.push(content);
    }
    send(&server, &bob, &chat, "unrelated").await?;
    let a = server.client(&alice);
    let (mut seen, mut ranks, mut after) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let data = a
            .ok(SEARCH, json!({"q": "report", "first": 10, "after": after}))
            .await?;
        let page = &data["searchMessages"];
        let edges = page["edges"].as_array().ok_or("no edges")?;
        assert!(edges.len() <= 10);
        for edge in edges {
            seen.push(str_at(edge, "/node/content")?);
            ranks.push(edge["searchMatch"]["rank"].as_f64().ok_or("no rank")?);
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = Some(str_at(page, "/pageInfo/endCursor")?);
    }
    assert_eq!(sorted(seen.clone()), sorted(sent));
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{ranks:?}");
    assert!(ranks.first() > ranks.last(), "{ranks:?}");

    assert_eq!(
        a.code(SEARCH, json!({"q": "report", "after": "bm90LWEtY3Vyc29y"}))
            .await?,
        "BAD_USER_INPUT"
    );
    Ok(())
}

/// Adds `count` messages saying `deploy noise N` to `chat`, straight into the table (the
/// search index follows by trigger or generated column, as for a send).
async fn add_noise(server: &TestServer, chat: &str, count: i64) -> TestResult {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    let chat = chatql::vocabulary::ids::ChatId::from_global(chat).map_err(|e| e.to_string())?;
    let mut conn = server.app.db().conn().await?;
    // $1 before $2 in the text: SQLite numbers `$n` placeholders by first use.
    chatql::with_conn!(&mut conn, |c| diesel::sql_query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO messages (chat_id, role, kind, content, created_at) \
         SELECT $2, 'USER', 'TEXT', 'deploy noise ' || i, CURRENT_TIMESTAMP FROM n"
    )
    .bind::<BigInt, _>(count)
    .bind::<BigInt, _>(chat.0)
    .execute(c)
    .await)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_a_users_few_matches_among_thousands_in_other_chats() -> TestResult {
    // The ranked window is the newest matches in the caller's chats, not of the whole
    // database: matches elsewhere, however many and however new, take no place in it.
    let server = TestServer::start().await?;
    let (alice, bob, carol) = (
        server.user("alice").await?,
        server.user("bob").await?,
        server.user("carol").await?,
    );
    let ours = group(&server, &alice, &[&bob]).await?;
    let theirs = group(&server, &carol, &[&bob]).await?;
    send(&server, &alice, &ours, "deploy the old branch").await?;
    send(&server, &bob, &ours, "deploy again").await?;
    add_noise(&server, &theirs, 6_000).await?;

    // Alice's two matches are older than the 6,000 in carol's chat, which she is not in.
    assert_eq!(
        sorted(found(&server.client(&alice), json!({"q": "deploy"})).await?),
        ["deploy again", "deploy the old branch"]
    );
    // Bob is in both: his search ranks the newest 1,000 matches, all of them noise (one
    // match each, ties newest first), so the first is the last one added.
    let data = server
        .client(&bob)
        .ok(SEARCH, json!({"q": "deploy", "first": 3}))
        .await?;
    assert_eq!(
        strings_at(&data, "/searchMessages/nodes", "content"),
        [
            "deploy noise 6000",
            "deploy noise 5999",
            "deploy noise 5998"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_searches_are_refused_with_codes() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, mallory) = (server.user("alice").await?, server.user("mallory").await?);
    let chat = group(&server, &alice, &[]).await?;
    let a = server.client(&alice);
    for nothing in ["", "   ", "!?", "-alone"] {
        assert_eq!(
            a.code(SEARCH, json!({"q": nothing})).await?,
            "BAD_USER_INPUT",
            "{nothing:?}"
        );
    }
    assert_eq!(
        a.code(SEARCH, json!({"q": "x".repeat(257)})).await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        a.code(SEARCH, json!({"q": vec!["w"; 33].join(" ")}))
            .await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        a.code(SEARCH, json!({"q": "w", "first": 1000})).await?,
        "LIMIT_EXCEEDED"
    );
    assert_eq!(
        server
            .client(&mallory)
            .code(SEARCH, json!({"q": "w", "c": chat}))
            .await?,
        "FORBIDDEN"
    );
    assert_eq!(
        server.anonymous().code(SEARCH, json!({"q": "w"})).await?,
        "UNAUTHENTICATED"
    );
    Ok(())
}

/// PostgreSQL's text search configuration is a setting: `simple` does not stem, and
/// going back to `english` rebuilds the column, so "deployed" matches "deploy" again.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_text_search_config_is_configurable() -> TestResult {
    if backend() != TestBackend::Postgres {
        return Ok(());
    }
    let server = TestServer::start_with(&["--search-config", "simple"]).await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    send(&server, &bob, &chat, "we deployed it").await?;
    let a = server.client(&alice);
    assert_eq!(
        found(&a, json!({"q": "deploy"})).await?,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&a, json!({"q": "deployed"})).await?,
        ["we deployed it"]
    );

    let english = server.sibling(&["--search-config", "english"]).await?;
    let a = english.client(&alice);
    assert_eq!(found(&a, json!({"q": "deploy"})).await?, ["we deployed it"]);
    // "it" is an English stop word: a search of stop words only finds nothing.
    assert_eq!(found(&a, json!({"q": "it"})).await?, Vec::<String>::new());

    let unknown = TestServer::start_on(
        TestDb {
            url: server.db.url.clone(),
            dir: tempfile::tempdir()?,
        },
        &["--search-config", "klingon"],
    )
    .await;
    assert!(unknown.is_err(), "an unknown configuration must not start");
    Ok(())
}
