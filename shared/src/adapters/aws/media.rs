//! S3 as the media store: keys chosen by the server, downloads through presigned, expiring URLs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::domain::error::{Error, Result};
use crate::ports::{Clock, MediaStore, SignedUrl, SystemClock};

/// Stores media in one bucket.
#[derive(Clone)]
pub struct S3Media {
    client: aws_sdk_s3::Client,
    bucket: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for S3Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Media").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

impl S3Media {
    /// Media in `bucket`, its links signed by the system clock.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self::with_clock(client, bucket, Arc::new(SystemClock))
    }

    /// Media in `bucket`, its links signed at `clock`'s time and expiring `ttl` after it.
    pub fn with_clock(client: aws_sdk_s3::Client, bucket: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self { client, bucket: bucket.into(), clock }
    }

    /// When a link made now for `ttl` is signed, and when it stops working.
    fn presigning(&self, ttl: Duration) -> Result<(PresigningConfig, chrono::DateTime<chrono::Utc>)> {
        let now = self.clock.now();
        let expires_at = now + chrono::Duration::from_std(ttl).map_err(Error::internal)?;
        let config = PresigningConfig::builder()
            .start_time(std::time::SystemTime::from(now))
            .expires_in(ttl)
            .build()
            .map_err(Error::internal)?;
        Ok((config, expires_at))
    }

    /// A presigned PUT for `key` (for uploads the server hands out; the key is always the server's).
    pub async fn upload_url(&self, key: &str, content_type: &str, ttl: Duration) -> Result<SignedUrl> {
        let (config, expires_at) = self.presigning(ttl)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(config)
            .await
            .map_err(|e| super::aws_error("s3", e))?;
        Ok(SignedUrl { url: request.uri().to_owned(), expires_at })
    }
}

#[async_trait]
impl MediaStore for S3Media {
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<u64> {
        let size = tokio::fs::metadata(path).await.map_err(Error::internal)?.len();
        let body = ByteStream::from_path(path).await.map_err(Error::internal)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| super::aws_error("s3", e))?;
        Ok(size)
    }

    async fn signed_url(&self, key: &str, ttl: Duration) -> Result<SignedUrl> {
        let (config, expires_at) = self.presigning(ttl)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| super::aws_error("s3", e))?;
        Ok(SignedUrl { url: request.uri().to_owned(), expires_at })
    }

    async fn get_file(&self, key: &str, dest: &Path) -> Result<()> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| super::aws_error("s3", e))?;
        // Streamed to disk: clips can be large and the worker's memory is small.
        let mut body = object.body.into_async_read();
        let mut file = tokio::fs::File::create(dest).await.map_err(Error::internal)?;
        tokio::io::copy(&mut body, &mut file).await.map_err(Error::internal)?;
        Ok(())
    }
}
