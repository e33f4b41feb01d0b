//! BMC drivers (IPMI 2.0 lanplus via ipmi-rs, Redfish via reqwest) behind one
//! async API, [`BmcDriver`], with the power semantics the controller relies on.
//!
//! # Power semantics
//!
//! Every [`BmcDriver::power`] call reads the power state first, decides from
//! it (a pure [`plan`]) and then verifies by polling:
//!
//! | action  | machine off              | machine on                                   |
//! |---------|--------------------------|----------------------------------------------|
//! | `On`    | power on, wait for on    | nothing sent, success                        |
//! | `Off`   | nothing sent, success    | hard off, wait for off                       |
//! | `Soft`  | nothing sent, success    | ACPI soft off, wait for off (soft deadline)  |
//! | `Reset` | **power on**, wait for on| hard reset, wait for on                      |
//! | `Cycle` | **power on**, wait for on| power cycle, wait for on                     |
//!
//! - Reset and cycle of an off machine power it on: the caller wants the
//!   machine to boot, and an off machine has nothing to reset. This is the
//!   behaviour of most BMCs for cycle; for reset it is our choice.
//! - A BMC that lacks a command gets it emulated where that is safe: a
//!   missing restart or cycle becomes hard off, wait for off, on, wait for on
//!   (Redfish BMCs that do not list `ForceRestart`/`PowerCycle` in
//!   `ResetType@Redfish.AllowableValues`). Anything else is
//!   [`BmcError::Unsupported`].
//! - The waits poll every [`PowerTimeouts::poll_interval`] up to
//!   [`PowerTimeouts::hard`] (default 30 s) or, for soft off,
//!   [`PowerTimeouts::soft`] (default 120 s). A machine that does not get
//!   there returns [`BmcError::ActionDidNotComplete`] with the state last
//!   seen; the command is not resent. An OS that ignores soft off therefore
//!   fails once; escalating to `Off` is the caller's decision.
//! - Transient errors while polling (timeouts, unreachable) are tolerated
//!   until the deadline: BMCs are known to stall during power transitions.
//! - Power actions on one BMC are serialised; status reads may run between
//!   the steps of an action.
//!
//! # Sessions
//!
//! One driver holds at most one session with its BMC: IPMI runs every call
//! through one thread that owns the session (see [`ipmi`]); Redfish sends one
//! request at a time. [`BmcPool`] hands out one driver per BMC address so
//! that the power sync ([`sync::PowerSync`]) and on-demand actions share it.

pub mod error;
pub mod ipmi;
pub mod plan;
pub mod redfish;
pub mod sync;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::debug;

pub use error::BmcError;
pub use ipmi::IpmiOptions;
pub use redfish::RedfishOptions;
pub use types::{
    BmcEndpoint, BmcIdentity, BmcTarget, BmcType, BootDevice, CipherSuite, IPMI_DEFAULT_PORT,
    Password, PowerAction, PowerCommand, PowerOutcome, PowerState, PowerTimeouts,
};

use self::plan::Step;

/// Settings of a driver; every field has a default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverOptions {
    pub power: PowerTimeouts,
    pub ipmi: IpmiOptions,
    pub redfish: RedfishOptions,
}

enum Backend {
    Ipmi(ipmi::IpmiDriver),
    Redfish(Box<redfish::RedfishDriver>),
}

struct Inner {
    backend: Backend,
    address: String,
    bmc_type: BmcType,
    timeouts: PowerTimeouts,
    /// Serialises power actions on this BMC.
    action: Mutex<()>,
}

/// A driver for one BMC. Clones share the BMC's session.
#[derive(Clone)]
pub struct BmcDriver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BmcDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcDriver")
            .field("address", &self.inner.address)
            .field("bmc_type", &self.inner.bmc_type)
            .finish()
    }
}

impl BmcDriver {
    /// Makes a driver; nothing is sent to the BMC until the first call.
    /// Must be called within a tokio runtime.
    pub fn new(target: BmcTarget, options: DriverOptions) -> Result<Self, BmcError> {
        let address = target.address();
        let bmc_type = target.endpoint.bmc_type();
        let backend = match bmc_type {
            BmcType::Ipmi => Backend::Ipmi(ipmi::IpmiDriver::new(target, options.ipmi)?),
            BmcType::Redfish => Backend::Redfish(Box::new(redfish::RedfishDriver::new(
                target,
                options.redfish,
            )?)),
        };
        Ok(BmcDriver {
            inner: Arc::new(Inner {
                backend,
                address,
                bmc_type,
                timeouts: options.power,
                action: Mutex::new(()),
            }),
        })
    }

    pub fn address(&self) -> &str {
        &self.inner.address
    }

    pub fn bmc_type(&self) -> BmcType {
        self.inner.bmc_type
    }

    pub async fn power_status(&self) -> Result<PowerState, BmcError> {
        match &self.inner.backend {
            Backend::Ipmi(d) => d.power_status().await,
            Backend::Redfish(d) => d.power_status().await,
        }
    }

