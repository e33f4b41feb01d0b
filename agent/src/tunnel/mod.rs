//! The agent's end of the tunnel: enrollment, then one outbound QUIC connection kept up for good.
//!
//! [`enroll`] runs once per rack. [`Tunnel::start`] then dials the
//! controller with mutual TLS, says hello, and serves the controller's
//! requests through a [`RequestHandler`], one QUIC stream each, within each
//! request's deadline. When the link drops it reconnects with capped
//! exponential backoff and jitter ([`backoff`]), so a controller restart
//! needs nobody on site. It stops by itself only when the controller says
//! the agent is revoked or otherwise permanently refused.

pub mod backoff;
mod enroll;
pub mod identity;
mod link;
pub mod tls;
mod wire;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ironrack_common::tunnel::{
    AgentEvent, AgentId, AgentOpen, AgentRequest, AgentResponse, EventAck, EventFrame,
    HelloRefusal, TunnelError, decode_payload,
};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use backoff::BackoffConfig;
pub use enroll::{EnrollError, enroll};
pub use identity::IdentityError;
pub use tls::{IDLE_TIMEOUT, KEEP_ALIVE, MAX_CONCURRENT_REQUESTS, ResolveError, TlsSetupError};
pub use wire::StreamError;

/// How long [`Tunnel::send_event`] waits for the controller's ack.
pub const EVENT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the controller's requests. Implementations own the real work
/// (BMC power, installs, ...); the tunnel enforces deadlines around them.
pub trait RequestHandler: Send + Sync + 'static {
    fn handle(
        &self,
        request: AgentRequest,
    ) -> impl Future<Output = Result<AgentResponse, TunnelError>> + Send;
}

/// Where and as whom the agent connects.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// Controller tunnel address, `host:port`.
    pub controller: String,
    /// Holds `agent.key`, `agent.crt`, `ca.crt` from [`enroll`].
    pub data_dir: PathBuf,
    pub region: String,
    pub rack: String,
    /// BMC networks (CIDRs) this agent reaches, announced in the hello.
    pub bmc_networks: Vec<String>,
    /// Reported in the hello; defaults to this crate's version.
    pub agent_version: String,
    pub backoff: BackoffConfig,
}

impl TunnelConfig {
    /// A config with default version and backoff.
    pub fn new(
        controller: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        region: impl Into<String>,
        rack: impl Into<String>,
    ) -> Self {
        Self {
            controller: controller.into(),
            data_dir: data_dir.into(),
            region: region.into(),
            rack: rack.into(),
            bmc_networks: Vec::new(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            backoff: BackoffConfig::default(),
        }
    }
}

/// The state of the link, as seen through [`Tunnel::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Dialling, or waiting to dial again.
    Connecting,
    /// Hello accepted; requests are being served.
    Connected { agent_id: AgentId },
    /// Stopped: shut down, or refused for good (see [`RunError`]).
    Stopped,
}

/// Why the tunnel stopped by itself.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the tunnel identity cannot be loaded")]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("the controller refused this agent for good")]
    Refused(#[source] HelloRefusal),
    #[error("the controller revoked this agent; enroll it again with a new token")]
    Revoked,
    #[error("the tunnel task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Why an event could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the tunnel is not connected")]
    Offline,
    #[error("event {seq} was not acked within {EVENT_ACK_TIMEOUT:?}")]
    Timeout { seq: u64 },
    #[error("sending event {seq} failed")]
    Stream {
        seq: u64,
        #[source]
        source: StreamError,
    },
    #[error("the controller acked event {got} for event {seq}")]
    MismatchedAck { seq: u64, got: u64 },
    #[error("the controller refused event {seq}")]
    Refused {
        seq: u64,
        #[source]
        source: TunnelError,
    },
}

/// State shared by the handle and the link task.
pub(crate) struct Shared {
    pub(crate) config: TunnelConfig,
    pub(crate) conn: Mutex<Option<quinn::Connection>>,
    pub(crate) state: watch::Sender<LinkState>,
}

/// Handle to a running tunnel.
pub struct Tunnel {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Tunnel {
    /// Loads the identity from `config.data_dir` and starts the link task.
    /// Fails at once if the agent is not enrolled.
    pub fn start<H: RequestHandler>(
        config: TunnelConfig,
        handler: Arc<H>,
    ) -> Result<Tunnel, RunError> {
        let identity = identity::load(&config.data_dir)?;
        let client_config = tls::tunnel_config(&identity)?;
        let (state, _) = watch::channel(LinkState::Connecting);
        let shared = Arc::new(Shared {
            config,
            conn: Mutex::new(None),
            state,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(link::run_link(
            shared.clone(),
            client_config,
            handler,
            shutdown_rx,
        ));
        Ok(Tunnel {
            shared,
            shutdown,
            task,
        })
    }

    /// Watches the link state.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.shared.state.subscribe()
    }

    /// Sends one event and waits for the controller's ack. `seq` belongs to
    /// the caller's outbox; resending after a failure is the caller's choice.
    pub async fn send_event(&self, seq: u64, event: AgentEvent) -> Result<(), EventError> {
        let conn = self.shared.conn.lock().clone().ok_or(EventError::Offline)?;
        let span = tracing::debug_span!("agent_event", seq);
        let exchange = async {
            let stream = |source| EventError::Stream { seq, source };
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| stream(StreamError::Connection(e)))?;
            let frame = AgentOpen::Event(EventFrame { seq, body: event });
            wire::write_frame(&mut send, &frame).await.map_err(stream)?;
            let payload = wire::read_frame(&mut recv).await.map_err(stream)?;
            let ack: EventAck = decode_payload(&payload).map_err(|e| stream(e.into()))?;
            if ack.seq != seq {
                return Err(EventError::MismatchedAck { seq, got: ack.seq });
            }
            ack.result
                .map_err(|source| EventError::Refused { seq, source })
        };
        tokio::time::timeout(
            EVENT_ACK_TIMEOUT,
            tracing::Instrument::instrument(exchange, span),
        )
        .await
        .map_err(|_| EventError::Timeout { seq })?
    }

    /// Closes the connection and stops reconnecting.
    pub async fn shutdown(self) -> Result<(), RunError> {
        let _ = self.shutdown.send(true);
        self.task.await.map_err(RunError::Task)?
    }

    /// Waits until the tunnel stops by itself (revoked or refused for good).
    pub async fn join(self) -> Result<(), RunError> {
        self.task.await.map_err(RunError::Task)?
    }
}

/// Runs the tunnel until it is refused for good: [`Tunnel::start`] then
/// [`Tunnel::join`], for a binary with nothing else to do with the handle.
pub async fn run<H: RequestHandler>(config: TunnelConfig, handler: Arc<H>) -> Result<(), RunError> {
    Tunnel::start(config, handler)?.join().await
}
