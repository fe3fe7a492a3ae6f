//! `chatql import`: a dump read into this database, ids remapped and remembered per origin.

use super::{ChatRecord, FORMAT, Place, Record, TransferError, VERSION};
use crate::db::dump::{
    BlockRow, ChatRow, EditRow, MemberRow, MentionRow, MessageRow, PinRow, ReactionRow, SessionRow,
    ThreadReadRow,
};
use crate::db::imports::{self, Kind};
use crate::db::{DbConn, DbPool};

/// Imported messages remembered per statement (4 values each, well under SQLite's 32,766
/// bound parameters).
const REMEMBER_BATCH: usize = 1_000;

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
    /// Bad lines or items skipped (`skip_bad`), with why: at most the first 100.
    pub skipped: Vec<(Place, String)>,
    pub skipped_count: u64,
}

/// What an import reads.
pub enum ImportInput<R> {
    /// A chatql dump, one record per line.
    Dump(R),
    /// Records converted from another format (see [`super::foreign`]), each with where in
    /// that input it came from, or why that part could not be converted.
    Converted(Vec<(Place, Result<Record, String>)>),
}

/// Where the records come from.
enum Source<R> {
    Lines { lines: std::io::Lines<R>, line: u64 },
    Converted(std::vec::IntoIter<(Place, Result<Record, String>)>),
}

/// Records read between two calls of an import's `progress`.
const PROGRESS_EVERY: u64 = 1_000;

/// The input being read: each record with its place.
struct DumpReader<'p, R> {
    source: Source<R>,
    /// Told how far the import is, every [`PROGRESS_EVERY`] records.
    progress: &'p mut dyn FnMut(&ImportSummary),
    /// A record read ahead (the chat that ended the previous chat's records).
    pending: Option<(Place, Record)>,
    options: ImportOptions,
}

impl<R: std::io::BufRead> DumpReader<'_, R> {
    /// The next record; bad lines are skipped into `summary` or returned as errors.
    fn next(
        &mut self,
        summary: &mut ImportSummary,
    ) -> Result<Option<(Place, Record)>, TransferError> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        loop {
            let (place, parsed) = match &mut self.source {
                Source::Lines { lines, line } => {
                    let Some(text) = lines.next() else {
                        return Ok(None);
                    };
                    let text = text.map_err(TransferError::Read)?;
                    *line += 1;
                    if text.trim().is_empty() {
                        continue;
                    }
                    let parsed = serde_json::from_str::<Record>(&text).map_err(|e| e.to_string());
                    (Place::Line(*line), parsed)
                }
                Source::Converted(items) => match items.next() {
                    Some(item) => item,
                    None => return Ok(None),
                },
            };
            summary.lines += 1;
            if summary.lines.is_multiple_of(PROGRESS_EVERY) {
                (self.progress)(summary);
            }
            match parsed {
                Ok(record) => return Ok(Some((place, record))),
                Err(reason) => self.bad(summary, place, reason)?,
            }
        }
    }

    /// A bad line: skipped and noted, or the import's error.
    fn bad(
        &self,
        summary: &mut ImportSummary,
        place: Place,
        reason: String,
    ) -> Result<(), TransferError> {
        if !self.options.skip_bad {
            return Err(TransferError::Bad { place, reason });
        }
        summary.skipped_count += 1;
        if summary.skipped.len() < 100 {
            summary.skipped.push((place, reason));
        }
        Ok(())
    }
}

