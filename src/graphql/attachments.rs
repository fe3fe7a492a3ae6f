//! Attachments in the schema: the `Upload` scalar of the GraphQL multipart request spec,
//! the `Attachment` type, and the mutations that upload (`uploadAttachment` inline,
//! `requestUpload` for the two-step flow). The HTTP layer receives a multipart request's
//! files before execution (see `http::multipart`) and hands them over as
//! [`ReceivedUploads`]; an `Upload` argument names one of them.

use async_graphql::{
    Context, ID, InputObject, InputValueError, InputValueResult, Object, Result, Scalar,
    ScalarType, SimpleObject, Value,
};

use super::scalars::DateTime;
use super::{app, caller_id};
use crate::db::attachments::Attachment;
use crate::domain::attachments::{self, Upload as StoredUpload, Variant};
use crate::error::AppError;
use crate::vocabulary::ids::ChatId;

/// What the HTTP layer puts where a multipart request's map places a file: the index of
/// the file among the request's received files.
pub const UPLOAD_PLACEHOLDER_PREFIX: &str = "#upload:";

/// A file of a multipart request, named by the request's `map` (the GraphQL multipart
/// request spec: what Apollo Upload, urql and graphql-request send).
pub struct Upload(usize);

/// A file of a multipart request (the GraphQL multipart request spec).
#[Scalar(
    name = "Upload",
    specified_by_url = "https://github.com/jaydenseric/graphql-multipart-request-spec"
)]
impl ScalarType for Upload {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => text
                .strip_prefix(UPLOAD_PLACEHOLDER_PREFIX)
                .and_then(|n| n.parse().ok())
                .map(Upload)
                .ok_or_else(|| {
                    InputValueError::custom(
                        "an Upload is a file sent with a multipart request (the GraphQL \
                         multipart request spec), not a value",
                    )
                }),
            _ => Err(InputValueError::custom(
                "an Upload is a file sent with a multipart request (the GraphQL multipart \
                 request spec), not a value",
            )),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(format!("{UPLOAD_PLACEHOLDER_PREFIX}{}", self.0))
    }
}

/// A file the HTTP layer received and stored before execution.
#[derive(Clone, Debug)]
pub struct ReceivedFile {
    /// The file name the client gave.
    pub name: String,
    pub upload: StoredUpload,
}

/// The files of this request, in the order they arrived (request data).
#[derive(Clone, Debug, Default)]
pub struct ReceivedUploads(pub Vec<ReceivedFile>);

/// A file attached to a message (or uploaded and not sent yet).
pub struct AttachmentNode(pub Attachment);

/// A file attached to a message (or uploaded and not sent yet).
#[Object(name = "Attachment")]
impl AttachmentNode {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The file name the uploader gave.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The type of the bytes, sniffed from them when they arrived (what the client said is
    /// only checked against it).
    async fn mime_type(&self) -> &str {
        &self.0.mime_type
    }
    /// Size in bytes.
    async fn size(&self) -> i64 {
        self.0.size
    }
    /// An image's width as displayed (EXIF orientation applied); null for other files.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }
    /// An image's height as displayed; null for other files.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }
    /// False while a two-step upload waits for its bytes.
    async fn uploaded(&self) -> bool {
        self.0.sha256.is_some()
    }
    /// A short-lived signed URL of the bytes (works in `<img src>` and links without a
    /// header; valid for `--media-url-ttl-secs`). `GET` with a bearer token works on the
    /// same path without the query.
    async fn url(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(attachments::signed_url(
            app(ctx)?,
            self.0.id,
            Variant::Original,
        ))
    }
    /// A signed URL of the thumbnail (at most 320 pixels on its longer side); null for
    /// files that are not images, and until it is made, moments after the upload.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.0.thumbnail_sha256.is_none() {
            return Ok(None);
        }
        Ok(Some(attachments::signed_url(
            app(ctx)?,
            self.0.id,
            Variant::Thumbnail,
        )))
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

/// The first step of a two-step upload.
#[derive(InputObject)]
pub struct RequestUploadInput {
    /// The chat it is for (members only).
    pub chat_id: ChatId,
    /// The file name.
    pub name: String,
    /// Its type: the bytes must then be of it.
    pub mime_type: String,
    /// Its size in bytes: exactly that many must then be sent.
    pub size: i64,
}

/// Where to send a large file's bytes.
#[derive(SimpleObject)]
pub struct UploadTicket {
    /// The attachment, waiting for its bytes (`uploaded: false`); pass its id to
    /// `sendMessage(attachmentIds:)` once the PUT succeeded.
    pub attachment: AttachmentNode,
    /// Send the bytes here with `PUT`, as the body; the URL itself is the credential.
    pub upload_url: String,
    /// The HTTP method: `PUT`.
    pub method: String,
    /// When the URL stops being accepted.
    pub expires_at: DateTime,
}

#[derive(Default)]
pub struct AttachmentMutation;

#[Object]
impl AttachmentMutation {
    /// Uploads a file into a chat (members only), sent with the request as the GraphQL
    /// multipart request spec describes. The attachment is pending until `sendMessage`
    /// carries it (`attachmentIds`); one never sent is removed after a while. Limits:
    /// `--max-upload-bytes` per file (`LIMIT_EXCEEDED`), `--max-uploads-per-request`, the
    /// accepted types, sniffed from the bytes (`UNSUPPORTED_MEDIA_TYPE`, also when the
    /// bytes are not the type the file was sent as).
    async fn upload_attachment(
        &self,
        ctx: &Context<'_>,
        chat_id: ChatId,
        file: Upload,
    ) -> Result<AttachmentNode> {
        let caller = caller_id(ctx)?;
        let received = ctx
            .data_opt::<ReceivedUploads>()
            .and_then(|files| files.0.get(file.0))
            .ok_or_else(|| AppError::BadInput("no such file in this request".into()))?;
        let attachment =
            attachments::create(app(ctx)?, caller, chat_id, &received.name, &received.upload)
                .await?;
        Ok(AttachmentNode(attachment))
    }

    /// Starts a two-step upload, for files too large for one request: announces the
    /// file, then its bytes go to `uploadUrl` with a PUT (up to
    /// `--max-large-upload-bytes`). Members only.
    async fn request_upload(
        &self,
        ctx: &Context<'_>,
        input: RequestUploadInput,
    ) -> Result<UploadTicket> {
        let caller = caller_id(ctx)?;
        let size = u64::try_from(input.size)
            .map_err(|_| AppError::BadInput("`size` cannot be negative".into()))?;
        let app = app(ctx)?;
        let (attachment, ticket) = attachments::request_upload(
            app,
            caller,
            input.chat_id,
            &input.name,
            &input.mime_type,
            size,
        )
        .await?;
        let upload_url = attachments::public_url(app, format!("/media/uploads/{ticket}"));
        let expires_at = DateTime(attachment.expires_at.unwrap_or(attachment.created_at));
        Ok(UploadTicket {
            attachment: AttachmentNode(attachment),
            upload_url,
            method: "PUT".into(),
            expires_at,
        })
    }
}
