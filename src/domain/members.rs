//! Chat membership: listing members, adding and removing them, roles and who may grant
//! them, leaving, and each member's own flags (pinned, muted).

use crate::app::App;
use crate::db::chats::Chat;
use crate::db::members::{Member, MemberSettings, NewMember};
use crate::db::{self, DbConn};
use crate::domain::access::{CheckedMemberships, member_of};
use crate::domain::now;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventKind, Tx};
use crate::vocabulary::cursor::{self, Page, PageRequest};
use crate::vocabulary::enums::{ChatKind, MemberRole};
use crate::vocabulary::ids::{ChatId, MemberId, MessageId, UserId};

/// Most users one `createChat`/`addMembers` call may add.
pub const MAX_MEMBERS_PER_CALL: usize = 500;

/// Fails unless every id names an existing user.
pub(crate) async fn require_users_exist(conn: &mut DbConn, ids: &[UserId]) -> AppResult<()> {
    let found = db::users::count_existing(conn, ids).await?;
    if usize::try_from(found).ok() != Some(ids.len()) {
        return Err(AppError::NotFound("user"));
    }
    Ok(())
}

/// `user` joined `chat`.
pub(crate) fn joined(chat: &Chat, user: UserId) -> Event {
    Event::in_chat(chat.id, EventKind::MemberJoined { user_id: user })
}

/// Adds `user` to chat `chat_id` with `role`, with messages up to `read_up_to` read.
pub(crate) async fn insert_member(
    conn: &mut DbConn,
    chat_id: ChatId,
    user: UserId,
    role: MemberRole,
    read_up_to: Option<MessageId>,
) -> AppResult<Member> {
    Ok(db::members::insert(
        conn,
        &NewMember {
            chat_id,
            user_id: user,
            role,
            joined_at: now(),
            last_read_message_id: read_up_to,
        },
    )
    .await?)
}

/// A membership of a chat the caller is a member of (checked once per operation through
/// `checked`); `NOT_FOUND` when that user is not (or no longer) a member.
pub async fn get(
    app: &App,
    caller: UserId,
    id: MemberId,
    checked: &CheckedMemberships,
) -> AppResult<Member> {
    let mut conn = app.db().conn().await?;
    checked.member_of(&mut conn, id.chat, caller).await?;
    db::members::find(&mut conn, id.chat, id.user)
        .await?
        .ok_or(AppError::NotFound("member"))
}

/// Cursor kind of member lists.
pub const MEMBER_CURSOR: &str = "member";

/// The cursor of a member in a chat's member list.
pub fn member_cursor(member: &Member) -> String {
    cursor::encode(MEMBER_CURSOR, &[member.user_id.0])
}

/// A page of a chat's members (members only).
pub async fn members(
    app: &App,
    caller: UserId,
    chat: ChatId,
    page: &PageRequest,
) -> AppResult<Page<Member>> {
    let after = page
        .cursor
        .as_deref()
        .map(|c| cursor::decode(MEMBER_CURSOR, c, 1).map(|f| UserId(f[0])))
        .transpose()?;
    let mut conn = app.db().conn().await?;
    member_of(&mut conn, chat, caller).await?;
    Ok(db::members::list(&mut conn, chat, after, page).await?)
}

/// Only an OWNER may hand out or take away OWNER and ADMIN.
fn check_role_grant(actor: MemberRole, role: MemberRole) -> AppResult<()> {
    if matches!(role, MemberRole::Owner | MemberRole::Admin) && actor != MemberRole::Owner {
        return Err(AppError::Forbidden(
            "only an OWNER may grant OWNER or ADMIN".into(),
        ));
    }
    Ok(())
}

/// The chat and the caller's membership, for managing a group's members: the caller must
/// be a member, the chat a group (a DIRECT chat's members are fixed, whoever asks), and the
/// caller its OWNER or ADMIN. Locks the chat first, so the checks and the change that
/// follows see no concurrent membership change.
async fn managed_group(
    conn: &mut DbConn,
    chat: ChatId,
    caller: UserId,
) -> AppResult<(Chat, Member)> {
    db::chats::lock(conn, chat).await?;
    let (chat_row, actor) = member_of(conn, chat, caller).await?;
    if chat_row.kind == ChatKind::Direct {
        return Err(AppError::BadInput(
            "a DIRECT chat's members are fixed; create a GROUP instead".into(),
        ));
    }
    if !actor.role.can_manage() {
        return Err(AppError::Forbidden(
            "only the chat's OWNER or ADMIN may do this".into(),
        ));
    }
    Ok((chat_row, actor))
}

/// Adds users to a chat (OWNER/ADMIN). Users already in it keep their membership; every
/// requested member is returned. New members start with the existing history read.
pub async fn add_members(
    app: &App,
    caller: UserId,
    chat: ChatId,
    user_ids: &[UserId],
    role: Option<MemberRole>,
) -> AppResult<Vec<Member>> {
    let role = role.unwrap_or(MemberRole::Member);
    let mut wanted = user_ids.to_vec();
    wanted.sort();
    wanted.dedup();
    if wanted.len() > MAX_MEMBERS_PER_CALL {
        return Err(AppError::LimitExceeded(format!(
            "at most {MAX_MEMBERS_PER_CALL} members per call"
        )));
    }
    app.write(async |conn| {
        let (chat_row, actor) = managed_group(conn, chat, caller).await?;
        check_role_grant(actor.role, role)?;
        require_users_exist(conn, &wanted).await?;
        let mut members = Vec::with_capacity(wanted.len());
        for user in &wanted {
            if let Some(existing) = db::members::find(conn, chat, *user).await? {
                members.push(existing);
                continue;
            }
            members.push(insert_member(conn, chat, *user, role, chat_row.last_message_id).await?);
            conn.emit(joined(&chat_row, *user));
        }
        Ok(members)
    })
    .await
}