/// Reads a dump (or converted records) into this database. Users are matched by origin
/// and id, then by username; each chat, with everything of it, is one transaction (all of
/// it or none); rows already imported from the same origin are found, not added again.
/// `progress` is called every thousand records and after each chat.
pub async fn import<R: std::io::BufRead>(
    pool: &DbPool,
    input: ImportInput<R>,
    options: ImportOptions,
    mut progress: impl FnMut(&ImportSummary),
) -> Result<ImportSummary, TransferError> {
    let source = match input {
        ImportInput::Dump(reader) => Source::Lines {
            lines: reader.lines(),
            line: 0,
        },
        ImportInput::Converted(items) => Source::Converted(items.into_iter()),
    };
    let mut reader = DumpReader {
        source,
        progress: &mut progress,
        pending: None,
        options,
    };
    let mut summary = ImportSummary::default();
    let origin = match reader.next(&mut summary)? {
        Some((place, Record::Header(header))) => {
            if header.format != FORMAT || header.version != VERSION {
                return Err(TransferError::Bad {
                    place,
                    reason: format!(
                        "a {} version {} dump; this chatql reads {FORMAT} version {VERSION}",
                        header.format, header.version
                    ),
                });
            }
            header.origin
        }
        Some((place, _)) => {
            return Err(TransferError::Bad {
                place,
                reason: "the first record must be the header".to_owned(),
            });
        }
        None => {
            return Err(TransferError::Bad {
                place: Place::Line(1),
                reason: "empty input: no header".to_owned(),
            });
        }
    };
    let mut users: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    while let Some((place, record)) = reader.next(&mut summary)? {
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
                        place,
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
                    import_chat(
                        conn,
                        &origin,
                        &users,
                        &mut reader,
                        &mut summary,
                        place,
                        chat,
                    )
                    .await
                })
                .await?;
                (reader.progress)(&summary);
            }
            Record::Header(_) => reader.bad(&mut summary, place, "a second header".to_owned())?,
            _ => reader.bad(
                &mut summary,
                place,
                "a record outside of its chat".to_owned(),
            )?,
        }
    }
    Ok(summary)
}

/// The messages of one chat an import stores: those waiting for their statement, and
/// those stored.
struct MadeMessages {
    /// Source id → local id of the messages stored now: their parts come with them, and
    /// parts of messages imported before are there already.
    made: std::collections::HashMap<i64, i64>,
    /// Stored and not remembered in `imported_rows` yet (remembered in batches; until
    /// then `made` answers for them).
    unremembered: Vec<(i64, i64)>,
    /// Whether the chat was imported before (so its messages may have been too).
    imported_before: bool,
    /// Messages read and not stored yet: their `id` is the dump's, the rest this
    /// database's.
    pending: Vec<MessageRow>,
}

impl MadeMessages {
    /// Whether the message `source_id` waits in `pending`.
    fn waiting(&self, source_id: i64) -> bool {
        self.pending.iter().any(|row| row.id == source_id)
    }

    /// Stores the pending messages in one statement, leaving out those imported before.
    async fn store(
        &mut self,
        conn: &mut DbConn,
        origin: &str,
        summary: &mut ImportSummary,
    ) -> Result<(), TransferError> {
        let pending = &mut self.pending;
        if pending.is_empty() {
            return Ok(());
        }
        // A chat not imported before has no message imported before either.
        if self.imported_before {
            let sources: Vec<i64> = pending.iter().map(|row| row.id).collect();
            let known = imports::mapped_many(conn, origin, Kind::Message, &sources).await?;
            pending.retain(|row| !known.contains_key(&row.id));
            summary.existing += known.len() as u64;
        }
        let locals = imports::insert_messages(conn, pending).await?;
        for (row, local) in pending.iter().zip(locals) {
            self.made.insert(row.id, local);
            self.unremembered.push((row.id, local));
        }
        summary.messages += pending.len() as u64;
        pending.clear();
        if self.unremembered.len() >= REMEMBER_BATCH {
            imports::remember_many(conn, origin, Kind::Message, &self.unremembered).await?;
            self.unremembered.clear();
        }
        Ok(())
    }
}

