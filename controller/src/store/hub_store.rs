//! The agent hub's persistence (enrollment tokens, enrolled agents) on the embedded redb store.

use std::sync::Arc;

use ironrack_common::tunnel::{AgentId, EnrollRefusal, Fingerprint};
use redb::ReadableTable;

use super::redb_store::{HUB_TOKENS, RedbStore};
use crate::hub::{AgentRecord, ConsumeError, HubStore, StoreError as HubStoreError, TokenRecord};

fn hub_err<E: std::fmt::Display>(operation: &'static str) -> impl FnOnce(E) -> HubStoreError {
    move |e| HubStoreError {
        operation,
        message: e.to_string(),
    }
}

/// Adapts [`RedbStore`] to the hub's store trait. Agents are cached in
/// memory by the store (few, read on every routing decision); tokens are
/// read from disk (rare).
#[derive(Clone)]
pub struct RedbHubStore(pub Arc<RedbStore>);

impl HubStore for RedbHubStore {
    fn create_token(&self, token: TokenRecord) -> Result<(), HubStoreError> {
        let s = &self.0;
        let _w = s.write_lock.lock();
        let wtx = s.db.begin_write().map_err(hub_err("create_token"))?;
        {
            let mut t = wtx
                .open_table(HUB_TOKENS)
                .map_err(hub_err("create_token"))?;
            if t.get(token.id.as_str())
                .map_err(hub_err("create_token"))?
                .is_some()
            {
                return Err(HubStoreError {
                    operation: "create_token",
                    message: format!("token {} already exists", token.id),
                });
            }
            let bytes = serde_json::to_vec(&token).map_err(hub_err("create_token"))?;
            t.insert(token.id.as_str(), bytes.as_slice())
                .map_err(hub_err("create_token"))?;
        }
        wtx.commit().map_err(hub_err("create_token"))
    }

    fn consume_token(
        &self,
        id: &str,
        now_unix_s: u64,
        agent: &AgentId,
        validate: &dyn Fn(&TokenRecord) -> Result<(), EnrollRefusal>,
    ) -> Result<TokenRecord, ConsumeError> {
        let s = &self.0;
        let _w = s.write_lock.lock();
        let wtx = s.db.begin_write().map_err(hub_err("consume_token"))?;
        let token = {
            let mut t = wtx
                .open_table(HUB_TOKENS)
                .map_err(hub_err("consume_token"))?;
            let mut token: TokenRecord = match t.get(id).map_err(hub_err("consume_token"))? {
                Some(v) => serde_json::from_slice(v.value()).map_err(hub_err("consume_token"))?,
                None => {
                    return Err(ConsumeError::Refused(EnrollRefusal::UnknownToken {
                        token_id: id.to_owned(),
                    }));
                }
            };
            validate(&token).map_err(ConsumeError::Refused)?;
            token.used_unix_s = Some(now_unix_s);
            token.used_by = Some(agent.clone());
            let bytes = serde_json::to_vec(&token).map_err(hub_err("consume_token"))?;
            t.insert(id, bytes.as_slice())
                .map_err(hub_err("consume_token"))?;
            token
        };
        wtx.commit().map_err(hub_err("consume_token"))?;
        Ok(token)
    }

    fn upsert_agent(&self, agent: AgentRecord) -> Result<(), HubStoreError> {
        self.0.put_agent(agent).map_err(hub_err("upsert_agent"))
    }

    fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, HubStoreError> {
        Ok(self.0.agents_cached().into_iter().find(|a| &a.id == id))
    }

    fn agent_by_cert(&self, cert: &Fingerprint) -> Result<Option<AgentRecord>, HubStoreError> {
        Ok(self
            .0
            .agents_cached()
            .into_iter()
            .find(|a| &a.cert_fingerprint == cert))
    }

    fn list_agents(&self) -> Result<Vec<AgentRecord>, HubStoreError> {
        Ok(self.0.agents_cached())
    }

    fn revoke_agent(&self, id: &AgentId) -> Result<bool, HubStoreError> {
        let Some(mut a) = self.get_agent(id)? else {
            return Ok(false);
        };
        a.revoked = true;
        self.upsert_agent(a)?;
        Ok(true)
    }

    fn touch_agent(&self, id: &AgentId, now_unix_s: u64) -> Result<(), HubStoreError> {
        if let Some(mut a) = self.get_agent(id)? {
            a.last_seen_unix_s = Some(now_unix_s);
            self.upsert_agent(a)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_consumed_once_and_agents_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = RedbHubStore(Arc::new(RedbStore::open(&path).unwrap()));
        store
            .create_token(TokenRecord {
                id: "t1".into(),
                secret_sha256: [0; 32],
                region: "r1".into(),
                created_unix_s: 0,
                expires_unix_s: 10,
                used_unix_s: None,
                used_by: None,
            })
            .unwrap();
        let agent = AgentId::generate();
        let once = |t: &TokenRecord| match t.used_unix_s {
            Some(_) => Err(EnrollRefusal::TokenUsed {
                token_id: t.id.clone(),
            }),
            None => Ok(()),
        };
        store.consume_token("t1", 1, &agent, &once).unwrap();
        assert!(store.consume_token("t1", 2, &agent, &once).is_err());
        let fp = Fingerprint::of_der(b"cert");
        store
            .upsert_agent(AgentRecord {
                id: agent.clone(),
                region: "r1".into(),
                rack: "a".into(),
                bmc_networks: vec!["127.0.0.0/8".into()],
                agent_version: "0".into(),
                cert_fingerprint: fp,
                enrolled_unix_s: 1,
                last_seen_unix_s: None,
                revoked: false,
            })
            .unwrap();
        drop(store);
        let store = RedbHubStore(Arc::new(RedbStore::open(&path).unwrap()));
        assert!(store.consume_token("t1", 3, &agent, &once).is_err());
        assert_eq!(store.agent_by_cert(&fp).unwrap().unwrap().id, agent);
        assert!(store.revoke_agent(&agent).unwrap());
        assert!(store.get_agent(&agent).unwrap().unwrap().revoked);
    }
}
