//! Power sync: reads every machine's power state periodically and on demand,
//! with bounded concurrency and per-BMC backoff, and reports changes.
//!
//! [`PowerSync`] is a cheap handle; one task owns the machines and their
//! last observations. Each sweep reads the machines that are due (all of
//! them, for [`PowerSync::sync_now`]), at most [`PowerSyncConfig::concurrency`]
//! at a time and at most one read per machine; drivers come from a
//! [`BmcPool`], so machines sharing a BMC share its one session. A failed read
//! puts the machine into exponential backoff (with a per-machine spread so
//! that a rack that lost power does not retry in lockstep). A
//! [`PowerEvent`] goes out when a machine's state, reachability or error
//! kind changes, and for its first observation.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, trace};

use super::{BmcDriver, BmcError, BmcPool, BmcTarget, PowerState};
use crate::telemetry;

/// Settings of the power sync; every field has a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerSyncConfig {
    /// Between two periodic sweeps. Default 30 s.
    pub interval: Duration,
    /// Reads in flight at once. Default 64.
    pub concurrency: usize,
    /// Limit on one read, on top of the driver's own timeouts. Default 15 s.
    pub read_timeout: Duration,
    /// Backoff after failures: `base * 2^(failures-1)`, capped. Defaults 5 s
    /// and 5 min.
    pub backoff: Backoff,
    /// Events buffered before the sync waits for the reader. Default 1024.
    pub event_queue: usize,
}

impl Default for PowerSyncConfig {
    fn default() -> Self {
        PowerSyncConfig {
            interval: Duration::from_secs(30),
            concurrency: 64,
            read_timeout: Duration::from_secs(15),
            backoff: Backoff::default(),
            event_queue: 1024,
        }
    }
}

/// Exponential backoff with a deterministic per-key spread of up to a quarter
/// of the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (0 means none).
    pub fn delay(&self, failures: u32, key: &str) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = failures.saturating_sub(1).min(20);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let spread_ms = raw.as_millis() as u64 / 4;
        let extra = if spread_ms == 0 {
            0
        } else {
            h.finish() % spread_ms
        };
        (raw + Duration::from_millis(extra)).min(self.max)
    }
}

/// A machine to keep in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMachine {
    pub id: String,
    pub target: BmcTarget,
}

/// A change in what the sync observed for one machine.
// TODO-correctness(#3): move to `common` (tunnel outbox event) when the
// sync rules land there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    pub machine_id: String,
    /// The last power state read; kept through failures.
    pub power_state: Option<PowerState>,
    /// Whether the last read reached the BMC (IPMI or Redfish alike).
    pub ipmi_connected: bool,
    /// The last read's error, whole chain, when it failed.
    pub error: Option<String>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub polled: usize,
    pub ok: usize,
    pub failed: usize,
    /// Machines skipped because they are backing off.
    pub backing_off: usize,
    pub elapsed: Duration,
}

/// The sync task has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the power sync has stopped")]
pub struct SyncStopped;

enum Command {
    SetMachines(Vec<SyncMachine>),
    SyncNow(oneshot::Sender<SweepReport>),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the power sync task.
#[derive(Clone)]
pub struct PowerSync {
    commands: mpsc::Sender<Command>,
}

impl PowerSync {
    /// Starts the sync task; the first sweep runs at once.
    pub fn spawn(
        pool: BmcPool,
        config: PowerSyncConfig,
        machines: Vec<SyncMachine>,
    ) -> (PowerSync, mpsc::Receiver<PowerEvent>) {
        let (commands, rx) = mpsc::channel(16);
        let (events_tx, events) = mpsc::channel(config.event_queue.max(1));
        let mut task = SyncTask {
            pool,
            config,
            machines: HashMap::new(),
            events: events_tx,
            limit: Arc::new(Semaphore::new(config.concurrency.max(1))),
        };
        task.set_machines(machines);
        tokio::spawn(task.run(rx));
        (PowerSync { commands }, events)
    }

