//! Typed ids and their opaque public form.
//!
//! Internally every entity has an `i64` key, typed down to the column (each id is a diesel
//! `BigInt`), so a chat id cannot be passed where a user id belongs. Clients see Relay
//! global ids:
//! base64url("<Type>:<key>"), so an id names its type and `node(id)` can resolve it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::BigInt;

use super::InvalidInput;

macro_rules! id_type {
    ($name:ident, $type_name:literal) => {
        #[doc = concat!("Key of a ", $type_name, ".")]
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            diesel::AsExpression,
            diesel::FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = BigInt)]
        pub struct $name(pub i64);

        impl<DB: Backend> ToSql<BigInt, DB> for $name
        where
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.0.to_sql(out)
            }
        }

        impl<DB: Backend> FromSql<BigInt, DB> for $name
        where
            i64: FromSql<BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                i64::from_sql(bytes).map(Self)
            }
        }

        impl $name {
            /// The GraphQL type name this id belongs to.
            pub const TYPE_NAME: &'static str = $type_name;

            /// The opaque public id.
            pub fn to_global(self) -> String {
                encode_global(Self::TYPE_NAME, self.0)
            }

            /// Parses a public id, rejecting ids of other types.
            pub fn from_global(id: &str) -> Result<Self, InvalidInput> {
                match decode_global(id) {
                    Some(($type_name, key)) => Ok(Self(key)),
                    _ => Err(InvalidInput::Malformed(format!(
                        "`{id}` is not a valid {} id",
                        $type_name
                    ))),
                }
            }
        }

        /// In inputs the id is a GraphQL `ID` that must name this type: a resolver
        /// receives it typed, and a malformed or foreign id is an argument error
        /// (`BAD_USER_INPUT`) before any resolver runs.
        impl async_graphql::InputType for $name {
            type RawValueType = Self;

            fn type_name() -> std::borrow::Cow<'static, str> {
                <async_graphql::ID as async_graphql::InputType>::type_name()
            }

            fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
                <async_graphql::ID as async_graphql::InputType>::create_type_info(registry)
            }

            fn parse(value: Option<async_graphql::Value>) -> async_graphql::InputValueResult<Self> {
                let id = <async_graphql::ID as async_graphql::InputType>::parse(value)
                    .map_err(async_graphql::InputValueError::propagate)?;
                Self::from_global(&id).map_err(async_graphql::InputValueError::custom)
            }

            fn to_value(&self) -> async_graphql::Value {
                async_graphql::Value::String(self.to_global())
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }
        }

        impl From<$name> for async_graphql::ID {
            fn from(id: $name) -> Self {
                async_graphql::ID(id.to_global())
            }
        }
    };
}

id_type!(UserId, "User");
id_type!(ChatId, "Chat");
id_type!(MessageId, "Message");
id_type!(SessionId, "Session");
id_type!(AttachmentId, "Attachment");

/// Key of a membership: a chat and one of its members. Its global id is
/// base64url("Member:<chat>:<user>"), so a normalized client cache (Apollo, urql, Relay)
/// can tell memberships apart and update one in place when a mutation returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberId {
    /// The chat.
    pub chat: ChatId,
    /// The member.
    pub user: UserId,
}

impl MemberId {
    /// The GraphQL type name of memberships.
    pub const TYPE_NAME: &'static str = "Member";

    /// The opaque public id.
    pub fn to_global(self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            Self::TYPE_NAME,
            self.chat.0,
            self.user.0
        ))
    }

    /// Parses a public membership id; `None` when `id` is not one.
    pub fn from_global(id: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let keys = text.strip_prefix(Self::TYPE_NAME)?.strip_prefix(':')?;
        let (chat, user) = keys.split_once(':')?;
        Some(Self {
            chat: ChatId(chat.parse().ok()?),
            user: UserId(user.parse().ok()?),
        })
    }
}

impl From<MemberId> for async_graphql::ID {
    fn from(id: MemberId) -> Self {
        async_graphql::ID(id.to_global())
    }
}

/// Encodes `<type>:<key>` as base64url.
pub fn encode_global(type_name: &str, key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{type_name}:{key}"))
}

/// Decodes a global id into its type name and key; `None` when it is not one.
pub fn decode_global(id: &str) -> Option<(&'static str, i64)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (type_name, key) = text.split_once(':')?;
    let key: i64 = key.parse().ok()?;
    let type_name = [
        UserId::TYPE_NAME,
        ChatId::TYPE_NAME,
        MessageId::TYPE_NAME,
        SessionId::TYPE_NAME,
        AttachmentId::TYPE_NAME,
    ]
    .into_iter()
    .find(|known| *known == type_name)?;
    Some((type_name, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_and_keep_their_type() {
        let id = MessageId(42).to_global();
        assert_eq!(MessageId::from_global(&id).ok(), Some(MessageId(42)));
        assert!(ChatId::from_global(&id).is_err());
        assert!(UserId::from_global("not an id").is_err());
    }

    #[test]
    fn membership_ids_round_trip_and_are_no_other_id() {
        let id = MemberId {
            chat: ChatId(7),
            user: UserId(9),
        };
        let global = id.to_global();
        assert_eq!(MemberId::from_global(&global), Some(id));
        assert_eq!(decode_global(&global), None);
        assert_eq!(MemberId::from_global(&ChatId(7).to_global()), None);
    }
}
