//! The local default: everything in one data dir, no account needed.

mod events;
mod jobs;
mod media;
mod plan;
mod providers;
mod queue;
mod recovery;
mod secrets;
mod store;
mod usage;
mod webhooks;

pub use media::{LocalMedia, valid_key};
pub use queue::{EmbeddedQueue, MAX_RECEIVES};
pub use recovery::Recovered;
pub use secrets::{LocalSecrets, load_or_create_secret};
pub use store::EmbeddedStore;
