//! The hub's signing key on disk: made at first start, then loaded.
//!
//! `DIR/signing.key` holds the secret (mode 0600, written to a temporary file and
//! renamed, so a crash never leaves half a key); `DIR/signing.pub` the public key as
//! a minisign `.pub` file, for operators to hand out (the hub also serves it at
//! `GET /feeds/pubkey`). A key that exists is never replaced: a new key would break
//! every partner's pinned public key, so rotating is a deliberate act (move the files
//! away and restart). Neither the secret nor its file's text is ever logged.

use std::io::Write;
use std::path::{Path, PathBuf};

use sign::SigningKey;

/// The secret key's file name inside the key directory.
pub const SECRET_FILE: &str = "signing.key";
/// The public key's file name inside the key directory.
pub const PUBLIC_FILE: &str = "signing.pub";

/// The key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        source: sign::FormatError,
    },
    #[error("making a signing key: {0}")]
    Sign(#[from] sign::SignError),
}

/// Whether [`load_or_create`] made the key now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Loaded,
    Created,
}

/// Loads the signing key from `dir`, or makes one there if there is none.
pub fn load_or_create(dir: &Path) -> Result<(SigningKey, Origin), KeyError> {
    let secret = dir.join(SECRET_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    match std::fs::read_to_string(&secret) {
        Ok(text) => {
            let key = SigningKey::from_file(&text).map_err(|source| KeyError::Format {
                path: secret.clone(),
                source,
            })?;
            // The public file is derived; rewrite it if it is missing or stale.
            let public = dir.join(PUBLIC_FILE);
            let want = key.public().to_file();
            if std::fs::read_to_string(&public).ok().as_deref() != Some(want.as_str()) {
                write_atomic(&public, want.as_bytes(), 0o644).map_err(io(&public))?;
            }
            Ok((key, Origin::Loaded))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let key = SigningKey::generate()?;
            write_atomic(&secret, key.to_file().as_bytes(), 0o600).map_err(io(&secret))?;
            let public = dir.join(PUBLIC_FILE);
            write_atomic(&public, key.public().to_file().as_bytes(), 0o644).map_err(io(&public))?;
            Ok((key, Origin::Created))
        }
        Err(e) => Err(io(&secret)(e)),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory created
/// with `mode` (Unix), synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = options.open(&tmp)?;
        // The mode given to open() is reduced by the umask; set it exactly.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_loaded_with_a_private_mode() {
        let dir = std::env::temp_dir().join(format!("sharedefend-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (made, origin) = load_or_create(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(origin, Origin::Created);
        let (loaded, origin) = load_or_create(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(made.public(), loaded.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(mode, 0o600);
        }
        let public = std::fs::read_to_string(dir.join(PUBLIC_FILE)).unwrap_or_default();
        assert_eq!(public, made.public().to_file());
        std::fs::write(dir.join(SECRET_FILE), "garbage\n").unwrap_or_else(|e| panic!("{e}"));
        let err = load_or_create(&dir).map(|_| ()).map_err(|e| e.to_string());
        assert!(
            err.as_ref()
                .is_err_and(|e| e.contains("signing.key: secret key line 1")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
