//! The S3 store against an S3-compatible server: moto's (`pip install 'moto[server]'`,
//! which `.ci/run` does), started on a free loopback port for the test. Without
//! `moto_server` the test is skipped with a loud notice, unless CI=true, where it fails.

use std::process::Stdio;

use super::*;

/// A moto S3 server for one test, stopped when dropped.
struct Moto {
    child: tokio::process::Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Moto {
    async fn start() -> TestResult<Option<Self>> {
        let program = std::env::var("CHATQL_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = match tokio::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                return Err(format!("CI=true and no S3 test server (`{program}`: {e})").into());
            }
            Err(e) => {
                eprintln!(
                    "!!!!! S3 store test SKIPPED: `{program}` did not start ({e}); pip install 'moto[server]'"
                );
                return Ok(None);
            }
        };
        let moto = Self { child, port };
        // Ready once it answers (bounded: moto starts in a second or two).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let created = reqwest::Client::new()
                .put(format!("{}/chatql", moto.endpoint()))
                .send()
                .await;
            if matches!(&created, Ok(r) if r.status().is_success()) {
                return Ok(Some(moto));
            }
            if tokio::time::Instant::now() > deadline {
                return Err("moto_server did not answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the bucket holds an object at this key (by listing: moto answers an
    /// unsigned GET of an object 403, a listing it serves).
    async fn has(&self, key: &str) -> TestResult<bool> {
        let listing = reqwest::get(format!("{}/chatql?prefix={key}", self.endpoint()))
            .await?
            .text()
            .await?;
        Ok(listing.contains(&format!("<Key>{key}</Key>")))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn attachments_live_in_an_s3_bucket_when_configured_so() -> TestResult {
    let Some(moto) = Moto::start().await? else {
        return Ok(());
    };
    let store = format!(
        "s3://chatql/media?endpoint={}&aws_allow_http=true&region=us-east-1\
         &access_key_id=test&secret_access_key=test",
        moto.endpoint()
    );
    let server = TestServer::start_with(&[
        "--media-store",
        &store,
        "--pending-upload-ttl-secs",
        "1",
        "--media-sweep-secs",
        "1",
    ])
    .await?;
    let alice = server.user("alice").await?;
    let bob = server.user("bob").await?;
    let chat = group(&server, &alice, &[&bob]).await?;
    let picture = png(400, 200)?;
    let document = pdf();
    let image = upload(
        &server,
        &alice,
        &chat,
        "wide.png",
        "image/png",
        picture.clone(),
    )
    .await?
    .attachment()?;
    let file = upload(
        &server,
        &alice,
        &chat,
        "doc.pdf",
        "application/pdf",
        document.clone(),
    )
    .await?
    .attachment()?;
    let key = |bytes: &[u8]| {
        let sha = sha256_hex(bytes);
        format!("media/blobs/{}/{sha}", &sha[..2])
    };
    assert!(moto.has(&key(&picture)).await?, "the PNG is in the bucket");
    assert!(moto.has(&key(&document)).await?, "the PDF is in the bucket");
    assert!(
        !blob_file(&server, &picture).exists(),
        "nothing on the local disk"
    );

    let ids = [str_at(&image, "/id")?, str_at(&file, "/id")?];
    let sent = server
        .client(&alice)
        .ok(SEND, json!({ "c": chat, "a": ids }))
        .await?;
    let message = str_at(&sent, "/sendMessage/id")?;
    let seen = attachments_with_thumbnail(&server.client(&bob), &message).await?;
    let thumbnail = fetch(&server, &str_at(&seen[0], "/thumbnailUrl")?, None, &[]).await?;
    assert_eq!(thumbnail.status(), 200);
    let decoded = image::load_from_memory(&thumbnail.bytes().await?)?;
    assert_eq!((decoded.width(), decoded.height()), (320, 160));
    let url = str_at(&seen[1], "/url")?;
    let part = fetch(&server, &url, None, &[("range", "bytes=1-3")]).await?;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await?.as_ref(), b"PDF");
    let whole = fetch(&server, &url, Some(&bob.token), &[]).await?;
    assert_eq!(whole.bytes().await?.as_ref(), document.as_slice());

    // Retracted: the objects leave the bucket with the next sweep.
    server
        .client(&alice)
        .ok(
            "mutation($m: ID!) { retractMessage(id: $m) { id } }",
            json!({ "m": message }),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while moto.has(&key(&document)).await? || moto.has(&key(&picture)).await? {
        if tokio::time::Instant::now() > deadline {
            return Err("the retracted files stayed in the bucket for 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