    /// Replaces the set of machines; new ones are read in the next sweep.
    pub async fn set_machines(&self, machines: Vec<SyncMachine>) -> Result<(), SyncStopped> {
        self.commands
            .send(Command::SetMachines(machines))
            .await
            .map_err(|_| SyncStopped)
    }

    /// Reads every machine now, backoff or not, and returns when done.
    pub async fn sync_now(&self) -> Result<SweepReport, SyncStopped> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SyncNow(tx))
            .await
            .map_err(|_| SyncStopped)?;
        rx.await.map_err(|_| SyncStopped)
    }

    /// Stops the task after the sweep in progress; sessions stay with the pool.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Tracked {
    target: BmcTarget,
    driver: Option<BmcDriver>,
    failures: u32,
    next_try: Instant,
    /// What was last reported: (state, connected, error kind).
    reported: Option<(Option<PowerState>, bool, Option<&'static str>)>,
    last_state: Option<PowerState>,
}

struct SyncTask {
    pool: BmcPool,
    config: PowerSyncConfig,
    machines: HashMap<String, Tracked>,
    events: mpsc::Sender<PowerEvent>,
    limit: Arc<Semaphore>,
}

impl SyncTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::SetMachines(m)) => self.set_machines(m),
                    Some(Command::SyncNow(done)) => {
                        let report = self.sweep(true).await;
                        let _ = done.send(report);
                    }
                    Some(Command::Shutdown(done)) => {
                        let _ = done.send(());
                        break;
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    self.sweep(false).await;
                }
            }
        }
        debug!(machines = self.machines.len(), "power sync stopped");
    }

    fn set_machines(&mut self, machines: Vec<SyncMachine>) {
        let mut next = HashMap::with_capacity(machines.len());
        for m in machines {
            let tracked = match self.machines.remove(&m.id) {
                Some(t) if t.target == m.target => t,
                _ => Tracked {
                    target: m.target,
                    driver: None,
                    failures: 0,
                    next_try: Instant::now(),
                    reported: None,
                    last_state: None,
                },
            };
            next.insert(m.id, tracked);
        }
        self.machines = next;
    }

    async fn sweep(&mut self, everyone: bool) -> SweepReport {
        let started = Instant::now();
        let now = Instant::now();
        let mut report = SweepReport::default();
        let mut reads = JoinSet::new();
        for (id, t) in &mut self.machines {
            if !everyone && t.next_try > now {
                report.backing_off += 1;
                continue;
            }
            let driver = match &t.driver {
                Some(d) => d.clone(),
                None => match self.pool.driver(&t.target) {
                    Ok(d) => {
                        t.driver = Some(d.clone());
                        d
                    }
                    Err(e) => {
                        reads.spawn(std::future::ready((id.clone(), Err(e))));
                        continue;
                    }
                },
            };
            let limit = self.limit.clone();
            let budget = self.config.read_timeout;
            let id = id.clone();
            reads.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = match tokio::time::timeout(budget, driver.power_status()).await {
                    Ok(r) => r,
                    Err(_) => Err(BmcError::Timeout {
                        address: driver.address().to_string(),
                        operation: "power status",
                        waited: budget,
                    }),
                };
                (id, result)
            });
        }
        while let Some(joined) = reads.join_next().await {
            let Ok((id, result)) = joined else { continue };
            report.polled += 1;
            if result.is_ok() {
                report.ok += 1;
            } else {
                report.failed += 1;
            }
            if let Some(event) = self.observe(&id, result) {
                let _ = self.events.send(event).await;
            }
        }
        report.elapsed = started.elapsed();
        telemetry::sweep_done(report.elapsed);
        debug!(
            polled = report.polled,
            ok = report.ok,
            failed = report.failed,
            backing_off = report.backing_off,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "power sweep done"
        );
        report
    }

    /// Records one read; returns the event to send if anything changed.
    fn observe(&mut self, id: &str, result: Result<PowerState, BmcError>) -> Option<PowerEvent> {
        let t = self.machines.get_mut(id)?;
        let (connected, error, kind) = match &result {
            Ok(state) => {
                t.failures = 0;
                t.next_try = Instant::now();
                t.last_state = Some(*state);
                (true, None, None)
            }
            Err(e) => {
                t.failures = t.failures.saturating_add(1);
                let wait = self.config.backoff.delay(t.failures, id);
                t.next_try = Instant::now() + wait;
                trace!(machine = id, bmc = %e.address(), failures = t.failures,
                       backoff_ms = wait.as_millis() as u64, error = %e.chain(), "power read failed");
                // An unreachable, silent or unknown BMC is "not connected";
                // one that answered but refused (auth, protocol) is connected
                // as far as the network goes, yet unusable: report it not
                // connected too, with the error saying why.
                (false, Some(e.chain()), Some(e.kind()))
            }
        };
        let now = (t.last_state, connected, kind);
        if t.reported == Some(now) {
            return None;
        }
        t.reported = Some(now);
        Some(PowerEvent {
            machine_id: id.to_string(),
            power_state: t.last_state,
            ipmi_connected: connected,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(0, "m1"), Duration::ZERO);
        let d1 = b.delay(1, "m1");
        let d2 = b.delay(2, "m1");
        let d3 = b.delay(3, "m1");
        assert!(
            d1 >= Duration::from_secs(1) && d1 < Duration::from_millis(1250),
            "{d1:?}"
        );
        assert!(
            d2 >= Duration::from_secs(2) && d2 < Duration::from_millis(2500),
            "{d2:?}"
        );
        assert!(
            d3 >= Duration::from_secs(4) && d3 < Duration::from_secs(5),
            "{d3:?}"
        );
        assert_eq!(b.delay(30, "m1"), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX, "m1"), Duration::from_secs(60));
    }

    #[test]
    fn backoff_spreads_machines_apart() {
        let b = Backoff::default();
        let delays: std::collections::HashSet<_> =
            (0..20).map(|i| b.delay(3, &format!("pm-{i}"))).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[tokio::test]
    async fn events_only_on_change() {
        let (tx, _rx) = mpsc::channel(4);
        let target = BmcTarget::new(
            super::super::BmcEndpoint::ipmi("127.0.0.1"),
            "u",
            super::super::Password::new("p"),
        );
        let mut task = SyncTask {
            pool: BmcPool::default(),
            config: PowerSyncConfig::default(),
            machines: HashMap::new(),
            events: tx,
            limit: Arc::new(Semaphore::new(1)),
        };
        task.set_machines(vec![SyncMachine {
            id: "pm-1".into(),
            target,
        }]);
        let first = task.observe("pm-1", Ok(PowerState::On)).unwrap();
        assert!(first.ipmi_connected && first.power_state == Some(PowerState::On));
        assert!(task.observe("pm-1", Ok(PowerState::On)).is_none());
        let timeout = || BmcError::Timeout {
            address: "ipmi://127.0.0.1:623".into(),
            operation: "power status",
            waited: Duration::from_secs(3),
        };
        let lost = task.observe("pm-1", Err(timeout())).unwrap();
        assert!(!lost.ipmi_connected);
        assert_eq!(lost.power_state, Some(PowerState::On), "last state kept");
        assert!(lost.error.unwrap().contains("127.0.0.1"));
        assert!(task.observe("pm-1", Err(timeout())).is_none());
        assert!(task.machines["pm-1"].next_try > Instant::now());
        let back = task.observe("pm-1", Ok(PowerState::Off)).unwrap();
        assert!(back.ipmi_connected && back.power_state == Some(PowerState::Off));
        assert_eq!(task.machines["pm-1"].failures, 0);
    }
}
