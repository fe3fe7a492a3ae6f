//! Table definitions shared by both backends (see diesel.toml for why it is hand-kept).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        display_name -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        is_bot -> Bool,
        metadata -> Nullable<Text>,
        last_seen_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        token_generation -> BigInt,
    }
}

diesel::table! {
    chats (id) {
        id -> BigInt,
        kind -> Text,
        category -> Nullable<Text>,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        metadata -> Nullable<Text>,
        created_by -> Nullable<BigInt>,
        direct_key -> Nullable<Text>,
        last_message_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_activity_at -> Timestamp,
        external_key -> Nullable<Text>,
        status -> Text,
        active_session_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    chat_sessions (id) {
        id -> BigInt,
        chat_id -> BigInt,
        started_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    chat_tags (chat_id, tag) {
        chat_id -> BigInt,
        tag -> Text,
    }
}

diesel::table! {
    members (chat_id, user_id) {
        chat_id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        joined_at -> Timestamp,
        last_read_message_id -> Nullable<BigInt>,
        last_read_at -> Nullable<Timestamp>,
        last_delivered_message_id -> Nullable<BigInt>,
        pinned -> Bool,
        muted -> Bool,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        chat_id -> BigInt,
        sender_id -> Nullable<BigInt>,
        role -> Text,
        kind -> Text,
        content -> Text,
        data -> Nullable<Text>,
        parent_id -> Nullable<BigInt>,
        client_id -> Nullable<Text>,
        stream_state -> Nullable<Text>,
        created_at -> Timestamp,
        edited_at -> Nullable<Timestamp>,
        retracted_at -> Nullable<Timestamp>,
        trace_id -> Nullable<Text>,
        session_id -> Nullable<BigInt>,
        last_reply_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    reactions (message_id, user_id, emoji) {
        message_id -> BigInt,
        user_id -> BigInt,
        emoji -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    message_edits (id) {
        id -> BigInt,
        message_id -> BigInt,
        content -> Text,
        written_at -> Timestamp,
        replaced_at -> Timestamp,
    }
}

diesel::table! {
    pins (message_id) {
        message_id -> BigInt,
        chat_id -> BigInt,
        pinned_by -> Nullable<BigInt>,
        pinned_at -> Timestamp,
    }
}

diesel::table! {
    mentions (user_id, chat_id, message_id) {
        user_id -> BigInt,
        chat_id -> BigInt,
        message_id -> BigInt,
    }
}

diesel::table! {
    blocks (blocker_id, blocked_id) {
        blocker_id -> BigInt,
        blocked_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    thread_reads (user_id, message_id) {
        user_id -> BigInt,
        message_id -> BigInt,
        last_read_message_id -> BigInt,
    }
}

diesel::table! {
    database_identity (id) {
        id -> Text,
    }
}

diesel::table! {
    imported_rows (origin, kind, source_id) {
        origin -> Text,
        kind -> Text,
        source_id -> BigInt,
        local_id -> BigInt,
    }
}

diesel::table! {
    media_blobs (sha256) {
        sha256 -> Text,
        size -> BigInt,
        mime_type -> Text,
        touched_at -> Timestamp,
    }
}

diesel::table! {
    attachments (id) {
        id -> BigInt,
        chat_id -> BigInt,
        uploader_id -> Nullable<BigInt>,
        message_id -> Nullable<BigInt>,
        position -> Integer,
        name -> Text,
        mime_type -> Text,
        size -> BigInt,
        sha256 -> Nullable<Text>,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        thumbnail_sha256 -> Nullable<Text>,
        ticket_hash -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(members -> chats (chat_id));
diesel::joinable!(members -> users (user_id));
diesel::joinable!(messages -> chats (chat_id));
diesel::joinable!(chat_tags -> chats (chat_id));
diesel::joinable!(chat_sessions -> chats (chat_id));
diesel::joinable!(reactions -> messages (message_id));
diesel::joinable!(message_edits -> messages (message_id));
diesel::joinable!(pins -> messages (message_id));
diesel::joinable!(mentions -> messages (message_id));
diesel::joinable!(attachments -> messages (message_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    chats,
    members,
    messages,
    chat_tags,
    chat_sessions,
    reactions,
    message_edits,
    pins,
    mentions,
    blocks,
    thread_reads,
    database_identity,
    imported_rows,
    media_blobs,
    attachments
);
