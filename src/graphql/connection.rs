//! Relay connections: a page of rows turned into edges with cursors, and the macro that
//! declares a described connection and edge type for one node type.

use async_graphql::connection::PageInfo;

use crate::vocabulary::cursor::Page;

/// A Relay connection type assembled from a page's edges.
pub trait RelayConnection {
    /// The node type.
    type Node: Clone;
    /// Builds the connection.
    fn assemble(edges: Vec<(String, Self::Node)>, page_info: PageInfo) -> Self;
}

/// Builds a Relay connection from a page, giving each item its cursor.
pub fn connection<T, C: RelayConnection>(
    page: Page<T>,
    cursor: impl Fn(&T) -> String,
    node: impl Fn(T) -> C::Node,
) -> C {
    let edges: Vec<(String, C::Node)> = page
        .items
        .into_iter()
        .map(|item| (cursor(&item), node(item)))
        .collect();
    let page_info = page_info(
        page.has_previous_page,
        page.has_next_page,
        edges.first().map(|(c, _)| c),
        edges.last().map(|(c, _)| c),
    );
    C::assemble(edges, page_info)
}

/// A page's `pageInfo`: what lies beyond it, and the cursors of its first and last edge.
pub fn page_info(
    has_previous_page: bool,
    has_next_page: bool,
    start: Option<&String>,
    end: Option<&String>,
) -> PageInfo {
    PageInfo {
        has_previous_page,
        has_next_page,
        start_cursor: start.cloned(),
        end_cursor: end.cloned(),
    }
}

/// Declares a described connection type and its edge type for one node type.
/// An edge may carry one more field (`$extra: Option<$extra_ty>`, null unless the list
/// that made the page sets it, as search sets how a message matched).
macro_rules! connection_type {
    ($connection:ident, $edge:ident, $node:ty, $many:literal, $one:literal) => {
        connection_type!($connection, $edge, $node, $many, $one, {});
    };
    ($connection:ident, $edge:ident, $node:ty, $many:literal, $one:literal,
     { $($(#[$extra_doc:meta])* $extra:ident: $extra_ty:ty)? }) => {
        #[doc = concat!("A page of ", $many, " (a Relay connection).")]
        pub struct $connection {
            edges: Vec<$edge>,
            page_info: PageInfo,
        }

        #[doc = concat!("A page of ", $many, " (a Relay connection).")]
        #[Object]
        impl $connection {
            /// The items of this page, each with its cursor.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }
            /// The items of this page.
            async fn nodes(&self) -> Vec<&$node> {
                // Borrowed from the edges: a page's rows are never copied.
                self.edges.iter().map(|edge| &edge.node).collect()
            }
            /// Whether there is more before or after this page, and where to continue.
            async fn page_info(&self) -> &PageInfo {
                &self.page_info
            }
        }

        #[doc = concat!("A ", $one, " in a page, with its cursor.")]
        #[derive(SimpleObject)]
        pub struct $edge {
            /// Pass as `after` or `before` to page on from this item.
            pub cursor: String,
            /// The item.
            pub node: $node,
            $($(#[$extra_doc])* pub $extra: Option<$extra_ty>,)?
        }

        impl RelayConnection for $connection {
            type Node = $node;

            fn assemble(edges: Vec<(String, $node)>, page_info: PageInfo) -> Self {
                Self {
                    edges: edges
                        .into_iter()
                        .map(|(cursor, node)| $edge {
                            cursor,
                            node,
                            $($extra: None::<$extra_ty>,)?
                        })
                        .collect(),
                    page_info,
                }
            }
        }
    };
}

pub(crate) use connection_type;

/// What a list field costs against the complexity limit: its items' cost for every item it
/// may return (the `first`/`last` asked for, else `default`), plus one for the field. So
/// nested pages multiply (`messages(first: 100) { nodes { chat { messages(first: 100)`)
/// and aliases add up, and are refused before they run.
pub fn page_cost(first: Option<i32>, last: Option<i32>, default: usize, child: usize) -> usize {
    let items = first
        .or(last)
        .map_or(default, |n| usize::try_from(n).unwrap_or(0))
        .max(1);
    items.saturating_mul(child).saturating_add(1)
}
