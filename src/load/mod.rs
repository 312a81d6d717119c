//! The load runner (Beetle::Server's model): saved load jobs, executed by concurrent swarms
//! against built-in HTTP task classes or remote classes served by scheduler workers, with a
//! JobExec report in Beetle's JSON shape plus HDR percentiles and a timeline.
//!
//! Pure parts (job validation, statistics, templates, the engine's scheduling) are separate
//! from the edges (HTTP client, scheduler dispatch, store, faces). See ARCHITECTURE.md.

pub mod agent_client;
pub mod agents;
pub mod allow;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod exec_request;
pub mod fields;
pub mod html_report;
pub mod http;
pub mod job;
pub mod remote;
pub mod report;
pub mod runner;
pub mod stages;
pub mod stats;
pub mod tasks_file;
pub mod template;
pub mod tls;

pub use config::LoadConfig;
pub use error::Error;
pub use runner::LoadRunner;
