//! The action table: every action the controller answers, who may call it, and how it runs.
//!
//! Handlers are thin: read and validate parameters, call the store, shape
//! the reply. One file per action group.

mod agents;
mod machines;
mod network;
mod power;
mod settings;
mod tenancy;
pub mod validate;
mod views;

use std::sync::Arc;

use ironrack_common::ApiError;
use ironrack_common::params::Params;
use serde_json::{Map, Value};

use crate::app::{App, Caller};

/// The fields of a successful answer (RetCode and Action are added at the edge).
pub type Reply = Map<String, Value>;
pub type Handler = fn(&Ctx, &Params) -> Result<Reply, ApiError>;
pub type BoxReply =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, ApiError>> + Send>>;
/// A handler that waits on the network (the tunnel to a rack).
pub type AsyncHandler = fn(Ctx, Params) -> BoxReply;

/// What a handler gets besides its parameters.
#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
    pub caller: Caller,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Admin keys, and tenant keys within their own CompanyID.
    Any,
    /// Admin keys only.
    Admin,
}

#[derive(Clone, Copy)]
pub enum Run {
    /// Reads from memory: run on the request task.
    Inline(Handler),
    /// Writes to disk (fsync): run on the blocking pool.
    Blocking(Handler),
    /// Talks to a rack agent.
    Async(AsyncHandler),
}

pub struct ActionDef {
    pub name: &'static str,
    pub access: Access,
    pub run: Run,
}

use Access::{Admin, Any};
use Run::{Async, Blocking, Inline};

const fn def(name: &'static str, access: Access, run: Run) -> ActionDef {
    ActionDef { name, access, run }
}

/// Every action this controller answers.
pub const ACTIONS: &[ActionDef] = &[
    def("CreatePM", Admin, Blocking(machines::create_pm)),
    def("CreatePMV2", Admin, Async(machines::create_pm_v2)),
    def("UpdatePM", Any, Blocking(machines::update_pm)),
    def("UpdatePMV2", Any, Blocking(machines::update_pm_v2)),
    def("DeletePM", Admin, Blocking(machines::delete_pm)),
    def("DeletePMV2", Admin, Blocking(machines::delete_pm_v2)),
    def("DescribePM", Any, Inline(machines::describe_pm)),
    def("ListPMV2", Any, Inline(machines::list_pm_v2)),
    def("UpperPM", Admin, Blocking(machines::upper_pm)),
    def("AllocatePM", Admin, Blocking(machines::allocate_pm)),
    def("RecyclePM", Admin, Blocking(machines::recycle_pm)),
    def(
        "GetIntrospectionSwitch",
        Any,
        Inline(settings::get_introspection_switch),
    ),
    def(
        "SetIntrospectionSwitch",
        Admin,
        Blocking(settings::set_introspection_switch),
    ),
    def("CreateTenant", Admin, Blocking(tenancy::create_tenant)),
    def("ListTenants", Admin, Inline(tenancy::list_tenants)),
    def("UpdateTenant", Admin, Blocking(tenancy::update_tenant)),
    def("DeleteTenant", Admin, Blocking(tenancy::delete_tenant)),
    def("CreateAPIKey", Admin, Blocking(tenancy::create_api_key)),
    def("ListAPIKeys", Admin, Inline(tenancy::list_api_keys)),
    def("DeleteAPIKey", Admin, Blocking(tenancy::delete_api_key)),
    def("PowerONPM", Any, Async(power::power_on_pm)),
    def("PowerSoftPM", Any, Async(power::power_soft_pm)),
    def("PowerOFFPM", Any, Async(power::power_off_pm)),
    def("PowerResetPM", Any, Async(power::power_reset_pm)),
    def("PowerCyclePM", Any, Async(power::power_cycle_pm)),
    def("PowerControlPMV2", Any, Async(power::power_control_pm_v2)),
    def(
        "GetPMPowerStatusV2",
        Any,
        Async(power::get_pm_power_status_v2),
    ),
    def("TestPMIPMIV2", Admin, Async(power::test_pm_ipmi_v2)),
    def("DetectBMCTypeV2", Admin, Async(power::detect_bmc_type_v2)),
    def(
        "CreateAgentToken",
        Admin,
        Blocking(agents::create_agent_token),
    ),
    def("ListAgents", Admin, Inline(agents::list_agents)),
    def("RevokeAgent", Admin, Blocking(agents::revoke_agent)),
    def(
        "SetPhysicsVPCSubnet",
        Admin,
        Blocking(network::set_physics_vpc_subnet),
    ),
    def(
        "GetPhysicsVPCSubnet",
        Any,
        Inline(network::get_physics_vpc_subnet),
    ),
];

/// Actions of the spec that later capabilities bring; until then they are
/// refused as unknown (161) with a message saying so — never a fake success.
const NOT_YET: &[&str] = &[
    "PreparePMKVM",
    "CleanPMKVM",
    "AllocatePMKVMVNCSession",
    "AllocatePMVNCSession",
    "CreateKVMSessionV2",
    "CloseKVMSessionV2",
    "ListKVMSessionsV2",
    "InstallGuestOS",
    "ReinstallGuestOS",
    "DiscoverPMHardwareV2",
    "GetPMHardwareV2",
    "ListOSMediaV2",
    "CreateOSMediaV2",
    "GetOSMediaV2",
    "UpdateOSMediaV2",
    "DeleteOSMediaV2",
    "BatchDeleteOSMediaV2",
    "CreateInstallTaskV2",
    "CancelInstallTaskV2",
    "GetInstallLogsV2",
    "ListInstallTasksV2",
    "GetInstallTaskV2",
    "RetryInstallTaskV2",
    "DeleteInstallTaskV2",
    "GetInstallStatusByTaskIDV2",
];

pub fn find(name: &str) -> Option<&'static ActionDef> {
    ACTIONS.iter().find(|d| d.name == name)
}

/// The 161 answer, saying whether the action exists in the spec but is not
/// built yet.
pub fn unknown(name: &str) -> ApiError {
    if NOT_YET.contains(&name) {
        ApiError::NotAvailableYet(name.to_owned())
    } else {
        ApiError::UnknownAction(name.to_owned())
    }
}

/// Builds a reply from a JSON object literal.
pub fn reply(v: Value) -> Reply {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("replies are always JSON objects"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_disjoint_from_not_yet() {
        let mut names: Vec<&str> = ACTIONS.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ACTIONS.len());
        for n in NOT_YET {
            assert!(find(n).is_none(), "{n} is both built and not yet");
        }
    }
}
