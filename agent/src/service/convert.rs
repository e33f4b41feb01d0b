//! Translation between the tunnel's wire types (`ironrack_common::rack`) and the BMC drivers' own.
//!
//! The two sides are kept apart on purpose: the wire types are frozen by the
//! protocol, the driver types follow the drivers. Everything here is pure.

use std::net::{IpAddr, SocketAddr};

use ironrack_common::rack::{
    BmcFailure, BmcFailureKind, BmcIdentity as WireIdentity, BmcKind, BmcSpec,
    BootDevice as WireBoot, PowerAction as WireAction, PowerReport, PowerState as WireState,
};
use reqwest::Url;

use crate::bmc::{
    BmcEndpoint, BmcError, BmcIdentity, BmcTarget, BootDevice, CipherSuite, IPMI_DEFAULT_PORT,
    Password, PowerAction, PowerCommand, PowerOutcome, PowerState,
};

/// Why a [`BmcSpec`]'s address is not one the drivers can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("IPMI BMC address {address:?} is not IP, IP:port, [v6]:port or host[:port]")]
    Ipmi { address: String },
    #[error("Redfish BMC address {address:?} is not https://host[:port] or a bare host: {reason}")]
    Redfish {
        address: String,
        reason: &'static str,
    },
}

impl AddressError {
    /// The failure sent back: the controller should have refused such an
    /// address when the machine was registered, and retrying cannot help.
    pub fn to_failure(&self) -> BmcFailure {
        BmcFailure {
            // TODO-correctness(#3): the wire has no "invalid address" kind;
            // Unsupported is the closest that says retrying will not help.
            kind: BmcFailureKind::Unsupported,
            message: self.to_string(),
        }
    }
}

/// The driver target for a wire [`BmcSpec`].
///
/// IPMI: `IP`, `IP:port`, `[v6]` or `[v6]:port` (a bare IPv6 address takes
/// the default port 623), or a DNS name with an optional port; cipher
/// suite 3, the only one the driver speaks (the wire does not carry one).
/// Redfish: `https://host[:port]`, or a bare `host[:port]` meaning https;
/// a path `/redfish/v1/Systems/<id>` picks one system of a multi-system BMC.
/// Plain `http://` is refused: basic auth would send the password in clear.
pub fn target(spec: &BmcSpec) -> Result<BmcTarget, AddressError> {
    let endpoint = match spec.kind {
        BmcKind::Ipmi => {
            let (host, port) = ipmi_host_port(&spec.address).ok_or_else(|| AddressError::Ipmi {
                address: spec.address.clone(),
            })?;
            BmcEndpoint::Ipmi {
                host,
                port,
                cipher_suite: CipherSuite::Suite3,
            }
        }
        BmcKind::Redfish => {
            let (base_url, system_id) =
                redfish_base(&spec.address).map_err(|reason| AddressError::Redfish {
                    address: spec.address.clone(),
                    reason,
                })?;
            BmcEndpoint::Redfish {
                base_url,
                disable_certificate_verification: spec.disable_certificate_verification,
                system_id,
            }
        }
    };
    Ok(BmcTarget::new(
        endpoint,
        spec.username.clone(),
        Password::new(spec.password.expose()),
    ))
}

fn ipmi_host_port(address: &str) -> Option<(String, u16)> {
    let a = address.trim();
    if let Ok(ip) = a.parse::<IpAddr>() {
        return Some((ip.to_string(), IPMI_DEFAULT_PORT));
    }
    if let Ok(sa) = a.parse::<SocketAddr>() {
        return (sa.port() != 0).then(|| (sa.ip().to_string(), sa.port()));
    }
    if let Some(v6) = a.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let ip = v6.parse::<std::net::Ipv6Addr>().ok()?;
        return Some((ip.to_string(), IPMI_DEFAULT_PORT));
    }
    let (host, port) = match a.split_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (a, IPMI_DEFAULT_PORT),
    };
    is_dns_name(host).then(|| (host.to_owned(), port))
}

