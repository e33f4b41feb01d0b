//! Who is calling: the PublicKey names a key pair, the Signature proves the caller holds it.

use std::collections::BTreeMap;

use ironrack_common::ApiError;
use ironrack_common::signature::{self, SIGNATURE_PARAM};
use serde_json::Value;

use crate::app::{App, Caller, Role};
use crate::store::KeyRecord;

const PUBLIC_KEY_PARAM: &str = "PublicKey";

fn text(flat: &BTreeMap<String, Value>, name: &str) -> Option<String> {
    match flat.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Checks the signature over every parameter but `Signature` itself.
pub fn authenticate(app: &App, flat: &BTreeMap<String, Value>) -> Result<Caller, ApiError> {
    let given = text(flat, SIGNATURE_PARAM).ok_or(ApiError::MissingSignature)?;
    let public_key =
        text(flat, PUBLIC_KEY_PARAM).ok_or_else(|| ApiError::UnknownPublicKey(String::new()))?;
    let record = app
        .store
        .key(&public_key)?
        .ok_or_else(|| ApiError::UnknownPublicKey(super::printable(&public_key)))?;
    let private_key = app
        .sealer
        .open_str(
            &KeyRecord::private_key_context(&public_key),
            &record.private_key_sealed,
        )
        .map_err(|e| ApiError::Internal(format!("key {public_key} cannot be unsealed: {e}")))?;
    if !signature::verify(flat, &private_key, &given) {
        return Err(ApiError::BadSignature);
    }
    let role = match record.company_id {
        None => Role::Admin,
        Some(c) => Role::Tenant(c),
    };
    Ok(Caller { public_key, role })
}
