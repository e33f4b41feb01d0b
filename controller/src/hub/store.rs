//! What the hub persists — enrollment tokens and enrolled agents — behind a narrow trait.
//!
//! [`HubStore`] is implemented on the controller's redb store for
//! production; [`MemoryHubStore`] serves tests and benchmarks.

use std::collections::HashMap;

use ironrack_common::tunnel::{AgentId, EnrollRefusal, Fingerprint};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A stored enrollment token. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// SHA-256 of the token secret.
    pub secret_sha256: [u8; 32],
    /// The only region an agent may enroll into with this token.
    pub region: String,
    pub created_unix_s: u64,
    pub expires_unix_s: u64,
    /// Set once, atomically, when an enrollment succeeds.
    pub used_unix_s: Option<u64>,
    pub used_by: Option<AgentId>,
}

/// An enrolled agent as the controller remembers it across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: AgentId,
    pub region: String,
    pub rack: String,
    pub bmc_networks: Vec<String>,
    pub agent_version: String,
    /// SHA-256 of the agent's current client certificate (DER); how a TLS
    /// peer is mapped to its agent.
    pub cert_fingerprint: Fingerprint,
    pub enrolled_unix_s: u64,
    /// Last time the agent completed a hello.
    pub last_seen_unix_s: Option<u64>,
    pub revoked: bool,
}

/// A storage failure (I/O, corruption); the caller logs it and refuses.
#[derive(Debug, thiserror::Error)]
#[error("hub store failed during {operation}: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub message: String,
}

/// Why a token could not be consumed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The token is unknown, or the validator refused it; nothing changed.
    #[error(transparent)]
    Refused(EnrollRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Persistence the hub needs. Keep it this narrow: it is implemented twice
/// (redb, and a distributed SQL store later).
pub trait HubStore: Send + Sync + 'static {
    /// Stores a new token. Ids are random, so a clash is a store error.
    fn create_token(&self, token: TokenRecord) -> Result<(), StoreError>;

    /// Atomically: looks the token up (unknown → `Refused(UnknownToken)`),
    /// runs `validate` on it, and only if that passes marks it used at `now`
    /// by `agent`. Two concurrent calls for one token must not both succeed.
    fn consume_token(
        &self,
        id: &str,
        now_unix_s: u64,
        agent: &AgentId,
        validate: &dyn Fn(&TokenRecord) -> Result<(), EnrollRefusal>,
    ) -> Result<TokenRecord, ConsumeError>;

    /// Inserts or replaces an agent record.
    fn upsert_agent(&self, agent: AgentRecord) -> Result<(), StoreError>;

    fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, StoreError>;

    /// The agent whose current client certificate has this fingerprint.
    fn agent_by_cert(&self, cert: &Fingerprint) -> Result<Option<AgentRecord>, StoreError>;

    fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Marks an agent revoked; `false` if there is no such agent.
    fn revoke_agent(&self, id: &AgentId) -> Result<bool, StoreError>;

    /// Records that an agent completed a hello at `now`.
    fn touch_agent(&self, id: &AgentId, now_unix_s: u64) -> Result<(), StoreError>;
}

/// An in-memory [`HubStore`] for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryHubStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    tokens: HashMap<String, TokenRecord>,
    agents: HashMap<AgentId, AgentRecord>,
}

impl MemoryHubStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl HubStore for MemoryHubStore {
    fn create_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.tokens.contains_key(&token.id) {
            return Err(StoreError {
                operation: "create_token",
                message: format!("token {} already exists", token.id),
            });
        }
        inner.tokens.insert(token.id.clone(), token);
        Ok(())
    }

    fn consume_token(
        &self,
        id: &str,
        now_unix_s: u64,
        agent: &AgentId,
        validate: &dyn Fn(&TokenRecord) -> Result<(), EnrollRefusal>,
    ) -> Result<TokenRecord, ConsumeError> {
        let mut inner = self.inner.lock();
        let token = inner.tokens.get_mut(id).ok_or_else(|| {
            ConsumeError::Refused(EnrollRefusal::UnknownToken {
                token_id: id.to_owned(),
            })
        })?;
        validate(token).map_err(ConsumeError::Refused)?;
        token.used_unix_s = Some(now_unix_s);
        token.used_by = Some(agent.clone());
        Ok(token.clone())
    }

    fn upsert_agent(&self, agent: AgentRecord) -> Result<(), StoreError> {
        self.inner.lock().agents.insert(agent.id.clone(), agent);
        Ok(())
    }

    fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self.inner.lock().agents.get(id).cloned())
    }

    fn agent_by_cert(&self, cert: &Fingerprint) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .agents
            .values()
            .find(|a| a.cert_fingerprint == *cert)
            .cloned())
    }

    fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut agents: Vec<_> = self.inner.lock().agents.values().cloned().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    fn revoke_agent(&self, id: &AgentId) -> Result<bool, StoreError> {
        Ok(match self.inner.lock().agents.get_mut(id) {
            Some(agent) => {
                agent.revoked = true;
                true
            }
            None => false,
        })
    }

    fn touch_agent(&self, id: &AgentId, now_unix_s: u64) -> Result<(), StoreError> {
        if let Some(agent) = self.inner.lock().agents.get_mut(id) {
            agent.last_seen_unix_s = Some(now_unix_s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            secret_sha256: [1; 32],
            region: "r1".into(),
            created_unix_s: 0,
            expires_unix_s: 100,
            used_unix_s: None,
            used_by: None,
        }
    }

    #[test]
    fn a_token_is_consumed_once_and_only_after_validation() {
        let store = MemoryHubStore::new();
        store.create_token(token("t1")).unwrap();
        assert!(store.create_token(token("t1")).is_err());
        let agent = AgentId::generate();
        let refuse = |t: &TokenRecord| {
            Err(EnrollRefusal::WrongSecret {
                token_id: t.id.clone(),
            })
        };
        assert!(matches!(
            store.consume_token("t1", 5, &agent, &refuse),
            Err(ConsumeError::Refused(EnrollRefusal::WrongSecret { .. }))
        ));
        let once = |t: &TokenRecord| match t.used_unix_s {
            Some(_) => Err(EnrollRefusal::TokenUsed {
                token_id: t.id.clone(),
            }),
            None => Ok(()),
        };
        let used = store.consume_token("t1", 6, &agent, &once).unwrap();
        assert_eq!(used.used_unix_s, Some(6));
        assert_eq!(used.used_by, Some(agent.clone()));
        assert!(matches!(
            store.consume_token("t1", 7, &agent, &once),
            Err(ConsumeError::Refused(EnrollRefusal::TokenUsed { .. }))
        ));
        assert!(matches!(
            store.consume_token("nope", 7, &agent, &once),
            Err(ConsumeError::Refused(EnrollRefusal::UnknownToken { .. }))
        ));
    }
}
