//! Scheduling: the pure state machine ([`core`]), the actor that drives it ([`actor`]),
//! its clock, job model and error type.

pub mod actor;
pub mod backend;
pub mod clock;
pub mod core;
pub mod durable;
pub mod error;
pub mod job;
pub mod job_log;
pub mod kept;
pub mod limits;
pub mod list;
pub mod local;
pub mod locks;
pub mod schedule;
pub mod schedule_driver;
pub mod settings;
pub mod spilled;
pub mod stored;
pub mod submit;
pub mod table;
pub mod timer;
pub mod trace;
pub mod worker_channel;
pub mod write;

pub use actor::SchedulerHandle;
pub use error::{Error, Stale};
