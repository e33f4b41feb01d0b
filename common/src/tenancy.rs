//! Tenants and API keys on the wire (admin actions beyond the spec).

use serde::{Deserialize, Serialize};

/// A tenant: the owner of allocated machines, named by CompanyID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TenantInfo {
    #[serde(rename = "CompanyID")]
    pub company_id: i64,
    pub company_name: String,
    pub email: String,
    pub create_time: i64,
}

/// An API key as listed; the private key is shown only once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiKeyInfo {
    pub public_key: String,
    /// `admin` or `tenant`.
    pub role: String,
    /// The tenant a tenant key is bound to; 0 for admin keys.
    #[serde(rename = "CompanyID")]
    pub company_id: i64,
    pub description: String,
    pub create_time: i64,
}
