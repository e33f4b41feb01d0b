//! Our own serde models of the few Redfish resources the driver reads
//! (DSP0268: ServiceRoot, ComputerSystemCollection, ComputerSystem).

use serde::{Deserialize, Serialize};

use crate::bmc::types::{BootDevice, PowerCommand, PowerState};

/// `{"@odata.id": "/redfish/v1/..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Link {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRoot {
    pub redfish_version: Option<String>,
    pub systems: Option<Link>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Collection {
    #[serde(rename = "Members", default)]
    pub members: Vec<Link>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerSystem {
    pub power_state: Option<RedfishPowerState>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub bios_version: Option<String>,
    pub boot: Option<Boot>,
    #[serde(default)]
    pub actions: Actions,
}

/// `PowerState` values (Resource.PowerState). Unknown values deserialize as
/// `Other` rather than failing the whole resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RedfishPowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    Paused,
    #[serde(other)]
    Other,
}

impl RedfishPowerState {
    /// A transition counts as the state being left, so that waiting for a
    /// state ends only when the BMC reports it reached.
    pub fn to_power_state(self) -> Option<PowerState> {
        match self {
            RedfishPowerState::On | RedfishPowerState::PoweringOff | RedfishPowerState::Paused => {
                Some(PowerState::On)
            }
            RedfishPowerState::Off | RedfishPowerState::PoweringOn => Some(PowerState::Off),
            RedfishPowerState::Other => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Boot {
    pub boot_source_override_enabled: Option<String>,
    pub boot_source_override_target: Option<String>,
    #[serde(rename = "BootSourceOverrideTarget@Redfish.AllowableValues")]
    pub allowed_targets: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Actions {
    #[serde(rename = "#ComputerSystem.Reset")]
    pub reset: Option<ResetAction>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResetAction {
    pub target: Option<String>,
    #[serde(rename = "ResetType@Redfish.AllowableValues")]
    pub allowed: Option<Vec<String>>,
}

/// The `ResetType` values (Resource.ResetType) this driver may send for a
/// command, in order of preference.
pub fn reset_types(command: PowerCommand) -> &'static [&'static str] {
    match command {
        PowerCommand::On => &["On", "ForceOn"],
        PowerCommand::ForceOff => &["ForceOff"],
        PowerCommand::GracefulShutdown => &["GracefulShutdown"],
        PowerCommand::ForceRestart => &["ForceRestart"],
        PowerCommand::PowerCycle => &["PowerCycle"],
    }
}

/// Used when a BMC lists no allowable values: the reset types DSP0268 has
/// had since ComputerSystem v1.0 and that BMCs commonly implement.
pub const ASSUMED_RESET_TYPES: &[&str] = &["On", "ForceOff", "GracefulShutdown", "ForceRestart"];

impl ResetAction {
    /// Which of our commands the BMC takes, and as which `ResetType`.
    pub fn offered(reset: Option<&ResetAction>) -> Vec<(PowerCommand, &'static str)> {
        let allowed: Vec<&str> = match reset.and_then(|r| r.allowed.as_ref()) {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => ASSUMED_RESET_TYPES.to_vec(),
        };
        [
            PowerCommand::On,
            PowerCommand::ForceOff,
            PowerCommand::GracefulShutdown,
            PowerCommand::ForceRestart,
            PowerCommand::PowerCycle,
        ]
        .into_iter()
        .filter_map(|c| {
            reset_types(c)
                .iter()
                .find(|t| allowed.contains(t))
                .map(|t| (c, *t))
        })
        .collect()
    }
}

/// The body of `POST .../Actions/ComputerSystem.Reset`.
#[derive(Debug, Serialize)]
pub struct ResetRequest<'a> {
    #[serde(rename = "ResetType")]
    pub reset_type: &'a str,
}

/// The body of the boot override PATCH to a ComputerSystem.
#[derive(Debug, Serialize)]
pub struct BootPatch {
    #[serde(rename = "Boot")]
    pub boot: BootOverride,
}

#[derive(Debug, Serialize)]
pub struct BootOverride {
    #[serde(rename = "BootSourceOverrideTarget")]
    pub target: &'static str,
    #[serde(rename = "BootSourceOverrideEnabled")]
    pub enabled: &'static str,
}

impl BootPatch {
    /// A one-time override (`Once`: the BMC clears it after the next boot).
    pub fn once(device: BootDevice) -> Self {
        BootPatch {
            boot: BootOverride {
                target: boot_target(device),
                enabled: "Once",
            },
        }
    }
}

/// `BootSourceOverrideTarget` values (ComputerSystem.BootSource).
pub fn boot_target(device: BootDevice) -> &'static str {
    match device {
        BootDevice::Pxe => "Pxe",
        BootDevice::Disk => "Hdd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from sushy-tools 2.2.0's fake driver (system.json template).
    const SUSHY_SYSTEM: &str = r##"{
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "Id": "00000000-0000-4000-8000-000000000000",
        "Name": "node0",
        "Manufacturer": "Sushy Emulator",
        "PowerState": "Off",
        "Boot": {
            "BootSourceOverrideEnabled": "Continuous",
            "BootSourceOverrideTarget": "Pxe",
            "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd"],
            "BootSourceOverrideMode": "UEFI"
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/00000000-0000-4000-8000-000000000000/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown",
                    "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"]
            }
        },
        "@odata.id": "/redfish/v1/Systems/00000000-0000-4000-8000-000000000000"
    }"##;

    #[test]
    fn parses_a_sushy_system() {
        let s: ComputerSystem = serde_json::from_str(SUSHY_SYSTEM).unwrap();
        assert_eq!(s.power_state, Some(RedfishPowerState::Off));
        assert_eq!(s.manufacturer.as_deref(), Some("Sushy Emulator"));
        assert_eq!(s.serial_number, None);
        let boot = s.boot.unwrap();
        assert_eq!(boot.boot_source_override_target.as_deref(), Some("Pxe"));
        let offered = ResetAction::offered(s.actions.reset.as_ref());
        let commands: Vec<_> = offered.iter().map(|(c, _)| *c).collect();
        assert!(!commands.contains(&PowerCommand::PowerCycle));
        assert!(offered.contains(&(PowerCommand::On, "On")));
        assert!(offered.contains(&(PowerCommand::ForceRestart, "ForceRestart")));
    }

    #[test]
    fn force_on_stands_in_for_on() {
        let reset = ResetAction {
            target: None,
            allowed: Some(vec!["ForceOn".into(), "ForceOff".into()]),
        };
        assert_eq!(
            ResetAction::offered(Some(&reset)),
            vec![
                (PowerCommand::On, "ForceOn"),
                (PowerCommand::ForceOff, "ForceOff")
            ]
        );
    }

    #[test]
    fn no_allowable_values_assumes_the_common_set() {
        let offered = ResetAction::offered(None);
        assert_eq!(offered.len(), ASSUMED_RESET_TYPES.len());
    }

    #[test]
    fn transitions_count_as_the_state_left() {
        let parse = |s: &str| serde_json::from_str::<RedfishPowerState>(s).unwrap();
        assert_eq!(
            parse("\"PoweringOn\"").to_power_state(),
            Some(PowerState::Off)
        );
        assert_eq!(
            parse("\"PoweringOff\"").to_power_state(),
            Some(PowerState::On)
        );
        assert_eq!(parse("\"Weird\"").to_power_state(), None);
    }

    #[test]
    fn boot_patch_is_one_time() {
        let body = serde_json::to_value(BootPatch::once(BootDevice::Pxe)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"Boot": {"BootSourceOverrideTarget": "Pxe",
                                         "BootSourceOverrideEnabled": "Once"}})
        );
    }
}
