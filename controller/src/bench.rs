//! Synthetic inventory for benchmarks: many machines written in large batches.

use ironrack_common::lifecycle::Status;
use ironrack_common::machine::UnifiedTag;

use crate::app::{App, now_unix};
use crate::store::{MachineRecord, RedbStore, StoreError};

const BATCH: usize = 5_000;

/// Writes `count` machines spread over statuses, racks and tags. Status
/// follows a realistic mix: most machines running, some available.
pub fn seed(app: &App, count: usize, region: &str) -> Result<(), StoreError> {
    let store = app
        .store
        .as_any()
        .downcast_ref::<RedbStore>()
        .expect("bench seeding needs the embedded store");
    let statuses = [
        Status::Running,
        Status::Running,
        Status::Running,
        Status::Allocated,
        Status::Available,
        Status::Available,
        Status::Registered,
        Status::Maintenance,
        Status::Failed,
        Status::Installing,
    ];
    let now = now_unix();
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let batch: Vec<MachineRecord> = (done..done + n)
            .map(|i| MachineRecord {
                region: region.to_owned(),
                name: format!("node-{i:06}"),
                hostname: format!("node-{i:06}.rack{:03}.example", i / 40),
                sn: format!("SN{i:08}"),
                ipmi_ip: format!(
                    "198.{}.{}.{}:623",
                    18 + (i >> 16) % 2,
                    (i >> 8) & 255,
                    i & 255
                ),
                ip: format!("203.0.{}.{}", (i >> 8) & 255, i & 255),
                rack_location: format!("rack{:03}-u{:02}", i / 40, i % 40),
                status: statuses[i % statuses.len()],
                tags: vec![UnifiedTag {
                    key: "rack".into(),
                    value: format!("{:03}", i / 40),
                }],
                create_time: now - (count - i) as i64,
                update_time: now,
                ..MachineRecord::default()
            })
            .collect();
        store.insert_machines(batch)?;
        done += n;
    }
    tracing::info!(count, region, "bench machines written");
    Ok(())
}
