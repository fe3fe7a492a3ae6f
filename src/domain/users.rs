//! User management (admin key) and lookups.

use async_graphql::{InputObject, MaybeUndefined};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::app::App;
use crate::auth::Caller;
use crate::db;
use crate::db::users::{NewUser, User, UserChanges};
use crate::domain::{check_text, json_to_text, members, now};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind, Scope};
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::ids::UserId;

/// Longest username.
pub const MAX_USERNAME: usize = 64;
/// Longest display name.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest URL.
pub const MAX_URL: usize = 2048;
/// Default lifetime of a token minted by `issueToken`.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of a minted token.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

// The commands below are the GraphQL inputs themselves (one definition, not a GraphQL
// copy mapped onto a domain copy): their doc comments are the schema's descriptions.

/// A new user.
#[derive(Debug, Default, InputObject)]
#[graphql(name = "CreateUserInput")]
pub struct CreateUser {
    /// Unique handle: letters, digits, `_`, `-`, `.` (at most 64).
    pub username: String,
    /// Name shown in the UI.
    pub display_name: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// True for bots and AI agents.
    pub is_bot: Option<bool>,
    /// Free-form data.
    pub metadata: Option<serde_json::Value>,
}

/// Changes to a user; an omitted field stays, `null` clears it.
#[derive(Debug, Default, InputObject)]
#[graphql(name = "UpdateUserInput")]
pub struct UpdateUser {
    /// Name shown in the UI.
    pub display_name: MaybeUndefined<String>,
    /// Avatar image URL.
    pub avatar_url: MaybeUndefined<String>,
    /// Free-form data.
    pub metadata: MaybeUndefined<serde_json::Value>,
}

/// Whether `c` may be part of a username.
pub(crate) fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

pub(crate) fn check_username(username: &str) -> AppResult<()> {
    let valid_chars = username.chars().all(is_username_char);
    if username.is_empty() || username.chars().count() > MAX_USERNAME || !valid_chars {
        return Err(AppError::BadInput(format!(
            "username must be 1–{MAX_USERNAME} characters of letters, digits, `_`, `-` or `.`"
        )));
    }
    Ok(())
}

/// Creates a user (admin key).
pub async fn create(app: &App, caller: &Caller, input: CreateUser) -> AppResult<User> {
    caller.require_admin()?;
    create_unchecked(app, input).await
}

/// Creates a user without a permission check (for the local `token --create` command).
pub async fn create_unchecked(app: &App, input: CreateUser) -> AppResult<User> {
    check_username(&input.username)?;
    check_text(
        "displayName",
        input.display_name.as_deref(),
        MAX_DISPLAY_NAME,
    )?;
    check_text("avatarUrl", input.avatar_url.as_deref(), MAX_URL)?;
    let at = now();
    let new = NewUser {
        username: &input.username,
        display_name: input.display_name.as_deref(),
        avatar_url: input.avatar_url.as_deref(),
        is_bot: input.is_bot.unwrap_or(false),
        metadata: json_to_text("metadata", input.metadata.as_ref())?,
        created_at: at,
        updated_at: at,
    };
    let mut conn = app.db().conn().await?;
    db::users::insert(&mut conn, &new).await.map_err(|e| {
        if e.is_unique_violation() {
            AppError::Conflict(format!("username `{}` is taken", input.username))
        } else {
            e.into()
        }
    })
}

