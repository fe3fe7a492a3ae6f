//! Live events over real WebSockets: every event kind, resume without gaps, lag, auth and
//! limits, streaming replies, the inbox, the legacy protocol, several instances, and the
//! socket's own bounds (message size, pending sockets, outgoing bytes, keep-alive).

use serde_json::{Value, json};

use crate::common::ws::WsClient;

use crate::common::*;

mod chat_events;
mod connection;
mod instances;
mod limits;
mod shared;

const CHAT_EVENTS: &str = "subscription($c: ID!, $after: String) {
  chatEvents(chatId: $c, after: $after) {
    __typename
    ... on MessageAdded { cursor message { content sender { username } } }
    ... on MessageEdited { message { content streamState } }
    ... on MessageRetracted { message { retracted content } }
    ... on MessageDeleted { messageId }
    ... on MessageDelta { delta offset }
    ... on ReadReceipt { user { username } lastReadMessageId }
    ... on DeliveryReceipt { user { username } lastDeliveredMessageId }
    ... on Typing { user { username } typing }
    ... on MemberJoined { user { username } member { role } }
    ... on MemberLeft { user { username } }
    ... on MemberUpdated { role }
    ... on ChatUpdated { chat { name } }
    ... on ChatDeleted { chatId }
    ... on ResyncRequired { lastCursor }
  }
}";

fn typename(event: &Value) -> &str {
    event["chatEvents"]["__typename"].as_str().unwrap_or("")
}

/// The feeds a subscription reads, driven directly so the test controls when they lag.
mod lagged_feeds {
    use chatql::domain::feeds::chat::{ChatFeed, ChatFeedItem};
    use chatql::domain::feeds::inbox::{InboxFeed, InboxItem};
    use chatql::events::EventKind;
    use chatql::vocabulary::ids::{ChatId, UserId};

    use super::*;

    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread")]
    async fn a_removed_member_whose_feeds_lagged_sees_nothing_more_of_the_chat() -> TestResult {
        let server = TestServer::start_with(&["--event-buffer", "4"]).await?;
        let owner = server.user("owner").await?;
        let member = server.user("member").await?;
        let chat = group(&server, &owner, &[&member]).await?;
        let own_chat = group(&server, &member, &[]).await?;
        let member_id = UserId::from_global(&member.id)?;
        let chat_id = ChatId::from_global(&chat)?;
        let mut chat_feed = ChatFeed::open(&server.app, member_id, chat_id, None).await?;
        let mut inbox = InboxFeed::open(&server.app, member_id).await?;
        // The member reads neither feed while more events than the buffer holds go by,
        // then is removed, then the owner sends secrets.
        for i in 0..10 {
            send(&server, &owner, &chat, &format!("filler {i}")).await?;
        }
        remove_member(&server, &owner, &chat, &member).await?;
        // Enough after the removal that its MemberLeft falls out of the buffer too.
        let secret = send(&server, &owner, &chat, "secret").await?;
        let secret_id = chatql::vocabulary::ids::MessageId::from_global(&secret)?;
        for i in 0..6 {
            send(&server, &owner, &chat, &format!("more secrets {i}")).await?;
        }
        // The chat feed ends with the member's own MemberLeft, and nothing after it.
        let mut last = None;
        while let Some(item) = tokio::time::timeout(WAIT, chat_feed.next()).await? {
            let item = item?;
            if let ChatFeedItem::Live(event) = &item {
                assert!(
                    !matches!(event.kind, EventKind::MessageAdded { message_id, .. } if message_id >= secret_id),
                    "the removed member received a message sent after the removal"
                );
            }
            last = Some(item);
        }
        match last {
            Some(ChatFeedItem::Live(event)) => {
                assert_eq!(event.kind, EventKind::MemberLeft { user_id: member_id })
            }
            other => return Err(format!("the feed ended with {other:?}").into()),
        }
        // The inbox resyncs and goes on with the member's other chats only: everything up to
        // a message in the member's own chat carries nothing from the chat they left.
        let sentinel = send(&server, &member, &own_chat, "still here").await?;
        let sentinel_id = chatql::vocabulary::ids::MessageId::from_global(&sentinel)?;
        let mut resynced = false;
        loop {
            match tokio::time::timeout(WAIT, inbox.next()).await? {
                None => return Err("the inbox ended".into()),
                Some(InboxItem::Resync) => resynced = true,
                Some(InboxItem::Live { chat, event, .. }) => {
                    assert_ne!(chat, chat_id, "inbox event from the left chat");
                    if matches!(event.kind, EventKind::MessageAdded { message_id, .. } if message_id == sentinel_id)
                    {
                        break;
                    }
                }
            }
        }
        assert!(resynced, "the lagged inbox asked for a resync");
        Ok(())
    }
}
