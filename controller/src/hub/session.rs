//! One task per agent connection: handshake outcome, hello, event streams, and cleanup.

use std::sync::Arc;

use ironrack_common::tunnel::{
    AgentHello, AgentId, AgentOpen, ControllerHello, EventAck, EventFrame, Fingerprint,
    HelloRefusal, MIN_PROTOCOL_VERSION, OpenDecodeError, PROTOCOL_VERSION, TunnelError, close_code,
    decode_open,
};
use rustls::pki_types::CertificateDer;
use tracing::Instrument;

use super::store::AgentRecord;
use super::wire::{self, StreamError};
use super::{FIRST_FRAME_TIMEOUT, Inner, LiveAgent, ReceivedEvent, enroll, now_unix_s};
use crate::telemetry;

/// Accepts connections until the endpoint is closed.
pub(super) async fn accept_loop(inner: Arc<Inner>) {
    while let Some(incoming) = inner.endpoint.accept().await {
        let remote = incoming.remote_address();
        let span = tracing::debug_span!("tunnel_conn", %remote, agent_id = tracing::field::Empty, rack = tracing::field::Empty);
        tokio::spawn(handle_incoming(inner.clone(), incoming).instrument(span));
    }
}

async fn handle_incoming(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(error) => {
            // A client certificate from a foreign CA ends here: rustls
            // refused it during the handshake.
            tracing::warn!(error = %error, "tunnel handshake failed");
            return;
        }
    };
    match client_cert(&conn) {
        None => enroll::enrollment_connection(&inner, conn).await,
        Some(cert) => agent_connection(&inner, conn, cert).await,
    }
}

/// The leaf of the client's certificate chain, if it sent one. rustls has
/// already checked that it chains to our CA.
fn client_cert(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.into_iter().next()
}

/// Reads the first frame of the first agent-opened stream.
pub(super) async fn first_frame(
    conn: &quinn::Connection,
) -> Result<(quinn::SendStream, AgentOpen), String> {
    let read = async {
        let (send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| format!("no first stream: {e}"))?;
        let payload = wire::read_frame(&mut recv)
            .await
            .map_err(|e| format!("first frame unreadable: {}", error_chain(&e)))?;
        let open = decode_open(&payload)
            .map_err(|e| format!("first frame does not decode: {}", error_chain(&e)))?;
        Ok((send, open))
    };
    tokio::time::timeout(FIRST_FRAME_TIMEOUT, read)
        .await
        .map_err(|_| format!("no first frame within {FIRST_FRAME_TIMEOUT:?}"))?
}

/// The whole `source` chain of an error on one line, for logs.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

async fn refuse_hello(
    mut send: quinn::SendStream,
    conn: &quinn::Connection,
    agent_id: Option<AgentId>,
    refusal: HelloRefusal,
) {
    tracing::warn!(reason = %refusal, "agent refused");
    let reply = ControllerHello {
        protocol_version: PROTOCOL_VERSION,
        agent_id,
        result: Err(refusal.clone()),
    };
    if wire::write_frame(&mut send, &reply).await.is_ok() {
        // Let the refusal reach the agent before the close discards it.
        let _ = tokio::time::timeout(FIRST_FRAME_TIMEOUT, send.stopped()).await;
    }
    let code = match refusal {
        HelloRefusal::Revoked { .. } => close_code::REVOKED,
        _ => close_code::REFUSED,
    };
    conn.close(code.into(), refusal.to_string().as_bytes());
}

/// Decides on a hello: which agent this certificate belongs to and whether
/// it may connect.
fn admit(
    inner: &Inner,
    cert: &CertificateDer<'_>,
    hello: &AgentHello,
) -> Result<AgentRecord, (Option<AgentId>, HelloRefusal)> {
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
        return Err((
            None,
            HelloRefusal::UnsupportedVersion {
                agent: hello.protocol_version,
                min: MIN_PROTOCOL_VERSION,
                max: PROTOCOL_VERSION,
            },
        ));
    }
    let internal = |e: &dyn std::error::Error| {
        tracing::error!(error = %error_chain(e), "hub store failed during hello");
        (
            None,
            HelloRefusal::Internal {
                message: "store unavailable".into(),
            },
        )
    };
    let record = inner
        .store
        .agent_by_cert(&Fingerprint::of_der(cert))
        .map_err(|e| internal(&e))?
        .ok_or((None, HelloRefusal::UnknownAgent))?;
    if record.revoked {
        return Err((
            Some(record.id.clone()),
            HelloRefusal::Revoked {
                agent_id: record.id,
            },
        ));
    }
    if record.region != hello.region {
        return Err((
            Some(record.id),
            HelloRefusal::RegionChanged {
                enrolled: record.region,
                hello: hello.region.clone(),
            },
        ));
    }
    Ok(record)
}

