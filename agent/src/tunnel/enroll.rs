//! Enrollment: trade a one-time token for a client certificate, trusting only the CA the token pins.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use ironrack_common::tunnel::{
    AgentId, AgentOpen, ENROLL_EXPORTER_LABEL, ENROLL_EXPORTER_LEN, EnrollRefusal, EnrollRequest,
    EnrollResponse, EnrollmentToken, Fingerprint, PROTOCOL_VERSION, TokenParseError, close_code,
    decode_payload, enroll_proof_message,
};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, SigningKey};
use tracing::Instrument;

use super::identity::{self, IdentityError};
use super::tls::{self, PinMismatch, ResolveError, TlsSetupError};
use super::wire::{self, StreamError};

/// How long an enrollment may take end to end.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why enrollment failed. Nothing is written to the data dir on failure.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is malformed")]
    Token(#[source] TokenParseError),
    #[error(
        "{path} exists: this agent is already enrolled; remove its identity files to enroll again"
    )]
    AlreadyEnrolled { path: PathBuf },
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot open a UDP socket")]
    Socket(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The server could not prove it holds the pinned CA: a wrong address
    /// or someone in the middle. The token secret was not sent.
    #[error("controller at {addr} is not the one the token names")]
    WrongController {
        addr: String,
        #[source]
        source: PinMismatch,
    },
    #[error("cannot connect to the controller at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: quinn::ConnectionError,
    },
    #[error("cannot connect to the controller at {addr}")]
    ConnectSetup {
        addr: String,
        #[source]
        source: quinn::ConnectError,
    },
    #[error("the enrollment exchange failed")]
    Stream(#[from] StreamError),
    #[error("the controller refused the enrollment")]
    Refused(#[source] EnrollRefusal),
    #[error("the controller's answer is unusable: {reason}")]
    BadAnswer { reason: &'static str },
    #[error("key generation or signing failed")]
    Key(#[source] rcgen::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("enrollment took longer than {0:?}")]
    Timeout(Duration),
}

/// Enrolls this agent: generates its key locally, connects to `controller`
/// (`host:port`) trusting only the CA `token` pins, presents the token and
/// stores `agent.key` (0600), `agent.crt` and `ca.crt` in `data_dir`.
/// Returns the id the controller assigned.
pub async fn enroll(
    controller: &str,
    token: &str,
    region: &str,
    rack: &str,
    data_dir: &Path,
) -> Result<AgentId, EnrollError> {
    let token: EnrollmentToken = token.parse().map_err(EnrollError::Token)?;
    if let Some(path) = identity::exists(data_dir) {
        return Err(EnrollError::AlreadyEnrolled { path });
    }
    let span = tracing::debug_span!("enroll", controller, token_id = %token.id, region, rack);
    let work = enroll_inner(controller, &token, region, rack, data_dir).instrument(span);
    tokio::time::timeout(ENROLL_TIMEOUT, work)
        .await
        .map_err(|_| EnrollError::Timeout(ENROLL_TIMEOUT))?
}

async fn enroll_inner(
    controller: &str,
    token: &EnrollmentToken,
    region: &str,
    rack: &str,
    data_dir: &Path,
) -> Result<AgentId, EnrollError> {
    let (addr, server_name) = tls::resolve(controller).await?;
    let (client_config, mismatched) = tls::enroll_config(token.ca_fingerprint)?;
    let endpoint = tls::client_endpoint(addr).map_err(EnrollError::Socket)?;
    let connecting = endpoint
        .connect_with(client_config, addr, &server_name)
        .map_err(|source| EnrollError::ConnectSetup {
            addr: controller.to_owned(),
            source,
        })?;
    let conn = match connecting.await {
        Ok(conn) => conn,
        Err(source) => {
            let error = if mismatched.load(Ordering::Relaxed) {
                EnrollError::WrongController {
                    addr: controller.to_owned(),
                    source: PinMismatch {
                        pin: token.ca_fingerprint,
                    },
                }
            } else {
                EnrollError::Connect {
                    addr: controller.to_owned(),
                    source,
                }
            };
            tracing::warn!(error = %error, "enrollment refused: controller not verified");
            return Err(error);
        }
    };
    let result = exchange(&conn, token, region, rack, data_dir).await;
    conn.close(close_code::ENROLLED.into(), b"enrollment done");
    // Let the close reach the controller; it is waiting for it.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

async fn exchange(
    conn: &quinn::Connection,
    token: &EnrollmentToken,
    region: &str,
    rack: &str,
    data_dir: &Path,
) -> Result<AgentId, EnrollError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(EnrollError::Key)?;
    let mut binding = [0u8; ENROLL_EXPORTER_LEN];
    conn.export_keying_material(&mut binding, ENROLL_EXPORTER_LABEL, b"")
        .map_err(|_| EnrollError::BadAnswer {
            reason: "TLS exporter unavailable",
        })?;
    let public_key = key.public_key_raw().to_vec();
    let proof = key
        .sign(&enroll_proof_message(&token.id, &public_key, &binding))
        .map_err(EnrollError::Key)?;
    let request = AgentOpen::Enroll(EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        token_id: token.id.clone(),
        token_secret: token.secret.clone(),
        region: region.to_owned(),
        rack: rack.to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        public_key: public_key.clone(),
        proof,
    });
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| EnrollError::Stream(StreamError::Connection(e)))?;
    wire::write_frame(&mut send, &request).await?;
    let payload = wire::read_frame(&mut recv).await?;
    let response: EnrollResponse =
        decode_payload(&payload).map_err(|e| EnrollError::Stream(StreamError::Frame(e)))?;
    let enrolled = match response.result {
        Ok(enrolled) => enrolled,
        Err(refusal) => {
            tracing::warn!(reason = %refusal, "enrollment refused by the controller");
            return Err(EnrollError::Refused(refusal));
        }
    };
    // The handshake already proved the CA; these guard against a controller
    // bug handing out the wrong files.
    if Fingerprint::of_der(&enrolled.ca_cert_der) != token.ca_fingerprint {
        return Err(EnrollError::BadAnswer {
            reason: "returned CA certificate does not match the token",
        });
    }
    if !enrolled
        .client_cert_der
        .windows(public_key.len())
        .any(|w| w == public_key.as_slice())
    {
        return Err(EnrollError::BadAnswer {
            reason: "returned certificate is not for our key",
        });
    }
    identity::store(
        data_dir,
        &key.serialize_pem(),
        &enrolled.client_cert_der,
        &enrolled.ca_cert_der,
    )?;
    tracing::debug!(agent_id = %enrolled.agent_id, "enrolled");
    Ok(enrolled.agent_id)
}
