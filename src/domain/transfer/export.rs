//! `chatql export`: everything a selection holds, read in one snapshot, page by page.

use std::io::Write;

use chrono::NaiveDateTime;

use super::{ChatRecord, FORMAT, Header, Record, TransferError, VERSION};
use crate::db::DbPool;
use crate::db::dump::{self, ChatRow, ChatSelection};
use crate::db::imports;
use crate::vocabulary::ids::{ChatId, UserId};

/// Rows read per statement.
const PAGE: i64 = 1_000;

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
