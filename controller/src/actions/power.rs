//! Power actions and BMC checks: each is one request through the tunnel to the owning rack agent.
//!
//! The agent reads the state before acting, acts only when needed (power
//! off on an off machine succeeds without a command) and verifies the result
//! by polling with a deadline; reset and cycle on an off machine power it
//! on. Failures come back as RetCodes that say what failed: rack unassigned
//! (1040), agent offline (2000), wrong BMC credentials (1050), BMC
//! unreachable (2001) or silent (2002), a soft off that never completed
//! (1052), and so on.

use std::time::Duration;

use ironrack_common::ApiError;
use ironrack_common::Secret;
use ironrack_common::params::Params;
use ironrack_common::rack::{BmcFailure, BmcKind, BmcSpec, PowerAction};
use ironrack_common::tunnel::{AgentRequest, AgentResponse};
use serde_json::json;

use super::machines::load;
use super::validate::{self as v, req_pmid, req_region};
use super::{BoxReply, Ctx, Reply, reply};

/// Hard actions verify within 30 s on the agent; soft off waits up to 120 s.
fn deadline(action: PowerAction) -> Duration {
    match action {
        PowerAction::Soft => Duration::from_secs(150),
        _ => Duration::from_secs(60),
    }
}
const STATUS_DEADLINE: Duration = Duration::from_secs(20);
const IDENTIFY_DEADLINE: Duration = Duration::from_secs(25);

fn unexpected(what: &str) -> ApiError {
    ApiError::TunnelFailed(format!(
        "the rack agent answered {what} with something else"
    ))
}

