//! The matrix itself: one row per operation of the schema (or per variant of one), with
//! the outcome each kind of caller must get. A new operation is one row in [`ops`].

use serde_json::{Value, json};

use super::outcome::Probe;
use super::world::{Caller, SECRET, World, unique};

// The outcomes the table writes (see `outcome::Outcome`).
pub(super) const OK: &str = "OK";
pub(super) const NULL: &str = "NULL";
pub(super) const U: &str = "UNAUTHENTICATED";
pub(super) const F: &str = "FORBIDDEN";
pub(super) const N: &str = "NOT_FOUND";
pub(super) const B: &str = "BAD_USER_INPUT";
pub(super) const CONFLICT: &str = "CONFLICT";
/// How a socket refuses a `connection_init` (graphql-transport-ws: 4403 Forbidden).
pub(super) const CLOSED_4403: &str = "closed 4403";

/// How an operation is carried.
#[derive(Clone, Copy, Debug)]
pub(super) enum Transport {
    Http,
    /// A subscription; when it is allowed, the probe shows it live.
    Ws(Probe),
}

/// What an ID argument must name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IdType {
    User,
    Chat,
    Message,
    /// `node(id)`: any type.
    Any,
}

/// An ID in an operation's variables: where it is (a JSON pointer), what it must name,
/// and the outcome when it is well-formed but names nothing.
pub(super) struct IdArg {
    pub(super) at: &'static str,
    pub(super) ty: IdType,
    pub(super) missing: &'static str,
}

pub(super) fn id(at: &'static str, ty: IdType, missing: &'static str) -> IdArg {
    IdArg { at, ty, missing }
}

/// One row of the matrix.
pub(super) struct Op {
    /// The schema field, with `/variant` when a row tries one case of it.
    pub(super) name: &'static str,
    pub(super) transport: Transport,
    pub(super) document: &'static str,
    pub(super) vars: fn(&World) -> Value,
    /// Who may run it with these variables: the foreign, malformed and missing-id cases
    /// run as this caller, so only the id makes the difference.
    pub(super) by: Caller,
    pub(super) ids: Vec<IdArg>,
    /// The outcome per caller, in [`Caller::COLUMNS`] order:
    /// outsider, removed member, MEMBER, ADMIN, OWNER, admin key.
    pub(super) expect: [&'static str; 6],
    /// A success changes the fixture (deletes, removes, demotes…): such a case runs on
    /// a fresh fixture, so the cases after it see the one described in [`World`].
    pub(super) changes: bool,
}

impl Op {
    pub(super) fn field(&self) -> &'static str {
        self.name.split('/').next().unwrap_or(self.name)
    }

    /// What every caller without a valid identity gets.
    pub(super) fn refused(&self) -> &'static str {
        match self.transport {
            Transport::Http => U,
            Transport::Ws(_) => CLOSED_4403,
        }
    }
}

use IdType::{Any, Chat, Message, User};

pub(super) const HTTP: Transport = Transport::Http;

