//! What an operator sees: `/metrics`, the request log, `Retry-After`, response compression
//! the command line's help and hints, backups and exports.

mod backup;
mod cli;
mod compression;
mod export;
mod foreign;
mod import;
mod logs;
mod metrics;
mod retry;
