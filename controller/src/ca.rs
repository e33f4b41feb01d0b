//! The controller's own tunnel CA: created on first start, reloaded after, issues tunnel certificates.
//!
//! The CA key never leaves the controller's data dir (`tunnel-ca.key`, mode
//! 0600). Its certificate's SHA-256 is the fingerprint that enrollment tokens
//! carry, so agents can pin it before they trust anything else.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ironrack_common::tunnel::{AgentId, Fingerprint};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// File name of the CA private key (PKCS#8 PEM, mode 0600) in the data dir.
// TODO-security(#3): the CA key is protected by file mode alone; no
// passphrase, KMS or HSM, and no rotation procedure yet.
pub const CA_KEY_FILE: &str = "tunnel-ca.key";
/// File name of the CA certificate (PEM) in the data dir.
pub const CA_CERT_FILE: &str = "tunnel-ca.crt";

/// The CA's subject. It is rebuilt from these constants on reload (rcgen
/// cannot parse certificates without x509-parser), so changing them makes a
/// new CA — and every token and agent certificate issued before invalid.
const CA_COMMON_NAME: &str = "ironrack tunnel CA";
const CA_ORGANIZATION: &str = "ironrack";

/// How long the CA certificate is valid.
const CA_VALIDITY_DAYS: i64 = 20 * 365;
/// How long an agent client certificate is valid.
// TODO-security(#3): no renewal yet; agents keep their first certificate
// until it expires, and revocation rests on the store's revoked flag alone.
const AGENT_CERT_VALIDITY_DAYS: i64 = 5 * 365;
/// How long the tunnel server certificate is valid. It is issued afresh at
/// every start, so this only bounds a controller that never restarts.
const SERVER_CERT_VALIDITY_DAYS: i64 = 365;
/// Backdating of `not_before`, so a peer whose clock lags a little still
/// accepts a certificate issued a moment ago.
const CLOCK_SKEW_ALLOWANCE: time::Duration = time::Duration::hours(1);

/// Why the CA could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
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
    #[error("{path} exists but {missing} does not; restore it or remove both to make a new CA")]
    HalfPresent { path: PathBuf, missing: PathBuf },
    #[error("{path} is not a PEM certificate")]
    BadCertificate { path: PathBuf },
    #[error("{path} does not hold the key of certificate {cert}")]
    KeyMismatch { path: PathBuf, cert: PathBuf },
    #[error("{path} is not a usable private key")]
    BadKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("the agent public key is not an uncompressed ECDSA P-256 point")]
    BadPublicKey,
    #[error("certificate generation failed for {subject}")]
    Generate {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
}

/// The controller's tunnel certificate authority.
pub struct ControllerCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for ControllerCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerCa")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A server certificate chain (leaf, then CA) and its private key.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// An agent public key as the agent sends it: a SEC1 uncompressed P-256 point.
struct P256PublicKey<'a>(&'a [u8]);

impl PublicKeyData for P256PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = dn;
    // Path length 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source failed");
    // RFC 5280 §4.1.2.2: serials are positive integers.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + time::Duration::days(days);
}

/// Writes `data` to `path` through a temporary file and a rename, so a crash
/// never leaves half a key; `mode` applies from the file's creation on.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CaError> {
    let err = |source| CaError::Write {
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

fn read_to_string(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })
}

