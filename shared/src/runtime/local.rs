//! `aivideo serve`: every role on one backend, in one process.

use std::sync::Arc;

use super::backend::{Role, open_aws_backend, open_backend};
use super::{JobConsumer, api, worker};
use crate::adapters::aws::AwsClients;
use crate::adapters::embedded::LocalMedia;
use crate::adapters::ffmpeg::Ffmpeg;
use crate::config::Config;
use crate::domain::error::Result;
use crate::http::AppState;

/// The whole product on one backend.
#[derive(Clone)]
pub struct Local {
    /// What the API's handlers reach.
    pub api: AppState,
    /// The in-process worker and its queue.
    pub jobs: JobConsumer,
    /// The embedded backend's media folder, whose signed links the local server answers.
    pub media: Option<Arc<LocalMedia>>,
}

/// Opens the configured backend and builds every role on it (`aivideo serve`).
pub async fn build_local(config: &Config) -> Result<Local> {
    let backend = open_backend(config, Role::Local).await?;
    local(config, &backend)
}

/// Every role on the AWS backend with clients already made (tests pass emulator clients).
pub async fn build_local_on_aws(config: &Config, clients: AwsClients) -> Result<Local> {
    let backend = open_aws_backend(config, clients, Role::Local).await?;
    local(config, &backend)
}

fn local(config: &Config, backend: &super::Backend) -> Result<Local> {
    Ok(Local {
        api: api(config, backend)?,
        jobs: worker(config, backend, Ffmpeg::configured())?,
        media: backend.local_media.clone(),
    })
}
