//! The in-memory machine index the redb backend keeps beside its tables.
//!
//! Reads never touch the disk: filters with an index (status, tenant,
//! project, SN, hostname, IP, BMC address, tag, PMIDs) start from the
//! smallest matching set instead of scanning every record, then the full
//! predicate runs on those candidates only.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use ironrack_common::ids::PmId;
use ironrack_common::lifecycle::Status;

use super::{MachinePage, MachineQuery, MachineRecord, SortKey, TagFilter};

type Ids = HashSet<PmId>;

#[derive(Default)]
pub(super) struct MachineIndex {
    by_id: HashMap<PmId, Arc<MachineRecord>>,
    /// The lowercased text Keyword searches, one string per machine, so a
    /// keyword test is one SIMD substring search instead of ten.
    search_text: HashMap<PmId, Box<str>>,
    by_region: HashMap<String, Ids>,
    by_status: HashMap<Status, Ids>,
    by_company: HashMap<i64, Ids>,
    by_project: HashMap<String, Ids>,
    by_sn: HashMap<String, Ids>,
    by_hostname: HashMap<String, Ids>,
    by_ip: HashMap<String, Ids>,
    by_tag: HashMap<String, Ids>,
    /// (region, BMC address) → machine; a BMC belongs to one machine.
    by_bmc: HashMap<(String, String), PmId>,
}

fn add<K: Eq + Hash>(map: &mut HashMap<K, Ids>, key: K, id: &PmId) {
    map.entry(key).or_default().insert(id.clone());
}

fn del<K: Eq + Hash>(map: &mut HashMap<K, Ids>, key: &K, id: &PmId) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// The index keys a record is filed under, besides its id and region.
fn tag_keys(m: &MachineRecord) -> HashSet<String> {
    m.tags
        .iter()
        .map(|t| t.key.clone())
        .chain(m.pm_tags.iter().cloned())
        .collect()
}

