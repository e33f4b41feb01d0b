//! The agent ↔ controller tunnel protocol: messages, frame codec, enrollment tokens.
//!
//! # Shape of a tunnel
//!
//! An agent dials the controller over QUIC (ALPN [`ALPN`]) with mutual TLS.
//! Every exchange runs on its own bidirectional stream and is exactly one
//! frame each way: the opener writes one frame and finishes its side, the
//! other end answers with one frame and finishes. QUIC gives each stream its
//! own flow control, so one slow request never blocks another.
//!
//! Streams the **agent** opens start with an [`AgentOpen`] frame:
//!
//! * [`AgentOpen::Enroll`] on a connection *without* a client certificate:
//!   the agent presents an [`EnrollmentToken`]'s id and secret and its public
//!   key, and gets back an [`EnrollResponse`] with a client certificate signed
//!   by the controller's CA. That is all such a connection may do.
//! * [`AgentOpen::Hello`] as the first stream of a connection *with* a client
//!   certificate; the controller answers with [`ControllerHello`], accepting
//!   the agent or refusing it with a [`HelloRefusal`].
//! * [`AgentOpen::Event`] afterwards, one per [`AgentEvent`], answered by an
//!   [`EventAck`].
//!
//! Streams the **controller** opens carry one [`RequestFrame`] with a deadline
//! and are answered by one [`ResponseFrame`] with the same id.
//!
//! # Frames
//!
//! A frame is a big-endian `u32` payload length followed by a postcard
//! payload. Lengths above [`MAX_FRAME_LEN`] are refused from the header
//! alone, before anything is allocated ([`decode_frame_len`]).
//!
//! # Upgrades: new variants go at the end
//!
//! postcard encodes an enum as its variant index (a varint) followed by the
//! variant's fields, so reordering or removing a variant breaks every peer
//! that is not upgraded in lock step. **New variants are only ever appended.**
//! An agent one version behind then receives a request whose variant index it
//! does not know; [`decode_request`] reads the fixed header (id, deadline)
//! first, then peeks at the variant index, and reports
//! [`RequestDecodeError::UnknownVariant`] with the id, so the agent can answer
//! [`TunnelError::Unsupported`] on that one stream and keep serving others.
//! The same holds for events sent by a newer agent to an older controller
//! ([`decode_event`]) and for responses ([`decode_response`]).
//!
//! New *fields* on an existing struct are a protocol version bump
//! ([`PROTOCOL_VERSION`]), negotiated in the hello.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::rack::{
    BmcFailure, BmcIdentity, BmcSpec, BootDevice, ManagedMachine, PowerAction, PowerReport,
    PowerState,
};

/// Version of this protocol spoken by this build; sent in every hello.
pub const PROTOCOL_VERSION: u16 = 1;

/// Oldest peer protocol version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Largest frame payload in bytes (1 MiB). Bigger payloads (images, logs)
/// belong on raw streams, not in a frame.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Bytes of the length prefix in front of every frame.
pub const FRAME_HEADER_LEN: usize = 4;

/// TLS ALPN protocol id of the tunnel. Unversioned on purpose: the version is
/// negotiated in the hello, where a refusal can say what went wrong.
pub const ALPN: &[u8] = b"ironrack-tunnel";

/// TLS exporter label (RFC 5705) whose output binds an enrollment proof to
/// the TLS session it was sent on, so a proof cannot be replayed elsewhere.
pub const ENROLL_EXPORTER_LABEL: &[u8] = b"EXPORTER-ironrack-enroll-v1";

/// Length of the TLS exporter output used as enrollment channel binding.
pub const ENROLL_EXPORTER_LEN: usize = 32;

/// QUIC application close codes, so the peer can tell a revocation from a
/// restart without parsing the reason text.
pub mod close_code {
    /// Orderly shutdown (controller or agent stopping); reconnect later.
    pub const SHUTDOWN: u32 = 0;
    /// The agent has been revoked; reconnecting is pointless.
    pub const REVOKED: u32 = 1;
    /// The hello was refused; the reason was sent in [`super::ControllerHello`].
    pub const REFUSED: u32 = 2;
    /// The peer broke the protocol (bad first frame, timeout on it).
    pub const PROTOCOL: u32 = 3;
    /// A newer connection of the same agent replaced this one.
    pub const REPLACED: u32 = 4;
    /// An enrollment connection is done.
    pub const ENROLLED: u32 = 5;
}

// ---------------------------------------------------------------------------
// Identities