fn bmc_failure(subject: &str, f: BmcFailure) -> ApiError {
    ApiError::Bmc {
        kind: f.kind,
        message: format!("{subject}: {}", f.message),
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn power(
    ctx: Ctx,
    p: Params,
    action: Option<PowerAction>,
    v2: bool,
) -> Result<Reply, ApiError> {
    let region = if v2 {
        Some(req_region(&p)?)
    } else {
        v::opt_region(&p)?
    };
    let id = req_pmid(&p)?;
    let action = match action {
        Some(a) => a,
        None => {
            let raw = p.req_str("PowerAction")?;
            PowerAction::parse(&raw).ok_or_else(|| {
                ApiError::invalid("PowerAction", "must be one of on, off, soft, reset, cycle")
            })?
        }
    };
    let m = load(&ctx, &id, region.as_deref())?;
    let rack = ctx.app.rack()?;
    let agent = rack.owner_of(&m)?;
    let bmc = rack.bmc_spec(&m)?;
    let request = AgentRequest::Power {
        pmid: id.to_string(),
        bmc,
        action,
    };
    let report = match rack.call(&agent, request, deadline(action)).await? {
        AgentResponse::Power(Ok(r)) => r,
        AgentResponse::Power(Err(f)) => return Err(bmc_failure(&format!("machine {id}"), f)),
        _ => return Err(unexpected("a power request")),
    };
    let state = report.final_state.as_str().to_owned();
    let store = ctx.app.store.clone();
    let pid = id.clone();
    let _ = tokio::task::spawn_blocking(move || {
        store.update_machine(&pid, &mut |m| {
            m.power_status.clone_from(&state);
            m.ipmi_connected = true;
            Ok(())
        })
    })
    .await;
    tracing::info!(
        pmid = %id, agent_id = %agent.id, action = action.as_str(),
        initial = %report.initial, final_state = %report.final_state,
        commands = report.commands.len(), elapsed_ms = report.elapsed_ms,
        "power action done"
    );
    let message = if report.commands.is_empty() {
        format!(
            "machine {id} was already {}; nothing sent",
            report.final_state
        )
    } else {
        format!(
            "machine {id}: {} done, power is {} (was {}, {} ms)",
            action.as_str(),
            report.final_state,
            report.initial,
            report.elapsed_ms
        )
    };
    Ok(reply(
        json!({ "Message": message, "PowerStatus": report.final_state.as_str() }),
    ))
}

macro_rules! v1_power {
    ($name:ident, $action:expr) => {
        pub fn $name(ctx: Ctx, p: Params) -> BoxReply {
            Box::pin(power(ctx, p, Some($action), false))
        }
    };
}

v1_power!(power_on_pm, PowerAction::On);
v1_power!(power_soft_pm, PowerAction::Soft);
v1_power!(power_off_pm, PowerAction::Off);
v1_power!(power_reset_pm, PowerAction::Reset);
v1_power!(power_cycle_pm, PowerAction::Cycle);

pub fn power_control_pm_v2(ctx: Ctx, p: Params) -> BoxReply {
    Box::pin(power(ctx, p, None, true))
}

pub fn get_pm_power_status_v2(ctx: Ctx, p: Params) -> BoxReply {
    Box::pin(async move {
        let region = req_region(&p)?;
        let id = req_pmid(&p)?;
        let m = load(&ctx, &id, Some(&region))?;
        let rack = ctx.app.rack()?;
        let agent = rack.owner_of(&m)?;
        let bmc = rack.bmc_spec(&m)?;
        let request = AgentRequest::PowerStatus {
            pmid: id.to_string(),
            bmc,
        };
        let state = match rack.call(&agent, request, STATUS_DEADLINE).await? {
            AgentResponse::PowerStatus(Ok(s)) => s,
            AgentResponse::PowerStatus(Err(f)) => {
                return Err(bmc_failure(&format!("machine {id}"), f));
            }
            _ => return Err(unexpected("a power status request")),
        };
        Ok(reply(json!({
            "PowerStatus": state.as_str(),
            "LastChecked": rfc3339_now(),
            "Message": format!("read from the BMC by rack {}", agent.rack),
        })))
    })
}

/// The BMC named by IPMIIP / IPMIUsername / IPMIPassword.
fn bmc_params(p: &Params, kind: BmcKind) -> Result<BmcSpec, ApiError> {
    let address = v::bmc_address(p, "IPMIIP")?
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::missing("IPMIIP"))?;
    Ok(BmcSpec {
        kind,
        address,
        username: p.req_str("IPMIUsername")?,
        password: Secret::new(p.req_str("IPMIPassword")?),
        disable_certificate_verification: kind == BmcKind::Redfish,
    })
}

async fn identify(
    ctx: &Ctx,
    region: &str,
    bmc: BmcSpec,
) -> Result<Result<ironrack_common::rack::BmcIdentity, BmcFailure>, ApiError> {
    let rack = ctx.app.rack()?;
    let agent = rack.owner_of_address(region, &bmc.address)?;
    match rack
        .call(&agent, AgentRequest::Identify { bmc }, IDENTIFY_DEADLINE)
        .await?
    {
        AgentResponse::Identity(r) => Ok(r),
        _ => Err(unexpected("an identify request")),
    }
}

/// Logs in over IPMI and reports; a BMC failure is a result (Success
/// false, RetCode 0), while a machine no agent reaches is a RetCode.
pub fn test_pm_ipmi_v2(ctx: Ctx, p: Params) -> BoxReply {
    Box::pin(async move {
        let region = req_region(&p)?;
        let bmc = bmc_params(&p, BmcKind::Ipmi)?;
        let address = bmc.address.clone();
        Ok(match identify(&ctx, &region, bmc).await? {
            Ok(id) => reply(json!({
                "Success": true,
                "SerialNumber": id.serial_number,
                "BMCInfo": id.bmc_info,
                "Message": format!("logged in to {address} over IPMI"),
            })),
            Err(f) => reply(json!({
                "Success": false,
                "SerialNumber": "",
                "BMCInfo": "",
                "Message": format!("{address}: {}", f.message),
            })),
        })
    })
}

/// Tries IPMI, then Redfish, and reports the first that logs in.
pub fn detect_bmc_type_v2(ctx: Ctx, p: Params) -> BoxReply {
    Box::pin(async move {
        let region = req_region(&p)?;
        let ipmi = bmc_params(&p, BmcKind::Ipmi)?;
        let address = ipmi.address.clone();
        let mut redfish = ipmi.clone();
        redfish.kind = BmcKind::Redfish;
        let mut failures = Vec::new();
        for bmc in [ipmi, redfish] {
            let kind = bmc.kind;
            match identify(&ctx, &region, bmc).await? {
                Ok(id) => {
                    return Ok(reply(json!({
                        "Success": true,
                        "BMCTypeName": kind.as_str(),
                        "BMCInfo": id.bmc_info,
                        "SerialNumber": id.serial_number,
                        "Message": format!("{address} answers {}", kind.as_str()),
                    })));
                }
                Err(f) => failures.push(format!("{}: {}", kind.as_str(), f.message)),
            }
        }
        Ok(reply(json!({
            "Success": false,
            "BMCTypeName": "",
            "BMCInfo": "",
            "SerialNumber": "",
            "Message": format!("{address} answers neither protocol ({})", failures.join("; ")),
        })))
    })
}
