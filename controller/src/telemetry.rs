//! The controller's Prometheus metrics: the process-wide recorder, every metric name, and the `/metrics` text.
//!
//! The recorder is global (the `metrics` facade allows one per process), so
//! [`install`] installs it on first use and hands back the same render handle
//! afterwards; the API router calls it, so any process serving the API has
//! it. Recording functions here are cheap no-ops until then.
//!
//! Label values are always from closed sets (known action names, RetCodes,
//! request kinds, error variants) so that a caller cannot grow the series.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// API requests answered, by `action` (a known action or `unknown`) and `ret_code`.
pub const API_REQUESTS: &str = "ironrack_api_requests_total";
/// API request latency in seconds, by `action`.
pub const API_DURATION: &str = "ironrack_api_request_duration_seconds";
/// Rack agents with a live tunnel connection now.
pub const TUNNEL_AGENTS: &str = "ironrack_tunnel_agents_connected";
/// Agent connections admitted (hello accepted) since start.
pub const TUNNEL_CONNECTIONS: &str = "ironrack_tunnel_connections_total";
/// Admitted agent connections that ended (lost, replaced, revoked, shut down).
pub const TUNNEL_DISCONNECTS: &str = "ironrack_tunnel_disconnects_total";
/// Requests sent to agents, by `kind` and `result` (`ok` or the hub error).
pub const AGENT_CALLS: &str = "ironrack_agent_calls_total";
/// Round trip of a request to an agent in seconds, by `kind`.
pub const AGENT_DURATION: &str = "ironrack_agent_call_duration_seconds";

/// Histogram buckets in seconds, 100 µs to 60 s: an inline action answers in
/// well under a millisecond, a power cycle through a slow BMC takes tens of
/// seconds.
pub const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once and returns the handle that renders it.
///
/// If another recorder is already installed (a test process that also runs an
/// agent), this one still renders, just without the other's data; that is
/// logged rather than fatal since metrics never gate serving.
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

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    install().render()
}

/// Runs the recorder's upkeep every few seconds, so histogram samples do not
/// pile up when nobody scrapes. Needs a Tokio runtime.
pub fn spawn_upkeep() {
    let handle = install().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    describe_counter!(
        API_REQUESTS,
        "API requests answered, by action and RetCode."
    );
    describe_histogram!(
        API_DURATION,
        Unit::Seconds,
        "API request latency, by action."
    );
    describe_gauge!(TUNNEL_AGENTS, "Rack agents with a live tunnel connection.");
    describe_counter!(TUNNEL_CONNECTIONS, "Agent tunnel connections admitted.");
    describe_counter!(
        TUNNEL_DISCONNECTS,
        "Admitted agent tunnel connections that ended."
    );
    describe_counter!(
        AGENT_CALLS,
        "Requests sent to rack agents, by kind and result."
    );
    describe_histogram!(
        AGENT_DURATION,
        Unit::Seconds,
        "Round trip of requests to rack agents, by kind."
    );
}

/// One answered API request; `action` must already be a known name or `unknown`.
pub fn api_request(action: &'static str, ret_code: i64, elapsed: Duration) {
    counter!(API_REQUESTS, "action" => action, "ret_code" => ret_code.to_string()).increment(1);
    histogram!(API_DURATION, "action" => action).record(elapsed.as_secs_f64());
}

/// One request to an agent; `result` is `ok` or a hub error's label.
pub fn agent_call(kind: &'static str, result: &'static str, elapsed: Duration) {
    counter!(AGENT_CALLS, "kind" => kind, "result" => result).increment(1);
    histogram!(AGENT_DURATION, "kind" => kind).record(elapsed.as_secs_f64());
}

/// An agent connection was admitted; `live` is the live count after it.
pub fn tunnel_connected(live: usize) {
    counter!(TUNNEL_CONNECTIONS).increment(1);
    metrics::gauge!(TUNNEL_AGENTS).set(live as f64);
}

/// An admitted agent connection ended; `live` is the live count after it.
pub fn tunnel_disconnected(live: usize) {
    counter!(TUNNEL_DISCONNECTS).increment(1);
    metrics::gauge!(TUNNEL_AGENTS).set(live as f64);
}
