//! Inventory actions: create, update, delete, describe, list, and the shelf/tenant moves.
//!
//! V1 and V2 actions read and write the same [`MachineRecord`]; they differ
//! only in parameter names (`IPMIUser` / `IPMIUsername`) and reply shapes.
//! Tenants see only machines of their own CompanyID; a machine of another
//! tenant answers "not found", so its existence does not leak.

use std::sync::Arc;

use ironrack_common::ApiError;
use ironrack_common::ids::PmId;
use ironrack_common::lifecycle::{self, Event, Outcome, Status};
use ironrack_common::machine::UnifiedTag;
use ironrack_common::params::Params;
use serde_json::json;

use super::validate::{self as v, req_pmid, req_region};
use super::views::{self, pm_info, pm_info_v2};
use super::{Ctx, Reply, reply};
use crate::app::now_unix;
use crate::store::{MachineQuery, MachineRecord, SortKey, TagFilter};

/// Which generation's parameter names to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gen {
    V1,
    V2,
}

impl Gen {
    fn user_param(self) -> &'static str {
        match self {
            Gen::V1 => "IPMIUser",
            Gen::V2 => "IPMIUsername",
        }
    }
}

/// Changes a create or update asks for; None leaves a field as it is.
#[derive(Default)]
struct Edits {
    name: Option<String>,
    remark: Option<String>,
    ipmi_ip: Option<String>,
    ipmi_user: Option<String>,
    ipmi_password: Option<ironrack_common::Secret>,
    bmc_type_name: Option<String>,
    rack_location: Option<String>,
    label: Option<String>,
    drive_type: Option<String>,
    custom_metrics_path: Option<String>,
    hostname: Option<String>,
    ip: Option<String>,
    netmask: Option<String>,
    gateway: Option<String>,
    description: Option<String>,
    reason: Option<String>,
    expire_time: Option<i64>,
    tags: Option<Vec<UnifiedTag>>,
    pm_tags: Option<Vec<String>>,
}

/// Parameters a tenant key may change on its own machines.
const TENANT_EDITABLE: &[&str] = &["Name", "Remark"];
/// Every parameter that edits a machine; the rest are scope (Region,
/// PMID, CompanyID) or ignored.
const EDIT_PARAMS: &[&str] = &[
    "Name",
    "Remark",
    "IPMIIP",
    "IPMIUser",
    "IPMIUsername",
    "IPMIPassword",
    "BMCTypeName",
    "RackLocation",
    "Label",
    "DriveType",
    "CustomMetricsPath",
    "Hostname",
    "IP",
    "Netmask",
    "Gateway",
    "Description",
    "Reason",
    "ExpireTime",
    "Tags",
    "PMTags",
];

impl Edits {
    fn read(p: &Params, gen_: Gen) -> Result<Edits, ApiError> {
        let password = v::text(p, "IPMIPassword", 256)?;
        Ok(Edits {
            name: v::text(p, "Name", 255)?,
            remark: v::text(p, "Remark", 4096)?,
            ipmi_ip: v::bmc_address(p, "IPMIIP")?,
            ipmi_user: v::text(p, gen_.user_param(), 64)?,
            ipmi_password: password.map(ironrack_common::Secret::new),
            bmc_type_name: v::bmc_type(p, "BMCTypeName")?,
            rack_location: v::text(p, "RackLocation", 255)?,
            label: v::text(p, "Label", 255)?,
            drive_type: v::text(p, "DriveType", 64)?,
            custom_metrics_path: v::text(p, "CustomMetricsPath", 1024)?,
            hostname: v::hostname(p, "Hostname")?,
            ip: v::ip(p, "IP")?,
            netmask: v::netmask(p, "Netmask")?,
            gateway: v::ip(p, "Gateway")?,
            description: v::text(p, "Description", 4096)?,
            reason: v::text(p, "Reason", 1024)?,
            expire_time: p.opt_int_in("ExpireTime", 0..=i64::from(u32::MAX) * 100)?,
            tags: v::tags(p, "Tags")?,
            pm_tags: v::string_tags(p, "PMTags")?,
        })
    }

