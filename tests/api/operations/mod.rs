//! What an operator sees: `/metrics`, the request log, `Retry-After`, response compression
//! and the command line's help and hints.

mod cli;
mod compression;
mod logs;
mod metrics;
mod retry;
