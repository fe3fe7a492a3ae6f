//! Writing a dump's records (see [`super::dump`]) into this database: every row gets an id
//! of this database, and `imported_rows` remembers which exported row it came from, so a
//! second import of the same rows finds them instead of adding them again.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::dump::{
    BlockRow, ChatRow, EditRow, MemberRow, MentionRow, MessageRow, PinRow, ReactionRow, SessionRow,
    ThreadReadRow, UserRow,
};
use super::schema::{
    blocks, chat_sessions, chat_tags, chats, database_identity, imported_rows, members, mentions,
    message_edits, messages, pins, reactions, thread_reads, users,
};
use super::{DbConn, DbResult};
use crate::with_conn;

/// What kind of exported row an `imported_rows` entry maps.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    User,
    Chat,
    Session,
    Message,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Chat => "chat",
            Kind::Session => "session",
            Kind::Message => "message",
        }
    }
}

/// This database's identity (written at its first migration), which its exports carry.
pub async fn identity(conn: &mut DbConn) -> DbResult<String> {
    Ok(with_conn!(conn, |c| database_identity::table
        .select(database_identity::id)
        .first(c)
        .await)?)
}

/// The id of the row made from `origin`'s row `source_id`, if one was.
pub async fn mapped(
    conn: &mut DbConn,
    origin: &str,
    kind: Kind,
    source_id: i64,
) -> DbResult<Option<i64>> {
    Ok(with_conn!(conn, |c| imported_rows::table
        .find((origin, kind.as_str(), source_id))
        .select(imported_rows::local_id)
        .first(c)
        .await
        .optional())?)
}

/// Remembers that `local_id` was made from `origin`'s row `source_id`.
pub async fn remember(
    conn: &mut DbConn,
    origin: &str,
    kind: Kind,
    source_id: i64,
    local_id: i64,
) -> DbResult<()> {
    with_conn!(conn, |c| diesel::insert_into(imported_rows::table)
        .values((
            imported_rows::origin.eq(origin),
            imported_rows::kind.eq(kind.as_str()),
            imported_rows::source_id.eq(source_id),
            imported_rows::local_id.eq(local_id),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Remembers many `(source_id, local_id)` pairs of one kind in one statement. The pairs
/// are numbers written into the SQL (diesel's batch insert does not build for SQLite
/// through diesel-async here); the origin, text from a dump, is bound. Both backends name
/// a `VALUES` list's columns `column1`, `column2`, and read `$1` as the first parameter.
pub async fn remember_many(
    conn: &mut DbConn,
    origin: &str,
    kind: Kind,
    pairs: &[(i64, i64)],
) -> DbResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut values = String::with_capacity(pairs.len() * 24);
    for (i, (source, local)) in pairs.iter().enumerate() {
        if i > 0 {
            values.push(',');
        }
        values.push_str(&format!("({source},{local})"));
    }
    let sql = format!(
        "INSERT INTO imported_rows (origin, kind, source_id, local_id) \
         SELECT $1, '{}', column1, column2 FROM (VALUES {values}) AS pairs",
        kind.as_str()
    );
    with_conn!(conn, |c| diesel::sql_query(sql.clone())
        .bind::<diesel::sql_types::Text, _>(origin)
        .execute(c)
        .await)?;
    Ok(())
}

/// The user with this username in any case, if there is one.
pub async fn user_named(conn: &mut DbConn, username: &str) -> DbResult<Option<i64>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};
    // Any case, as the unique index `users_username_ci` compares them (usernames are
    // ASCII): lower() on PostgreSQL, NOCASE on SQLite, so each backend uses its index.
    let (column, name, collation) = match conn {
        DbConn::Pg(_) => ("lower(username) = ", username.to_ascii_lowercase(), ""),
        DbConn::Sqlite(_) => ("username = ", username.to_owned(), " COLLATE NOCASE"),
    };
    let same_name = sql::<Bool>(column).bind::<Text, _>(name).sql(collation);
    Ok(with_conn!(conn, |c| users::table
        .filter(same_name)
        .select(users::id)
        .first(c)
        .await
        .optional())?)
}

/// Inserts a user; returns their id.
pub async fn insert_user(conn: &mut DbConn, row: &UserRow) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| diesel::insert_into(users::table)
        .values((
            users::username.eq(&row.username),
            users::display_name.eq(&row.display_name),
            users::avatar_url.eq(&row.avatar_url),
            users::is_bot.eq(row.is_bot),
            users::metadata.eq(&row.metadata),
            users::last_seen_at.eq(row.last_seen_at),
            users::created_at.eq(row.created_at),
            users::updated_at.eq(row.updated_at),
            users::token_generation.eq(0),
        ))
        .returning(users::id)
        .get_result(c)
        .await)?)
}

