//! Responses are compressed as the client accepts: brotli, zstd or gzip.

use std::io::Read;

use serde_json::json;

use crate::common::*;

fn decode(encoding: &str, bytes: &[u8]) -> TestResult<Vec<u8>> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
        }
        "br" => {
            brotli_decompressor::Decompressor::new(bytes, 4096).read_to_end(&mut out)?;
        }
        "zstd" => out = zstd::decode_all(bytes)?,
        other => return Err(format!("no decoder for {other}").into()),
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_come_in_brotli_zstd_or_gzip_as_accepted() -> TestResult {
    let server = TestServer::start().await?;
    // The schema's own type names: a response well over the size worth compressing.
    let query = "{ __schema { types { name } } }";
    let plain = server.anonymous().ok(query, json!({})).await?;
    // reqwest is built without decompression, so it hands over the bytes as sent.
    let http = reqwest::Client::new();
    for encoding in ["br", "zstd", "gzip"] {
        let response = http
            .post(server.url())
            .header("accept-encoding", encoding)
            .json(&json!({ "query": query }))
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some(encoding),
            "answer to Accept-Encoding: {encoding}"
        );
        let body = decode(encoding, &response.bytes().await?)?;
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        assert_eq!(body["data"], plain, "{encoding}");
    }
    Ok(())
}
