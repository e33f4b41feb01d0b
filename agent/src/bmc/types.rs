//! The vocabulary of the BMC drivers: targets, credentials, power states and identities.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default IPMI-over-LAN port (RMCP, UDP 623; IPMI 2.0 section 13.1).
pub const IPMI_DEFAULT_PORT: u16 = 623;

/// Whether a machine's chassis has power, as its BMC reports it.
///
/// Redfish's transitional states are reported as the state being left
/// (`PoweringOn` is `Off`, `PoweringOff` is `On`) so that a wait for a state
/// ends only once the BMC says it has been reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    On,
    Off,
}

/// What the caller asks of a machine's power. See the module docs for what
/// each does on a machine that is already on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    /// Power on.
    On,
    /// Hard power off, without asking the OS.
    Off,
    /// Ask the OS to shut down (ACPI soft-off) and wait for power to go off.
    Soft,
    /// Hard reset (warm); on an off machine, power on.
    Reset,
    /// Power off, then on; on an off machine, power on.
    Cycle,
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerAction::On => "power on",
            PowerAction::Off => "power off",
            PowerAction::Soft => "soft power off",
            PowerAction::Reset => "reset",
            PowerAction::Cycle => "power cycle",
        })
    }
}

/// The device for a one-time boot override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootDevice {
    Pxe,
    Disk,
}

/// Which protocol a BMC speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BmcType {
    Ipmi,
    Redfish,
}

impl BmcType {
    /// `"ipmi"` or `"redfish"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BmcType::Ipmi => "ipmi",
            BmcType::Redfish => "redfish",
        }
    }
}

/// What a BMC says about itself and the machine it manages.
// TODO-correctness(#3): move to `common` once the machines API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcIdentity {
    pub bmc_type: BmcType,
    /// The machine's serial number (IPMI: FRU 0 product, else board serial;
    /// Redfish: `ComputerSystem.SerialNumber`).
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// The BMC firmware version, when the BMC reports one.
    pub firmware_version: Option<String>,
    /// One line for operators: firmware and protocol versions, ids.
    pub bmc_info: String,
}

/// IPMI 2.0 RMCP+ cipher suites (IPMI 2.0 table 22-20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum CipherSuite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    #[default]
    Suite3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128. Not implemented by
    /// ipmi-rs 0.6; asking for it fails with `UnsupportedCipherSuite`.
    Suite17,
}

impl CipherSuite {
    /// The suite's number, as ipmitool's `-C` takes it.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 3,
            CipherSuite::Suite17 => 17,
        }
    }
}

/// How to reach a BMC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BmcEndpoint {
    /// IPMI 2.0 over LAN (lanplus), UDP.
    Ipmi {
        host: String,
        port: u16,
        cipher_suite: CipherSuite,
    },
    /// Redfish over HTTPS (HTTP is accepted for labs).
    Redfish {
        /// `https://host[:port]`, without a path.
        base_url: String,
        /// Accept any certificate. BMCs ship self-signed ones.
        // TODO-security(#3): pin the BMC's certificate on first use instead.
        disable_certificate_verification: bool,
        /// The ComputerSystem's id (the last segment of its URI); needed
        /// when the BMC manages more than one system.
        system_id: Option<String>,
    },
}

impl BmcEndpoint {
    /// An IPMI endpoint on the default port with cipher suite 3.
    pub fn ipmi(host: impl Into<String>) -> Self {
        BmcEndpoint::Ipmi {
            host: host.into(),
            port: IPMI_DEFAULT_PORT,
            cipher_suite: CipherSuite::Suite3,
        }
    }

    pub fn bmc_type(&self) -> BmcType {
        match self {
            BmcEndpoint::Ipmi { .. } => BmcType::Ipmi,
            BmcEndpoint::Redfish { .. } => BmcType::Redfish,
        }
    }

    /// The address as errors and logs name it: `ipmi://host:port` or the
    /// Redfish base URL.
    pub fn address(&self) -> String {
        match self {
            BmcEndpoint::Ipmi { host, port, .. } if host.contains(':') => {
                format!("ipmi://[{host}]:{port}")
            }
            BmcEndpoint::Ipmi { host, port, .. } => format!("ipmi://{host}:{port}"),
            BmcEndpoint::Redfish { base_url, .. } => base_url.trim_end_matches('/').to_string(),
        }
    }
}

/// A BMC password. It never shows in `Debug` or `Display`, so it cannot leak
/// into logs or error messages by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The secret itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything needed to talk to one BMC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BmcTarget {
    pub endpoint: BmcEndpoint,
    pub username: String,
    pub password: Password,
}

impl BmcTarget {
    pub fn new(endpoint: BmcEndpoint, username: impl Into<String>, password: Password) -> Self {
        BmcTarget {
            endpoint,
            username: username.into(),
            password,
        }
    }

    pub fn address(&self) -> String {
        self.endpoint.address()
    }
}

/// How long power actions may take before they count as not done, and how
/// often the state is read while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerTimeouts {
    /// On, off, reset, cycle. Default 30 s.
    pub hard: Duration,
    /// Soft off: the OS decides when. Default 120 s.
    pub soft: Duration,
    /// Between two reads of the power state. Default 500 ms.
    pub poll_interval: Duration,
}

impl Default for PowerTimeouts {
    fn default() -> Self {
        PowerTimeouts {
            hard: Duration::from_secs(30),
            soft: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// What a power action did: the state found, the commands sent (none when
/// the machine was already where it was asked to be), the state reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerOutcome {
    pub action: PowerAction,
    pub initial: PowerState,
    pub commands: Vec<PowerCommand>,
    pub final_state: PowerState,
    pub elapsed: Duration,
}

/// A power command as a BMC takes it. IPMI's Chassis Control (IPMI 2.0
/// section 28.3) and Redfish's `ResetType` values both map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerCommand {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
    PowerCycle,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_prints() {
        let target = BmcTarget::new(
            BmcEndpoint::ipmi("127.0.0.1"),
            "admin",
            Password::new("hunter2"),
        );
        let shown = format!("{target:?} {}", target.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn addresses_name_protocol_and_port() {
        assert_eq!(
            BmcEndpoint::ipmi("10.0.0.1").address(),
            "ipmi://10.0.0.1:623"
        );
        let v6 = BmcEndpoint::Ipmi {
            host: "::1".into(),
            port: 6230,
            cipher_suite: CipherSuite::Suite3,
        };
        assert_eq!(v6.address(), "ipmi://[::1]:6230");
        let rf = BmcEndpoint::Redfish {
            base_url: "https://bmc:8443/".into(),
            disable_certificate_verification: true,
            system_id: None,
        };
        assert_eq!(rf.address(), "https://bmc:8443");
    }
}