    fn apply(self, ctx: &Ctx, m: &mut MachineRecord) {
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut m.name, self.name);
        set(&mut m.remark, self.remark);
        set(&mut m.ipmi_ip, self.ipmi_ip);
        set(&mut m.ipmi_user, self.ipmi_user);
        set(&mut m.bmc_type_name, self.bmc_type_name);
        set(&mut m.rack_location, self.rack_location);
        set(&mut m.label, self.label);
        set(&mut m.drive_type, self.drive_type);
        set(&mut m.custom_metrics_path, self.custom_metrics_path);
        set(&mut m.hostname, self.hostname);
        set(&mut m.ip, self.ip);
        set(&mut m.netmask, self.netmask);
        set(&mut m.gateway, self.gateway);
        set(&mut m.description, self.description);
        set(&mut m.reason, self.reason);
        set(&mut m.expire_time, self.expire_time);
        set(&mut m.tags, self.tags);
        set(&mut m.pm_tags, self.pm_tags);
        if let Some(pw) = self.ipmi_password {
            m.ipmi_password_sealed = if pw.is_empty() {
                Vec::new()
            } else {
                ctx.app
                    .sealer
                    .seal_str(&MachineRecord::password_context(&m.pmid), pw.expose())
            };
        }
    }
}

/// Moves a machine by the life-cycle table, or refuses naming both states.
fn step(m: &MachineRecord, event: Event, action: &str) -> Result<Outcome, ApiError> {
    lifecycle::transition(m.status, event).map_err(|allowed| ApiError::StateConflict {
        kind: "machine",
        id: m.pmid.to_string(),
        state: m.status.to_string(),
        action: action.to_owned(),
        needs: lifecycle::describe_allowed(allowed),
    })
}

fn to_status(m: &mut MachineRecord, event: Event, action: &str) -> Result<(), ApiError> {
    match step(m, event, action)? {
        Outcome::To(s) => {
            m.status = s;
            Ok(())
        }
        Outcome::Removed => unreachable!("only Delete removes, and it is not applied here"),
    }
}

/// Whether this caller may see this machine in this region.
fn visible(ctx: &Ctx, m: &MachineRecord, region: Option<&str>) -> bool {
    ctx.caller.tenant().is_none_or(|c| m.company_id == c) && region.is_none_or(|r| m.region == r)
}

fn not_found(id: &PmId) -> ApiError {
    ApiError::not_found("machine", id.to_string())
}

pub(super) fn load(
    ctx: &Ctx,
    id: &PmId,
    region: Option<&str>,
) -> Result<Arc<MachineRecord>, ApiError> {
    ctx.app
        .store
        .machine(id)?
        .filter(|m| visible(ctx, m, region))
        .ok_or_else(|| not_found(id))
}

/// Runs `f` on a machine the caller may see, atomically, and stamps UpdateTime.
fn modify(
    ctx: &Ctx,
    id: &PmId,
    region: Option<&str>,
    mut f: impl FnMut(&mut MachineRecord) -> Result<(), ApiError>,
) -> Result<Arc<MachineRecord>, ApiError> {
    let now = now_unix();
    ctx.app
        .store
        .update_machine(id, &mut |m| {
            if !visible(ctx, m, region) {
                return Err(not_found(id));
            }
            f(m)?;
            m.update_time = now;
            Ok(())
        })?
        .ok_or_else(|| not_found(id))
}

fn require_tenant(ctx: &Ctx, company_id: i64, param: &str) -> Result<(), ApiError> {
    match ctx.app.store.tenant(company_id)? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            param,
            format!("no tenant with CompanyID {company_id}; create it with CreateTenant"),
        )),
    }
}

/// The CompanyID a list is limited to: a tenant's own, or an admin's filter.
fn scope(ctx: &Ctx, p: &Params) -> Result<Option<i64>, ApiError> {
    let asked = v::opt_company(p, "CompanyID")?;
    match (ctx.caller.tenant(), asked) {
        (Some(own), Some(other)) if other != own => Err(ApiError::Forbidden(format!(
            "this key is bound to CompanyID {own}; it cannot act for CompanyID {other}"
        ))),
        (Some(own), _) => Ok(Some(own)),
        (None, asked) => Ok(asked),
    }
}

