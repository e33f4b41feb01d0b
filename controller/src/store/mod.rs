//! The controller's store: records, the narrow interface every backend implements, and queries.
//!
//! The embedded backend is redb ([`redb_store::RedbStore`]). The interface is
//! kept narrow — records in, records out, one query type for machines — so
//! that a PostgreSQL-compatible backend for multi-controller deployments is a
//! second implementation, not a rewrite. Every write is durable when the call
//! returns; that is what lets an acknowledged API write survive `kill -9`.

pub mod hub_store;
mod index;
pub mod redb_store;

use std::sync::Arc;

use ironrack_common::ApiError;
use ironrack_common::ids::PmId;
use ironrack_common::lifecycle::Status;
use ironrack_common::machine::UnifiedTag;
use serde::{Deserialize, Serialize};

pub use hub_store::RedbHubStore;
pub use redb_store::RedbStore;

/// One machine as stored. Both API generations read and write this record.
/// Missing fields decode to their defaults, so new fields can be added
/// without migrating old records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineRecord {
    pub pmid: PmId,
    pub region: String,
    /// The tenant it is allocated to; 0 while in the pool.
    pub company_id: i64,
    pub project_id: String,
    pub name: String,
    pub remark: String,
    pub tags: Vec<UnifiedTag>,
    pub pm_tags: Vec<String>,
    pub reason: String,
    pub description: String,
    pub expire_time: i64,
    pub create_time: i64,
    pub update_time: i64,
    pub status: Status,
    pub failure_reason: String,
    /// `IP` or `IP:PORT` of the BMC.
    pub ipmi_ip: String,
    pub ipmi_user: String,
    /// Sealed with context `pm/<PMID>/ipmi-password`; never stored in clear.
    pub ipmi_password_sealed: Vec<u8>,
    pub bmc_type_name: String,
    pub bmc_info: String,
    pub rack_location: String,
    pub label: String,
    pub drive_type: String,
    pub custom_metrics_path: String,
    pub hostname: String,
    pub ip: String,
    pub netmask: String,
    pub gateway: String,
    pub install_mode: String,
    pub image_id: String,
    pub boot_device: String,
    /// A rack named at creation pins the machine to that rack's agent;
    /// empty means "whichever agent of the region reaches the BMC".
    pub rack: String,
    // Observed state, filled by the rack agent (later issues).
    pub sn: String,
    pub product_name: String,
    pub power_status: String,
    pub ipmi_connected: bool,
}

impl Default for MachineRecord {
    fn default() -> Self {
        MachineRecord {
            pmid: PmId::generate(),
            region: String::new(),
            company_id: 0,
            project_id: String::new(),
            name: String::new(),
            remark: String::new(),
            tags: Vec::new(),
            pm_tags: Vec::new(),
            reason: String::new(),
            description: String::new(),
            expire_time: 0,
            create_time: 0,
            update_time: 0,
            status: Status::Registered,
            failure_reason: String::new(),
            ipmi_ip: String::new(),
            ipmi_user: String::new(),
            ipmi_password_sealed: Vec::new(),
            bmc_type_name: String::new(),
            bmc_info: String::new(),
            rack_location: String::new(),
            label: String::new(),
            drive_type: String::new(),
            custom_metrics_path: String::new(),
            hostname: String::new(),
            ip: String::new(),
            netmask: String::new(),
            gateway: String::new(),
            install_mode: String::new(),
            image_id: String::new(),
            boot_device: String::new(),
            rack: String::new(),
            sn: String::new(),
            product_name: String::new(),
            power_status: String::new(),
            ipmi_connected: false,
        }
    }
}

impl MachineRecord {
    pub fn password_context(pmid: &PmId) -> String {
        format!("pm/{pmid}/ipmi-password")
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub company_id: i64,
    pub company_name: String,
    pub email: String,
    pub create_time: i64,
}

/// An API key pair; the private key is sealed (context `key/<PublicKey>`)
/// because the signature scheme needs it in clear to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub public_key: String,
    pub private_key_sealed: Vec<u8>,
    /// None for admin keys, the tenant for tenant keys.
    pub company_id: Option<i64>,
    pub description: String,
    pub create_time: i64,
}

impl KeyRecord {
    pub fn private_key_context(public_key: &str) -> String {
        format!("key/{public_key}")
    }
}

/// What ListPMV2 / DescribePM can sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CreateTime,
    UpdateTime,
    Name,
    Hostname,
    Sn,
    Status,
    Pmid,
    IpmiIp,
    ExpireTime,
}