async fn agent_connection(inner: &Arc<Inner>, conn: quinn::Connection, cert: CertificateDer<'_>) {
    let (send, open) = match first_frame(&conn).await {
        Ok(first) => first,
        Err(reason) => {
            tracing::debug!(%reason, "agent connection dropped before hello");
            conn.close(close_code::PROTOCOL.into(), reason.as_bytes());
            return;
        }
    };
    let hello = match open {
        AgentOpen::Hello(hello) => hello,
        AgentOpen::Enroll(_) | AgentOpen::Event(_) => {
            tracing::debug!("agent connection opened without a hello");
            conn.close(close_code::PROTOCOL.into(), b"expected a hello");
            return;
        }
    };
    let record = match admit(inner, &cert, &hello) {
        Ok(record) => record,
        Err((agent_id, refusal)) => {
            if let Some(id) = &agent_id {
                tracing::Span::current().record("agent_id", tracing::field::display(id));
            }
            refuse_hello(send, &conn, agent_id, refusal).await;
            return;
        }
    };
    let agent_id = record.id.clone();
    let span = tracing::Span::current();
    span.record("agent_id", tracing::field::display(&agent_id));
    span.record("rack", tracing::field::display(&hello.rack));

    let now = now_unix_s();
    let updated = AgentRecord {
        rack: hello.rack.clone(),
        bmc_networks: hello.bmc_networks.clone(),
        agent_version: hello.agent_version.clone(),
        last_seen_unix_s: Some(now),
        ..record
    };
    if let Err(error) = inner.store.upsert_agent(updated) {
        tracing::error!(error = %error_chain(&error), "hub store failed during hello");
        let message = "store unavailable".to_owned();
        refuse_hello(
            send,
            &conn,
            Some(agent_id),
            HelloRefusal::Internal { message },
        )
        .await;
        return;
    }

    let replaced = {
        let mut live = inner.live.lock();
        let replaced = live.insert(
            agent_id.clone(),
            LiveAgent {
                conn: conn.clone(),
                hello: hello.clone(),
                remote: conn.remote_address(),
            },
        );
        telemetry::tunnel_connected(live.len());
        replaced
    };
    if let Some(old) = replaced {
        old.conn.close(
            close_code::REPLACED.into(),
            b"replaced by a newer connection",
        );
    }
    // A revoke that ran between `admit` and the insert above found no live
    // connection to close; look again now that this one is visible.
    if matches!(inner.store.get_agent(&agent_id), Ok(Some(r)) if r.revoked) {
        remove_live(inner, &agent_id, &conn);
        refuse_hello(
            send,
            &conn,
            Some(agent_id.clone()),
            HelloRefusal::Revoked { agent_id },
        )
        .await;
        return;
    }

    let mut send = send;
    let welcome = ControllerHello {
        protocol_version: PROTOCOL_VERSION,
        agent_id: Some(agent_id.clone()),
        result: Ok(()),
    };
    if let Err(error) = wire::write_frame(&mut send, &welcome).await {
        tracing::debug!(error = %error_chain(&error), "hello reply failed");
        remove_live(inner, &agent_id, &conn);
        return;
    }
    tracing::debug!(version = %hello.agent_version, "agent connected");

    let reason = serve_agent_streams(inner, &conn, &agent_id).await;
    remove_live(inner, &agent_id, &conn);
    let _ = inner.store.touch_agent(&agent_id, now_unix_s());
    tracing::debug!(%reason, "agent disconnected");
}

/// Removes `conn` from the live map unless a newer connection replaced it.
///
/// Called exactly once for every admitted connection, whichever way it ends,
/// so it is also where the disconnect is counted.
fn remove_live(inner: &Inner, agent_id: &AgentId, conn: &quinn::Connection) {
    let mut live = inner.live.lock();
    if live
        .get(agent_id)
        .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
    {
        live.remove(agent_id);
    }
    telemetry::tunnel_disconnected(live.len());
}

/// Serves agent-opened streams until the connection ends; returns why.
async fn serve_agent_streams(
    inner: &Arc<Inner>,
    conn: &quinn::Connection,
    agent_id: &AgentId,
) -> quinn::ConnectionError {
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let span = tracing::debug_span!("agent_stream", stream = %send.id());
                tokio::spawn(
                    agent_stream(inner.clone(), agent_id.clone(), send, recv).instrument(span),
                );
            }
            Err(error) => return error,
        }
    }
}

async fn agent_stream(
    inner: Arc<Inner>,
    agent_id: AgentId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let ack = match read_event(&mut recv).await {
        Ok(EventFrame { seq, body }) => {
            let event = ReceivedEvent {
                agent_id,
                seq,
                event: body,
            };
            let result = match inner.events_tx.send(event).await {
                Ok(()) => Ok(()),
                // Nobody consumes events: the hub is shutting down.
                Err(_) => Err(TunnelError::ShuttingDown),
            };
            EventAck { seq, result }
        }
        Err(EventReadError::UnknownEvent { seq, variant }) => {
            tracing::debug!(
                seq,
                variant,
                "agent sent an event kind this controller does not know"
            );
            EventAck {
                seq,
                result: Err(TunnelError::Unsupported {
                    kind: "event".into(),
                    variant,
                }),
            }
        }
        Err(EventReadError::Broken(reason)) => {
            tracing::debug!(%reason, "agent stream refused");
            let _ = send.reset(close_code::PROTOCOL.into());
            let _ = recv.stop(close_code::PROTOCOL.into());
            return;
        }
    };
    if let Err(error) = wire::write_frame(&mut send, &ack).await {
        tracing::debug!(error = %error_chain(&error), "event ack failed");
    }
}

enum EventReadError {
    UnknownEvent { seq: u64, variant: u32 },
    Broken(String),
}

async fn read_event(recv: &mut quinn::RecvStream) -> Result<EventFrame, EventReadError> {
    let payload = wire::read_frame(recv)
        .await
        .map_err(|e: StreamError| EventReadError::Broken(error_chain(&e)))?;
    match decode_open(&payload) {
        Ok(AgentOpen::Event(frame)) => Ok(frame),
        Ok(_) => Err(EventReadError::Broken(
            "hello or enroll on a later stream".into(),
        )),
        Err(OpenDecodeError::UnknownEvent { seq, variant }) => {
            Err(EventReadError::UnknownEvent { seq, variant })
        }
        Err(e) => Err(EventReadError::Broken(error_chain(&e))),
    }
}
