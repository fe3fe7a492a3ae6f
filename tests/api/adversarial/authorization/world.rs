//! The fixture every authorization case runs against, and how one case is run: who calls
//! (with which credential), and what came back.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::*;

/// Planted in the chat's name, description and messages: a caller who may not read the
/// chat must never see it in a response.
pub const SECRET: &str = "s3cr3t-7f1c";

/// Who calls. The first six have a column each in the table; the bad credentials are
/// refused the same way for every operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No `Authorization`, no admin key.
    NoToken,
    /// A wrong `X-Admin-Key`.
    WrongAdminKey,
    /// The owner's claims signed with another secret.
    Forged,
    /// The owner's claims, signed right, expired a minute ago.
    Expired,
    /// The owner's claims with `alg: none` and no signature.
    AlgNone,
    /// The owner's claims signed with the server's secret, but HS512 (only HS256 is
    /// accepted).
    OtherAlgorithm,
    /// Signed right, but the subject is a username, not a user id.
    SubjectUsername,
    /// Signed right, but the subject is the chat's id (a valid id of another type).
    SubjectChatId,
    /// A user who never was a member of the chat.
    Outsider,
    /// A user who was a member and was removed before the secrets were sent.
    Removed,
    /// A plain MEMBER.
    Member,
    /// An ADMIN of the chat.
    ChatAdmin,
    /// The chat's OWNER.
    Owner,
    /// The application backend's admin key.
    AdminKey,
    /// A user deleted after their token was issued (they were a member).
    Deleted,
    /// A validly signed token for a user id that never existed.
    NeverExisted,
}

impl Caller {
    /// The callers with a column in the table, in column order.
    pub const COLUMNS: [Caller; 6] = [
        Caller::Outsider,
        Caller::Removed,
        Caller::Member,
        Caller::ChatAdmin,
        Caller::Owner,
        Caller::AdminKey,
    ];

    /// Credentials that name nobody: refused for every operation.
    pub const BAD_CREDENTIALS: [Caller; 8] = [
        Caller::NoToken,
        Caller::WrongAdminKey,
        Caller::Forged,
        Caller::Expired,
        Caller::AlgNone,
        Caller::OtherAlgorithm,
        Caller::SubjectUsername,
        Caller::SubjectChatId,
    ];

    /// The column of this caller in the table, if it has one.
    pub fn column(self) -> Option<usize> {
        Self::COLUMNS.iter().position(|c| *c == self)
    }

    /// Whether this caller may read the chat: if not, no response may carry [`SECRET`].
    pub fn reads_the_chat(self) -> bool {
        matches!(self, Caller::Member | Caller::ChatAdmin | Caller::Owner)
    }
}

/// What a client sends to say who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    Nothing,
    Token(String),
    AdminKey(String),
}

/// A server's fixture: a GROUP chat whose name, description and messages carry
/// [`SECRET`], people in every relation to it, and a "lobby" chat everybody is in.
pub struct World {
    /// OWNER of the chat.
    pub owner: TestUser,
    /// Two ADMINs.
    pub chat_admin: TestUser,
    pub chat_admin2: TestUser,
    /// Two plain MEMBERs (the first a bot).
    pub member: TestUser,
    pub member2: TestUser,
    /// Removed from the chat before the secrets were sent.
    pub removed: TestUser,
    /// Never in the chat.
    pub outsider: TestUser,
    /// Never in the chat; the user the tables add, invite and delete.
    pub newcomer: TestUser,
    /// Owner of the lobby.
    pub buddy: TestUser,
    /// The chat with the secrets.
    pub chat: String,
    /// A chat every one of them (but the newcomer) is in, without secrets.
    pub lobby: String,
    /// Cursor of the chat's first message (sent before the removal, no secret).
    pub first_cursor: String,
    /// The owner's secret message.
    pub owner_message: String,
    /// The member's secret message.
    pub member_message: String,
    /// The member's streaming reply (STREAMING).
    pub stream_message: String,
    /// What the removed member sent before the removal (no secret).
    pub removed_message: String,
    /// A message in the lobby.
    pub lobby_message: String,
    /// Tokens for callers the fixture does not make itself (deleted, never existed).
    extra: Vec<(Caller, String)>,
}

static WORLDS: AtomicUsize = AtomicUsize::new(0);

/// A number no other call in this test binary gets (for unique usernames).
pub fn unique() -> usize {
    WORLDS.fetch_add(1, Ordering::SeqCst)
}

const SEND: &str =
    "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id cursor } }";

/// Sends `input` as `user`; returns the message's id and cursor.
async fn send_input(
    server: &TestServer,
    user: &TestUser,
    input: Value,
) -> TestResult<(String, String)> {
    let data = server
        .client(user)
        .ok(SEND, json!({ "input": input }))
        .await?;
    Ok((
        str_at(&data, "/sendMessage/id")?,
        str_at(&data, "/sendMessage/cursor")?,
    ))
}

