//! Power sync changes → `AgentEvent::PowerObserved` on the tunnel, keeping the latest unsent state per machine across link cuts.
//!
//! [`crate::bmc::sync::PowerSync`] emits a [`PowerEvent`] only when a
//! machine's state, reachability or error kind changes (and for its first
//! observation), so every event is worth sending. While the link is down,
//! or a send fails, the forwarder keeps the newest event per machine (an
//! older one is superseded: the controller only needs where the machine is
//! now) and sends them when [`LinkState::Connected`] comes back, so the
//! controller converges after a link cut.
//!
//! Sequence numbers increase per agent. An event resent after a failure
//! keeps its number, so a controller that applied it but lost the ack sees
//! a duplicate, not a new change; a superseded event's number is skipped.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironrack_common::tunnel::AgentEvent;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::convert;
use crate::bmc::sync::PowerEvent;
use crate::tunnel::{EventError, LinkState, Tunnel};

/// After a failed send on a link that still looks up, try again this late.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where events go: the tunnel, or a fake in tests.
pub trait EventSink: Send + Sync + 'static {
    /// Sends one event and waits for the controller's ack.
    fn send_event(
        &self,
        seq: u64,
        event: AgentEvent,
    ) -> impl Future<Output = Result<(), EventError>> + Send;

    /// Watches the link: events are sent while it is connected.
    fn link_state(&self) -> watch::Receiver<LinkState>;
}

impl EventSink for Tunnel {
    fn send_event(
        &self,
        seq: u64,
        event: AgentEvent,
    ) -> impl Future<Output = Result<(), EventError>> + Send {
        Tunnel::send_event(self, seq, event)
    }

    fn link_state(&self) -> watch::Receiver<LinkState> {
        self.state()
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wire event for one power sync observation, stamped now.
pub fn power_observed(event: PowerEvent) -> AgentEvent {
    AgentEvent::PowerObserved {
        pmid: event.machine_id,
        state: event.power_state.map(convert::state),
        connected: event.ipmi_connected,
        error: event.error,
        observed_unix_ms: now_unix_ms(),
    }
}

/// The first sequence number of this run.
///
/// TODO-correctness(#7): sequence numbers and unsent events live in memory
/// only; a durable journal replaces this. Until then a restarted agent
/// starts from the wall clock in microseconds, so its numbers stay above
/// those of its previous run (unless that run sent more than one event per
/// microsecond on average, or the clock went back) and a controller that
/// ignores numbers it has seen does not drop the new run's events.
fn first_seq() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

struct Pending {
    /// Assigned at the first attempt, kept for resends.
    seq: Option<u64>,
    event: AgentEvent,
}

/// Handle to the task that forwards power events to the controller.
pub struct EventForwarder {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EventForwarder {
    /// Forwards `events` to `sink` until shut down or until `events` ends.
    pub fn spawn<S: EventSink>(sink: Arc<S>, events: mpsc::Receiver<PowerEvent>) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = Forwarder {
            link: sink.link_state(),
            sink,
            pending: BTreeMap::new(),
            next_seq: first_seq(),
        }
        .run(events, shutdown_rx);
        EventForwarder {
            shutdown,
            task: tokio::spawn(task),
        }
    }

    /// Stops forwarding; events not yet sent are lost (see `first_seq`).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

struct Forwarder<S> {
    sink: Arc<S>,
    link: watch::Receiver<LinkState>,
    /// Newest unsent event per machine.
    pending: BTreeMap<String, Pending>,
    next_seq: u64,
}

impl<S: EventSink> Forwarder<S> {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<PowerEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut link_alive = true;
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(e) => {
                        let pmid = e.machine_id.clone();
                        self.pending.insert(pmid, Pending { seq: None, event: power_observed(e) });
                        // Take whatever else is queued before sending, so a
                        // burst is sent newest-per-machine only.
                        while let Ok(e) = events.try_recv() {
                            let pmid = e.machine_id.clone();
                            self.pending.insert(pmid, Pending { seq: None, event: power_observed(e) });
                        }
                    }
                    None => break,
                },
                changed = self.link.changed(), if link_alive => {
                    if changed.is_err() {
                        link_alive = false;
                    }
                }
                _ = retry => retry_at = None,
                _ = stop.changed() => break,
            }
            if retry_at.is_none() && self.connected() && !self.pending.is_empty() {
                tokio::select! {
                    failed = self.flush() => {
                        if failed {
                            retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        }
        if !self.pending.is_empty() {
            debug!(
                unsent = self.pending.len(),
                "event forwarder stopped with unsent events"
            );
        }
    }

    fn connected(&self) -> bool {
        matches!(*self.link.borrow(), LinkState::Connected { .. })
    }

    /// Sends the pending events, a resend first. Returns whether a send
    /// failed on a link that may still be up (then a timer retries; a link
    /// that went down retries when it comes back).
    async fn flush(&mut self) -> bool {
        loop {
            // A resend keeps its lower number, so it goes first.
            let next = self
                .pending
                .iter()
                .find(|(_, p)| p.seq.is_some())
                .or_else(|| self.pending.iter().next())
                .map(|(pmid, _)| pmid.clone());
            let Some(pmid) = next else { return false };
            let p = self.pending.get_mut(&pmid).expect("just found");
            let seq = *p.seq.get_or_insert_with(|| {
                let s = self.next_seq;
                self.next_seq += 1;
                s
            });
            let event = p.event.clone();
            match self.sink.send_event(seq, event).await {
                Ok(()) => {
                    // Remove it unless a newer event replaced it meanwhile
                    // (it cannot here: nothing else touches `pending` during
                    // a flush, but the check keeps that true if it changes).
                    if self.pending.get(&pmid).is_some_and(|p| p.seq == Some(seq)) {
                        self.pending.remove(&pmid);
                    }
                    debug!(seq, pmid, "power event delivered");
                }
                Err(EventError::Refused { source, .. }) => {
                    // The controller read and refused it (for example it is
                    // older than this event kind); resending cannot help.
                    warn!(seq, pmid, error = %source, "the controller refused a power event; dropped");
                    self.pending.remove(&pmid);
                }
                Err(EventError::Offline) => {
                    debug!(seq, pmid, "link down; power event kept for the reconnect");
                    return false;
                }
                Err(e) => {
                    debug!(seq, pmid, error = %e, "power event not delivered; kept for a retry");
                    return true;
                }
            }
        }
    }
}