/// RFC 1123 host names: dot-separated labels of letters, digits and
/// hyphens, not starting or ending with a hyphen.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn redfish_base(address: &str) -> Result<(String, Option<String>), &'static str> {
    let a = address.trim();
    let text = if a.contains("://") {
        a.to_owned()
    } else {
        format!("https://{a}")
    };
    let url = Url::parse(&text).map_err(|_| "not a URL")?;
    match url.scheme() {
        "https" => {}
        "http" => return Err("plain http would send the BMC password unencrypted; use https"),
        _ => return Err("the scheme must be https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials belong in the user name and password, not the URL");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("no query or fragment allowed");
    }
    let host = url.host_str().ok_or("no host")?;
    let system_id = match url.path().trim_end_matches('/') {
        "" => None,
        path => match path.strip_prefix("/redfish/v1/Systems/") {
            Some(id) if !id.is_empty() && !id.contains('/') => Some(id.to_owned()),
            _ => return Err("the only path allowed is /redfish/v1/Systems/<id>"),
        },
    };
    let base = match url.port() {
        Some(port) => format!("https://{host}:{port}"),
        None => format!("https://{host}"),
    };
    Ok((base, system_id))
}

/// The wire failure for a driver error: its kind, and the whole error chain
/// as the message (it names the BMC and what failed). The password is
/// scrubbed as well, in case a library ever echoes it back.
pub fn failure(error: &BmcError, password: &str) -> BmcFailure {
    let kind = match error {
        BmcError::Unreachable { .. } => BmcFailureKind::Unreachable,
        BmcError::AuthFailed { .. } => BmcFailureKind::AuthFailed,
        BmcError::UnsupportedCipherSuite { .. } => BmcFailureKind::UnsupportedCipherSuite,
        BmcError::Timeout { .. } => BmcFailureKind::Timeout,
        BmcError::Unsupported { .. } => BmcFailureKind::Unsupported,
        BmcError::Protocol { .. } => BmcFailureKind::Protocol,
        BmcError::ActionDidNotComplete { .. } => BmcFailureKind::ActionDidNotComplete,
    };
    BmcFailure {
        kind,
        message: scrub(error.chain(), password),
    }
}

/// Replaces `secret` in `text`. Very short passwords are left alone: they
/// would garble every message and are no secret worth the name anyway.
pub fn scrub(text: String, secret: &str) -> String {
    if secret.len() >= 3 && text.contains(secret) {
        text.replace(secret, "<redacted>")
    } else {
        text
    }
}

pub fn action(a: WireAction) -> PowerAction {
    match a {
        WireAction::On => PowerAction::On,
        WireAction::Off => PowerAction::Off,
        WireAction::Soft => PowerAction::Soft,
        WireAction::Reset => PowerAction::Reset,
        WireAction::Cycle => PowerAction::Cycle,
    }
}

pub fn state(s: PowerState) -> WireState {
    match s {
        PowerState::On => WireState::On,
        PowerState::Off => WireState::Off,
    }
}

pub fn boot(d: WireBoot) -> BootDevice {
    match d {
        WireBoot::Pxe => BootDevice::Pxe,
        WireBoot::Disk => BootDevice::Disk,
    }
}

/// Command names as the report shows them; Redfish's `ResetType` spelling,
/// which IPMI's Chassis Control commands map onto one to one.
pub fn command_name(c: PowerCommand) -> &'static str {
    match c {
        PowerCommand::On => "On",
        PowerCommand::ForceOff => "ForceOff",
        PowerCommand::GracefulShutdown => "GracefulShutdown",
        PowerCommand::ForceRestart => "ForceRestart",
        PowerCommand::PowerCycle => "PowerCycle",
    }
}

