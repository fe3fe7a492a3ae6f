//! The GraphQL multipart request spec (what Apollo Upload, urql and graphql-request send):
//! a `multipart/form-data` body of `operations` (the request, files as null), `map` (which
//! file goes to which variable path) and then the files. Each file is received into the
//! media store as it streams in (type sniffed, size checked as the bytes arrive; see
//! `domain::attachments::receive`), so nothing is buffered whole and a refusal comes as
//! soon as it is known: the request's `Content-Length` over its limit before any byte is
//! read, too many files once `map` is read, a type not accepted from the file's first
//! bytes, a size over the limit at the byte past it.

use axum::body::Body;
use axum::http::StatusCode;
use multer::{Constraints, Multipart, SizeLimit};

use crate::app::App;
use crate::domain::attachments;
use crate::error::{AppError, ErrorCode};
use crate::graphql::attachments::{ReceivedFile, ReceivedUploads, UPLOAD_PLACEHOLDER_PREFIX};
use crate::vocabulary::ids::UserId;

/// Most bytes of the `map` field.
const MAX_MAP_BYTES: u64 = 64 * 1024;
/// Allowance per file for its part's headers and boundary.
const PART_OVERHEAD: u64 = 16 * 1024;

/// Why a multipart request was refused before execution.
pub struct Refused {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// For a rate-limited request: the seconds until it may come again.
    pub retry_after: Option<u64>,
}

impl Refused {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::BadUserInput,
            message: message.into(),
            retry_after: None,
        }
    }

    fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: ErrorCode::LimitExceeded,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<AppError> for Refused {
    fn from(error: AppError) -> Self {
        let code = error.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = ?error, "receiving an upload failed");
        }
        Self {
            status: StatusCode::from_u16(code.plain_http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: error.public_message(),
            retry_after: None,
        }
    }
}

/// A multipart request, its files received: the `operations` JSON with each mapped path
/// holding its file's placeholder, and the files.
pub struct Received {
    pub operations: serde_json::Value,
    pub uploads: ReceivedUploads,
}

/// The most bytes a multipart request may have in all.
pub fn max_request_bytes(app: &App) -> u64 {
    let config = app.config();
    let files = config.media.max_uploads_per_request as u64;
    (config.max_body_bytes as u64)
        .saturating_add(MAX_MAP_BYTES)
        .saturating_add(files.saturating_mul(config.media.max_upload_bytes + PART_OVERHEAD))
}

/// Reads a multipart request of `user`'s (its `Content-Type` header given), receiving its
/// files.
pub async fn receive(
    app: &App,
    user: UserId,
    content_type: &str,
    body: Body,
) -> Result<Received, Refused> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| Refused::bad(format!("invalid multipart request: {e}")))?;
    let config = app.config();
    let constraints = Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(max_request_bytes(app))
            .for_field("operations", config.max_body_bytes as u64)
            .for_field("map", MAX_MAP_BYTES),
    );
    let mut multipart = Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let operations = text_field(&mut multipart, "operations").await?;
    let mut operations: serde_json::Value = serde_json::from_str(&operations)
        .map_err(|e| Refused::bad(format!("`operations` is not valid JSON: {e}")))?;
    let map = text_field(&mut multipart, "map").await?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&map)
        .map_err(|e| Refused::bad(format!("`map` is not a JSON object of path lists: {e}")))?;
    let max_files = config.media.max_uploads_per_request;
    if map.len() > max_files {
        return Err(Refused::too_large(format!(
            "a request carries at most {max_files} files, not {}",
            map.len()
        )));
    }
    // Files are stored before their mutations run and are counted: a user out of
    // mutations for the minute is refused before any file is read.
    let files = u32::try_from(map.len()).unwrap_or(u32::MAX);
    if let Err(limited) = app.rate().would_allow(user.0, files) {
        let retry_after = limited.retry_after_secs();
        return Err(Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: ErrorCode::RateLimited,
            message: AppError::from(limited).public_message(),
            retry_after: Some(retry_after),
        });
    }
    let mut paths: Vec<(String, Vec<String>)> = Vec::with_capacity(map.len());
    for (key, value) in map {
        let list = value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or(None::<Vec<String>>)
            .filter(|list| !list.is_empty())
            .ok_or_else(|| Refused::bad(format!("`map.{key}` must be a list of paths")))?;
        paths.push((key, list));
    }
    let rules = attachments::inline_rules(app);
    let mut files: Vec<Option<ReceivedFile>> = vec![None; paths.len()];
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let Some(index) = paths.iter().position(|(key, _)| *key == name) else {
            return Err(Refused::bad(format!(
                "the part `{name}` is not named by `map`"
            )));
        };
        if files[index].is_some() {
            return Err(Refused::bad(format!("the file `{name}` is sent twice")));
        }
        let file_name = field.file_name().unwrap_or("file").to_owned();
        let declared = field.content_type().map(ToString::to_string);
        let upload = attachments::receive(app, field, declared.as_deref(), &rules)
            .await
            .map_err(|e| Refused::from(e).naming(&file_name))?;
        files[index] = Some(ReceivedFile {
            name: file_name,
            upload,
        });
    }
    let mut received = Vec::with_capacity(files.len());
    for ((key, places), file) in paths.iter().zip(files) {
        let Some(file) = file else {
            return Err(Refused::bad(format!(
                "`map` names the file `{key}`, but the request does not carry it"
            )));
        };
        let placeholder =
            serde_json::Value::String(format!("{UPLOAD_PLACEHOLDER_PREFIX}{}", received.len()));
        for place in places {
            put_at(&mut operations, place, placeholder.clone())
                .map_err(|why| Refused::bad(format!("`map.{key}`: {why}")))?;
        }
        received.push(file);
    }
    Ok(Received {
        operations,
        uploads: ReceivedUploads(received),
    })
}