impl World {
    pub async fn new(server: &TestServer) -> TestResult<Self> {
        let n = unique();
        let named = |name: &str| format!("{name}{n}");
        let owner = server.user(&named("olive")).await?;
        let chat_admin = server.user(&named("adam")).await?;
        let chat_admin2 = server.user(&named("ada")).await?;
        // A bot: the member streams a reply, which only bots may.
        let member = server.bot(&named("mia")).await?;
        let member2 = server.user(&named("max")).await?;
        let removed = server.user(&named("rex")).await?;
        let outsider = server.user(&named("nora")).await?;
        let newcomer = server.user(&named("tess")).await?;
        let buddy = server.user(&named("bud")).await?;

        let as_owner = server.client(&owner);
        let data = as_owner
            .ok(
                "mutation($name: String, $d: String, $m: [ID!]) {
                   createChat(input: {kind: GROUP, name: $name, description: $d, memberIds: $m, externalKey: \"conv\"}) { id }
                 }",
                json!({
                    "name": format!("{SECRET} plans"),
                    "d": format!("{SECRET} description"),
                    "m": [chat_admin.id, chat_admin2.id, member.id, member2.id, removed.id],
                }),
            )
            .await?;
        let chat = str_at(&data, "/createChat/id")?;
        for admin in [&chat_admin, &chat_admin2] {
            as_owner
                .ok(
                    "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: ADMIN) { role } }",
                    json!({"c": chat, "u": admin.id}),
                )
                .await?;
        }
        let (_, first_cursor) = send_input(
            server,
            &owner,
            json!({"chatId": chat, "content": "hello, everyone"}),
        )
        .await?;
        let (removed_message, _) = send_input(
            server,
            &removed,
            json!({"chatId": chat, "content": "rex was here"}),
        )
        .await?;
        remove_member(server, &owner, &chat, &removed).await?;
        let (owner_message, _) = send_input(
            server,
            &owner,
            json!({"chatId": chat, "content": format!("{SECRET} from the owner")}),
        )
        .await?;
        let (member_message, _) = send_input(
            server,
            &member,
            json!({"chatId": chat, "content": format!("{SECRET} from the member")}),
        )
        .await?;
        let (stream_message, _) = send_input(
            server,
            &member,
            json!({"chatId": chat, "content": format!("{SECRET} streaming"), "stream": true}),
        )
        .await?;

        let everybody = [
            &owner,
            &chat_admin,
            &chat_admin2,
            &member,
            &member2,
            &removed,
            &outsider,
        ];
        let lobby = group(server, &buddy, &everybody).await?;
        let (lobby_message, _) = send_input(
            server,
            &buddy,
            json!({"chatId": lobby, "content": "welcome to the lobby"}),
        )
        .await?;
        Ok(Self {
            owner,
            chat_admin,
            chat_admin2,
            member,
            member2,
            removed,
            outsider,
            newcomer,
            buddy,
            chat,
            lobby,
            first_cursor,
            owner_message,
            member_message,
            stream_message,
            removed_message,
            lobby_message,
            extra: Vec::new(),
        })
    }

    /// Makes `caller` (one the fixture does not make itself) use `token`.
    pub fn add_token(&mut self, caller: Caller, token: String) {
        self.extra.push((caller, token));
    }

    /// What `caller` sends.
    pub fn credential(&self, caller: Caller) -> TestResult<Credential> {
        let now = chrono::Utc::now().timestamp();
        let owner = &self.owner.id;
        let token = |t: &TestUser| Ok(Credential::Token(t.token.clone()));
        match caller {
            Caller::NoToken => Ok(Credential::Nothing),
            Caller::WrongAdminKey => Ok(Credential::AdminKey(format!("{ADMIN_KEY}-wrong"))),
            Caller::AdminKey => Ok(Credential::AdminKey(ADMIN_KEY.to_owned())),
            Caller::Forged => Ok(Credential::Token(craft_token(
                "not-the-server-secret-0123456789",
                owner,
                now,
                now + 600,
            )?)),
            Caller::Expired => Ok(Credential::Token(craft_token(
                JWT_SECRET,
                owner,
                now - 3600,
                now - 60,
            )?)),
            Caller::AlgNone => Ok(Credential::Token(unsigned_token(owner, now, now + 600))),
            Caller::OtherAlgorithm => Ok(Credential::Token(craft_token_with(
                jsonwebtoken::Algorithm::HS512,
                JWT_SECRET,
                owner,
                now,
                now + 600,
            )?)),
            Caller::SubjectUsername => Ok(Credential::Token(craft_token(
                JWT_SECRET,
                &self.owner.username,
                now,
                now + 600,
            )?)),
            Caller::SubjectChatId => Ok(Credential::Token(craft_token(
                JWT_SECRET,
                &self.chat,
                now,
                now + 600,
            )?)),
            Caller::Outsider => token(&self.outsider),
            Caller::Removed => token(&self.removed),
            Caller::Member => token(&self.member),
            Caller::ChatAdmin => token(&self.chat_admin),
            Caller::Owner => token(&self.owner),
            Caller::Deleted | Caller::NeverExisted => self
                .extra
                .iter()
                .find(|(c, _)| *c == caller)
                .map(|(_, t)| Credential::Token(t.clone()))
                .ok_or_else(|| format!("no token for {caller:?}: add_token it first").into()),
        }
    }

    /// An HTTP client for `caller`.
    pub fn client(&self, server: &TestServer, caller: Caller) -> TestResult<Client> {
        Ok(match self.credential(caller)? {
            Credential::Nothing => Client::new(server.url(), None, None),
            Credential::Token(t) => Client::new(server.url(), Some(t), None),
            Credential::AdminKey(k) => Client::new(server.url(), None, Some(k)),
        })
    }

    /// The `connection_init` payload of `caller`. The socket has no admin-key channel:
    /// a key is offered in every field a token could be.
    pub fn init_payload(&self, caller: Caller) -> TestResult<Value> {
        Ok(match self.credential(caller)? {
            Credential::Nothing => json!({}),
            Credential::Token(t) => json!({"authorization": format!("Bearer {t}")}),
            Credential::AdminKey(k) => {
                json!({"authorization": format!("Bearer {k}"), "token": k, "x-admin-key": k})
            }
        })
    }
}
