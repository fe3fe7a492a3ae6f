//! Who may fetch an attachment's bytes, and how they are served: signed URLs and bearer
//! tokens, members only, ranges, revalidation.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn only_members_fetch_and_a_signed_url_cannot_be_bent() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let carol = server.user("carol").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let document = pdf();
    let file = upload(
        &server,
        &alice,
        &chat,
        "a.pdf",
        "application/pdf",
        document.clone(),
    )
    .await?
    .attachment()?;
    let url = str_at(&file, "/url")?;
    let (path, query) = url.split_once('?').ok_or("a signed URL has a query")?;

    // A member's bearer token works on the bare path; an outsider's is FORBIDDEN.
    let by_member = fetch(&server, path, Some(&bob.token), &[]).await?;
    assert_eq!(by_member.status(), 200);
    assert_eq!(by_member.headers()["vary"], "authorization");
    assert_eq!(by_member.bytes().await?.as_ref(), document.as_slice());
    let by_outsider = fetch(&server, path, Some(&carol.token), &[]).await?;
    assert_eq!(by_outsider.status(), 403);
    let body: serde_json::Value = by_outsider.json().await?;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    // No credential at all: 401.
    assert_eq!(fetch(&server, path, None, &[]).await?.status(), 401);

    // The signature covers the path and the expiry: another attachment's path, a later
    // expiry or a changed signature are refused.
    let other = upload(
        &server,
        &alice,
        &chat,
        "b.pdf",
        "application/pdf",
        b"%PDF-1.4 other".to_vec(),
    )
    .await?
    .attachment()?;
    let other_path = str_at(&other, "/url")?;
    let other_path = other_path
        .split_once('?')
        .map(|(p, _)| p)
        .unwrap_or_default();
    let bent = [
        format!("{other_path}?{query}"),
        format!("{path}/thumbnail?{query}"),
        url.replace("expires=", "expires=9"),
        format!("{}A", url),
    ];
    for attempt in bent {
        let answer = fetch(&server, &attempt, None, &[]).await?;
        assert!(
            [403, 404].contains(&answer.status().as_u16()),
            "{attempt}: {}",
            answer.status()
        );
    }
    // An id that names nothing, or is not an attachment's: 404.
    let missing = fetch(
        &server,
        "/media/QXR0YWNobWVudDo5OTk5OTk",
        Some(&bob.token),
        &[],
    )
    .await?;
    assert_eq!(missing.status(), 404);
    let not_an_id = fetch(&server, "/media/nonsense", Some(&bob.token), &[]).await?;
    assert_eq!(not_an_id.status(), 404);
    // An outsider cannot upload into the chat either.
    let refused = upload(&server, &carol, &chat, "c.pdf", "application/pdf", pdf()).await?;
    assert_eq!(refused.code(), "FORBIDDEN");
    // Nor can anyone without a token send files at all.
    let anonymous = upload_as(&server, None, &chat, &[("d.pdf", "application/pdf", pdf())]).await?;
    assert_eq!(
        (anonymous.status, anonymous.code().as_str()),
        (401, "UNAUTHENTICATED")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_and_revalidation_work_as_http_says() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let document = pdf();
    let file = upload(
        &server,
        &alice,
        &chat,
        "a.pdf",
        "application/pdf",
        document.clone(),
    )
    .await?
    .attachment()?;
    let url = str_at(&file, "/url")?;

    let first = fetch(&server, &url, None, &[("range", "bytes=0-3")]).await?;
    assert_eq!(first.status(), 206);
    assert_eq!(
        first.headers()["content-range"],
        format!("bytes 0-3/{}", document.len()).as_str()
    );
    assert_eq!(first.headers()["content-length"], "4");
    assert_eq!(first.bytes().await?.as_ref(), b"%PDF");
    let tail = fetch(&server, &url, None, &[("range", "bytes=-6")]).await?;
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await?.as_ref(),
        &document[document.len() - 6..]
    );
    let beyond = format!("bytes={}-", document.len() + 10);
    let unsatisfiable = fetch(&server, &url, None, &[("range", &beyond)]).await?;
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(
        unsatisfiable.headers()["content-range"],
        format!("bytes */{}", document.len()).as_str()
    );

    let whole = fetch(&server, &url, None, &[]).await?;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let etag = whole.headers()["etag"].to_str()?.to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&document)));
    let again = fetch(&server, &url, None, &[("if-none-match", &etag)]).await?;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await?.is_empty());
    Ok(())
}
