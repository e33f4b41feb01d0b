//! Client TLS for the tunnel: CA pinning during enrollment, mutual TLS afterwards, QUIC transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ironrack_common::tunnel::{ALPN, Fingerprint};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use super::identity::AgentIdentity;

/// How often the agent sends a QUIC PING when otherwise idle. 4 s keeps
/// the UDP mappings of even short-lived NATs alive (RFC 4787 asks for 2 min
/// but many routers do 30 s or less) and, with the idle timeout below,
/// bounds how long a crashed controller goes unnoticed: the agent redials
/// within ~12 s of a `kill -9`. One tiny packet per agent every 4 s.
pub const KEEP_ALIVE: Duration = Duration::from_secs(4);
/// Silence after which the connection counts as dead: three missed
/// keepalives. Must match the controller's, as the smaller one applies.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12);
/// Controller requests an agent serves at once; further ones wait for QUIC
/// stream credit instead of piling up in memory.
pub const MAX_CONCURRENT_REQUESTS: u32 = 256;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the CA certificate is not a usable trust anchor")]
    TrustAnchor(#[source] rustls::Error),
    #[error("the client certificate or key was refused")]
    ClientCert(#[source] rustls::Error),
    #[error("TLS 1.3 is unavailable")]
    Version(#[source] rustls::Error),
    #[error("the server verifier could not be built")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("the TLS settings do not suit QUIC")]
    Quic(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's certificate chain did not contain the CA the token pins.
#[derive(Debug, thiserror::Error)]
#[error("the controller's certificate chain does not contain the CA pinned by the token ({pin})")]
pub struct PinMismatch {
    pub pin: Fingerprint,
}

/// Accepts a server only if its chain includes the CA whose SHA-256 the
/// enrollment token carries, and the leaf is valid under that CA for the
/// name dialled. The public WebPKI plays no part.
#[derive(Debug)]
pub(crate) struct PinnedCaVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    /// Set when a handshake failed on the pin, so the caller can report
    /// "wrong controller" rather than a generic TLS error.
    pub(crate) mismatched: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| Fingerprint::of_der(c) == self.pin)
        else {
            self.mismatched.store(true, Ordering::Relaxed);
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch { pin: self.pin })),
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn quic_client(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsSetupError> {
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(TlsSetupError::Quic)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("12 s fits a QUIC idle timeout"),
    ));
    t.max_concurrent_bidi_streams(MAX_CONCURRENT_REQUESTS.into());
    t.max_concurrent_uni_streams(0u32.into());
    t
}

/// Configuration for an enrollment connection: no client certificate, server
/// pinned to the token's CA fingerprint.
pub(crate) fn enroll_config(
    pin: Fingerprint,
) -> Result<(quinn::ClientConfig, Arc<AtomicBool>), TlsSetupError> {
    let mismatched = Arc::new(AtomicBool::new(false));
    let verifier = PinnedCaVerifier {
        pin,
        provider: provider(),
        mismatched: mismatched.clone(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsSetupError::Version)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok((quic_client(tls)?, mismatched))
}

/// Configuration for a tunnel connection: trusts only the stored controller
/// CA and presents the agent's client certificate.
pub fn tunnel_config(identity: &AgentIdentity) -> Result<quinn::ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(identity.ca.clone())
        .map_err(TlsSetupError::TrustAnchor)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(TlsSetupError::Verifier)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsSetupError::Version)?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .map_err(TlsSetupError::ClientCert)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    quic_client(tls)
}

/// Why the controller address could not be turned into a socket address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("controller address {addr:?} is not host:port")]
    Shape { addr: String },
    #[error("controller address {addr:?} does not resolve")]
    Lookup {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Resolves `host:port` (or `[v6]:port`); returns the address and the name
/// to verify the server certificate against.
pub(crate) async fn resolve(addr: &str) -> Result<(SocketAddr, String), ResolveError> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok((sa, sa.ip().to_string()));
    }
    let (host, _port) = addr.rsplit_once(':').ok_or_else(|| ResolveError::Shape {
        addr: addr.to_owned(),
    })?;
    let sa = tokio::net::lookup_host(addr)
        .await
        .map_err(|source| ResolveError::Lookup {
            addr: addr.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ResolveError::Lookup {
            addr: addr.to_owned(),
            source: std::io::Error::other("no addresses"),
        })?;
    Ok((sa, host.trim_matches(['[', ']']).to_owned()))
}

/// A client endpoint on an ephemeral port of the same family as `remote`.
pub(crate) fn client_endpoint(remote: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let local: SocketAddr = if remote.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(local)
}