impl SortKey {
    pub const NAMES: [(&'static str, SortKey); 9] = [
        ("CreateTime", SortKey::CreateTime),
        ("UpdateTime", SortKey::UpdateTime),
        ("Name", SortKey::Name),
        ("Hostname", SortKey::Hostname),
        ("SN", SortKey::Sn),
        ("Status", SortKey::Status),
        ("PMID", SortKey::Pmid),
        ("IPMIIP", SortKey::IpmiIp),
        ("ExpireTime", SortKey::ExpireTime),
    ];
}

/// `Tag=k` matches a PMTag `k` or a Tag with Key `k`; `Tag=k=v` matches a
/// Tag with Key `k` and Value `v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    Key(String),
    KeyValue(String, String),
}

/// A machine query. Empty lists and None mean "no filter".
#[derive(Debug, Clone)]
pub struct MachineQuery {
    pub region: String,
    pub company_id: Option<i64>,
    pub project_ids: Vec<String>,
    pub pmids: Vec<String>,
    pub sns: Vec<String>,
    pub status: Option<Status>,
    pub hostname: Option<String>,
    pub sn: Option<String>,
    pub ip: Option<String>,
    pub ipmi_ip: Option<String>,
    pub tag: Option<TagFilter>,
    /// Case-insensitive substring of name, remark, description, hostname,
    /// SN, IP, IPMIIP, PMID, rack location or label.
    pub keyword: Option<String>,
    pub sort_by: SortKey,
    pub descending: bool,
    pub limit: usize,
    pub offset: usize,
}

impl MachineQuery {
    pub fn in_region(region: impl Into<String>) -> Self {
        MachineQuery {
            region: region.into(),
            company_id: None,
            project_ids: Vec::new(),
            pmids: Vec::new(),
            sns: Vec::new(),
            status: None,
            hostname: None,
            sn: None,
            ip: None,
            ipmi_ip: None,
            tag: None,
            keyword: None,
            sort_by: SortKey::CreateTime,
            descending: true,
            limit: 100,
            offset: 0,
        }
    }
}

/// One page of a query and how many machines matched in all.
pub struct MachinePage {
    pub items: Vec<Arc<MachineRecord>>,
    pub total: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure while {op}")]
    Storage {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored record {key} does not decode")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// The caller's check refused the change, or a uniqueness rule did.
    #[error(transparent)]
    Rejected(ApiError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(api) => api,
            other => {
                let mut msg = other.to_string();
                let mut src = std::error::Error::source(&other);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                ApiError::Internal(msg)
            }
        }
    }
}

/// A check run inside a write, against the record as it is at that moment.
pub type Check<'a, T> = &'a mut dyn FnMut(&mut T) -> Result<(), ApiError>;

/// The store interface. Every method that writes is durable on return.
pub trait Store: Send + Sync + 'static {
    /// The concrete backend, for backend-specific tools (bulk loading).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Adds a machine. Refused when its BMC address is already registered
    /// in the same region.
    fn insert_machine(&self, m: MachineRecord) -> Result<Arc<MachineRecord>, StoreError>;
    /// Reads, changes with `f` and writes one machine atomically. `Ok(None)`
    /// when there is no such machine.
    fn update_machine(
        &self,
        id: &PmId,
        f: Check<'_, MachineRecord>,
    ) -> Result<Option<Arc<MachineRecord>>, StoreError>;
    /// Removes a machine if `check` allows it. `Ok(None)` when absent.
    fn delete_machine(
        &self,
        id: &PmId,
        check: Check<'_, MachineRecord>,
    ) -> Result<Option<Arc<MachineRecord>>, StoreError>;
    fn machine(&self, id: &PmId) -> Result<Option<Arc<MachineRecord>>, StoreError>;
    fn query_machines(&self, q: &MachineQuery) -> Result<MachinePage, StoreError>;
    /// How many machines a tenant holds (any region).
    fn count_machines_of(&self, company_id: i64) -> Result<usize, StoreError>;

    fn put_tenant(&self, t: &TenantRecord, must_be_new: bool) -> Result<(), StoreError>;
    fn tenant(&self, company_id: i64) -> Result<Option<TenantRecord>, StoreError>;
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
    fn delete_tenant(&self, company_id: i64) -> Result<bool, StoreError>;

    fn put_key(&self, k: &KeyRecord) -> Result<(), StoreError>;
    fn key(&self, public_key: &str) -> Result<Option<KeyRecord>, StoreError>;
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    fn delete_key(&self, public_key: &str) -> Result<bool, StoreError>;

    /// Small named settings (per-region switches, the install network).
    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}