/// Inserts a block between two users of this database, unless it is there (then false).
pub async fn insert_block(conn: &mut DbConn, row: &BlockRow) -> DbResult<bool> {
    let added = with_conn!(conn, |c| diesel::insert_into(blocks::table)
        .values((
            blocks::blocker_id.eq(row.blocker_id),
            blocks::blocked_id.eq(row.blocked_id),
            blocks::created_at.eq(row.created_at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(added > 0)
}

/// Inserts a chat (its references already this database's) and its tags; returns its id.
/// The active session is set later, once the sessions are in.
pub async fn insert_chat(conn: &mut DbConn, row: &ChatRow, tags: &[String]) -> DbResult<i64> {
    let id: i64 = with_conn!(conn, |c| diesel::insert_into(chats::table)
        .values((
            chats::kind.eq(&row.kind),
            chats::category.eq(&row.category),
            chats::name.eq(&row.name),
            chats::description.eq(&row.description),
            chats::avatar_url.eq(&row.avatar_url),
            chats::metadata.eq(&row.metadata),
            chats::created_by.eq(row.created_by),
            chats::direct_key.eq(&row.direct_key),
            chats::created_at.eq(row.created_at),
            chats::updated_at.eq(row.updated_at),
            chats::last_activity_at.eq(row.last_activity_at),
            chats::external_key.eq(&row.external_key),
            chats::status.eq(&row.status),
        ))
        .returning(chats::id)
        .get_result(c)
        .await)?;
    for tag in tags {
        with_conn!(conn, |c| diesel::insert_into(chat_tags::table)
            .values((chat_tags::chat_id.eq(id), chat_tags::tag.eq(tag)))
            .on_conflict_do_nothing()
            .execute(c)
            .await)?;
    }
    Ok(id)
}

/// Inserts a session of a chat; returns its id.
pub async fn insert_session(conn: &mut DbConn, row: &SessionRow) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| diesel::insert_into(
        chat_sessions::table
    )
    .values((
        chat_sessions::chat_id.eq(row.chat_id),
        chat_sessions::started_at.eq(row.started_at),
        chat_sessions::ended_at.eq(row.ended_at),
    ))
    .returning(chat_sessions::id)
    .get_result(c)
    .await)?)
}

/// Most messages [`insert_messages`] takes: 14 bound values each, well under SQLite's
/// 32,766 parameters.
pub const MESSAGE_BATCH: usize = 500;

/// An inserted row's id, read by name from `RETURNING id`.
#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// Inserts messages (their references already this database's) in one statement; returns
/// their ids in the order of `rows`. A statement's ids are allocated in the order of its
/// `VALUES` on both backends (PostgreSQL's `nextval`, SQLite's next rowid, row by row), so
/// the returned ids sorted ascending are the rows' ids in order, whatever order `RETURNING`
/// reports them in (SQLite leaves it unspecified). Raw SQL with bound values: diesel's
/// batch insert does not build for SQLite through diesel-async here.
pub async fn insert_messages(conn: &mut DbConn, rows: &[MessageRow]) -> DbResult<Vec<i64>> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    const COLUMNS: usize = 14;
    let mut sql = String::with_capacity(200 + rows.len() * COLUMNS * 6);
    sql.push_str(
        "INSERT INTO messages (chat_id, sender_id, role, kind, content, data, parent_id, \
         client_id, stream_state, created_at, edited_at, retracted_at, trace_id, session_id) \
         VALUES ",
    );
    // PostgreSQL numbers its parameters. SQLite takes `?`: it looks each `$N` up among
    // the names seen so far, which made parsing a batch quadratic (30 % of the import's
    // CPU in strncmp).
    let numbered = matches!(conn, DbConn::Pg(_));
    for row in 0..rows.len() {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        for column in 0..COLUMNS {
            if column > 0 {
                sql.push(',');
            }
            if numbered {
                sql.push_str(&format!("${}", row * COLUMNS + column + 1));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING id");
    let mut ids: Vec<i64> = with_conn!(conn, |c| {
        let mut query = diesel::sql_query(sql.clone()).into_boxed();
        for row in rows {
            query = query
                .bind::<BigInt, _>(row.chat_id)
                .bind::<Nullable<BigInt>, _>(row.sender_id)
                .bind::<Text, _>(row.role.as_str())
                .bind::<Text, _>(row.kind.as_str())
                .bind::<Text, _>(row.content.as_str())
                .bind::<Nullable<Text>, _>(row.data.as_deref())
                .bind::<Nullable<BigInt>, _>(row.parent_id)
                .bind::<Nullable<Text>, _>(row.client_id.as_deref())
                .bind::<Nullable<Text>, _>(row.stream_state.as_deref())
                .bind::<Timestamp, _>(row.created_at)
                .bind::<Nullable<Timestamp>, _>(row.edited_at)
                .bind::<Nullable<Timestamp>, _>(row.retracted_at)
                .bind::<Nullable<Text>, _>(row.trace_id.as_deref())
                .bind::<Nullable<BigInt>, _>(row.session_id);
        }
        query.load::<InsertedId>(c).await
    })?
    .into_iter()
    .map(|inserted| inserted.id)
    .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Which of `origin`'s rows `source_ids` were imported before: source id → local id.
pub async fn mapped_many(
    conn: &mut DbConn,
    origin: &str,
    kind: Kind,
    source_ids: &[i64],
) -> DbResult<std::collections::HashMap<i64, i64>> {
    let found: Vec<(i64, i64)> = with_conn!(conn, |c| imported_rows::table
        .filter(imported_rows::origin.eq(origin))
        .filter(imported_rows::kind.eq(kind.as_str()))
        .filter(imported_rows::source_id.eq_any(source_ids))
        .select((imported_rows::source_id, imported_rows::local_id))
        .load(c)
        .await)?;
    Ok(found.into_iter().collect())
}

/// Inserts an earlier content of a message.
pub async fn insert_edit(conn: &mut DbConn, row: &EditRow) -> DbResult<()> {
    with_conn!(conn, |c| diesel::insert_into(message_edits::table)
        .values((
            message_edits::message_id.eq(row.message_id),
            message_edits::content.eq(&row.content),
            message_edits::written_at.eq(row.written_at),
            message_edits::replaced_at.eq(row.replaced_at),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Inserts a reaction, unless it is there.
pub async fn insert_reaction(conn: &mut DbConn, row: &ReactionRow) -> DbResult<bool> {
    let added = with_conn!(conn, |c| diesel::insert_into(reactions::table)
        .values((
            reactions::message_id.eq(row.message_id),
            reactions::user_id.eq(row.user_id),
            reactions::emoji.eq(&row.emoji),
            reactions::created_at.eq(row.created_at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(added > 0)
}

/// Inserts a mention, unless it is there.
pub async fn insert_mention(conn: &mut DbConn, row: &MentionRow) -> DbResult<bool> {
    let added = with_conn!(conn, |c| diesel::insert_into(mentions::table)
        .values((
            mentions::user_id.eq(row.user_id),
            mentions::chat_id.eq(row.chat_id),
            mentions::message_id.eq(row.message_id),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(added > 0)
}

/// Inserts a pin, unless the message is pinned.
pub async fn insert_pin(conn: &mut DbConn, row: &PinRow) -> DbResult<bool> {
    let added = with_conn!(conn, |c| diesel::insert_into(pins::table)
        .values((
            pins::message_id.eq(row.message_id),
            pins::chat_id.eq(row.chat_id),
            pins::pinned_by.eq(row.pinned_by),
            pins::pinned_at.eq(row.pinned_at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(added > 0)
}

/// Inserts a membership, unless the user is a member already.
pub async fn insert_member(conn: &mut DbConn, row: &MemberRow) -> DbResult<bool> {
    let added = with_conn!(conn, |c| diesel::insert_into(members::table)
        .values((
            members::chat_id.eq(row.chat_id),
            members::user_id.eq(row.user_id),
            members::role.eq(&row.role),
            members::joined_at.eq(row.joined_at),
            members::last_read_message_id.eq(row.last_read_message_id),
            members::last_read_at.eq(row.last_read_at),
            members::last_delivered_message_id.eq(row.last_delivered_message_id),
            members::pinned.eq(row.pinned),
            members::muted.eq(row.muted),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(added > 0)
}

/// Inserts how far a member read a thread, unless it is there.
pub async fn insert_thread_read(conn: &mut DbConn, row: &ThreadReadRow) -> DbResult<bool> {
    let added = with_conn!(conn, |c| diesel::insert_into(thread_reads::table)
        .values((
            thread_reads::user_id.eq(row.user_id),
            thread_reads::message_id.eq(row.message_id),
            thread_reads::last_read_message_id.eq(row.last_read_message_id),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(added > 0)
}

/// Sets what the server derives for a chat from its rows: its newest message, each thread
/// root's last reply, and its active session.
pub async fn derive_chat(
    conn: &mut DbConn,
    chat: i64,
    active_session: Option<i64>,
) -> DbResult<()> {
    let newest: Option<i64> = with_conn!(conn, |c| messages::table
        .filter(messages::chat_id.eq(chat))
        .select(diesel::dsl::max(messages::id))
        .first(c)
        .await)?;
    with_conn!(conn, |c| diesel::update(chats::table.find(chat))
        .set((
            chats::last_message_id.eq(newest),
            chats::active_session_id.eq(active_session),
        ))
        .execute(c)
        .await)?;
    // Only thread roots: rewriting every row would also make PostgreSQL compute each
    // message's search vector again. Joined with the chat's replies grouped by root, not
    // filtered by `id IN (its replies' parents)`: right after a bulk import PostgreSQL's
    // statistics still say the table is small, and it took that as a nested loop over the
    // chat's messages twice (one chat of 10,000 was still in it after 30 s; this form takes
    // 34 ms).
    // Raw SQL: diesel has no UPDATE … FROM (SQLite has it since 3.33).
    with_conn!(conn, |c| diesel::sql_query(
        "UPDATE messages SET last_reply_id = roots.last_reply \
         FROM (SELECT parent_id, MAX(id) AS last_reply FROM messages \
               WHERE chat_id = $1 AND parent_id IS NOT NULL GROUP BY parent_id) AS roots \
         WHERE messages.id = roots.parent_id"
    )
    .bind::<diesel::sql_types::BigInt, _>(chat)
    .execute(c)
    .await)?;
    Ok(())
}
