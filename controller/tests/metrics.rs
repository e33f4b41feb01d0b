//! `GET /metrics` on the API listener serves Prometheus text that counts the requests before it.

use std::sync::Arc;

use ironrack_controller::api;
use ironrack_controller::app::App;
use ironrack_controller::config::Config;

#[tokio::test]
async fn metrics_count_api_requests_by_known_action() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let app = Arc::new(App::open(config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, api::router(app)).await.unwrap();
    });
    let client = reqwest::Client::new();

    // Unsigned, so refused, but still counted under its (known) action.
    let body: serde_json::Value = client
        .get(format!("{base}/?Action=DescribePM"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ret_code = body["RetCode"].as_u64().unwrap();
    assert_ne!(ret_code, 0, "an unsigned request must be refused: {body}");
    // A made-up action must not become a label of its own.
    client
        .get(format!("{base}/?Action=NoSuchAction{}", std::process::id()))
        .send()
        .await
        .unwrap();

    let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();

    let counted =
        format!("ironrack_api_requests_total{{action=\"DescribePM\",ret_code=\"{ret_code}\"}} 1");
    assert!(text.contains(&counted), "missing {counted:?} in:\n{text}");
    assert!(
        text.contains("ironrack_api_requests_total{action=\"unknown\",ret_code=\""),
        "{text}"
    );
    assert!(!text.contains("NoSuchAction"), "{text}");
    assert!(
        text.contains(
            "ironrack_api_request_duration_seconds_bucket{action=\"DescribePM\",le=\"0.0001\"}"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE ironrack_api_request_duration_seconds histogram"));
    server.abort();
}
