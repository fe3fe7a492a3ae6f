//! Large files in two steps: announce (`requestUpload`), PUT the bytes, then send.

use super::*;

const REQUEST: &str = "mutation($i: RequestUploadInput!) {
  requestUpload(input: $i) { uploadUrl method expiresAt attachment { id uploaded size mimeType } }
}";

async fn put(
    server: &TestServer,
    url: &str,
    body: Vec<u8>,
    mime: &str,
) -> TestResult<(u16, Value)> {
    let response = reqwest::Client::new()
        .put(absolute(server, url))
        .header("content-type", mime)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_is_announced_put_and_sent() -> TestResult {
    let server = TestServer::start_with(&["--max-upload-bytes", "1000"]).await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(200_000, b' ');
    let a = server.client(&alice);
    let ticket = a
        .ok(REQUEST, json!({ "i": { "chatId": chat, "name": "big.pdf", "mimeType": "application/pdf", "size": big.len() } }))
        .await?;
    let url = str_at(&ticket, "/requestUpload/uploadUrl")?;
    let id = str_at(&ticket, "/requestUpload/attachment/id")?;
    assert_eq!(ticket["requestUpload"]["method"], "PUT");
    assert_eq!(ticket["requestUpload"]["attachment"]["uploaded"], false);
    // Not sendable before its bytes came.
    assert_eq!(
        a.code(SEND, json!({ "c": chat, "a": [id] })).await?,
        "CONFLICT"
    );

    // Bytes of another type, or another size, are refused; the ticket stays usable.
    let (status, body) = put(&server, &url, png(4, 4)?, "application/octet-stream").await?;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE"))
    );
    let (status, body) = put(&server, &url, big[..1000].to_vec(), "application/pdf").await?;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("BAD_USER_INPUT"))
    );
    let mut longer = big.clone();
    longer.push(b' ');
    let (status, _) = put(&server, &url, longer, "application/pdf").await?;
    assert_eq!(status, 413);

    let (status, body) = put(&server, &url, big.clone(), "application/pdf").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attachment"]["id"], id.as_str());
    // A ticket brings bytes once.
    let (status, _) = put(&server, &url, big.clone(), "application/pdf").await?;
    assert_eq!(status, 404);

    let sent = a.ok(SEND, json!({ "c": chat, "a": [id] })).await?;
    let download = fetch(
        &server,
        &str_at(&sent, "/sendMessage/attachments/0/url")?,
        None,
        &[],
    )
    .await?;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await?.as_ref(), big.as_slice());

    // Announcing more than the large-file limit, or a type not accepted, is refused.
    let c = a
        .code(REQUEST, json!({ "i": { "chatId": chat, "name": "x", "mimeType": "application/pdf", "size": 2_000_000_000i64 } }))
        .await?;
    assert_eq!(c, "LIMIT_EXCEEDED");
    let c = a
        .code(REQUEST, json!({ "i": { "chatId": chat, "name": "x.html", "mimeType": "text/html", "size": 10 } }))
        .await?;
    assert_eq!(c, "UNSUPPORTED_MEDIA_TYPE");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn attachments_are_the_senders_own_in_the_same_chat_once() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let elsewhere = group(&server, &alice, &[]).await?;
    let file = upload(&server, &alice, &chat, "a.pdf", "application/pdf", pdf())
        .await?
        .attachment()?;
    let id = str_at(&file, "/id")?;
    let other_chat = upload(
        &server,
        &alice,
        &elsewhere,
        "b.pdf",
        "application/pdf",
        pdf(),
    )
    .await?
    .attachment()?;
    // Bob cannot send Alice's upload; nobody can send an upload into another chat.
    assert_eq!(
        server
            .client(&bob)
            .code(SEND, json!({ "c": chat, "a": [id] }))
            .await?,
        "NOT_FOUND"
    );
    let other = str_at(&other_chat, "/id")?;
    assert_eq!(
        server
            .client(&alice)
            .code(SEND, json!({ "c": chat, "a": [other] }))
            .await?,
        "NOT_FOUND"
    );
    assert_eq!(
        server
            .client(&alice)
            .code(SEND, json!({ "c": chat, "a": [id, id] }))
            .await?,
        "BAD_USER_INPUT"
    );
    server
        .client(&alice)
        .ok(SEND, json!({ "c": chat, "a": [id] }))
        .await?;
    // Once sent, it is that message's.
    assert_eq!(
        server
            .client(&alice)
            .code(SEND, json!({ "c": chat, "a": [id] }))
            .await?,
        "CONFLICT"
    );
    Ok(())
}
