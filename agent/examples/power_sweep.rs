//! Benchmark: one `PowerSync` over N lab IPMI BMCs; wall time of full sweeps.
//!
//! Usage: `power_sweep BASEPORT N [USER PASSWORD]` against BMCs on
//! 127.0.0.1:BASEPORT.. (deploy/bench/power-sweep.sh starts them).

use std::time::Duration;

use ironrack_agent::bmc::sync::{PowerSync, PowerSyncConfig, SyncMachine};
use ironrack_agent::bmc::{BmcEndpoint, BmcPool, BmcTarget, CipherSuite, DriverOptions, Password};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: power_sweep BASEPORT N [USER PASSWORD]";
    let base: u16 = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let n: u16 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let user = args.get(3).cloned().unwrap_or_else(|| "admin".into());
    let password = args.get(4).cloned().unwrap_or_else(|| "ironrack".into());
    let machines: Vec<SyncMachine> = (0..n)
        .map(|i| SyncMachine {
            id: format!("pm-{i}"),
            target: BmcTarget::new(
                BmcEndpoint::Ipmi {
                    host: "127.0.0.1".into(),
                    port: base + i,
                    cipher_suite: CipherSuite::Suite3,
                },
                user.clone(),
                Password::new(password.clone()),
            ),
        })
        .collect();
    let pool = BmcPool::new(DriverOptions::default());
    let config = PowerSyncConfig {
        interval: Duration::from_secs(3600),
        ..PowerSyncConfig::default()
    };
    // Start empty so that the first timed sweep is the cold one (sessions
    // opened during it), not the spawn's own first tick.
    let (sync, mut events) = PowerSync::spawn(pool.clone(), config, Vec::new());
    sync.set_machines(machines).await.expect("sync running");
    let drain = tokio::spawn(async move {
        let mut count = 0usize;
        while events.recv().await.is_some() {
            count += 1;
        }
        count
    });
    for label in [
        "sweep 1 (cold: opens sessions)",
        "sweep 2 (sessions kept)",
        "sweep 3 (sessions kept)",
    ] {
        let r = sync.sync_now().await.expect("sync running");
        println!(
            "{label}: {} BMCs, {} ok, {} failed, wall {:.3} s",
            r.polled,
            r.ok,
            r.failed,
            r.elapsed.as_secs_f64()
        );
    }
    sync.shutdown().await;
    pool.shutdown().await;
    drop(sync);
    println!("events: {}", drain.await.unwrap_or(0));
}
