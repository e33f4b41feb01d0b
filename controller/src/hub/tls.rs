//! TLS 1.3 and QUIC transport settings of the hub's server endpoint.

use std::sync::Arc;
use std::time::Duration;

use ironrack_common::tunnel::ALPN;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;

use crate::ca::ServerIdentity;

/// How long a connection may be silent before it is considered dead. Agents
/// send keepalives every 4 s (see the agent's tunnel config), so 12 s is
/// three missed keepalives: a dead rack shows as offline within 12 s, a
/// crashed controller is noticed by its agents as fast, and a brief loss of
/// two packets does not flap the link.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12);

/// Agent-opened streams (hello, events) that may be open at once per agent.
/// Events are small and acked quickly; 32 leaves room for bursts.
const MAX_AGENT_STREAMS: u32 = 32;

/// Per-stream and per-connection receive windows. Frames are at most 1 MiB
/// and agents send small events, so modest windows keep the memory a slow
/// agent can pin on the controller bounded (1000 agents × window).
const STREAM_RECEIVE_WINDOW: u32 = 256 * 1024;
const CONNECTION_RECEIVE_WINDOW: u32 = 1024 * 1024;
const SEND_WINDOW: u64 = 2 * 1024 * 1024;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the CA certificate is not a usable trust anchor")]
    TrustAnchor(#[source] rustls::Error),
    #[error("the client certificate verifier could not be built")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("the server certificate or TLS settings were refused")]
    Config(#[source] rustls::Error),
    #[error("the TLS settings do not suit QUIC")]
    Quic(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The QUIC server configuration: TLS 1.3 only, server chain (leaf + CA),
/// client certificates optional at the TLS layer but, when present, required
/// to chain to our CA — a certificate from a foreign CA fails the handshake.
pub(crate) fn server_config(
    ca_der: &rustls::pki_types::CertificateDer<'static>,
    identity: ServerIdentity,
) -> Result<quinn::ServerConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(ca_der.clone())
        .map_err(TlsSetupError::TrustAnchor)?;
    // Unauthenticated clients may only enroll; the hub enforces that per
    // connection, after the handshake.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(TlsSetupError::Verifier)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsSetupError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .map_err(TlsSetupError::Config)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // No 0-RTT: requests must not be replayable.
    tls.max_early_data_size = 0;
    let quic =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(TlsSetupError::Quic)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("12 s fits a QUIC idle timeout"),
    ));
    // The agent sends the keepalives: it is the side behind NAT whose
    // mapping must be refreshed, and it saves 1000 timers here.
    t.keep_alive_interval(None);
    t.max_concurrent_bidi_streams(MAX_AGENT_STREAMS.into());
    // Console byte streams will use bidi streams the controller opens.
    t.max_concurrent_uni_streams(0u32.into());
    t.stream_receive_window(STREAM_RECEIVE_WINDOW.into());
    t.receive_window(CONNECTION_RECEIVE_WINDOW.into());
    t.send_window(SEND_WINDOW);
    t
}
