//! The agent's Prometheus metrics: the process-wide recorder, every metric name, and the `/metrics` listener.
//!
//! The recorder is global (the `metrics` facade allows one per process), so
//! [`install`] installs it on first use and returns the same render handle
//! afterwards. Until then the recording functions here are cheap no-ops, so
//! an agent with metrics disabled pays next to nothing.
//!
//! Every label value comes from a closed set (driver kind, operation name,
//! failure kind), so the series stay bounded whatever the BMCs answer.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use ironrack_common::rack::{BmcFailureKind, BmcKind};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;

/// BMC operations, by `driver` (`ipmi`/`redfish`), `op` and `result` (`ok`
/// or the failure kind in snake_case).
pub const BMC_CALLS: &str = "ironrack_bmc_calls_total";
/// BMC operation latency in seconds, by `driver` and `op`.
pub const BMC_DURATION: &str = "ironrack_bmc_call_duration_seconds";
/// Times the tunnel link redialled after a failed attempt or a lost link.
pub const TUNNEL_RECONNECTS: &str = "ironrack_tunnel_reconnects_total";
/// 1 while the tunnel to the controller is up, else 0.
pub const TUNNEL_CONNECTED: &str = "ironrack_tunnel_connected";
/// Duration of each power sync sweep in seconds.
pub const SYNC_SWEEP: &str = "ironrack_power_sync_sweep_seconds";
/// Seconds since the last power sync sweep completed, as of the scrape.
/// Absent until the first sweep completes. With the default 30 s interval it
/// stays under about 30 s plus one sweep; a value that keeps growing means
/// the sync is stuck or stopped.
pub const SYNC_LAG: &str = "ironrack_power_sync_lag_seconds";

/// Histogram buckets in seconds, 100 µs to 60 s: a pooled IPMI read takes
/// milliseconds, a power cycle through a slow BMC tens of seconds.
pub const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The default `[metrics] listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9641";

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// When the last power sync sweep completed; read at each scrape for [`SYNC_LAG`].
static LAST_SWEEP: Mutex<Option<Instant>> = Mutex::new(None);

/// Installs the global recorder once and returns the handle that renders it.
///
/// If another recorder is already installed (a test process that also runs a
/// controller), this one still renders, just without the other's data.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("BUCKETS is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows none of ours");
        }
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        BMC_CALLS,
        "BMC operations, by driver, operation and result."
    );
    describe_histogram!(BMC_DURATION, Unit::Seconds, "BMC operation latency.");
    describe_counter!(
        TUNNEL_RECONNECTS,
        "Tunnel redials after a failed attempt or lost link."
    );
    describe_gauge!(
        TUNNEL_CONNECTED,
        "1 while the tunnel to the controller is up."
    );
    describe_histogram!(
        SYNC_SWEEP,
        Unit::Seconds,
        "Duration of each power sync sweep."
    );
    describe_gauge!(
        SYNC_LAG,
        Unit::Seconds,
        "Seconds since the last power sync sweep completed."
    );
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    let handle = install();
    if let Some(done) = *LAST_SWEEP.lock() {
        gauge!(SYNC_LAG).set(done.elapsed().as_secs_f64());
    }
    handle.render()
}

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}")]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Installs the recorder, binds `addr` and serves `GET /metrics` on a task
/// (with the recorder's periodic upkeep); returns the bound address, which
/// tells the port when `addr` asked for port 0. Needs a Tokio runtime.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr, ListenError> {
    let handle = install().clone();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ListenError { addr, source })?;
    let app = Router::new().route("/metrics", get(metrics_text));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "metrics listener stopped");
        }
    });
    // Histogram samples pile up between scrapes; upkeep drains them even
    // when nobody scrapes.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    Ok(local)
}

async fn metrics_text() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

/// One BMC operation's outcome.
pub fn bmc_call(
    driver: BmcKind,
    op: &'static str,
    failure: Option<BmcFailureKind>,
    elapsed: Duration,
) {
    let result = failure.map_or("ok", failure_label);
    counter!(BMC_CALLS, "driver" => driver.as_str(), "op" => op, "result" => result).increment(1);
    histogram!(BMC_DURATION, "driver" => driver.as_str(), "op" => op).record(elapsed.as_secs_f64());
}

/// A failure kind in snake_case, for the `result` label.
pub fn failure_label(kind: BmcFailureKind) -> &'static str {
    match kind {
        BmcFailureKind::Unreachable => "unreachable",
        BmcFailureKind::AuthFailed => "auth_failed",
        BmcFailureKind::UnsupportedCipherSuite => "unsupported_cipher_suite",
        BmcFailureKind::Timeout => "timeout",
        BmcFailureKind::Unsupported => "unsupported",
        BmcFailureKind::Protocol => "protocol",
        BmcFailureKind::ActionDidNotComplete => "action_did_not_complete",
    }
}

/// The tunnel came up (`true`) or went down (`false`).
pub fn tunnel_connected(up: bool) {
    gauge!(TUNNEL_CONNECTED).set(if up { 1.0 } else { 0.0 });
}

/// The link task is about to redial.
pub fn tunnel_reconnect() {
    counter!(TUNNEL_RECONNECTS).increment(1);
}

/// A power sync sweep completed after `elapsed`.
pub fn sweep_done(elapsed: Duration) {
    histogram!(SYNC_SWEEP).record(elapsed.as_secs_f64());
    *LAST_SWEEP.lock() = Some(Instant::now());
    gauge!(SYNC_LAG).set(0.0);
}
