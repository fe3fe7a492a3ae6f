//! What an operator sees: `/metrics`, the request log, `Retry-After`, response compression
//! the command line's help and hints, and backups.

mod backup;
mod cli;
mod compression;
mod logs;
mod metrics;
mod retry;
