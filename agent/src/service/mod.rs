//! The agent's application layer: answers the controller's tunnel requests with the BMC drivers and the power sync.
//!
//! [`AgentService`] is the tunnel's [`RequestHandler`]. BMC drivers come
//! from one [`BmcPool`] shared with the power sync, so a BMC never sees more
//! than one session from this agent for the machines it owns. The set of
//! owned machines is whatever the last `SyncMachines` said.
//!
//! # Deadlines
//!
//! The tunnel drops the handler's future when a request's deadline passes.
//! Reads are simply abandoned (the IPMI session thread finishes the one
//! request in flight and skips queued ones whose caller is gone). Power
//! actions and boot overrides are run on their own task instead, so a
//! cut-off never stops a multi-step action half way (a cycle emulated as off
//! then on must not leave the machine off); the next action on that BMC
//! waits for it, since power actions on one BMC are serialised.

mod convert;
mod events;
mod run;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use ironrack_common::rack::{
    BmcFailure, BmcFailureKind, BmcIdentity, BmcSpec, BootDevice, ManagedMachine, PowerAction,
    PowerReport, PowerState,
};
use ironrack_common::tunnel::{AgentRequest, AgentResponse, TunnelError};
use parking_lot::Mutex;
use tracing::{debug, info};

use crate::bmc::sync::{PowerSync, SyncMachine};
use crate::bmc::{BmcDriver, BmcError, BmcPool, BmcTarget, DriverOptions};
use crate::telemetry;
use crate::tunnel::RequestHandler;

pub use convert::{AddressError, target};
pub use events::{EventForwarder, EventSink, power_observed};
pub use run::{AgentError, AgentSettings, run};

/// Serves the controller's requests on this rack.
pub struct AgentService {
    pool: BmcPool,
    options: DriverOptions,
    sync: Option<PowerSync>,
    owned: Mutex<Owned>,
    /// Serialises `SyncMachines`, so two overlapping syncs cannot interleave
    /// their pool clean-up and leave the older set in force.
    syncing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Owned {
    /// BMC address → target of every machine the last sync named.
    targets: HashMap<String, BmcTarget>,
    /// Addresses whose drivers this service took from the pool.
    pooled: HashSet<String>,
}

impl AgentService {
    /// `sync` is `None` when the power sync is disabled; `SyncMachines` then
    /// only records which BMCs the agent owns.
    pub fn new(pool: BmcPool, options: DriverOptions, sync: Option<PowerSync>) -> AgentService {
        AgentService {
            pool,
            options,
            sync,
            owned: Mutex::default(),
            syncing: tokio::sync::Mutex::new(()),
        }
    }

    fn pooled_driver(&self, target: &BmcTarget) -> Result<BmcDriver, BmcError> {
        let driver = self.pool.driver(target)?;
        self.owned.lock().pooled.insert(target.address());
        Ok(driver)
    }

    /// Carries out a power action; see [`crate::bmc`] for what each does.
    pub async fn power(
        &self,
        pmid: &str,
        spec: &BmcSpec,
        action: PowerAction,
    ) -> Result<PowerReport, BmcFailure> {
        let started = Instant::now();
        let driver = match self.spec_driver(spec) {
            Ok(d) => d,
            Err(f) => return finish(pmid, spec, action.as_str(), started, Err(f)),
        };
        let (pmid, spec) = (pmid.to_owned(), spec.clone());
        // Own task, which also logs the outcome: see "Deadlines" above.
        let task = tokio::spawn(async move {
            let result = driver
                .power(convert::action(action))
                .await
                .map(|o| convert::report(&o))
                .map_err(|e| convert::failure(&e, spec.password.expose()));
            finish(&pmid, &spec, action.as_str(), started, result)
        });
        task.await.map_err(task_failed)?
    }

    /// The pooled driver for a machine's BMC.
    fn spec_driver(&self, spec: &BmcSpec) -> Result<BmcDriver, BmcFailure> {
        let target = target(spec).map_err(|e| e.to_failure())?;
        self.pooled_driver(&target)
            .map_err(|e| convert::failure(&e, spec.password.expose()))
    }

    pub async fn power_status(&self, pmid: &str, spec: &BmcSpec) -> Result<PowerState, BmcFailure> {
        let started = Instant::now();
        let result = match self.spec_driver(spec) {
            Ok(driver) => driver
                .power_status()
                .await
                .map(convert::state)
                .map_err(|e| convert::failure(&e, spec.password.expose())),
            Err(f) => Err(f),
        };
        finish(pmid, spec, "power_status", started, result)
    }

    /// Logs in to any BMC, owned or not, and reads what it is. A BMC of no
    /// owned machine (or with other credentials, as when an operator tests
    /// new ones) gets a driver of its own that closes its session when done,
    /// so probing never displaces an owned machine's pooled session.
    pub async fn identify(&self, spec: &BmcSpec) -> Result<BmcIdentity, BmcFailure> {
        let started = Instant::now();
        let result = async {
            let target = target(spec).map_err(|e| e.to_failure())?;
            let owned = self.owned.lock().targets.get(&target.address()) == Some(&target);
            let fail = |e: BmcError| convert::failure(&e, spec.password.expose());
            let driver = if owned {
                self.pool.driver(&target).map_err(fail)?
            } else {
                BmcDriver::new(target, self.options).map_err(fail)?
            };
            let result = driver.identify().await;
            if !owned {
                driver.shutdown().await;
            }
            result
                .map(|id| convert::identity(id, spec.kind))
                .map_err(fail)
        }
        .await;
        finish("-", spec, "identify", started, result)
    }

