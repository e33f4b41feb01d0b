//! Reaching machines on their racks: which agent owns a machine, calls through its tunnel,
//! keeping each agent's machine set current, and applying the power states it reports.
//!
//! Ownership is computed, not stored: a machine belongs to the agent of its
//! Region whose BMC networks contain its IPMIIP, longest prefix first,
//! unless the machine names a rack. A machine no agent reaches stays
//! registered and visibly unassigned; it is assigned the moment an agent
//! whose networks cover it enrolls.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ironrack_common::ApiError;
use ironrack_common::Secret;
use ironrack_common::ids::PmId;
use ironrack_common::rack::{BmcFailureKind, BmcKind, BmcSpec, ManagedMachine};
use ironrack_common::tunnel::{AgentEvent, AgentId, AgentRequest, AgentResponse, TunnelError};
use tokio::sync::Notify;

use crate::hub::{AgentInfo, Hub, HubError, ReceivedEvent};
use crate::seal::Sealer;
use crate::store::{MachineQuery, MachineRecord, Store};
use crate::telemetry;

/// How often the machine sets are reconciled even when nothing pokes.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// A full re-push to every agent, in case one lost its set.
const FULL_RESYNC_EVERY: u32 = 30;
const SYNC_DEADLINE: Duration = Duration::from_secs(15);

/// Where a machine stands with respect to its rack.
#[derive(Debug, Clone)]
pub enum Placement {
    Online(AgentInfo),
    Offline(AgentInfo),
    Unassigned(String),
}

impl Placement {
    pub fn state(&self) -> &'static str {
        match self {
            Placement::Online(_) => "online",
            Placement::Offline(_) => "offline",
            Placement::Unassigned(_) => "unassigned",
        }
    }

    pub fn agent(&self) -> Option<&AgentInfo> {
        match self {
            Placement::Online(a) | Placement::Offline(a) => Some(a),
            Placement::Unassigned(_) => None,
        }
    }
}

/// The IP part of `IP`, `IP:port` or `[v6]:port`.
pub fn bmc_ip(address: &str) -> Option<IpAddr> {
    address
        .parse::<IpAddr>()
        .ok()
        .or_else(|| address.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Picks the owning agent among `agents` (pure; unit-tested below).
pub fn route<'a>(
    region: &str,
    ipmi_ip: &str,
    pinned_rack: &str,
    agents: &'a [AgentInfo],
) -> Result<&'a AgentInfo, String> {
    let mut in_region = agents.iter().filter(|a| a.region == region && !a.revoked);
    if !pinned_rack.is_empty() {
        return in_region
            .find(|a| a.rack == pinned_rack)
            .ok_or_else(|| format!("no enrolled agent for rack {pinned_rack} in region {region}"));
    }
    let Some(ip) = bmc_ip(ipmi_ip) else {
        return Err("the machine has no BMC address (IPMIIP)".to_owned());
    };
    in_region
        .filter_map(|a| {
            a.bmc_networks
                .iter()
                .filter_map(|n| n.parse::<IpNet>().ok())
                .filter(|n| n.contains(&ip))
                .map(|n| n.prefix_len())
                .max()
                .map(|len| (len, a))
        })
        .max_by(|(la, a), (lb, b)| la.cmp(lb).then_with(|| b.id.cmp(&a.id)))
        .map(|(_, a)| a)
        .ok_or_else(|| format!("no agent of region {region} reaches BMC {ip}"))
}

pub struct Rack {
    hub: Hub,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    poke: Notify,
}

