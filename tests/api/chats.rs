//! Chats and membership.