/// Id the controller gives an agent at enrollment: `agt-` and 12 lowercase hex
/// characters. It is the CN and DNS SAN of the agent's client certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    /// Prefix of every agent id.
    pub const PREFIX: &'static str = "agt-";

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, crate::ids::random_hex(12)))
    }

    /// Accepts only the shape [`AgentId::generate`] produces.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        let ok = rest.len() == 12
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a DER certificate: how a token pins the controller's CA and how
/// the controller recognises an agent certificate it issued.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let bytes = hex::decode(s).ok()?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Some(Self(out))
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// A string that must never reach a log: its `Debug` and `Display` print a
/// placeholder. Read it with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// ---------------------------------------------------------------------------
// Enrollment tokens

/// First dot-separated field of every token; bumped if the format changes.
pub const TOKEN_PREFIX: &str = "irt1";
/// Hex characters of a token id.
pub const TOKEN_ID_LEN: usize = 16;
/// Hex characters of a token secret (128 bits).
pub const TOKEN_SECRET_LEN: usize = 32;

/// A one-time enrollment token: `irt1.<ca-sha256-hex>.<id>.<secret>`.
///
/// The CA fingerprint lets an agent holding nothing but the token check that
/// it is talking to the real controller before it sends the secret (the
/// kubeadm/k3s scheme). The controller stores only a hash of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// SHA-256 of the controller CA certificate (DER).
    pub ca_fingerprint: Fingerprint,
    /// Public token id, used to find the token and safe to log.
    pub id: String,
    /// Secret part; never logged.
    pub secret: SecretString,
}

impl EnrollmentToken {
    /// A fresh token for a CA with the given fingerprint.
    pub fn generate(ca_fingerprint: Fingerprint) -> Self {
        Self {
            ca_fingerprint,
            id: crate::ids::random_hex(TOKEN_ID_LEN),
            secret: SecretString::new(crate::ids::random_hex(TOKEN_SECRET_LEN)),
        }
    }

    /// The full token text to hand to an operator.
    pub fn to_token_string(&self) -> String {
        format!(
            "{TOKEN_PREFIX}.{}.{}.{}",
            self.ca_fingerprint,
            self.id,
            self.secret.expose()
        )
    }
}

/// SHA-256 of a token secret, the only form in which a controller keeps it.
/// A plain hash suffices: the secret is 128 random bits, not a password.
pub fn token_secret_hash(secret: &str) -> [u8; 32] {
    Fingerprint::of_der(secret.as_bytes()).0
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("id", &self.id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Why a token string could not be parsed. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenParseError {
    #[error("enrollment token must look like {TOKEN_PREFIX}.<fingerprint>.<id>.<secret>")]
    Shape,
    #[error("enrollment token version {found:?} is not {TOKEN_PREFIX}")]
    Version { found: String },
    #[error("enrollment token CA fingerprint is not 64 hex characters")]
    Fingerprint,
    #[error("enrollment token id is not {TOKEN_ID_LEN} lowercase hex characters")]
    Id,
    #[error("enrollment token secret is not {TOKEN_SECRET_LEN} lowercase hex characters")]
    Secret,
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for EnrollmentToken {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [version, fp, id, secret] = parts.as_slice() else {
            return Err(TokenParseError::Shape);
        };
        if *version != TOKEN_PREFIX {
            return Err(TokenParseError::Version {
                found: (*version).to_owned(),
            });
        }
        let ca_fingerprint = Fingerprint::from_hex(fp).ok_or(TokenParseError::Fingerprint)?;
        if !is_lower_hex(id, TOKEN_ID_LEN) {
            return Err(TokenParseError::Id);
        }
        if !is_lower_hex(secret, TOKEN_SECRET_LEN) {
            return Err(TokenParseError::Secret);
        }
        Ok(Self {
            ca_fingerprint,
            id: (*id).to_owned(),
            secret: SecretString::new(*secret),
        })
    }
}

// ---------------------------------------------------------------------------
// Messages: connection opening

/// First frame of every agent-opened stream. New kinds go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentOpen {
    /// First stream of an authenticated connection.
    Hello(AgentHello),
    /// Only stream of an unauthenticated (enrollment) connection.
    Enroll(EnrollRequest),
    /// An event for the controller, answered by [`EventAck`].
    Event(EventFrame),
}

/// What an agent says about itself when it connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    pub protocol_version: u16,
    /// The agent build's version (crate version), for the operator's eyes.
    pub agent_version: String,
    pub region: String,
    pub rack: String,
    /// BMC networks this agent reaches, as CIDRs (`10.1.0.0/16`).
    pub bmc_networks: Vec<String>,
}