fn create(ctx: &Ctx, p: &Params, gen_: Gen) -> Result<MachineRecord, ApiError> {
    let region = req_region(p)?;
    let tenant = match gen_ {
        Gen::V1 => v::opt_company(p, "TargetCompanyID")?
            .map(|c| (c, "TargetCompanyID"))
            .or(v::opt_company(p, "CompanyID")?.map(|c| (c, "CompanyID"))),
        Gen::V2 => v::opt_company(p, "CompanyID")?.map(|c| (c, "CompanyID")),
    };
    if let Some((c, param)) = tenant {
        require_tenant(ctx, c, param)?;
    }
    let project_id = v::project(p, "ProjectID")?.unwrap_or_default();
    let rack = v::project(p, "Rack")?.unwrap_or_default();
    let edits = Edits::read(p, gen_)?;
    let now = now_unix();
    let mut m = MachineRecord {
        region,
        project_id,
        rack,
        create_time: now,
        update_time: now,
        ..MachineRecord::default()
    };
    edits.apply(ctx, &mut m);
    if let Some((c, _)) = tenant {
        // A tenant named at creation skips the shelf: registered → allocated.
        m.company_id = c;
        m.status = Status::Allocated;
    }
    let stored = ctx.app.store.insert_machine(m)?;
    ctx.app.machines_changed();
    tracing::info!(pmid = %stored.pmid, region = %stored.region, status = %stored.status, "machine created");
    Ok((*stored).clone())
}

pub fn create_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let m = create(ctx, p, Gen::V1)?;
    Ok(reply(json!({ "PMID": m.pmid })))
}

/// How long CreatePMV2 waits for the BMC to tell its serial number.
const IDENTIFY_ON_CREATE: std::time::Duration = std::time::Duration::from_secs(10);

/// Registers the machine, then — when its rack is online — asks the BMC for
/// its serial number. A BMC that does not answer does not fail the create;
/// the Message says why the SN is empty.
pub fn create_pm_v2(ctx: Ctx, p: Params) -> super::BoxReply {
    Box::pin(async move {
        let c = ctx.clone();
        let m = tokio::task::spawn_blocking(move || create(&c, &p, Gen::V2))
            .await
            .map_err(|_| ApiError::Internal("CreatePMV2 panicked".into()))??;
        let registered = format!(
            "machine {} registered in region {} as {}",
            m.pmid, m.region, m.status
        );
        let (sn, note) = match identify_new(&ctx, &m).await {
            Ok(id) => {
                let store = ctx.app.store.clone();
                let pmid = m.pmid.clone();
                let found = id.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    store.update_machine(&pmid, &mut |r| {
                        r.sn.clone_from(&found.serial_number);
                        r.bmc_info.clone_from(&found.bmc_info);
                        r.product_name.clone_from(&found.product);
                        if r.bmc_type_name.is_empty() {
                            r.bmc_type_name = found.kind.as_str().to_owned();
                        }
                        Ok(())
                    })
                })
                .await;
                (id.serial_number, String::new())
            }
            Err(why) => (String::new(), format!("; SN not read: {why}")),
        };
        Ok(reply(
            json!({ "PMID": m.pmid, "SN": sn, "Message": format!("{registered}{note}") }),
        ))
    })
}

