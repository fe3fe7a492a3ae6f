//! The GraphQL schema: roots merged from one module per area, thin resolvers over the
//! domain services, loaders for nested entities.

pub mod chats;
pub mod events;
pub mod loaders;
pub mod messages;
pub mod scalars;
pub mod subscription;
pub mod types;
pub mod users;

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Context, ID, MergedObject, Object, Response, Result, Schema, SchemaBuilder};
use async_graphql::{ServerError, ServerResult, Variables};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::app::App;
use crate::auth::Caller;
use crate::db;
use crate::domain::ids::{ChatId, MessageId, UserId, decode_global};
use crate::domain::{chats as chat_service, messages as message_service, users as user_service};
use crate::error::{AppError, AppResult, assign_code};
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
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, subscription::Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .extension(ErrorCodes)
    .extension(MutationRateLimit)
}

/// Applies the per-user mutation rate limit (`RATE_LIMITED`) before a mutation runs.
struct MutationRateLimit;

impl ExtensionFactory for MutationRateLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MutationRateLimit)
    }
}

#[async_trait::async_trait]
impl Extension for MutationRateLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mutates = document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty == OperationType::Mutation);
        if let (true, Some(Caller::User { id, .. }), Ok(app)) =
            (mutates, ctx.data_opt::<Caller>(), ctx.data::<App>())
            && let Err(limited) = app.rate().check(id.0)
        {
            let mut error = ServerError::new(limited.public_message(), None);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", limited.code().as_str());
            return Err(error);
        }
        Ok(document)
    }
}

/// Assigns `extensions.code` to every error of every response (see `error::assign_code`).
struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

fn with_codes(mut response: Response) -> Response {
    response.errors.iter_mut().for_each(assign_code);
    response
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

/// The schema for `app`, with its depth and complexity limits.
pub fn build_schema(app: &App) -> ChatSchema {
    let config = app.config();
    schema_builder()
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_complexity)
        .data(app.clone())
        .finish()
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
                .map(|u| Node::User(UserNode(u))),
            ChatId::TYPE_NAME => {
                let chat = chat_service::get(app, caller.user_id()?, ChatId(key)).await;
                absent_if_not_found(chat)?.map(|c| Node::Chat(ChatNode(c)))
            }
            MessageId::TYPE_NAME => {
                let message = message_service::get(app, caller.user_id()?, MessageId(key)).await;
                absent_if_not_found(message)?.map(|m| Node::Message(MessageNode(m)))
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

/// The per-request data every execution needs: the caller and fresh loaders.
pub fn request_data(app: &App, caller: Caller) -> (Caller, Loaders) {
    (caller, loaders::loaders(db::DbPool::clone(app.db())))
}
