//! The embedded store: redb tables for durability, an in-memory index for reads.
//!
//! Each write is one redb transaction committed with immediate durability
//! (fsync) before the call returns; only then is the in-memory copy updated.
//! Writers are serialised by `write_lock`, so the memory copy always equals
//! what is on disk once a writer leaves. On open, the index is rebuilt from
//! the tables.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use ironrack_common::ApiError;
use ironrack_common::ids::PmId;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::index::MachineIndex;
use super::{
    Check, KeyRecord, MachinePage, MachineQuery, MachineRecord, Store, StoreError, TenantRecord,
};
use crate::hub::AgentRecord;

const MACHINES: TableDefinition<&str, &[u8]> = TableDefinition::new("machines");
const TENANTS: TableDefinition<i64, &[u8]> = TableDefinition::new("tenants");
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
pub(super) const HUB_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_tokens");
pub(super) const HUB_AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_agents");

fn storage<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Storage {
        op,
        source: Box::new(e.into()),
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records always serialise")
}

fn decode<T: DeserializeOwned>(key: impl ToString, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}

#[derive(Default)]
struct Cache {
    machines: MachineIndex,
    tenants: BTreeMap<i64, TenantRecord>,
    keys: HashMap<String, KeyRecord>,
    agents: BTreeMap<String, AgentRecord>,
}

pub struct RedbStore {
    pub(super) db: Database,
    cache: RwLock<Cache>,
    pub(super) write_lock: Mutex<()>,
}

impl RedbStore {
    /// Opens (or creates) the store file and loads the index.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(storage("opening the database file"))?;
        let wtx = db.begin_write().map_err(storage("creating tables"))?;
        {
            wtx.open_table(MACHINES)
                .map_err(storage("creating tables"))?;
            wtx.open_table(TENANTS)
                .map_err(storage("creating tables"))?;
            wtx.open_table(KEYS).map_err(storage("creating tables"))?;
            wtx.open_table(SETTINGS)
                .map_err(storage("creating tables"))?;
            wtx.open_table(HUB_TOKENS)
                .map_err(storage("creating tables"))?;
            wtx.open_table(HUB_AGENTS)
                .map_err(storage("creating tables"))?;
        }
        wtx.commit().map_err(storage("creating tables"))?;

        let mut cache = Cache::default();
        let rtx = db.begin_read().map_err(storage("loading"))?;
        let t = rtx
            .open_table(MACHINES)
            .map_err(storage("loading machines"))?;
        for row in t.iter().map_err(storage("loading machines"))? {
            let (k, v) = row.map_err(storage("loading machines"))?;
            let m: MachineRecord = decode(k.value(), v.value())?;
            cache.machines.insert(Arc::new(m));
        }
        let t = rtx
            .open_table(TENANTS)
            .map_err(storage("loading tenants"))?;
        for row in t.iter().map_err(storage("loading tenants"))? {
            let (k, v) = row.map_err(storage("loading tenants"))?;
            cache
                .tenants
                .insert(k.value(), decode(k.value(), v.value())?);
        }
        let t = rtx.open_table(KEYS).map_err(storage("loading keys"))?;
        for row in t.iter().map_err(storage("loading keys"))? {
            let (k, v) = row.map_err(storage("loading keys"))?;
            cache
                .keys
                .insert(k.value().to_owned(), decode(k.value(), v.value())?);
        }
        let t = rtx
            .open_table(HUB_AGENTS)
            .map_err(storage("loading agents"))?;
        for row in t.iter().map_err(storage("loading agents"))? {
            let (k, v) = row.map_err(storage("loading agents"))?;
            cache
                .agents
                .insert(k.value().to_owned(), decode(k.value(), v.value())?);
        }
        drop(t);
        drop(rtx);
        tracing::debug!(
            machines = cache.machines.len(),
            tenants = cache.tenants.len(),
            "store loaded"
        );
        Ok(RedbStore {
            db,
            cache: RwLock::new(cache),
            write_lock: Mutex::new(()),
        })
    }

    /// Writes many machines in one transaction (bulk loading for benchmarks
    /// and imports); same uniqueness rule as `insert_machine`.
    pub fn insert_machines(&self, batch: Vec<MachineRecord>) -> Result<(), StoreError> {
        let _w = self.write_lock.lock();
        {
            let cache = self.cache.read();
            for m in &batch {
                check_bmc_free(&cache.machines, m)?;
            }
        }
        let wtx = self.db.begin_write().map_err(storage("writing machines"))?;
        {
            let mut t = wtx
                .open_table(MACHINES)
                .map_err(storage("writing machines"))?;
            for m in &batch {
                t.insert(m.pmid.as_str(), encode(m).as_slice())
                    .map_err(storage("writing machines"))?;
            }
        }
        wtx.commit().map_err(storage("committing machines"))?;
        let mut cache = self.cache.write();
        for m in batch {
            cache.machines.insert(Arc::new(m));
        }
        Ok(())
    }

    /// Inserts or replaces an enrolled agent's record.
    pub fn put_agent(&self, agent: AgentRecord) -> Result<(), StoreError> {
        let _w = self.write_lock.lock();
        let wtx = self.db.begin_write().map_err(storage("writing an agent"))?;
        {
            let mut t = wtx
                .open_table(HUB_AGENTS)
                .map_err(storage("writing an agent"))?;
            t.insert(agent.id.as_str(), encode(&agent).as_slice())
                .map_err(storage("writing an agent"))?;
        }
        wtx.commit().map_err(storage("committing an agent"))?;
        self.cache
            .write()
            .agents
            .insert(agent.id.as_str().to_owned(), agent);
        Ok(())
    }

    /// Every enrolled agent, from memory, ordered by id.
    pub fn agents_cached(&self) -> Vec<AgentRecord> {
        self.cache.read().agents.values().cloned().collect()
    }

    fn put_machine_durably(&self, m: &MachineRecord) -> Result<(), StoreError> {
        let wtx = self
            .db
            .begin_write()
            .map_err(storage("writing a machine"))?;
        {
            let mut t = wtx
                .open_table(MACHINES)
                .map_err(storage("writing a machine"))?;
            t.insert(m.pmid.as_str(), encode(m).as_slice())
                .map_err(storage("writing a machine"))?;
        }
        wtx.commit().map_err(storage("committing a machine"))
    }
}