/// The matrix. Columns: outsider, removed, MEMBER, ADMIN, OWNER, admin key.
#[rustfmt::skip]
pub(super) fn ops() -> Vec<Op> {
    use Caller::{AdminKey, ChatAdmin, Member, Outsider, Owner};
    vec![
        // ---- queries -------------------------------------------------------------------
        Op { name: "node/message", transport: HTTP, by: Member, changes: false,
            document: "query($id: ID!) { node(id: $id) { id ... on Message { content chat { name } } ... on Chat { name description } } }",
            vars: |w| json!({"id": w.owner_message}),
            ids: vec![id("/id", Any, NULL)],
            expect: [NULL, NULL, OK, OK, OK, F] },
        Op { name: "node/chat", transport: HTTP, by: Member, changes: false,
            document: "query($id: ID!) { node(id: $id) { id ... on Chat { name description lastMessage { content } } } }",
            vars: |w| json!({"id": w.chat}),
            ids: vec![],
            expect: [NULL, NULL, OK, OK, OK, F] },
        Op { name: "node/user", transport: HTTP, by: Outsider, changes: false,
            document: "query($id: ID!) { node(id: $id) { id ... on User { username } } }",
            vars: |w| json!({"id": w.owner.id}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, OK] },
        Op { name: "me", transport: HTTP, by: Outsider, changes: false,
            document: "{ me { id username } }",
            vars: |_| json!({}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "user", transport: HTTP, by: Outsider, changes: false,
            document: "query($id: ID) { user(id: $id) { id username } }",
            vars: |w| json!({"id": w.owner.id}),
            ids: vec![id("/id", User, NULL)],
            expect: [OK, OK, OK, OK, OK, OK] },
        Op { name: "users", transport: HTTP, by: Outsider, changes: false,
            document: "{ users(first: 50) { nodes { id username } } }",
            vars: |_| json!({}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, OK] },
        Op { name: "chat", transport: HTTP, by: Member, changes: false,
            document: "query($id: ID!) { chat(id: $id) { id name description lastMessage { content }
                         messages(last: 10) { nodes { content } } members { nodes { user { username } } } } }",
            vars: |w| json!({"id": w.chat}),
            ids: vec![id("/id", Chat, NULL)],
            expect: [NULL, NULL, OK, OK, OK, F] },
        Op { name: "chats", transport: HTTP, by: Outsider, changes: false,
            document: "{ chats(first: 50) { nodes { id name description lastMessage { content } } } }",
            vars: |_| json!({}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "chat/statistics", transport: HTTP, by: Member, changes: false,
            document: "query($id: ID!) { chat(id: $id) { statistics { messages byRole { role count } } } }",
            vars: |w| json!({"id": w.chat}),
            ids: vec![id("/id", Chat, NULL)],
            expect: [NULL, NULL, OK, OK, OK, F] },
        Op { name: "user/statistics", transport: HTTP, by: Owner, changes: false,
            document: "query($id: ID) { user(id: $id) { statistics { messages activeChats } } }",
            vars: |w| json!({"id": w.owner.id}),
            ids: vec![],
            // The owner's own; nobody else's but the admin key's.
            expect: [F, F, F, F, OK, OK] },
        Op { name: "statistics", transport: HTTP, by: AdminKey, changes: false,
            document: "{ statistics { messages activeChats } }",
            vars: |_| json!({}),
            ids: vec![],
            expect: [F, F, F, F, F, OK] },
        Op { name: "chatByExternalKey", transport: HTTP, by: Outsider, changes: false,
            document: "{ chatByExternalKey(externalKey: \"conv\") { id name } }",
            vars: |_| json!({}),
            ids: vec![],
            // The owner created the chat with this key; anyone else's lookup is their own.
            expect: [NULL, NULL, NULL, NULL, OK, F] },
        Op { name: "message", transport: HTTP, by: Member, changes: false,
            document: "query($id: ID!) { message(id: $id) { id content chat { name } } }",
            vars: |w| json!({"id": w.owner_message}),
            ids: vec![id("/id", Message, NULL)],
            expect: [NULL, NULL, OK, OK, OK, F] },
        Op { name: "messages", transport: HTTP, by: Member, changes: false,
            document: "query($c: ID!) { messages(chatId: $c, last: 20) { nodes { id content } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "messages/the-lobby-after-a-cursor-of-the-chat", transport: HTTP, by: Outsider, changes: false,
            document: "query($c: ID!, $after: String) { messages(chatId: $c, first: 50, after: $after) { nodes { id content } } }",
            // A cursor names a position, not a chat: the page is the lobby's.
            vars: |w| json!({"c": w.lobby, "after": w.first_cursor}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "unreadMessages", transport: HTTP, by: Member, changes: false,
            document: "query($c: ID!) { unreadMessages(chatId: $c, first: 20) { nodes { id content } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "searchMessages", transport: HTTP, by: Member, changes: false,
            document: "query($c: ID) { searchMessages(query: \"hello\", chatId: $c) { nodes { id content } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "history", transport: HTTP, by: Member, changes: false,
            document: "query($c: ID!) { history(chatId: $c) { role content name } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        // ---- users (admin key) ---------------------------------------------------------
        Op { name: "createUser", transport: HTTP, by: AdminKey, changes: false,
            document: "mutation($u: String!) { createUser(input: {username: $u}) { id username } }",
            vars: |_| json!({"u": format!("created{}", unique())}),
            ids: vec![],
            expect: [F, F, F, F, F, OK] },
        Op { name: "updateUser", transport: HTTP, by: Owner, changes: false,
            document: "mutation($id: ID!) { updateUser(id: $id, input: {displayName: \"Renamed\"}) { id displayName } }",
            vars: |w| json!({"id": w.owner.id}),
            // A user updating anybody else is refused, whether or not that user exists.
            ids: vec![id("/id", User, F)],
            expect: [F, F, F, F, OK, OK] },
        Op { name: "deleteUser", transport: HTTP, by: AdminKey, changes: true,
            document: "mutation($id: ID!) { deleteUser(id: $id) }",
            vars: |w| json!({"id": w.newcomer.id}),
            ids: vec![id("/id", User, N)],
            expect: [F, F, F, F, F, OK] },
        Op { name: "revokeTokens", transport: HTTP, by: AdminKey, changes: true,
            document: "mutation($id: ID!) { revokeTokens(userId: $id) }",
            vars: |w| json!({"id": w.newcomer.id}),
            ids: vec![id("/id", User, N)],
            expect: [F, F, F, F, F, OK] },
        Op { name: "issueToken", transport: HTTP, by: AdminKey, changes: false,
            document: "mutation($id: ID!) { issueToken(userId: $id, ttlSeconds: 60) }",
            vars: |w| json!({"id": w.owner.id}),
            ids: vec![id("/id", User, N)],
            expect: [F, F, F, F, F, OK] },
        // ---- chats ---------------------------------------------------------------------
        Op { name: "createChat", transport: HTTP, by: Outsider, changes: false,
            document: "mutation($m: [ID!]) { createChat(input: {kind: GROUP, name: \"new\", memberIds: $m}) {
                         id name members { nodes { user { username } } } } }",
            vars: |w| json!({"m": [w.newcomer.id]}),
            ids: vec![id("/m/0", User, N)],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "blockedUsers", transport: HTTP, by: Outsider, changes: false,
            document: "{ blockedUsers { id username } }",
            vars: |_| json!({}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, F] },
        // Blocking is the caller's own list: anyone may block anyone they can name.
        Op { name: "blockUser", transport: HTTP, by: Outsider, changes: true,
            document: "mutation($u: ID!) { blockUser(userId: $u) { id blockedByMe } }",
            vars: |w| json!({"u": w.newcomer.id}),
            ids: vec![id("/u", User, N)],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "unblockUser", transport: HTTP, by: Outsider, changes: false,
            document: "mutation($u: ID!) { unblockUser(userId: $u) { id blockedByMe } }",
            vars: |w| json!({"u": w.newcomer.id}),
            ids: vec![id("/u", User, N)],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "openDirectChat", transport: HTTP, by: Outsider, changes: false,
            document: "mutation($u: ID!) { openDirectChat(userId: $u) { id kind lastMessage { content } } }",
            vars: |w| json!({"u": w.newcomer.id}),
            ids: vec![id("/u", User, N)],
            expect: [OK, OK, OK, OK, OK, F] },
        Op { name: "updateChat", transport: HTTP, by: ChatAdmin, changes: false,
            document: "mutation($id: ID!, $d: String) { updateChat(id: $id, input: {description: $d}) { id name description } }",
            vars: |w| json!({"id": w.chat, "d": format!("{SECRET} updated")}),
            ids: vec![id("/id", Chat, N)],
            expect: [F, F, F, OK, OK, F] },
        Op { name: "deleteChat", transport: HTTP, by: Owner, changes: true,
            document: "mutation($id: ID!) { deleteChat(id: $id) }",
            vars: |w| json!({"id": w.chat}),
            ids: vec![id("/id", Chat, N)],
            expect: [F, F, F, F, OK, F] },
        Op { name: "clearChat", transport: HTTP, by: ChatAdmin, changes: true,
            document: "mutation($id: ID!) { clearChat(id: $id) }",
            vars: |w| json!({"id": w.chat}),
            ids: vec![id("/id", Chat, N)],
            expect: [F, F, F, OK, OK, F] },
        Op { name: "addMembers", transport: HTTP, by: ChatAdmin, changes: true,
            document: "mutation($c: ID!, $u: [ID!]!) { addMembers(chatId: $c, userIds: $u) { role user { username } chat { name } } }",
            vars: |w| json!({"c": w.chat, "u": [w.newcomer.id]}),
            ids: vec![id("/c", Chat, N), id("/u/0", User, N)],
            expect: [F, F, F, OK, OK, F] },
        Op { name: "addMembers/as-ADMIN", transport: HTTP, by: Owner, changes: true,
            document: "mutation($c: ID!, $u: [ID!]!) { addMembers(chatId: $c, userIds: $u, role: ADMIN) { role chat { name } } }",
            vars: |w| json!({"c": w.chat, "u": [w.newcomer.id]}),
            ids: vec![],
            expect: [F, F, F, F, OK, F] },
        Op { name: "removeMember/a-MEMBER", transport: HTTP, by: ChatAdmin, changes: true,
            document: "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }",
            vars: |w| json!({"c": w.chat, "u": w.member2.id}),
            ids: vec![id("/c", Chat, N), id("/u", User, N)],
            expect: [F, F, F, OK, OK, F] },
        Op { name: "removeMember/an-ADMIN", transport: HTTP, by: Owner, changes: true,
            document: "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }",
            vars: |w| json!({"c": w.chat, "u": w.chat_admin2.id}),
            ids: vec![],
            expect: [F, F, F, F, OK, F] },
        Op { name: "removeMember/the-OWNER", transport: HTTP, by: Owner, changes: true,
            document: "mutation($c: ID!, $u: ID!) { removeMember(chatId: $c, userId: $u) }",
            vars: |w| json!({"c": w.chat, "u": w.owner.id}),
            ids: vec![],
            // The OWNER removing themself is leaving, and the last OWNER must hand over.
            expect: [F, F, F, F, CONFLICT, F] },
        Op { name: "leaveChat", transport: HTTP, by: Member, changes: true,
            document: "mutation($c: ID!) { leaveChat(chatId: $c) }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, CONFLICT, F] },
        Op { name: "setMemberRole/MODERATOR", transport: HTTP, by: ChatAdmin, changes: true,
            document: "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: MODERATOR) { role chat { name } } }",
            vars: |w| json!({"c": w.chat, "u": w.member2.id}),
            ids: vec![id("/c", Chat, N), id("/u", User, N)],
            expect: [F, F, F, OK, OK, F] },
        Op { name: "setMemberRole/ADMIN", transport: HTTP, by: Owner, changes: true,
            document: "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: ADMIN) { role chat { name } } }",
            vars: |w| json!({"c": w.chat, "u": w.member2.id}),
            ids: vec![],
            expect: [F, F, F, F, OK, F] },
        Op { name: "setMemberRole/demote-the-OWNER", transport: HTTP, by: Owner, changes: true,
            document: "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: MEMBER) { role } }",
            vars: |w| json!({"c": w.chat, "u": w.owner.id}),
            ids: vec![],
            // Only an OWNER touches an OWNER's role, and the last one must stay.
            expect: [F, F, F, F, CONFLICT, F] },
        Op { name: "setMemberRole/self-to-OWNER", transport: HTTP, by: Owner, changes: true,
            document: "mutation($c: ID!, $u: ID!) { setMemberRole(chatId: $c, userId: $u, role: OWNER) { role } }",
            vars: |w| json!({"c": w.chat, "u": w.chat_admin.id}),
            ids: vec![],
            expect: [F, F, F, F, OK, F] },
        Op { name: "setChatPinned", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!) { setChatPinned(chatId: $c, pinned: true) { pinned chat { name } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "setChatMuted", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!) { setChatMuted(chatId: $c, muted: true) { muted chat { name } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        // ---- messages ------------------------------------------------------------------
        Op { name: "sendMessage", transport: HTTP, by: Member, changes: false,
            document: "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id content chat { name } } }",
            vars: |w| json!({"input": {"chatId": w.chat, "content": "hi there"}}),
            ids: vec![id("/input/chatId", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "sendMessage/reply", transport: HTTP, by: Member, changes: false,
            document: "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id parent { content } } }",
            vars: |w| json!({"input": {"chatId": w.chat, "content": "a reply", "parentId": w.owner_message}}),
            ids: vec![id("/input/parentId", Message, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "sendMessage/reply-to-another-chat", transport: HTTP, by: Member, changes: false,
            document: "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id parent { content chat { name } } } }",
            // Into the lobby (everybody's), replying to the chat's secret.
            vars: |w| json!({"input": {"chatId": w.lobby, "content": "a reply", "parentId": w.owner_message}}),
            ids: vec![],
            expect: [N, N, N, N, N, F] },
        Op { name: "sendMessage/SYSTEM", transport: HTTP, by: ChatAdmin, changes: false,
            document: "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id role } }",
            vars: |w| json!({"input": {"chatId": w.chat, "content": "a notice", "role": "SYSTEM"}}),
            ids: vec![],
            expect: [F, F, F, OK, OK, F] },
        // Files come only inside a multipart request (tests/api/attachments checks who may
        // upload); as JSON, an Upload is a value, and no value is one.
        Op { name: "uploadAttachment", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!, $f: Upload!) { uploadAttachment(chatId: $c, file: $f) { id } }",
            vars: |w| json!({"c": w.chat, "f": "#upload:0"}),
            ids: vec![],
            expect: [B, B, B, B, B, F] },
        Op { name: "requestUpload", transport: HTTP, by: Member, changes: false,
            document: "mutation($i: RequestUploadInput!) { requestUpload(input: $i) { uploadUrl attachment { id name } } }",
            vars: |w| json!({"i": {"chatId": w.chat, "name": "report.pdf", "mimeType": "application/pdf", "size": 1000}}),
            ids: vec![id("/i/chatId", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        // Messages another system has, with their senders and times: the admin key only.
        Op { name: "importMessages", transport: HTTP, by: AdminKey, changes: false,
            document: "mutation($c: ID!, $m: [ImportedMessageInput!]!) {
                         importMessages(chatId: $c, messages: $m) { id content sender { username } } }",
            vars: |w| json!({"c": w.chat, "m": [{"senderId": w.member2.id, "createdAt": "2024-01-01T00:00:00Z",
                                                  "content": "imported", "clientId": format!("imported{}", unique())}]}),
            // A sender who is no member (or no user) is refused like a send from one.
            ids: vec![id("/c", Chat, N), id("/m/0/senderId", User, F)],
            expect: [F, F, F, F, F, OK] },
        Op { name: "editMessage", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!, $t: String!) { editMessage(id: $id, content: $t) { id content chat { name } } }",
            vars: |w| json!({"id": w.member_message, "t": format!("{SECRET} edited")}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, F, F, F] },
        Op { name: "editMessage/own-message-after-removal", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!) { editMessage(id: $id, content: \"rewritten\") { id content chat { name } } }",
            // Removed, the sender no longer reaches the chat, their own messages included.
            vars: |w| json!({"id": w.removed_message}),
            ids: vec![],
            expect: [N, N, F, F, F, F] },
        Op { name: "retractMessage/own-message-after-removal", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!) { retractMessage(id: $id) { id retracted chat { name } } }",
            vars: |w| json!({"id": w.removed_message}),
            ids: vec![],
            expect: [N, N, F, F, F, F] },
        Op { name: "retractMessage", transport: HTTP, by: Member, changes: true,
            document: "mutation($id: ID!) { retractMessage(id: $id) { id retracted chat { name } } }",
            vars: |w| json!({"id": w.member_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, F, F, F] },
        Op { name: "deleteMessage", transport: HTTP, by: ChatAdmin, changes: true,
            document: "mutation($id: ID!) { deleteMessage(id: $id) }",
            vars: |w| json!({"id": w.member_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, F, OK, OK, F] },
        Op { name: "addReaction", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!) { addReaction(messageId: $id, emoji: \"👍\") { id content reactions { emoji count } } }",
            vars: |w| json!({"id": w.owner_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, OK, OK, F] },
        Op { name: "removeReaction", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!) { removeReaction(messageId: $id, emoji: \"👍\") { id content reactions { emoji count } } }",
            vars: |w| json!({"id": w.owner_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, OK, OK, F] },
        Op { name: "pinMessage", transport: HTTP, by: ChatAdmin, changes: false,
            document: "mutation($id: ID!) { pinMessage(id: $id) { id content pinned } }",
            vars: |w| json!({"id": w.member_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, F, OK, OK, F] },
        Op { name: "unpinMessage", transport: HTTP, by: ChatAdmin, changes: false,
            document: "mutation($id: ID!) { unpinMessage(id: $id) { id content pinned } }",
            vars: |w| json!({"id": w.member_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, F, OK, OK, F] },
        Op { name: "markThreadRead", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!) { markThreadRead(messageId: $id) { id content threadUnreadCount } }",
            vars: |w| json!({"id": w.owner_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, OK, OK, F] },
        Op { name: "markRead", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!, $m: ID) { markRead(chatId: $c, upToMessageId: $m) { lastReadMessageId chat { name } } }",
            vars: |w| json!({"c": w.chat, "m": w.owner_message}),
            ids: vec![id("/c", Chat, N), id("/m", Message, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "markRead/message-of-another-chat", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!, $m: ID) { markRead(chatId: $c, upToMessageId: $m) { lastReadMessageId } }",
            vars: |w| json!({"c": w.lobby, "m": w.owner_message}),
            ids: vec![],
            expect: [N, N, N, N, N, F] },
        Op { name: "markMessagesRead", transport: HTTP, by: Member, changes: false,
            document: "mutation($ids: [ID!]!) { markMessagesRead(messageIds: $ids) }",
            vars: |w| json!({"ids": [w.owner_message]}),
            ids: vec![id("/ids/0", Message, N)],
            expect: [N, N, OK, OK, OK, F] },
        Op { name: "markMessagesRead/with-a-lobby-message", transport: HTTP, by: Member, changes: false,
            document: "mutation($ids: [ID!]!) { markMessagesRead(messageIds: $ids) }",
            // One the caller may mark, one they may not: all or nothing.
            vars: |w| json!({"ids": [w.lobby_message, w.owner_message]}),
            ids: vec![],
            expect: [N, N, OK, OK, OK, F] },
        Op { name: "setTyping", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!) { setTyping(chatId: $c, typing: true) }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "startSession", transport: HTTP, by: Member, changes: true,
            document: "mutation($c: ID!) { startSession(chatId: $c) { id chat { name } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "endSession", transport: HTTP, by: Member, changes: true,
            document: "mutation($c: ID!) { endSession(chatId: $c) { id chat { name } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "appendMessageContent", transport: HTTP, by: Member, changes: false,
            document: "mutation($id: ID!) { appendMessageContent(id: $id, delta: \" more\") { id content chat { name } } }",
            vars: |w| json!({"id": w.stream_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, F, F, F] },
        Op { name: "finishMessage", transport: HTTP, by: Member, changes: true,
            document: "mutation($id: ID!) { finishMessage(id: $id, state: COMPLETE) { id content streamState } }",
            vars: |w| json!({"id": w.stream_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, F, F, F] },
        Op { name: "interruptReply", transport: HTTP, by: Member, changes: true,
            document: "mutation($id: ID!) { interruptReply(messageId: $id) { id content streamState } }",
            vars: |w| json!({"id": w.stream_message}),
            ids: vec![id("/id", Message, N)],
            expect: [N, N, OK, OK, OK, F] },
        Op { name: "markDelivered", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!, $m: ID!) { markDelivered(chatId: $c, upToMessageId: $m) { lastDeliveredMessageId chat { name } } }",
            vars: |w| json!({"c": w.chat, "m": w.owner_message}),
            ids: vec![id("/c", Chat, N), id("/m", Message, N)],
            expect: [F, F, OK, OK, OK, F] },
        Op { name: "markDelivered/message-of-another-chat", transport: HTTP, by: Member, changes: false,
            document: "mutation($c: ID!, $m: ID!) { markDelivered(chatId: $c, upToMessageId: $m) { lastDeliveredMessageId } }",
            vars: |w| json!({"c": w.lobby, "m": w.owner_message}),
            ids: vec![],
            expect: [N, N, N, N, N, F] },
        // ---- subscriptions -------------------------------------------------------------
        Op { name: "chatEvents", transport: Transport::Ws(Probe::OwnerInChat), by: Member, changes: false,
            document: "subscription($c: ID!, $after: String) { chatEvents(chatId: $c, after: $after) { __typename
                         ... on MessageAdded { message { content } } ... on ChatUpdated { chat { name description } } } }",
            // Replays from the first message: a refused caller must not get the replay either.
            vars: |w| json!({"c": w.chat, "after": w.first_cursor}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, CLOSED_4403] },
        Op { name: "chatEvents/the-lobby-after-a-cursor-of-the-chat", transport: Transport::Ws(Probe::BuddyInLobby), by: Outsider, changes: false,
            document: "subscription($c: ID!, $after: String) { chatEvents(chatId: $c, after: $after) { __typename
                         ... on MessageAdded { message { content chat { name } } } } }",
            // The replay is the lobby's messages after that position, none of the chat's.
            vars: |w| json!({"c": w.lobby, "after": w.first_cursor}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, CLOSED_4403] },
        Op { name: "messageAdded", transport: Transport::Ws(Probe::OwnerInChat), by: Member, changes: false,
            document: "subscription($c: ID!) { messageAdded(chatId: $c) { content chat { name } } }",
            vars: |w| json!({"c": w.chat}),
            ids: vec![id("/c", Chat, N)],
            expect: [F, F, OK, OK, OK, CLOSED_4403] },
        Op { name: "myEvents", transport: Transport::Ws(Probe::BuddyInLobby), by: Member, changes: false,
            document: "subscription { myEvents { __typename ... on InboxMessage { chat { name } message { content } }
                         ... on ChatAdded { chat { name } } ... on ChatUpdated { chat { name description } } } }",
            vars: |_| json!({}),
            ids: vec![],
            expect: [OK, OK, OK, OK, OK, CLOSED_4403] },
    ]
}
