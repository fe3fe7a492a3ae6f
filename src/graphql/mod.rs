//! The GraphQL schema: roots merged from one module per area, thin resolvers over the
//! domain services, loaders for nested entities.

pub mod chats;
pub mod connection;
pub mod documents;
pub mod events;
pub mod lazy;
pub mod loaders;
pub mod messages;
pub mod scalars;
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
use crate::domain::{chats as chat_service, messages as message_service, users as user_service};
use crate::error::{AppError, AppResult, assign_code};
use crate::vocabulary::ids::{ChatId, MessageId, UserId, decode_global};
use documents::ParsedDocuments;
use loaders::Loaders;
use types::{ChatNode, MessageNode, Node, UserNode};

/// The root query type.
#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    users::UserQuery,
    chats::ChatQuery,
    messages::MessageQuery,
);

/// The root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    users::UserMutation,
    chats::ChatMutation,
    messages::MessageMutation,
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

/// The type of the operation `request` selects. Parses the query once (or takes it from
/// `documents`); execution reuses the parsed document. `None` when the query does not
/// parse or selects no operation: execution then reports why.
pub fn selected_operation(
    request: &mut Request,
    documents: &ParsedDocuments,
) -> Option<OperationType> {
    let name = request.operation_name.clone();
    let document = documents.parse(request)?;
    match name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|(_, op)| op.node.ty),
        None => document.operations.iter().next().map(|(_, op)| op.node.ty),
    }
}

/// Applies the per-user mutation rate limit (`RATE_LIMITED`) before a mutation runs; the
/// admin key and anonymous callers are not counted here (anonymous ones fail later).
pub fn check_rate_limit(
    app: &App,
    caller: &Caller,
    operation: Option<OperationType>,
) -> Result<(), ServerError> {
    let Caller::User { id, .. } = caller else {
        return Ok(());
    };
    if operation != Some(OperationType::Mutation) {
        return Ok(());
    }
    app.rate().check(id.0).map_err(|limited| {
        let mut error = ServerError::new(limited.public_message(), None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", limited.code().as_str());
        error
    })
}

/// Gives every error of a finished response its `extensions.code`.
pub fn with_codes(mut response: Response) -> Response {
    response.errors.iter_mut().for_each(assign_code);
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
}

impl Endpoint {
    /// The endpoint over `app`, with its schema built.
    pub fn new(app: App) -> Self {
        Self {
            schema: build_schema(&app),
            app,
            documents: ParsedDocuments::default(),
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
    /// Any object by its global id: a User, Chat or Message the caller may see.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let app = app(ctx)?;
        let caller = caller(ctx);
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
                absent_if_not_found(chat)?.map(|c| Node::Chat(ChatNode::loaded(c)))
            }
            MessageId::TYPE_NAME => {
                let message = message_service::get(app, caller.user_id()?, MessageId(key)).await;
                absent_if_not_found(message)?.map(|m| Node::Message(MessageNode::loaded(m)))
            }
            _ => None,
        };
        Ok(node)
    }
}

/// Relay's `node` answers null for an id that names nothing (other errors stay errors).
fn absent_if_not_found<T>(result: AppResult<T>) -> AppResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code() == crate::error::ErrorCode::NotFound => Ok(None),
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
