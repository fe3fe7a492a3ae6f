//! graphql-ws test client (filled in with the subscription work).
