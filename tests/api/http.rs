//! GraphQL over HTTP.