/// The controller's answer to [`AgentHello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerHello {
    pub protocol_version: u16,
    /// The id the controller knows this agent by (from its certificate).
    pub agent_id: Option<AgentId>,
    pub result: Result<(), HelloRefusal>,
}

/// Why the controller refused an agent's hello. New reasons go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HelloRefusal {
    #[error("agent {agent_id} has been revoked; enroll it again with a new token")]
    Revoked { agent_id: AgentId },
    #[error("the client certificate belongs to no agent this controller knows")]
    UnknownAgent,
    #[error("protocol version {agent} is not supported; the controller speaks {min} to {max}")]
    UnsupportedVersion { agent: u16, min: u16, max: u16 },
    #[error("a client certificate is required; enroll first")]
    ClientCertificateRequired,
    #[error("the controller failed: {message}")]
    Internal { message: String },
    #[error("agent was enrolled in region {enrolled:?} but says it is in {hello:?}")]
    RegionChanged { enrolled: String, hello: String },
}

impl HelloRefusal {
    /// Whether retrying the same connection later can succeed without an
    /// operator re-enrolling the agent.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Revoked { .. }
                | Self::UnknownAgent
                | Self::ClientCertificateRequired
                | Self::RegionChanged { .. }
        )
    }
}

// ---------------------------------------------------------------------------
// Messages: enrollment

/// An agent asking for a client certificate with a one-time token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub protocol_version: u16,
    pub token_id: String,
    pub token_secret: SecretString,
    pub region: String,
    pub rack: String,
    pub agent_version: String,
    /// The agent's ECDSA P-256 public key, SEC1 uncompressed point (65 bytes).
    pub public_key: Vec<u8>,
    /// ECDSA P-256 SHA-256 (ASN.1 DER) signature over
    /// [`enroll_proof_message`]: proves the agent holds the private key.
    pub proof: Vec<u8>,
}

/// The message an enrolling agent signs: token id, public key and TLS
/// channel binding ([`ENROLL_EXPORTER_LABEL`]), each length-prefixed.
pub fn enroll_proof_message(token_id: &str, public_key: &[u8], channel_binding: &[u8]) -> Vec<u8> {
    let mut msg = b"ironrack enroll proof v1\0".to_vec();
    for part in [token_id.as_bytes(), public_key, channel_binding] {
        msg.extend_from_slice(&(part.len() as u32).to_be_bytes());
        msg.extend_from_slice(part);
    }
    msg
}

/// The controller's answer to an [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub protocol_version: u16,
    pub result: Result<Enrolled, EnrollRefusal>,
}

/// A successful enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    pub agent_id: AgentId,
    /// The agent's client certificate (DER), signed by the controller CA.
    pub client_cert_der: Vec<u8>,
    /// The controller CA certificate (DER); its SHA-256 is the token's pin.
    pub ca_cert_der: Vec<u8>,
}

/// Why an enrollment was refused. New reasons go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EnrollRefusal {
    #[error("enrollment token {token_id} is unknown to this controller")]
    UnknownToken { token_id: String },
    #[error("enrollment token {token_id} has already been used")]
    TokenUsed { token_id: String },
    #[error("enrollment token {token_id} expired")]
    TokenExpired { token_id: String },
    #[error("enrollment token {token_id} has a wrong secret")]
    WrongSecret { token_id: String },
    #[error("enrollment token is for region {token_region:?}, not {requested:?}")]
    RegionMismatch {
        token_region: String,
        requested: String,
    },
    #[error("the public key is not an ECDSA P-256 point")]
    BadPublicKey,
    #[error("the proof of key possession does not verify")]
    BadProof,
    #[error("protocol version {agent} is not supported; the controller speaks {min} to {max}")]
    UnsupportedVersion { agent: u16, min: u16, max: u16 },
    #[error("the controller failed: {message}")]
    Internal { message: String },
}

// ---------------------------------------------------------------------------
// Messages: requests (controller → agent)

/// One request to an agent, alone on its own stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Controller-chosen id, echoed in the response.
    pub id: u64,
    /// Wall-clock deadline in Unix milliseconds; past it the agent stops
    /// working and answers [`TunnelError::DeadlineExceeded`].
    pub deadline_unix_ms: u64,
    pub body: AgentRequest,
}

