//! Machine shapes on the wire: PMInfo (DescribePM), PMInfoV2 (ListPMV2) and their parts.
//!
//! Field names follow the spec exactly (PascalCase). Both generations are
//! views of the same stored record; the controller fills them.

use serde::{Deserialize, Serialize};

/// A key/value label (`Tags`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnifiedTag {
    pub key: String,
    pub value: String,
}

/// How the controller reaches the machine's BMC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BmcDetails {
    /// `ipmi` or `redfish`; empty until known.
    #[serde(rename = "BMCType")]
    pub bmc_type: String,
    /// Full address with scheme and port, e.g. `ipmi://198.51.100.7:623`.
    pub address: String,
    /// The BMC user name (never the password).
    pub credentials_name: String,
    pub disable_certificate_verification: bool,
}

/// Console readiness, driven by PreparePMKVM / CleanPMKVM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KvmStatus {
    pub phase: String,
    #[serde(rename = "URL")]
    pub url: String,
    pub failure_message: String,
    #[serde(rename = "SupportKVM")]
    pub support_kvm: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CpuInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub present: bool,
    pub model: String,
    pub core_number: i64,
    pub in_used_core_number: i64,
    pub rated_power: i64,
    #[serde(rename = "L1Cache")]
    pub l1_cache: i64,
    #[serde(rename = "L2Cache")]
    pub l2_cache: i64,
    #[serde(rename = "L3Cache")]
    pub l3_cache: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemoryInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub present: bool,
    pub manufacture: String,
    pub capacity: i64,
    pub speed: i64,
    #[serde(rename = "SN")]
    pub sn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PmNicInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub present: bool,
    pub manufacture: String,
    pub device: String,
    #[serde(rename = "MAC")]
    pub mac: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PcieInfo {
    pub present: bool,
    #[serde(rename = "VendorID")]
    pub vendor_id: String,
    #[serde(rename = "DeviceID")]
    pub device_id: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub width: String,
    pub speed: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntrospectionNic {
    pub name: String,
    pub mac: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntrospectionDisk {
    pub name: String,
    pub capacity: i64,
    pub by_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntrospectionCpu {
    pub model_name: String,
    pub frequency: String,
    pub count: i64,
    pub architecture: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PmIpInfo {
    #[serde(rename = "IPID")]
    pub ip_id: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "VPCID")]
    pub vpc_id: String,
    #[serde(rename = "SubnetID")]
    pub subnet_id: String,
    pub address: String,
    pub protocol: String,
}

/// One machine as DescribePM shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PmInfo {
    pub name: String,
    pub remark: String,
    pub region: String,
    pub region_alias: String,
    #[serde(rename = "CompanyID")]
    pub company_id: i64,
    pub company_name: String,
    pub email: String,
    #[serde(rename = "ProjectID")]
    pub project_id: String,
    pub project_name: String,
    pub reason: String,
    pub create_time: i64,
    pub tags: Vec<UnifiedTag>,
    pub expire_time: i64,
    #[serde(rename = "PMID")]
    pub pmid: String,
    #[serde(rename = "IPMIIP")]
    pub ipmi_ip: String,
    #[serde(rename = "IPMIUser")]
    pub ipmi_user: String,
    /// Filled for admin keys only; always empty for tenants.
    #[serde(rename = "IPMIPassword")]
    pub ipmi_password: String,
    #[serde(rename = "IPMIIsConnected")]
    pub ipmi_is_connected: bool,
    pub rack_location: String,
    pub label: String,
    pub status: String,
    pub power_status: String,
    #[serde(rename = "SN")]
    pub sn: String,
    pub product_name: String,
    #[serde(rename = "KVMStatus")]
    pub kvm_status: KvmStatus,
    #[serde(rename = "CPUsInfo")]
    pub cpus_info: Vec<CpuInfo>,
    pub memories_info: Vec<MemoryInfo>,
    #[serde(rename = "NICsInfo")]
    pub nics_info: Vec<PmNicInfo>,
    #[serde(rename = "PCIEsInfo")]
    pub pcies_info: Vec<PcieInfo>,
    pub custom_metrics_path: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub hostname: String,
    pub boot_device: String,
    #[serde(rename = "IntrospectionNICsInfo")]
    pub introspection_nics_info: Vec<IntrospectionNic>,
    pub introspection_disks_info: Vec<IntrospectionDisk>,
    pub introspection_arch: String,
    #[serde(rename = "IntrospectionCPU")]
    pub introspection_cpu: IntrospectionCpu,
    pub introspection_memory: i64,
    #[serde(rename = "IPInfos")]
    pub ip_infos: Vec<PmIpInfo>,
    #[serde(rename = "BMCDetails")]
    pub bmc_details: BmcDetails,
    pub failure_reason: String,
    /// ironrack: the rack whose agent owns this machine ("" when none).
    pub rack: String,
    /// ironrack: that agent's id.
    #[serde(rename = "AgentID")]
    pub agent_id: String,
    /// ironrack: `online`, `offline` (the agent is not connected: power
    /// state is the last one seen) or `unassigned` (no agent reaches it).
    pub rack_state: String,
    /// ironrack: why a machine is unassigned or offline.
    pub rack_message: String,
}

/// One machine as ListPMV2 shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PmInfoV2 {
    pub region: String,
    #[serde(rename = "CompanyID")]
    pub company_id: i64,
    pub company_name: String,
    #[serde(rename = "ProjectID")]
    pub project_id: String,
    pub project_name: String,
    pub name: String,
    pub remark: String,
    pub tags: Vec<UnifiedTag>,
    pub create_time: i64,
    pub update_time: i64,
    pub email: String,
    pub reason: String,
    pub expire_time: i64,
    #[serde(rename = "PMID")]
    pub pmid: String,
    #[serde(rename = "SN")]
    pub sn: String,
    pub hostname: String,
    pub status: String,
    #[serde(rename = "IPMIIP")]
    pub ipmi_ip: String,
    #[serde(rename = "IPMIUsername")]
    pub ipmi_username: String,
    /// Filled for admin keys only; always empty for tenants.
    #[serde(rename = "IPMIPassword")]
    pub ipmi_password: String,
    #[serde(rename = "BMCTypeName")]
    pub bmc_type_name: String,
    #[serde(rename = "BMCInfo")]
    pub bmc_info: String,
    #[serde(rename = "IP")]
    pub ip: String,
    pub netmask: String,
    pub gateway: String,
    pub install_mode: String,
    pub validity_check_results: Vec<String>,
    #[serde(rename = "PMTags")]
    pub pm_tags: Vec<String>,
    pub description: String,
    pub hardware_info: String,
    pub rack_location: String,
    pub custom_metrics_path: String,
    /// ironrack: `on`, `off`, or empty until the rack has seen the BMC
    /// (the same value as DescribePM's PowerStatus).
    pub power_status: String,
    /// ironrack: the BMC answered the rack's last look.
    #[serde(rename = "IPMIIsConnected")]
    pub ipmi_is_connected: bool,
    /// ironrack: the rack whose agent owns this machine ("" when none).
    pub rack: String,
    /// ironrack: that agent's id.
    #[serde(rename = "AgentID")]
    pub agent_id: String,
    /// ironrack: `online`, `offline` (the agent is not connected: power
    /// state is the last one seen) or `unassigned` (no agent reaches it).
    pub rack_state: String,
    /// ironrack: why a machine is unassigned or offline.
    pub rack_message: String,
}
