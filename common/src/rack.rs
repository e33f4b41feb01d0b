//! What the controller asks a rack agent to do to a machine's BMC, and what comes back.
//!
//! These travel inside tunnel requests and events ([`crate::tunnel`]). BMC
//! credentials are sent to the owning agent only, over mutually
//! authenticated TLS; they never appear in an API answer or a log.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Which protocol a BMC speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BmcKind {
    /// IPMI 2.0 over LAN (RMCP+, "lanplus"), UDP 623 unless a port is given.
    Ipmi,
    /// Redfish over HTTPS.
    Redfish,
}

impl BmcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BmcKind::Ipmi => "ipmi",
            BmcKind::Redfish => "redfish",
        }
    }
}

/// How to reach and log in to one BMC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcSpec {
    pub kind: BmcKind,
    /// `IP`, `IP:port` or `[v6]:port`; for Redfish also `https://host[:port]`.
    pub address: String,
    pub username: String,
    pub password: Secret,
    /// Redfish only: accept any TLS certificate from this BMC.
    pub disable_certificate_verification: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    On,
    Off,
}

impl PowerState {
    /// As DescribePM shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A power action as the API names it (PowerControlPMV2's PowerAction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerAction {
    On,
    /// Hard power off.
    Off,
    /// ACPI soft off, verified; never retried forever.
    Soft,
    /// Hard reset; powers an off machine on.
    Reset,
    /// Off then on; powers an off machine on.
    Cycle,
}

impl PowerAction {
    pub const ALL: [PowerAction; 5] = [
        PowerAction::On,
        PowerAction::Off,
        PowerAction::Soft,
        PowerAction::Reset,
        PowerAction::Cycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Soft => "soft",
            PowerAction::Reset => "reset",
            PowerAction::Cycle => "cycle",
        }
    }

    /// Case-insensitive, as PowerControlPMV2 accepts it.
    pub fn parse(s: &str) -> Option<PowerAction> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootDevice {
    Pxe,
    Disk,
}

/// Why a BMC operation failed, in terms the controller maps to RetCodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BmcFailureKind {
    /// Nothing answers at the address (or the network refuses).
    Unreachable,
    /// The BMC refused the user name or password (or its privilege).
    AuthFailed,
    /// The BMC requires a cipher suite we do not speak (e.g. IPMI suite 17).
    UnsupportedCipherSuite,
    /// The BMC stopped answering mid-operation.
    Timeout,
    /// This BMC cannot do the operation at all.
    Unsupported,
    /// The BMC answered something we could not use.
    Protocol,
    /// The command was accepted but the machine never reached the state
    /// (for example a soft off the OS ignored).
    ActionDidNotComplete,
}

/// A failed BMC operation: its kind and a message that says exactly what
/// failed (never containing the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcFailure {
    pub kind: BmcFailureKind,
    pub message: String,
}

/// What a power action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerReport {
    /// The state read before acting.
    pub initial: PowerState,
    /// The state verified after acting.
    pub final_state: PowerState,
    /// Commands actually sent to the BMC (empty when nothing was needed).
    pub commands: Vec<String>,
    pub elapsed_ms: u64,
}

/// What a BMC says about itself (TestPMIPMIV2, DetectBMCTypeV2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcIdentity {
    pub kind: BmcKind,
    pub serial_number: String,
    pub manufacturer: String,
    pub product: String,
    pub firmware_version: String,
    /// One line for operators, e.g. "IPMI 2.0, firmware 1.2, ACME X11".
    pub bmc_info: String,
}

/// A machine an agent owns and keeps the power state of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedMachine {
    pub pmid: String,
    pub bmc: BmcSpec,
}