async fn identify_new(
    ctx: &Ctx,
    m: &MachineRecord,
) -> Result<ironrack_common::rack::BmcIdentity, String> {
    let rack = ctx.app.rack().map_err(|e| e.to_string())?;
    let agent = rack.owner_of(m).map_err(|e| e.to_string())?;
    let bmc = rack.bmc_spec(m).map_err(|e| e.to_string())?;
    let request = ironrack_common::tunnel::AgentRequest::Identify { bmc };
    match rack.call(&agent, request, IDENTIFY_ON_CREATE).await {
        Ok(ironrack_common::tunnel::AgentResponse::Identity(Ok(id))) => Ok(id),
        Ok(ironrack_common::tunnel::AgentResponse::Identity(Err(f))) => Err(f.message),
        Ok(_) => Err("the rack agent answered something else".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn update(ctx: &Ctx, p: &Params, gen_: Gen) -> Result<Arc<MachineRecord>, ApiError> {
    let region = match gen_ {
        Gen::V1 => v::opt_region(p)?,
        Gen::V2 => Some(req_region(p)?),
    };
    let id = req_pmid(p)?;
    scope(ctx, p)?;
    if !ctx.caller.is_admin() {
        let other_user = match gen_ {
            Gen::V1 => "IPMIUsername",
            Gen::V2 => "IPMIUser",
        };
        if let Some(field) = EDIT_PARAMS
            .iter()
            .filter(|f| **f != other_user)
            .find(|f| p.contains(f) && !TENANT_EDITABLE.contains(f))
        {
            // Confirm the machine is theirs first, so the answer for another
            // tenant's machine stays "not found".
            load(ctx, &id, region.as_deref())?;
            return Err(ApiError::Forbidden(format!(
                "tenant keys may change only {}; {field} needs an admin key",
                TENANT_EDITABLE.join(" and ")
            )));
        }
    }
    let edits = std::cell::RefCell::new(Some(Edits::read(p, gen_)?));
    let m = modify(ctx, &id, region.as_deref(), |m| {
        if let Some(e) = edits.borrow_mut().take() {
            e.apply(ctx, m);
        }
        Ok(())
    })?;
    ctx.app.machines_changed();
    tracing::info!(pmid = %m.pmid, "machine updated");
    Ok(m)
}

pub fn update_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    update(ctx, p, Gen::V1)?;
    Ok(Reply::new())
}

pub fn update_pm_v2(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let m = update(ctx, p, Gen::V2)?;
    Ok(reply(
        json!({ "Message": format!("machine {} updated", m.pmid) }),
    ))
}

fn delete_one(ctx: &Ctx, id: &PmId, region: Option<&str>, action: &str) -> Result<(), ApiError> {
    let deleted = ctx.app.store.delete_machine(id, &mut |m| {
        if !visible(ctx, m, region) {
            return Err(not_found(id));
        }
        step(m, Event::Delete, action).map(|_| ())
    })?;
    match deleted {
        Some(m) => {
            ctx.app.machines_changed();
            tracing::info!(pmid = %m.pmid, region = %m.region, "machine deleted");
            Ok(())
        }
        None => Err(not_found(id)),
    }
}

pub fn delete_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = v::opt_region(p)?;
    let id = req_pmid(p)?;
    delete_one(ctx, &id, region.as_deref(), "DeletePM")?;
    Ok(Reply::new())
}

/// Deletes each machine on its own; any failure makes the answer a
/// PartialFailure that lists every failed id with its RetCode and reason.
pub fn delete_pm_v2(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let ids = p
        .opt_str_list("PMIDs")?
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::missing("PMIDs"))?;
    if ids.len() > v::MAX_LIMIT as usize {
        return Err(ApiError::invalid(
            "PMIDs",
            format!("at most {} ids", v::MAX_LIMIT),
        ));
    }
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for (i, raw) in ids.iter().enumerate() {
        let result = v::pmid_value(&format!("PMIDs.{i}"), raw)
            .and_then(|id| delete_one(ctx, &id, Some(&region), "DeletePMV2"));
        match result {
            Ok(()) => deleted.push(raw.clone()),
            Err(e) => failed.push((raw.clone(), e.ret_code().0, e.to_string())),
        }
    }
    if failed.is_empty() {
        return Ok(reply(json!({
            "Message": format!("deleted {} machine(s)", deleted.len()),
            "DeletedPMIDs": deleted,
        })));
    }
    let reasons: Vec<String> = failed
        .iter()
        .map(|(id, _, msg)| format!("{id}: {msg}"))
        .collect();
    Err(ApiError::PartialFailure {
        summary: format!(
            "deleted {} of {} machine(s); failed: {}",
            deleted.len(),
            ids.len(),
            reasons.join("; ")
        ),
        failed,
    })
}

fn sort_key(p: &Params) -> Result<(SortKey, bool), ApiError> {
    let key = match p.opt_str("SortBy")?.filter(|s| !s.is_empty()) {
        None => SortKey::CreateTime,
        Some(s) => SortKey::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&s))
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = SortKey::NAMES.iter().map(|(n, _)| *n).collect();
                ApiError::invalid("SortBy", format!("must be one of {}", names.join(", ")))
            })?,
    };
    let descending = match p.opt_str("SortOrder")?.filter(|s| !s.is_empty()) {
        None => true,
        Some(s) if s.eq_ignore_ascii_case("desc") => true,
        Some(s) if s.eq_ignore_ascii_case("asc") => false,
        Some(_) => return Err(ApiError::invalid("SortOrder", "must be asc or desc")),
    };
    Ok((key, descending))
}

fn nonempty(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    Ok(v::text(p, name, 255)?.filter(|s| !s.is_empty()))
}

