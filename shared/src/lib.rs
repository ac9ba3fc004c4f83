//! The domain crate every Lambda shares: the product's models and rules (`domain`), the ports the
//! use cases need (`ports`), the use cases themselves (`services`), the adapters that hold the
//! invariants (`adapters`), and the HTTP conventions of SPEC §6 (`http`).
//!
//! Dependencies point down only: `http` → `services` → `ports` → `domain`.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod failpoints;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod runtime;
pub mod services;
pub mod telemetry;

pub use domain::error::{Error, FieldErrors};