/// What the controller asks an agent to do. **Append new variants only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentRequest {
    /// Liveness check; answered by [`AgentResponse::Pong`].
    Ping,
    /// Returns the bytes unchanged; answered by [`AgentResponse::Echo`].
    Echo(Vec<u8>),
    /// Act on a machine's power; answered by [`AgentResponse::Power`].
    Power {
        pmid: String,
        bmc: BmcSpec,
        action: PowerAction,
    },
    /// Read a machine's power state now; answered by
    /// [`AgentResponse::PowerStatus`].
    PowerStatus { pmid: String, bmc: BmcSpec },
    /// Log in to a BMC and read what it is; answered by
    /// [`AgentResponse::Identity`]. Also for BMCs of no machine yet.
    Identify { bmc: BmcSpec },
    /// One-time boot override for the next boot; answered by
    /// [`AgentResponse::Done`].
    SetNextBoot {
        pmid: String,
        bmc: BmcSpec,
        device: BootDevice,
    },
    /// The whole set of machines this agent owns, replacing the last one;
    /// the agent keeps their power state current and reports changes as
    /// [`AgentEvent::PowerObserved`]. Answered by [`AgentResponse::Done`].
    SyncMachines { machines: Vec<ManagedMachine> },
}

impl AgentRequest {
    /// Number of variants this build knows. Bump it with every new variant;
    /// the exhaustive match in [`AgentRequest::variant_index`] reminds you.
    pub const VARIANT_COUNT: u32 = 7;

    /// The postcard variant index of this request.
    pub fn variant_index(&self) -> u32 {
        match self {
            Self::Ping => 0,
            Self::Echo(_) => 1,
            Self::Power { .. } => 2,
            Self::PowerStatus { .. } => 3,
            Self::Identify { .. } => 4,
            Self::SetNextBoot { .. } => 5,
            Self::SyncMachines { .. } => 6,
        }
    }

    /// Short name for logs and spans.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Echo(_) => "echo",
            Self::Power { .. } => "power",
            Self::PowerStatus { .. } => "power_status",
            Self::Identify { .. } => "identify",
            Self::SetNextBoot { .. } => "set_next_boot",
            Self::SyncMachines { .. } => "sync_machines",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub id: u64,
    pub body: Result<AgentResponse, TunnelError>,
}

/// A successful answer. **Append new variants only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentResponse {
    Pong,
    Echo(Vec<u8>),
    Power(Result<PowerReport, BmcFailure>),
    PowerStatus(Result<PowerState, BmcFailure>),
    Identity(Result<BmcIdentity, BmcFailure>),
    Done(Result<(), BmcFailure>),
}

impl AgentResponse {
    /// Number of variants this build knows; see [`AgentRequest::VARIANT_COUNT`].
    pub const VARIANT_COUNT: u32 = 6;

    /// The postcard variant index of this response.
    pub fn variant_index(&self) -> u32 {
        match self {
            Self::Pong => 0,
            Self::Echo(_) => 1,
            Self::Power(_) => 2,
            Self::PowerStatus(_) => 3,
            Self::Identity(_) => 4,
            Self::Done(_) => 5,
        }
    }
}

/// A request that failed on the agent's side, as sent over the tunnel.
/// **Append new variants only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TunnelError {
    #[error("the agent does not support {kind} variant {variant}; upgrade the agent")]
    Unsupported { kind: String, variant: u32 },
    #[error("the request's deadline passed before the agent finished")]
    DeadlineExceeded,
    #[error("the frame could not be decoded: {reason}")]
    Malformed { reason: String },
    #[error("the agent could not carry out the request: {message}")]
    Failed { message: String },
    #[error("the agent is shutting down")]
    ShuttingDown,
}

impl TunnelError {
    /// Number of variants this build knows; see [`AgentRequest::VARIANT_COUNT`].
    pub const VARIANT_COUNT: u32 = 5;

    /// The postcard variant index of this error.
    pub fn variant_index(&self) -> u32 {
        match self {
            Self::Unsupported { .. } => 0,
            Self::DeadlineExceeded => 1,
            Self::Malformed { .. } => 2,
            Self::Failed { .. } => 3,
            Self::ShuttingDown => 4,
        }
    }
}

// ---------------------------------------------------------------------------
// Messages: events (agent → controller)

/// One event from an agent, alone on its own agent-opened stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame {
    /// Per-agent sequence number, owned by the agent's outbox.
    pub seq: u64,
    pub body: AgentEvent,
}

