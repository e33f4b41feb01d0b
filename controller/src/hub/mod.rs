//! The agent hub: the controller's QUIC endpoint that agents dial, enroll through and get requests on.
//!
//! [`Hub`] is a cheap handle; the accept loop and one task per connection
//! own the sockets. A connection without a client certificate may only
//! enroll ([`enroll`]); one with a certificate from our CA becomes a live
//! agent after its hello ([`session`]). Requests go out with [`Hub::call`],
//! one bidirectional stream each; events come in through [`Hub::take_events`].

mod enroll;
mod session;
pub mod store;
mod tls;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironrack_common::tunnel::{
    AgentEvent, AgentHello, AgentId, AgentRequest, AgentResponse, EnrollmentToken, FrameError,
    RequestFrame, ResponseDecodeError, TunnelError, close_code, decode_response, encode_frame,
    token_secret_hash,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::ca::{CaError, ControllerCa};
pub use store::{AgentRecord, ConsumeError, HubStore, MemoryHubStore, StoreError, TokenRecord};
pub use tls::{IDLE_TIMEOUT, TlsSetupError};
pub use wire::StreamError;

/// Events received but not yet taken by the consumer. When full, agents'
/// event streams wait (backpressure) instead of the hub buffering more.
pub const EVENT_QUEUE_DEPTH: usize = 1024;

/// How long [`Hub::shutdown`] waits for closed connections to drain.
pub const SHUTDOWN_DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// How long a new connection has to send its first frame (hello or enroll).
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// UDP address to listen on (`--tunnel-listen`).
    pub listen: SocketAddr,
    /// DNS names and IP addresses agents dial; they become the server
    /// certificate's SANs.
    pub server_names: Vec<String>,
    /// Where the CA key and certificate live.
    pub data_dir: PathBuf,
}

/// What the hub knows about one agent, live or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub id: AgentId,
    pub region: String,
    pub rack: String,
    pub bmc_networks: Vec<String>,
    pub agent_version: String,
    pub connected: bool,
    pub revoked: bool,
    /// Last completed hello (Unix seconds); `None` if it never connected.
    pub last_seen_unix_s: Option<u64>,
    /// Address of the live connection, if any.
    pub remote_addr: Option<SocketAddr>,
}

/// One event an agent sent, already acknowledged to the agent once queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEvent {
    pub agent_id: AgentId,
    pub seq: u64,
    pub event: AgentEvent,
}

/// Why a hub operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("agent {agent_id} is not connected")]
    AgentOffline { agent_id: AgentId },
    #[error("agent {agent_id} did not answer request {request_id} within {after:?}")]
    Timeout {
        agent_id: AgentId,
        request_id: u64,
        after: Duration,
    },
    #[error("agent {agent_id} failed request {request_id}")]
    Agent {
        agent_id: AgentId,
        request_id: u64,
        #[source]
        source: TunnelError,
    },
    #[error("the tunnel to agent {agent_id} failed during request {request_id}")]
    Link {
        agent_id: AgentId,
        request_id: u64,
        #[source]
        source: StreamError,
    },
    #[error("agent {agent_id} answered request {request_id} with an unusable response")]
    BadResponse {
        agent_id: AgentId,
        request_id: u64,
        #[source]
        source: ResponseDecodeError,
    },
    #[error("agent {agent_id} answered request {request_id} with the id {got}")]
    MismatchedResponse {
        agent_id: AgentId,
        request_id: u64,
        got: u64,
    },
    #[error("the request for agent {agent_id} cannot be sent")]
    Encode {
        agent_id: AgentId,
        #[source]
        source: FrameError,
    },
    #[error("no agent {agent_id}")]
    UnknownAgent { agent_id: AgentId },
    #[error("tunnel CA")]
    Ca(#[from] CaError),
    #[error("tunnel TLS setup")]
    Tls(#[from] TlsSetupError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HubError {
    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::AgentOffline { .. } | Self::Timeout { .. } | Self::Link { .. }
        )
    }

    /// The variant in snake_case, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::AgentOffline { .. } => "agent_offline",
            Self::Timeout { .. } => "timeout",
            Self::Agent { .. } => "agent",
            Self::Link { .. } => "link",
            Self::BadResponse { .. } => "bad_response",
            Self::MismatchedResponse { .. } => "mismatched_response",
            Self::Encode { .. } => "encode",
            Self::UnknownAgent { .. } => "unknown_agent",
            Self::Ca(_) => "ca",
            Self::Tls(_) => "tls",
            Self::Bind { .. } => "bind",
            Self::Store(_) => "store",
        }
    }
}

