//! The agent's metrics listener serves Prometheus text with the BMC, tunnel and power sync metrics.

use std::time::Duration;

use ironrack_agent::telemetry;
use ironrack_common::rack::{BmcFailureKind, BmcKind};

#[tokio::test]
async fn metrics_listener_serves_prometheus_text() {
    let addr = telemetry::serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(addr.port(), 0);

    // What the service, the link task and the power sync record.
    telemetry::bmc_call(BmcKind::Ipmi, "on", None, Duration::from_millis(3));
    telemetry::bmc_call(
        BmcKind::Redfish,
        "power_status",
        Some(BmcFailureKind::AuthFailed),
        Duration::from_millis(40),
    );
    telemetry::tunnel_connected(true);
    telemetry::tunnel_reconnect();
    telemetry::sweep_done(Duration::from_millis(250));

    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();

    for expected in [
        "ironrack_bmc_calls_total{driver=\"ipmi\",op=\"on\",result=\"ok\"} 1",
        "ironrack_bmc_calls_total{driver=\"redfish\",op=\"power_status\",result=\"auth_failed\"} 1",
        "ironrack_bmc_call_duration_seconds_bucket{driver=\"ipmi\",op=\"on\",le=\"0.005\"} 1",
        "ironrack_tunnel_connected 1",
        "ironrack_tunnel_reconnects_total 1",
        "ironrack_power_sync_sweep_seconds_count 1",
        "# TYPE ironrack_power_sync_lag_seconds gauge",
        "ironrack_power_sync_lag_seconds ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
