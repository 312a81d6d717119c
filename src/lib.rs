//! taskhive: a durable job scheduler and load runner.
//!
//! The binary is a thin CLI over [`server::Node`]; everything else lives here so it can be
//! tested in-process. See ARCHITECTURE.md for the map.
#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod face_limits;
pub mod http;
mod json_number;
pub mod load;
pub mod metrics;
pub mod net;
pub mod pb;
pub mod periodic;
pub mod rpc;
pub mod scheduler;
pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls_verify;
