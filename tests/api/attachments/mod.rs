//! Attachments through the real server: uploads with a real multipart client (reqwest's,
//! as Apollo Upload and urql send them), the two-step flow, sending and live events,
//! thumbnails, serving (signed URLs, bearer tokens, ranges, caching, safe headers), limits
//! and spoofed types, and the lifecycle (retraction, sweeping, chat deletion).

use std::io::Cursor;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::*;

mod lifecycle;
mod limits;
mod s3;
mod serving;
mod two_step;

pub(crate) const UPLOAD: &str = "mutation($c: ID!, $f: Upload!) {
  uploadAttachment(chatId: $c, file: $f) { id name mimeType size width height uploaded url thumbnailUrl }
}";

pub(crate) const SEND: &str = "mutation($c: ID!, $a: [ID!]) {
  sendMessage(input: {chatId: $c, content: \"\", kind: FILE, attachmentIds: $a}) {
    id attachments { id name mimeType size width height url thumbnailUrl }
  }
}";

/// The answer to an upload: status and body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Answer {
    pub fn code(&self) -> String {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    }

    pub fn attachment(&self) -> TestResult<Value> {
        if self.status != 200 || self.body.get("errors").is_some() {
            return Err(format!("upload failed: {} {}", self.status, self.body).into());
        }
        Ok(self.body["data"]["uploadAttachment"].clone())
    }
}

