//! What an upload may be: size, count, type (sniffed from the bytes), pixels.

use futures_util::stream;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn oversize_spoofed_and_unaccepted_files_are_refused_with_clear_codes() -> TestResult {
    let server = TestServer::start_with(&[
        "--max-upload-bytes",
        "10000",
        "--max-uploads-per-request",
        "2",
    ])
    .await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;

    let oversize = upload(
        &server,
        &alice,
        &chat,
        "big.txt",
        "text/plain",
        vec![b'a'; 20_000],
    )
    .await?;
    assert_eq!(
        (oversize.status, oversize.code().as_str()),
        (413, "LIMIT_EXCEEDED")
    );
    assert!(
        oversize.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("10000")
    );

    // A PDF said to be a PNG: the bytes decide, and they disagree.
    let spoofed = upload(&server, &alice, &chat, "cat.png", "image/png", pdf()).await?;
    assert_eq!(
        (spoofed.status, spoofed.code().as_str()),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );
    let message = spoofed.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("image/png") && message.contains("application/pdf"),
        "{message}"
    );
    // HTML is never accepted (it would be a page of this origin), whatever it is called.
    let page = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>".to_vec();
    for declared in ["text/html", "image/png", "application/octet-stream"] {
        let refused = upload(&server, &alice, &chat, "page.html", declared, page.clone()).await?;
        assert_eq!(refused.code(), "UNSUPPORTED_MEDIA_TYPE", "{declared}");
    }
    // A PNG whose header claims 100,000 × 100,000 pixels (a decompression bomb).
    let mut bomb = png(1, 1)?;
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    // A valid chunk all the same: its CRC (over type and data) recomputed.
    let mut crc = flate2::Crc::new();
    crc.update(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let refused = upload(&server, &alice, &chat, "bomb.png", "image/png", bomb).await?;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (413, "LIMIT_EXCEEDED")
    );
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("pixels")
    );
    // Three files where two are allowed.
    let three: Vec<(&str, &str, Vec<u8>)> = (0..3)
        .map(|_| ("x.txt", "text/plain", b"hello".to_vec()))
        .collect();
    let refused = upload_as(&server, Some(&alice.token), &chat, &three).await?;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (413, "LIMIT_EXCEEDED")
    );
    // None of that was kept.
    assert_eq!(stored_blobs(&server), 0);

    // Within the limits all is well.
    let fine = upload(
        &server,
        &alice,
        &chat,
        "notes.md",
        "text/markdown",
        b"# notes".to_vec(),
    )
    .await?
    .attachment()?;
    assert_eq!(fine["mimeType"], "text/plain");

    // Operators see the same in /metrics (the file-count refusal read no file).
    let metrics = scrape(&format!("http://{}/metrics", server.addr)).await?;
    let count = |outcome: &str| {
        metrics
            .get(&format!("chatql_uploads_total{{outcome=\"{outcome}\"}}"))
            .copied()
    };
    assert_eq!(count("too_large"), Some(2.0), "the big file and the bomb");
    assert_eq!(
        count("unsupported_type"),
        Some(4.0),
        "the spoofed PDF, three pages"
    );
    assert_eq!(count("stored"), Some(1.0));
    assert_eq!(metrics.get("chatql_upload_bytes_total").copied(), Some(7.0));
    Ok(())
}

/// The refusal comes as the limit passes, not after the body: an upload that never ends
/// (chunked, no Content-Length) is answered anyway.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_upload_is_refused_once_past_its_limit() -> TestResult {
    let server = TestServer::start_with(&["--max-upload-bytes", "100000"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let operations = json!({ "query": UPLOAD, "variables": { "c": chat, "f": null } });
    let chunk = bytes::Bytes::from(vec![b'a'; 16 * 1024]);
    let endless = stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    let form = Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part(
            "0",
            Part::stream(reqwest::Body::wrap_stream(endless))
                .file_name("endless.txt")
                .mime_str("text/plain")?,
        );
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        reqwest::Client::new()
            .post(server.url())
            .bearer_auth(&alice.token)
            .multipart(form)
            .send(),
    )
    .await?;
    // The server answers 413 and stops reading; the client may see the answer or the
    // connection closed under its feet, but it is not left waiting.
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }
    Ok(())
}

/// Files are stored before their mutations run: a user out of mutations for the minute is
/// refused before a file is read, with when to come back.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_user_is_refused_before_any_file_is_stored() -> TestResult {
    let server = TestServer::start_with(&["--mutations-per-minute", "2"]).await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    // createChat used one of the two; one upload fits, a second does not.
    upload(
        &server,
        &alice,
        &chat,
        "a.txt",
        "text/plain",
        b"first".to_vec(),
    )
    .await?
    .attachment()?;
    let stored = stored_blobs(&server);
    let refused = upload(
        &server,
        &alice,
        &chat,
        "b.txt",
        "text/plain",
        b"second".to_vec(),
    )
    .await?;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (429, "RATE_LIMITED")
    );
    let wait: u64 = refused.retry_after.as_deref().unwrap_or("").parse()?;
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert_eq!(
        stored_blobs(&server),
        stored,
        "the refused file was not kept"
    );
    Ok(())
}
