//! GraphiQL works without internet access: the page and everything it loads come from the
//! server (checked in the bytes served, and in a real headless Chromium with every
//! non-loopback request blocked), with SRI digests that match, and it gets tokens into
//! queries and subscriptions.

use base64::Engine;
use sha2::{Digest, Sha384};

use crate::common::*;

/// Hosts and forms that would load code or styles from elsewhere.
const LOADERS: &[&str] = &[
    "unpkg.com",
    "jsdelivr.net",
    "cdnjs.cloudflare.com",
    "esm.sh",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "src=\"http",
    "src='http",
    "src=\"//",
    "src:\"http",
    "href=\"http",
    "href='http",
    "href=\"//",
    "url(http",
    "url(\"http",
    "url('http",
    "url(//",
    "import(\"http",
    "import('http",
    "@import",
];

/// The `<tag …>` openings of `html` for `tag` (e.g. `script`).
fn tags<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    html.match_indices(&open)
        .filter_map(|(at, _)| html[at..].find('>').map(|end| &html[at..at + end]))
        .collect()
}

/// The value of `name="…"` in one tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn sri(bytes: &[u8]) -> String {
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
    )
}

fn hex(bytes: &[u8]) -> String {
    Sha384::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn graphiql_and_everything_it_loads_come_from_the_server() -> TestResult {
    let server = TestServer::start().await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let response = http.get(format!("{base}/")).send().await?;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert!(header(&response, "content-security-policy").contains("script-src 'self'"));
    let html = response.text().await?;
    assert!(
        html.contains("chatql token --user &lt;name&gt; --create"),
        "{html}"
    );
    assert!(html.contains("issueToken"), "{html}");
    for loader in LOADERS {
        assert!(!html.contains(loader), "the page has {loader}:\n{html}");
    }

    // Every reference of the page stays on this origin (or is inline data).
    let mut referenced = Vec::new();
    for tag in ["script", "link", "img", "iframe", "source"] {
        for opening in tags(&html, tag) {
            for name in ["src", "href"] {
                if let Some(url) = attribute(opening, name) {
                    let local = (url.starts_with('/') && !url.starts_with("//"))
                        || url.starts_with("data:");
                    assert!(local, "{url} leaves the server: {opening}");
                    referenced.push(opening);
                }
            }
        }
    }
    assert!(!html.contains("import("), "{html}");

    // Each script and stylesheet: versioned path, SRI that matches the bytes, cached as
    // immutable, typed, no sniffing, no loader inside.
    let recorded = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/graphiql/SHA384SUMS"),
    )?;
    let mut checked = Vec::new();
    for opening in referenced {
        let Some(path) = attribute(opening, "src").or_else(|| attribute(opening, "href")) else {
            continue;
        };
        if path.starts_with("data:") {
            continue;
        }
        let integrity = attribute(opening, "integrity").ok_or(format!("no SRI: {opening}"))?;
        let response = http.get(format!("{base}{path}")).send().await?;
        assert_eq!(response.status(), 200, "{path}");
        let expected_type = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            header(&response, "content-type").starts_with(expected_type),
            "{path}: {}",
            header(&response, "content-type")
        );
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let bytes = response.bytes().await?;
        assert_eq!(integrity, sri(&bytes), "{path}");
        let text = String::from_utf8_lossy(&bytes);
        for loader in LOADERS {
            assert!(!text.contains(loader), "{path} has {loader}");
        }
        let file = path.rsplit('/').next().unwrap_or_default();
        if !file.starts_with("chatql-") {
            // Vendored: the bytes scripts/vendor-graphiql checked against the registry.
            assert!(
                recorded.contains(&format!("{}  {file}", hex(&bytes))),
                "{file} is not what assets/graphiql/SHA384SUMS records"
            );
        }
        checked.push(path.to_owned());
    }
    for expected in [
        "/graphiql/graphiql-4.1.2/graphiql.min.js",
        "/graphiql/graphiql-4.1.2/graphiql.min.css",
        "/graphiql/react-18.3.1/react.production.min.js",
        "/graphiql/react-dom-18.3.1/react-dom.production.min.js",
    ] {
        assert!(
            checked.iter().any(|p| p == expected),
            "{expected}: {checked:?}"
        );
    }
    // Our own script and stylesheet too.
    assert_eq!(checked.len(), 6, "{checked:?}");

    let missing = http
        .get(format!("{base}/graphiql/graphiql-4.1.2/nope.js"))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_opening_the_endpoint_gets_graphiql() -> TestResult {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("http://{}/", server.addr))
        .send()
        .await?
        .text()
        .await?;
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for url in [
        server.url(),
        format!("{}?query=%7B__typename%7D", server.url()),
    ] {
        let response = http.get(&url).header("accept", browser).send().await?;
        assert_eq!(response.status(), 200, "{url}");
        assert!(header(&response, "content-type").starts_with("text/html"));
        assert!(
            response
                .headers()
                .get_all("vary")
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("accept"))),
            "{:?}",
            response.headers()
        );
        assert_eq!(response.text().await?, page, "{url}");
    }

    // Programs get GraphQL, also when they accept HTML after JSON or only through */*.
    let query = [("query", "{ __typename }")];
    for accept in [
        "application/json, text/html",
        "*/*",
        "text/html;q=0.5, application/graphql-response+json",
    ] {
        let response = http
            .get(server.url())
            .query(&query)
            .header("accept", accept)
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{accept}");
        assert!(
            header(&response, "content-type").starts_with("application/"),
            "{accept}"
        );
        let body: serde_json::Value = response.json().await?;
        assert_eq!(body["data"]["__typename"], "Query", "{accept}");
    }
    // POST never answers with the page.
    let response = http
        .post(server.url())
        .header("accept", browser)
        .json(&serde_json::json!({ "query": "{ __typename }" }))
        .send()
        .await?;
    assert!(header(&response, "content-type").starts_with("application/json"));
    Ok(())
}

