//! Sealing secrets at rest: ChaCha20-Poly1305 under a key file created on first start.
//!
//! A sealed value is `version (1) || nonce (12) || ciphertext || tag (16)`.
//! The associated data is the secret's context (for example
//! `pm/pm-0123456789ab/ipmi-password`), so a sealed value copied onto another
//! record or field does not open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const FORMAT_VERSION: u8 = 1;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read or create the seal key file {path}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the seal key file {path} must hold exactly {KEY_LEN} bytes, it holds {len}")]
    KeyLength { path: PathBuf, len: usize },
    #[error("the seal key file {path} is readable by others (mode {mode:o}); chmod 600 it")]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("sealed value for {context} does not open: wrong key, wrong record or damaged data")]
    Open { context: String },
}

/// Seals and opens secrets with the controller's key.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// Loads the key file, creating it (mode 0600) with a fresh random key
    /// when it does not exist yet.
    pub fn open_or_create(path: &Path) -> Result<Sealer, SealError> {
        let key_err = |source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        };
        let rng = SystemRandom::new();
        let bytes = match fs::read(path) {
            Ok(bytes) => {
                let mode = fs::metadata(path).map_err(key_err)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SealError::KeyPermissions {
                        path: path.to_owned(),
                        mode,
                    });
                }
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; KEY_LEN];
                rng.fill(&mut key).expect("the system random source failed");
                write_private_file(path, &key).map_err(key_err)?;
                key
            }
            Err(e) => return Err(key_err(e)),
        };
        if bytes.len() != KEY_LEN {
            return Err(SealError::KeyLength {
                path: path.to_owned(),
                len: bytes.len(),
            });
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("key length checked above");
        Ok(Sealer {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system random source failed");
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("sealing into a Vec cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let fail = || SealError::Open {
            context: context.to_owned(),
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_VERSION {
            return Err(fail());
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().map_err(|_| fail())?;
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| fail())?;
        Ok(plain.to_vec())
    }

    pub fn seal_str(&self, context: &str, plaintext: &str) -> Vec<u8> {
        self.seal(context, plaintext.as_bytes())
    }

    pub fn open_str(&self, context: &str, sealed: &[u8]) -> Result<String, SealError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| SealError::Open {
            context: context.to_owned(),
        })
    }
}

/// Writes a file only its owner can read, replacing it atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        let s = Sealer::open_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = s.seal_str("pm/a/ipmi-password", "hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            s.open_str("pm/a/ipmi-password", &sealed).unwrap(),
            "hunter2"
        );
        assert!(s.open_str("pm/b/ipmi-password", &sealed).is_err());
        let again = Sealer::open_or_create(&path).unwrap();
        assert_eq!(
            again.open_str("pm/a/ipmi-password", &sealed).unwrap(),
            "hunter2"
        );
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(s.open("pm/a/ipmi-password", &damaged).is_err());
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        Sealer::open_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Sealer::open_or_create(&path),
            Err(SealError::KeyPermissions { .. })
        ));
    }
}