/// Uploads files in one multipart request (`map` puts file i at `variables.f` of
/// operation i when several operations are batched; one file: a single operation).
pub(crate) async fn upload_as(
    server: &TestServer,
    token: Option<&str>,
    chat: &str,
    files: &[(&str, &str, Vec<u8>)],
) -> TestResult<Answer> {
    let (operations, map) = if files.len() == 1 {
        (
            json!({ "query": UPLOAD, "variables": { "c": chat, "f": null } }),
            json!({ "0": ["variables.f"] }),
        )
    } else {
        let ops: Vec<Value> = files
            .iter()
            .map(|_| json!({ "query": UPLOAD, "variables": { "c": chat, "f": null } }))
            .collect();
        let map: serde_json::Map<String, Value> = (0..files.len())
            .map(|i| (i.to_string(), json!([format!("{i}.variables.f")])))
            .collect();
        (Value::Array(ops), Value::Object(map))
    };
    let mut form = Form::new()
        .text("operations", operations.to_string())
        .text("map", map.to_string());
    for (i, (name, mime, bytes)) in files.iter().enumerate() {
        let part = Part::bytes(bytes.clone())
            .file_name(name.to_string())
            .mime_str(mime)?;
        form = form.part(i.to_string(), part);
    }
    let mut request = reqwest::Client::new()
        .post(server.url())
        .header("accept", "application/graphql-response+json")
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await?;
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// Uploads one file as `user`.
pub(crate) async fn upload(
    server: &TestServer,
    user: &TestUser,
    chat: &str,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> TestResult<Answer> {
    upload_as(server, Some(&user.token), chat, &[(name, mime, bytes)]).await
}

/// A PNG of `width` × `height` with a gradient (no transparency).
pub(crate) fn png(width: u32, height: u32) -> TestResult<Vec<u8>> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// A small valid PDF.
pub(crate) fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n"
        .to_vec()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the filesystem store keeps a blob, under the test server's data dir.
pub(crate) fn blob_file(server: &TestServer, bytes: &[u8]) -> std::path::PathBuf {
    let sha = sha256_hex(bytes);
    server
        .db
        .dir
        .path()
        .join("media")
        .join("blobs")
        .join(&sha[..2])
        .join(sha)
}

/// How many blobs the filesystem store holds under the test server's data dir.
pub(crate) fn stored_blobs(server: &TestServer) -> usize {
    let blobs = server.db.dir.path().join("media").join("blobs");
    let Ok(fanouts) = std::fs::read_dir(blobs) else {
        return 0;
    };
    fanouts
        .filter_map(Result::ok)
        .filter_map(|dir| std::fs::read_dir(dir.path()).ok())
        .map(Iterator::count)
        .sum()
}

/// Uploads a PDF as `user` and sends it alone in a message; the message's id and the
/// file's signed URL.
pub(crate) async fn send_pdf(
    server: &TestServer,
    user: &TestUser,
    chat: &str,
    bytes: Vec<u8>,
) -> TestResult<(String, String)> {
    let file = upload(server, user, chat, "file.pdf", "application/pdf", bytes)
        .await?
        .attachment()?;
    let sent = server
        .client(user)
        .ok(SEND, json!({ "c": chat, "a": [str_at(&file, "/id")?] }))
        .await?;
    Ok((
        str_at(&sent, "/sendMessage/id")?,
        str_at(&sent, "/sendMessage/attachments/0/url")?,
    ))
}

/// An absolute URL for a path the API gave (`/media/…`).
pub(crate) fn absolute(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

/// GET of a media URL, with an optional bearer token and extra headers.
pub(crate) async fn fetch(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> TestResult<reqwest::Response> {
    let mut request = reqwest::Client::new().get(absolute(server, path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(request.send().await?)
}

/// Waits (polling, bounded) until an attachment of a message has its thumbnail, and
/// returns the message's attachments then. Thumbnails are made off the request path.
pub(crate) async fn attachments_with_thumbnail(
    client: &Client,
    message: &str,
) -> TestResult<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let data = client
            .ok(
                "query($m: ID!) { message(id: $m) { attachments { id mimeType width height url thumbnailUrl } } }",
                json!({ "m": message }),
            )
            .await?;
        let list = data["message"]["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.iter().any(|a| a["thumbnailUrl"].is_string()) {
            return Ok(list);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("no thumbnail within 20 s: {data}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The walkthrough of the issue: a member uploads a PNG and a PDF with a multipart client,
/// sends them, another member gets them live, sees the thumbnail and downloads the file.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_sends_a_png_and_a_pdf_and_another_member_sees_and_downloads_them() -> TestResult {
    use crate::common::ws::WsClient;
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;

    let picture = png(640, 480)?;
    let image = upload(
        &server,
        &alice,
        &chat,
        "holiday.png",
        "image/png",
        picture.clone(),
    )
    .await?
    .attachment()?;
    assert_eq!(image["name"], "holiday.png");
    assert_eq!(image["mimeType"], "image/png");
    assert_eq!(image["size"], picture.len());
    assert_eq!(
        (image["width"].clone(), image["height"].clone()),
        (json!(640), json!(480))
    );
    assert_eq!(image["uploaded"], true);
    let document = pdf();
    let file = upload(
        &server,
        &alice,
        &chat,
        "Quarterly report.pdf",
        "application/pdf",
        document.clone(),
    )
    .await?
    .attachment()?;
    assert_eq!(file["mimeType"], "application/pdf");
    assert!(file["width"].is_null() && file["thumbnailUrl"].is_null());

    let mut feed = WsClient::user(&server, &bob).await?;
    feed.subscribe(
        "1",
        "subscription($c: ID!) { chatEvents(chatId: $c) { __typename
           ... on MessageAdded { message { id content attachments { id name mimeType size } } } } }",
        json!({ "c": chat }),
    )
    .await?;
    feed.until_live("1", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;

    let ids = [str_at(&image, "/id")?, str_at(&file, "/id")?];
    let sent = server
        .client(&alice)
        .ok(SEND, json!({ "c": chat, "a": ids }))
        .await?;
    let message = str_at(&sent, "/sendMessage/id")?;
    assert_eq!(
        strings_at(&sent, "/sendMessage/attachments", "name"),
        vec!["holiday.png", "Quarterly report.pdf"]
    );
    // The event carries them.
    let event = feed.next("1").await?;
    assert_eq!(event["chatEvents"]["message"]["id"], message.as_str());
    assert_eq!(
        strings_at(&event, "/chatEvents/message/attachments", "name"),
        vec!["holiday.png", "Quarterly report.pdf"]
    );

    // Bob sees the thumbnail: a JPEG (the PNG has no transparency) of at most 320 px.
    let seen = attachments_with_thumbnail(&server.client(&bob), &message).await?;
    let thumbnail_url = str_at(&seen[0], "/thumbnailUrl")?;
    let thumbnail = fetch(&server, &thumbnail_url, None, &[]).await?;
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let decoded = image::load_from_memory(&thumbnail.bytes().await?)?;
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    assert!(seen[1]["thumbnailUrl"].is_null(), "a PDF has no thumbnail");

    // …and downloads the PDF by its signed URL, no header needed (as a link would).
    let pdf_url = str_at(&seen[1], "/url")?;
    let download = fetch(&server, &pdf_url, None, &[]).await?;
    assert_eq!(download.status(), 200);
    let headers = download.headers().clone();
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(
        headers["content-length"],
        document.len().to_string().as_str()
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-disposition"]
            .to_str()?
            .starts_with("attachment; filename=\"Quarterly report.pdf\""),
        "{headers:?}"
    );
    assert!(
        headers["content-security-policy"]
            .to_str()?
            .contains("sandbox")
    );
    assert!(
        headers["cache-control"]
            .to_str()?
            .starts_with("private, max-age=")
    );
    assert_eq!(download.bytes().await?.as_ref(), document.as_slice());
    // The picture itself is shown inline.
    let original = fetch(&server, &str_at(&seen[0], "/url")?, None, &[]).await?;
    assert!(
        original.headers()["content-disposition"]
            .to_str()?
            .starts_with("inline;")
    );
    assert_eq!(original.bytes().await?.as_ref(), picture.as_slice());
    Ok(())
}

/// Content addressing: two uploads of the same bytes are two attachments over one stored
/// blob.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_bytes_are_stored_once() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let bytes = png(10, 10)?;
    let first = upload(&server, &alice, &chat, "a.png", "image/png", bytes.clone())
        .await?
        .attachment()?;
    let second = upload(&server, &bob, &chat, "b.png", "image/png", bytes.clone())
        .await?
        .attachment()?;
    assert_ne!(first["id"], second["id"]);
    assert!(blob_file(&server, &bytes).is_file());
    let count = stored_blobs(&server);
    // One original (thumbnails may have been made meanwhile: at most one, shared too).
    assert!((1..=2).contains(&count), "{count} blobs");
    Ok(())
}

/// The same from a frontend's own stack: Apollo Client with apollo-upload-client, `File`
/// objects in the variables (tests/js/upload.mjs).
#[tokio::test(flavor = "multi_thread")]
async fn apollo_upload_client_uploads_and_the_other_member_downloads() -> TestResult {
    let server = TestServer::start().await?;
    let (alice, bob) = (server.user("alice").await?, server.user("bob").await?);
    let chat = group(&server, &alice, &[&bob]).await?;
    let args = [server.url(), alice.token.clone(), bob.token.clone(), chat];
    let out = node_script("apollo-upload-client", "upload.mjs", &args).await?;
    for step in ["upload and download: ok", "spoofed type refused: ok"] {
        assert!(out.contains(step), "{out}");
    }
    Ok(())
}

/// A thumbnail made after the message was sent reaches subscribers as a change of that
/// message (`MessageEdited`), so a feed alone ends up showing it.
#[tokio::test(flavor = "multi_thread")]
async fn a_thumbnail_made_after_the_send_reaches_subscribers() -> TestResult {
    use crate::common::ws::WsClient;
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let mut feed = WsClient::user(&server, &bob).await?;
    feed.subscribe(
        "1",
        "subscription($c: ID!) { chatEvents(chatId: $c) { __typename
           ... on MessageAdded { message { id content attachments { thumbnailUrl } } }
           ... on MessageEdited { message { id attachments { thumbnailUrl } } } } }",
        json!({ "c": chat }),
    )
    .await?;
    feed.until_live("1", async |m| {
        send(&server, &alice, &chat, &m).await.map(drop)
    })
    .await?;
    // Big enough that decoding it takes longer than sending the message.
    let photo = upload(
        &server,
        &alice,
        &chat,
        "big.png",
        "image/png",
        png(2400, 1600)?,
    )
    .await?
    .attachment()?;
    let sent = server
        .client(&alice)
        .ok(SEND, json!({ "c": chat, "a": [str_at(&photo, "/id")?] }))
        .await?;
    let message = str_at(&sent, "/sendMessage/id")?;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let event = tokio::time::timeout(Duration::from_secs(30), feed.next("1")).await??;
        let event = &event["chatEvents"];
        seen.push(event["__typename"].clone());
        if event["message"]["id"] == message.as_str()
            && event["message"]["attachments"][0]["thumbnailUrl"].is_string()
        {
            return Ok(());
        }
    }
    Err(format!("no event carried the thumbnail: {seen:?}").into())
}