/// Something an agent tells the controller. **Append new variants only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentEvent {
    /// A message for the operator (e.g. "BMC network unreachable").
    Notice { message: String },
    /// The power sync read a machine's BMC: its state (None when the BMC
    /// did not answer), whether the BMC answered, and why not.
    PowerObserved {
        pmid: String,
        state: Option<PowerState>,
        connected: bool,
        error: Option<String>,
        observed_unix_ms: u64,
    },
}

impl AgentEvent {
    /// Number of variants this build knows; see [`AgentRequest::VARIANT_COUNT`].
    pub const VARIANT_COUNT: u32 = 2;

    /// The postcard variant index of this event.
    pub fn variant_index(&self) -> u32 {
        match self {
            Self::Notice { .. } => 0,
            Self::PowerObserved { .. } => 1,
        }
    }
}

/// The controller's acknowledgement of one [`EventFrame`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAck {
    pub seq: u64,
    /// `Err(Unsupported)` when the controller is older than the event kind.
    pub result: Result<(), TunnelError>,
}

// ---------------------------------------------------------------------------
// Frame codec (pure)

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("frame payload of {len} bytes does not decode")]
    Decode {
        len: usize,
        #[source]
        source: postcard::Error,
    },
    #[error("frame payload has {extra} trailing bytes")]
    TrailingBytes { extra: usize },
    #[error("message does not encode")]
    Encode(#[source] postcard::Error),
}

/// Encodes `msg` as one frame: length prefix and postcard payload.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; FRAME_HEADER_LEN];
    out = postcard::to_extend(msg, out).map_err(FrameError::Encode)?;
    let len = out.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    out[..FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Reads the payload length from a frame header, refusing oversize frames
/// before the caller allocates anything for the payload.
pub fn decode_frame_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(len)
}

/// Splits one complete frame off the front of `buf`: returns its payload and
/// the number of bytes consumed, `Ok(None)` if more bytes are needed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let len = decode_frame_len(*header)?;
    let end = FRAME_HEADER_LEN + len;
    Ok(buf.get(FRAME_HEADER_LEN..end).map(|p| (p, end)))
}

/// Decodes a whole buffer holding exactly one frame.
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8]) -> Result<T, FrameError> {
    match split_frame(buf)? {
        Some((payload, used)) if used == buf.len() => decode_payload(payload),
        Some((_, used)) => Err(FrameError::TrailingBytes {
            extra: buf.len() - used,
        }),
        None => Err(FrameError::Truncated {
            needed: buf
                .first_chunk::<FRAME_HEADER_LEN>()
                .map_or(FRAME_HEADER_LEN, |h| {
                    FRAME_HEADER_LEN + u32::from_be_bytes(*h) as usize
                }),
            available: buf.len(),
        }),
    }
}

/// Decodes a frame payload (without its length prefix), strictly: trailing
/// bytes are an error, since they mean the peer speaks another layout.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(|source| FrameError::Decode {
        len: payload.len(),
        source,
    })?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { extra: rest.len() });
    }
    Ok(msg)
}

/// Why a request payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RequestDecodeError {
    /// A well-formed request of a kind this build does not know: answer it
    /// with [`TunnelError::Unsupported`].
    #[error("request {id} has unknown kind (variant {variant})")]
    UnknownVariant {
        id: u64,
        deadline_unix_ms: u64,
        variant: u32,
    },
    /// Not even the header decodes; the stream should be reset. The id is
    /// known when the header decoded but the body did not.
    #[error("request payload does not decode")]
    Malformed {
        id: Option<u64>,
        #[source]
        source: FrameError,
    },
}

#[derive(Deserialize)]
struct RequestHeader {
    id: u64,
    deadline_unix_ms: u64,
}

/// Reads the varint variant index at the front of an enum encoding.
fn peek_variant(rest: &[u8]) -> Result<u32, FrameError> {
    postcard::take_from_bytes::<u32>(rest)
        .map(|(v, _)| v)
        .map_err(|source| FrameError::Decode {
            len: rest.len(),
            source,
        })
}

/// Decodes a [`RequestFrame`] payload, telling a request of an unknown
/// (newer) kind apart from garbage.
pub fn decode_request(payload: &[u8]) -> Result<RequestFrame, RequestDecodeError> {
    let (header, rest) = postcard::take_from_bytes::<RequestHeader>(payload).map_err(|source| {
        RequestDecodeError::Malformed {
            id: None,
            source: FrameError::Decode {
                len: payload.len(),
                source,
            },
        }
    })?;
    let malformed = |source| RequestDecodeError::Malformed {
        id: Some(header.id),
        source,
    };
    let variant = peek_variant(rest).map_err(malformed)?;
    if variant >= AgentRequest::VARIANT_COUNT {
        return Err(RequestDecodeError::UnknownVariant {
            id: header.id,
            deadline_unix_ms: header.deadline_unix_ms,
            variant,
        });
    }
    decode_payload(payload).map_err(malformed)
}