impl Refused {
    /// The refusal, saying which file it is about.
    fn naming(mut self, file: &str) -> Self {
        self.message = format!("{file}: {}", self.message);
        self
    }
}

fn multipart_error(e: multer::Error) -> Refused {
    match e {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => Refused::too_large(format!(
            "the request is larger than the limit of {limit} bytes"
        )),
        other => Refused::bad(format!("invalid multipart request: {other}")),
    }
}

/// The next part, which must be the text field `name` (the spec orders them: `operations`,
/// `map`, then the files).
async fn text_field(multipart: &mut Multipart<'_>, name: &str) -> Result<String, Refused> {
    let Some(field) = multipart.next_field().await.map_err(multipart_error)? else {
        return Err(Refused::bad(format!(
            "the multipart request has no `{name}` field"
        )));
    };
    if field.name() != Some(name) {
        return Err(Refused::bad(format!(
            "the multipart request's fields must come in order `operations`, `map`, then \
             files; expected `{name}`, got `{}`",
            field.name().unwrap_or_default()
        )));
    }
    field.text().await.map_err(multipart_error)
}

/// Sets the value at a dotted path (`variables.file`, `0.variables.files.1`: object keys
/// and list indexes) of the operations; the place must exist (the spec has clients put
/// `null` there).
fn put_at(
    operations: &mut serde_json::Value,
    path: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    let mut here = operations;
    for segment in path.split('.') {
        here = match here {
            serde_json::Value::Object(map) => map.get_mut(segment),
            serde_json::Value::Array(items) => {
                segment.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            }
            _ => None,
        }
        .ok_or_else(|| format!("no place `{path}` in `operations`"))?;
    }
    *here = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::put_at;
    use serde_json::json;

    #[test]
    fn a_mapped_path_reaches_into_objects_and_lists() {
        let mut single =
            json!({ "variables": { "file": null, "input": { "files": [null, null] } } });
        assert!(put_at(&mut single, "variables.file", json!("#upload:0")).is_ok());
        assert!(put_at(&mut single, "variables.input.files.1", json!("#upload:1")).is_ok());
        assert_eq!(
            single,
            json!({ "variables": { "file": "#upload:0", "input": { "files": [null, "#upload:1"] } } })
        );
        let mut batch = json!([{ "variables": { "file": null } }]);
        assert!(put_at(&mut batch, "0.variables.file", json!("#upload:0")).is_ok());
        assert_eq!(batch, json!([{ "variables": { "file": "#upload:0" } }]));
        assert!(put_at(&mut batch, "1.variables.file", json!(1)).is_err());
        assert!(put_at(&mut batch, "0.variables.nothing", json!(1)).is_err());
    }
}