fn check_bmc_free(idx: &MachineIndex, m: &MachineRecord) -> Result<(), StoreError> {
    if m.ipmi_ip.is_empty() {
        return Ok(());
    }
    match idx.bmc_owner(&m.region, &m.ipmi_ip) {
        Some(owner) if owner != &m.pmid => {
            Err(StoreError::Rejected(ApiError::AlreadyExists(format!(
                "IPMIIP {} is already registered to machine {owner} in region {}",
                m.ipmi_ip, m.region
            ))))
        }
        _ => Ok(()),
    }
}

impl Store for RedbStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn insert_machine(&self, m: MachineRecord) -> Result<Arc<MachineRecord>, StoreError> {
        let _w = self.write_lock.lock();
        {
            let cache = self.cache.read();
            if cache.machines.get(&m.pmid).is_some() {
                return Err(StoreError::Rejected(ApiError::AlreadyExists(format!(
                    "machine {} already exists",
                    m.pmid
                ))));
            }
            check_bmc_free(&cache.machines, &m)?;
        }
        self.put_machine_durably(&m)?;
        let m = Arc::new(m);
        self.cache.write().machines.insert(m.clone());
        Ok(m)
    }

    fn update_machine(
        &self,
        id: &PmId,
        f: Check<'_, MachineRecord>,
    ) -> Result<Option<Arc<MachineRecord>>, StoreError> {
        let _w = self.write_lock.lock();
        let Some(current) = self.cache.read().machines.get(id) else {
            return Ok(None);
        };
        let mut next = (*current).clone();
        f(&mut next).map_err(StoreError::Rejected)?;
        if next == *current {
            return Ok(Some(current));
        }
        check_bmc_free(&self.cache.read().machines, &next)?;
        self.put_machine_durably(&next)?;
        let next = Arc::new(next);
        self.cache.write().machines.insert(next.clone());
        Ok(Some(next))
    }

    fn delete_machine(
        &self,
        id: &PmId,
        check: Check<'_, MachineRecord>,
    ) -> Result<Option<Arc<MachineRecord>>, StoreError> {
        let _w = self.write_lock.lock();
        let Some(current) = self.cache.read().machines.get(id) else {
            return Ok(None);
        };
        let mut probe = (*current).clone();
        check(&mut probe).map_err(StoreError::Rejected)?;
        let wtx = self
            .db
            .begin_write()
            .map_err(storage("deleting a machine"))?;
        {
            let mut t = wtx
                .open_table(MACHINES)
                .map_err(storage("deleting a machine"))?;
            t.remove(id.as_str())
                .map_err(storage("deleting a machine"))?;
        }
        wtx.commit().map_err(storage("committing a deletion"))?;
        self.cache.write().machines.remove(id);
        Ok(Some(current))
    }

    fn machine(&self, id: &PmId) -> Result<Option<Arc<MachineRecord>>, StoreError> {
        Ok(self.cache.read().machines.get(id))
    }

    fn query_machines(&self, q: &MachineQuery) -> Result<MachinePage, StoreError> {
        Ok(self.cache.read().machines.query(q))
    }

    fn count_machines_of(&self, company_id: i64) -> Result<usize, StoreError> {
        Ok(self.cache.read().machines.count_company(company_id))
    }

    fn put_tenant(&self, t: &TenantRecord, must_be_new: bool) -> Result<(), StoreError> {
        let _w = self.write_lock.lock();
        if must_be_new && self.cache.read().tenants.contains_key(&t.company_id) {
            return Err(StoreError::Rejected(ApiError::AlreadyExists(format!(
                "tenant CompanyID {} already exists",
                t.company_id
            ))));
        }
        let wtx = self.db.begin_write().map_err(storage("writing a tenant"))?;
        {
            let mut table = wtx
                .open_table(TENANTS)
                .map_err(storage("writing a tenant"))?;
            table
                .insert(t.company_id, encode(t).as_slice())
                .map_err(storage("writing a tenant"))?;
        }
        wtx.commit().map_err(storage("committing a tenant"))?;
        self.cache.write().tenants.insert(t.company_id, t.clone());
        Ok(())
    }

    fn tenant(&self, company_id: i64) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.cache.read().tenants.get(&company_id).cloned())
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        Ok(self.cache.read().tenants.values().cloned().collect())
    }

    fn delete_tenant(&self, company_id: i64) -> Result<bool, StoreError> {
        let _w = self.write_lock.lock();
        let wtx = self
            .db
            .begin_write()
            .map_err(storage("deleting a tenant"))?;
        let existed = {
            let mut t = wtx
                .open_table(TENANTS)
                .map_err(storage("deleting a tenant"))?;
            t.remove(company_id)
                .map_err(storage("deleting a tenant"))?
                .is_some()
        };
        wtx.commit()
            .map_err(storage("committing a tenant deletion"))?;
        self.cache.write().tenants.remove(&company_id);
        Ok(existed)
    }

    fn put_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        let _w = self.write_lock.lock();
        let wtx = self.db.begin_write().map_err(storage("writing a key"))?;
        {
            let mut t = wtx.open_table(KEYS).map_err(storage("writing a key"))?;
            t.insert(k.public_key.as_str(), encode(k).as_slice())
                .map_err(storage("writing a key"))?;
        }
        wtx.commit().map_err(storage("committing a key"))?;
        self.cache
            .write()
            .keys
            .insert(k.public_key.clone(), k.clone());
        Ok(())
    }

    fn key(&self, public_key: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.cache.read().keys.get(public_key).cloned())
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys: Vec<KeyRecord> = self.cache.read().keys.values().cloned().collect();
        keys.sort_by(|a, b| {
            a.create_time
                .cmp(&b.create_time)
                .then(a.public_key.cmp(&b.public_key))
        });
        Ok(keys)
    }

    fn delete_key(&self, public_key: &str) -> Result<bool, StoreError> {
        let _w = self.write_lock.lock();
        let wtx = self.db.begin_write().map_err(storage("deleting a key"))?;
        let existed = {
            let mut t = wtx.open_table(KEYS).map_err(storage("deleting a key"))?;
            t.remove(public_key)
                .map_err(storage("deleting a key"))?
                .is_some()
        };
        wtx.commit().map_err(storage("committing a key deletion"))?;
        self.cache.write().keys.remove(public_key);
        Ok(existed)
    }

    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rtx = self.db.begin_read().map_err(storage("reading a setting"))?;
        let t = rtx
            .open_table(SETTINGS)
            .map_err(storage("reading a setting"))?;
        let v = t.get(name).map_err(storage("reading a setting"))?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let _w = self.write_lock.lock();
        let wtx = self
            .db
            .begin_write()
            .map_err(storage("writing a setting"))?;
        {
            let mut t = wtx
                .open_table(SETTINGS)
                .map_err(storage("writing a setting"))?;
            t.insert(name, value)
                .map_err(storage("writing a setting"))?;
        }
        wtx.commit().map_err(storage("committing a setting"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_reopen_and_bmc_addresses_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = RedbStore::open(&path).unwrap();
        let a = MachineRecord {
            region: "r1".into(),
            ipmi_ip: "198.51.100.7".into(),
            name: "a".into(),
            ..Default::default()
        };
        let id = a.pmid.clone();
        store.insert_machine(a).unwrap();
        let dup = MachineRecord {
            region: "r1".into(),
            ipmi_ip: "198.51.100.7".into(),
            ..Default::default()
        };
        let err = store.insert_machine(dup).unwrap_err();
        assert!(err.to_string().contains("already registered"), "{err}");
        store
            .update_machine(&id, &mut |m| {
                m.name = "renamed".into();
                Ok(())
            })
            .unwrap()
            .unwrap();
        store.put_setting("x", b"1").unwrap();
        drop(store);

        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.machine(&id).unwrap().unwrap().name, "renamed");
        assert_eq!(store.setting("x").unwrap().unwrap(), b"1");
        let refused = store.delete_machine(&id, &mut |_| Err(ApiError::Forbidden("no".into())));
        assert!(refused.is_err());
        assert!(
            store
                .delete_machine(&id, &mut |_| Ok(()))
                .unwrap()
                .is_some()
        );
        assert!(store.machine(&id).unwrap().is_none());
    }
}