/// Updates a user (admin key, or the user themself).
pub async fn update(app: &App, caller: &Caller, id: UserId, input: UpdateUser) -> AppResult<User> {
    if !matches!(caller, Caller::Admin) && caller.user_id()? != id {
        return Err(AppError::Forbidden("you may only update yourself".into()));
    }
    let display_name = input.display_name.value().map(String::as_str);
    check_text("displayName", display_name, MAX_DISPLAY_NAME)?;
    check_text(
        "avatarUrl",
        input.avatar_url.value().map(String::as_str),
        MAX_URL,
    )?;
    let changes = UserChanges {
        display_name: input.display_name.into(),
        avatar_url: input.avatar_url.into(),
        metadata: Option::<Option<_>>::from(input.metadata)
            .map(|m| json_to_text("metadata", m.as_ref()))
            .transpose()?,
        updated_at: Some(now()),
    };
    let mut conn = app.db().conn().await?;
    db::users::update(&mut conn, id, &changes)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Deletes a user (admin key). Their memberships go; their messages stay without sender.
/// Their tokens stop working at once: open sockets close with 4403, and the chats they were
/// in get `MemberLeft` (a group whose only OWNER they were gets a new one first).
pub async fn delete(app: &App, caller: &Caller, id: UserId) -> AppResult<bool> {
    caller.require_admin()?;
    app.write(async |tx| {
        let memberships = db::members::of_user(tx, id).await?;
        for membership in &memberships {
            members::hand_over_if_last_owner(tx, membership).await?;
        }
        if !db::users::delete(tx, id).await? {
            return Err(AppError::NotFound("user"));
        }
        for membership in &memberships {
            tx.emit(Event::in_chat(
                membership.chat_id,
                EventKind::MemberLeft { user_id: id },
            ));
        }
        tx.emit(Event::about_user(id, EventKind::TokensRevoked));
        Ok(true)
    })
    .await
}

/// Revokes every token issued to a user so far (admin key): requests with them are
/// `UNAUTHENTICATED` and sockets holding them close with 4403; tokens issued afterwards
/// work.
pub async fn revoke_tokens(app: &App, caller: &Caller, id: UserId) -> AppResult<bool> {
    caller.require_admin()?;
    app.write(async |tx| {
        db::users::bump_token_generation(tx, id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        tx.emit(Event::about_user(id, EventKind::TokensRevoked));
        Ok(true)
    })
    .await
}

/// Applies committed revocations (this instance's, and over PostgreSQL the others') to the
/// token cache, for the life of the server. Missed events (a lag, a dropped
/// cross-instance feed) make it forget everything, so nothing stale is trusted.
pub async fn follow_revocations(app: App) {
    let mut events = app.broker().subscribe_accounts();
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            () = app.shutdown().cancelled() => return,
        };
        match received {
            Ok(event) => match (event.scope, &event.kind) {
                (Scope::User(user), EventKind::TokensRevoked) => app.tokens().revoked(user),
                (Scope::Everywhere, EventKind::ResyncRequired) => app.tokens().forget_all(),
                _ => {}
            },
            Err(RecvError::Lagged(_)) => app.tokens().forget_all(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Mints a token for a user (admin key).
pub async fn issue_token(
    app: &App,
    caller: &Caller,
    id: UserId,
    ttl_seconds: Option<i32>,
) -> AppResult<String> {
    caller.require_admin()?;
    let ttl = match ttl_seconds {
        None => DEFAULT_TOKEN_TTL,
        Some(secs) if secs > 0 => Duration::from_secs(secs.unsigned_abs().into()),
        Some(_) => return Err(AppError::BadInput("`ttlSeconds` must be positive".into())),
    };
    if ttl > MAX_TOKEN_TTL {
        return Err(AppError::BadInput(format!(
            "`ttlSeconds` may be at most {}",
            MAX_TOKEN_TTL.as_secs()
        )));
    }
    let mut conn = app.db().conn().await?;
    let user = db::users::find(&mut conn, id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    app.auth().issue_token(id, user.token_generation, ttl)
}

/// The calling user. A valid token for a deleted user is `UNAUTHENTICATED`.
pub async fn me(app: &App, caller: &Caller) -> AppResult<User> {
    let id = caller.user_id()?;
    let mut conn = app.db().conn().await?;
    db::users::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("this token's user no longer exists".into()))
}

/// Requires a user token or the admin key.
pub fn require_authenticated(caller: &Caller) -> AppResult<()> {
    match caller {
        Caller::Anonymous => Err(AppError::Unauthenticated(
            "authentication required: send `Authorization: Bearer <token>`".into(),
        )),
        _ => Ok(()),
    }
}

/// A user by id or username.
pub async fn find(
    app: &App,
    caller: &Caller,
    id: Option<UserId>,
    username: Option<&str>,
) -> AppResult<Option<User>> {
    require_authenticated(caller)?;
    let mut conn = app.db().conn().await?;
    match (id, username) {
        (Some(id), None) => Ok(db::users::find(&mut conn, id).await?),
        (None, Some(name)) => Ok(db::users::find_by_username(&mut conn, name).await?),
        _ => Err(AppError::BadInput(
            "pass exactly one of `id` or `username`".into(),
        )),
    }
}

/// Cursor kind of the user list.
pub const USER_CURSOR: &str = "user";

/// A page of users, optionally matching `search`.
pub async fn list(
    app: &App,
    caller: &Caller,
    search: Option<&str>,
    page: &PageRequest,
) -> AppResult<Page<User>> {
    require_authenticated(caller)?;
    let after = page
        .cursor
        .as_deref()
        .map(|c| cursor::decode(USER_CURSOR, c, 1).map(|f| f[0]))
        .transpose()?;
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let mut conn = app.db().conn().await?;
    Ok(db::users::list(&mut conn, search, after, page).await?)
}

/// The cursor of a user in the user list.
pub fn user_cursor(user: &User) -> String {
    cursor::encode(USER_CURSOR, &[user.id.0])
}

/// Records that a user was seen now (WebSocket connect and disconnect). Presence is best
/// effort: a failure is logged, never surfaced.
pub async fn record_seen(app: &App, id: UserId) {
    let result = match app.db().conn().await {
        Ok(mut conn) => db::users::touch_last_seen(&mut conn, id, now()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, user = id.0, "could not record last seen");
    }
}