impl Rack {
    pub fn new(hub: Hub, store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Arc<Rack> {
        Arc::new(Rack {
            hub,
            store,
            sealer,
            poke: Notify::new(),
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Starts the machine-set reconciler and the event consumer.
    pub fn spawn_workers(self: &Arc<Self>) {
        if let Some(events) = self.hub.take_events() {
            tokio::spawn(self.clone().apply_events(events));
        }
        tokio::spawn(self.clone().sync_loop());
    }

    /// Asks the reconciler to run now (a machine or agent changed).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    pub fn agents(&self) -> Vec<AgentInfo> {
        self.hub.agents().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list agents");
            Vec::new()
        })
    }

    pub fn placement_in(&self, m: &MachineRecord, agents: &[AgentInfo]) -> Placement {
        match route(&m.region, &m.ipmi_ip, &m.rack, agents) {
            Ok(a) if a.connected => Placement::Online(a.clone()),
            Ok(a) => Placement::Offline(a.clone()),
            Err(why) => Placement::Unassigned(why),
        }
    }

    pub fn placement(&self, m: &MachineRecord) -> Placement {
        self.placement_in(m, &self.agents())
    }

    /// The BMC of a stored machine, with its password unsealed.
    pub fn bmc_spec(&self, m: &MachineRecord) -> Result<BmcSpec, ApiError> {
        if m.ipmi_ip.is_empty() {
            return Err(ApiError::NoBmcAddress(format!(
                "machine {} has no IPMIIP; set one with UpdatePMV2",
                m.pmid
            )));
        }
        let password = if m.ipmi_password_sealed.is_empty() {
            String::new()
        } else {
            self.sealer
                .open_str(
                    &MachineRecord::password_context(&m.pmid),
                    &m.ipmi_password_sealed,
                )
                .map_err(|e| ApiError::Internal(format!("machine {}: {e}", m.pmid)))?
        };
        Ok(BmcSpec {
            kind: if m.bmc_type_name == "redfish" {
                BmcKind::Redfish
            } else {
                BmcKind::Ipmi
            },
            address: m.ipmi_ip.clone(),
            username: m.ipmi_user.clone(),
            password: Secret::new(password),
            disable_certificate_verification: m.bmc_type_name == "redfish",
        })
    }

    /// The connected agent that owns `m`, or the RetCode that says why not.
    pub fn owner_of(&self, m: &MachineRecord) -> Result<AgentInfo, ApiError> {
        match self.placement(m) {
            Placement::Online(a) => Ok(a),
            Placement::Offline(a) => Err(offline(&a)),
            Placement::Unassigned(why) => Err(ApiError::RackUnassigned(format!(
                "machine {} is not assigned to a rack: {why}",
                m.pmid
            ))),
        }
    }

    /// The connected agent of `region` that reaches `address` (for BMCs of
    /// no machine yet: TestPMIPMIV2, DetectBMCTypeV2).
    pub fn owner_of_address(&self, region: &str, address: &str) -> Result<AgentInfo, ApiError> {
        let agents = self.agents();
        match route(region, address, "", &agents) {
            Ok(a) if a.connected => Ok(a.clone()),
            Ok(a) => Err(offline(a)),
            Err(why) => Err(ApiError::RackUnassigned(why)),
        }
    }

    /// One request to one agent, with its failure turned into a RetCode.
    pub async fn call(
        &self,
        agent: &AgentInfo,
        request: AgentRequest,
        deadline: Duration,
    ) -> Result<AgentResponse, ApiError> {
        let kind = request.kind();
        let started = Instant::now();
        let result = self.hub.call(&agent.id, request, deadline).await;
        let label = result.as_ref().map_or_else(HubError::label, |_| "ok");
        telemetry::agent_call(kind, label, started.elapsed());
        result.map_err(|e| hub_error(agent, kind, e))
    }

    async fn apply_events(self: Arc<Self>, mut events: tokio::sync::mpsc::Receiver<ReceivedEvent>) {
        while let Some(ev) = events.recv().await {
            match ev.event {
                AgentEvent::PowerObserved {
                    pmid,
                    state,
                    connected,
                    error,
                    ..
                } => {
                    let rack = self.clone();
                    let agent = ev.agent_id.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        rack.apply_power(&agent, &pmid, state, connected, error.as_deref())
                    })
                    .await;
                }
                AgentEvent::Notice { message } => {
                    tracing::info!(agent_id = %ev.agent_id, seq = ev.seq, message, "agent notice");
                }
            }
        }
    }

    fn apply_power(
        &self,
        agent: &AgentId,
        pmid: &str,
        state: Option<ironrack_common::rack::PowerState>,
        connected: bool,
        error: Option<&str>,
    ) {
        let Some(id) = PmId::parse(pmid) else {
            tracing::warn!(agent_id = %agent, pmid, "power event for a malformed machine id");
            return;
        };
        let Ok(Some(m)) = self.store.machine(&id) else {
            tracing::debug!(agent_id = %agent, pmid, "power event for an unknown machine");
            return;
        };
        // Only the owner's word counts: a stale agent that lost the machine
        // must not overwrite what the new owner reports.
        let owner = self.placement(&m).agent().map(|a| a.id.clone());
        if owner.as_ref() != Some(agent) {
            tracing::warn!(agent_id = %agent, pmid, "power event from an agent that does not own the machine; ignored");
            return;
        }
        let result = self.store.update_machine(&id, &mut |m| {
            if let Some(s) = state {
                m.power_status = s.as_str().to_owned();
            }
            m.ipmi_connected = connected;
            Ok(())
        });
        match result {
            Ok(_) => {
                tracing::debug!(agent_id = %agent, pmid, ?state, connected, error, "power observed")
            }
            Err(e) => {
                tracing::error!(agent_id = %agent, pmid, error = %e, "cannot store an observed power state")
            }
        }
    }

    /// Keeps each connected agent's machine set equal to what it owns.
    async fn sync_loop(self: Arc<Self>) {
        let mut pushed: HashMap<AgentId, (Option<SocketAddr>, u64)> = HashMap::new();
        let mut round: u32 = 0;
        loop {
            tokio::select! {
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep(SYNC_INTERVAL) => {}
            }
            round = round.wrapping_add(1);
            if round.is_multiple_of(FULL_RESYNC_EVERY) {
                pushed.clear();
            }
            let agents = self.agents();
            let rack = self.clone();
            let agents_for_sets = agents.clone();
            let sets = match tokio::task::spawn_blocking(move || {
                rack.machine_sets(&agents_for_sets)
            })
            .await
            {
                Ok(Ok(sets)) => sets,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot compute machine sets");
                    continue;
                }
                Err(_) => continue,
            };
            for agent in agents.iter().filter(|a| a.connected) {
                let machines = sets.get(&agent.id).cloned().unwrap_or_default();
                let mut h = DefaultHasher::new();
                for m in &machines {
                    m.pmid.hash(&mut h);
                    m.bmc.address.hash(&mut h);
                    m.bmc.username.hash(&mut h);
                    m.bmc.password.expose().hash(&mut h);
                    m.bmc.kind.hash(&mut h);
                }
                let key = (agent.remote_addr, h.finish());
                if pushed.get(&agent.id) == Some(&key) {
                    continue;
                }
                let count = machines.len();
                match self
                    .call(
                        agent,
                        AgentRequest::SyncMachines { machines },
                        SYNC_DEADLINE,
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(agent_id = %agent.id, rack = %agent.rack, machines = count, "machine set pushed");
                        pushed.insert(agent.id.clone(), key);
                    }
                    Err(e) => {
                        tracing::warn!(agent_id = %agent.id, error = %e, "cannot push machine set");
                    }
                }
            }
            pushed.retain(|id, _| agents.iter().any(|a| &a.id == id && a.connected));
        }
    }

    fn machine_sets(
        &self,
        agents: &[AgentInfo],
    ) -> Result<HashMap<AgentId, Vec<ManagedMachine>>, ApiError> {
        let mut regions: Vec<&str> = agents
            .iter()
            .filter(|a| a.connected)
            .map(|a| a.region.as_str())
            .collect();
        regions.sort_unstable();
        regions.dedup();
        let mut sets: HashMap<AgentId, Vec<ManagedMachine>> = HashMap::new();
        for region in regions {
            let mut q = MachineQuery::in_region(region);
            q.limit = usize::MAX;
            q.descending = false;
            for m in self.store.query_machines(&q)?.items {
                if m.ipmi_ip.is_empty() {
                    continue;
                }
                if let Ok(owner) = route(&m.region, &m.ipmi_ip, &m.rack, agents) {
                    let bmc = self.bmc_spec(&m)?;
                    sets.entry(owner.id.clone())
                        .or_default()
                        .push(ManagedMachine {
                            pmid: m.pmid.to_string(),
                            bmc,
                        });
                }
            }
        }
        Ok(sets)
    }
}

