//! Adapters: the ports implemented on real infrastructure. The worker's own (ffmpeg, the AI
//! provider clients, the `local` provider) come with the `render` feature only.

pub mod aws;
pub mod embedded;
#[cfg(feature = "render")]
pub mod ffmpeg;
pub mod llm;
#[cfg(feature = "render")]
pub mod local_provider;
#[cfg(feature = "render")]
pub mod providers;
pub mod public_address;
pub mod webhook_sender;
