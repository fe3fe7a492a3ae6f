//! The GraphQL schema: roots merged from one module per area, thin resolvers over the
//! domain services, loaders for nested entities.

pub mod admission;
pub mod attachments;
pub mod chats;
pub mod connection;
pub mod documents;
pub mod events;
pub mod lazy;
pub mod live;
pub mod loaders;
pub mod messages;
pub mod persisted;
pub mod scalars;
pub mod statistics;
pub mod subscription;
pub mod types;
pub mod users;

use async_graphql::parser::types::OperationType;
use async_graphql::{Context, ID, MergedObject, Object, Request, Response, Result, Schema};
use async_graphql::{SchemaBuilder, ServerError};

use crate::app::App;
use crate::auth::Caller;
use crate::db;
use crate::domain::access::CheckedMemberships;
use crate::domain::sending::SendQueues;
use crate::domain::{
    chats as chat_service, members as member_service, messages as message_service,
    sessions as session_service, users as user_service,
};
use crate::error::{AppError, AppResult, ErrorCode, assign_code, request_error};
use crate::vocabulary::ids::{ChatId, MemberId, MessageId, SessionId, UserId, decode_global};
use admission::Operation;
use documents::ParsedDocuments;
use loaders::Loaders;
use persisted::PersistedQueries;
use types::{ChatNode, MemberNode, MessageNode, Node, SessionNode, UserNode};

/// The root query type.
#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    users::UserQuery,
    chats::ChatQuery,
    messages::MessageQuery,
    statistics::StatisticsQuery,
);

/// The root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    users::UserMutation,
    chats::ChatMutation,
    messages::MessageMutation,
    attachments::AttachmentMutation,
);

/// The executable schema.
pub type ChatSchema = Schema<Query, Mutation, subscription::Subscription>;

/// A schema builder with every type registered and the configured limits; callers add
/// data (the `App`) and build.
///
/// It registers no extension on purpose: once a schema has any, async-graphql runs its
/// extension chain around every resolved field, which cost ~20 % of the server's CPU on a
/// page of messages. What chatql needs once per request runs outside the schema instead:
/// [`check_rate_limit`] before execution, [`assign_code`] on the finished response (in
/// `http` and `ws`).
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, subscription::Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
}

/// Applies the per-user mutation rate limit (`RATE_LIMITED`) before a mutation runs, one
/// count per mutation field; the admin key and anonymous callers are not counted here
/// (anonymous ones fail later).
pub fn check_rate_limit(
    app: &App,
    caller: &Caller,
    operation: Option<&Operation>,
) -> Result<(), ServerError> {
    let Caller::User { id, .. } = caller else {
        return Ok(());
    };
    let Some(mutations) = operation
        .filter(|op| op.ty == OperationType::Mutation)
        .map(|op| u32::try_from(op.mutation_fields).unwrap_or(u32::MAX))
    else {
        return Ok(());
    };
    app.rate().check(id.0, mutations).map_err(|limited| {
        // The wait in seconds, for WebSocket clients too (HTTP repeats it as `Retry-After`).
        let retry_after = limited.retry_after_secs();
        let mut error = AppError::from(limited).into_request_error();
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set(RETRY_AFTER_EXTENSION, retry_after);
        error
    })
}

/// The name of the operation an admitted request runs, for the request log: the one the
/// client named, else the name of the document's first operation (the one selected then).
/// Only for a request [`admission::admit`] returned an operation for: its document is
/// parsed already, so nothing is parsed here.
pub fn operation_name(request: &mut Request) -> Option<String> {
    if let Some(name) = &request.operation_name {
        return Some(name.clone());
    }
    let document = request.parsed_query().ok()?;
    let (name, _) = document.operations.iter().next()?;
    name.map(|name| name.to_string())
}

/// The `extensions` entry of a `RATE_LIMITED` error giving the seconds to wait.
pub const RETRY_AFTER_EXTENSION: &str = "retryAfterSeconds";

/// The JSON text of an executed response, or of a `LIMIT_EXCEEDED` error in its place when
/// it is larger than `max_bytes` (the work is done, but the bytes are not sent).
pub fn response_text(response: &Response, max_bytes: usize) -> String {
    let text = serde_json::to_string(response).unwrap_or_default();
    if text.len() <= max_bytes {
        return text;
    }
    let error = request_error(
        format!(
            "the response is {} bytes, over the limit of {max_bytes}: ask for fewer items",
            text.len()
        ),
        ErrorCode::LimitExceeded,
    );
    serde_json::json!({ "data": null, "errors": [error] }).to_string()
}

/// Most errors one response lists; the rest are summed up in one more.
pub const MAX_ERRORS: usize = 50;

/// Gives every error of a finished response its `extensions.code`, and keeps at most
/// [`MAX_ERRORS`] of them (a document repeating one mistake thousands of times gets a
/// short answer).
pub fn with_codes(mut response: Response) -> Response {
    let omitted = response.errors.len().saturating_sub(MAX_ERRORS);
    response.errors.truncate(MAX_ERRORS);
    response.errors.iter_mut().for_each(assign_code);
    if omitted > 0 {
        // Summed up under the code of the last one listed.
        let code = response.errors.last().and_then(ErrorCode::of);
        response.errors.push(request_error(
            format!("… and {omitted} more errors"),
            code.unwrap_or(ErrorCode::BadUserInput),
        ));
    }
    response
}