/// A connected agent.
struct LiveAgent {
    conn: quinn::Connection,
    hello: AgentHello,
    remote: SocketAddr,
}

struct Inner {
    endpoint: quinn::Endpoint,
    ca: ControllerCa,
    store: Arc<dyn HubStore>,
    live: Mutex<HashMap<AgentId, LiveAgent>>,
    next_request_id: AtomicU64,
    events_tx: mpsc::Sender<ReceivedEvent>,
    events_rx: Mutex<Option<mpsc::Receiver<ReceivedEvent>>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

/// Handle to a running hub; clones share it. Call [`Hub::shutdown`] to stop.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

pub(crate) fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Hub {
    /// Loads or creates the CA in `config.data_dir`, issues a server
    /// certificate for `config.server_names`, binds the endpoint and starts
    /// accepting agents.
    pub async fn start(config: HubConfig, store: Arc<dyn HubStore>) -> Result<Hub, HubError> {
        let ca = ControllerCa::load_or_create(&config.data_dir)?;
        let identity = ca.issue_server_identity(&config.server_names)?;
        let server_config = tls::server_config(ca.cert_der(), identity)?;
        let bind_err = |source| HubError::Bind {
            addr: config.listen,
            source,
        };
        // The stateless-reset key survives restarts: after a crash the new
        // process answers an agent's packets for the old connection with a
        // reset the agent recognises, so it redials at once instead of
        // waiting out its idle timeout (RFC 9000 §10.3).
        let reset_key = load_or_create_reset_key(&config.data_dir.join("tunnel-reset.key"))
            .map_err(bind_err)?;
        let endpoint_config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &reset_key,
        )));
        let socket = std::net::UdpSocket::bind(config.listen).map_err(bind_err)?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_DEPTH);
        let inner = Arc::new(Inner {
            endpoint,
            ca,
            store,
            live: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
            accept_task: Mutex::new(None),
        });
        let task = tokio::spawn(session::accept_loop(inner.clone()));
        *inner.accept_task.lock() = Some(task);
        tracing::debug!(
            listen = %inner.endpoint.local_addr().map_or(config.listen, |a| a),
            ca = %inner.ca.fingerprint(),
            "tunnel hub listening"
        );
        Ok(Hub { inner })
    }

    /// The address the endpoint is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .endpoint
            .local_addr()
            .expect("a bound UDP socket has an address")
    }

    /// The CA that signs agent certificates.
    pub fn ca(&self) -> &ControllerCa {
        &self.inner.ca
    }

    /// Creates a one-time enrollment token for `region`, valid for `ttl`.
    /// Only the hash of its secret is stored; the returned token is the only
    /// copy of the secret.
    pub fn create_token(&self, region: &str, ttl: Duration) -> Result<EnrollmentToken, HubError> {
        let token = EnrollmentToken::generate(self.inner.ca.fingerprint());
        let now = now_unix_s();
        self.inner.store.create_token(TokenRecord {
            id: token.id.clone(),
            secret_sha256: token_secret_hash(token.secret.expose()),
            region: region.to_owned(),
            created_unix_s: now,
            expires_unix_s: now + ttl.as_secs(),
            used_unix_s: None,
            used_by: None,
        })?;
        tracing::debug!(token_id = %token.id, region, ?ttl, "created enrollment token");
        Ok(token)
    }

    /// Every enrolled agent, with its live connection state.
    pub fn agents(&self) -> Result<Vec<AgentInfo>, HubError> {
        let records = self.inner.store.list_agents()?;
        let live = self.inner.live.lock();
        Ok(records
            .into_iter()
            .map(|r| {
                let conn = live.get(&r.id);
                AgentInfo {
                    connected: conn.is_some(),
                    remote_addr: conn.map(|l| l.remote),
                    agent_version: conn.map_or(r.agent_version, |l| l.hello.agent_version.clone()),
                    id: r.id,
                    region: r.region,
                    rack: r.rack,
                    bmc_networks: r.bmc_networks,
                    revoked: r.revoked,
                    last_seen_unix_s: r.last_seen_unix_s,
                }
            })
            .collect())
    }

    /// Whether `agent_id` has a live connection now.
    pub fn is_connected(&self, agent_id: &AgentId) -> bool {
        self.inner.live.lock().contains_key(agent_id)
    }

    /// Sends `request` to the agent on a new stream and waits for its answer
    /// at most `timeout`, which also becomes the request's deadline on the
    /// agent. Fails at once if the agent is not connected.
    pub async fn call(
        &self,
        agent_id: &AgentId,
        request: AgentRequest,
        timeout: Duration,
    ) -> Result<AgentResponse, HubError> {
        let conn = self
            .inner
            .live
            .lock()
            .get(agent_id)
            .map(|l| l.conn.clone())
            .ok_or_else(|| HubError::AgentOffline {
                agent_id: agent_id.clone(),
            })?;
        let request_id = self.inner.next_request_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!(
            "tunnel_call",
            agent_id = %agent_id,
            request_id,
            kind = request.kind()
        );
        let frame = encode_frame(&RequestFrame {
            id: request_id,
            deadline_unix_ms: now_unix_ms()
                .saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            body: request,
        })
        .map_err(|source| HubError::Encode {
            agent_id: agent_id.clone(),
            source,
        })?;
        let exchange = async {
            let link = |source| HubError::Link {
                agent_id: agent_id.clone(),
                request_id,
                source,
            };
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| link(StreamError::Connection(e)))?;
            wire::write_encoded(&mut send, &frame).await.map_err(link)?;
            let payload = wire::read_frame(&mut recv).await.map_err(link)?;
            let response = decode_response(&payload).map_err(|source| HubError::BadResponse {
                agent_id: agent_id.clone(),
                request_id,
                source,
            })?;
            if response.id != request_id {
                return Err(HubError::MismatchedResponse {
                    agent_id: agent_id.clone(),
                    request_id,
                    got: response.id,
                });
            }
            response.body.map_err(|source| HubError::Agent {
                agent_id: agent_id.clone(),
                request_id,
                source,
            })
        };
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, exchange)
            .instrument(span.clone())
            .await
        {
            Ok(result) => result,
            // Dropping the exchange drops its streams, which resets them, so
            // the agent stops working on an answer nobody waits for.
            Err(_) => Err(HubError::Timeout {
                agent_id: agent_id.clone(),
                request_id,
                after: timeout,
            }),
        };
        span.in_scope(|| {
            tracing::debug!(ok = result.is_ok(), elapsed = ?started.elapsed(), "tunnel call done")
        });
        result
    }

    /// Takes the stream of events agents send. There is one consumer; a second
    /// call returns `None`. Events are acknowledged to the agent once queued.
    // TODO-correctness(#3): ack after the consumer has applied the event, once
    // the sync layer owns durable application.
    pub fn take_events(&self) -> Option<mpsc::Receiver<ReceivedEvent>> {
        self.inner.events_rx.lock().take()
    }

    /// Revokes an agent: it is refused from now on and its live connection,
    /// if any, is closed at once.
    pub fn revoke(&self, agent_id: &AgentId) -> Result<(), HubError> {
        if !self.inner.store.revoke_agent(agent_id)? {
            return Err(HubError::UnknownAgent {
                agent_id: agent_id.clone(),
            });
        }
        if let Some(live) = self.inner.live.lock().remove(agent_id) {
            live.conn
                .close(close_code::REVOKED.into(), b"agent revoked");
        }
        tracing::debug!(%agent_id, "agent revoked");
        Ok(())
    }

    /// Closes every connection (agents see the close at once and redial) and
    /// the endpoint, then waits at most [`SHUTDOWN_DRAIN_LIMIT`] for the
    /// connections to drain. QUIC keeps a closed connection for 3 × PTO
    /// (RFC 9000 §10.2), seconds when RTT estimates are high; until then a
    /// new hub in the same process cannot bind the port. A process exit
    /// frees it at once.
    pub async fn shutdown(&self) {
        self.inner
            .endpoint
            .close(close_code::SHUTDOWN.into(), b"controller shutting down");
        self.inner.live.lock().clear();
        let started = std::time::Instant::now();
        let task = self.inner.accept_task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        // The close frames go out at once; waiting for the drain only keeps
        // the port busy for an in-process restart, so it is bounded.
        let drained = tokio::time::timeout(SHUTDOWN_DRAIN_LIMIT, self.inner.endpoint.wait_idle())
            .await
            .is_ok();
        tracing::debug!(elapsed = ?started.elapsed(), drained, "tunnel hub stopped");
    }
}

/// Reads the 32-byte stateless-reset key, creating it (mode 0600) on first start.
fn load_or_create_reset_key(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(key) if key.len() == 32 => Ok(key),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} must hold exactly 32 bytes", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                .map_err(|_| std::io::Error::other("the system random source failed"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::seal::write_private_file(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}
