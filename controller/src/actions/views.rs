//! Turning stored records into the spec's wire shapes, with secrets only where allowed.

use ironrack_common::ApiError;
use ironrack_common::machine::{BmcDetails, KvmStatus, PmInfo, PmInfoV2};

use super::Ctx;
use crate::hub::AgentInfo;
use crate::rack::{Placement, route};
use crate::store::{MachineRecord, TenantRecord};

/// The agents once per request, for every machine's placement.
pub fn agents(ctx: &Ctx) -> Vec<AgentInfo> {
    ctx.app.rack.get().map(|r| r.agents()).unwrap_or_default()
}

struct RackView {
    rack: String,
    agent_id: String,
    state: &'static str,
    message: String,
    bmc_answers: bool,
}

fn rack_view(m: &MachineRecord, agents: &[AgentInfo]) -> RackView {
    let placement = match route(&m.region, &m.ipmi_ip, &m.rack, agents) {
        Ok(a) if a.connected => Placement::Online(a.clone()),
        Ok(a) => Placement::Offline(a.clone()),
        Err(why) => Placement::Unassigned(why),
    };
    let (rack, agent_id) = placement
        .agent()
        .map(|a| (a.rack.clone(), a.id.to_string()))
        .unwrap_or_default();
    let message = match &placement {
        Placement::Online(_) => String::new(),
        Placement::Offline(a) => format!(
            "rack agent {} is offline; PowerStatus is the last state seen",
            a.id
        ),
        Placement::Unassigned(why) => why.clone(),
    };
    RackView {
        rack,
        agent_id,
        state: placement.state(),
        message,
        bmc_answers: matches!(placement, Placement::Online(_)) && m.ipmi_connected,
    }
}

/// The default IPMI-over-LAN port (RMCP, UDP 623).
const IPMI_PORT: u16 = 623;

/// The BMC password in clear for admins; empty for tenants.
fn password_for(ctx: &Ctx, m: &MachineRecord) -> Result<String, ApiError> {
    if !ctx.caller.is_admin() || m.ipmi_password_sealed.is_empty() {
        return Ok(String::new());
    }
    ctx.app
        .sealer
        .open_str(
            &MachineRecord::password_context(&m.pmid),
            &m.ipmi_password_sealed,
        )
        .map_err(|e| ApiError::Internal(format!("machine {}: {e}", m.pmid)))
}

fn tenant_of(ctx: &Ctx, m: &MachineRecord) -> Result<Option<TenantRecord>, ApiError> {
    if m.company_id == 0 {
        return Ok(None);
    }
    Ok(ctx.app.store.tenant(m.company_id)?)
}

/// `ipmi://198.51.100.7:623` or `https://...` for Redfish.
pub fn bmc_address(m: &MachineRecord) -> String {
    if m.ipmi_ip.is_empty() {
        return String::new();
    }
    if m.bmc_type_name == "redfish" {
        return format!("https://{}", m.ipmi_ip);
    }
    if m.ipmi_ip.parse::<std::net::SocketAddr>().is_ok() {
        format!("ipmi://{}", m.ipmi_ip)
    } else if m.ipmi_ip.contains(':') {
        format!("ipmi://[{}]:{IPMI_PORT}", m.ipmi_ip)
    } else {
        format!("ipmi://{}:{IPMI_PORT}", m.ipmi_ip)
    }
}

pub fn pm_info(ctx: &Ctx, m: &MachineRecord, agents: &[AgentInfo]) -> Result<PmInfo, ApiError> {
    let tenant = tenant_of(ctx, m)?;
    let rv = rack_view(m, agents);
    Ok(PmInfo {
        name: m.name.clone(),
        remark: m.remark.clone(),
        region: m.region.clone(),
        region_alias: m.region.clone(),
        company_id: m.company_id,
        company_name: tenant
            .as_ref()
            .map(|t| t.company_name.clone())
            .unwrap_or_default(),
        email: tenant.as_ref().map(|t| t.email.clone()).unwrap_or_default(),
        project_id: m.project_id.clone(),
        project_name: m.project_id.clone(),
        reason: m.reason.clone(),
        create_time: m.create_time,
        tags: m.tags.clone(),
        expire_time: m.expire_time,
        pmid: m.pmid.to_string(),
        ipmi_ip: m.ipmi_ip.clone(),
        ipmi_user: m.ipmi_user.clone(),
        ipmi_password: password_for(ctx, m)?,
        ipmi_is_connected: rv.bmc_answers,
        rack_location: m.rack_location.clone(),
        label: m.label.clone(),
        status: m.status.to_string(),
        power_status: m.power_status.clone(),
        sn: m.sn.clone(),
        product_name: m.product_name.clone(),
        kvm_status: KvmStatus::default(),
        custom_metrics_path: m.custom_metrics_path.clone(),
        image_id: m.image_id.clone(),
        hostname: m.hostname.clone(),
        boot_device: m.boot_device.clone(),
        bmc_details: BmcDetails {
            bmc_type: if m.bmc_type_name.is_empty() && !m.ipmi_ip.is_empty() {
                "ipmi".into()
            } else {
                m.bmc_type_name.clone()
            },
            address: bmc_address(m),
            credentials_name: m.ipmi_user.clone(),
            disable_certificate_verification: false,
        },
        failure_reason: m.failure_reason.clone(),
        rack: rv.rack,
        agent_id: rv.agent_id,
        rack_state: rv.state.to_owned(),
        rack_message: rv.message,
        ..PmInfo::default()
    })
}

pub fn pm_info_v2(
    ctx: &Ctx,
    m: &MachineRecord,
    agents: &[AgentInfo],
) -> Result<PmInfoV2, ApiError> {
    let tenant = tenant_of(ctx, m)?;
    let rv = rack_view(m, agents);
    Ok(PmInfoV2 {
        region: m.region.clone(),
        company_id: m.company_id,
        company_name: tenant
            .as_ref()
            .map(|t| t.company_name.clone())
            .unwrap_or_default(),
        project_id: m.project_id.clone(),
        project_name: m.project_id.clone(),
        name: m.name.clone(),
        remark: m.remark.clone(),
        tags: m.tags.clone(),
        create_time: m.create_time,
        update_time: m.update_time,
        email: tenant.as_ref().map(|t| t.email.clone()).unwrap_or_default(),
        reason: m.reason.clone(),
        expire_time: m.expire_time,
        pmid: m.pmid.to_string(),
        sn: m.sn.clone(),
        hostname: m.hostname.clone(),
        status: m.status.to_string(),
        ipmi_ip: m.ipmi_ip.clone(),
        ipmi_username: m.ipmi_user.clone(),
        ipmi_password: password_for(ctx, m)?,
        bmc_type_name: m.bmc_type_name.clone(),
        bmc_info: m.bmc_info.clone(),
        ip: m.ip.clone(),
        netmask: m.netmask.clone(),
        gateway: m.gateway.clone(),
        install_mode: m.install_mode.clone(),
        validity_check_results: if rv.state == "unassigned" {
            vec![format!("unassigned: {}", rv.message)]
        } else {
            Vec::new()
        },
        pm_tags: m.pm_tags.clone(),
        description: m.description.clone(),
        hardware_info: String::new(),
        rack_location: m.rack_location.clone(),
        custom_metrics_path: m.custom_metrics_path.clone(),
        power_status: m.power_status.clone(),
        ipmi_is_connected: rv.bmc_answers,
        rack: rv.rack,
        agent_id: rv.agent_id,
        rack_state: rv.state.to_owned(),
        rack_message: rv.message,
    })
}
