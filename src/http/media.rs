//! `/media`: attachment bytes for the chat's members, and the PUT of a two-step upload.
//!
//! `GET /media/<id>` (and `/media/<id>/thumbnail`) is authorized by a signed URL
//! (`?expires=…&signature=…`, what `Attachment.url` gives, so `<img src>` works) or a
//! bearer token of a member. The bytes stream from the store with `Content-Length`, one
//! `Range` (206, or 416 when unsatisfiable), a strong `ETag` (the SHA-256; 304 for
//! `If-None-Match`), private caching, and headers that keep them from ever acting as a page
//! of this origin: `nosniff`, a sandboxing CSP, and `Content-Disposition: attachment` for
//! everything but raster images.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::graphql::caller_from_headers;
use crate::domain::attachments::{self, Access, Download, Variant};
use crate::error::{AppError, ErrorCode, request_error};
use crate::graphql::Endpoint;
use crate::vocabulary::ids::AttachmentId;

/// The query of a signed URL.
#[derive(Deserialize)]
pub struct Signed {
    expires: Option<i64>,
    signature: Option<String>,
}

/// An error answer: the status and a GraphQL-style error body with its code.
fn refused(status: StatusCode, message: impl Into<String>, code: ErrorCode) -> Response {
    let body = serde_json::json!({ "errors": [request_error(message, code)] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn refused_by(error: AppError) -> Response {
    let code = error.code();
    if code == ErrorCode::Internal {
        tracing::error!(error = ?error, "serving media failed");
    }
    let status =
        StatusCode::from_u16(code.plain_http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    refused(status, error.public_message(), code)
}

pub async fn original(
    State(state): State<Endpoint>,
    Path(id): Path<String>,
    Query(signed): Query<Signed>,
    request: Request,
) -> Response {
    serve(&state, &id, Variant::Original, signed, request.headers()).await
}

pub async fn thumbnail(
    State(state): State<Endpoint>,
    Path(id): Path<String>,
    Query(signed): Query<Signed>,
    request: Request,
) -> Response {
    serve(&state, &id, Variant::Thumbnail, signed, request.headers()).await
}

async fn serve(
    state: &Endpoint,
    id: &str,
    variant: Variant,
    signed: Signed,
    headers: &HeaderMap,
) -> Response {
    let Ok(id) = AttachmentId::from_global(id) else {
        return refused(
            StatusCode::NOT_FOUND,
            "attachment not found",
            ErrorCode::NotFound,
        );
    };
    let app = &state.app;
    let now = chrono::Utc::now().timestamp();
    let caller;
    let (access, max_age) = match (signed.expires, signed.signature) {
        (Some(expires), Some(signature)) => {
            let path = attachments::media_path(id, variant);
            if !app.media().signer.verify(&path, expires, &signature, now) {
                return refused(
                    StatusCode::FORBIDDEN,
                    "the link has expired or is not valid; fetch a new `url`",
                    ErrorCode::Forbidden,
                );
            }
            (Access::Signed, (expires - now).max(0))
        }
        _ => {
            caller = match caller_from_headers(app, headers).await {
                Ok(crate::auth::Caller::Anonymous) => {
                    return refused(
                        StatusCode::UNAUTHORIZED,
                        "send `Authorization: Bearer <token>` or use the signed `url`",
                        ErrorCode::Unauthenticated,
                    );
                }
                Ok(caller) => caller,
                Err(e) => return refused_by(e),
            };
            (Access::Credential(&caller), 0)
        }
    };
    let download = match attachments::for_download(app, id, variant, access).await {
        Ok(download) => download,
        Err(e) => return refused_by(e),
    };
    respond(state, &download, variant, max_age, headers).await
}

/// Whether browsers may show this type inline: raster images only (they cannot run
/// script). Everything else, PDF and text included, is a download.
fn shown_inline(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// `Content-Disposition` with the name in both forms: an ASCII fallback and RFC 8187's
/// UTF-8 `filename*`.
fn disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Whether an `If-None-Match` header matches this entity tag.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// The one range asked for, if any (and `If-Range`, when sent, names this entity); several
/// ranges are answered with the whole (a server may). `Err` when unsatisfiable.
fn requested_range(
    headers: &HeaderMap,
    etag: &str,
    size: u64,
) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && if_range.trim() != etag
    {
        return Ok(None);
    }
    // A malformed header is ignored (RFC 9110: the whole representation is sent).
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Ok(None);
    };
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => {
            let only = &ranges[0];
            Ok(Some(*only.start()..only.end() + 1))
        }
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

async fn respond(
    state: &Endpoint,
    download: &Download,
    variant: Variant,
    max_age: i64,
    headers: &HeaderMap,
) -> Response {
    let store = &state.app.media().store;
    let etag = format!("\"{}\"", download.sha256);
    let cache = if max_age > 0 {
        // Content-addressed: the bytes of this URL never change while it is valid.
        format!("private, max-age={max_age}, immutable")
    } else {
        "private, no-cache".to_owned()
    };
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, &cache)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        );
    if max_age == 0 {
        // Answered by credential: a shared cache must not give it to someone else.
        response = response.header(header::VARY, "authorization");
    }
    if matches_etag(headers, &etag) {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let size = download.size;
    let range = if size > 0 {
        match requested_range(headers, &etag, size) {
            Ok(range) => range,
            Err(()) => {
                return response
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .body(Body::empty())
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
        }
    } else {
        None
    };
    let partial = range.is_some();
    let read = match store.open_read(&download.sha256, range).await {
        Ok(read) => read,
        Err(e) => {
            return refused_by(AppError::from(crate::media::MediaError::from(e)));
        }
    };
    let mime = &download.mime_type;
    let content_type = if mime == "text/plain" {
        "text/plain; charset=utf-8".to_owned()
    } else {
        mime.clone()
    };
    let name = match variant {
        Variant::Original => download.name.clone(),
        Variant::Thumbnail => format!("thumbnail-{}", download.name),
    };
    response = response
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, read.range.end - read.range.start)
        .header(
            header::CONTENT_DISPOSITION,
            disposition(shown_inline(mime), &name),
        );
    if partial {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                read.range.start,
                read.range.end.saturating_sub(1),
                read.size
            ),
        );
    }
    let body = Body::from_stream(read.bytes.map_err(std::io::Error::other));
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `PUT /media/uploads/<ticket>`: the bytes of a two-step upload. Answers with the
/// attachment (`{"attachment": {"id", "name", "mimeType", "size", "width", "height"}}`).
pub async fn put_upload(
    State(state): State<Endpoint>,
    Path(ticket): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = state.app.config().media.max_large_upload_bytes;
    if declared_length.is_some_and(|length| length > max) {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is larger than the limit of {max} bytes"),
            ErrorCode::LimitExceeded,
        );
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = body.into_data_stream();
    match attachments::complete_upload(&state.app, &ticket, body, content_type).await {
        Ok(attachment) => {
            let body = serde_json::json!({
                "attachment": {
                    "id": attachment.id.to_global(),
                    "name": attachment.name,
                    "mimeType": attachment.mime_type,
                    "size": attachment.size,
                    "width": attachment.width,
                    "height": attachment.height,
                }
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => refused_by(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_disposition_names_the_file_safely_in_both_forms() {
        assert_eq!(
            disposition(false, "report \"Q3\".pdf"),
            "attachment; filename=\"report _Q3_.pdf\"; filename*=UTF-8''report%20%22Q3%22.pdf"
        );
        assert_eq!(
            disposition(true, "café.png"),
            "inline; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png"
        );
    }

    #[test]
    fn one_satisfiable_range_is_served_others_are_not() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        assert_eq!(requested_range(&headers, "\"x\"", 100), Ok(Some(0..10)));
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=-10"));
        assert_eq!(requested_range(&headers, "\"x\"", 100), Ok(Some(90..100)));
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=200-"));
        assert_eq!(requested_range(&headers, "\"x\"", 100), Err(()));
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-1, 5-6"));
        assert_eq!(requested_range(&headers, "\"x\"", 100), Ok(None));
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"other\""));
        assert_eq!(requested_range(&headers, "\"x\"", 100), Ok(None));
    }
}
