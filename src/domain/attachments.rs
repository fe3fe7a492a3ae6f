//! Attachments: uploads into a chat (members only), carried by a message once sent, served
//! to the chat's members, thumbnailed off the request path, and swept when nothing needs
//! them any more.
//!
//! An upload's life: its bytes are received into the media store's staging area (type
//! sniffed, limits checked as they arrive), the blob is recorded (`touch_blob`), the bytes
//! move to their content address, and an attachment row names them, pending. `sendMessage`
//! gives pending attachments to its message. Retracting the message removes its
//! attachments; deleting the message, clearing or deleting the chat cascades. The sweeper
//! removes pending uploads past their TTL, then blobs nothing references.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDateTime;
use futures_util::Stream;
use sha2::{Digest, Sha256};

use super::access::member_of;
use super::now;
use crate::app::App;
use crate::auth::Caller;
use crate::db;
use crate::db::attachments::{Attachment, NewAttachment};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::{Event, EventKind};
use crate::media::images;
use crate::media::ingest::{self, UploadRules, hex};
use crate::metrics::UploadOutcome;
use crate::vocabulary::ids::{AttachmentId, ChatId, MessageId, UserId};

/// Most attachments one message carries.
pub const MAX_PER_MESSAGE: usize = 10;
/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_EDGE: u32 = 320;
/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 255;
/// How long a two-step upload's ticket (its PUT URL) is accepted.
const TICKET_TTL: Duration = Duration::from_secs(3600);
/// How long thumbnailing one image may take before it is given up.
const THUMBNAIL_TIMEOUT: Duration = Duration::from_secs(20);
/// Staged bytes older than this are left over from a failed upload.
const STAGING_GRACE: Duration = Duration::from_secs(6 * 3600);
/// Most unreferenced blobs one sweep removes (the next sweep takes the rest).
const SWEEP_BATCH: i64 = 500;

/// An upload's bytes, stored: what an attachment made of them records.
#[derive(Clone, Debug)]
pub struct Upload {
    pub sha256: String,
    pub size: u64,
    pub mime_type: String,
    pub dimensions: Option<(u32, u32)>,
}

/// Which bytes of an attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

/// What a download needs to answer.
pub struct Download {
    pub sha256: String,
    pub mime_type: String,
    pub size: u64,
    pub name: String,
}

/// How a download was authorized.
pub enum Access<'a> {
    /// A signed URL, verified by the caller (it is only ever given to members).
    Signed,
    /// A bearer credential: the user must be a member of the attachment's chat.
    Credential(&'a Caller),
}

fn rules(app: &App, large: bool) -> UploadRules {
    let media = &app.config().media;
    UploadRules {
        max_bytes: if large {
            media.max_large_upload_bytes
        } else {
            media.max_upload_bytes
        },
        allowed: media.upload_types.clone(),
        max_pixels: media.max_image_pixels,
    }
}

fn size_of(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

fn dimensions_of(dimensions: Option<(u32, u32)>) -> Option<(i32, i32)> {
    dimensions.map(|(w, h)| {
        (
            i32::try_from(w).unwrap_or(i32::MAX),
            i32::try_from(h).unwrap_or(i32::MAX),
        )
    })
}

/// Receives an upload's bytes and stores them (see the module's summary): refused with
/// `LIMIT_EXCEEDED` past the size limit, `UNSUPPORTED_MEDIA_TYPE` for a type not allowed
/// or not the one `declared`. No attachment yet: [`create`] makes one.
pub async fn receive<S, E>(
    app: &App,
    body: S,
    declared: Option<&str>,
    rules: &UploadRules,
) -> AppResult<Upload>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let outcome = receive_unmetered(app, body, declared, rules).await;
    let metered = match &outcome {
        Ok(_) => UploadOutcome::Stored,
        Err(e) => match e.code() {
            ErrorCode::LimitExceeded => UploadOutcome::TooLarge,
            ErrorCode::UnsupportedMediaType => UploadOutcome::UnsupportedType,
            _ => UploadOutcome::Failed,
        },
    };
    let bytes = outcome.as_ref().map_or(0, |upload| upload.size);
    app.metrics().upload(metered, bytes);
    outcome
}