    /// Carries out a power action with the semantics in the module docs.
    pub async fn power(&self, action: PowerAction) -> Result<PowerOutcome, BmcError> {
        let _serial = self.inner.action.lock().await;
        let started = Instant::now();
        let initial = self.power_status().await?;
        let offered = match &self.inner.backend {
            Backend::Ipmi(_) => ipmi::OFFERED.to_vec(),
            Backend::Redfish(d) => d.offered().await?,
        };
        let steps =
            plan::plan(action, initial, &offered).map_err(|missing| BmcError::Unsupported {
                address: self.inner.address.clone(),
                op: format!("{action} (no {missing:?} command)"),
            })?;
        debug!(bmc = %self.inner.address, %action, ?initial, ?steps, "power plan");
        let mut commands = Vec::new();
        let mut state = initial;
        for step in steps {
            match step {
                Step::Send(command) => {
                    self.send(command).await?;
                    commands.push(command);
                }
                Step::WaitFor { state: want, soft } => {
                    let limit = if soft {
                        self.inner.timeouts.soft
                    } else {
                        self.inner.timeouts.hard
                    };
                    state = self.wait_for(action, want, limit).await?;
                }
            }
        }
        let outcome = PowerOutcome {
            action,
            initial,
            commands,
            final_state: state,
            elapsed: started.elapsed(),
        };
        debug!(bmc = %self.inner.address, %action, ?initial, final_state = ?state,
               sent = outcome.commands.len(), elapsed_ms = outcome.elapsed.as_millis() as u64,
               "power action done");
        Ok(outcome)
    }

    async fn send(&self, command: PowerCommand) -> Result<(), BmcError> {
        match &self.inner.backend {
            Backend::Ipmi(d) => d.send_power(command).await,
            Backend::Redfish(d) => d.send_power(command).await,
        }
    }

    async fn wait_for(
        &self,
        action: PowerAction,
        want: PowerState,
        limit: Duration,
    ) -> Result<PowerState, BmcError> {
        let started = Instant::now();
        let deadline = started + limit;
        let mut observed = None;
        loop {
            match self.power_status().await {
                Ok(s) if s == want => return Ok(s),
                Ok(s) => observed = Some(s),
                Err(e) if e.retryable() => {
                    debug!(bmc = %self.inner.address, error = %e, "power poll failed; polling on");
                }
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(BmcError::ActionDidNotComplete {
                    address: self.inner.address.clone(),
                    action,
                    waited: started.elapsed(),
                    // With no successful read at all the machine is where the
                    // plan started from: not `want`.
                    observed: observed.unwrap_or(match want {
                        PowerState::On => PowerState::Off,
                        PowerState::Off => PowerState::On,
                    }),
                });
            }
            tokio::time::sleep(self.inner.timeouts.poll_interval.min(deadline - now)).await;
        }
    }

    /// Sets a one-time boot override for the next boot.
    pub async fn set_next_boot(&self, device: BootDevice) -> Result<(), BmcError> {
        match &self.inner.backend {
            Backend::Ipmi(d) => d.set_next_boot(device).await,
            Backend::Redfish(d) => d.set_next_boot(device).await,
        }
    }

    pub async fn identify(&self) -> Result<BmcIdentity, BmcError> {
        match &self.inner.backend {
            Backend::Ipmi(d) => d.identify().await,
            Backend::Redfish(d) => d.identify().await,
        }
    }

    /// Closes the BMC session now (IPMI); later calls fail. Dropping the
    /// last clone closes it too, from the session thread.
    pub async fn shutdown(&self) {
        if let Backend::Ipmi(d) = &self.inner.backend {
            d.shutdown().await;
        }
    }
}

/// One driver per BMC address, shared by everyone who talks to that BMC, so
/// that there is never more than one session per BMC.
#[derive(Clone, Default)]
pub struct BmcPool {
    options: DriverOptions,
    drivers: Arc<std::sync::Mutex<HashMap<String, (BmcTarget, BmcDriver)>>>,
}

impl BmcPool {
    pub fn new(options: DriverOptions) -> Self {
        BmcPool {
            options,
            drivers: Arc::default(),
        }
    }

    /// The driver for `target`'s address. A target whose credentials or
    /// settings changed gets a new driver; the old one closes its session
    /// when its last user drops it.
    // TODO-correctness(#3): until then old and new driver may both hold a
    // session with the BMC for a moment.
    pub fn driver(&self, target: &BmcTarget) -> Result<BmcDriver, BmcError> {
        let address = target.address();
        let mut drivers = self.drivers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, driver)) = drivers.get(&address)
            && known == target
        {
            return Ok(driver.clone());
        }
        let driver = BmcDriver::new(target.clone(), self.options)?;
        drivers.insert(address, (target.clone(), driver.clone()));
        Ok(driver)
    }

    /// Forgets the BMC at `address` and closes its session.
    pub async fn remove(&self, address: &str) {
        let removed = self
            .drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
        if let Some((_, driver)) = removed {
            driver.shutdown().await;
        }
    }

    /// Closes every session.
    pub async fn shutdown(&self) {
        let all: Vec<_> = self
            .drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, (_, d))| d)
            .collect();
        for d in all {
            d.shutdown().await;
        }
    }
}
