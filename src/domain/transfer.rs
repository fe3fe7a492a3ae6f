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

use std::io::Write;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::db::dump::{
    self, BlockRow, ChatRow, ChatSelection, EditRow, MemberRow, MentionRow, MessageRow, PinRow,
    ReactionRow, SessionRow, ThreadReadRow, UserRow,
};
use crate::db::imports::{self, Kind};
use crate::db::{DbConn, DbError, DbPool};
use crate::vocabulary::ids::{ChatId, UserId};

/// The format's name, in the header.
pub const FORMAT: &str = "chatql-export";
/// The format's version: a reader refuses a dump of a version it does not know.
pub const VERSION: u32 = 1;
/// Rows read per statement.
const PAGE: i64 = 1_000;
/// Imported messages remembered per statement (4 values each, well under SQLite's 32,766
/// bound parameters).
const REMEMBER_BATCH: usize = 1_000;

/// Why an export failed. Not an [`crate::error::AppError`]: these reach a terminal, not
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
    /// A line that is not a record, or a record that does not fit (the line is 1-based).
    #[error("line {line}: {reason}")]
    BadLine { line: u64, reason: String },
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

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// These chats (none given and no `users`: every chat).
    pub chats: Vec<ChatId>,
    /// And every chat these users are members of.
    pub users: Vec<UserId>,
    /// Only messages created at or after this.
    pub since: Option<NaiveDateTime>,
}

/// How many records of each kind an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub users: u64,
    pub blocks: u64,
    pub chats: u64,
    pub sessions: u64,
    pub messages: u64,
    pub edits: u64,
    pub reactions: u64,
    pub mentions: u64,
    pub pins: u64,
    pub members: u64,
    pub thread_reads: u64,
}

/// Writes records as lines, counting them.
struct DumpWriter<'w, W: Write> {
    out: &'w mut W,
    line: Vec<u8>,
    summary: ExportSummary,
}

impl<W: Write> DumpWriter<'_, W> {
    fn write(&mut self, record: &Record) -> Result<(), TransferError> {
        let counter = match record {
            Record::Header(_) => None,
            Record::User(_) => Some(&mut self.summary.users),
            Record::Block(_) => Some(&mut self.summary.blocks),
            Record::Chat(_) => Some(&mut self.summary.chats),
            Record::Session(_) => Some(&mut self.summary.sessions),
            Record::Message(_) => Some(&mut self.summary.messages),
            Record::Edit(_) => Some(&mut self.summary.edits),
            Record::Reaction(_) => Some(&mut self.summary.reactions),
            Record::Mention(_) => Some(&mut self.summary.mentions),
            Record::Pin(_) => Some(&mut self.summary.pins),
            Record::Member(_) => Some(&mut self.summary.members),
            Record::ThreadRead(_) => Some(&mut self.summary.thread_reads),
        };
        if let Some(counter) = counter {
            *counter += 1;
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    fn write_all<T>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        record: impl Fn(T) -> Record,
    ) -> Result<(), TransferError> {
        for row in rows {
            self.write(&record(row))?;
        }
        Ok(())
    }
}

/// Writes the dump of what `request` selects to `out`.
pub async fn export<W: Write>(
    pool: &DbPool,
    request: &ExportRequest,
    out: &mut W,
) -> Result<ExportSummary, TransferError> {
    let mut conn = pool.conn().await?;
    dump::begin_snapshot(&mut conn).await?;
    let selection = select(&mut conn, request).await?;
    let origin = imports::identity(&mut conn).await?;
    let mut writer = DumpWriter {
        out,
        line: Vec::with_capacity(4096),
        summary: ExportSummary::default(),
    };
    writer.write(&Record::Header(Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        origin,
        exported_at: crate::domain::now(),
        chats: match &selection {
            ChatSelection::All => None,
            ChatSelection::Chats(chats) => Some(chats.clone()),
        },
        since: request.since,
    }))?;

    // Users, then their blocks (a block names two users, so after all of them).
    let mut after = 0;
    loop {
        let users = dump::users_page(&mut conn, &selection, None, after, PAGE).await?;
        let Some(last) = users.last() else { break };
        after = last.id;
        writer.write_all(users, Record::User)?;
    }
    let mut after = 0;
    loop {
        let users = dump::users_page(&mut conn, &selection, None, after, PAGE).await?;
        let Some(last) = users.last() else { break };
        after = last.id;
        let ids: Vec<i64> = users.iter().map(|user| user.id).collect();
        let blocks = dump::blocks_by(&mut conn, &selection, &ids).await?;
        writer.write_all(blocks, Record::Block)?;
    }

    let mut after_chat = 0;
    loop {
        let chats = dump::chats_page(&mut conn, &selection, after_chat, PAGE).await?;
        let Some(last) = chats.last() else { break };
        after_chat = last.id;
        for chat in chats {
            export_chat(&mut conn, &mut writer, chat, request.since).await?;
        }
    }
    dump::end_snapshot(&mut conn).await?;
    writer.out.flush()?;
    Ok(writer.summary)
}

