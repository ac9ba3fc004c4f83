//! Secrets on a developer's machine: from the environment, or generated once into the data dir.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine;

use crate::domain::error::{Error, Result};
use crate::ports::SecretSource;

/// Reads secret `NAME` from the environment variable `NAME`, else from `<data dir>/secrets/NAME`.
#[derive(Debug, Clone)]
pub struct LocalSecrets {
    dir: PathBuf,
}

impl LocalSecrets {
    /// Secrets of the data dir `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("secrets") }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[async_trait]
impl SecretSource for LocalSecrets {
    async fn secret(&self, name: &str) -> Result<String> {
        if !valid_name(name) {
            return Err(Error::internal(format!("invalid secret name {name:?}")));
        }
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            return Ok(value);
        }
        let path = self.dir.join(name);
        tokio::fs::read_to_string(&path).await.map(|s| s.trim().to_owned()).map_err(|e| {
            Error::internal(format!("secret {name} not found in the environment or {}: {e}", path.display()))
        })
    }
}

/// Reads `<data dir>/secrets/NAME`, or creates it with 32 random bytes (base64) readable only by
/// its owner. Used for the local token secret when `JWT_SECRET` is not set.
pub fn load_or_create_secret(data_dir: &Path, name: &str) -> Result<String> {
    if !valid_name(name) {
        return Err(Error::internal(format!("invalid secret name {name:?}")));
    }
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::internal(format!("cannot read {}: {e}", path.display())));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    // Write to a temporary file and rename, so a crash never leaves a half-written secret.
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(secret.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(dir.path(), "JWT_SECRET").unwrap();
        let again = load_or_create_secret(dir.path(), "JWT_SECRET").unwrap();
        assert_eq!(first, again);
        assert!(first.len() >= 40);
    }

    #[test]
    fn secret_names_cannot_escape_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_or_create_secret(dir.path(), "../x").is_err());
    }
}