async fn receive_unmetered<S, E>(
    app: &App,
    body: S,
    declared: Option<&str>,
    rules: &UploadRules,
) -> AppResult<Upload>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let store = &app.media().store;
    let received = ingest::receive(store, body, declared, rules).await?;
    let upload = Upload {
        sha256: received.sha256,
        size: received.size,
        mime_type: received.mime_type,
        dimensions: received.dimensions,
    };
    touch(&mut app.db().conn().await?, &upload).await?;
    store
        .keep(received.written, &upload.sha256)
        .await
        .map_err(crate::media::MediaError::from)?;
    Ok(upload)
}

/// Records (again) that an upload's bytes are kept, so a sweep leaves them alone for its
/// grace period (see the module's summary).
async fn touch(conn: &mut db::DbConn, upload: &Upload) -> AppResult<()> {
    let size = size_of(upload.size);
    db::attachments::touch_blob(conn, &upload.sha256, size, &upload.mime_type, now()).await?;
    Ok(())
}

/// The rules of an upload sent inline with a GraphQL request.
pub fn inline_rules(app: &App) -> UploadRules {
    rules(app, false)
}

fn check_name(name: &str) -> AppResult<String> {
    // Path separators and control characters have no place in a name shown to others and
    // put into Content-Disposition.
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        return Err(AppError::BadInput("a file needs a name".into()));
    }
    if cleaned.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::LimitExceeded(format!(
            "a file name has at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(cleaned.to_owned())
}

/// Makes a pending attachment of stored bytes in a chat of the caller's (members only);
/// an image's thumbnail is made in the background.
pub async fn create(
    app: &App,
    caller: UserId,
    chat: ChatId,
    name: &str,
    upload: &Upload,
) -> AppResult<Attachment> {
    let name = check_name(name)?;
    let attachment = app
        .write(async |conn| {
            member_of(conn, chat, caller).await?;
            // Touched again: a sweep may not take the bytes between receipt and here.
            touch(conn, upload).await?;
            Ok(db::attachments::insert(
                conn,
                &NewAttachment {
                    chat_id: chat,
                    uploader_id: caller,
                    name: &name,
                    mime_type: &upload.mime_type,
                    size: size_of(upload.size),
                    sha256: Some(&upload.sha256),
                    dimensions: dimensions_of(upload.dimensions),
                    ticket_hash: None,
                    expires_at: None,
                    created_at: now(),
                },
            )
            .await?)
        })
        .await?;
    spawn_thumbnail(app, &attachment);
    Ok(attachment)
}

/// The first step of a large upload: a pending attachment waiting for its bytes and the
/// ticket (the secret of its PUT URL) that brings them. The announced type must be allowed
/// (the bytes must then be of it) and the size within the large-upload limit (the bytes
/// must then be exactly that many).
pub async fn request_upload(
    app: &App,
    caller: UserId,
    chat: ChatId,
    name: &str,
    mime_type: &str,
    size: u64,
) -> AppResult<(Attachment, String)> {
    let name = check_name(name)?;
    let rules = rules(app, true);
    if size == 0 {
        return Err(AppError::BadInput("an upload has at least 1 byte".into()));
    }
    if size > rules.max_bytes {
        return Err(AppError::LimitExceeded(format!(
            "the file is larger than the limit of {} bytes",
            rules.max_bytes
        )));
    }
    let mime_type = mime_type.trim().to_ascii_lowercase();
    if !rules.allows(&mime_type) {
        return Err(AppError::UnsupportedMediaType(format!(
            "files of type {mime_type} are not accepted"
        )));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| AppError::Internal(e.to_string()))?;
    let ticket = hex(&secret);
    let expires_at = now() + TICKET_TTL;
    let attachment = app
        .write(async |conn| {
            member_of(conn, chat, caller).await?;
            Ok(db::attachments::insert(
                conn,
                &NewAttachment {
                    chat_id: chat,
                    uploader_id: caller,
                    name: &name,
                    mime_type: &mime_type,
                    size: size_of(size),
                    sha256: None,
                    dimensions: None,
                    ticket_hash: Some(&ticket_hash(&ticket)),
                    expires_at: Some(expires_at),
                    created_at: now(),
                },
            )
            .await?)
        })
        .await?;
    Ok((attachment, ticket))
}

/// Only the ticket's hash is stored: a leaked database does not hand out PUT URLs.
fn ticket_hash(ticket: &str) -> String {
    hex(&Sha256::digest(ticket.as_bytes()))
}

/// The second step of a large upload: the bytes for a ticket (the ticket is the
/// credential, as in an S3 presigned PUT). `NOT_FOUND` for an unknown, used or expired
/// ticket; the bytes must be of the announced type and size.
pub async fn complete_upload<S, E>(
    app: &App,
    ticket: &str,
    body: S,
    content_type: Option<&str>,
) -> AppResult<Attachment>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let hash = ticket_hash(ticket);
    let waiting = {
        let mut conn = app.db().conn().await?;
        db::attachments::waiting_for(&mut conn, &hash, now()).await?
    };
    let Some(waiting) = waiting else {
        return Err(AppError::NotFound("upload ticket"));
    };
    let declared = u64::try_from(waiting.size).unwrap_or(0);
    let mut rules = rules(app, true);
    // One byte more than announced is already refused, as it arrives.
    rules.max_bytes = rules.max_bytes.min(declared);
    // The PUT's own Content-Type, when it has one, must fit too.
    if let Some(given) = content_type
        && !given.is_empty()
        && !given.eq_ignore_ascii_case("application/octet-stream")
        && !given
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(&waiting.mime_type)
    {
        return Err(AppError::UnsupportedMediaType(format!(
            "the upload was announced as {} but sent as {given}",
            waiting.mime_type
        )));
    }
    let upload = receive(app, body, Some(&waiting.mime_type), &rules).await?;
    if upload.size != declared {
        return Err(crate::media::MediaError::SizeMismatch {
            declared,
            received: upload.size,
        }
        .into());
    }
    let filled = app
        .write(async |conn| {
            touch(conn, &upload).await?;
            let filled = db::attachments::fill(
                conn,
                waiting.id,
                &upload.sha256,
                &upload.mime_type,
                dimensions_of(upload.dimensions),
            )
            .await?;
            if !filled {
                return Err(AppError::NotFound("upload ticket"));
            }
            Ok(db::attachments::find(conn, waiting.id).await?)
        })
        .await?;
    let Some(attachment) = filled else {
        return Err(AppError::NotFound("upload ticket"));
    };
    spawn_thumbnail(app, &attachment);
    Ok(attachment)
}

