//! The link task: dial, hello, serve request streams, and redial with backoff when the link drops.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironrack_common::tunnel::{
    AgentHello, AgentId, AgentOpen, ControllerHello, HelloRefusal, PROTOCOL_VERSION,
    RequestDecodeError, RequestFrame, ResponseFrame, TunnelError, close_code, decode_payload,
    decode_request,
};
use tokio::sync::watch;
use tracing::Instrument;

use super::backoff::{Backoff, random_u64};
use super::wire::{self, StreamError};
use super::{LinkState, RequestHandler, RunError, Shared};
use crate::telemetry;

/// How long dialling plus hello may take before the attempt counts as failed.
/// Short on purpose: an attempt made while the controller is down gets no
/// answer (UDP), and QUIC retransmits its Initial at growing intervals
/// (1 s, 2 s, 4 s, ...), so a stale attempt would notice a returning
/// controller late. 5 s is still many round trips on any WAN.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Resolve(#[from] super::ResolveError),
    #[error("cannot open a UDP socket")]
    Socket(#[source] std::io::Error),
    #[error("cannot start connecting")]
    ConnectSetup(#[source] quinn::ConnectError),
    #[error("TLS handshake with the controller failed")]
    Tls(#[source] quinn::ConnectionError),
    #[error("connecting to the controller failed")]
    Connect(#[source] quinn::ConnectionError),
    #[error("hello exchange failed")]
    Hello(#[from] StreamError),
    #[error("the controller refused the hello")]
    Refused(#[source] HelloRefusal),
    #[error("the controller accepted the hello without naming the agent")]
    NoAgentId,
    #[error("no hello answer within {0:?}")]
    Timeout(Duration),
}

/// Whether a connection error is a TLS failure (an alert from either side),
/// e.g. a certificate from a foreign CA. QUIC carries TLS alerts as
/// transport error codes 0x0100–0x01ff (RFC 9001 §4.8).
fn is_tls_failure(error: &quinn::ConnectionError) -> bool {
    let code = match error {
        quinn::ConnectionError::TransportError(e) => e.code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

/// Whether the controller closed the connection because the agent was revoked.
fn is_revocation(error: &quinn::ConnectionError) -> bool {
    matches!(error, quinn::ConnectionError::ApplicationClosed(c)
        if c.error_code == close_code::REVOKED.into())
}

pub(super) async fn run_link<H: RequestHandler>(
    shared: Arc<Shared>,
    client_config: quinn::ClientConfig,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let span = tracing::debug_span!(
        "tunnel",
        controller = %shared.config.controller,
        rack = %shared.config.rack,
        agent_id = tracing::field::Empty
    );
    let result = async {
        let mut backoff = Backoff::new(shared.config.backoff);
        let mut endpoint: Option<quinn::Endpoint> = None;
        loop {
            shared.state.send_replace(LinkState::Connecting);
            let attempt = tokio::select! {
                r = tokio::time::timeout(CONNECT_TIMEOUT, connect(&shared, &client_config, &mut endpoint)) => {
                    r.unwrap_or(Err(AttemptError::Timeout(CONNECT_TIMEOUT)))
                }
                _ = shutdown.changed() => return Ok(()),
            };
            match attempt {
                Ok((conn, agent_id)) => {
                    backoff.reset();
                    tracing::Span::current().record("agent_id", tracing::field::display(&agent_id));
                    tracing::debug!(remote = %conn.remote_address(), "tunnel connected");
                    *shared.conn.lock() = Some(conn.clone());
                    shared
                        .state
                        .send_replace(LinkState::Connected { agent_id });
                    telemetry::tunnel_connected(true);
                    let end = serve(&conn, handler.clone(), &mut shutdown).await;
                    *shared.conn.lock() = None;
                    telemetry::tunnel_connected(false);
                    match end {
                        None => {
                            conn.close(close_code::SHUTDOWN.into(), b"agent shutting down");
                            return Ok(());
                        }
                        Some(error) if is_revocation(&error) => {
                            tracing::warn!("the controller revoked this agent; not reconnecting");
                            return Err(RunError::Revoked);
                        }
                        Some(error) => {
                            tracing::debug!(error = %error, "tunnel lost; reconnecting");
                        }
                    }
                }
                Err(AttemptError::Refused(refusal)) if refusal.is_permanent() => {
                    tracing::warn!(reason = %refusal, "the controller refused this agent; not reconnecting");
                    return Err(match refusal {
                        HelloRefusal::Revoked { .. } => RunError::Revoked,
                        other => RunError::Refused(other),
                    });
                }
                Err(error) => {
                    let chain = error_chain(&error);
                    match &error {
                        AttemptError::Refused(_) => {
                            tracing::warn!(error = %chain, "the controller refused the hello; retrying")
                        }
                        AttemptError::Tls(_) => {
                            tracing::warn!(error = %chain, "controller TLS handshake failed; retrying")
                        }
                        _ => tracing::debug!(error = %chain, "tunnel connect failed; retrying"),
                    }
                }
            }
            telemetry::tunnel_reconnect();
            let delay = backoff.next_delay(random_u64());
            tracing::trace!(?delay, "waiting before reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .instrument(span)
    .await;
    shared.state.send_replace(LinkState::Stopped);
    result
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Dials the controller and completes the hello.
async fn connect(
    shared: &Shared,
    client_config: &quinn::ClientConfig,
    endpoint: &mut Option<quinn::Endpoint>,
) -> Result<(quinn::Connection, AgentId), AttemptError> {
    let config = &shared.config;
    let (addr, server_name) = super::tls::resolve(&config.controller).await?;
    // One UDP socket per tunnel, reused across reconnects; a new one only if
    // the controller's address family changed.
    let ep = match endpoint {
        Some(ep) if ep.local_addr().is_ok_and(|l| l.is_ipv6() == addr.is_ipv6()) => ep,
        _ => endpoint.insert(super::tls::client_endpoint(addr).map_err(AttemptError::Socket)?),
    };
    let conn = ep
        .connect_with(client_config.clone(), addr, &server_name)
        .map_err(AttemptError::ConnectSetup)?
        .await
        .map_err(|e| {
            if is_tls_failure(&e) {
                AttemptError::Tls(e)
            } else {
                AttemptError::Connect(e)
            }
        })?;
    let hello = AgentOpen::Hello(AgentHello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: config.agent_version.clone(),
        region: config.region.clone(),
        rack: config.rack.clone(),
        bmc_networks: config.bmc_networks.clone(),
    });
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(StreamError::Connection)?;
        wire::write_frame(&mut send, &hello).await?;
        let payload = wire::read_frame(&mut recv).await?;
        Ok::<ControllerHello, StreamError>(decode_payload(&payload)?)
    };
    let reply = match exchange.await {
        Ok(reply) => reply,
        // The controller rejects a foreign client certificate only after the
        // client's side of the handshake is done (TLS 1.3), so it surfaces
        // here, on the first stream.
        Err(StreamError::Connection(e)) if is_tls_failure(&e) => return Err(AttemptError::Tls(e)),
        Err(StreamError::Read(quinn::ReadExactError::ReadError(
            quinn::ReadError::ConnectionLost(e),
        ))) if is_tls_failure(&e) => return Err(AttemptError::Tls(e)),
        Err(e) => return Err(AttemptError::Hello(e)),
    };
    match reply.result {
        Ok(()) => {
            let agent_id = reply.agent_id.ok_or(AttemptError::NoAgentId)?;
            Ok((conn, agent_id))
        }
        Err(refusal) => Err(AttemptError::Refused(refusal)),
    }
}

/// Serves request streams until the connection ends (`Some(why)`) or the
/// agent shuts down (`None`).
async fn serve<H: RequestHandler>(
    conn: &quinn::Connection,
    handler: Arc<H>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<quinn::ConnectionError> {
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let span = tracing::debug_span!("request", stream = %send.id(), request_id = tracing::field::Empty, kind = tracing::field::Empty);
                    tokio::spawn(serve_request(handler.clone(), send, recv).instrument(span));
                }
                Err(error) => return Some(error),
            },
            _ = shutdown.changed() => return None,
        }
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `handler` for one request within its deadline.
///
/// The deadline is wall-clock time set by the controller, so it assumes
/// both clocks are NTP-synchronised.
// TODO-correctness(#3): a skewed agent clock shortens or stretches every
// deadline; send a relative timeout alongside if that bites in the field.
async fn answer<H: RequestHandler>(handler: &H, frame: RequestFrame) -> ResponseFrame {
    let remaining = frame.deadline_unix_ms.saturating_sub(now_unix_ms());
    let body = if remaining == 0 {
        Err(TunnelError::DeadlineExceeded)
    } else {
        tokio::time::timeout(Duration::from_millis(remaining), handler.handle(frame.body))
            .await
            .unwrap_or(Err(TunnelError::DeadlineExceeded))
    };
    ResponseFrame { id: frame.id, body }
}

async fn serve_request<H: RequestHandler>(
    handler: Arc<H>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let span = tracing::Span::current();
    let payload = match wire::read_frame(&mut recv).await {
        Ok(payload) => payload,
        Err(error) => {
            // Includes oversize frames, refused from the length alone.
            tracing::debug!(error = %error_chain(&error), "request stream refused");
            let _ = recv.stop(close_code::PROTOCOL.into());
            let _ = send.reset(close_code::PROTOCOL.into());
            return;
        }
    };
    let response = match decode_request(&payload) {
        Ok(frame) => {
            span.record("request_id", frame.id);
            span.record("kind", frame.body.kind());
            answer(&*handler, frame).await
        }
        Err(RequestDecodeError::UnknownVariant { id, variant, .. }) => {
            span.record("request_id", id);
            tracing::debug!(variant, "request kind unknown to this agent");
            ResponseFrame {
                id,
                body: Err(TunnelError::Unsupported {
                    kind: "request".into(),
                    variant,
                }),
            }
        }
        Err(RequestDecodeError::Malformed {
            id: Some(id),
            source,
        }) => {
            tracing::debug!(error = %error_chain(&source), "request body does not decode");
            ResponseFrame {
                id,
                body: Err(TunnelError::Malformed {
                    reason: source.to_string(),
                }),
            }
        }
        Err(error @ RequestDecodeError::Malformed { id: None, .. }) => {
            tracing::debug!(error = %error_chain(&error), "request header does not decode");
            let _ = send.reset(close_code::PROTOCOL.into());
            return;
        }
    };
    let ok = response.body.is_ok();
    match wire::write_frame(&mut send, &response).await {
        Ok(()) => tracing::debug!(ok, "request answered"),
        Err(error) => tracing::debug!(error = %error_chain(&error), "answer not delivered"),
    }
}

#[cfg(test)]
mod tests {
    use ironrack_common::tunnel::{AgentRequest, AgentResponse};

    use super::*;

    /// Takes a minute to answer anything.
    struct Slow;

    impl RequestHandler for Slow {
        async fn handle(&self, _request: AgentRequest) -> Result<AgentResponse, TunnelError> {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(AgentResponse::Pong)
        }
    }

    fn frame(deadline_unix_ms: u64) -> RequestFrame {
        RequestFrame {
            id: 3,
            deadline_unix_ms,
            body: AgentRequest::Ping,
        }
    }

    #[tokio::test]
    async fn the_handler_is_cut_off_at_the_deadline() {
        let started = std::time::Instant::now();
        let answer = answer(&Slow, frame(now_unix_ms() + 100)).await;
        assert_eq!(answer.id, 3);
        assert_eq!(answer.body, Err(TunnelError::DeadlineExceeded));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_request_already_past_its_deadline_is_not_started() {
        let started = std::time::Instant::now();
        let answer = answer(&Slow, frame(now_unix_ms() - 1)).await;
        assert_eq!(answer.body, Err(TunnelError::DeadlineExceeded));
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
