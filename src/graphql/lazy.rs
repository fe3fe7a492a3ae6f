//! Nodes reached through a foreign key: the id is at hand, the row loads on first need.

use async_graphql::{Context, Result};

use super::loaders;
use crate::error::AppError;

/// A row known by its id, loaded through the request's loaders the first time a field
/// needs more than the id. An id from a foreign key names a row that exists, so nodes
/// reached through one (a message's sender and chat) cost no query for `{ id }`.
#[derive(Clone)]
pub(crate) struct LazyRow<I, R> {
    pub(crate) id: I,
    row: tokio::sync::OnceCell<R>,
}

impl<I, R> LazyRow<I, R> {
    /// A row at hand.
    pub(crate) fn loaded(id: I, row: R) -> Self {
        Self {
            id,
            row: tokio::sync::OnceCell::new_with(Some(row)),
        }
    }

    /// A row known by its id only.
    pub(crate) fn by_id(id: I) -> Self {
        Self {
            id,
            row: tokio::sync::OnceCell::new(),
        }
    }

    /// The row, loaded by `key` if it is not at hand; `NOT_FOUND` (as `what`) if it is gone.
    pub(crate) async fn get<K>(&self, ctx: &Context<'_>, key: K, what: &'static str) -> Result<&R>
    where
        K: Copy + Send + Sync + std::hash::Hash + Eq + 'static,
        R: Clone + Send + Sync + 'static,
        super::loaders::DbLoader:
            async_graphql::dataloader::Loader<K, Value = R, Error = async_graphql::Error>,
    {
        self.row
            .get_or_try_init(|| async {
                loaders(ctx)?
                    .load_one(key)
                    .await?
                    .ok_or_else(|| AppError::NotFound(what).into())
            })
            .await
    }
}
