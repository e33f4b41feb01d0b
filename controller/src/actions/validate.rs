//! Parameter checks shared by the actions; each error names the parameter and the rule.

use std::net::{IpAddr, SocketAddr};

use ironrack_common::ApiError;
use ironrack_common::ids::PmId;
use ironrack_common::machine::UnifiedTag;
use ironrack_common::params::Params;

pub const MAX_LIMIT: i64 = 1000;
pub const DEFAULT_LIMIT: i64 = 100;
const MAX_OFFSET: i64 = 1_000_000_000;
const MAX_TAGS: usize = 64;

/// Free text: bounded, and no control characters except newline and tab.
pub fn text(p: &Params, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(v) = p.opt_str(name)? else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(ApiError::invalid(
            name,
            format!("longer than {max} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::invalid(name, "contains control characters"));
    }
    Ok(Some(v))
}

/// A region name such as `cn-bj2`: letters, digits, `-`, `_`, `.`.
pub fn region_value(name: &str, v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            name,
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ))
    }
}

pub fn req_region(p: &Params) -> Result<String, ApiError> {
    let r = p.req_str("Region")?;
    region_value("Region", &r)?;
    Ok(r)
}

pub fn opt_region(p: &Params) -> Result<Option<String>, ApiError> {
    match p.opt_str("Region")? {
        Some(r) if !r.is_empty() => {
            region_value("Region", &r)?;
            Ok(Some(r))
        }
        _ => Ok(None),
    }
}

pub fn pmid_value(name: &str, v: &str) -> Result<PmId, ApiError> {
    PmId::parse(v).ok_or_else(|| {
        ApiError::invalid(
            name,
            format!("{v:?} is not a machine id (pm- and 12 hex digits)"),
        )
    })
}

pub fn req_pmid(p: &Params) -> Result<PmId, ApiError> {
    pmid_value("PMID", &p.req_str("PMID")?)
}

/// A positive CompanyID.
pub fn company_value(name: &str, v: i64) -> Result<i64, ApiError> {
    if v > 0 {
        Ok(v)
    } else {
        Err(ApiError::invalid(name, "must be a positive integer"))
    }
}

pub fn opt_company(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match p.opt_int(name)? {
        None | Some(0) => Ok(None),
        Some(v) => company_value(name, v).map(Some),
    }
}

/// Limit and Offset, with their bounds and defaults.
pub fn paging(p: &Params) -> Result<(usize, usize), ApiError> {
    let limit = p
        .opt_int_in("Limit", 1..=MAX_LIMIT)?
        .unwrap_or(DEFAULT_LIMIT);
    let offset = p.opt_int_in("Offset", 0..=MAX_OFFSET)?.unwrap_or(0);
    Ok((limit as usize, offset as usize))
}

/// RFC 1123 host name; empty clears it.
pub fn hostname(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(h) = p.opt_str(name)? else {
        return Ok(None);
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.is_empty() || (h.len() <= 253 && h.split('.').all(label_ok)) {
        Ok(Some(h))
    } else {
        Err(ApiError::invalid(
            name,
            "must be a host name: dot-separated labels of letters, digits and '-'",
        ))
    }
}

/// A BMC address: an IP, or IP and port (`198.51.100.7:623`, `[2001:db8::7]:623`).
/// Stored in one canonical spelling so one BMC cannot be registered twice:
/// the default port 623 is dropped and IPv4-mapped IPv6 becomes IPv4.
pub fn bmc_address(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(a) = p.opt_str(name)? else {
        return Ok(None);
    };
    let a = a.trim();
    if a.is_empty() {
        return Ok(Some(String::new()));
    }
    let canonical_ip = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if let Ok(ip) = a.parse::<IpAddr>() {
        return Ok(Some(canonical_ip(ip).to_string()));
    }
    match a.parse::<SocketAddr>() {
        Ok(sa) if sa.port() == 0 => Err(ApiError::invalid(name, "port 0 is not a BMC port")),
        Ok(sa) => {
            let ip = canonical_ip(sa.ip());
            Ok(Some(if sa.port() == IPMI_PORT {
                ip.to_string()
            } else {
                SocketAddr::new(ip, sa.port()).to_string()
            }))
        }
        Err(_) => Err(ApiError::invalid(
            name,
            format!("{a:?} is not an IP address or IP:port"),
        )),
    }
}

/// IPMI over LAN (RMCP) listens on UDP 623 unless told otherwise.
const IPMI_PORT: u16 = 623;

pub fn ip(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(a) = p.opt_str(name)? else {
        return Ok(None);
    };
    if a.is_empty() || a.parse::<IpAddr>().is_ok() {
        Ok(Some(a))
    } else {
        Err(ApiError::invalid(
            name,
            format!("{a:?} is not an IP address"),
        ))
    }
}

/// A netmask: dotted IPv4 with contiguous ones, or a prefix length.
pub fn netmask(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(m) = p.opt_str(name)? else {
        return Ok(None);
    };
    let ok = m.is_empty()
        || m.parse::<u8>().is_ok_and(|n| n <= 128)
        || m.parse::<std::net::Ipv4Addr>().is_ok_and(|a| {
            let bits = u32::from(a);
            bits.leading_ones() + bits.trailing_zeros() == 32
        });
    if ok {
        Ok(Some(m))
    } else {
        Err(ApiError::invalid(
            name,
            "must be a dotted mask like 255.255.255.0 or a prefix length",
        ))
    }
}

pub fn bmc_type(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(t) = p.opt_str(name)? else {
        return Ok(None);
    };
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "" | "ipmi" | "redfish" => Ok(Some(lower)),
        _ => Err(ApiError::invalid(name, "must be ipmi or redfish")),
    }
}

/// A project id: letters, digits, `-`, `_`, `.`; empty clears it.
pub fn project(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = p.opt_str(name)? else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(Some(v));
    }
    region_value(name, &v).map(|_| Some(v))
}

pub fn tags(p: &Params, name: &str) -> Result<Option<Vec<UnifiedTag>>, ApiError> {
    let Some(items) = p.opt_obj_list(name)? else {
        return Ok(None);
    };
    if items.len() > MAX_TAGS {
        return Err(ApiError::invalid(name, format!("at most {MAX_TAGS} tags")));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let key = t
            .req_str("Key")
            .map_err(|_| ApiError::missing(format!("{name}.{i}.Key")))?;
        if key.chars().count() > 128 || key.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                format!("{name}.{i}.Key"),
                "at most 128 printable characters",
            ));
        }
        let value = t.opt_str("Value")?.unwrap_or_default();
        if value.chars().count() > 256 || value.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                format!("{name}.{i}.Value"),
                "at most 256 printable characters",
            ));
        }
        out.push(UnifiedTag { key, value });
    }
    Ok(Some(out))
}

pub fn string_tags(p: &Params, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    let Some(items) = p.opt_str_list(name)? else {
        return Ok(None);
    };
    if items.len() > MAX_TAGS {
        return Err(ApiError::invalid(name, format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in items.iter().enumerate() {
        if t.is_empty() || t.chars().count() > 128 || t.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                format!("{name}.{i}"),
                "1-128 printable characters",
            ));
        }
    }
    Ok(Some(items))
}