fn offline(a: &AgentInfo) -> ApiError {
    let seen = a
        .last_seen_unix_s
        .map_or("never connected".to_owned(), |s| {
            format!("last seen at {s} (Unix time)")
        });
    ApiError::AgentOffline(format!(
        "rack agent {} (rack {}, region {}) is offline, {seen}",
        a.id, a.rack, a.region
    ))
}

fn hub_error(agent: &AgentInfo, kind: &str, e: HubError) -> ApiError {
    match e {
        HubError::AgentOffline { .. } => offline(agent),
        HubError::Timeout { after, .. } => ApiError::AgentTimeout(format!(
            "rack agent {} (rack {}) did not finish {kind} within {after:?}",
            agent.id, agent.rack
        )),
        HubError::Agent {
            source: TunnelError::DeadlineExceeded,
            ..
        } => ApiError::AgentTimeout(format!(
            "rack agent {} (rack {}) ran out of time for {kind}",
            agent.id, agent.rack
        )),
        HubError::Agent {
            source: TunnelError::Unsupported { .. },
            ..
        } => ApiError::Bmc {
            kind: BmcFailureKind::Unsupported,
            message: format!(
                "rack agent {} (version {}) does not support {kind}; upgrade it",
                agent.id, agent.agent_version
            ),
        },
        HubError::Agent { source, .. } => ApiError::TunnelFailed(format!(
            "rack agent {} (rack {}) failed {kind}: {source}",
            agent.id, agent.rack
        )),
        HubError::Link { .. }
        | HubError::BadResponse { .. }
        | HubError::MismatchedResponse { .. } => ApiError::TunnelFailed(format!(
            "the tunnel to rack agent {} (rack {}) failed during {kind}: {e}",
            agent.id, agent.rack
        )),
        other => ApiError::Internal(format!("{kind} for agent {}: {other}", agent.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, region: &str, rack: &str, nets: &[&str]) -> AgentInfo {
        AgentInfo {
            id: AgentId::parse(id).unwrap(),
            region: region.into(),
            rack: rack.into(),
            bmc_networks: nets.iter().map(|s| s.to_string()).collect(),
            agent_version: "0".into(),
            connected: true,
            revoked: false,
            last_seen_unix_s: None,
            remote_addr: None,
        }
    }

    #[test]
    fn longest_prefix_in_the_region_wins() {
        let agents = vec![
            agent("agt-000000000001", "r1", "wide", &["198.51.100.0/24"]),
            agent("agt-000000000002", "r1", "narrow", &["198.51.100.0/28"]),
            agent("agt-000000000003", "r2", "other", &["198.51.100.0/30"]),
        ];
        assert_eq!(
            route("r1", "198.51.100.5", "", &agents).unwrap().rack,
            "narrow"
        );
        assert_eq!(
            route("r1", "198.51.100.5:6230", "", &agents).unwrap().rack,
            "narrow"
        );
        assert_eq!(
            route("r1", "198.51.100.200", "", &agents).unwrap().rack,
            "wide"
        );
        assert!(
            route("r1", "203.0.113.1", "", &agents)
                .unwrap_err()
                .contains("no agent of region r1")
        );
        assert_eq!(
            route("r1", "203.0.113.1", "wide", &agents).unwrap().rack,
            "wide"
        );
        assert!(
            route("r1", "", "", &agents)
                .unwrap_err()
                .contains("no BMC address")
        );
        let mut revoked = agents.clone();
        revoked[1].revoked = true;
        assert_eq!(
            route("r1", "198.51.100.5", "", &revoked).unwrap().rack,
            "wide"
        );
    }
}
