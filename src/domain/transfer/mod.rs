//! Data out of chatql and into it: `chatql export`, a streamed and versioned JSON Lines
//! dump, and `chatql import`, which reads one into this database.
//!
//! One JSON object per line, each with a `type`. The first line is the header (format name,
//! version, when, what was selected); then, in dependency order, every user (`user`), their
//! blocks (`block`), and per chat: the chat with its tags (`chat`), its sessions (`session`),
//! its messages in id order (`message`), each page of them followed by their earlier
//! contents (`edit`), reactions (`reaction`), mentions (`mention`) and pins (`pin`), then its
//! members with their read and delivery watermarks (`member`) and how far they read its
//! threads (`thread_read`). A record refers to others by their ids in this dump; only the
//! chat's `activeSessionId` and a message's `parentId` under `--since` may name something
//! later or absent. Times are UTC, ids are the database's numbers. Derived values
//! (a chat's last message, a thread's last reply, unread counts) are not written: the data
//! they derive from is.
//!
//! Everything is read in one read-only snapshot, a page at a time, so an export of a live
//! database is consistent and its memory does not grow with the number of messages.

mod export;
pub mod foreign;
mod import;

pub use export::{ExportRequest, ExportSummary, export};
pub use import::{ImportInput, ImportOptions, ImportSummary, import};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::db::dump::{
    BlockRow, ChatRow, EditRow, MemberRow, MentionRow, MessageRow, PinRow, ReactionRow, SessionRow,
    ThreadReadRow, UserRow,
};

/// The format's name, in the header.
pub const FORMAT: &str = "chatql-export";
/// The format's version: a reader refuses a dump of a version it does not know.
pub const VERSION: u32 = 1;

/// Why an export or import failed. Not an [`crate::error::AppError`]: these reach a terminal, not
/// a GraphQL client, and a failed write is not a server fault.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("writing the dump: {0}")]
    Write(#[from] std::io::Error),
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("no chat {0}")]
    NoSuchChat(String),
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("reading the dump: {0}")]
    Read(#[source] std::io::Error),
    /// An argument the command cannot work with (e.g. an invalid username).
    #[error("{0}")]
    BadArgument(String),
    /// A line that is not a record, or a record that does not fit.
    #[error("{place}: {reason}")]
    Bad { place: Place, reason: String },
}

/// Where in an import's input a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A line, 1-based.
    Line(u64),
    /// An item of a foreign document (a conversation, a chat), 1-based, and a message in
    /// it.
    Item {
        noun: &'static str,
        index: u64,
        message: Option<u64>,
    },
}

impl Place {
    /// The `number`th message (1-based) of this item.
    pub fn message(self, number: u64) -> Place {
        match self {
            Place::Item { noun, index, .. } => Place::Item {
                noun,
                index,
                message: Some(number),
            },
            line => line,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(line) => write!(f, "line {line}"),
            Place::Item {
                noun,
                index,
                message: None,
            } => write!(f, "{noun} {index}"),
            Place::Item {
                noun,
                index,
                message: Some(message),
            } => write!(f, "{noun} {index}, message {message}"),
        }
    }
}

/// The first line of a dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The exporting database's identity: an import remembers which rows it made from
    /// which rows of this origin, so importing again adds only what is new.
    pub origin: String,
    pub exported_at: NaiveDateTime,
    /// The chats selected (`--chat`, and the chats of `--user`), or null for everything.
    pub chats: Option<Vec<i64>>,
    /// Messages created before this were left out (`--since`).
    pub since: Option<NaiveDateTime>,
}

/// A chat and its tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRecord {
    #[serde(flatten)]
    pub chat: ChatRow,
    pub tags: Vec<String>,
}

/// One line of a dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Header(Header),
    User(UserRow),
    Block(BlockRow),
    Chat(ChatRecord),
    Session(SessionRow),
    Message(MessageRow),
    Edit(EditRow),
    Reaction(ReactionRow),
    Mention(MentionRow),
    Pin(PinRow),
    Member(MemberRow),
    ThreadRead(ThreadReadRow),
}
