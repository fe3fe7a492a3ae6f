//! The `Session` type's fields.

use async_graphql::{Context, ID, Object, Result};

use super::{ChatNode, SessionNode};
use crate::domain::sessions::shown_end;
use crate::graphql::loaders::ChatKey;
use crate::graphql::scalars::DateTime;
use crate::graphql::{app, loaders};

/// A stretch of a chat's conversation: it ends after a quiet spell longer than the
/// server's session timeout (or by `endSession`/`startSession`), and each message belongs
/// to the session it was sent in.
#[Object(name = "Session")]
impl SessionNode {
    /// The globally unique, opaque id.
    // `pub(super)`: the `Node` interface in the parent module calls it.
    pub(super) async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The chat.
    async fn chat(&self) -> ChatNode {
        ChatNode::by_id(self.0.chat_id)
    }
    /// When it began (its first message, or `startSession`).
    async fn started_at(&self) -> DateTime {
        DateTime(self.0.started_at)
    }
    /// When it ended (null while it is open); a session that timed out ended with its last
    /// message.
    async fn ended_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        if let Some(ended) = self.0.ended_at {
            return Ok(Some(DateTime(ended)));
        }
        let Some(chat) = loaders(ctx)?.load_one(ChatKey(self.0.chat_id)).await? else {
            return Ok(None);
        };
        let timeout = app(ctx)?.config().session_timeout_secs;
        Ok(shown_end(&self.0, &chat.activity(), timeout).map(DateTime))
    }
    /// True while messages sent now join it.
    async fn active(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.ended_at(ctx).await?.is_none())
    }
}