/// Fails when removing `leaving` (or taking its OWNER role) would leave the chat with
/// other members but no OWNER.
async fn keep_an_owner(conn: &mut DbConn, chat: ChatId, leaving: &Member) -> AppResult<()> {
    if leaving.role != MemberRole::Owner {
        return Ok(());
    }
    let owners = db::members::count_with_role(conn, chat, MemberRole::Owner).await?;
    let members = db::members::user_ids(conn, chat).await?.len();
    if owners <= 1 && members > 1 {
        return Err(AppError::Conflict(
            "the last OWNER must hand over ownership (setMemberRole) first".into(),
        ));
    }
    Ok(())
}

/// Before a member goes without a say (their account is deleted): when they are their
/// chat's only OWNER and others remain, the successor (longest-standing ADMIN, else
/// member) becomes OWNER, so no group is left unmanageable.
pub(crate) async fn hand_over_if_last_owner(tx: &mut Tx<'_>, leaving: &Member) -> AppResult<()> {
    if leaving.role != MemberRole::Owner {
        return Ok(());
    }
    let chat = leaving.chat_id;
    db::chats::lock(tx, chat).await?;
    if db::members::count_with_role(tx, chat, MemberRole::Owner).await? > 1 {
        return Ok(());
    }
    if let Some(successor) = db::members::successor(tx, chat, leaving.user_id).await? {
        db::members::set_role(tx, chat, successor.user_id, MemberRole::Owner).await?;
        tx.emit(Event::in_chat(
            chat,
            EventKind::MemberUpdated {
                user_id: successor.user_id,
                role: MemberRole::Owner,
            },
        ));
    }
    Ok(())
}

/// Removes a member (OWNER/ADMIN; only an OWNER removes OWNERs and ADMINs).
pub async fn remove_member(
    app: &App,
    caller: UserId,
    chat: ChatId,
    user: UserId,
) -> AppResult<bool> {
    if user == caller {
        return leave(app, caller, chat).await;
    }
    app.write(async |conn| {
        let (_, actor) = managed_group(conn, chat, caller).await?;
        let target = db::members::find(conn, chat, user)
            .await?
            .ok_or(AppError::NotFound("member"))?;
        check_role_grant(actor.role, target.role)?;
        keep_an_owner(conn, chat, &target).await?;
        db::members::delete(conn, chat, user).await?;
        conn.emit(Event::in_chat(
            chat,
            EventKind::MemberLeft { user_id: user },
        ));
        Ok(true)
    })
    .await
}

/// The caller leaves a chat. The last OWNER of a chat with other members must hand over
/// ownership first.
pub async fn leave(app: &App, caller: UserId, chat: ChatId) -> AppResult<bool> {
    app.write(async |conn| {
        db::chats::lock(conn, chat).await?;
        let (_, me) = member_of(conn, chat, caller).await?;
        keep_an_owner(conn, chat, &me).await?;
        db::members::delete(conn, chat, caller).await?;
        conn.emit(Event::in_chat(
            chat,
            EventKind::MemberLeft { user_id: caller },
        ));
        Ok(true)
    })
    .await
}

/// Changes a member's role (OWNER/ADMIN; only an OWNER grants or revokes OWNER/ADMIN).
pub async fn set_role(
    app: &App,
    caller: UserId,
    chat: ChatId,
    user: UserId,
    role: MemberRole,
) -> AppResult<Member> {
    app.write(async |conn| {
        let (_, actor) = managed_group(conn, chat, caller).await?;
        let target = db::members::find(conn, chat, user)
            .await?
            .ok_or(AppError::NotFound("member"))?;
        check_role_grant(actor.role, role)?;
        check_role_grant(actor.role, target.role)?;
        if role != MemberRole::Owner {
            keep_an_owner(conn, chat, &target).await?;
        }
        let member = db::members::set_role(conn, chat, user, role).await?;
        conn.emit(Event::in_chat(
            chat,
            EventKind::MemberUpdated {
                user_id: user,
                role,
            },
        ));
        Ok(member)
    })
    .await
}

/// Which per-member flag to set.
#[derive(Clone, Copy, Debug)]
pub enum MemberFlag {
    /// Pinned to the top of the member's chat list.
    Pinned,
    /// Notifications muted.
    Muted,
}

/// Sets one of the caller's own flags on a chat.
pub async fn set_flag(
    app: &App,
    caller: UserId,
    chat: ChatId,
    flag: MemberFlag,
    value: bool,
) -> AppResult<Member> {
    let mut conn = app.db().conn().await?;
    member_of(&mut conn, chat, caller).await?;
    let settings = match flag {
        MemberFlag::Pinned => MemberSettings {
            pinned: Some(value),
            ..Default::default()
        },
        MemberFlag::Muted => MemberSettings {
            muted: Some(value),
            ..Default::default()
        },
    };
    let member = db::members::set_settings(&mut conn, chat, caller, &settings).await?;
    Ok(member)
}
