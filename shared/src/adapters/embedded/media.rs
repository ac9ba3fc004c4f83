//! Media on a developer's machine: files under `<data dir>/media`, downloaded through links that
//! are signed (HMAC-SHA256 over the key and the expiry) and expire, like S3's presigned URLs.
//! Keys are chosen by the server and checked, so no key can leave the media folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::error::{Error, Result};
use crate::ports::{Clock, MediaStore, SignedUrl, SystemClock};

/// Longest key accepted.
const MAX_KEY_LEN: usize = 512;

/// Media files with signed, expiring links, whose expiry is read on the media's `Clock`.
#[derive(Clone)]
pub struct LocalMedia {
    root: PathBuf,
    public_base: String,
    signer: Hmac<Sha256>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMedia").field("root", &self.root).field("public_base", &self.public_base).finish()
    }
}

/// A key is one or more segments of letters, digits, `.`, `_` and `-`, never `.` or `..`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("gif") => "image/gif",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

impl LocalMedia {
    /// Removes the temporary files of copies a crashed process left half-written (`.<id>.tmp`,
    /// never under a key): at start-up, by the process that owns the data dir. How many.
    pub fn remove_partial_files(&self) -> usize {
        fn walk(dir: &Path, removed: &mut usize) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    walk(&path, removed);
                } else if name.starts_with('.') && name.ends_with(".tmp") && std::fs::remove_file(&path).is_ok() {
                    *removed += 1;
                }
            }
        }
        let mut removed = 0;
        walk(&self.root, &mut removed);
        removed
    }

    /// Media under `<data_dir>/media`, linked from `public_base` (e.g. `http://127.0.0.1:3000`),
    /// signed with a key derived from `secret`; links expire by the system clock.
    pub fn new(data_dir: &Path, public_base: &str, secret: &str) -> Result<Self> {
        Self::with_clock(data_dir, public_base, secret, Arc::new(SystemClock))
    }

    /// Like `new`, with links signed and checked on `clock`.
    pub fn with_clock(data_dir: &Path, public_base: &str, secret: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(Error::internal)?;
        derive.update(b"aivideo media link v1");
        let key = derive.finalize().into_bytes();
        Ok(Self {
            root: data_dir.join("media"),
            public_base: public_base.trim_end_matches('/').to_owned(),
            signer: Hmac::<Sha256>::new_from_slice(&key).map_err(Error::internal)?,
            clock,
        })
    }

    fn signature(&self, key: &str, expires: i64) -> String {
        let mut mac = self.signer.clone();
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(expires.to_string().as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The file behind a signed link, if the signature is right and the link has not expired.
    pub fn verify(&self, key: &str, expires: i64, signature: &str) -> Result<PathBuf> {
        let refused = || Error::Forbidden("This link is not valid, or it has expired.".into());
        if !valid_key(key) {
            return Err(refused());
        }
        let expected = self.signature(key, expires);
        // Compare in constant time: the signature is a secret-derived value.
        let same = expected.len() == signature.len()
            && expected.bytes().zip(signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same || expires < self.clock.now().timestamp() {
            return Err(refused());
        }
        Ok(self.root.join(key))
    }

    /// The download route, `GET /api/ai-video/media/{key}?expires=…&signature=…`, authorised by the
    /// link's signature alone (as a presigned URL is).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().route("/api/ai-video/media/{*key}", get(download)).with_state(self)
    }
}

async fn download(
    State(media): State<Arc<LocalMedia>>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let expires = get("expires").and_then(|e| e.parse::<i64>().ok()).unwrap_or(i64::MIN);
    let signature = get("signature").unwrap_or_default();
    let path = match media.verify(&key, expires, &signature) {
        Ok(path) => path,
        Err(e) => return e.into_response(),
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (StatusCode::OK, [(header::CONTENT_TYPE, content_type(&key))], Body::from(bytes)).into_response(),
        Err(_) => Error::NotFound.into_response(),
    }
}

#[async_trait]
impl MediaStore for LocalMedia {
    async fn put_file(&self, key: &str, path: &Path, _content_type: &str) -> Result<u64> {
        if !valid_key(key) {
            return Err(Error::internal(format!("invalid media key {key:?}")));
        }
        let target = self.root.join(key);
        let source = path.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let dir = target.parent().ok_or_else(|| Error::internal("media key without a folder"))?;
            std::fs::create_dir_all(dir).map_err(Error::internal)?;
            // Copy to a temporary name and rename: a crash never leaves half a file under the key.
            let tmp = dir.join(format!(".{}.tmp", ulid::Ulid::new()));
            let bytes = std::fs::read(&source).map_err(Error::internal)?;
            let mut file = std::fs::File::create(&tmp).map_err(Error::internal)?;
            file.write_all(&bytes).map_err(Error::internal)?;
            file.sync_all().map_err(Error::internal)?;
            std::fs::rename(&tmp, &target).map_err(Error::internal)?;
            Ok(bytes.len() as u64)
        })
        .await
        .map_err(Error::internal)?
    }

    async fn signed_url(&self, key: &str, ttl: Duration) -> Result<SignedUrl> {
        if !valid_key(key) {
            return Err(Error::internal(format!("invalid media key {key:?}")));
        }
        let expires_at = self.clock.now() + chrono::Duration::from_std(ttl).map_err(Error::internal)?;
        let expires = expires_at.timestamp();
        let signature = self.signature(key, expires);
        Ok(SignedUrl {
            url: format!("{}/api/ai-video/media/{key}?expires={expires}&signature={signature}", self.public_base),
            expires_at,
        })
    }

    async fn get_file(&self, key: &str, dest: &Path) -> Result<()> {
        if !valid_key(key) {
            return Err(Error::internal(format!("invalid media key {key:?}")));
        }
        tokio::fs::copy(self.root.join(key), dest).await.map_err(Error::internal)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_the_media_folder() {
        assert!(valid_key("stories/01J/preview.mp4"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\\b", "a b", "%2e%2e/x", "a/"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