/// The attachments a batch of sends to `chat` asks for, checked per send: each must be the
/// sender's own upload into this chat, complete, and not carried by a message yet; at most
/// [`MAX_PER_MESSAGE`], no repeats. Uploads of other chats or users are `NOT_FOUND` (their
/// existence is not the sender's to learn).
pub struct Attachable {
    found: HashMap<AttachmentId, Attachment>,
}

impl Attachable {
    /// Loads what the sends ask for (no query when none asks).
    pub async fn load(conn: &mut db::DbConn, requested: &[AttachmentId]) -> AppResult<Self> {
        let found = if requested.is_empty() {
            HashMap::new()
        } else {
            db::attachments::find_many(conn, requested)
                .await?
                .into_iter()
                .map(|a| (a.id, a))
                .collect()
        };
        Ok(Self { found })
    }

    /// Checks one send's attachments; marks them taken, so a later send of the same
    /// batch cannot take them too.
    pub fn take(&mut self, chat: ChatId, sender: UserId, ids: &[AttachmentId]) -> AppResult<()> {
        if ids.len() > MAX_PER_MESSAGE {
            return Err(AppError::LimitExceeded(format!(
                "a message carries at most {MAX_PER_MESSAGE} attachments"
            )));
        }
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(AppError::BadInput(format!(
                    "attachment {} is listed twice",
                    id.to_global()
                )));
            }
            let Some(attachment) = self.found.get(id) else {
                return Err(AppError::NotFound("attachment"));
            };
            if attachment.chat_id != chat || attachment.uploader_id != Some(sender) {
                return Err(AppError::NotFound("attachment"));
            }
            if attachment.message_id.is_some() {
                return Err(AppError::Conflict(format!(
                    "attachment {} is already in a message",
                    id.to_global()
                )));
            }
            if attachment.sha256.is_none() {
                return Err(AppError::Conflict(format!(
                    "attachment {} is still waiting for its bytes",
                    id.to_global()
                )));
            }
        }
        for id in ids {
            if let Some(attachment) = self.found.get_mut(id) {
                // Any id: it only has to read as taken.
                attachment.message_id = Some(MessageId(0));
            }
        }
        Ok(())
    }
}

