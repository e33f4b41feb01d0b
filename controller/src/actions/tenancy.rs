//! Admin actions beyond the spec: tenants (CompanyID) and the API keys bound to them.

use ironrack_common::ApiError;
use ironrack_common::params::Params;
use ironrack_common::tenancy::{ApiKeyInfo, TenantInfo};
use serde_json::json;

use super::validate::{self as v, company_value, paging};
use super::{Ctx, Reply, reply};
use crate::app::{new_key_pair, now_unix};
use crate::store::{KeyRecord, TenantRecord};

/// Tenants numbered by the controller start here, clear of small ids
/// that operators tend to pick by hand.
const FIRST_COMPANY_ID: i64 = 10_001;

fn email(p: &Params) -> Result<Option<String>, ApiError> {
    let e = v::text(p, "Email", 254)?;
    match &e {
        Some(s) if !s.is_empty() && (!s.contains('@') || s.contains(char::is_whitespace)) => {
            Err(ApiError::invalid("Email", "must be an e-mail address"))
        }
        _ => Ok(e),
    }
}

fn tenant_info(t: &TenantRecord) -> TenantInfo {
    TenantInfo {
        company_id: t.company_id,
        company_name: t.company_name.clone(),
        email: t.email.clone(),
        create_time: t.create_time,
    }
}

pub fn create_tenant(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let name = v::text(p, "CompanyName", 128)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("CompanyName"))?;
    let email = email(p)?.unwrap_or_default();
    let company_id = match p.opt_int("CompanyID")? {
        Some(c) => company_value("CompanyID", c)?,
        None => ctx
            .app
            .store
            .tenants()?
            .iter()
            .map(|t| t.company_id + 1)
            .max()
            .unwrap_or(FIRST_COMPANY_ID)
            .max(FIRST_COMPANY_ID),
    };
    let t = TenantRecord {
        company_id,
        company_name: name,
        email,
        create_time: now_unix(),
    };
    ctx.app.store.put_tenant(&t, true)?;
    tracing::info!(company_id, "tenant created");
    Ok(reply(
        json!({ "CompanyID": company_id, "Info": tenant_info(&t) }),
    ))
}

pub fn list_tenants(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = paging(p)?;
    let all = ctx.app.store.tenants()?;
    let infos: Vec<TenantInfo> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(tenant_info)
        .collect();
    Ok(reply(json!({ "Infos": infos, "TotalCount": all.len() })))
}

fn existing(ctx: &Ctx, company_id: i64) -> Result<TenantRecord, ApiError> {
    ctx.app
        .store
        .tenant(company_id)?
        .ok_or_else(|| ApiError::not_found("tenant", company_id.to_string()))
}

pub fn update_tenant(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let company_id = company_value("CompanyID", p.req_int("CompanyID")?)?;
    let mut t = existing(ctx, company_id)?;
    if let Some(name) = v::text(p, "CompanyName", 128)? {
        if name.is_empty() {
            return Err(ApiError::invalid("CompanyName", "cannot be empty"));
        }
        t.company_name = name;
    }
    if let Some(e) = email(p)? {
        t.email = e;
    }
    ctx.app.store.put_tenant(&t, false)?;
    tracing::info!(company_id, "tenant updated");
    Ok(reply(json!({ "Info": tenant_info(&t) })))
}

pub fn delete_tenant(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let company_id = company_value("CompanyID", p.req_int("CompanyID")?)?;
    existing(ctx, company_id)?;
    let machines = ctx.app.store.count_machines_of(company_id)?;
    let keys = ctx
        .app
        .store
        .keys()?
        .iter()
        .filter(|k| k.company_id == Some(company_id))
        .count();
    if machines > 0 || keys > 0 {
        return Err(ApiError::InUse(format!(
            "tenant {company_id} still holds {machines} machine(s) and {keys} API key(s); \
             recycle the machines and delete the keys first"
        )));
    }
    ctx.app.store.delete_tenant(company_id)?;
    tracing::info!(company_id, "tenant deleted");
    Ok(Reply::new())
}

fn key_info(k: &KeyRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        public_key: k.public_key.clone(),
        role: if k.company_id.is_some() {
            "tenant"
        } else {
            "admin"
        }
        .into(),
        company_id: k.company_id.unwrap_or(0),
        description: k.description.clone(),
        create_time: k.create_time,
    }
}

/// A tenant key with CompanyID, an admin key with `Admin=true`. The private
/// key is in this answer and nowhere else, ever.
pub fn create_api_key(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let admin = p.opt_bool("Admin")?.unwrap_or(false);
    let company = v::opt_company(p, "CompanyID")?;
    let company_id = match (admin, company) {
        (true, Some(_)) => {
            return Err(ApiError::invalid(
                "CompanyID",
                "an admin key is not bound to a tenant; leave CompanyID out",
            ));
        }
        (true, None) => None,
        (false, Some(c)) => {
            existing(ctx, c)?;
            Some(c)
        }
        (false, None) => return Err(ApiError::missing("CompanyID")),
    };
    let description = v::text(p, "Description", 255)?.unwrap_or_default();
    let (public_key, private_key) = new_key_pair();
    let record = KeyRecord {
        private_key_sealed: ctx
            .app
            .sealer
            .seal_str(&KeyRecord::private_key_context(&public_key), &private_key),
        public_key: public_key.clone(),
        company_id,
        description,
        create_time: now_unix(),
    };
    ctx.app.store.put_key(&record)?;
    tracing::info!(public_key = %public_key, company_id = company_id.unwrap_or(0), "API key created");
    Ok(reply(json!({
        "PublicKey": public_key,
        "PrivateKey": private_key,
        "Info": key_info(&record),
    })))
}

pub fn list_api_keys(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let company = v::opt_company(p, "CompanyID")?;
    let (limit, offset) = paging(p)?;
    let keys: Vec<ApiKeyInfo> = ctx
        .app
        .store
        .keys()?
        .iter()
        .filter(|k| company.is_none() || k.company_id == company)
        .map(key_info)
        .collect();
    let total = keys.len();
    let page: Vec<ApiKeyInfo> = keys.into_iter().skip(offset).take(limit).collect();
    Ok(reply(json!({ "Infos": page, "TotalCount": total })))
}

/// Deletes the key named by `KeyPublicKey` (the request's own `PublicKey`
/// names the caller). The last admin key cannot be deleted.
pub fn delete_api_key(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let target = p.req_str("KeyPublicKey")?;
    let keys = ctx.app.store.keys()?;
    let record = keys
        .iter()
        .find(|k| k.public_key == target)
        .ok_or_else(|| ApiError::not_found("API key", target.clone()))?;
    let admins = keys.iter().filter(|k| k.company_id.is_none()).count();
    if record.company_id.is_none() && admins == 1 {
        return Err(ApiError::InUse(
            "this is the last admin key; create another admin key before deleting it".into(),
        ));
    }
    ctx.app.store.delete_key(&target)?;
    tracing::info!(public_key = %target, "API key deleted");
    Ok(Reply::new())
}
