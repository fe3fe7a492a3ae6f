//! Users: the model and every query on the `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::users;
use super::{DbConn, DbResult};
use crate::vocabulary::cursor::{Page, PageRequest};
use crate::vocabulary::ids::UserId;
use crate::with_conn;

diesel::define_sql_function!(
    /// SQL `lower()`. PostgreSQL's folds all of Unicode; SQLite's built-in only folds
    /// ASCII, so each SQLite connection replaces it (see [`register_unicode_lower`]).
    fn lower(
        text: diesel::sql_types::Nullable<diesel::sql_types::Text>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Text>
);

/// Makes `lower()` on a SQLite connection fold case like PostgreSQL's (and like the
/// `to_lowercase` the search term gets), so "ÄRGER" finds "Ärger" on both backends.
/// Called once per connection when the pool opens it.
pub(super) fn register_unicode_lower(
    conn: &mut diesel::SqliteConnection,
) -> diesel::QueryResult<()> {
    lower_utils::register_impl(conn, |text: Option<String>| text.map(|t| t.to_lowercase()))
}

/// A stored user.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub is_bot: bool,
    pub metadata: Option<String>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Tokens issued before this generation are revoked.
    pub token_generation: i64,
}

/// Fields of a new user.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
    pub is_bot: bool,
    pub metadata: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A partial update; `None` leaves a column as it is, `Some(None)` clears it.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Inserts a user.
pub async fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> DbResult<User> {
    Ok(with_conn!(conn, |c| diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(c)
        .await)?)
}

/// The user with `id`, if any.
pub async fn find(conn: &mut DbConn, id: UserId) -> DbResult<Option<User>> {
    Ok(with_conn!(conn, |c| users::table
        .find(id)
        .select(User::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The user named `username`, if any.
pub async fn find_by_username(conn: &mut DbConn, username: &str) -> DbResult<Option<User>> {
    Ok(with_conn!(conn, |c| users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The users with these ids (any order; unknown ids are skipped).
pub async fn find_many(conn: &mut DbConn, ids: &[UserId]) -> DbResult<Vec<User>> {
    Ok(with_conn!(conn, |c| users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .load(c)
        .await)?)
}

/// How many of these ids exist.
pub async fn count_existing(conn: &mut DbConn, ids: &[UserId]) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| users::table
        .filter(users::id.eq_any(ids))
        .count()
        .get_result(c)
        .await)?)
}

/// Applies `changes` to user `id`; `None` when there is no such user.
pub async fn update(
    conn: &mut DbConn,
    id: UserId,
    changes: &UserChanges,
) -> DbResult<Option<User>> {
    Ok(with_conn!(conn, |c| diesel::update(users::table.find(id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(c)
        .await
        .optional())?)
}

/// Records that the user was seen at `at`.
pub async fn touch_last_seen(conn: &mut DbConn, id: UserId, at: NaiveDateTime) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(users::table.find(id))
        .set(users::last_seen_at.eq(at))
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes user `id`; memberships go with it, their messages stay with no sender.
pub async fn delete(conn: &mut DbConn, id: UserId) -> DbResult<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(users::table.find(id))
        .execute(c)
        .await)?;
    Ok(deleted > 0)
}

/// The user's token generation; `None` when there is no such user.
pub async fn token_generation(conn: &mut DbConn, id: UserId) -> DbResult<Option<i64>> {
    Ok(with_conn!(conn, |c| users::table
        .find(id)
        .select(users::token_generation)
        .first(c)
        .await
        .optional())?)
}

/// Revokes every token issued to the user so far; the new generation, or `None` when
/// there is no such user.
pub async fn bump_token_generation(conn: &mut DbConn, id: UserId) -> DbResult<Option<i64>> {
    Ok(with_conn!(conn, |c| diesel::update(users::table.find(id))
        .set(users::token_generation.eq(users::token_generation + 1))
        .returning(users::token_generation)
        .get_result(c)
        .await
        .optional())?)
}

/// A page of users in id order, optionally only those whose username or display name
/// contains `search` (case-insensitive).
pub async fn list(
    conn: &mut DbConn,
    search: Option<&str>,
    after_id: Option<i64>,
    page: &PageRequest,
) -> DbResult<Page<User>> {
    let pattern = search.map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let rows = with_conn!(conn, |c| {
        let mut query = users::table
            .select(User::as_select())
            .order(users::id.asc())
            .limit(limit)
            .into_boxed();
        if let Some(after) = after_id {
            query = query.filter(users::id.gt(after));
        }
        if let Some(pattern) = &pattern {
            query = query.filter(
                lower(users::username.nullable())
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(users::display_name)
                        .like(pattern.clone())
                        .escape('\\')),
            );
        }
        query.load(c).await
    })?;
    Ok(Page::from_rows(rows, page))
}

/// Escapes LIKE wildcards so user input matches literally.
pub fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