/// Gives checked attachments ([`Attachable::take`]) to the message just stored.
pub async fn attach(
    conn: &mut db::DbConn,
    message: MessageId,
    ids: &[AttachmentId],
) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let attached = db::attachments::attach(conn, message, ids).await?;
    if attached != ids.len() {
        // The chat's lock makes this unreachable from another send; kept as a check.
        return Err(AppError::Conflict(
            "an attachment was taken meanwhile".into(),
        ));
    }
    Ok(())
}

/// What a download of an attachment's bytes answers with; `NOT_FOUND` for an attachment
/// that is gone (its message retracted or deleted), has no such variant (yet), or — by a
/// credential — is in a chat the caller is not a member of (`FORBIDDEN`).
pub async fn for_download(
    app: &App,
    id: AttachmentId,
    variant: Variant,
    access: Access<'_>,
) -> AppResult<Download> {
    let mut conn = app.db().conn().await?;
    let Some(attachment) = db::attachments::find(&mut conn, id).await? else {
        return Err(AppError::NotFound("attachment"));
    };
    match access {
        Access::Signed => {}
        Access::Credential(Caller::Admin) => {}
        Access::Credential(caller) => {
            member_of(&mut conn, attachment.chat_id, caller.user_id()?).await?;
        }
    }
    let (sha256, mime_type, size) = match variant {
        Variant::Original => match attachment.sha256 {
            Some(sha256) => (sha256, attachment.mime_type, attachment.size),
            None => return Err(AppError::NotFound("attachment")),
        },
        Variant::Thumbnail => {
            let Some(sha256) = attachment.thumbnail_sha256 else {
                return Err(AppError::NotFound("thumbnail"));
            };
            let Some((size, mime_type)) = db::attachments::blob(&mut conn, &sha256).await? else {
                return Err(AppError::NotFound("thumbnail"));
            };
            (sha256, mime_type, size)
        }
    };
    Ok(Download {
        sha256,
        mime_type,
        size: u64::try_from(size).unwrap_or(0),
        name: attachment.name,
    })
}

/// The path of an attachment's bytes under `/media`.
pub fn media_path(id: AttachmentId, variant: Variant) -> String {
    match variant {
        Variant::Original => format!("/media/{}", id.to_global()),
        Variant::Thumbnail => format!("/media/{}/thumbnail", id.to_global()),
    }
}

/// A signed URL of an attachment's bytes (the same for every viewer for a while: see
/// `UrlSigner::expiry`).
pub fn signed_url(app: &App, id: AttachmentId, variant: Variant) -> String {
    let signed = app
        .media()
        .signer
        .sign(&media_path(id, variant), chrono::Utc::now().timestamp());
    public_url(app, signed)
}

/// The URL clients use for a path of this server: under `--public-url` when set, else the
/// path itself.
pub fn public_url(app: &App, path: String) -> String {
    match &app.config().media.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    }
}

/// Makes an image attachment's thumbnail in the background (one image at a time per
/// server, bounded in pixels, memory and time); a failure is logged and leaves it without.
fn spawn_thumbnail(app: &App, attachment: &Attachment) {
    let Some(sha256) = attachment.sha256.clone() else {
        return;
    };
    let max_bytes = app.config().media.max_upload_bytes;
    let size = u64::try_from(attachment.size).unwrap_or(u64::MAX);
    // Bigger files (two-step uploads) are not read into memory to be thumbnailed.
    if !images::is_decoded(&attachment.mime_type) || size > max_bytes {
        return;
    }
    let app = app.clone();
    let id = attachment.id;
    let mime = attachment.mime_type.clone();
    tokio::spawn(async move {
        let made = make_thumbnail(&app, id, &sha256, mime).await;
        app.metrics().thumbnail(made.is_ok());
        if let Err(e) = made {
            tracing::warn!(attachment = %id.to_global(), error = %e, "no thumbnail");
        }
    });
}