/// The schema for `app`, with its depth and complexity limits.
pub fn build_schema(app: &App) -> ChatSchema {
    let config = app.config();
    schema_builder()
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_complexity)
        .data(app.clone())
        .data(SendQueues::new(app.clone()))
        .finish()
}

/// What a transport (`http`, `ws`) needs to serve GraphQL: the shared state, the schema
/// and the parsed-document cache both transports share.
#[derive(Clone)]
pub struct Endpoint {
    /// Shared application state.
    pub app: App,
    /// The executable schema.
    pub schema: ChatSchema,
    /// Parsed queries by their text.
    pub documents: ParsedDocuments,
    /// Automatic persisted queries: document texts by their hash.
    pub persisted: PersistedQueries,
}

impl Endpoint {
    /// The endpoint over `app`, with its schema built.
    pub fn new(app: App) -> Self {
        Self {
            schema: build_schema(&app),
            app,
            documents: ParsedDocuments::default(),
            persisted: PersistedQueries::default(),
        }
    }
}

/// The SDL of the schema (what `print-schema` prints and `schema.graphql` holds).
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

/// The shared application state.
pub(crate) fn app<'c>(ctx: &Context<'c>) -> Result<&'c App> {
    ctx.data::<App>()
}

/// Who is calling (anonymous when the transport set nobody).
pub(crate) fn caller<'c>(ctx: &Context<'c>) -> &'c Caller {
    static ANONYMOUS: Caller = Caller::Anonymous;
    // A live event's rendering that asks is not shared with other viewers (see `live`).
    if let Some(probe) = ctx.data_opt::<live::ViewerProbe>() {
        probe.mark();
    }
    ctx.data_opt::<Caller>().unwrap_or(&ANONYMOUS)
}

/// The calling user, or `UNAUTHENTICATED`/`FORBIDDEN`.
pub(crate) fn caller_id(ctx: &Context<'_>) -> AppResult<UserId> {
    caller(ctx).user_id()
}

/// This request's loaders.
pub(crate) fn loaders<'c>(ctx: &Context<'c>) -> Result<&'c Loaders> {
    ctx.data::<Loaders>()
}

/// Relay object identification.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global id: a User, Chat, Message, Member or Session the caller
    /// may see.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let app = app(ctx)?;
        let caller = caller(ctx);
        if let Some(member) = MemberId::from_global(&id) {
            let user = caller.user_id()?;
            let member = with_checked_memberships(ctx, async |checked| {
                member_service::get(app, user, member, checked).await
            })
            .await;
            return Ok(absent_unless_visible(member)?.map(|m| Node::Member(MemberNode(m))));
        }
        let Some((type_name, key)) = decode_global(&id) else {
            return Err(AppError::BadInput(format!("`{}` is not a valid id", id.as_str())).into());
        };
        let node = match type_name {
            UserId::TYPE_NAME => user_service::find(app, caller, Some(UserId(key)), None)
                .await?
                .map(|u| Node::User(UserNode::loaded(u))),
            ChatId::TYPE_NAME => {
                let user = caller.user_id()?;
                let chat = with_checked_memberships(ctx, async |checked| {
                    chat_service::get(app, user, ChatId(key), checked).await
                })
                .await;
                absent_unless_visible(chat)?.map(|c| Node::Chat(ChatNode::loaded(c)))
            }
            SessionId::TYPE_NAME => {
                let user = caller.user_id()?;
                let session = with_checked_memberships(ctx, async |checked| {
                    session_service::get(app, user, SessionId(key), checked).await
                })
                .await;
                absent_unless_visible(session)?.map(|s| Node::Session(SessionNode(s)))
            }
            MessageId::TYPE_NAME => {
                let message = message_service::get(app, caller.user_id()?, MessageId(key)).await;
                absent_unless_visible(message)?.map(|m| Node::Message(MessageNode::loaded(m)))
            }
            _ => None,
        };
        Ok(node)
    }
}

/// `node`, `chat` and `message` answer null alike for an id that names nothing and for
/// one the (authenticated) caller may not see: the same answer, so ids cannot be probed,
/// and no error, which would null a Relay query's whole `data`. Other errors stay errors.
pub(crate) fn absent_unless_visible<T>(result: AppResult<T>) -> AppResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(AppError::NotFound(_) | AppError::Forbidden(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Gives `request` what every execution needs: the caller, fresh loaders and, for a
/// query, a memo of the memberships it checks (see [`CheckedMemberships`]).
pub fn with_request_data(
    request: Request,
    app: &App,
    caller: Caller,
    operation: Option<OperationType>,
) -> Request {
    let request = request
        .data(caller)
        .data(loaders::loaders(db::DbPool::clone(app.db())));
    if operation == Some(OperationType::Query) {
        request.data(CheckedMemberships::default())
    } else {
        request
    }
}

/// Runs `body` with this operation's membership memo, or a fresh one (checking every
/// time) for mutations and subscriptions.
pub(crate) async fn with_checked_memberships<T>(
    ctx: &Context<'_>,
    body: impl AsyncFnOnce(&CheckedMemberships) -> T,
) -> T {
    match ctx.data_opt::<CheckedMemberships>() {
        Some(checked) => body(checked).await,
        None => body(&CheckedMemberships::default()).await,
    }
}