fn list_of(p: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let list = p.opt_str_list(name)?.unwrap_or_default();
    if list.len() > v::MAX_LIMIT as usize {
        return Err(ApiError::invalid(
            name,
            format!("at most {} values", v::MAX_LIMIT),
        ));
    }
    Ok(list)
}

/// The query both DescribePM and ListPMV2 run.
fn query(ctx: &Ctx, p: &Params) -> Result<MachineQuery, ApiError> {
    let mut q = MachineQuery::in_region(req_region(p)?);
    q.company_id = scope(ctx, p)?;
    q.project_ids = list_of(p, "ProjectIDs")?;
    q.pmids = list_of(p, "PMIDs")?;
    for (i, id) in q.pmids.iter().enumerate() {
        v::pmid_value(&format!("PMIDs.{i}"), id)?;
    }
    q.sns = list_of(p, "SNs")?;
    q.status = match nonempty(p, "Status")? {
        None => None,
        Some(s) => Some(s.parse::<Status>().map_err(|_| {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid("Status", format!("must be one of {}", names.join(", ")))
        })?),
    };
    q.hostname = nonempty(p, "Hostname")?;
    q.sn = nonempty(p, "SN")?;
    q.ip = nonempty(p, "IP")?;
    q.ipmi_ip = v::bmc_address(p, "IPMIIP")?.filter(|s| !s.is_empty());
    q.tag = nonempty(p, "Tag")?.map(|t| match t.split_once('=') {
        Some((k, v)) => TagFilter::KeyValue(k.to_owned(), v.to_owned()),
        None => TagFilter::Key(t),
    });
    q.keyword = nonempty(p, "Keyword")?;
    (q.sort_by, q.descending) = sort_key(p)?;
    (q.limit, q.offset) = v::paging(p)?;
    Ok(q)
}

pub fn describe_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let page = ctx.app.store.query_machines(&query(ctx, p)?)?;
    let agents = views::agents(ctx);
    let infos = page
        .items
        .iter()
        .map(|m| pm_info(ctx, m, &agents))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reply(json!({ "Infos": infos, "TotalCount": page.total })))
}

pub fn list_pm_v2(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let page = ctx.app.store.query_machines(&query(ctx, p)?)?;
    let agents = views::agents(ctx);
    let infos = page
        .items
        .iter()
        .map(|m| pm_info_v2(ctx, m, &agents))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reply(json!({ "Infos": infos, "TotalCount": page.total })))
}

pub fn upper_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let id = req_pmid(p)?;
    let m = modify(ctx, &id, Some(&region), |m| {
        to_status(m, Event::Upper, "UpperPM")
    })?;
    tracing::info!(pmid = %m.pmid, status = %m.status, "machine put on the shelf");
    Ok(Reply::new())
}

pub fn allocate_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let company = v::company_value("CompanyID", p.req_int("CompanyID")?)?;
    let id = req_pmid(p)?;
    let project = v::project(p, "ProjectID")?.unwrap_or_default();
    require_tenant(ctx, company, "CompanyID")?;
    let m = modify(ctx, &id, Some(&region), |m| {
        to_status(m, Event::Allocate, "AllocatePM")?;
        m.company_id = company;
        m.project_id.clone_from(&project);
        Ok(())
    })?;
    tracing::info!(pmid = %m.pmid, company_id = company, "machine allocated");
    Ok(Reply::new())
}

pub fn recycle_pm(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let company = v::company_value("CompanyID", p.req_int("CompanyID")?)?;
    let id = req_pmid(p)?;
    let m = modify(ctx, &id, Some(&region), |m| {
        if m.company_id != company {
            return Err(ApiError::invalid(
                "CompanyID",
                format!(
                    "machine {} is not allocated to CompanyID {company} (it is {})",
                    m.pmid,
                    if m.company_id == 0 {
                        "in the pool".to_owned()
                    } else {
                        format!("allocated to CompanyID {}", m.company_id)
                    }
                ),
            ));
        }
        to_status(m, Event::Recycle, "RecyclePM")?;
        m.company_id = 0;
        m.project_id.clear();
        m.image_id.clear();
        m.install_mode.clear();
        Ok(())
    })?;
    tracing::info!(pmid = %m.pmid, company_id = company, "machine recycled");
    Ok(Reply::new())
}
