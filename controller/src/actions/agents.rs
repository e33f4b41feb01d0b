//! Admin actions for rack agents (beyond the spec): enrollment tokens, the agent list, revocation.

use std::time::Duration;

use ironrack_common::ApiError;
use ironrack_common::params::Params;
use ironrack_common::tunnel::AgentId;
use serde_json::json;

use super::validate::{self as v, req_region};
use super::{Ctx, Reply, reply};
use crate::hub::HubError;

const DEFAULT_TTL_S: i64 = 3600;
const MAX_TTL_S: i64 = 7 * 24 * 3600;

fn hub_err(e: HubError) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A one-time token an agent of `Region` enrolls with; it carries the
/// controller CA's fingerprint so the agent can check whom it talks to.
pub fn create_agent_token(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let ttl = p
        .opt_int_in("ExpiresIn", 60..=MAX_TTL_S)?
        .unwrap_or(DEFAULT_TTL_S);
    let rack = ctx.app.rack()?;
    let token = rack
        .hub()
        .create_token(&region, Duration::from_secs(ttl as u64))
        .map_err(hub_err)?;
    let expires = crate::app::now_unix() + ttl;
    tracing::info!(token_id = %token.id, region = %region, ttl_s = ttl, "agent enrollment token created");
    Ok(reply(json!({
        "Token": token.to_token_string(),
        "TokenID": token.id,
        "ExpiresAt": expires,
    })))
}

pub fn list_agents(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = v::opt_region(p)?;
    let rack = ctx.app.rack()?;
    let infos: Vec<_> = rack
        .agents()
        .into_iter()
        .filter(|a| region.as_ref().is_none_or(|r| &a.region == r))
        .map(|a| {
            json!({
                "AgentID": a.id.to_string(),
                "Region": a.region,
                "Rack": a.rack,
                "BMCNetworks": a.bmc_networks,
                "Connected": a.connected,
                "Revoked": a.revoked,
                // A connected agent is seen now; otherwise its last hello.
                "LastSeen": if a.connected {
                    crate::app::now_unix()
                } else {
                    a.last_seen_unix_s.map_or(0, |t| t as i64)
                },
                "Version": a.agent_version,
                "RemoteAddress": a.remote_addr.map(|r| r.to_string()).unwrap_or_default(),
            })
        })
        .collect();
    Ok(reply(json!({ "TotalCount": infos.len(), "Infos": infos })))
}

/// Revokes an agent: its live tunnel is closed at once and it can never
/// connect again with its certificate; its machines become unassigned.
pub fn revoke_agent(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let raw = p.req_str("AgentID")?;
    let id = AgentId::parse(&raw).ok_or_else(|| {
        ApiError::invalid(
            "AgentID",
            format!("{raw:?} is not an agent id (agt- and 12 hex digits)"),
        )
    })?;
    let rack = ctx.app.rack()?;
    match rack.hub().revoke(&id) {
        Ok(()) => {}
        Err(HubError::UnknownAgent { .. }) => return Err(ApiError::not_found("agent", raw)),
        Err(e) => return Err(hub_err(e)),
    }
    rack.poke();
    tracing::info!(agent_id = %id, "agent revoked");
    Ok(Reply::new())
}