impl MachineIndex {
    pub fn get(&self, id: &PmId) -> Option<Arc<MachineRecord>> {
        self.by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The machine that already uses this BMC address in this region.
    pub fn bmc_owner(&self, region: &str, ipmi_ip: &str) -> Option<&PmId> {
        self.by_bmc.get(&(region.to_owned(), ipmi_ip.to_owned()))
    }

    pub fn count_company(&self, company_id: i64) -> usize {
        self.by_company.get(&company_id).map_or(0, HashSet::len)
    }

    pub fn insert(&mut self, m: Arc<MachineRecord>) {
        if let Some(old) = self.by_id.get(&m.pmid).cloned() {
            self.unfile(&old);
        }
        let id = &m.pmid;
        add(&mut self.by_region, m.region.clone(), id);
        add(&mut self.by_status, m.status, id);
        add(&mut self.by_company, m.company_id, id);
        if !m.project_id.is_empty() {
            add(&mut self.by_project, m.project_id.clone(), id);
        }
        if !m.sn.is_empty() {
            add(&mut self.by_sn, m.sn.clone(), id);
        }
        if !m.hostname.is_empty() {
            add(&mut self.by_hostname, m.hostname.to_ascii_lowercase(), id);
        }
        if !m.ip.is_empty() {
            add(&mut self.by_ip, m.ip.clone(), id);
        }
        for k in tag_keys(&m) {
            add(&mut self.by_tag, k, id);
        }
        if !m.ipmi_ip.is_empty() {
            self.by_bmc
                .insert((m.region.clone(), m.ipmi_ip.clone()), id.clone());
        }
        self.search_text.insert(id.clone(), search_text(&m));
        self.by_id.insert(id.clone(), m);
    }

    pub fn remove(&mut self, id: &PmId) -> Option<Arc<MachineRecord>> {
        let old = self.by_id.remove(id)?;
        self.search_text.remove(id);
        self.unfile(&old);
        Some(old)
    }

    fn unfile(&mut self, m: &MachineRecord) {
        let id = &m.pmid;
        del(&mut self.by_region, &m.region, id);
        del(&mut self.by_status, &m.status, id);
        del(&mut self.by_company, &m.company_id, id);
        del(&mut self.by_project, &m.project_id, id);
        del(&mut self.by_sn, &m.sn, id);
        del(&mut self.by_hostname, &m.hostname.to_ascii_lowercase(), id);
        del(&mut self.by_ip, &m.ip, id);
        for k in tag_keys(m) {
            del(&mut self.by_tag, &k, id);
        }
        let bmc = (m.region.clone(), m.ipmi_ip.clone());
        if self.by_bmc.get(&bmc) == Some(id) {
            self.by_bmc.remove(&bmc);
        }
    }

    pub fn query(&self, q: &MachineQuery) -> MachinePage {
        let keyword = q.keyword.as_ref().map(|k| k.to_lowercase());
        let finder = keyword.as_deref().map(memchr::memmem::Finder::new);
        let mut hits: Vec<Arc<MachineRecord>> = self
            .candidates(q)
            .into_iter()
            .filter(|id| {
                finder.as_ref().is_none_or(|f| {
                    self.search_text
                        .get(*id)
                        .is_some_and(|t| f.find(t.as_bytes()).is_some())
                })
            })
            .filter_map(|id| self.by_id.get(id))
            .filter(|m| matches(m, q))
            .cloned()
            .collect();
        let total = hits.len();
        hits.sort_by(|a, b| {
            let ord = compare(a, b, q.sort_by).then_with(|| a.pmid.cmp(&b.pmid));
            if q.descending { ord.reverse() } else { ord }
        });
        let items = hits.into_iter().skip(q.offset).take(q.limit).collect();
        MachinePage { items, total }
    }

    /// The smallest id set some indexed filter allows; the region's machines
    /// when no indexed filter is given.
    fn candidates<'a>(&'a self, q: &'a MachineQuery) -> Vec<&'a PmId> {
        // A missing index entry is an empty set: nothing can match.
        let one = |set: Option<&'a Ids>| set.into_iter().collect::<Vec<_>>();
        let mut options: Vec<Vec<&Ids>> = Vec::new();
        if let Some(s) = q.status {
            options.push(one(self.by_status.get(&s)));
        }
        if let Some(c) = q.company_id {
            options.push(one(self.by_company.get(&c)));
        }
        if !q.project_ids.is_empty() {
            options.push(
                q.project_ids
                    .iter()
                    .filter_map(|p| self.by_project.get(p))
                    .collect(),
            );
        }
        if let Some(sn) = &q.sn {
            options.push(one(self.by_sn.get(sn)));
        }
        if !q.sns.is_empty() {
            options.push(q.sns.iter().filter_map(|s| self.by_sn.get(s)).collect());
        }
        if let Some(h) = &q.hostname {
            options.push(one(self.by_hostname.get(&h.to_ascii_lowercase())));
        }
        if let Some(ip) = &q.ip {
            options.push(one(self.by_ip.get(ip)));
        }
        if let Some(tag) = &q.tag {
            let key = match tag {
                TagFilter::Key(k) | TagFilter::KeyValue(k, _) => k,
            };
            options.push(one(self.by_tag.get(key)));
        }
        let explicit: Vec<&PmId> = if let Some(ip) = &q.ipmi_ip {
            self.by_bmc
                .get(&(q.region.clone(), ip.clone()))
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        if q.ipmi_ip.is_some() {
            return explicit;
        }
        if !q.pmids.is_empty() {
            let mut seen = HashSet::new();
            return q
                .pmids
                .iter()
                .filter_map(|s| self.by_id.get_key_value(&PmId::parse(s)?).map(|(k, _)| k))
                .filter(|id| seen.insert(*id))
                .collect();
        }
        let best = options
            .into_iter()
            .min_by_key(|sets| sets.iter().map(|s| s.len()).sum::<usize>());
        match best {
            Some(sets) => {
                let mut seen = HashSet::new();
                sets.into_iter()
                    .flatten()
                    .filter(|id| seen.insert(*id))
                    .collect()
            }
            None => self
                .by_region
                .get(&q.region)
                .map(|s| s.iter().collect())
                .unwrap_or_default(),
        }
    }
}

/// Every filter but Keyword, which `query` has already applied.
fn matches(m: &MachineRecord, q: &MachineQuery) -> bool {
    m.region == q.region
        && q.company_id.is_none_or(|c| m.company_id == c)
        && (q.project_ids.is_empty() || q.project_ids.contains(&m.project_id))
        && (q.pmids.is_empty() || q.pmids.iter().any(|p| p == m.pmid.as_str()))
        && (q.sns.is_empty() || q.sns.contains(&m.sn))
        && q.status.is_none_or(|s| m.status == s)
        && q.hostname
            .as_ref()
            .is_none_or(|h| m.hostname.eq_ignore_ascii_case(h))
        && q.sn.as_ref().is_none_or(|s| &m.sn == s)
        && q.ip.as_ref().is_none_or(|ip| &m.ip == ip)
        && q.ipmi_ip.as_ref().is_none_or(|ip| &m.ipmi_ip == ip)
        && q.tag.as_ref().is_none_or(|t| tag_matches(m, t))
}

fn tag_matches(m: &MachineRecord, t: &TagFilter) -> bool {
    match t {
        TagFilter::Key(k) => m.pm_tags.contains(k) || m.tags.iter().any(|t| &t.key == k),
        TagFilter::KeyValue(k, v) => m.tags.iter().any(|t| &t.key == k && &t.value == v),
    }
}

/// Name, remark, description, hostname, SN, IPs, PMID, rack location and
/// label, lowercased and joined by NUL so no match spans two fields.
fn search_text(m: &MachineRecord) -> Box<str> {
    [
        m.name.as_str(),
        &m.remark,
        &m.description,
        &m.hostname,
        &m.sn,
        &m.ip,
        &m.ipmi_ip,
        m.pmid.as_str(),
        &m.rack_location,
        &m.label,
    ]
    .join("\0")
    .to_lowercase()
    .into_boxed_str()
}

fn compare(a: &MachineRecord, b: &MachineRecord, key: SortKey) -> Ordering {
    match key {
        SortKey::CreateTime => a.create_time.cmp(&b.create_time),
        SortKey::UpdateTime => a.update_time.cmp(&b.update_time),
        SortKey::Name => a.name.cmp(&b.name),
        SortKey::Hostname => a.hostname.cmp(&b.hostname),
        SortKey::Sn => a.sn.cmp(&b.sn),
        SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
        SortKey::Pmid => a.pmid.cmp(&b.pmid),
        SortKey::IpmiIp => a.ipmi_ip.cmp(&b.ipmi_ip),
        SortKey::ExpireTime => a.expire_time.cmp(&b.expire_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrack_common::machine::UnifiedTag;

    fn machine(region: &str, status: Status, name: &str, t: i64) -> Arc<MachineRecord> {
        Arc::new(MachineRecord {
            region: region.into(),
            status,
            name: name.into(),
            create_time: t,
            ..Default::default()
        })
    }

    #[test]
    fn filters_sort_and_page() {
        let mut idx = MachineIndex::default();
        for i in 0..10 {
            let st = if i % 2 == 0 {
                Status::Available
            } else {
                Status::Registered
            };
            idx.insert(machine("r1", st, &format!("node-{i}"), i));
        }
        idx.insert(machine("r2", Status::Available, "node-x", 100));
        let mut q = MachineQuery::in_region("r1");
        q.status = Some(Status::Available);
        q.limit = 2;
        q.offset = 1;
        let page = idx.query(&q);
        assert_eq!(page.total, 5);
        let names: Vec<_> = page.items.iter().map(|m| m.name.clone()).collect();
        assert_eq!(names, vec!["node-6", "node-4"]);

        let mut q = MachineQuery::in_region("r1");
        q.keyword = Some("NODE-3".into());
        assert_eq!(idx.query(&q).total, 1);
    }

    #[test]
    fn reindexes_on_update_and_remove() {
        let mut idx = MachineIndex::default();
        let m = machine("r1", Status::Registered, "a", 1);
        let id = m.pmid.clone();
        idx.insert(m.clone());
        let mut changed = (*m).clone();
        changed.status = Status::Available;
        changed.tags = vec![UnifiedTag {
            key: "rack".into(),
            value: "7".into(),
        }];
        idx.insert(Arc::new(changed));
        let mut q = MachineQuery::in_region("r1");
        q.status = Some(Status::Registered);
        assert_eq!(idx.query(&q).total, 0);
        q.status = None;
        q.tag = Some(TagFilter::KeyValue("rack".into(), "7".into()));
        assert_eq!(idx.query(&q).total, 1);
        idx.remove(&id);
        assert_eq!(idx.query(&q).total, 0);
        assert_eq!(idx.len(), 0);
    }

    #[test]
    fn keyword_is_case_insensitive_and_stays_within_one_field() {
        let mut idx = MachineIndex::default();
        let mut m = (*machine("r1", Status::Available, "Größe Rack-07", 1)).clone();
        m.remark = "abc".into();
        m.hostname = "def".into();
        idx.insert(Arc::new(m));
        let mut q = MachineQuery::in_region("r1");
        for (kw, hits) in [("rack-07", 1), ("GRÖ", 1), ("abcdef", 0), ("c\0d", 0)] {
            q.keyword = Some(kw.into());
            assert_eq!(idx.query(&q).total, hits, "keyword {kw:?}");
        }
    }
}
