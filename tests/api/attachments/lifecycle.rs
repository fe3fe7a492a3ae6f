//! What happens to attachments afterwards: retraction, uploads never sent, chat deletion.

use super::*;

/// Polls (bounded) until `check` holds; the sweeper runs every second in these tests.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> TestResult<bool>) -> TestResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await? {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{what}: not within 20 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A server that sweeps every second and keeps unsent uploads for one.
async fn sweeping_server() -> TestResult<TestServer> {
    TestServer::start_with(&["--pending-upload-ttl-secs", "1", "--media-sweep-secs", "1"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retracted_or_deleted_message_stops_serving_its_attachments_and_their_bytes_go()
-> TestResult {
    let server = sweeping_server().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let document = b"%PDF-1.4 retracted soon".to_vec();
    let (message, url) = send_pdf(&server, &alice, &chat, document.clone()).await?;
    assert_eq!(fetch(&server, &url, None, &[]).await?.status(), 200);

    server
        .client(&alice)
        .ok(
            "mutation($m: ID!) { retractMessage(id: $m) { id } }",
            json!({ "m": message }),
        )
        .await?;
    // At once: the URL handed out before answers 404, and the message lists nothing.
    assert_eq!(fetch(&server, &url, None, &[]).await?.status(), 404);
    let seen = server
        .client(&bob)
        .ok(
            "query($m: ID!) { message(id: $m) { attachments { id } } }",
            json!({ "m": message }),
        )
        .await?;
    assert_eq!(seen["message"]["attachments"], json!([]));
    // And with a sweep, the bytes leave the store.
    let stored = blob_file(&server, &document);
    eventually("the retracted file's bytes removed", async || {
        Ok(!stored.exists())
    })
    .await?;

    // A message a moderator deletes takes its files along the same way.
    let other = b"%PDF-1.4 deleted soon".to_vec();
    let (message, url) = send_pdf(&server, &bob, &chat, other.clone()).await?;
    server
        .client(&alice)
        .ok(
            "mutation($m: ID!) { deleteMessage(id: $m) }",
            json!({ "m": message }),
        )
        .await?;
    assert_eq!(fetch(&server, &url, None, &[]).await?.status(), 404);
    let stored = blob_file(&server, &other);
    eventually("the deleted message's file bytes removed", async || {
        Ok(!stored.exists())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_never_sent_are_removed_after_their_ttl() -> TestResult {
    let server = sweeping_server().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    let document = b"%PDF-1.4 never sent".to_vec();
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
    let stored = blob_file(&server, &document);
    assert!(stored.exists());
    eventually("the pending upload removed", async || {
        Ok(fetch(&server, &url, None, &[]).await?.status() == 404)
    })
    .await?;
    eventually("its bytes removed", async || Ok(!stored.exists())).await?;
    // Too late to send it now.
    let late = server
        .client(&alice)
        .code(SEND, json!({ "c": chat, "a": [str_at(&file, "/id")?] }))
        .await?;
    assert_eq!(late, "NOT_FOUND");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_chat_removes_the_bytes_only_it_referenced() -> TestResult {
    let server = sweeping_server().await?;
    let alice = server.user("alice").await?;
    let doomed = group(&server, &alice, &[]).await?;
    let kept = group(&server, &alice, &[]).await?;
    let shared = b"%PDF-1.4 in both chats".to_vec();
    let only_doomed = b"%PDF-1.4 only in the doomed chat".to_vec();
    let mut kept_url = String::new();
    for (chat, bytes) in [
        (&doomed, &shared),
        (&doomed, &only_doomed),
        (&kept, &shared),
    ] {
        let (_, url) = send_pdf(&server, &alice, chat, bytes.clone()).await?;
        if chat == &kept {
            kept_url = url;
        }
    }
    server
        .client(&alice)
        .ok(
            "mutation($c: ID!) { deleteChat(id: $c) }",
            json!({ "c": doomed }),
        )
        .await?;
    let gone = blob_file(&server, &only_doomed);
    eventually("the deleted chat's own bytes removed", async || {
        Ok(!gone.exists())
    })
    .await?;
    assert!(blob_file(&server, &shared).exists());
    let still = fetch(&server, &kept_url, None, &[]).await?;
    assert_eq!(still.status(), 200);
    assert_eq!(still.bytes().await?.as_ref(), shared.as_slice());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exif_rotated_photo_gets_an_upright_thumbnail_without_its_metadata() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let chat = group(&server, &alice, &[]).await?;
    // 64 × 32 stored, EXIF orientation 6 (turn 90° clockwise to show): 32 × 64 shown, its
    // left (red) half on top. Its EXIF also names a camera.
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/media/rotated-exif.jpg"
    ))?;
    let file = upload(&server, &alice, &chat, "photo.jpg", "image/jpeg", photo)
        .await?
        .attachment()?;
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(32), json!(64))
    );
    let sent = server
        .client(&alice)
        .ok(SEND, json!({ "c": chat, "a": [str_at(&file, "/id")?] }))
        .await?;
    let message = str_at(&sent, "/sendMessage/id")?;
    let seen = attachments_with_thumbnail(&server.client(&alice), &message).await?;
    let thumbnail = fetch(&server, &str_at(&seen[0], "/thumbnailUrl")?, None, &[]).await?;
    let bytes = thumbnail.bytes().await?;
    assert!(
        !bytes
            .windows(b"chatql-test-camera".len())
            .any(|w| w == b"chatql-test-camera"),
        "the thumbnail kept the original's EXIF"
    );
    let upright = image::load_from_memory(&bytes)?.to_rgb8();
    assert_eq!(upright.dimensions(), (32, 64));
    let top = upright.get_pixel(16, 8);
    let bottom = upright.get_pixel(16, 56);
    assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
    assert!(
        bottom[2] > 200 && bottom[0] < 60,
        "bottom should be blue: {bottom:?}"
    );
    let metrics = scrape(&format!("http://{}/metrics", server.addr)).await?;
    assert_eq!(
        metrics
            .get(r#"chatql_thumbnails_total{outcome="made"}"#)
            .copied(),
        Some(1.0)
    );
    Ok(())
}
