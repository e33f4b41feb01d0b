//! Per-region switches: whether in-band operations (introspection) are open.

use ironrack_common::ApiError;
use ironrack_common::params::Params;
use serde_json::json;

use super::validate::req_region;
use super::{Ctx, Reply, reply};

fn introspection_key(region: &str) -> String {
    format!("introspection/{region}")
}

/// Closed unless an admin opened it for the region.
pub fn get_introspection_switch(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let open = ctx
        .app
        .store
        .setting(&introspection_key(&region))?
        .is_some_and(|v| v == b"1");
    Ok(reply(json!({ "IsOpen": open })))
}

pub fn set_introspection_switch(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let open = p
        .opt_bool("IsOpen")?
        .ok_or_else(|| ApiError::missing("IsOpen"))?;
    ctx.app
        .store
        .put_setting(&introspection_key(&region), if open { b"1" } else { b"0" })?;
    tracing::info!(region = %region, open, "introspection switch set");
    Ok(reply(json!({ "IsOpen": open })))
}
