//! Attachments and the blobs they store: every query on `attachments` and `media_blobs`.
//! A blob row exists for each content kept in the media store; attachments reference it
//! (`sha256`, `thumbnail_sha256`), and a blob no attachment references is removed by the
//! sweeper once its grace period is over.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{attachments, media_blobs, messages};
use super::{DbConn, DbResult};
use crate::vocabulary::ids::{AttachmentId, ChatId, MessageId, UserId};
use crate::with_conn;

/// An upload into a chat: pending until a message carries it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = attachments)]
pub struct Attachment {
    pub id: AttachmentId,
    pub chat_id: ChatId,
    /// Who uploaded it (null once their account is deleted).
    pub uploader_id: Option<UserId>,
    /// The message carrying it; null while pending.
    pub message_id: Option<MessageId>,
    /// Its place among the message's attachments.
    pub position: i32,
    /// The file name the client gave.
    pub name: String,
    /// The type sniffed from the bytes (announced, for a two-step upload still waiting).
    pub mime_type: String,
    pub size: i64,
    /// The stored bytes; null while a two-step upload waits for them.
    pub sha256: Option<String>,
    /// An image's displayed size.
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// The thumbnail's bytes, once made.
    pub thumbnail_sha256: Option<String>,
    /// SHA-256 of a two-step upload's ticket, until its bytes came.
    pub ticket_hash: Option<String>,
    /// When a waiting ticket stops being accepted.
    pub expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// What a new attachment row holds.
pub struct NewAttachment<'a> {
    pub chat_id: ChatId,
    pub uploader_id: UserId,
    pub name: &'a str,
    pub mime_type: &'a str,
    pub size: i64,
    pub sha256: Option<&'a str>,
    pub dimensions: Option<(i32, i32)>,
    pub ticket_hash: Option<&'a str>,
    pub expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Records that a content is kept (or kept again): a new row, or the existing row's
/// `touched_at` renewed, so the sweeper leaves it alone while its upload finishes.
pub async fn touch_blob(
    conn: &mut DbConn,
    sha256: &str,
    size: i64,
    mime_type: &str,
    at: NaiveDateTime,
) -> DbResult<()> {
    with_conn!(conn, |c| diesel::insert_into(media_blobs::table)
        .values((
            media_blobs::sha256.eq(sha256),
            media_blobs::size.eq(size),
            media_blobs::mime_type.eq(mime_type),
            media_blobs::touched_at.eq(at),
        ))
        .on_conflict(media_blobs::sha256)
        .do_update()
        .set(media_blobs::touched_at.eq(at))
        .execute(c)
        .await)?;
    Ok(())
}

/// Stores a new attachment.
pub async fn insert(conn: &mut DbConn, new: &NewAttachment<'_>) -> DbResult<Attachment> {
    let (width, height) = new.dimensions.unzip();
    Ok(with_conn!(conn, |c| diesel::insert_into(
        attachments::table
    )
    .values((
        attachments::chat_id.eq(new.chat_id),
        attachments::uploader_id.eq(new.uploader_id),
        attachments::name.eq(new.name),
        attachments::mime_type.eq(new.mime_type),
        attachments::size.eq(new.size),
        attachments::sha256.eq(new.sha256),
        attachments::width.eq(width),
        attachments::height.eq(height),
        attachments::ticket_hash.eq(new.ticket_hash),
        attachments::expires_at.eq(new.expires_at),
        attachments::created_at.eq(new.created_at),
    ))
    .returning(Attachment::as_returning())
    .get_result(c)
    .await)?)
}

/// The attachment with this id.
pub async fn find(conn: &mut DbConn, id: AttachmentId) -> DbResult<Option<Attachment>> {
    Ok(with_conn!(conn, |c| attachments::table
        .find(id)
        .select(Attachment::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The attachments with these ids (those that exist).
pub async fn find_many(conn: &mut DbConn, ids: &[AttachmentId]) -> DbResult<Vec<Attachment>> {
    Ok(with_conn!(conn, |c| attachments::table
        .filter(attachments::id.eq_any(ids))
        .select(Attachment::as_select())
        .load(c)
        .await)?)
}

/// The attachments of these messages, each message's in their order.
pub async fn of_messages(
    conn: &mut DbConn,
    message_ids: &[MessageId],
) -> DbResult<Vec<Attachment>> {
    Ok(with_conn!(conn, |c| attachments::table
        .filter(attachments::message_id.eq_any(message_ids))
        .order((attachments::message_id, attachments::position))
        .select(Attachment::as_select())
        .load(c)
        .await)?)
}

/// Gives pending attachments to a message, in the order given; how many it took (fewer
/// than asked when another send took one first).
pub async fn attach(
    conn: &mut DbConn,
    message_id: MessageId,
    ids: &[AttachmentId],
) -> DbResult<usize> {
    let mut attached = 0;
    for (position, id) in ids.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        attached += with_conn!(conn, |c| diesel::update(
            attachments::table
                .filter(attachments::id.eq(*id))
                .filter(attachments::message_id.is_null())
        )
        .set((
            attachments::message_id.eq(message_id),
            attachments::position.eq(position),
        ))
        .execute(c)
        .await)?;
    }
    Ok(attached)
}

/// Removes a message's attachments (it was retracted); their bytes go with the next
/// sweep unless something else references them.
pub async fn detach_all(conn: &mut DbConn, message_id: MessageId) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(
        attachments::table.filter(attachments::message_id.eq(message_id))
    )
    .execute(c)
    .await)?)
}

/// Records an attachment's thumbnail.
pub async fn set_thumbnail(conn: &mut DbConn, id: AttachmentId, sha256: &str) -> DbResult<bool> {
    let updated = with_conn!(conn, |c| diesel::update(attachments::table.find(id))
        .set(attachments::thumbnail_sha256.eq(sha256))
        .execute(c)
        .await)?;
    Ok(updated > 0)
}

/// The two-step upload waiting for its bytes under this ticket, if it has not expired.
pub async fn waiting_for(
    conn: &mut DbConn,
    ticket_hash: &str,
    now: NaiveDateTime,
) -> DbResult<Option<Attachment>> {
    Ok(with_conn!(conn, |c| attachments::table
        .filter(attachments::ticket_hash.eq(ticket_hash))
        .filter(attachments::sha256.is_null())
        .filter(attachments::expires_at.gt(now))
        .select(Attachment::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Gives a waiting two-step upload its bytes (and ends its ticket); false when it is no
/// longer waiting (another PUT came first).
pub async fn fill(
    conn: &mut DbConn,
    id: AttachmentId,
    sha256: &str,
    mime_type: &str,
    dimensions: Option<(i32, i32)>,
) -> DbResult<bool> {
    let (width, height) = dimensions.unzip();
    let updated = with_conn!(conn, |c| diesel::update(
        attachments::table
            .find(id)
            .filter(attachments::sha256.is_null())
    )
    .set((
        attachments::sha256.eq(sha256),
        attachments::mime_type.eq(mime_type),
        attachments::width.eq(width),
        attachments::height.eq(height),
        attachments::ticket_hash.eq(None::<String>),
        attachments::expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(c)
    .await)?;
    Ok(updated > 0)
}

/// Removes uploads no message took that were made before `before`; how many.
pub async fn delete_pending_before(conn: &mut DbConn, before: NaiveDateTime) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(
        attachments::table
            .filter(attachments::message_id.is_null())
            .filter(attachments::created_at.lt(before))
    )
    .execute(c)
    .await)?)
}

/// Removes attachments whose message is retracted (a retraction detaches them itself;
/// this catches what a crash between the two left); how many.
pub async fn delete_of_retracted(conn: &mut DbConn) -> DbResult<usize> {
    let retracted = messages::table
        .filter(messages::retracted_at.is_not_null())
        .select(messages::id.nullable());
    Ok(with_conn!(conn, |c| diesel::delete(
        attachments::table.filter(attachments::message_id.eq_any(retracted))
    )
    .execute(c)
    .await)?)
}

/// Up to `limit` blobs untouched since `before` that no attachment references.
pub async fn unreferenced_blobs(
    conn: &mut DbConn,
    before: NaiveDateTime,
    limit: i64,
) -> DbResult<Vec<String>> {
    let used = attachments::table
        .filter(attachments::sha256.is_not_null())
        .select(attachments::sha256.assume_not_null());
    let thumbnails = attachments::table
        .filter(attachments::thumbnail_sha256.is_not_null())
        .select(attachments::thumbnail_sha256.assume_not_null());
    Ok(with_conn!(conn, |c| media_blobs::table
        .filter(media_blobs::touched_at.lt(before))
        .filter(media_blobs::sha256.ne_all(used))
        .filter(media_blobs::sha256.ne_all(thumbnails))
        .select(media_blobs::sha256)
        .limit(limit)
        .load(c)
        .await)?)
}

/// Forgets a blob if it is still untouched since `before` and unreferenced (checked again
/// here, in the deleting statement); false when an upload took it up meanwhile.
pub async fn forget_blob(conn: &mut DbConn, sha256: &str, before: NaiveDateTime) -> DbResult<bool> {
    let referencing = attachments::table.filter(
        attachments::sha256
            .eq(sha256)
            .or(attachments::thumbnail_sha256.eq(sha256)),
    );
    let deleted = with_conn!(conn, |c| diesel::delete(
        media_blobs::table
            .filter(media_blobs::sha256.eq(sha256))
            .filter(media_blobs::touched_at.lt(before))
            .filter(diesel::dsl::not(diesel::dsl::exists(referencing)))
    )
    .execute(c)
    .await)?;
    Ok(deleted > 0)
}

/// A blob's size and type.
pub async fn blob(conn: &mut DbConn, sha256: &str) -> DbResult<Option<(i64, String)>> {
    Ok(with_conn!(conn, |c| media_blobs::table
        .find(sha256)
        .select((media_blobs::size, media_blobs::mime_type))
        .first(c)
        .await
        .optional())?)
}