pub fn report(outcome: &PowerOutcome) -> PowerReport {
    PowerReport {
        initial: state(outcome.initial),
        final_state: state(outcome.final_state),
        commands: outcome
            .commands
            .iter()
            .map(|c| command_name(*c).to_owned())
            .collect(),
        elapsed_ms: u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

pub fn identity(id: BmcIdentity, kind: BmcKind) -> WireIdentity {
    WireIdentity {
        kind,
        serial_number: id.serial_number.unwrap_or_default(),
        manufacturer: id.manufacturer.unwrap_or_default(),
        product: id.product.unwrap_or_default(),
        firmware_version: id.firmware_version.unwrap_or_default(),
        bmc_info: id.bmc_info,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ironrack_common::Secret;

    use super::*;

    fn spec(kind: BmcKind, address: &str) -> BmcSpec {
        BmcSpec {
            kind,
            address: address.into(),
            username: "admin".into(),
            password: Secret::new("hunter22"),
            disable_certificate_verification: true,
        }
    }

    fn ipmi(address: &str) -> Option<(String, u16)> {
        match target(&spec(BmcKind::Ipmi, address)).ok()?.endpoint {
            BmcEndpoint::Ipmi { host, port, .. } => Some((host, port)),
            BmcEndpoint::Redfish { .. } => None,
        }
    }

    fn redfish(address: &str) -> Result<(String, Option<String>), AddressError> {
        match target(&spec(BmcKind::Redfish, address))?.endpoint {
            BmcEndpoint::Redfish {
                base_url,
                system_id,
                disable_certificate_verification,
            } => {
                assert!(disable_certificate_verification);
                Ok((base_url, system_id))
            }
            BmcEndpoint::Ipmi { .. } => unreachable!(),
        }
    }

    #[test]
    fn ipmi_addresses() {
        let v = |h: &str, p| Some((h.to_owned(), p));
        assert_eq!(ipmi("10.0.0.1"), v("10.0.0.1", 623));
        assert_eq!(ipmi(" 10.0.0.1:6230 "), v("10.0.0.1", 6230));
        assert_eq!(ipmi("[2001:db8::1]:6230"), v("2001:db8::1", 6230));
        assert_eq!(ipmi("2001:db8::1"), v("2001:db8::1", 623));
        assert_eq!(ipmi("[2001:db8::1]"), v("2001:db8::1", 623));
        assert_eq!(ipmi("bmc-7.rack.example"), v("bmc-7.rack.example", 623));
        assert_eq!(ipmi("bmc-7:700"), v("bmc-7", 700));
        for bad in [
            "",
            "10.0.0.1:0",
            "10.0.0.1:99999",
            "2001:db8::1:x",
            "bmc_7",
            "-bmc",
            "https://10.0.0.1",
            "a:1:2",
        ] {
            assert_eq!(ipmi(bad), None, "{bad:?}");
        }
        let t = target(&spec(BmcKind::Ipmi, "[::1]:6230")).unwrap();
        assert_eq!(t.address(), "ipmi://[::1]:6230");
        assert_eq!(t.password.expose(), "hunter22");
    }

    #[test]
    fn redfish_addresses() {
        let ok = |b: &str, s: Option<&str>| Ok((b.to_owned(), s.map(str::to_owned)));
        assert_eq!(redfish("https://bmc:8443"), ok("https://bmc:8443", None));
        assert_eq!(redfish("https://bmc/"), ok("https://bmc", None));
        assert_eq!(redfish("bmc.example"), ok("https://bmc.example", None));
        assert_eq!(redfish("10.0.0.9:8443"), ok("https://10.0.0.9:8443", None));
        assert_eq!(redfish("[2001:db8::9]"), ok("https://[2001:db8::9]", None));
        assert_eq!(
            redfish("https://bmc/redfish/v1/Systems/1"),
            ok("https://bmc", Some("1"))
        );
        for bad in [
            "http://bmc",
            "ftp://bmc",
            "https://u:p@bmc",
            "https://bmc/other",
            "https://bmc/?x=1",
            "",
        ] {
            assert!(redfish(bad).is_err(), "{bad:?}");
        }
        let err = redfish("http://bmc").unwrap_err();
        assert!(err.to_string().contains("unencrypted"), "{err}");
        assert_eq!(err.to_failure().kind, BmcFailureKind::Unsupported);
    }

    #[test]
    fn failures_keep_kind_and_cause_and_never_the_password() {
        let e = BmcError::Unreachable {
            address: "ipmi://10.0.0.1:623".into(),
            detail: "connection refused".into(),
            source: Some(Box::new(std::io::Error::other("ICMP port unreachable"))),
        };
        let f = failure(&e, "hunter22");
        assert_eq!(f.kind, BmcFailureKind::Unreachable);
        assert!(f.message.contains("ipmi://10.0.0.1:623"), "{}", f.message);
        assert!(f.message.contains("ICMP port unreachable"), "{}", f.message);

        let e = BmcError::Protocol {
            address: "https://bmc".into(),
            detail: "echoed hunter22 back".into(),
            source: None,
        };
        let f = failure(&e, "hunter22");
        assert_eq!(f.kind, BmcFailureKind::Protocol);
        assert!(!f.message.contains("hunter22"), "{}", f.message);

        let e = BmcError::Timeout {
            address: "a".into(),
            operation: "power status",
            waited: Duration::from_secs(3),
        };
        assert_eq!(failure(&e, "").kind, BmcFailureKind::Timeout);
    }

    #[test]
    fn reports_name_commands() {
        let r = report(&PowerOutcome {
            action: PowerAction::Cycle,
            initial: PowerState::On,
            commands: vec![PowerCommand::ForceOff, PowerCommand::On],
            final_state: PowerState::On,
            elapsed: Duration::from_millis(1500),
        });
        assert_eq!(r.commands, vec!["ForceOff", "On"]);
        assert_eq!(r.elapsed_ms, 1500);
        assert_eq!((r.initial, r.final_state), (WireState::On, WireState::On));
    }
}