async fn make_thumbnail(app: &App, id: AttachmentId, sha256: &str, mime: String) -> AppResult<()> {
    use crate::media::MediaError;
    let media = app.media();
    let _permit = media
        .thumbnailing
        .acquire()
        .await
        .map_err(|e| MediaError::Worker(e.to_string()))?;
    let bytes = media.store.read(sha256).await.map_err(MediaError::from)?;
    let max_pixels = app.config().media.max_image_pixels;
    let work = tokio::task::spawn_blocking(move || {
        images::thumbnail(&bytes, &mime, max_pixels, THUMBNAIL_EDGE)
    });
    let made = match tokio::time::timeout(THUMBNAIL_TIMEOUT, work).await {
        Ok(Ok(made)) => made?,
        Ok(Err(e)) => return Err(MediaError::Worker(e.to_string()).into()),
        Err(_) => return Err(MediaError::Worker("took too long".into()).into()),
    };
    let thumb_sha = hex(&Sha256::digest(&made.bytes));
    let size = size_of(made.bytes.len() as u64);
    {
        let mut conn = app.db().conn().await?;
        db::attachments::touch_blob(&mut conn, &thumb_sha, size, made.mime_type, now()).await?;
    }
    media
        .store
        .put(&thumb_sha, Bytes::from(made.bytes))
        .await
        .map_err(MediaError::from)?;
    // When a message carries the attachment already (it was sent before the thumbnail
    // was made), its subscribers hear of the change as of any other change to a message.
    // A send taking the attachment concurrently either commits first (then this sees it)
    // or after (then its own MessageAdded carries the thumbnail).
    app.write(async |tx| {
        db::attachments::set_thumbnail(tx, id, &thumb_sha).await?;
        let carrier = match db::attachments::find(tx, id).await? {
            Some(Attachment {
                message_id: Some(message_id),
                ..
            }) => db::messages::find(tx, message_id).await?,
            _ => None,
        };
        if let Some(message) = carrier {
            tx.emit(
                Event::in_chat(
                    message.chat_id,
                    EventKind::MessageEdited {
                        message_id: message.id,
                    },
                )
                .in_thread(message.parent_id),
            );
        }
        Ok(())
    })
    .await
}

/// What one sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    pub pending: usize,
    pub blobs: usize,
    pub staged: usize,
}

/// Removes uploads no message took within the pending TTL, attachments of retracted
/// messages, blobs nothing references (each deleted from the store in the transaction that
/// forgets it, so an upload touching it meanwhile waits and then stores it again), and
/// staged bytes a failed upload left.
pub async fn sweep(app: &App) -> AppResult<Swept> {
    let media = &app.config().media;
    let pending_ttl = Duration::from_secs(media.pending_upload_ttl_secs);
    let pending_before: NaiveDateTime = now() - pending_ttl;
    // A blob unreferenced for this long is not about to be referenced by an upload in
    // flight (which touched it when its bytes arrived).
    let blob_before = now() - pending_ttl.min(Duration::from_secs(3600));
    let mut swept = Swept::default();
    {
        let mut conn = app.db().conn().await?;
        swept.pending = db::attachments::delete_pending_before(&mut conn, pending_before).await?;
        swept.pending += db::attachments::delete_of_retracted(&mut conn).await?;
        let candidates =
            db::attachments::unreferenced_blobs(&mut conn, blob_before, SWEEP_BATCH).await?;
        drop(conn);
        for sha256 in candidates {
            let removed = app
                .write(async |conn| {
                    if db::attachments::forget_blob(conn, &sha256, blob_before).await? {
                        app.media()
                            .store
                            .delete(&sha256)
                            .await
                            .map_err(crate::media::MediaError::from)?;
                        return Ok(true);
                    }
                    Ok(false)
                })
                .await?;
            swept.blobs += usize::from(removed);
        }
    }
    let staging_before = chrono::Utc::now() - STAGING_GRACE;
    swept.staged = app
        .media()
        .store
        .sweep_staging(staging_before)
        .await
        .map_err(crate::media::MediaError::from)?;
    Ok(swept)
}

/// Sweeps every `--media-sweep-secs` until shutdown.
pub async fn sweep_periodically(app: App) {
    let every = Duration::from_secs(app.config().media.media_sweep_secs);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = app.shutdown().cancelled() => return,
            _ = ticks.tick() => {}
        }
        match sweep(&app).await {
            Ok(swept) if swept.pending + swept.blobs + swept.staged > 0 => {
                tracing::info!(
                    pending = swept.pending,
                    blobs = swept.blobs,
                    staged = swept.staged,
                    "swept attachments"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping attachments failed"),
        }
    }
}
