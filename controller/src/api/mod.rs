//! The action API edge: one route, UCloud conventions, and the one place errors become RetCodes.
//!
//! Every answer is HTTP 200 with a JSON body carrying `RetCode`, `Action`
//! (`<Action>Response`) and, on failure, `Message`. A request goes: read the
//! body (bounded) → flat parameters → Action → signature → access rule →
//! nested parameters → the action's handler.

mod auth;
pub mod request;
pub mod server;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use ironrack_common::ApiError;
use ironrack_common::ids::random_hex;
use ironrack_common::params::Params;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::actions::{self, Access, Ctx, Run};
use crate::app::App;
use crate::telemetry;

/// The API: actions on `/`, and the Prometheus metrics on `GET /metrics`
/// (unauthenticated, like any scrape target; it names no tenant data).
pub fn router(app: Arc<App>) -> Router {
    telemetry::install();
    Router::new()
        .route("/", any(handle))
        .route("/metrics", get(metrics_text))
        // Every other path and method still answers in the API's own
        // terms (HTTP 200, a RetCode), never a bare 404 or 405.
        .fallback(handle)
        .with_state(app)
}

async fn metrics_text() -> Response {
    (
        [(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)],
        telemetry::render(),
    )
        .into_response()
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = random_hex(16);
    let span = tracing::info_span!("request", id = %request_id);
    async move {
        let mut action = String::new();
        let mut caller = String::new();
        let result = process(&app, req, &mut action, &mut caller).await;
        let ret_code = result.as_ref().err().map_or(0, |e| e.ret_code().0);
        let elapsed = started.elapsed();
        let latency_us = elapsed.as_micros() as u64;
        // The action is caller input: only a known name becomes a label.
        let label = actions::find(&action).map_or("unknown", |d| d.name);
        telemetry::api_request(label, i64::from(ret_code), elapsed);
        match &result {
            Err(ApiError::Internal(msg)) => tracing::error!(
                action = %action, caller = %caller, ret_code, latency_us, error = %msg,
                "request failed"
            ),
            _ => {
                tracing::info!(action = %action, caller = %caller, ret_code, latency_us, "request")
            }
        }
        let body = render(&action, result);
        let mut resp = (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }
    .instrument(span)
    .await
}

async fn process(
    app: &Arc<App>,
    req: Request,
    action_out: &mut String,
    caller_out: &mut String,
) -> Result<Map<String, Value>, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, app.config.api.max_body_bytes).await?;
    let flat = request::parse(parts.uri.query(), &parts.headers, &bytes)?;
    let action = match flat.get("Action") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(ApiError::MissingAction),
    };
    let Some(def) = actions::find(&action) else {
        // The name is the caller's text: bound and escape it before it
        // reaches the log or the answer.
        let shown = printable(&action);
        action_out.clone_from(&shown);
        return Err(actions::unknown(&shown));
    };
    action_out.clone_from(&action);
    let caller = auth::authenticate(app, &flat)?;
    caller_out.clone_from(&caller.public_key);
    if def.access == Access::Admin && !caller.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "Action [{action}] needs an admin key; this key is bound to CompanyID {}",
            caller.tenant().unwrap_or_default()
        )));
    }
    let params = Params::unflatten(&flat)?;
    let ctx = Ctx {
        app: app.clone(),
        caller,
    };
    match def.run {
        Run::Inline(f) => std::panic::catch_unwind(AssertUnwindSafe(|| f(&ctx, &params)))
            .unwrap_or_else(|_| Err(ApiError::Internal(format!("action {action} panicked")))),
        Run::Blocking(f) => tokio::task::spawn_blocking(move || f(&ctx, &params))
            .await
            .unwrap_or_else(|_| Err(ApiError::Internal(format!("action {action} panicked")))),
        Run::Async(f) => tokio::spawn(f(ctx, params))
            .await
            .unwrap_or_else(|_| Err(ApiError::Internal(format!("action {action} panicked")))),
    }
}

/// Longest piece of caller text echoed into a log line or a message.
const ECHO_LIMIT: usize = 64;

/// The caller's text made safe to echo: control characters escaped, cut to
/// [`ECHO_LIMIT`] characters.
pub fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(ECHO_LIMIT)
        .flat_map(char::escape_default)
        .collect();
    if s.chars().count() > ECHO_LIMIT {
        out.push('…');
    }
    out
}

/// How much of an oversized body is read and thrown away before answering,
/// so that a client still sending gets the RetCode instead of a reset
/// connection; past this the connection is simply cut.
const DRAIN_LIMIT: usize = 16 << 20;

async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedBody(e.to_string()))?;
        seen += chunk.len();
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(buf)
}

fn render(action: &str, result: Result<Map<String, Value>, ApiError>) -> Vec<u8> {
    let mut out = Map::new();
    let (code, fields, message) = match result {
        Ok(fields) => (0, fields, None),
        Err(e) => {
            let mut fields = Map::new();
            if let ApiError::PartialFailure { failed, .. } = &e {
                let list: Vec<Value> = failed
                    .iter()
                    .map(|(id, code, msg)| {
                        serde_json::json!({"ID": id, "RetCode": code, "Message": msg})
                    })
                    .collect();
                fields.insert("Failed".into(), Value::Array(list));
            }
            (e.ret_code().0, fields, Some(e.to_string()))
        }
    };
    out.insert("RetCode".into(), Value::from(code));
    out.insert("Action".into(), Value::from(format!("{action}Response")));
    if let Some(m) = message {
        out.insert("Message".into(), Value::from(m));
    }
    for (k, v) in fields {
        out.entry(k).or_insert(v);
    }
    serde_json::to_vec(&Value::Object(out)).expect("JSON values always serialise")
}