/// One chat's records, in order.
async fn export_chat<W: Write>(
    conn: &mut crate::db::DbConn,
    writer: &mut DumpWriter<'_, W>,
    chat: ChatRow,
    since: Option<NaiveDateTime>,
) -> Result<(), TransferError> {
    let id = chat.id;
    let tags = dump::tags_of(conn, id).await?;
    writer.write(&Record::Chat(ChatRecord { chat, tags }))?;
    let mut after = 0;
    loop {
        let sessions = dump::sessions_page(conn, id, after, PAGE).await?;
        let Some(last) = sessions.last() else { break };
        after = last.id;
        writer.write_all(sessions, Record::Session)?;
    }
    let mut after = 0;
    loop {
        let messages = dump::messages_page(conn, id, since, after, PAGE).await?;
        let Some(last) = messages.last() else { break };
        after = last.id;
        let ids: Vec<i64> = messages.iter().map(|message| message.id).collect();
        writer.write_all(messages, Record::Message)?;
        let parts = dump::parts_of(conn, &ids).await?;
        writer.write_all(parts.edits, Record::Edit)?;
        writer.write_all(parts.reactions, Record::Reaction)?;
        writer.write_all(parts.mentions, Record::Mention)?;
        writer.write_all(parts.pins, Record::Pin)?;
    }
    let mut after = 0;
    loop {
        let members = dump::members_page(conn, id, after, PAGE).await?;
        let Some(last) = members.last() else { break };
        after = last.user_id;
        writer.write_all(members, Record::Member)?;
    }
    let mut after = 0;
    loop {
        let roots = dump::thread_roots_page(conn, id, after, PAGE).await?;
        let Some(&last) = roots.last() else { break };
        after = last;
        let reads = dump::thread_reads_of(conn, &roots).await?;
        writer.write_all(reads, Record::ThreadRead)?;
    }
    Ok(())
}

/// The chats a request names, checked to exist, with those of its users.
async fn select(
    conn: &mut crate::db::DbConn,
    request: &ExportRequest,
) -> Result<ChatSelection, TransferError> {
    if request.chats.is_empty() && request.users.is_empty() {
        return Ok(ChatSelection::All);
    }
    let mut chats = Vec::new();
    for &chat in &request.chats {
        if crate::db::chats::find(conn, chat).await?.is_none() {
            return Err(TransferError::NoSuchChat(chat.to_global()));
        }
        chats.push(chat.0);
    }
    for &user in &request.users {
        if crate::db::users::find(conn, user).await?.is_none() {
            return Err(TransferError::NoSuchUser(user.to_global()));
        }
        chats.extend(
            crate::db::members::of_user(conn, user)
                .await?
                .into_iter()
                .map(|member| member.chat_id.0),
        );
    }
    chats.sort_unstable();
    chats.dedup();
    Ok(ChatSelection::Chats(chats))
}

/// How an import treats what it cannot take.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Skip a bad line (reported in the summary) instead of stopping there.
    pub skip_bad: bool,
}

/// What an import added, found already there, and skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records read.
    pub lines: u64,
    pub users: u64,
    pub chats: u64,
    pub messages: u64,
    /// Other records written (sessions, blocks, members, edits, reactions, …); those
    /// already there are not counted.
    pub others: u64,
    /// Users, chats and messages found already imported (or a user of the same name).
    pub existing: u64,
    /// Bad lines skipped (`skip_bad`), with why: at most the first 100.
    pub skipped: Vec<(u64, String)>,
    pub skipped_count: u64,
}