/// Why a response payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ResponseDecodeError {
    #[error("response {id} has unknown {kind} variant {variant}")]
    UnknownVariant {
        id: u64,
        kind: &'static str,
        variant: u32,
    },
    #[error("response payload does not decode")]
    Malformed(#[source] FrameError),
}

/// Decodes a [`ResponseFrame`] payload, telling an unknown (newer) response
/// or error kind apart from garbage.
pub fn decode_response(payload: &[u8]) -> Result<ResponseFrame, ResponseDecodeError> {
    let (id, rest) = postcard::take_from_bytes::<u64>(payload).map_err(|source| {
        ResponseDecodeError::Malformed(FrameError::Decode {
            len: payload.len(),
            source,
        })
    })?;
    let (tag, rest) = postcard::take_from_bytes::<u32>(rest).map_err(|source| {
        ResponseDecodeError::Malformed(FrameError::Decode {
            len: payload.len(),
            source,
        })
    })?;
    let variant = peek_variant(rest).map_err(ResponseDecodeError::Malformed)?;
    let (kind, known) = match tag {
        0 => ("response", AgentResponse::VARIANT_COUNT),
        _ => ("error", TunnelError::VARIANT_COUNT),
    };
    if tag <= 1 && variant >= known {
        return Err(ResponseDecodeError::UnknownVariant { id, kind, variant });
    }
    decode_payload(payload).map_err(ResponseDecodeError::Malformed)
}

/// Why an [`AgentOpen`] payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum OpenDecodeError {
    /// An event of a kind this build does not know: ack it with
    /// [`TunnelError::Unsupported`] so the agent can move on.
    #[error("event {seq} has unknown kind (variant {variant})")]
    UnknownEvent { seq: u64, variant: u32 },
    /// A stream kind this build does not know; reset the stream.
    #[error("agent stream has unknown kind (variant {variant})")]
    UnknownStream { variant: u32 },
    #[error("agent stream payload does not decode")]
    Malformed(#[source] FrameError),
}

