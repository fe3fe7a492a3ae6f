//! The API's enums. Each is stored as its upper-case name in a TEXT column and exposed
//! as a GraphQL enum of the same name.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, async_graphql::Enum,
                 diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored form.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} `{text}`", stringify!($name)))
                })
            }
        }

        impl<DB: Backend> ToSql<Text, DB> for $name
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                $name::parse(&text)
                    .ok_or_else(|| format!("unknown {} `{text}`", stringify!($name)).into())
            }
        }
    };
}

text_enum!(
    /// What kind of conversation a chat is.
    ChatKind {
        /// Two people, one chat per pair.
        Direct = "DIRECT",
        /// A group of people.
        Group = "GROUP",
        /// A human with AI agent(s).
        Assistant = "ASSISTANT",
    }
);

text_enum!(
    /// Where a conversation is in its life.
    ChatStatus {
        /// In use.
        Active = "ACTIVE",
        /// Put away: still readable and writable, filtered out of lists that ask for
        /// ACTIVE chats.
        Archived = "ARCHIVED",
    }
);

text_enum!(
    /// Which time orders the chat list.
    ChatOrderField {
        /// The last message sent (or the chat's creation): the usual chat list.
        LastActivity = "LAST_ACTIVITY",
        /// When the chat was created.
        Created = "CREATED",
        /// When the chat's settings last changed.
        Updated = "UPDATED",
    }
);

text_enum!(
    /// Which way a list is ordered.
    SortDirection {
        /// Oldest first.
        Asc = "ASC",
        /// Newest first.
        Desc = "DESC",
    }
);

text_enum!(
    /// A member's role in a chat; earlier roles may do more.
    MemberRole {
        /// Owns the chat; may do everything, including deleting it.
        Owner = "OWNER",
        /// Manages members and settings.
        Admin = "ADMIN",
        /// May delete other members' messages.
        Moderator = "MODERATOR",
        /// Reads and writes.
        Member = "MEMBER",
    }
);

text_enum!(
    /// The LLM-style role of a message.
    MessageRole {
        /// Written by a person.
        User = "USER",
        /// Written by an AI assistant.
        Assistant = "ASSISTANT",
        /// An instruction or notice from the system.
        System = "SYSTEM",
    }
);

text_enum!(
    /// What a message carries.
    MessageKind {
        /// Text.
        Text = "TEXT",
        /// An image.
        Image = "IMAGE",
        /// A file.
        File = "FILE",
        /// A system notice (member joined, …).
        System = "SYSTEM",
    }
);

text_enum!(
    /// The state of a streamed assistant reply.
    StreamState {
        /// Content is still being appended.
        Streaming = "STREAMING",
        /// The reply finished normally.
        Complete = "COMPLETE",
        /// The reply was stopped before the end.
        Interrupted = "INTERRUPTED",
        /// Generating the reply failed.
        Failed = "FAILED",
    }
);

/// Delivery state of a message as its sender sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum MessageStatus {
    /// Stored; not yet delivered to every other member.
    Sent,
    /// Delivered to every other member, not yet read by all.
    Delivered,
    /// Read by every other member.
    Read,
}

impl MemberRole {
    /// May add and remove members, change roles and chat settings.
    pub fn can_manage(self) -> bool {
        matches!(self, MemberRole::Owner | MemberRole::Admin)
    }

    /// May delete any message in the chat.
    pub fn can_moderate(self) -> bool {
        matches!(
            self,
            MemberRole::Owner | MemberRole::Admin | MemberRole::Moderator
        )
    }
}