/// A dump being read: the line number of each record.
struct DumpReader<R> {
    lines: std::io::Lines<R>,
    line: u64,
    /// A record read ahead (the chat that ended the previous chat's records).
    pending: Option<(u64, Record)>,
    options: ImportOptions,
}

impl<R: std::io::BufRead> DumpReader<R> {
    /// The next record; bad lines are skipped into `summary` or returned as errors.
    fn next(
        &mut self,
        summary: &mut ImportSummary,
    ) -> Result<Option<(u64, Record)>, TransferError> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        loop {
            let Some(text) = self.lines.next() else {
                return Ok(None);
            };
            let text = text.map_err(TransferError::Read)?;
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            summary.lines += 1;
            match serde_json::from_str::<Record>(&text) {
                Ok(record) => return Ok(Some((self.line, record))),
                Err(e) => self.bad(summary, self.line, e.to_string())?,
            }
        }
    }

    /// A bad line: skipped and noted, or the import's error.
    fn bad(
        &self,
        summary: &mut ImportSummary,
        line: u64,
        reason: String,
    ) -> Result<(), TransferError> {
        if !self.options.skip_bad {
            return Err(TransferError::BadLine { line, reason });
        }
        summary.skipped_count += 1;
        if summary.skipped.len() < 100 {
            summary.skipped.push((line, reason));
        }
        Ok(())
    }
}

/// Reads a dump into this database. Users are matched by origin and id, then by username;
/// each chat, with everything of it, is one transaction (all of it or none); rows already
/// imported from the same origin are found, not added again. `progress` is called after
/// each chat.
pub async fn import<R: std::io::BufRead>(
    pool: &DbPool,
    input: R,
    options: ImportOptions,
    mut progress: impl FnMut(&ImportSummary),
) -> Result<ImportSummary, TransferError> {
    let mut reader = DumpReader {
        lines: input.lines(),
        line: 0,
        pending: None,
        options,
    };
    let mut summary = ImportSummary::default();
    let origin = match reader.next(&mut summary)? {
        Some((line, Record::Header(header))) => {
            if header.format != FORMAT || header.version != VERSION {
                return Err(TransferError::BadLine {
                    line,
                    reason: format!(
                        "a {} version {} dump; this chatql reads {FORMAT} version {VERSION}",
                        header.format, header.version
                    ),
                });
            }
            header.origin
        }
        Some((line, _)) => {
            return Err(TransferError::BadLine {
                line,
                reason: "the first record must be the header".to_owned(),
            });
        }
        None => {
            return Err(TransferError::BadLine {
                line: 1,
                reason: "empty input: no header".to_owned(),
            });
        }
    };
    let mut users: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    while let Some((line, record)) = reader.next(&mut summary)? {
        match record {
            Record::User(row) => {
                let (local, added) = pool
                    .transaction(async |conn| {
                        if let Some(local) =
                            imports::mapped(conn, &origin, Kind::User, row.id).await?
                        {
                            return Ok((local, false));
                        }
                        // A user of the same name is the same person.
                        let (local, added) = match imports::user_named(conn, &row.username).await? {
                            Some(local) => (local, false),
                            None => (imports::insert_user(conn, &row).await?, true),
                        };
                        imports::remember(conn, &origin, Kind::User, row.id, local).await?;
                        Ok::<_, TransferError>((local, added))
                    })
                    .await?;
                if added {
                    summary.users += 1;
                } else {
                    summary.existing += 1;
                }
                users.insert(row.id, local);
            }
            Record::Block(row) => {
                let (Some(&blocker), Some(&blocked)) =
                    (users.get(&row.blocker_id), users.get(&row.blocked_id))
                else {
                    reader.bad(
                        &mut summary,
                        line,
                        "a block of a user not in the dump".to_owned(),
                    )?;
                    continue;
                };
                let mut conn = pool.conn().await?;
                let added = imports::insert_block(
                    &mut conn,
                    &BlockRow {
                        blocker_id: blocker,
                        blocked_id: blocked,
                        ..row
                    },
                )
                .await?;
                summary.others += u64::from(added);
            }
            Record::Chat(chat) => {
                // Counted straight into the summary: a chat that fails ends the import.
                pool.transaction(async |conn| {
                    import_chat(conn, &origin, &users, &mut reader, &mut summary, line, chat).await
                })
                .await?;
                progress(&summary);
            }
            Record::Header(_) => reader.bad(&mut summary, line, "a second header".to_owned())?,
            _ => reader.bad(
                &mut summary,
                line,
                "a record outside of its chat".to_owned(),
            )?,
        }
    }
    Ok(summary)
}

