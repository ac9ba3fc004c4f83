//! Adapters: the ports implemented on real infrastructure.

pub mod aws;
pub mod embedded;
pub mod ffmpeg;
pub mod llm;
pub mod local_provider;
pub mod providers;
