//! The install (provisioning) network of a region: SetPhysicsVPCSubnet and GetPhysicsVPCSubnet.
//!
//! One IPv4 network per region, with the range the racks' DHCP will lease
//! from. It is refused when the range leaves the network, runs backwards,
//! takes the network or broadcast address, or overlaps a BMC network an
//! agent of the region announces (a lease must never land on a BMC).

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use ironrack_common::ApiError;
use ironrack_common::params::Params;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::validate::req_region;
use super::{Ctx, Reply, reply};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstallNetwork {
    vlan_id: i64,
    network: Ipv4Net,
    start: Ipv4Addr,
    end: Ipv4Addr,
}

fn key(region: &str) -> String {
    format!("install-network/{region}")
}

fn ipv4(p: &Params, name: &str) -> Result<Option<Ipv4Addr>, ApiError> {
    match p.opt_str(name)?.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<Ipv4Addr>()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, format!("{s:?} is not an IPv4 address"))),
    }
}

pub fn set_physics_vpc_subnet(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let vlan_id = p.opt_int_in("VLANID", 0..=4094)?.unwrap_or(0);
    let raw = p.req_str("Network")?;
    let network: Ipv4Net = raw.parse().map_err(|_| {
        ApiError::invalid(
            "Network",
            format!("{raw:?} is not an IPv4 network such as 198.51.100.0/24"),
        )
    })?;
    if network.trunc() != network {
        return Err(ApiError::invalid(
            "Network",
            format!("{raw} has host bits set; did you mean {}?", network.trunc()),
        ));
    }
    if network.prefix_len() > 30 {
        return Err(ApiError::invalid(
            "Network",
            "must be /30 or larger to hold a range",
        ));
    }
    let first = Ipv4Addr::from(u32::from(network.network()) + 1);
    let last = Ipv4Addr::from(u32::from(network.broadcast()) - 1);
    let start = ipv4(p, "StartIP")?.unwrap_or(first);
    let end = ipv4(p, "EndIP")?.unwrap_or(last);
    for (name, ip) in [("StartIP", start), ("EndIP", end)] {
        if !(first..=last).contains(&ip) {
            return Err(ApiError::invalid(
                name,
                format!("{ip} is outside the usable addresses of {network} ({first} - {last})"),
            ));
        }
    }
    if start > end {
        return Err(ApiError::invalid(
            "StartIP",
            format!("{start} comes after EndIP {end}"),
        ));
    }
    if let Some(rack) = ctx.app.rack.get() {
        for a in rack
            .agents()
            .iter()
            .filter(|a| a.region == region && !a.revoked)
        {
            for bmc in a
                .bmc_networks
                .iter()
                .filter_map(|n| n.parse::<IpNet>().ok())
            {
                let IpNet::V4(bmc) = bmc else { continue };
                let (lo, hi) = (u32::from(bmc.network()), u32::from(bmc.broadcast()));
                if u32::from(start) <= hi && lo <= u32::from(end) {
                    return Err(ApiError::invalid(
                        "StartIP",
                        format!(
                            "the range {start} - {end} overlaps BMC network {bmc} of rack {}",
                            a.rack
                        ),
                    ));
                }
            }
        }
    }
    let net = InstallNetwork {
        vlan_id,
        network,
        start,
        end,
    };
    let bytes = serde_json::to_vec(&net).expect("install networks serialise");
    ctx.app.store.put_setting(&key(&region), &bytes)?;
    // TODO-correctness(#4): push the network to the region's agents once
    // their DHCP service exists; until then it is stored and answered here.
    tracing::info!(region = %region, network = %network, %start, %end, vlan_id, "install network set");
    Ok(Reply::new())
}

pub fn get_physics_vpc_subnet(ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
    let region = req_region(p)?;
    let stored = ctx
        .app
        .store
        .setting(&key(&region))?
        .ok_or_else(|| ApiError::not_found("install network of region", region.clone()))?;
    let net: InstallNetwork = serde_json::from_slice(&stored)
        .map_err(|e| ApiError::Internal(format!("install network of {region}: {e}")))?;
    Ok(reply(json!({
        "Info": {
            "VPCID": format!("vpc-{region}"),
            "Network": net.network.to_string(),
            "PhysicsSubnets": [{
                "SubnetID": format!("subnet-{region}-{}", net.vlan_id),
                "Network": net.network.to_string(),
            }],
            "VLANID": net.vlan_id,
            "StartIP": net.start.to_string(),
            "EndIP": net.end.to_string(),
        }
    })))
}