/// One chat's records, up to the next chat, in the transaction `conn` holds.
async fn import_chat<R: std::io::BufRead>(
    conn: &mut DbConn,
    origin: &str,
    users: &std::collections::HashMap<i64, i64>,
    reader: &mut DumpReader<R>,
    summary: &mut ImportSummary,
    line: u64,
    record: ChatRecord,
) -> Result<(), TransferError> {
    let user = |id: Option<i64>| id.and_then(|id| users.get(&id).copied());
    let ChatRecord { chat, tags } = record;
    let source_chat = chat.id;
    let source_active_session = chat.active_session_id;
    let imported_before = imports::mapped(conn, origin, Kind::Chat, source_chat).await?;
    let local_chat = match imported_before {
        Some(local) => {
            summary.existing += 1;
            local
        }
        None => {
            // A direct chat's key names its two users: this database's ids now.
            let direct_key = match chat
                .direct_key
                .as_deref()
                .and_then(|key| key.split_once(':'))
            {
                Some((a, b)) => {
                    let (Some(a), Some(b)) = (user(a.parse().ok()), user(b.parse().ok())) else {
                        return Err(TransferError::BadLine {
                            line,
                            reason: "a direct chat of users not in the dump".to_owned(),
                        });
                    };
                    Some(format!("{}:{}", a.min(b), a.max(b)))
                }
                None => None,
            };
            let existing_direct = match &direct_key {
                Some(key) => crate::db::chats::find_direct(conn, key)
                    .await?
                    .map(|c| c.id.0),
                None => None,
            };
            let local = match existing_direct {
                Some(local) => {
                    summary.existing += 1;
                    local
                }
                None => {
                    summary.chats += 1;
                    imports::insert_chat(
                        conn,
                        &ChatRow {
                            created_by: user(chat.created_by),
                            direct_key,
                            ..chat
                        },
                        &tags,
                    )
                    .await?
                }
            };
            imports::remember(conn, origin, Kind::Chat, source_chat, local).await?;
            local
        }
    };
    // Messages of this chat made now (source id → local id): their parts come with them,
    // and parts of messages imported before are there already.
    let mut made: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let mut sessions: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let mut unremembered: Vec<(i64, i64)> = Vec::with_capacity(REMEMBER_BATCH);
    let mut sessions_added = false;
    async fn message_id(
        conn: &mut DbConn,
        origin: &str,
        made: &std::collections::HashMap<i64, i64>,
        id: Option<i64>,
    ) -> Result<Option<i64>, TransferError> {
        let Some(id) = id else { return Ok(None) };
        if let Some(&local) = made.get(&id) {
            return Ok(Some(local));
        }
        Ok(imports::mapped(conn, origin, Kind::Message, id).await?)
    }
    while let Some((line, record)) = reader.next(summary)? {
        match record {
            Record::Session(row) => {
                let source = row.id;
                let local = match imports::mapped(conn, origin, Kind::Session, source).await? {
                    Some(local) => local,
                    None => {
                        let local = imports::insert_session(
                            conn,
                            &SessionRow {
                                chat_id: local_chat,
                                ..row
                            },
                        )
                        .await?;
                        imports::remember(conn, origin, Kind::Session, source, local).await?;
                        summary.others += 1;
                        sessions_added = true;
                        local
                    }
                };
                sessions.insert(source, local);
            }
            Record::Message(row) => {
                // A chat not imported before has no message imported before either.
                if imported_before.is_some()
                    && imports::mapped(conn, origin, Kind::Message, row.id)
                        .await?
                        .is_some()
                {
                    summary.existing += 1;
                    continue;
                }
                let sender = match row.sender_id {
                    Some(id) => match users.get(&id) {
                        Some(&local) => Some(local),
                        None => {
                            reader.bad(summary, line, format!("sender {id} is not in the dump"))?;
                            continue;
                        }
                    },
                    None => None,
                };
                let parent = message_id(conn, origin, &made, row.parent_id).await?;
                let session = row.session_id.and_then(|id| sessions.get(&id).copied());
                let source = row.id;
                let local = imports::insert_message(
                    conn,
                    &MessageRow {
                        chat_id: local_chat,
                        sender_id: sender,
                        parent_id: parent,
                        session_id: session,
                        ..row
                    },
                )
                .await?;
                // Remembered in batches: until then `made` answers for them.
                unremembered.push((source, local));
                if unremembered.len() >= REMEMBER_BATCH {
                    imports::remember_many(conn, origin, Kind::Message, &unremembered).await?;
                    unremembered.clear();
                }
                made.insert(source, local);
                summary.messages += 1;
            }
            Record::Edit(row) => {
                if let Some(&message) = made.get(&row.message_id) {
                    imports::insert_edit(
                        conn,
                        &EditRow {
                            message_id: message,
                            ..row
                        },
                    )
                    .await?;
                    summary.others += 1;
                }
            }
            Record::Reaction(row) => {
                if let (Some(&message), Some(reactor)) =
                    (made.get(&row.message_id), user(Some(row.user_id)))
                {
                    let added = imports::insert_reaction(
                        conn,
                        &ReactionRow {
                            message_id: message,
                            user_id: reactor,
                            ..row
                        },
                    )
                    .await?;
                    summary.others += u64::from(added);
                }
            }
            Record::Mention(row) => {
                if let (Some(&message), Some(mentioned)) =
                    (made.get(&row.message_id), user(Some(row.user_id)))
                {
                    let added = imports::insert_mention(
                        conn,
                        &MentionRow {
                            message_id: message,
                            user_id: mentioned,
                            chat_id: local_chat,
                        },
                    )
                    .await?;
                    summary.others += u64::from(added);
                }
            }
            Record::Pin(row) => {
                if let Some(&message) = made.get(&row.message_id) {
                    let added = imports::insert_pin(
                        conn,
                        &PinRow {
                            message_id: message,
                            chat_id: local_chat,
                            pinned_by: user(row.pinned_by),
                            ..row
                        },
                    )
                    .await?;
                    summary.others += u64::from(added);
                }
            }
            Record::Member(row) => {
                let Some(member) = user(Some(row.user_id)) else {
                    reader.bad(
                        summary,
                        line,
                        format!("member {} is not in the dump", row.user_id),
                    )?;
                    continue;
                };
                let read = message_id(conn, origin, &made, row.last_read_message_id).await?;
                let delivered =
                    message_id(conn, origin, &made, row.last_delivered_message_id).await?;
                let added = imports::insert_member(
                    conn,
                    &MemberRow {
                        chat_id: local_chat,
                        user_id: member,
                        last_read_message_id: read,
                        last_delivered_message_id: delivered,
                        ..row
                    },
                )
                .await?;
                summary.others += u64::from(added);
            }
            Record::ThreadRead(row) => {
                let root = message_id(conn, origin, &made, Some(row.message_id)).await?;
                let upto = message_id(conn, origin, &made, Some(row.last_read_message_id)).await?;
                if let (Some(reader_id), Some(root), Some(upto)) =
                    (user(Some(row.user_id)), root, upto)
                {
                    let added = imports::insert_thread_read(
                        conn,
                        &ThreadReadRow {
                            user_id: reader_id,
                            message_id: root,
                            last_read_message_id: upto,
                        },
                    )
                    .await?;
                    summary.others += u64::from(added);
                }
            }
            Record::Chat(next) => {
                reader.pending = Some((line, Record::Chat(next)));
                break;
            }
            Record::Header(_) | Record::User(_) | Record::Block(_) => {
                reader.bad(
                    summary,
                    line,
                    "a user or block after the chats began".to_owned(),
                )?;
            }
        }
    }
    imports::remember_many(conn, origin, Kind::Message, &unremembered).await?;
    // What the server derives depends on messages and sessions only: a chat imported
    // before that gained neither keeps what it had.
    if imported_before.is_none() || !made.is_empty() || sessions_added {
        let active = source_active_session.and_then(|id| sessions.get(&id).copied());
        imports::derive_chat(conn, local_chat, active).await?;
    }
    Ok(())
}