/// Chromium for the browser check: `CHATQL_CHROMIUM`, else Debian's `/usr/bin/chromium`.
/// Missing, the check is skipped with a loud notice — unless `CI=true`, where it must run.
fn chromium() -> TestResult<Option<std::path::PathBuf>> {
    let path = std::env::var_os("CHATQL_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    if path.exists() {
        return Ok(Some(path));
    }
    let reason = format!(
        "no Chromium at {} (apt-get install chromium, or set CHATQL_CHROMIUM)",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(format!("CI=true requires the GraphiQL browser check: {reason}").into());
    }
    eprintln!("!!!!! GraphiQL browser check SKIPPED: {reason}");
    Ok(None)
}

#[tokio::test(flavor = "multi_thread")]
async fn graphiql_runs_in_a_browser_cut_off_from_the_internet() -> TestResult {
    let Some(chromium) = chromium()? else {
        return Ok(());
    };
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let args = [
        format!("http://{}", server.addr),
        alice.token.clone(),
        alice.username.clone(),
        chromium.display().to_string(),
    ];
    let stdout = node_script("playwright-core", "graphiql.mjs", &args).await?;
    let seen: serde_json::Value = serde_json::from_str(stdout.trim())?;
    let text = |key: &str| seen[key].as_str().unwrap_or_default().to_owned();

    // Nothing left loopback, and GraphiQL's own files came from the server.
    assert_eq!(seen["offLoopback"], serde_json::json!([]), "{seen}");
    let requests = seen["requests"].as_array().ok_or("no requests")?;
    let origin = format!("http://{}/", server.addr);
    assert!(
        requests
            .iter()
            .filter_map(|r| r.as_str())
            .any(|r| r == format!("{origin}graphiql/graphiql-4.1.2/graphiql.min.js")),
        "{seen}"
    );
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");

    // The page says how to get a token and has a place for it.
    assert!(text("banner").contains("chatql token --user <name> --create"));
    assert!(
        text("prefilledHeaders").contains(r#""Authorization": "Bearer <token>""#),
        "{seen}"
    );
    // The typed token was used: the query ran as alice.
    let result: serde_json::Value = serde_json::from_str(&text("queryResult"))?;
    assert_eq!(result["data"]["me"]["username"], "alice", "{seen}");
    // Without a token the subscription shows why the server refused the socket.
    let refused: serde_json::Value = serde_json::from_str(&text("subscriptionResult"))?;
    assert_eq!(refused["errors"][0]["extensions"]["closeCode"], 4403);
    let reason = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("4403") && reason.contains("connection_init needs"),
        "{reason}"
    );
    Ok(())
}