    pub async fn set_next_boot(
        &self,
        pmid: &str,
        spec: &BmcSpec,
        device: BootDevice,
    ) -> Result<(), BmcFailure> {
        let started = Instant::now();
        let driver = match self.spec_driver(spec) {
            Ok(d) => d,
            Err(f) => return finish(pmid, spec, "set_next_boot", started, Err(f)),
        };
        let (pmid, spec) = (pmid.to_owned(), spec.clone());
        // Own task, like power actions: a cut-off must not leave the caller
        // unsure whether the override will apply at the next boot.
        let task = tokio::spawn(async move {
            let result = driver
                .set_next_boot(convert::boot(device))
                .await
                .map_err(|e| convert::failure(&e, spec.password.expose()));
            finish(&pmid, &spec, "set_next_boot", started, result)
        });
        task.await.map_err(task_failed)?
    }

    /// Replaces the owned machines: the power sync follows the new set, and
    /// pooled sessions with BMCs no longer owned are closed.
    ///
    /// A request still running on such a BMC at that moment fails (its
    /// session closes under it); the controller has just said the machine
    /// is not ours, so that is the intended outcome.
    pub async fn sync_machines(&self, machines: Vec<ManagedMachine>) -> Result<(), BmcFailure> {
        let _one_at_a_time = self.syncing.lock().await;
        let mut targets = HashMap::with_capacity(machines.len());
        let mut sync = Vec::with_capacity(machines.len());
        let mut invalid = Vec::new();
        for m in machines {
            match target(&m.bmc) {
                Ok(t) => {
                    targets.insert(t.address(), t.clone());
                    sync.push(SyncMachine {
                        id: m.pmid,
                        target: t,
                    });
                }
                Err(e) => invalid.push(format!("{}: {e}", m.pmid)),
            }
        }
        let count = sync.len();
        // Pooled drivers come from two places: requests here (`pooled`) and
        // the power sync, which only ever reads owned machines (`targets`).
        let gone: Vec<String> = {
            let mut owned = self.owned.lock();
            let gone: HashSet<String> = owned
                .pooled
                .iter()
                .chain(owned.targets.keys())
                .filter(|a| !targets.contains_key(*a))
                .cloned()
                .collect();
            owned.pooled.retain(|a| targets.contains_key(a));
            owned.targets = targets;
            gone.into_iter().collect()
        };
        if let Some(s) = &self.sync {
            s.set_machines(sync).await.map_err(|e| BmcFailure {
                kind: BmcFailureKind::Protocol,
                message: format!("the agent's power sync is not running: {e}"),
            })?;
        }
        for address in &gone {
            self.pool.remove(address).await;
        }
        info!(
            machines = count,
            invalid = invalid.len(),
            sessions_closed = gone.len(),
            "owned machines replaced"
        );
        if invalid.is_empty() {
            return Ok(());
        }
        // The valid machines are in force; the answer names the rest.
        Err(BmcFailure {
            // As for one unusable address (see `AddressError::to_failure`).
            kind: BmcFailureKind::Unsupported,
            message: format!(
                "{} machine(s) skipped for unusable BMC addresses: {}",
                invalid.len(),
                invalid.join("; ")
            ),
        })
    }

    /// Closes every pooled BMC session and stops the power sync.
    pub async fn shutdown(&self) {
        if let Some(s) = &self.sync {
            s.shutdown().await;
        }
        self.pool.shutdown().await;
    }
}

/// A BMC task that panicked (the drivers catch the IPMI library's panics,
/// so this is a bug in the agent).
fn task_failed(e: tokio::task::JoinError) -> BmcFailure {
    BmcFailure {
        kind: BmcFailureKind::Protocol,
        message: format!("the BMC operation failed inside the agent: {e}"),
    }
}

/// One completion line per BMC request. This module is the agent's
/// application layer, so it logs at info like a binary would: this is the
/// line an operator looks for when a machine did not power on.
fn finish<T: std::fmt::Debug>(
    pmid: &str,
    spec: &BmcSpec,
    op: &'static str,
    started: Instant,
    result: Result<T, BmcFailure>,
) -> Result<T, BmcFailure> {
    let elapsed = started.elapsed();
    let failure = result.as_ref().err().map(|f| f.kind);
    telemetry::bmc_call(spec.kind, op, failure, elapsed);
    let elapsed_ms = elapsed.as_millis() as u64;
    match &result {
        Ok(value) => info!(pmid, bmc = %spec.address, kind = spec.kind.as_str(), op, elapsed_ms,
                           result = ?value, "bmc request done"),
        Err(f) => info!(pmid, bmc = %spec.address, kind = spec.kind.as_str(), op, elapsed_ms,
                        failure = ?f.kind, error = %f.message, "bmc request failed"),
    }
    result
}

impl RequestHandler for AgentService {
    async fn handle(&self, request: AgentRequest) -> Result<AgentResponse, TunnelError> {
        debug!(kind = request.kind(), "request");
        Ok(match request {
            AgentRequest::Ping => AgentResponse::Pong,
            AgentRequest::Echo(bytes) => AgentResponse::Echo(bytes),
            AgentRequest::Power { pmid, bmc, action } => {
                AgentResponse::Power(self.power(&pmid, &bmc, action).await)
            }
            AgentRequest::PowerStatus { pmid, bmc } => {
                AgentResponse::PowerStatus(self.power_status(&pmid, &bmc).await)
            }
            AgentRequest::Identify { bmc } => AgentResponse::Identity(self.identify(&bmc).await),
            AgentRequest::SetNextBoot { pmid, bmc, device } => {
                AgentResponse::Done(self.set_next_boot(&pmid, &bmc, device).await)
            }
            AgentRequest::SyncMachines { machines } => {
                AgentResponse::Done(self.sync_machines(machines).await)
            }
        })
    }
}
