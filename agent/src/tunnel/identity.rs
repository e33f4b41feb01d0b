//! The agent's tunnel identity on disk: `agent.key` (0600), `agent.crt`, `ca.crt`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The agent's private key (PKCS#8 PEM), readable by its owner only.
pub const AGENT_KEY_FILE: &str = "agent.key";
/// The agent's client certificate (PEM), signed by the controller CA.
pub const AGENT_CERT_FILE: &str = "agent.crt";
/// The controller CA certificate (PEM) that the agent trusts.
pub const CA_CERT_FILE: &str = "ca.crt";

/// Why the identity could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path} is missing; enroll the agent first")]
    NotEnrolled { path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is readable by group or others (mode {mode:o}); make it 0600")]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("{path} does not hold one PEM {expected}")]
    BadPem {
        path: PathBuf,
        expected: &'static str,
    },
}

/// A loaded identity, ready for TLS.
pub struct AgentIdentity {
    pub key: PrivateKeyDer<'static>,
    pub cert: CertificateDer<'static>,
    pub ca: CertificateDer<'static>,
}

impl std::fmt::Debug for AgentIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentIdentity").finish_non_exhaustive()
    }
}

/// Whether any identity file exists in `data_dir`.
pub fn exists(data_dir: &Path) -> Option<PathBuf> {
    [AGENT_KEY_FILE, AGENT_CERT_FILE, CA_CERT_FILE]
        .iter()
        .map(|f| data_dir.join(f))
        .find(|p| p.exists())
}

fn read_pem(path: &Path, expected: &'static str) -> Result<Vec<u8>, IdentityError> {
    let text = fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IdentityError::NotEnrolled {
            path: path.to_owned(),
        },
        _ => IdentityError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    pem::parse(text)
        .ok()
        .filter(|p| p.tag() == expected)
        .map(pem::Pem::into_contents)
        .ok_or_else(|| IdentityError::BadPem {
            path: path.to_owned(),
            expected,
        })
}

/// Loads the identity from `data_dir`, refusing a key file that others can read.
pub fn load(data_dir: &Path) -> Result<AgentIdentity, IdentityError> {
    let key_path = data_dir.join(AGENT_KEY_FILE);
    if let Ok(meta) = fs::metadata(&key_path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyPermissions {
                path: key_path,
                mode,
            });
        }
    }
    let key = read_pem(&key_path, "PRIVATE KEY")?;
    let cert = read_pem(&data_dir.join(AGENT_CERT_FILE), "CERTIFICATE")?;
    let ca = read_pem(&data_dir.join(CA_CERT_FILE), "CERTIFICATE")?;
    Ok(AgentIdentity {
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        cert: CertificateDer::from(cert),
        ca: CertificateDer::from(ca),
    })
}

/// Writes `data` through a temporary file and a rename, with `mode` from
/// the file's creation on, so a key is never briefly world-readable.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let err = |source| IdentityError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(data).map_err(err)?;
    file.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// Stores a fresh identity in `data_dir`. The certificate goes last, so a
/// crash midway leaves no `agent.crt` without its key.
pub fn store(
    data_dir: &Path,
    key_pem: &str,
    cert_der: &[u8],
    ca_der: &[u8],
) -> Result<(), IdentityError> {
    fs::create_dir_all(data_dir).map_err(|source| IdentityError::Write {
        path: data_dir.to_owned(),
        source,
    })?;
    let cert_pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
    write_atomic(&data_dir.join(AGENT_KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_atomic(
        &data_dir.join(CA_CERT_FILE),
        cert_pem(ca_der).as_bytes(),
        0o644,
    )?;
    write_atomic(
        &data_dir.join(AGENT_CERT_FILE),
        cert_pem(cert_der).as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(IdentityError::NotEnrolled { .. })
        ));
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        store(dir.path(), &key.serialize_pem(), b"cert", b"ca").unwrap();
        let mode = fs::metadata(dir.path().join(AGENT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let id = load(dir.path()).unwrap();
        assert_eq!(id.cert.as_ref(), b"cert");
        assert_eq!(id.ca.as_ref(), b"ca");
        assert_eq!(id.key.secret_der(), key.serialized_der());

        fs::set_permissions(
            dir.path().join(AGENT_KEY_FILE),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(IdentityError::KeyPermissions { mode: 0o640, .. })
        ));
    }
}
