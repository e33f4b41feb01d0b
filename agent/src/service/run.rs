//! A whole agent run: enroll if needed, start the tunnel, the power sync and the event forwarder, and stop them in order.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use ironrack_common::tunnel::SecretString;
use tracing::{info, warn};

use super::{AgentService, EventForwarder};
use crate::bmc::sync::PowerSync;
use crate::bmc::{BmcPool, DriverOptions};
use crate::config::Config;
use crate::tunnel::{self, EnrollError, LinkState, RunError, Tunnel, TunnelConfig, identity};

/// Everything a run needs besides the config file's settings.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub config: Config,
    /// The one-time enrollment token; needed only while `data_dir` holds no
    /// identity.
    pub token: Option<SecretString>,
    pub driver: DriverOptions,
    pub backoff: tunnel::BackoffConfig,
}

impl AgentSettings {
    pub fn new(config: Config, token: Option<SecretString>) -> Self {
        AgentSettings {
            config,
            token,
            driver: DriverOptions::default(),
            backoff: tunnel::BackoffConfig::default(),
        }
    }
}

/// Why the agent stopped by itself or could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "{data_dir} holds no agent identity yet: pass --token (or set IRONRACK_AGENT_TOKEN) to enroll"
    )]
    TokenRequired { data_dir: PathBuf },
    #[error("enrolling with the controller at {controller} failed")]
    Enroll {
        controller: String,
        #[source]
        source: EnrollError,
    },
    #[error(transparent)]
    Tunnel(#[from] RunError),
}

/// Runs the agent until `shutdown` completes (then `Ok`) or the controller
/// refuses it for good (then `Err`). Sessions, the power sync and the tunnel
/// are closed either way.
pub async fn run(
    settings: AgentSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let cfg = &settings.config;
    match (identity::exists(&cfg.data_dir), &settings.token) {
        (Some(path), Some(_)) => warn!(
            identity = %path.display(),
            "this agent is already enrolled; ignoring the enrollment token"
        ),
        (Some(_), None) => {}
        (None, None) => {
            return Err(AgentError::TokenRequired {
                data_dir: cfg.data_dir.clone(),
            });
        }
        (None, Some(token)) => {
            let agent_id = tunnel::enroll(
                &cfg.controller,
                token.expose(),
                &cfg.region,
                &cfg.rack,
                &cfg.data_dir,
            )
            .await
            .map_err(|source| AgentError::Enroll {
                controller: cfg.controller.clone(),
                source,
            })?;
            info!(%agent_id, controller = %cfg.controller, region = %cfg.region,
                  rack = %cfg.rack, "enrolled");
        }
    }

    let pool = BmcPool::new(settings.driver);
    let (sync, events) = if cfg.power_sync.enabled {
        let (sync, events) = PowerSync::spawn(pool.clone(), cfg.power_sync.sync_config(), vec![]);
        (Some(sync), Some(events))
    } else {
        (None, None)
    };
    let service = Arc::new(AgentService::new(pool, settings.driver, sync));

    let mut tunnel_config = TunnelConfig::new(
        cfg.controller.clone(),
        cfg.data_dir.clone(),
        cfg.region.clone(),
        cfg.rack.clone(),
    );
    let networks: Vec<String> = cfg.bmc_networks.iter().map(|c| c.to_string()).collect();
    tunnel_config.bmc_networks = networks.clone();
    tunnel_config.backoff = settings.backoff;
    let tunnel = match Tunnel::start(tunnel_config, service.clone()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            service.shutdown().await;
            return Err(e.into());
        }
    };
    info!(controller = %cfg.controller, region = %cfg.region, rack = %cfg.rack,
          bmc_networks = ?networks, power_sync = cfg.power_sync.enabled,
          "agent running");
    let forwarder = events.map(|e| EventForwarder::spawn(tunnel.clone(), e));

    // Runs until the link stops by itself or `shutdown` completes, logging
    // each change of the link once.
    let mut state = tunnel.state();
    let watch_link = async {
        let mut was_connected = false;
        loop {
            let now = state.borrow_and_update().clone();
            match now {
                LinkState::Connected { agent_id } => {
                    info!(%agent_id, controller = %cfg.controller, "tunnel connected");
                    was_connected = true;
                }
                LinkState::Connecting if was_connected => {
                    warn!(controller = %cfg.controller, "tunnel lost; reconnecting");
                    was_connected = false;
                }
                LinkState::Connecting => {}
                LinkState::Stopped => return,
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = watch_link => {}
        _ = shutdown => info!("shutting down"),
    }

    if let Some(f) = forwarder {
        f.shutdown().await;
    }
    let tunnel = Arc::into_inner(tunnel).expect("the forwarder released the tunnel");
    let result = tunnel.shutdown().await;
    service.shutdown().await;
    result.map_err(AgentError::from)
}
