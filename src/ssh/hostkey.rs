//! The server's Ed25519 host key: load it from `DIR/ssh_host_ed25519_key` (OpenSSH format),
//! or create it once with mode 0600 and a `.pub` beside it. Refuses key files others can read.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::PrivateKey;
use russh::keys::ssh_key::{Algorithm, AuthorizedKeys, HashAlg, LineEnding};

/// The file name inside the keys directory.
pub const KEY_FILE: &str = "ssh_host_ed25519_key";

/// Why the host key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("{path}: host key is readable by group or others (mode {mode:o}); fix with: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a usable OpenSSH private key: {message}")]
    Format { path: PathBuf, message: String },
}

/// What [`load_or_create`] found. The key itself stays inside `ssh` (only `ssh` imports russh);
/// the rest of the program passes this type around.
#[derive(Clone)]
pub struct HostKey {
    /// The private key russh signs the key exchange with.
    pub(crate) key: PrivateKey,
    /// True when the key was generated just now.
    pub created: bool,
    /// Where the key lives, for the start-up log.
    pub path: PathBuf,
}

impl HostKey {
    /// `SHA256:...`, as `ssh-keygen -lf` and OpenSSH's prompts show it.
    pub fn fingerprint(&self) -> String {
        self.key.public_key().fingerprint(HashAlg::Sha256).to_string()
    }

    /// The SSHFP DNS record (RFC 4255/6594/7479: algorithm 4 = Ed25519, type 2 = SHA-256) that
    /// lets visitors with `VerifyHostKeyDNS` check this key.
    pub fn sshfp_records(&self, host: &str) -> Vec<String> {
        let digest = self.key.public_key().fingerprint(HashAlg::Sha256);
        let hex: String = digest.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        vec![format!("{host}. IN SSHFP 4 2 {hex}")]
    }
}

/// Loads the host key from `dir`, creating `dir` and the key on first start.
pub fn load_or_create(dir: &Path) -> Result<HostKey, HostKeyError> {
    let path = dir.join(KEY_FILE);
    let io = |source| HostKeyError::Io { path: path.clone(), source };
    match std::fs::metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(HostKeyError::Permissions { path, mode });
            }
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let key = PrivateKey::from_openssh(&text)
                .map_err(|e| HostKeyError::Format { path: path.clone(), message: e.to_string() })?;
            Ok(HostKey { key, created: false, path })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let format = |e: &dyn std::fmt::Display| HostKeyError::Format {
                path: path.clone(),
                message: e.to_string(),
            };
            let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| format(&e))?;
            let pem = key.to_openssh(LineEnding::LF).map_err(|e| format(&e))?;
            let public = key.public_key().to_openssh().map_err(|e| format(&e))?;
            // create_new: two servers starting at once can't overwrite each other's key.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(pem.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            std::fs::write(path.with_extension("pub"), format!("{public}\n")).map_err(io)?;
            Ok(HostKey { key, created: true, path })
        }
        Err(e) => Err(io(e)),
    }
}

/// Reads public keys from an authorized_keys file with ssh-key's parser: `#` comments, blank
/// lines and options before the key type are understood (options are ignored; ssh-key reads a
/// line with options only when the key has a comment after it).
pub fn load_authorized_keys(path: &Path) -> Result<Vec<russh::keys::PublicKey>, HostKeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| HostKeyError::Io { path: path.to_path_buf(), source })?;
    AuthorizedKeys::new(&text)
        .enumerate()
        .map(|(n, entry)| {
            entry.map(|e| e.public_key().clone()).map_err(|e| HostKeyError::Format {
                path: path.to_path_buf(),
                message: format!("key {}: {e}", n + 1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sshbio-hostkey-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn created_once_then_reloaded_unchanged() {
        let dir = temp_dir("reload");
        let first = load_or_create(&dir).expect("create");
        assert!(first.created);
        let mode = std::fs::metadata(dir.join(KEY_FILE)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(dir.join("ssh_host_ed25519_key.pub").exists());
        let second = load_or_create(&dir).expect("load");
        assert!(!second.created);
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert!(first.fingerprint().starts_with("SHA256:"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn authorized_keys_with_options_and_comments_are_read() {
        let dir = temp_dir("authorized");
        std::fs::create_dir_all(&dir).expect("dir");
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key");
        let public = key.public_key().to_openssh().expect("openssh");
        let path = dir.join("authorized_keys");
        let text =
            format!("# presenters\n\n{public} laptop\nno-pty,from=\"10.0.0.0/8\" {public} ada@stage\n");
        std::fs::write(&path, text).expect("write");
        let keys = load_authorized_keys(&path).expect("parsed");
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.key_data() == key.public_key().key_data()));
        std::fs::write(&path, "ssh-ed25519 not-base64\n").expect("write");
        let message = load_authorized_keys(&path).expect_err("refused").to_string();
        assert!(message.contains("key 1"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn readable_key_is_refused_with_the_fix() {
        let dir = temp_dir("perms");
        load_or_create(&dir).expect("create");
        let path = dir.join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let message = load_or_create(&dir).err().expect("refused").to_string();
        assert!(message.contains("chmod 600"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