impl ControllerCa {
    /// Loads the CA from `data_dir`, or creates it there if neither file
    /// exists. Refuses a key file readable by anyone but its owner.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, CaError> {
        let key_path = data_dir.join(CA_KEY_FILE);
        let cert_path = data_dir.join(CA_CERT_FILE);
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => Self::load(&key_path, &cert_path),
            (false, false) => Self::create(data_dir, &key_path, &cert_path),
            (true, false) => Err(CaError::HalfPresent {
                path: key_path,
                missing: cert_path,
            }),
            (false, true) => Err(CaError::HalfPresent {
                path: cert_path,
                missing: key_path,
            }),
        }
    }

    fn create(data_dir: &Path, key_path: &Path, cert_path: &Path) -> Result<Self, CaError> {
        fs::create_dir_all(data_dir).map_err(|source| CaError::Write {
            path: data_dir.to_owned(),
            source,
        })?;
        let generate = |source| CaError::Generate {
            subject: CA_COMMON_NAME.to_owned(),
            source,
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = ca_params();
        validity(&mut params, CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(generate)?;
        write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
        tracing::debug!(path = %cert_path.display(), "created tunnel CA");
        Ok(Self::from_parts(key, cert.der().clone()))
    }

    fn load(key_path: &Path, cert_path: &Path) -> Result<Self, CaError> {
        let meta = fs::metadata(key_path).map_err(|source| CaError::Read {
            path: key_path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CaError::KeyPermissions {
                path: key_path.to_owned(),
                mode,
            });
        }
        let key =
            KeyPair::from_pem(&read_to_string(key_path)?).map_err(|source| CaError::BadKey {
                path: key_path.to_owned(),
                source,
            })?;
        let cert_pem = read_to_string(cert_path)?;
        let cert = pem::parse(&cert_pem)
            .ok()
            .filter(|p| p.tag() == "CERTIFICATE")
            .ok_or_else(|| CaError::BadCertificate {
                path: cert_path.to_owned(),
            })?;
        let cert_der = CertificateDer::from(cert.into_contents());
        // The certificate embeds the public key verbatim in its SPKI; a copy
        // of another controller's certificate would not contain ours.
        if !contains(cert_der.as_ref(), key.public_key_raw()) {
            return Err(CaError::KeyMismatch {
                path: key_path.to_owned(),
                cert: cert_path.to_owned(),
            });
        }
        tracing::debug!(path = %cert_path.display(), "loaded tunnel CA");
        Ok(Self::from_parts(key, cert_der))
    }

    fn from_parts(key: KeyPair, cert_der: CertificateDer<'static>) -> Self {
        let fingerprint = Fingerprint::of_der(&cert_der);
        Self {
            issuer: Issuer::new(ca_params(), key),
            cert_der,
            fingerprint,
        }
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate: what enrollment tokens pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Issues a fresh tunnel server certificate for `names` (DNS names or IP
    /// addresses the agents dial), with a fresh key that lives only in memory.
    pub fn issue_server_identity(&self, names: &[String]) -> Result<ServerIdentity, CaError> {
        let generate = |source| CaError::Generate {
            subject: names.join(","),
            source,
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(generate)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "ironrack tunnel server");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, SERVER_CERT_VALIDITY_DAYS);
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Issues a client certificate for `agent_id` over the agent's P-256
    /// public key (SEC1 uncompressed point). CN and DNS SAN are the agent id.
    pub fn issue_agent_cert(
        &self,
        agent_id: &AgentId,
        public_key: &[u8],
    ) -> Result<CertificateDer<'static>, CaError> {
        if public_key.len() != 65 || public_key[0] != 0x04 {
            return Err(CaError::BadPublicKey);
        }
        let generate = |source| CaError::Generate {
            subject: agent_id.to_string(),
            source,
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(
            agent_id.as_str().try_into().map_err(generate)?,
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, AGENT_CERT_VALIDITY_DAYS);
        let cert = params
            .signed_by(&P256PublicKey(public_key), &self.issuer)
            .map_err(generate)?;
        Ok(cert.der().clone())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ControllerCa::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ControllerCa::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
        assert_eq!(ca.cert_der(), again.cert_der());

        let other = tempfile::tempdir().unwrap();
        let other_ca = ControllerCa::load_or_create(other.path()).unwrap();
        assert_ne!(ca.fingerprint(), other_ca.fingerprint());
    }

    #[test]
    fn loose_key_permissions_and_mismatched_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        ControllerCa::load_or_create(dir.path()).unwrap();
        let key_path = dir.path().join(CA_KEY_FILE);
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ControllerCa::load_or_create(dir.path()),
            Err(CaError::KeyPermissions { mode: 0o644, .. })
        ));
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();

        let other = tempfile::tempdir().unwrap();
        ControllerCa::load_or_create(other.path()).unwrap();
        fs::copy(
            other.path().join(CA_CERT_FILE),
            dir.path().join(CA_CERT_FILE),
        )
        .unwrap();
        assert!(matches!(
            ControllerCa::load_or_create(dir.path()),
            Err(CaError::KeyMismatch { .. })
        ));

        fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();
        assert!(matches!(
            ControllerCa::load_or_create(dir.path()),
            Err(CaError::HalfPresent { .. })
        ));
    }

    #[test]
    fn agent_certs_need_a_p256_point() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ControllerCa::load_or_create(dir.path()).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let id = AgentId::generate();
        let cert = ca.issue_agent_cert(&id, key.public_key_raw()).unwrap();
        assert!(contains(cert.as_ref(), id.as_str().as_bytes()));
        assert!(contains(cert.as_ref(), key.public_key_raw()));
        assert!(matches!(
            ca.issue_agent_cert(&id, &[4u8; 10]),
            Err(CaError::BadPublicKey)
        ));
        let server = ca
            .issue_server_identity(&["127.0.0.1".into(), "tunnel.example".into()])
            .unwrap();
        assert_eq!(server.chain.len(), 2);
        assert_eq!(&server.chain[1], ca.cert_der());
    }
}