/// Decodes the first frame of an agent-opened stream, telling unknown (newer)
/// stream and event kinds apart from garbage.
pub fn decode_open(payload: &[u8]) -> Result<AgentOpen, OpenDecodeError> {
    let decode_err = |source| {
        OpenDecodeError::Malformed(FrameError::Decode {
            len: payload.len(),
            source,
        })
    };
    let (open_variant, rest) = postcard::take_from_bytes::<u32>(payload).map_err(decode_err)?;
    match open_variant {
        0 | 1 => {}
        2 => {
            let (seq, rest) = postcard::take_from_bytes::<u64>(rest).map_err(decode_err)?;
            let variant = peek_variant(rest).map_err(OpenDecodeError::Malformed)?;
            if variant >= AgentEvent::VARIANT_COUNT {
                return Err(OpenDecodeError::UnknownEvent { seq, variant });
            }
        }
        variant => return Err(OpenDecodeError::UnknownStream { variant }),
    }
    decode_payload(payload).map_err(OpenDecodeError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(frame: &[u8]) -> &[u8] {
        &frame[FRAME_HEADER_LEN..]
    }

    fn sample_request() -> RequestFrame {
        RequestFrame {
            id: 42,
            deadline_unix_ms: 1_700_000_000_123,
            body: AgentRequest::Echo(b"hello".to_vec()),
        }
    }

    #[test]
    fn frames_round_trip() {
        let req = sample_request();
        let frame = encode_frame(&req).unwrap();
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(decode_frame::<RequestFrame>(&frame).unwrap(), req);
        assert_eq!(decode_request(payload(&frame)).unwrap(), req);

        let resp = ResponseFrame {
            id: 42,
            body: Err(TunnelError::Failed {
                message: "bmc said no".into(),
            }),
        };
        let frame = encode_frame(&resp).unwrap();
        assert_eq!(decode_response(payload(&frame)).unwrap(), resp);

        let open = AgentOpen::Hello(AgentHello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            region: "cn-bj2".into(),
            rack: "r1".into(),
            bmc_networks: vec!["10.1.0.0/16".into()],
        });
        let frame = encode_frame(&open).unwrap();
        assert_eq!(decode_open(payload(&frame)).unwrap(), open);
    }

    #[test]
    fn truncated_frames_are_reported() {
        let frame = encode_frame(&sample_request()).unwrap();
        for cut in 0..frame.len() {
            assert!(split_frame(&frame[..cut]).unwrap().is_none(), "cut {cut}");
            assert!(matches!(
                decode_frame::<RequestFrame>(&frame[..cut]),
                Err(FrameError::Truncated { .. })
            ));
        }
        // A header that promises more than the payload holds: the body is cut.
        let mut short = frame.clone();
        short.truncate(frame.len() - 1);
        let err = decode_payload::<RequestFrame>(payload(&short)).unwrap_err();
        assert!(matches!(err, FrameError::Decode { .. }), "{err:?}");
    }

    #[test]
    fn oversize_frames_are_refused_from_the_header() {
        let header = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(
            decode_frame_len(header),
            Err(FrameError::TooLarge { len, .. }) if len == MAX_FRAME_LEN + 1
        ));
        assert!(matches!(
            split_frame(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            decode_frame_len((MAX_FRAME_LEN as u32).to_be_bytes()).unwrap(),
            MAX_FRAME_LEN
        );

        let big = AgentRequest::Echo(vec![7; MAX_FRAME_LEN]);
        assert!(matches!(
            encode_frame(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        let garbage = [0xffu8; 16];
        assert!(matches!(
            decode_request(&garbage),
            Err(RequestDecodeError::Malformed { .. })
        ));
        assert!(decode_response(&garbage).is_err());
        assert!(matches!(
            decode_open(&[]),
            Err(OpenDecodeError::Malformed(_))
        ));
        let mut frame = encode_frame(&sample_request()).unwrap();
        frame.push(0);
        assert!(matches!(
            decode_frame::<RequestFrame>(&frame),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
        let mut p = payload(&encode_frame(&sample_request()).unwrap()).to_vec();
        p.push(0);
        assert!(matches!(
            decode_request(&p),
            Err(RequestDecodeError::Malformed { id: Some(42), .. })
        ));
    }

    /// A request from a newer controller: same header, a variant index past
    /// the ones this build knows, and fields this build cannot parse.
    #[test]
    fn unknown_request_variant_is_reported_with_its_id() {
        let mut p = postcard::to_allocvec(&(7u64, 99u64)).unwrap();
        p.extend(postcard::to_allocvec(&AgentRequest::VARIANT_COUNT).unwrap());
        p.extend([1, 2, 3]);
        match decode_request(&p) {
            Err(RequestDecodeError::UnknownVariant {
                id: 7,
                deadline_unix_ms: 99,
                variant,
            }) => assert_eq!(variant, AgentRequest::VARIANT_COUNT),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_response_and_event_variants_are_reported() {
        let mut p = postcard::to_allocvec(&(5u64, 0u32, AgentResponse::VARIANT_COUNT)).unwrap();
        p.push(0);
        assert!(matches!(
            decode_response(&p),
            Err(ResponseDecodeError::UnknownVariant {
                id: 5,
                kind: "response",
                ..
            })
        ));
        let p = postcard::to_allocvec(&(5u64, 1u32, TunnelError::VARIANT_COUNT + 3)).unwrap();
        assert!(matches!(
            decode_response(&p),
            Err(ResponseDecodeError::UnknownVariant { kind: "error", .. })
        ));
        let p = postcard::to_allocvec(&(2u32, 9u64, AgentEvent::VARIANT_COUNT)).unwrap();
        assert!(matches!(
            decode_open(&p),
            Err(OpenDecodeError::UnknownEvent { seq: 9, .. })
        ));
        let p = postcard::to_allocvec(&(3u32, 0u8)).unwrap();
        assert!(matches!(
            decode_open(&p),
            Err(OpenDecodeError::UnknownStream { variant: 3 })
        ));
    }

    /// The hand-kept variant counts must match what postcard actually writes;
    /// this fails when a variant is added without bumping the count.
    #[test]
    fn variant_counts_match_the_encoding() {
        fn first_varint<T: Serialize>(v: &T) -> u32 {
            let bytes = postcard::to_allocvec(v).unwrap();
            postcard::take_from_bytes::<u32>(&bytes).unwrap().0
        }
        let bmc = BmcSpec {
            kind: crate::rack::BmcKind::Ipmi,
            address: String::new(),
            username: String::new(),
            password: crate::Secret::default(),
            disable_certificate_verification: false,
        };
        let pmid = String::new();
        let requests = [
            AgentRequest::Ping,
            AgentRequest::Echo(vec![]),
            AgentRequest::Power {
                pmid: pmid.clone(),
                bmc: bmc.clone(),
                action: PowerAction::On,
            },
            AgentRequest::PowerStatus {
                pmid: pmid.clone(),
                bmc: bmc.clone(),
            },
            AgentRequest::Identify { bmc: bmc.clone() },
            AgentRequest::SetNextBoot {
                pmid,
                bmc,
                device: BootDevice::Pxe,
            },
            AgentRequest::SyncMachines { machines: vec![] },
        ];
        let responses = [
            AgentResponse::Pong,
            AgentResponse::Echo(vec![]),
            AgentResponse::Power(Err(BmcFailure {
                kind: crate::rack::BmcFailureKind::Timeout,
                message: String::new(),
            })),
            AgentResponse::PowerStatus(Ok(PowerState::On)),
            AgentResponse::Identity(Err(BmcFailure {
                kind: crate::rack::BmcFailureKind::Timeout,
                message: String::new(),
            })),
            AgentResponse::Done(Ok(())),
        ];
        let errors = [
            TunnelError::Unsupported {
                kind: String::new(),
                variant: 0,
            },
            TunnelError::DeadlineExceeded,
            TunnelError::Malformed {
                reason: String::new(),
            },
            TunnelError::Failed {
                message: String::new(),
            },
            TunnelError::ShuttingDown,
        ];
        let events = [
            AgentEvent::Notice {
                message: String::new(),
            },
            AgentEvent::PowerObserved {
                pmid: String::new(),
                state: None,
                connected: false,
                error: None,
                observed_unix_ms: 0,
            },
        ];
        assert_eq!(requests.len() as u32, AgentRequest::VARIANT_COUNT);
        assert_eq!(responses.len() as u32, AgentResponse::VARIANT_COUNT);
        assert_eq!(errors.len() as u32, TunnelError::VARIANT_COUNT);
        assert_eq!(events.len() as u32, AgentEvent::VARIANT_COUNT);
        for r in &requests {
            assert_eq!(first_varint(r), r.variant_index());
        }
        for r in &responses {
            assert_eq!(first_varint(r), r.variant_index());
        }
        for e in &errors {
            assert_eq!(first_varint(e), e.variant_index());
        }
        for e in &events {
            assert_eq!(first_varint(e), e.variant_index());
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_bad_shapes() {
        let fp = Fingerprint::of_der(b"ca");
        let token = EnrollmentToken::generate(fp);
        let text = token.to_token_string();
        assert!(text.starts_with("irt1."));
        let parsed: EnrollmentToken = text.parse().unwrap();
        assert_eq!(parsed, token);

        let good_id = "0123456789abcdef";
        let good_secret = "0123456789abcdef0123456789abcdef";
        let fp_hex = fp.to_hex();
        let cases = [
            ("irt1.x.y".to_owned(), TokenParseError::Shape),
            (
                format!("irt2.{fp_hex}.{good_id}.{good_secret}"),
                TokenParseError::Version {
                    found: "irt2".into(),
                },
            ),
            (
                format!("irt1.abcd.{good_id}.{good_secret}"),
                TokenParseError::Fingerprint,
            ),
            (
                format!("irt1.{fp_hex}.XYZ.{good_secret}"),
                TokenParseError::Id,
            ),
            (
                format!("irt1.{fp_hex}.{good_id}.short"),
                TokenParseError::Secret,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<EnrollmentToken>().unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let token = EnrollmentToken::generate(Fingerprint::of_der(b"ca"));
        let secret = token.secret.expose().to_owned();
        assert!(!format!("{token:?}").contains(&secret));
        let req = EnrollRequest {
            protocol_version: 1,
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            region: "r".into(),
            rack: "k".into(),
            agent_version: "v".into(),
            public_key: vec![],
            proof: vec![],
        };
        assert!(!format!("{req:?}").contains(&secret));
        assert!(!format!("{:?}", AgentOpen::Enroll(req)).contains(&secret));
    }

    #[test]
    fn agent_ids_have_one_shape() {
        let id = AgentId::generate();
        assert_eq!(AgentId::parse(id.as_str()), Some(id));
        assert!(AgentId::parse("agt-123").is_none());
        assert!(AgentId::parse("pm-0123456789ab").is_none());
    }

    #[test]
    fn proof_message_separates_its_parts() {
        assert_ne!(
            enroll_proof_message("ab", b"c", b""),
            enroll_proof_message("a", b"bc", b"")
        );
    }
}