/// One chat's records, up to the next chat, in the transaction `conn` holds.
async fn import_chat<R: std::io::BufRead>(
    conn: &mut DbConn,
    origin: &str,
    users: &std::collections::HashMap<i64, i64>,
    reader: &mut DumpReader<'_, R>,
    summary: &mut ImportSummary,
    place: Place,
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
                        return Err(TransferError::Bad {
                            place,
                            reason: "a direct chat of users not in the dump".to_owned(),
                        });
                    };
                    Some(format!("{}:{}", a.min(b), a.max(b)))
                }
                None => None,
            };
            // The chat a direct key or an application key names is the same chat.
            let existing = match (&direct_key, &chat.external_key, user(chat.created_by)) {
                (Some(key), _, _) => crate::db::chats::find_direct(conn, key)
                    .await?
                    .map(|c| c.id.0),
                (None, Some(key), Some(creator)) => crate::db::chats::find_by_external_key(
                    conn,
                    crate::vocabulary::ids::UserId(creator),
                    key,
                )
                .await?
                .map(|c| c.id.0),
                _ => None,
            };
            let local = match existing {
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
    let mut batch = MadeMessages {
        made: std::collections::HashMap::new(),
        unremembered: Vec::with_capacity(REMEMBER_BATCH),
        imported_before: imported_before.is_some(),
        pending: Vec::with_capacity(imports::MESSAGE_BATCH),
    };
    let mut sessions: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
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
    while let Some((place, record)) = reader.next(summary)? {
        // What follows messages refers to them: the waiting ones are stored first.
        if !matches!(record, Record::Message(_)) {
            batch.store(conn, origin, summary).await?;
        }
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
                let sender = match row.sender_id {
                    Some(id) => match users.get(&id) {
                        Some(&local) => Some(local),
                        None => {
                            reader.bad(
                                summary,
                                place,
                                format!("sender {id} is not in the dump"),
                            )?;
                            continue;
                        }
                    },
                    None => None,
                };
                // A reply to a message still waiting needs that message's id first.
                if row.parent_id.is_some_and(|parent| batch.waiting(parent)) {
                    batch.store(conn, origin, summary).await?;
                }
                let parent = message_id(conn, origin, &batch.made, row.parent_id).await?;
                let session = row.session_id.and_then(|id| sessions.get(&id).copied());
                batch.pending.push(MessageRow {
                    chat_id: local_chat,
                    sender_id: sender,
                    parent_id: parent,
                    session_id: session,
                    ..row
                });
                if batch.pending.len() >= imports::MESSAGE_BATCH {
                    batch.store(conn, origin, summary).await?;
                }
            }
            Record::Edit(row) => {
                if let Some(&message) = batch.made.get(&row.message_id) {
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
                    (batch.made.get(&row.message_id), user(Some(row.user_id)))
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
                    (batch.made.get(&row.message_id), user(Some(row.user_id)))
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
                if let Some(&message) = batch.made.get(&row.message_id) {
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
                        place,
                        format!("member {} is not in the dump", row.user_id),
                    )?;
                    continue;
                };
                let read = message_id(conn, origin, &batch.made, row.last_read_message_id).await?;
                let delivered =
                    message_id(conn, origin, &batch.made, row.last_delivered_message_id).await?;
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
                let root = message_id(conn, origin, &batch.made, Some(row.message_id)).await?;
                let upto =
                    message_id(conn, origin, &batch.made, Some(row.last_read_message_id)).await?;
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
                reader.pending = Some((place, Record::Chat(next)));
                break;
            }
            Record::Header(_) | Record::User(_) | Record::Block(_) => {
                reader.bad(
                    summary,
                    place,
                    "a user or block after the chats began".to_owned(),
                )?;
            }
        }
    }
    batch.store(conn, origin, summary).await?;
    imports::remember_many(conn, origin, Kind::Message, &batch.unremembered).await?;
    // What the server derives depends on messages and sessions only: a chat imported
    // before that gained neither keeps what it had.
    if imported_before.is_none() || !batch.made.is_empty() || sessions_added {
        let active = source_active_session.and_then(|id| sessions.get(&id).copied());
        imports::derive_chat(conn, local_chat, active).await?;
    }
    Ok(())
}
