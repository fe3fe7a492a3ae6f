//! Per-subscriber event feeds over the broadcast channel: a chat's events, and a user's
//! inbox across their chats.

pub mod chat;
pub mod inbox;
